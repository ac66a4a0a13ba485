"""How fast the latent pad decodes in chromium, by engine (ui/latent_pad.py):

    python bench/browser_decode.py                       # 5 drags of 3 s per decoder
    python bench/browser_decode.py --drags 1 --seconds 1 # a quick check that it runs

For three decoders, each on the Decoder's pad (tests/e2e/pad_app.py shows the pad alone):
  mlp          the shipped Fashion-MNIST VAE's MLP decoder (2 -> 512 -> 512 -> 784, 0.67 M weights) on the
               hand-written JS path (what MLP models use)
  mlp-onnx     the same MLP, exported to ONNX, run by ONNX Runtime Web (WebAssembly, one thread)
  conv-onnx    a convolutional decoder of about a million weights (tests/e2e/onnx_models.py, width 280:
               linear -> 280 x 7 x 7, two stride-2 transposed convolutions, 3 x 3 convolutions), by ONNX Runtime Web
it prints: drag frames/s (distinct pictures drawn per second while the mouse button is held and the mouse moves
as fast as playwright can move it: the pad draws at most one frame per animation frame, ~60/s), decode ms per
frame (median and 95th percentile of the decoder call alone, in the page), and the first frame after opening
the page (for ONNX: loading the runtime, 3.8 MB, and creating the session). Targets: a drag of at least 30
frames/s for the convolutional decoder. Figures move with the load: the load average is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import launch_chromium, missing_browser_reason  # noqa: E402
from onnx_models import ConvVAE, export_decoder, export_mlp, pad_app_server, save_onnx, weights  # noqa: E402

MLP_CHECKPOINT = ROOT / "checkpoints" / "fashion-vae-2d.safetensors"
PAD = ".lp-root"


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def prepare(folder: Path) -> dict[str, str]:
    """The three decoders into `folder`; returns {bench name: pad-app model name} with a description each."""
    from vae_core import load_checkpoint
    shutil.copyfile(MLP_CHECKPOINT, folder / "mlp.safetensors")
    mlp, _ = load_checkpoint(folder / "mlp.safetensors")
    save_onnx(folder, "mlp_onnx", export_mlp(mlp))
    conv = ConvVAE(latent_dim=2, width=280).eval()
    save_onnx(folder, "conv_onnx", export_decoder(conv))
    print(f"decoders: mlp {weights(mlp.generation_net):,} weights; conv {weights(conv.decoder):,} weights")
    return {"mlp": "mlp", "mlp-onnx": "mlp_onnx", "conv-onnx": "conv_onnx"}


def open_pad(page, url: str, model: str) -> float:
    """Open the pad; seconds to its first decoded frame."""
    t0 = time.perf_counter()
    page.goto(f"{url}/?model={model}&mode=pad", wait_until="domcontentloaded")
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && +r.dataset.frames > 0; }",
                           arg=PAD, timeout=120_000)
    return time.perf_counter() - t0


# The pad's frame count and decode times (`reset`: start a new list of times).
STATE = """([sel, reset]) => { let h = document.querySelector(sel); while (h && !h.__latentPad) h = h.parentElement;
    const p = h.__latentPad, out = {frames: p.frames, ms: [...p.decodeMs]}; if (reset) p.decodeMs = []; return out; }"""


def drag(page, seconds: float) -> tuple[float, list[float]]:
    """One drag of `seconds` in circles over the pad: (frames per second, decode ms of its frames)."""
    box = page.locator(".lp-pad").bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, 0.35 * box["width"]
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    before = page.evaluate(STATE, [PAD, True])
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        k += 1
        a = k * 0.05
        page.mouse.move(cx + r * np.cos(a) * (0.5 + 0.5 * np.cos(a / 7)), cy + r * np.sin(a))
    after = page.evaluate(STATE, [PAD, False])
    elapsed = time.perf_counter() - t0
    page.mouse.up()
    return (after["frames"] - before["frames"]) / elapsed, after["ms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drags", type=int, default=5, help="drags per decoder (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one drag in seconds (default 3)")
    args = parser.parse_args(argv)
    reason = missing_browser_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    print(f"load average before: {load()} ({os.cpu_count()} CPUs)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, work = Path(tmp) / "models", Path(tmp) / "app"
        folder.mkdir()
        work.mkdir()
        names = prepare(folder)
        with pad_app_server(folder, work) as server, sync_playwright() as p:
            browser = launch_chromium(p)
            for label, model in names.items():
                context = browser.new_context(viewport={"width": 1200, "height": 900})
                page = context.new_page()
                first = open_pad(page, server.url, model)
                engine = page.get_attribute(PAD, "data-engine")
                page.locator(".lp-pad").scroll_into_view_if_needed()
                fps, ms = [], []
                for _ in range(args.drags):
                    f, m = drag(page, args.seconds)
                    fps.append(f)
                    ms += m
                context.close()
                rows.append((label, engine, first, fps, ms, load()))
                print(f"  {label}: engine {engine}, drag frames/s {[round(v) for v in fps]}", flush=True)
            browser.close()
    print()
    print(f"{'decoder':<11} {'engine':<6} {'drag frames/s':>14} {'decode ms (median, p95)':>24} "
          f"{'first frame s':>14}  load average")
    for label, engine, first, fps, ms, avg in rows:
        p95 = float(np.percentile(ms, 95)) if ms else float("nan")
        print(f"{label:<11} {engine:<6} {statistics.median(fps):>14.1f} "
              f"{statistics.median(ms) if ms else float('nan'):>11.2f}, {p95:>10.2f}  {first:>14.2f}  {avg}")
    print(f"load average (as uptime prints it) after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast Latent Lab feels in a real browser (Debian chromium driven by playwright).

    python bench/app_speed.py                 # the model folders the app uses (checkpoints/, runs/)
    python bench/app_speed.py --moves 50 --models path/to/folder

Prints three figures:
  (c) startup   from `streamlit run app.py` (process start) to the Home page drawn in the browser
                (its title shown, and its script run finished), in seconds;
  (a) slider    Decoder page: one slider step (a key press on the focused slider) -> the new decoded image
                loaded in the page, in ms: median and 95th percentile over --moves steps, for keyboard
                steps and for mouse drags (time from releasing the mouse);
  (b) map       a click on "Latent map" in the sidebar (from the Decoder page) -> all 10,000 points of a
                2-D model drawn by Plotly, in seconds.

The times are taken in the page (performance.now): from the input event to the moment the new image has
loaded (or the chart holds every point and a frame has been painted). When no model in the folders has a
2-D latent with 10,000 stored test means, a small 2-D VAE is trained first (about a minute) into a temporary
folder. Figures move when other work shares the CPU: read them with the machine's load in mind.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import (VIEWPORT, StreamlitServer, go_to, launch_chromium, missing_browser_reason,  # noqa: E402
                     wait_idle)

DECODED = "[data-testid='stMain'] [data-testid='stImage'] img"

# Resolves with the ms from the next keydown / mouseup to the first decoded image having a new, loaded src.
ARM_JS = """(sel) => {
  const old = document.querySelector(sel) ? document.querySelector(sel).src : null;
  window.__t0 = null;
  const start = () => { if (window.__t0 === null) window.__t0 = performance.now(); };
  document.addEventListener('keydown', start, {once: true, capture: true});
  document.addEventListener('mouseup', start, {once: true, capture: true});
  window.__done = new Promise(resolve => {
    const check = () => {
      const img = document.querySelector(sel);
      if (window.__t0 !== null && img && img.src !== old && img.complete && img.naturalWidth > 0) {
        obs.disconnect(); resolve(performance.now() - window.__t0); return true; }
      return false;
    };
    const obs = new MutationObserver(() => { const img = document.querySelector(sel);
      if (!check() && img && img.src !== old) img.addEventListener('load', check, {once: true}); });
    obs.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  });
}"""

# Resolves with the seconds from the click on the nav link to a painted frame with all points of the map.
MAP_JS = """([link, points]) => new Promise(resolve => {
  const t0 = performance.now();
  const poll = () => {
    const gd = document.querySelector("[data-testid='stMain'] .js-plotly-plot");
    const n = gd && gd._fullData ? gd._fullData.reduce((s, t) => s + (t._length || 0), 0) : 0;
    if (n >= points && gd.querySelector('canvas')) {
      requestAnimationFrame(() => requestAnimationFrame(() => resolve((performance.now() - t0) / 1000)));
    } else { setTimeout(poll, 5); }
  };
  link.click();
  poll();
})"""


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def find_map_model(folders: list[Path]) -> Path | None:
    """A checkpoint with a 2-D latent and 10,000 stored test means, or None."""
    from vae_core import list_checkpoints, read_meta
    from safetensors import safe_open
    for folder in folders:
        for path in list_checkpoints(folder):
            try:
                cfg = read_meta(path)["model_config"]
                with safe_open(str(path), framework="pt") as f:
                    ok = "extra.test_latent_means" in f.keys() and f.get_slice("extra.test_latent_means").get_shape()[0] >= 10_000
            except Exception:  # noqa: BLE001 - skip anything unreadable
                continue
            if ok and cfg.latent_dim == 2 and cfg.condition == "none":
                return path
    return None


def train_small_vae(out: Path) -> Path:
    """A 2-D VAE, one epoch on 20,000 MNIST images, with the test set's latent means stored."""
    from vae_core import (ModelConfig, TrainConfig, build_model, encode_dataset, fit, load_dataset,
                          prepare_data, save_checkpoint)
    cfg, tcfg = ModelConfig(latent_dim=2, hidden_dims=(256,)), TrainConfig(epochs=1, train_limit=20_000, eval_limit=1000)
    model = build_model(cfg)
    fit(model, prepare_data(tcfg), tcfg)
    mu, _, labels = encode_dataset(model, load_dataset("mnist", "test"))
    return save_checkpoint(out / "bench_vae_2d.safetensors", model, {"name": "bench_vae_2d", "dataset": "mnist"},
                           extras={"test_latent_means": mu, "test_labels": labels})


def measure_startup(browser, env: dict) -> tuple[StreamlitServer, float, float]:
    """Start the server and load Home; (server, seconds to the title, seconds to the end of the run)."""
    page = browser.new_page(viewport=VIEWPORT)
    server = StreamlitServer(env).start()
    t0 = server.started_at
    while True:
        try:
            page.goto(server.url, wait_until="commit", timeout=2_000)
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.perf_counter() - t0 > 60:
                raise
            time.sleep(0.05)
    page.locator("h1", has_text="Latent Lab").wait_for(timeout=60_000)
    title = time.perf_counter() - t0
    wait_idle(page, timeout=60_000)
    done = time.perf_counter() - t0
    page.close()
    return server, title, done


def slider_latencies(page, moves: int) -> list[float]:
    slider = page.get_by_role("slider").first
    slider.focus()
    out = []
    for i in range(moves):
        page.evaluate(ARM_JS, DECODED)
        page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
        out.append(page.evaluate("() => window.__done"))
        wait_idle(page)
    return out


def drag_latencies(page, moves: int) -> list[float]:
    out = []
    for i in range(moves):
        thumb = page.get_by_role("slider").first
        box = thumb.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.evaluate(ARM_JS, DECODED)
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + (15 if (i // 5) % 2 == 0 else -15), y, steps=3)
        page.mouse.up()
        out.append(page.evaluate("() => window.__done"))
        wait_idle(page)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=30, help="slider steps to time (default 30)")
    parser.add_argument("--models", default=None, help="model folder(s), os.pathsep-separated (default: the app's)")
    parser.add_argument("--map-repeats", type=int, default=3, help="times to switch to the Latent map (default 3)")
    args = parser.parse_args()

    reason = missing_browser_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    from playwright.sync_api import sync_playwright

    folders = [Path(p) for p in (args.models or "").split(os.pathsep) if p] or [ROOT / "checkpoints", ROOT / "runs"]
    tmp = Path(tempfile.mkdtemp(prefix="latent_lab_bench_"))
    map_model = find_map_model(folders)
    if map_model is None:
        print("no 2-D model with 10,000 stored test means in", ", ".join(map(str, folders)), "- training one…")
        map_model = train_small_vae(tmp)
        folders = [tmp, *folders]
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join(map(str, folders))}
    print(f"map / decoder model: {map_model}")

    with sync_playwright() as p:
        browser = launch_chromium(p)
        server, title_s, done_s = measure_startup(browser, env)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server.url)
            page.locator("h1", has_text="Latent Lab").wait_for()
            wait_idle(page)
            # choose the model in the shared picker, on the Decoder page
            go_to(page, "Decoder")
            wait_idle(page)
            picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model")
            if map_model.stem not in picker.input_value():
                picker.click()
                page.get_by_role("option", name=re.compile(re.escape(map_model.stem))).first.click()
                page.wait_for_function("(stem) => document.querySelector(\"[data-testid='stSidebar'] "
                                       "input[aria-label='Model']\").value.includes(stem)", arg=map_model.stem)
                wait_idle(page)
            print("decoder model:", picker.input_value())
            page.locator(DECODED).first.wait_for()
            keys = slider_latencies(page, args.moves)
            drags = drag_latencies(page, max(10, args.moves // 3))

            maps = []
            for _ in range(args.map_repeats):
                go_to(page, "Decoder")
                wait_idle(page)
                link = page.get_by_test_id("stSidebarNav").get_by_role("link", name="Latent map", exact=True)
                maps.append(page.evaluate(MAP_JS, [link.element_handle(), 10_000]))
                wait_idle(page)
        finally:
            server.stop()
            browser.close()

    print()
    print(f"(c) startup: streamlit run -> Home title shown {title_s:.2f} s, Home run finished {done_s:.2f} s")
    print(f"(a) slider -> decoded image (keyboard, {len(keys)} steps): median {statistics.median(keys):.0f} ms, "
          f"p95 {percentile(keys, 0.95):.0f} ms (min {min(keys):.0f}, max {max(keys):.0f})")
    print(f"    slider -> decoded image (mouse drag, {len(drags)} drags, from release): median "
          f"{statistics.median(drags):.0f} ms, p95 {percentile(drags, 0.95):.0f} ms")
    print(f"(b) switch to Latent map -> 10,000 points drawn: median {statistics.median(maps):.2f} s "
          f"(runs: {', '.join(f'{m:.2f}' for m in maps)})")
    print(f"load average now: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

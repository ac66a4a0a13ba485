"""The encoder live under the pen (ui/live_encoder.py) in a real browser: updates per second while drawing.

    python bench/live_encoder.py                          # checkpoints/ (the shipped conv-encoder 2-D VAE)
    python bench/live_encoder.py --seconds 2 --strokes 2  # a quick check that it runs

Starts `streamlit run app.py` on the model folders, opens the Decoder in Debian's chromium, and draws strokes
on the live encoder's canvas with the mouse (playwright mouse moves, one every --interval ms). Prints, per
stroke and overall: encodings shown per second while the button is held (each is canvas -> 28 x 28 digit ->
q(z|x) -> reconstruction -> views, coalesced to animation frames), the pointer moves sent per second, and the
in-page time of one update (median, 95th percentile; the component writes it to data-ms). Then `uptime`.
Target (issue 23): >= 20 updates/s in chromium on this CPU. Figures move with the load: read them beside it.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import VIEWPORT, StreamlitServer, go_to, launch_chromium, missing_browser_reason, open_page  # noqa: E402

ROOT_SEL = ".le-root"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(ROOT / "checkpoints"), help="model folder(s), os.pathsep-separated")
    ap.add_argument("--strokes", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="how long each stroke lasts")
    ap.add_argument("--interval", type=float, default=8.0, help="ms between mouse moves (a 120 Hz pen)")
    args = ap.parse_args()
    reason = missing_browser_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    env = {"LATENT_LAB_MODEL_DIRS": args.models}
    from playwright.sync_api import sync_playwright
    server = StreamlitServer(env).start()
    try:
        server.wait_listening()
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(120_000)
            open_page(page, server.url)
            go_to(page, "Decoder")
            page.get_by_role("heading", name="Draw a digit").scroll_into_view_if_needed()
            page.wait_for_function("(s) => { const r = document.querySelector(s); return r && r.dataset.ready; }",
                                   arg=ROOT_SEL)
            print("model:", page.locator("[data-testid='stSidebar'] input[aria-label='Model']").first.input_value())
            canvas = page.locator("canvas.le-canvas")
            canvas.scroll_into_view_if_needed()
            time.sleep(0.5)
            box = canvas.bounding_box()
            cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] * 0.3
            rates, ms_all = [], []
            for s in range(args.strokes):
                page.locator(ROOT_SEL).get_by_role("button", name="Clear").click()
                page.evaluate("(s) => { window.__ms = []; const r = document.querySelector(s);"
                              " window.__obs = new MutationObserver(() => window.__ms.push(+r.dataset.ms));"
                              " window.__obs.observe(r, {attributes: true, attributeFilter: ['data-updates']}); }",
                              ROOT_SEL)
                u0 = int(page.get_attribute(ROOT_SEL, "data-updates") or 0)
                page.mouse.move(cx + r, cy)
                page.mouse.down()
                t0, moves = time.perf_counter(), 0
                while time.perf_counter() - t0 < args.seconds:
                    a = 2 * math.pi * (time.perf_counter() - t0) / 1.5
                    page.mouse.move(cx + r * math.cos(a) * (0.6 + 0.4 * (s % 2)), cy + r * math.sin(2 * a) * 0.8)
                    moves += 1
                    time.sleep(args.interval / 1000)
                u1 = int(page.get_attribute(ROOT_SEL, "data-updates") or 0)   # read before the release
                held = time.perf_counter() - t0
                page.mouse.up()
                ms = page.evaluate("() => { window.__obs.disconnect(); return window.__ms; }")
                ms_all += [m for m in ms if m == m]
                rates.append((u1 - u0) / held)
                print(f"stroke {s + 1}: {u1 - u0} updates in {held:.2f} s held = {(u1 - u0) / held:.1f} updates/s; "
                      f"{moves / held:.0f} pointer moves/s sent")
            ms_all.sort()
            print(f"overall: {statistics.median(rates):.1f} updates/s (median of {len(rates)} strokes; "
                  f"min {min(rates):.1f}); one update {statistics.median(ms_all):.1f} ms median, "
                  f"{ms_all[int(0.95 * (len(ms_all) - 1))]:.1f} ms p95 in the page")
            browser.close()
    finally:
        server.stop()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("cpus:", os.cpu_count())


if __name__ == "__main__":
    main()

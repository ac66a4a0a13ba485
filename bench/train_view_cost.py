"""What the Train page's live view costs the browser: one tab, the default run (but 30 epochs) training,
measured for a fixed window after its first step.

    python bench/train_view_cost.py              # 20 s window
    python bench/train_view_cost.py --seconds 30

Prints the CPU seconds of the browser (chromium and playwright's driver), of the Streamlit server and of
the training workers over the window, Chrome's own split of its main thread (CDP Performance.getMetrics:
script, layout, style recalculation, all tasks), the bytes that came over the websocket, and how many
times the latent map and the samples picture were replaced in the page. Take figures on a quiet machine
(/work/tools/quiet); the load average is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

# counts replaced <img> sources and Plotly redraws in the main area while the window runs
WATCH_JS = """() => {
  window.__imgs = 0; window.__plots = 0;
  window.__curves = document.querySelector('.st-key-train_curves .js-plotly-plot');
  window.__img = document.querySelector("[data-testid='stMain'] img");
  const obs = new MutationObserver(ms => { for (const m of ms) {
      if (m.type === 'attributes' && m.target.tagName === 'IMG') window.__imgs++;
      for (const n of m.addedNodes || []) if (n.nodeType === 1) {
          if (n.tagName === 'IMG' || n.querySelector?.('img')) window.__imgs++;
          if (n.classList?.contains('main-svg') || n.querySelector?.('.main-svg')) window.__plots++; } } });
  obs.observe(document.querySelector("[data-testid='stMain']"),
              {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""

# the newest x (epoch) the curves' chart shows: it moves while the chart updates
LAST_X_JS = """() => { const gd = document.querySelector('.st-key-train_curves .js-plotly-plot');
    const t = gd && gd._fullData && gd._fullData[1]; return t && t._length ? t.x[t._length - 1] : null; }"""

METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    args = p.parse_args(argv)
    from classroom_load import cpu_seconds, descendants
    from harness import VIEWPORT, StreamlitServer, launch_chromium, wait_idle
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="latent_lab_view_cost_")) / "runs"
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(ROOT / "checkpoints"), str(runs)])}
    server = StreamlitServer(env, log=runs.parent / "streamlit.log").start()
    try:
        server.wait_listening()
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            received = [0]
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.__setitem__(
                0, received[0] + len(f if isinstance(f, (bytes, str)) else b""))))
            page.goto(f"{server.url}/train")
            page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
            wait_idle(page)
            epochs = page.get_by_label("Epochs")
            epochs.fill("30")
            epochs.press("Enter")
            wait_idle(page)
            page.get_by_role("button", name="Start training").click()
            page.get_by_text("Latent map of test images").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)   # past the first map and the switch to the calmer polling
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")

            def snapshot():
                tree = descendants(server.proc.pid)
                others = [q for q in descendants(os.getpid()) if q != server.proc.pid and q not in tree]
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                return {"browser": sum(map(cpu_seconds, others)), "server": cpu_seconds(server.proc.pid),
                        "workers": sum(map(cpu_seconds, tree)), **{k: metrics.get(k, 0.0) for k in METRICS},
                        "ws": received[0]}

            page.evaluate(WATCH_JS)
            xmax0 = page.evaluate(LAST_X_JS)
            load0 = os.getloadavg()[0]
            before, t0 = snapshot(), time.perf_counter()
            page.wait_for_timeout(args.seconds * 1000)
            after, wall = snapshot(), time.perf_counter() - t0
            counts = page.evaluate("() => [window.__imgs, window.__plots, window.__curves === "
                                   "document.querySelector('.st-key-train_curves .js-plotly-plot'), "
                                   "window.__img === document.querySelector(\"[data-testid='stMain'] img\")]")
            xmax1 = page.evaluate(LAST_X_JS)
            progress = page.locator("[data-testid='stMain'] [data-testid='stProgress']").first.inner_text()
            page.get_by_role("button", name="Stop", exact=True).click()
            wait_idle(page)
            browser.close()
    finally:
        server.stop()
    d = {k: after[k] - before[k] for k in before}
    print(f"Train tab alone, {wall:.1f} s window while the default run (30 epochs) trains; load average "
          f"{load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"  CPU s: browser {d['browser']:.2f}, server {d['server']:.2f}, workers {d['workers']:.2f}")
    print("  chromium main thread s: " + ", ".join(f"{k.replace('Duration', '').lower()} {d[k]:.2f}" for k in METRICS))
    print(f"  the curves' newest point: epoch {xmax0} at the start of the window, {xmax1} at its end")
    print(f"  websocket received {d['ws'] / 1e3:.0f} kB; <img> sources set {counts[0]}, Plotly figures mounted "
          f"{counts[1]}; the curves' element {'kept' if counts[2] else 'REPLACED'}, the first picture's {'kept' if counts[3] else 'REPLACED'}; progress at the end: {progress.strip().splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long the Diagnose page takes to open in a real browser (Debian chromium through playwright).

From a click on "Diagnose" in the menu until the first tab's figures (the "Active units" metric and the KL
bars) are drawn and the script run has ended, for the default model (the shipped MNIST 2-D VAE). The first
visit computes the statistics; later visits (each in a new browser tab, i.e. a new Streamlit session, on the
same server) read them from the cache. Issue 13's target: < 3 s after the first visit.

    python bench/diagnose_speed.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT))

from harness import (VIEWPORT, exceptions_on, go_to, launch_chromium, missing_browser_reason,  # noqa: E402
                     open_page, streamlit_server, wait_idle)


def one_visit(browser, url: str) -> float:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        open_page(page, url, timeout=120_000)
        wait_idle(page, timeout=120_000)
        started = time.perf_counter()
        go_to(page, "Diagnose", timeout=120_000)
        page.get_by_text("Active units").first.wait_for(timeout=600_000)
        page.locator("[data-testid='stMain'] .js-plotly-plot").first.wait_for(timeout=600_000)
        wait_idle(page, timeout=600_000)
        took = time.perf_counter() - started
        problems = exceptions_on(page)
        if problems:
            raise RuntimeError(f"the page shows an exception: {problems[0][:200]}")
        return took
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="visits after the first (default 5)")
    args = parser.parse_args()
    reason = missing_browser_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 2
    from playwright.sync_api import sync_playwright

    env = {"LATENT_LAB_MODEL_DIRS": str(ROOT / "checkpoints")}
    with streamlit_server(env) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        first = one_visit(browser, server.url)
        later = [one_visit(browser, server.url) for _ in range(args.repeats)]
        browser.close()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"Diagnose, first visit (computes): {first:.2f} s")
    print(f"Diagnose, later visits (cached), median {statistics.median(later):.2f} s, "
          f"max {max(later):.2f} s over {len(later)}: " + ", ".join(f"{t:.2f}" for t in later))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

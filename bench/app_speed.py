"""How fast Latent Lab feels in a real browser (Debian chromium driven by playwright).

    python bench/app_speed.py                 # the model folders the app uses (checkpoints/, runs/)
    python bench/app_speed.py --moves 50 --models path/to/folder
    python bench/app_speed.py --moves 3 --map-repeats 1 --models checkpoints    # a quick check that it runs

Prints three figures:
  (c) startup   from `streamlit run app.py` (process start) to the Home page drawn in the browser
                (its title shown, and its script run finished), in seconds;
  (a) slider    Decoder page: one slider step (a key press on the focused slider) -> the new decoded image
                loaded in the page, in ms: median and 95th percentile over --moves steps, for keyboard
                steps and for mouse drags (time from releasing the mouse);
  (b) map       a click on "Latent map" in the sidebar (from the Decoder page) -> all 10,000 points of a
                2-D model drawn by Plotly, in seconds.
and, for the in-browser decoder (ui/latent_pad.py; (a) above is its fallback, "Decode in the browser" off):
  (d) drag      mouse drags over the Decoder's latent pad: distinct decoded frames per second while the
                button is held, and whether the picture changed before the release (with nothing sent yet);
  (e) commit    an arrow key on the z1 slider: key down -> new picture (in the browser), and key up -> the
                server's number box showing the new z (the round trip that remains); a click on the pad:
                release -> number box; ms, median and 95th percentile;
  (f) hover     Latent map: a mouse move over the map -> the digit under the cursor drawn beside it, in ms.
  (g) bytes     websocket bytes the server sends for one commit (the weights travel once per session).

The times are taken in the page (performance.now): from the input event to the moment the new image has
loaded (or the chart holds every point and a frame has been painted). When no model in the folders has a
2-D latent with 10,000 stored test means, a small 2-D VAE is trained first (about a minute) into a temporary
folder. Figures move when other work shares the CPU, and this 2-core machine itself ran 1.7x slower at some
hours than at others: read them with the load average and the CPU reference printed at the end.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import (VIEWPORT, StreamlitServer, choose_in_picker, go_to, launch_chromium,  # noqa: E402
                     missing_browser_reason, wait_idle)

DECODED = "[data-testid='stMain'] [data-testid='stImage']"   # the decoded image and its caption

# Resolves with the ms from the next keydown / pointerup to the decoded image updated: its caption (z = ...)
# changed and, when the picture changed too (a tiny step can decode to the same PNG), the new one loaded.
# Resolves with NaN after 10 s.
ARM_JS = """(sel) => {
  const fig = () => document.querySelector(sel);
  const state = () => { const f = fig(); if (!f) return [null, null];
    const img = f.querySelector('img'), cap = f.innerText; return [img ? img.src : null, cap]; };
  const [oldSrc, oldCap] = state();
  window.__t0 = null;
  const start = () => { if (window.__t0 === null) window.__t0 = performance.now(); };
  document.addEventListener('keydown', start, {once: true, capture: true});
  document.addEventListener('pointerup', start, {once: true, capture: true});  // react-aria cancels mouseup
  window.__done = new Promise(resolve => {
    const t = setTimeout(() => { obs.disconnect(); resolve(NaN); }, 10000);
    const check = () => {
      const [src, cap] = state(); const img = fig() && fig().querySelector('img');
      if (window.__t0 === null || cap === oldCap) return;
      if (src !== oldSrc && !(img.complete && img.naturalWidth > 0)) { img.addEventListener('load', check, {once: true}); return; }
      obs.disconnect(); clearTimeout(t); resolve(performance.now() - window.__t0);
    };
    const obs = new MutationObserver(check);
    obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true,
                                attributeFilter: ['src']});
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
    from vae_core import list_checkpoints, read_record
    from safetensors import safe_open
    found = []
    for folder in folders:
        for path in list_checkpoints(folder):
            try:
                cfg = read_record(path).model_config
                with safe_open(str(path), framework="pt") as f:
                    ok = "extra.test_latent_means" in f.keys() and f.get_slice("extra.test_latent_means").get_shape()[0] >= 10_000
            except Exception:  # noqa: BLE001 - skip anything unreadable
                continue
            if ok and cfg.latent_dim == 2 and cfg.condition == "none":
                found.append(path)
    found.sort(key=lambda p: read_record(p).dataset != "mnist")  # MNIST first
    return found[0] if found else None


def train_small_vae(out: Path) -> Path:
    """A 2-D VAE, one epoch on 20,000 MNIST images, with the test set's latent means stored."""
    from vae_core import (ModelConfig, TrainConfig, build_model, encode_dataset, fit, load_dataset,
                          prepare_data, record_from_fit, save_checkpoint)
    cfg, tcfg = ModelConfig(latent_dim=2, hidden_dims=(256,)), TrainConfig(epochs=1, train_limit=20_000, eval_limit=1000)
    model = build_model(cfg)
    result = fit(model, prepare_data(tcfg), tcfg)
    mu, _, labels = encode_dataset(model, load_dataset("mnist", "test"))
    return save_checkpoint(out / "bench_vae_2d.safetensors", model, record_from_fit(cfg, tcfg, result, name="bench_vae_2d"),
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


def settle(page, pause: float) -> None:
    """Let the previous move finish (its script run, the manifold chart after the image) before the next:
    each figure is the latency of one move, not of a queue of them."""
    wait_idle(page)
    time.sleep(pause)


def slider_latencies(page, moves: int, pause: float) -> tuple[list[float], int]:
    """Keyboard steps on the first slider: (latencies in ms, moves without an update within 10 s)."""
    page.get_by_role("slider").first.focus()
    out = []
    for i in range(moves):
        page.evaluate(ARM_JS, DECODED)
        page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
        out.append(page.evaluate("() => window.__done"))
        settle(page, pause)
    return [v for v in out if v == v], sum(v != v for v in out)


def drag_latencies(page, moves: int, pause: float) -> tuple[list[float], int]:
    """Mouse drags of the first slider's thumb by 15 px, timed from the release (Streamlit sends a slider's
    value when the drag ends): (latencies in ms, drags without an update within 10 s)."""
    out = []
    for i in range(moves):
        thumb = page.get_by_test_id("stSliderThumbValue").first.locator("..")  # the thumb holds its value label
        box = thumb.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.evaluate(ARM_JS, DECODED)
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + (15 if (i // 5) % 2 == 0 else -15), y, steps=3)
        page.mouse.up()
        out.append(page.evaluate("() => window.__done"))
        settle(page, pause)
    return [v for v in out if v == v], sum(v != v for v in out)


PAD = ".lp-root"

# Arms a recorder of the in-browser decoder's frames (its data-frames attribute counts distinct pictures):
# window.__drag resolves, after the next pointerup, with the frame times before the release and whether the
# server's number box had moved before it (it must not: the commit is the release).
DRAG_JS = """(pad) => {
  const root = document.querySelector(pad), box = document.querySelector("input[aria-label='z1 exactly']");
  const times = [], v0 = box.value; let early = false;
  const obs = new MutationObserver(() => { times.push(performance.now()); if (box.value !== v0) early = true; });
  obs.observe(root, {attributes: true, attributeFilter: ['data-frames']});
  window.__drag = new Promise(resolve => document.addEventListener('pointerup', () => {
    obs.disconnect(); resolve({times, early}); }, {once: true, capture: true}));
}"""

# Arms a timer for the next input (keydown, or pointerup for a click): resolves with [ms from keydown to the
# new picture (NaN for a click), ms from keyup / pointerup to the server's number box showing a new value].
COMMIT_JS = """([pad, click]) => {
  const root = document.querySelector(pad), box = document.querySelector("input[aria-label='z1 exactly']");
  const f0 = +root.dataset.frames, v0 = box.value;
  let tDown = null, tFrame = null, tUp = null;
  document.addEventListener('keydown', () => { tDown ??= performance.now(); }, {once: true, capture: true});
  document.addEventListener(click ? 'pointerup' : 'keyup', () => { tUp ??= performance.now(); },
                            {once: true, capture: true});
  const obs = new MutationObserver(() => { if (tFrame === null && +root.dataset.frames > f0) tFrame = performance.now(); });
  obs.observe(root, {attributes: true, attributeFilter: ['data-frames']});
  window.__done = new Promise(resolve => {
    const t0 = performance.now();
    const poll = setInterval(() => {
      const done = tUp !== null && box.value !== v0;
      if (done || performance.now() - t0 > 10000) {
        clearInterval(poll); obs.disconnect();
        resolve(done ? [click || tFrame === null ? NaN : tFrame - tDown, performance.now() - tUp] : [NaN, NaN]);
      }
    }, 1);
  });
}"""

# Arms a timer from the next pointer move to the hover decoder's next frame.
HOVER_JS = """(pad) => {
  const root = document.querySelector(pad), f0 = +(root.dataset.frames || 0);
  let t0 = null;
  document.addEventListener('pointermove', () => { t0 ??= performance.now(); }, {once: true, capture: true});
  window.__hover = new Promise(resolve => {
    const t = setTimeout(() => { obs.disconnect(); resolve(NaN); }, 5000);
    const obs = new MutationObserver(() => {
      if (t0 !== null && +root.dataset.frames > f0) { obs.disconnect(); clearTimeout(t); resolve(performance.now() - t0); }
    });
    obs.observe(root, {attributes: true, attributeFilter: ['data-frames']});
  });
}"""


def choose_model(page, name: str):
    """Pick the model the picker lists under `name` (its display name); returns the picker."""
    picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model")
    if picker.input_value() != name:
        choose_in_picker(page, name)
    return picker


def set_browser_decoding(page, on: bool) -> None:
    """The sidebar switch "Decode in the browser"."""
    sidebar = page.get_by_test_id("stSidebar")
    if page.locator(".st-key-browser_decode input").is_checked() != on:
        sidebar.get_by_text("Decode in the browser").click()
        wait_idle(page)
    (page.locator(PAD) if on else page.get_by_test_id("stSlider")).first.wait_for()
    wait_idle(page)


def pad_drags(page, drags: int, moves: int = 60) -> tuple[list[float], list[bool], list[bool]]:
    """Mouse drags across the latent pad, `moves` pointer moves each: (frames per second while held,
    picture changed before the release, number box moved before the release) per drag."""
    fps, changed, early = [], [], []
    page.locator(".lp-pad").scroll_into_view_if_needed()
    box = page.locator(".lp-pad").bounding_box()
    for d in range(drags):
        page.evaluate(DRAG_JS, PAD)
        y0 = 0.2 + 0.6 * d / max(1, drags - 1)
        page.mouse.move(box["x"] + 0.1 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for k in range(moves):
            f = k / (moves - 1)
            page.mouse.move(box["x"] + (0.1 + 0.8 * f) * box["width"], box["y"] + (y0 + 0.15 * np.sin(6 * f)) * box["height"])
        page.mouse.up()
        got = page.evaluate("() => window.__drag")
        times = got["times"]
        fps.append((len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 else 0.0)
        changed.append(len(times) > 1)
        early.append(got["early"])
        # this drag's commit made the round trip (the number box shows the pad's z) before the next drag
        page.wait_for_function("""(pad) => { const z = document.querySelector(pad).dataset.z.split(',');
            const box = document.querySelector("input[aria-label='z1 exactly']");
            return Math.abs(parseFloat(box.value) - parseFloat(z[0])) < 6e-4; }""", arg=PAD, timeout=30_000)
        wait_idle(page)
    return fps, changed, early


def commit_latencies(page, moves: int, pause: float, click: bool = False) -> tuple[list[float], list[float], int]:
    """Arrow keys on the z1 slider (or clicks on the pad): (ms to the new picture, ms to the server's
    number box, inputs without an update within 10 s)."""
    pictures, servers, missed = [], [], 0
    slider = page.get_by_role("slider", name="z1")
    box = page.locator(".lp-pad").bounding_box() if click else None
    rng = np.random.default_rng(0)
    for i in range(moves):
        page.evaluate(COMMIT_JS, [PAD, click])
        if click:
            page.mouse.click(box["x"] + rng.uniform(0.1, 0.9) * box["width"], box["y"] + rng.uniform(0.1, 0.9) * box["height"])
        else:
            slider.focus()
            page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
        picture_ms, server_ms = page.evaluate("() => window.__done")
        if server_ms != server_ms:
            missed += 1
            continue
        if picture_ms == picture_ms:
            pictures.append(picture_ms)
        servers.append(server_ms)
        settle(page, pause)
    return pictures, servers, missed


def hover_latencies(page, moves: int) -> list[float]:
    """Mouse moves over the Latent map's plot area: ms from the move to the decoded digit beside it."""
    gd = page.locator(".st-key-latent_map_chart .js-plotly-plot").first
    gd.wait_for()
    page.wait_for_function("(pad) => { const r = document.querySelector(pad); return r && r.dataset.model; }", arg=PAD,
                           timeout=60_000)
    box = gd.bounding_box()
    rng = np.random.default_rng(1)
    out = []
    for _ in range(moves):
        page.evaluate(HOVER_JS, PAD)
        page.mouse.move(box["x"] + rng.uniform(0.25, 0.7) * box["width"], box["y"] + rng.uniform(0.25, 0.75) * box["height"])
        out.append(page.evaluate("() => window.__hover"))
        time.sleep(0.05)
    return [v for v in out if v == v]


def python_loop_seconds() -> float:
    """The same machine ran 1.7x slower at one hour than at another: this figure says which one it was."""
    t0, total = time.perf_counter(), 0
    for i in range(10**7):
        total += i
    return time.perf_counter() - t0


def summary(values: list[float], missed: int, unit: str = "ms") -> str:
    if not values:
        return f"no update seen ({missed} timed out)"
    text = (f"median {statistics.median(values):.0f} {unit}, p95 {percentile(values, 0.95):.0f} {unit} "
            f"(min {min(values):.0f}, max {max(values):.0f})")
    return text + (f"; {missed} timed out (not counted)" if missed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=30, help="slider steps to time (default 30)")
    parser.add_argument("--models", default=None, help="model folder(s), os.pathsep-separated (default: the app's)")
    parser.add_argument("--map-repeats", type=int, default=3, help="times to switch to the Latent map (default 3)")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between two slider moves (default 0.3)")
    parser.add_argument("--verbose", action="store_true", help="also print every step's latency")
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
    from vae_core import read_record
    map_name = str(read_record(map_model).name or map_model.stem)
    print(f"map / decoder model: {map_model} ({map_name})")

    with sync_playwright() as p:
        browser = launch_chromium(p)
        server, title_s, done_s = measure_startup(browser, env)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            frames_in = []   # websocket frames from the server, in bytes
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames_in.append(len(payload))))
            page.goto(server.url)
            page.locator("h1", has_text="Latent Lab").wait_for()
            wait_idle(page)
            # choose the model in the shared picker, on the Decoder page, the in-browser decoder on; the bytes
            # of the model's first use in this session (its weights and manifold picture travel then)
            go_to(page, "Decoder")
            wait_idle(page)
            set_browser_decoding(page, True)
            from ui.latent_pad import model_key
            key = model_key(str(map_model))
            picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model")
            if picker.input_value() == map_name:
                page.reload()   # already sent to this session: a new session sends it again
                page.locator(PAD).first.wait_for(timeout=60_000)
            frames_in.clear()
            choose_model(page, map_name)
            page.wait_for_function("([pad, key]) => { const r = document.querySelector(pad);"
                                   " return r && r.dataset.model === key && +r.dataset.frames > 0; }",
                                   arg=[PAD, key], timeout=60_000)
            wait_idle(page)
            time.sleep(1)
            first_load = sum(frames_in)
            print("decoder model:", picker.input_value())
            frames_in.clear()
            print(f"timing {max(3, args.moves // 5)} drags, {args.moves} key steps and {args.moves} clicks "
                  "in the browser…", flush=True)
            fps, changed, early = pad_drags(page, max(3, args.moves // 5))
            commit_bytes = sum(frames_in) / len(fps)   # per drag: the release's commit and its echo
            key_pics, key_server, key_missed = commit_latencies(page, args.moves, args.pause)
            _, click_server, click_missed = commit_latencies(page, args.moves, args.pause, click=True)
            if args.verbose:
                print("    drag frames/s:", [round(v) for v in fps])
                print("    key -> picture (ms):", [round(v, 1) for v in key_pics])
                print("    key up -> server (ms):", [round(v) for v in key_server])
                print("    click -> server (ms):", [round(v) for v in click_server])
            # the server-side sliders (the fallback)
            set_browser_decoding(page, False)
            page.locator(DECODED).first.wait_for()
            wait_idle(page)
            page.get_by_role("button", name=re.compile("Centre")).first.click()   # off the ends the clicks reached
            wait_idle(page)
            print(f"timing {args.moves} keyboard steps on the server sliders…", flush=True)
            keys, keys_missed = slider_latencies(page, args.moves, args.pause)
            drags, drags_missed = drag_latencies(page, max(10, args.moves // 3), args.pause)
            if args.verbose:
                print("    keyboard steps (ms):", [round(v) for v in keys])
                print("    mouse drags (ms):", [round(v) for v in drags])
            set_browser_decoding(page, True)

            maps = []
            for _ in range(args.map_repeats):
                go_to(page, "Decoder")
                wait_idle(page)
                link = page.get_by_test_id("stSidebarNav").get_by_role("link", name="Latent map", exact=True)
                maps.append(page.evaluate(MAP_JS, [link.element_handle(), 10_000]))
                wait_idle(page)
            if not maps:
                go_to(page, "Latent map")
            hovers = hover_latencies(page, max(5, args.moves))
            if args.verbose:
                print("    hover -> digit (ms):", [round(v, 1) for v in hovers])
        finally:
            server.stop()
            browser.close()

    print()
    print(f"(c) startup: streamlit run -> Home title shown {title_s:.2f} s, Home run finished {done_s:.2f} s")
    print(f"(a) slider -> decoded image, keyboard ({len(keys)} steps): {summary(keys, keys_missed)}")
    print(f"    slider -> decoded image, mouse drag ({len(drags)} drags, from release): {summary(drags, drags_missed)}")
    if maps:
        print(f"(b) switch to Latent map -> 10,000 points drawn: median {statistics.median(maps):.2f} s "
              f"(runs: {', '.join(f'{m:.2f}' for m in maps)})")
    print(f"(d) drag on the latent pad ({len(fps)} drags): {summary(fps, 0, 'frames/s')}; picture changed before "
          f"the release in {sum(changed)}/{len(changed)}, number box moved before it in {sum(early)}")
    print(f"(e) key down -> new picture in the browser: {summary(key_pics, 0)}")
    print(f"    key up -> server's number box: {summary(key_server, key_missed)}")
    print(f"    click on the pad -> server's number box: {summary(click_server, click_missed)}")
    print(f"(f) hover on the Latent map -> digit beside it ({len(hovers)} moves): {summary(hovers, 0)}")
    print(f"(g) websocket bytes from the server: the model's first use in a session {first_load:,} (its weights "
          f"and manifold picture), one drag's commit {commit_bytes:,.0f}")
    print(f"load average now: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (2 cores); "
          f"CPU reference: a 10**7-step Python loop takes {python_loop_seconds():.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

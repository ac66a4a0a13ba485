"""The encoder live under the pen (ui/live_encoder.py) in chromium: strokes drawn with the mouse move q(z|x)'s
ellipse on the map before the stroke ends; the browser's 28 x 28 digit is the server's drawing_to_digit of
the same canvas pixels; the browser's mu and log-variance equal torch's within 1e-4 (MLP and conv encoders,
the shipped conv checkpoint too); "Send to the sliders" moves the explorer and says so where it was clicked.
"""
from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import exceptions_on, open_page, wait_idle
from test_browser_decoder import PAD, assert_agree, choose_model, models, open_decoder, settled_box  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ui.decoder_tools import drawing_to_digit  # noqa: E402
from ui.live_encoder import encoder_payload, tall_first  # noqa: E402
from vae_core import ModelConfig, build_model, load_checkpoint  # noqa: E402

pytestmark = pytest.mark.e2e

ROOT_SEL = ".le-root"
CANVAS = "canvas.le-canvas"
SHIPPED_CONV = Path(__file__).resolve().parents[2] / "checkpoints" / "mnist-vae-2d.safetensors"


def live_ready(page) -> None:
    page.get_by_role("heading", name="Draw a digit").scroll_into_view_if_needed()
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && r.dataset.ready; }",
                           arg=ROOT_SEL, timeout=60_000)


def updates(page) -> int:
    return int(page.get_attribute(ROOT_SEL, "data-updates") or 0)


def wait_updates_above(page, n: int) -> None:
    page.wait_for_function("([sel, n]) => +(document.querySelector(sel)?.dataset.updates || 0) > n",
                           arg=[ROOT_SEL, n], timeout=30_000)


def ellipse(page) -> dict:
    return page.locator(".le-ellipse").evaluate(
        "e => ({cx: +e.getAttribute('cx'), cy: +e.getAttribute('cy'), rx: +e.getAttribute('rx'), ry: +e.getAttribute('ry')})")


def browser_state(page) -> dict:
    """The canvas's RGBA pixels, the browser's digit, mu and log-variance (after the last frame drawn)."""
    return page.evaluate("""async (sel) => {
        await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
        let host = document.querySelector(sel); while (host && !host.__liveEncoder) host = host.parentElement;
        const st = host.__liveEncoder, c = st.canvas;
        return {rgba: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data),
                digit: st.digit ? Array.from(st.digit) : null, mu: st.mu, logvar: st.logvar,
                side: c.width}; }""", ROOT_SEL)


def torch_encode(model, digit: np.ndarray, label=None):
    y = torch.from_numpy(digit.astype(np.float32) / 255.0).reshape(1, -1)
    with torch.no_grad():
        mu, logvar = model.encode(y, None if label is None else torch.tensor([label]))
    return mu[0].numpy(), logvar[0].numpy()


# ----------------------------------------------------------------------------- under the pen

def test_the_ellipse_moves_while_the_stroke_is_drawn_and_matches_the_server(page, server, models):
    open_decoder(page, server)
    live_ready(page)
    box = settled_box(page, page.locator(CANVAS))
    x0, y0 = box["x"] + 0.3 * box["width"], box["y"] + 0.2 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    seen = []
    for k in range(1, 9):                       # a curve: down, then to the right, then down again
        n = updates(page)
        page.mouse.move(x0 + 18 * k * (k % 3 != 0), y0 + 22 * k, steps=3)
        wait_updates_above(page, n)            # redrawn during the stroke, before any release
        seen.append(ellipse(page))
        assert page.get_attribute(ROOT_SEL, "data-drawn") == "1"
    positions = {(round(e["cx"], 1), round(e["cy"], 1)) for e in seen}
    assert len(positions) >= 4, f"the ellipse stayed put during the stroke: {seen}"
    assert all(e["rx"] > 0 and e["ry"] > 0 for e in seen)
    mid = browser_state(page)                   # still mid-stroke: the browser's numbers equal the server's
    side = mid["side"]
    digit = drawing_to_digit(np.asarray(mid["rgba"], np.uint8).reshape(side, side, 4))
    assert np.array_equal(np.asarray(mid["digit"], np.uint8).reshape(28, 28), digit)
    mu, logvar = torch_encode(models["vae_2d"], digit)
    assert np.abs(np.asarray(mid["mu"]) - mu).max() < 1e-4 and np.abs(np.asarray(mid["logvar"]) - logvar).max() < 1e-4
    page.mouse.up()
    wait_idle(page)
    assert [float(v) for v in page.get_attribute(PAD, "data-z").split(",")] == [0.0, 0.0], "nothing was sent"
    assert not exceptions_on(page)


def test_clear_empties_the_views(page, server, models):
    open_decoder(page, server)
    live_ready(page)
    box = settled_box(page, page.locator(CANVAS))
    page.mouse.move(box["x"] + 100, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 110, box["y"] + 200, steps=6)
    page.mouse.up()
    page.get_by_text(re.compile(r"^Latent mean")).wait_for()
    page.locator(".le-root").get_by_role("button", name="Clear").click()
    page.get_by_text("Draw a digit to see how the model reads it.").wait_for()
    assert page.get_attribute(ROOT_SEL, "data-drawn") == "0"
    assert page.get_by_role("button", name=re.compile("Send to the sliders")).is_disabled()


# ----------------------------------------------------------------------------- the same numbers as the server

def test_the_browser_digit_is_the_servers_for_many_shapes(page, server):
    """Ink of many sizes and aspect ratios (tall ones take Pillow 13's vertical-first pass) on a 280 px canvas:
    the browser's port gives drawing_to_digit's 28 x 28 digit to the grey level."""
    open_decoder(page, server)
    live_ready(page)
    rng = np.random.default_rng(0)
    side = 280
    yy, xx = np.mgrid[0:side, 0:side]
    cases = []
    for k in range(30):
        h, w = int(rng.integers(20, 270)), int(rng.integers(20, 270))
        if k % 3 == 0:
            w = int(rng.integers(20, 50))            # tall and thin: a 1
        top, left = int(rng.integers(0, side - h + 1)), int(rng.integers(0, side - w + 1))
        inside = (yy >= top) & (yy < top + h) & (xx >= left) & (xx < left + w)
        ring = np.abs(np.hypot((xx - left - w / 2) / (w / 2), (yy - top - h / 2) / (h / 2)) - 0.8) < 0.2
        grey = np.where(inside & (ring | (rng.random((side, side)) < 0.02)), rng.integers(120, 256, (side, side)), 0)
        grey = np.where(inside & (rng.random((side, side)) < 0.05), rng.integers(0, 60, (side, side)), grey)
        rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1).astype(np.uint8)
        cases.append(rgba)
    # each canvas travels as base64 bytes: as lists of numbers (playwright sends each number as an object of its
    # own) the 30 canvases took this test 295 s at load 10
    got = page.evaluate("""([cases, side, tall]) => cases.map(b64 => window.__latentLabLive.toDigit(
                               Uint8Array.from(atob(b64), ch => ch.charCodeAt(0)), side, side, tall))""",
                        [[base64.b64encode(c.tobytes()).decode("ascii") for c in cases], side, tall_first()])
    for rgba, digit in zip(cases, got):
        want = drawing_to_digit(rgba)
        assert np.array_equal(np.asarray(digit, np.uint8).reshape(28, 28), want)


def conv_fixture():
    model = build_model(ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,), encoder="conv"), seed=3)
    return model.eval()


@pytest.mark.parametrize("which", ["mlp fixture", "label mlp fixture", "conv fixture", "shipped conv"])
def test_the_browser_encoder_equals_torch(page, server, models, which):
    if which == "shipped conv" and not SHIPPED_CONV.is_file():
        pytest.skip("checkpoints/mnist-vae-2d.safetensors is not in this checkout")
    model, label = {"mlp fixture": (models["vae_2d"], None), "label mlp fixture": (models["cvae_label"], 7),
                    "conv fixture": (conv_fixture(), None)}.get(which, (None, None))
    if which == "shipped conv":
        model = load_checkpoint(SHIPPED_CONV)[0]
    payload = encoder_payload(model)
    open_decoder(page, server)
    live_ready(page)
    data_root = Path(os.environ.get("VAE_DATA_DIR", "")) if os.environ.get("VAE_DATA_DIR") else None
    rng = np.random.default_rng(1)
    digits = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    digits[:3] = np.where(rng.random((3, 28, 28)) < 0.8, 0, digits[:3])
    if data_root is not None:
        try:
            from vae_core import load_dataset
            test = load_dataset("mnist", "test", data_root, download=False)
            digits = np.concatenate([digits, test.images[:14].numpy().astype(np.uint8)])
        except Exception:  # noqa: BLE001 - the synthetic fixture data serve as well
            pass
    got = page.evaluate("""([payload, digits, label]) => { window.__latentLabLive.load('eq-test', payload);
        return digits.map(d => window.__latentLabLive.encode('eq-test', d, label)); }""",
                        [payload, digits.reshape(len(digits), -1).tolist(), label])
    for digit, g in zip(digits, got):
        mu, logvar = torch_encode(model, digit, label)
        assert np.abs(np.asarray(g["mu"]) - mu).max() < 1e-4
        assert np.abs(np.asarray(g["logvar"]) - logvar).max() < 1e-4


# ----------------------------------------------------------------------------- send to the sliders

def test_send_to_the_sliders_moves_the_explorer_and_says_so(page, server, models):
    open_decoder(page, server)
    live_ready(page)
    box = settled_box(page, page.locator(CANVAS))
    page.mouse.move(box["x"] + 140, box["y"] + 50)
    page.mouse.down()
    for k in range(24):
        page.mouse.move(box["x"] + 140 + 3 * (k % 4), box["y"] + 50 + 8 * k)
    page.mouse.up()
    page.get_by_text(re.compile(r"^Latent mean")).wait_for()
    mu = browser_state(page)["mu"]
    page.get_by_role("button", name=re.compile("Send to the sliders")).click()
    want = [round(v, 3) for v in mu]           # the browser sends 3 decimals; the server keeps 3 (set_z)
    feedback = "Sent z = (" + ", ".join(f"{v:.2f}" for v in want) + ") to the sliders above."
    page.locator(".le-feedback", has_text=feedback).wait_for(timeout=30_000)
    page.wait_for_function("""([sel, z]) => { const got = (document.querySelector(sel)?.dataset.z || '').split(',');
        return got.length === z.length && z.every((v, i) => Math.abs(+got[i] - v) < 1.5e-3); }""",
                           arg=[PAD, want], timeout=30_000)
    wait_idle(page)
    z = assert_agree(page, models["vae_2d"])
    assert z == pytest.approx(want, abs=1.5e-3)
    assert page.get_attribute(ROOT_SEL, "data-drawn") == "1", "the drawing stays after the send"


# ----------------------------------------------------------------------------- a finger on a phone

def test_a_touch_drag_on_a_phone_draws_and_encodes(browser, server, models):
    """Students may hold tablets and phones: a finger's drag (touch events, which chromium turns into pointer
    events) draws and moves q(z|x) before the finger lifts."""
    context = browser.new_context(viewport={"width": 430, "height": 900}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_page(page, server.url, "decoder")      # the phone's sidebar is folded away: open the page itself
        live_ready(page)
        box = settled_box(page, page.locator(CANVAS))
        cdp = context.new_cdp_session(page)
        x0, y0 = box["x"] + 0.4 * box["width"], box["y"] + 0.2 * box["height"]

        def touch(kind, x, y):
            points = [] if kind == "touchEnd" else [{"x": x, "y": y, "id": 1}]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        touch("touchStart", x0, y0)
        seen = set()
        for k in range(1, 7):
            n = updates(page)
            touch("touchMove", x0 + 6 * k, y0 + 0.1 * box["height"] * k)
            wait_updates_above(page, n)
            e = ellipse(page)
            seen.add((round(e["cx"], 1), round(e["cy"], 1)))
        touch("touchEnd", 0, 0)
        assert page.get_attribute(ROOT_SEL, "data-drawn") == "1"
        assert len(seen) >= 3, "q(z|x) moved while the finger was down"
        assert not exceptions_on(page)
    finally:
        context.close()

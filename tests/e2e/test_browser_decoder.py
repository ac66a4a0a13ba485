"""The explorer in a hand, in chromium: the in-browser decoder (ui/latent_pad.py) on the Decoder and the Latent
map, and the server-side sliders it falls back to.

After each action: no exception box, and the controls (pad ring, role=slider controls, number boxes) and the
picture show the same z; the picture is compared pixel by pixel with LatentModel.decode of that z.
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

from harness import choose_in_picker, exceptions_on, go_to, open_page, picker_value, plot_eval, wait_idle

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ui.decoder_tools import normal_quantiles  # noqa: E402
from vae_core import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.e2e

PAD = ".lp-root"
DIGIT = "canvas[aria-label='Decoded digit']"


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def models(e2e_env):
    """name -> the fixture model the server lists (the same file)."""
    if os.environ.get("LATENT_LAB_E2E_SHIPPED"):   # docs/make_screenshots.py --run: the server lists checkpoints/
        pytest.skip("these tests compare pictures with the tiny fixture models, which LATENT_LAB_E2E_SHIPPED "
                    "replaces by the shipped checkpoints")
    folder = Path(e2e_env["LATENT_LAB_MODEL_DIRS"].split(os.pathsep)[0])
    return {name: load_checkpoint(folder / f"{name}.safetensors")[0] for name in ("vae_2d", "cvae_label")}


# the picker lists models by name; vae_2d's name is shared with a second file (tests/e2e/conftest.py)
PICKER_LABELS = {"vae_2d": "vae_2d (vae_2d)"}


def choose_model(page, name: str) -> None:
    label = PICKER_LABELS.get(name, name)
    if picker_value(page) != label:
        choose_in_picker(page, label)
    wait_idle(page)


def wait_pad_holds(page, server, model: str) -> None:
    """Wait until the pad holds `model`'s file (its data-model is that file's key). The waits after a pick can end
    before the model change's script run has begun (the picker shows the new name at once), and the pad then
    still holds the model before: CI run 13 decoded vae_2d where it meant cvae_label (pixels 0.48 apart)."""
    from ui.latent_pad import model_key

    path = Path(server.env["LATENT_LAB_MODEL_DIRS"].split(os.pathsep)[0]) / f"{model}.safetensors"
    if path.is_file():   # (docs/make_screenshots.py serves the shipped checkpoints under other names)
        page.wait_for_function("([sel, key]) => document.querySelector(sel)?.dataset.model === key",
                               arg=[PAD, model_key(str(path))], timeout=60_000)


def open_decoder(page, server, model: str = "vae_2d", browser: bool = True) -> None:
    open_page(page, server.url)
    go_to(page, "Decoder")
    choose_model(page, model)
    toggle = page.locator(".st-key-browser_decode input")
    if toggle.is_checked() != browser:
        page.get_by_test_id("stSidebar").get_by_text("Decode in the browser").click()
        wait_idle(page)
    if browser:
        page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && r.dataset.frames; }",
                               arg=PAD, timeout=60_000)
        wait_pad_holds(page, server, model)
    else:
        page.get_by_test_id("stSlider").first.wait_for()
    wait_idle(page)


def pad_z(page) -> list[float]:
    return [float(v) for v in page.get_attribute(PAD, "data-z").split(",")]


def frames(page) -> int:
    return int(page.get_attribute(PAD, "data-frames"))


def number_boxes(page, dims: int = 2) -> list[float]:
    return [float(page.get_by_label(f"z{i + 1} exactly").input_value()) for i in range(dims)]


def slider_values(page, dims: int = 2) -> list[float]:
    return [float(page.get_by_role("slider", name=f"z{i + 1}").get_attribute("aria-valuenow")) for i in range(dims)]


def picture(page, selector: str = DIGIT, index: int = 0) -> np.ndarray:
    """The 28 x 28 grey levels drawn on a decoded-digit canvas (each source pixel is a square of it)."""
    values = page.evaluate("""([sel, k]) => { const c = document.querySelectorAll(sel)[k], s = c.width / 28;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, out = [];
        for (let r = 0; r < 28; r++) for (let q = 0; q < 28; q++)
            out.push(d[4 * (Math.floor((r + 0.5) * s) * c.width + Math.floor((q + 0.5) * s))]);
        return out; }""", [selector, index])
    return np.asarray(values, dtype=np.int16).reshape(28, 28)


def expected(model, z, label=None) -> np.ndarray:
    x = None if label is None else torch.tensor([label])
    with torch.no_grad():
        p = model.decode(torch.tensor([z], dtype=torch.float32), x)[0].reshape(28, 28).numpy()
    return (np.clip(p, 0, 1) * 255 + 0.5).astype(np.int16)


def wait_numbers(page, z, dims: int = 2, timeout: float = 30_000) -> None:
    """Wait until the server's number boxes show z (to 3 decimals): the commit made the round trip."""
    page.wait_for_function("""([z]) => z.every((v, i) => {
        const box = document.querySelector(`input[aria-label='z${i + 1} exactly']`);
        return box && Math.abs(parseFloat(box.value) - v) < 6e-4; })""", arg=[list(z)[:dims]], timeout=timeout)
    wait_idle(page)


def assert_agree(page, model, label=None, dims: int = 2) -> list[float]:
    """No exception; pad, sliders, number boxes and picture show one z. Returns it."""
    assert not exceptions_on(page)
    z = pad_z(page)
    assert slider_values(page, dims) == pytest.approx(z, abs=1e-9)
    assert number_boxes(page, dims) == pytest.approx(z, abs=6e-4)
    shown = [float(v) for v in re.findall(r"-?\d+\.\d+", page.get_by_text(re.compile(r"^z = \(")).first.inner_text())]
    assert shown == pytest.approx(z, abs=0.0051)
    assert np.abs(picture(page) - expected(model, z, label)).max() <= 1
    return z


# A picture that is still loading above an element moves it down when it arrives (the Interpolation strip
# above the drawing canvas is fetched after the page run): wait for the main area's pictures, then for two
# equal boxes in a row.
PICTURES_LOADED = """() => [...document.querySelectorAll("[data-testid='stMain'] img")]
    .every(i => i.complete || !i.getAttribute('src'))"""


def settled_box(page, locator) -> dict:
    """The element's box in viewport pixels, once it is in view and the page around it has stopped moving."""
    locator.scroll_into_view_if_needed()
    page.wait_for_function(PICTURES_LOADED)
    box = locator.bounding_box()
    for _ in range(50):
        page.wait_for_timeout(100)
        again = locator.bounding_box()
        if again == box:
            return box
        box = again
    raise AssertionError(f"{locator} kept moving for 5 s")


def pad_point(page, fx: float, fy: float) -> tuple[float, float]:
    """A point of the pad in viewport pixels, once the pad is in view and has stopped moving."""
    box = settled_box(page, page.locator(".lp-pad"))
    return box["x"] + fx * box["width"], box["y"] + fy * box["height"]


# The pad redraws (and writes data-z, data-frames) in the animation frame after a pointer event, not in the
# event itself: a test that read data-z right after page.mouse.click read the z from before the click
# ([0, 0] once in 4 tries at load 6.5), waited for the number boxes to show that old z (at once) and then
# compared them with the new one. This waits until every frame asked for has been drawn.
DRAWN_Z = """async (sel) => {
    const frame = () => new Promise(done => requestAnimationFrame(() => done()));
    let host = document.querySelector(sel);
    while (host && !host.__latentPad) host = host.parentElement;
    await frame();
    for (let k = 0; k < 600 && host && host.__latentPad.pending; k++) await frame();
    return document.querySelector(sel)?.dataset.z; }"""


def drawn_z(page) -> list[float]:
    """The pad's z once the frame of the last pointer or key event has been drawn."""
    return [float(v) for v in page.evaluate(DRAWN_Z, PAD).split(",")]


# ----------------------------------------------------------------------------- equality with LatentModel.decode

@pytest.mark.parametrize("name, label", [("vae_2d", None), ("cvae_label", 6)])
def test_the_browser_decodes_like_the_model(page, server, models, name, label):
    open_decoder(page, server, name)
    key = page.get_attribute(PAD, "data-model")
    rng = np.random.default_rng(0)
    zs = rng.normal(0, 1.5, (25, 2)).astype(np.float32)
    got = np.asarray(page.evaluate("([key, zs, label]) => zs.map(z => window.__latentLab.decode(key, z, label))",
                                   [key, zs.tolist(), label]))
    with torch.no_grad():
        want = models[name].decode(torch.from_numpy(zs), None if label is None else torch.full((25,), label)).numpy()
    assert got.shape == want.shape == (25, 784)
    assert np.abs(got - want).max() < 1e-4


def test_float16_weights_decode_as_their_values_say(page, server, models):
    """Large decoders travel as float16 (ui/latent_pad.FLOAT32_MAX_WEIGHTS): the browser's half-float reading
    gives what numpy gets from the same bytes, and stays close to the float32 model."""
    from ui.latent_pad import decoder_payload
    payload = decoder_payload(models["cvae_label"], dtype="float16")
    open_decoder(page, server)
    zs = np.random.default_rng(1).normal(0, 1.5, (10, 2)).astype(np.float32)
    got = np.asarray(page.evaluate("""([w, zs]) => { window.__latentLab.load('f16-test', w);
        return zs.map((z, k) => window.__latentLab.decode('f16-test', z, k % 10)); }""", [payload, zs.tolist()]))
    x = np.zeros((10, 12))
    x[np.arange(10), np.arange(10)] = 1
    x[:, 10:] = zs
    for layer in payload["layers"]:
        w = np.frombuffer(base64.b64decode(layer["w"]), np.float16).astype(np.float64).reshape(layer["shape"])
        b = np.frombuffer(base64.b64decode(layer["b"]), np.float16).astype(np.float64)
        x = x @ w.T + b
        x = np.maximum(x, 0) if layer["act"] == "relu" else x
    assert np.abs(got - 1 / (1 + np.exp(-x))).max() < 1e-9
    with torch.no_grad():
        want = models["cvae_label"].decode(torch.from_numpy(zs), torch.arange(10)).numpy()
    assert np.abs(got - want).max() < 2e-2


# ----------------------------------------------------------------------------- the pad, the sliders, the keys

def test_a_drag_redraws_before_release_and_the_release_commits(page, server, models):
    open_decoder(page, server)
    assert_agree(page, models["vae_2d"])
    start = picture(page)
    page.mouse.move(*pad_point(page, 0.5, 0.5))
    page.mouse.down()
    seen = [start]
    for k in range(1, 6):
        before = frames(page)
        page.mouse.move(*pad_point(page, 0.5 + 0.07 * k, 0.5 - 0.06 * k), steps=2)
        z = drawn_z(page)                 # the end of this move drawn, not a frame between its two events
        assert frames(page) > before
        now = picture(page)
        assert np.abs(now - expected(models["vae_2d"], z)).max() <= 1   # the picture is of the pad's z
        seen.append(now)
        assert number_boxes(page) == [0.0, 0.0], "nothing is sent to the server before the release"
    assert sum(not np.array_equal(a, b) for a, b in zip(seen, seen[1:])) >= 4, "the digit changed during the drag"
    assert z[0] > 0.3 and z[1] > 0.3
    page.mouse.up()
    wait_numbers(page, z)
    assert_agree(page, models["vae_2d"]) == pytest.approx(z)


def test_arrow_keys_on_the_sliders_step_the_digit_and_commit(page, server, models):
    open_decoder(page, server)
    z1 = page.get_by_role("slider", name="z1")
    z1.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    wait_numbers(page, [0.2, 0.0])
    assert assert_agree(page, models["vae_2d"]) == pytest.approx([0.2, 0.0])
    page.get_by_role("slider", name="z2").focus()
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("ArrowUp")
    wait_numbers(page, [0.2, -0.45])
    assert assert_agree(page, models["vae_2d"]) == pytest.approx([0.2, -0.45])
    page.locator(".lp-pad").focus()                     # the pad takes arrows too: left/right z1, up/down z2
    page.keyboard.press("ArrowLeft")
    wait_numbers(page, [0.15, -0.45])
    assert_agree(page, models["vae_2d"])


def test_a_click_on_a_manifold_cell_moves_z_there(page, server, models):
    open_decoder(page, server)
    cells = 15
    q = normal_quantiles(cells)
    for col, row in ((3, 10), (12, 1)):
        page.mouse.click(*pad_point(page, (col + 0.5) / cells, (row + 0.5) / cells))
        want = [round(float(q[col]), 3), round(float(q[::-1][row]), 3)]
        wait_numbers(page, want)
        assert assert_agree(page, models["vae_2d"]) == pytest.approx(want, abs=2e-3)
        ring = page.locator(".lp-marker").evaluate("m => [parseFloat(m.style.left), parseFloat(m.style.top)]")
        assert ring == pytest.approx([100 * (col + 0.5) / cells, 100 * (row + 0.5) / cells], abs=0.3)


def test_typed_numbers_move_the_pad_and_a_far_one_widens_the_sliders_with_a_note(page, server, models):
    open_decoder(page, server)
    box = page.get_by_label("z1 exactly")
    box.fill("-1.25")
    box.press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.z === '-1.25,0'", arg=PAD)
    wait_idle(page)
    assert assert_agree(page, models["vae_2d"]) == [-1.25, 0.0]
    box = page.get_by_label("z2 exactly")
    box.fill("7.5")
    box.press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.z === '-1.25,7.5'", arg=PAD)
    wait_idle(page)
    assert assert_agree(page, models["vae_2d"]) == [-1.25, 7.5]
    assert float(page.get_by_role("slider", name="z2").get_attribute("aria-valuemax")) >= 7.5
    page.get_by_text("The sliders now span -3 to 7.5 (usually -3 to 3) to hold z2 = 7.50.").wait_for()
    assert "z2 = 7.50 lies beyond the pad's edge" in page.locator(".lp-note").inner_text()


def draw_a_stroke(page) -> None:
    page.get_by_role("heading", name="Draw a digit").scroll_into_view_if_needed()
    canvas = page.locator(".st-key-decoder_canvas canvas").last
    canvas.wait_for()
    box = settled_box(page, canvas)
    page.mouse.move(box["x"] + 140, box["y"] + 50)
    page.mouse.down()
    for k in range(24):
        page.mouse.move(box["x"] + 140 + 3 * (k % 4), box["y"] + 50 + 8 * k)
    page.mouse.up()


def test_a_label_model_decodes_the_chosen_class(page, server, models):
    open_decoder(page, server, "cvae_label")
    page.locator(".st-key-decoder_label").get_by_text("3", exact=True).click()
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.frames > 1", arg=PAD)
    wait_idle(page)
    assert_agree(page, models["cvae_label"], label=3)
    before = pad_z(page)
    page.mouse.click(*pad_point(page, 0.3, 0.7))
    z = drawn_z(page)
    assert z != before
    wait_numbers(page, z)
    assert_agree(page, models["cvae_label"], label=3)


def test_weights_the_browser_lost_are_sent_again(page, server, models):
    open_decoder(page, server)
    page.evaluate("() => { globalThis.__latentLabDecoders.clear(); globalThis.__latentLabPictures.clear(); }")
    box = page.get_by_label("z1 exactly")
    box.fill("0.5")
    box.press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.z === '0.5,0'", arg=PAD, timeout=30_000)
    wait_idle(page)
    assert assert_agree(page, models["vae_2d"]) == [0.5, 0.0]
    assert page.locator(".lp-padimg").evaluate("i => i.complete && i.naturalWidth > 0")


def test_commit_sends_few_bytes(page, server, models):
    """The weights travel once: a commit's websocket frames hold the fragment's update, not the decoder."""
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(len(payload))))
    open_decoder(page, server)
    first = sum(received)
    assert first > 40_000                                   # the page, the weights, the manifold picture
    received.clear()
    page.mouse.click(*pad_point(page, 0.7, 0.3))
    wait_numbers(page, drawn_z(page))
    assert 0 < sum(received) < 40_000, f"{sum(received)} bytes after a commit"


# ----------------------------------------------------------------------------- the server-side fallback

def test_server_sliders_grid_click_send_and_typing_agree(page, server, models):
    """The fallback (Decode in the browser off): a grid click raised KeyError: 0; Send to the sliders left the
    sliders at 0.00; typing 7.5 pinned the slider at 3.00."""
    open_decoder(page, server, browser=False)
    caption = lambda: page.get_by_text(re.compile(r"^z = \(")).first.inner_text()  # noqa: E731
    thumbs = lambda: [float(t.inner_text()) for t in page.get_by_test_id("stSliderThumbValue").all()[:2]]  # noqa: E731
    gd = "[class*='st-key-decoder_grid_'] .js-plotly-plot"
    page.locator(gd).first.wait_for()
    x, y = plot_eval(page, "document.querySelector(arg)", """(gd) => { const L = gd._fullLayout,
        t = gd._fullData[0], r = gd.getBoundingClientRect(), i = 3 * 15 + 10;
        return [r.left + L.xaxis._offset + L.xaxis.l2p(t.x[i]), r.top + L.yaxis._offset + L.yaxis.l2p(t.y[i])]; }""", gd)
    page.mouse.click(x, y)
    q = normal_quantiles(15)
    want = [round(float(q[10]), 2), round(float(q[::-1][3]), 2)]   # column 10, row 3 from the top
    page.get_by_text("z = (" + ", ".join(f"{v:.2f}" for v in want) + ")", exact=True).wait_for(timeout=30_000)
    wait_idle(page)
    assert not exceptions_on(page)
    assert thumbs() == pytest.approx(want) and number_boxes(page) == pytest.approx(want, abs=6e-3)

    draw_a_stroke(page)
    send = page.get_by_role("button", name=re.compile("Send to the sliders"))
    send.wait_for(timeout=30_000)
    mu = [float(v) for v in re.findall(r"-?\d+\.\d+", page.get_by_text(re.compile(r"^Latent mean")).first
                                       .inner_text().splitlines()[0])]
    send.click()
    page.get_by_text("z = (" + ", ".join(f"{v:.2f}" for v in mu) + ")", exact=True).wait_for(timeout=30_000)
    wait_idle(page)
    assert not exceptions_on(page)
    assert thumbs() == pytest.approx(mu, abs=0.006) and number_boxes(page) == pytest.approx(mu, abs=0.006)

    box = page.get_by_label("z2 exactly")
    box.fill("7.5")
    box.press("Enter")
    page.get_by_text(re.compile("^The sliders now span .* to hold z2 = 7.50.$")).wait_for(timeout=30_000)
    wait_idle(page)
    assert caption() == f"z = ({mu[0]:.2f}, 7.50)"
    assert thumbs() == pytest.approx([mu[0], 7.5], abs=0.006)
    assert not exceptions_on(page)


# ----------------------------------------------------------------------------- the Latent map

def test_hovering_the_latent_map_decodes_under_the_cursor(page, server, models):
    open_page(page, server.url)
    go_to(page, "Latent map")
    choose_model(page, "vae_2d")
    gd = ".st-key-latent_map_chart .js-plotly-plot"
    page.locator(gd).first.wait_for()
    page.wait_for_function("(sel) => { const g = document.querySelector(sel); return g && g._fullLayout && "
                           "g._fullData && g._fullData.length; }", arg=gd)
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && r.dataset.model; }",
                           arg=PAD, timeout=60_000)
    wait_idle(page)
    for fx, fy in ((0.3, 0.4), (0.6, 0.7), (0.45, 0.2)):
        target = plot_eval(page, "document.querySelector(arg[0])", """(g, [sel, fx, fy]) => { const L = g._fullLayout,
            r = g.getBoundingClientRect(), px = fx * L.xaxis._length, py = fy * L.yaxis._length;
            return [r.left + L.xaxis._offset + px, r.top + L.yaxis._offset + py, L.xaxis.p2l(px), L.yaxis.p2l(py)]; }""",
                           [gd, fx, fy])
        before = int(page.get_attribute(PAD, "data-frames") or 0)
        page.mouse.move(target[0], target[1])
        page.wait_for_function("([sel, n]) => +document.querySelector(sel)?.dataset.frames > n", arg=[PAD, before])
        z = pad_z(page)
        assert z == pytest.approx(target[2:], abs=0.02)
        hover = "canvas[aria-label='Decoded digit']"
        assert np.abs(picture(page, hover) - expected(models["vae_2d"], z)).max() <= 2
        assert page.get_by_text(re.compile(r"^Under the cursor: z = \(")).inner_text().startswith(
            f"Under the cursor: z = ({z[0]:.2f}")
    assert not exceptions_on(page)

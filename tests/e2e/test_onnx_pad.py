"""The latent pad (ui/latent_pad.py) with decoders only ONNX can bring, in chromium: a small convolutional VAE
defined here (tests/e2e/onnx_models.py), its decoder exported with torch.onnx.export(dynamo=False) and decoded
in the browser by ONNX Runtime Web, which the app serves itself (static/ort/).

Until the pages list imported models, the pad is shown by a test-only app (tests/e2e/pad_app.py) that mounts
it with a model named in the URL; the pages' own use of the same calls is checked in tests/app/test_latent_pad.py.
"""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

from apptest_helpers import FIXTURE_MODELS, shared_data_root, train_fixture_model
from harness import exceptions_on, wait_idle
from onnx_models import ConvVAE, export_decoder, pad_app_server, save_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ui.decoder_tools import normal_quantiles  # noqa: E402
from ui.ort_web import MODULE, WASM  # noqa: E402
from vae_core import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.e2e

PAD = ".lp-root"
DIGIT = "canvas[aria-label='Decoded digit']"
# name -> the VAE whose decoder the pad app serves as NAME.onnx
VAES = {"conv": dict(latent_dim=2, seed=1),
        "conv_label": dict(latent_dim=2, classes=10, seed=2),              # z and the one-hot label: two inputs
        "conv_concat": dict(latent_dim=2, classes=10, concat=True, seed=3),  # one input: one-hot, then z
        "conv_3d": dict(latent_dim=3, seed=4),
        "conv_probs": dict(latent_dim=2, seed=5)}                           # the sigmoid inside the graph


@pytest.fixture(scope="module")
def vaes(browser_reason, tmp_path_factory):
    """name -> the VAE; their decoders are exported to a folder the pad app serves (plus a broken spec)."""
    folder = tmp_path_factory.mktemp("onnx_models")
    out = {}
    for name, kw in VAES.items():
        out[name] = ConvVAE(**kw).eval()
        save_onnx(folder, name, export_decoder(out[name], probabilities=name == "conv_probs"))
    graph, spec = export_decoder(out["conv"])
    save_onnx(folder, "wrong_size", (graph, {**spec, "image_size": 20}))   # 784 values per image, not 400
    with torch.random.fork_rng(devices=[]):   # and a Latent Lab MLP checkpoint: the hand-written path
        train_fixture_model("mlp", FIXTURE_MODELS["vae_2d"], shared_data_root(tmp_path_factory),
                            folder)
    out["mlp"] = load_checkpoint(folder / "mlp.safetensors")[0]
    out["folder"] = folder
    return out


@pytest.fixture(scope="module")
def pad_server(vaes, tmp_path_factory):
    with pad_app_server(vaes["folder"], tmp_path_factory.mktemp("pad_app")) as server:
        yield server


@pytest.fixture
def new_page(browser, request):
    """new_page(**context options) -> a tab in a fresh context, closed after the test."""
    contexts = []

    def make(**options):
        context = browser.new_context(**{"viewport": {"width": 1200, "height": 900}, **options})
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        return tab

    yield make
    for context in contexts:
        context.close()


def open_pad(page, server, model: str, mode: str = "pad", label: int | None = None) -> None:
    query = f"?model={model}&mode={mode}" + (f"&label={label}" if label is not None else "")
    page.goto(f"{server.url}/{query}", wait_until="domcontentloaded")
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && +r.dataset.frames > 0 }"
                           if mode != "hover" else
                           "(sel) => { const r = document.querySelector(sel); return r && r.dataset.engine }",
                           arg=PAD, timeout=90_000)
    wait_idle(page)


# The frame of the last pointer event is drawn: no animation frame asked for, no ONNX decode running or waiting.
SETTLED = """async (sel) => {
    const frame = () => new Promise(done => requestAnimationFrame(() => done()));
    let host = document.querySelector(sel);
    while (host && !host.__latentPad) host = host.parentElement;
    await frame();
    for (let k = 0; k < 3000 && host.__latentPad.busy; k++) await frame();
    return host.__latentPad.busy ? null : document.querySelector(sel)?.dataset.z; }"""


def drawn_z(page) -> list[float]:
    z = page.evaluate(SETTLED, PAD)
    assert z is not None, "the pad was still decoding after 3,000 animation frames"
    return [float(v) for v in z.split(",")]


def frames(page) -> int:
    return int(page.get_attribute(PAD, "data-frames") or 0)


def picture(page, index: int = 0) -> np.ndarray:
    """The 28 x 28 grey levels drawn on a decoded-digit canvas."""
    values = page.evaluate("""([sel, k]) => { const c = document.querySelectorAll(sel)[k], s = c.width / 28;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, out = [];
        for (let r = 0; r < 28; r++) for (let q = 0; q < 28; q++)
            out.push(d[4 * (Math.floor((r + 0.5) * s) * c.width + Math.floor((q + 0.5) * s))]);
        return out; }""", [DIGIT, index])
    return np.asarray(values, dtype=np.int16).reshape(28, 28)


def server_decode(vae: ConvVAE, zs, labels=None) -> np.ndarray:
    zs = torch.as_tensor(np.asarray(zs, dtype=np.float32)).reshape(-1, vae.latent_dim)
    onehot = None
    if vae.classes:
        onehot = torch.nn.functional.one_hot(torch.as_tensor(labels), vae.classes).float()
    with torch.no_grad():
        return vae.decode(zs, onehot).numpy()


def mlp_decode(model, z) -> np.ndarray:
    with torch.no_grad():
        return model.decode(torch.tensor([z], dtype=torch.float32))[0].numpy()


def grey(probs: np.ndarray) -> np.ndarray:
    return (np.clip(probs, 0, 1) * 255 + 0.5).astype(np.int16).reshape(28, 28)


def pad_point(page, fx: float, fy: float) -> tuple[float, float]:
    box = page.locator(".lp-pad").bounding_box()
    return box["x"] + fx * box["width"], box["y"] + fy * box["height"]


def committed(page) -> list[float]:
    text = page.get_by_text("Committed z = (").inner_text()
    return [float(v) for v in text.split("(")[1].rstrip(")").split(",")]


# ----------------------------------------------------------------------------- equality with the server

@pytest.mark.parametrize("name, label", [("conv", None), ("conv_label", 6), ("conv_concat", 3), ("conv_3d", None),
                                         ("conv_probs", None)])
def test_the_browser_decodes_like_the_server(new_page, pad_server, vaes, name, label):
    """ONNX Runtime Web in chromium gives the server's pixels (torch, and onnxruntime on the same graph)
    within 1e-4 for random z, for each way a decoder takes its label; the canvas shows the pad's z."""
    import onnxruntime
    page = new_page()
    open_pad(page, pad_server, name, mode="pad" if vaes[name].latent_dim == 2 else "sliders", label=label)
    assert page.get_attribute(PAD, "data-engine") == "onnx"
    key = page.get_attribute(PAD, "data-model")
    vae = vaes[name]
    zs = np.random.default_rng(0).normal(0, 1.5, (25, vae.latent_dim)).astype(np.float32)
    got = np.asarray(page.evaluate("([key, zs, label]) => window.__latentLab.decodeBatch(key, zs, label)",
                                   [key, zs.tolist(), label]))
    want = server_decode(vae, zs, [label] * 25)
    assert got.shape == want.shape == (25, 784)
    assert np.abs(got - want).max() < 1e-4
    session = onnxruntime.InferenceSession((vaes["folder"] / f"{name}.onnx").read_bytes())
    feeds = {"z": zs} if not vae.classes else (
        {"label_z": np.concatenate([np.eye(10, dtype=np.float32)[[label] * 25], zs], axis=1)} if vae.concat else
        {"z": zs, "label": np.eye(10, dtype=np.float32)[[label] * 25]})
    out = session.run(["logits"], feeds)[0].astype(np.float64)
    onnx_probs = out if name == "conv_probs" else 1 / (1 + np.exp(-out))
    assert np.abs(got - onnx_probs).max() < 1e-4
    z = drawn_z(page)
    assert np.abs(picture(page) - grey(server_decode(vae, [z], [label])[0])).max() <= 1
    assert not exceptions_on(page)


# ----------------------------------------------------------------------------- the pad in a hand

def test_a_drag_redraws_before_release_and_the_release_commits(new_page, pad_server, vaes):
    page = new_page()
    open_pad(page, pad_server, "conv")
    vae = vaes["conv"]
    page.mouse.move(*pad_point(page, 0.5, 0.5))
    page.mouse.down()
    seen = [picture(page)]
    for k in range(1, 6):
        before = frames(page)
        page.mouse.move(*pad_point(page, 0.5 + 0.07 * k, 0.5 - 0.06 * k), steps=3)
        z = drawn_z(page)                      # the end of this move drawn (frames in between may be dropped)
        assert frames(page) > before
        now = picture(page)
        assert np.abs(now - grey(server_decode(vae, [z])[0])).max() <= 1, "the picture is of the pad's z"
        seen.append(now)
        assert committed(page) == [0.0, 0.0], "nothing is sent to the server before the release"
    assert sum(not np.array_equal(a, b) for a, b in zip(seen, seen[1:])) >= 4, "the digit changed during the drag"
    assert z[0] > 0.3 and z[1] > 0.3
    page.mouse.up()
    page.wait_for_function("(want) => [...document.querySelectorAll('p')].some(p => p.innerText === want)",
                           arg="Committed z = (" + ", ".join(f"{v:.3f}" for v in z) + ")", timeout=60_000)
    wait_idle(page)
    assert drawn_z(page) == z
    assert np.abs(picture(page) - grey(server_decode(vae, [z])[0])).max() <= 1
    assert not exceptions_on(page)


# Counts ONNX Runtime Web's inferences in the page and the most that ran at once; each one is made to last
# `delay` ms longer, a decoder slower than the pointer.
SLOW_RUNS = """async (delay) => { const ort = await globalThis.__latentLabOrt, proto = ort.InferenceSession.prototype;
    window.__runs = {started: 0, running: 0, most: 0};
    if (!proto.__run) { proto.__run = proto.run;
        proto.run = async function (...args) { const r = window.__runs; r.started++; r.running++;
            r.most = Math.max(r.most, r.running);
            try { await new Promise(done => setTimeout(done, delay)); return await this.__run(...args); }
            finally { r.running--; } }; }
    return true; }"""


def test_a_decoder_slower_than_the_pointer_drops_frames_and_ends_on_the_last_z(new_page, pad_server, vaes):
    """Pointer moves come faster than the decoder ends (each inference made 200 ms long): the frames in between
    are dropped, never queued; one inference runs at a time; the picture ends on the z of the last move."""
    page = new_page()
    open_pad(page, pad_server, "conv")
    page.evaluate(SLOW_RUNS, 200)
    page.mouse.move(*pad_point(page, 0.2, 0.2))
    page.mouse.down()
    moves = 0
    for k in range(1, 7):
        page.mouse.move(*pad_point(page, 0.2 + 0.1 * k, 0.2 + 0.05 * k * (k % 2)), steps=25)
        moves += 25
    z = drawn_z(page)
    runs = page.evaluate("() => window.__runs")
    assert runs["most"] == 1 and runs["running"] == 0
    assert 2 <= runs["started"] <= moves // 2, f"{runs['started']} inferences for {moves} pointer moves"
    last = page.evaluate("""(sel) => { let h = document.querySelector(sel);
        while (h && !h.__latentPad) h = h.parentElement; return h.__latentPad.z; }""", PAD)
    assert z == last and z[0] > 0.5, "the picture shows the z of the last pointer move"
    assert np.abs(picture(page) - grey(server_decode(vaes["conv"], [z])[0])).max() <= 1
    page.mouse.up()


def test_a_click_on_a_cell_and_arrow_keys_move_z(new_page, pad_server, vaes):
    page = new_page()
    open_pad(page, pad_server, "conv")
    cells = 15
    q = normal_quantiles(cells)
    page.mouse.click(*pad_point(page, 3.5 / cells, 10.5 / cells))
    want = [round(float(q[3]), 3), round(float(q[::-1][10]), 3)]
    assert drawn_z(page) == pytest.approx(want, abs=2e-3)
    z1 = page.get_by_role("slider", name="z1")
    z1.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    z = drawn_z(page)
    assert z[0] == pytest.approx(want[0] + 0.15, abs=2e-3)
    assert float(z1.get_attribute("aria-valuenow")) == z[0]
    assert np.abs(picture(page) - grey(server_decode(vaes["conv"], [z])[0])).max() <= 1


def test_the_runtime_comes_from_the_apps_own_server_and_only_for_onnx(new_page, pad_server, vaes):
    page = new_page()
    requests, responses = [], {}
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: responses.setdefault(urlparse(r.url).path, (r.status, r.headers)))
    open_pad(page, pad_server, "conv")
    own = urlparse(pad_server.url).netloc
    foreign = [u for u in requests if urlparse(u).scheme not in ("blob", "data") and urlparse(u).netloc != own]
    assert not foreign, f"requests to other hosts: {foreign}"
    for name in (MODULE, WASM + ".gz"):
        status, headers = responses[f"/app/static/ort/{name}"]
        assert status == 200, name
    # a module script needs a JavaScript MIME type (the .wasm.gz is inflated in the page: its type is free)
    assert responses[f"/app/static/ort/{MODULE}"][1]["content-type"].split(";")[0] in (
        "text/javascript", "application/javascript")
    assert not any(u.endswith(".wasm") for u in requests), "the uncompressed wasm is never asked for"
    # an MLP decoder keeps the hand-written path: the runtime is not loaded at all
    requests.clear()
    open_pad(page, pad_server, "mlp")
    assert page.get_attribute(PAD, "data-engine") == "mlp"
    assert not [u for u in requests if "/app/static/ort/" in u]
    assert np.abs(picture(page) - grey(mlp_decode(vaes["mlp"], drawn_z(page)))).max() <= 1


def test_hovering_a_map_decodes_every_class_under_the_cursor(new_page, pad_server, vaes):
    page = new_page()
    open_pad(page, pad_server, "conv_label", mode="hover")
    gd = ".st-key-pad_chart .js-plotly-plot"
    page.wait_for_function("(sel) => { const g = document.querySelector(sel); return g && g._fullLayout; }", arg=gd)
    vae = vaes["conv_label"]
    for fx, fy in ((0.3, 0.4), (0.7, 0.6)):
        x, y, z1, z2 = page.evaluate("""([sel, fx, fy]) => { const g = document.querySelector(sel), L = g._fullLayout,
            r = g.getBoundingClientRect(), px = fx * L.xaxis._length, py = fy * L.yaxis._length;
            return [r.left + L.xaxis._offset + px, r.top + L.yaxis._offset + py, L.xaxis.p2l(px), L.yaxis.p2l(py)]; }""",
                                     [gd, fx, fy])
        before = frames(page)
        page.mouse.move(x, y)
        page.wait_for_function("([sel, n]) => +document.querySelector(sel)?.dataset.frames > n", arg=[PAD, before])
        z = drawn_z(page)
        assert z == pytest.approx([z1, z2], abs=0.02)
        probs = server_decode(vae, [z] * 10, list(range(10)))
        for k in range(10):
            canvas = page.locator("canvas[aria-label='Decoded digit, class %d']" % k)
            got = np.asarray(canvas.evaluate("""c => { const s = c.width / 28, out = [],
                d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let r = 0; r < 28; r++) for (let q = 0; q < 28; q++)
                    out.push(d[4 * (Math.floor((r + 0.5) * s) * c.width + Math.floor((q + 0.5) * s))]);
                return out; }"""), dtype=np.int16).reshape(28, 28)
            assert np.abs(got - grey(probs[k])).max() <= 1, f"class {k}"
    assert not exceptions_on(page)


def test_a_decoder_the_browser_cannot_run_is_a_sentence(new_page, pad_server):
    """A spec that does not fit its graph (20 x 20 images from a graph that draws 28 x 28): the browser reports
    it, and the page says why in one sentence instead of showing a wrong picture."""
    page = new_page()
    page.goto(f"{pad_server.url}/?model=wrong_size&mode=pad", wait_until="domcontentloaded")
    page.get_by_text("because the browser could not run this model's ONNX decoder").wait_for(timeout=90_000)
    text = page.get_by_test_id("stAlert").inner_text()
    assert "gives 784 values per image, not 400 (20 x 20)" in text
    assert not exceptions_on(page)


def test_a_touch_drag_on_a_phone(new_page, pad_server, vaes):
    page = new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)
    open_pad(page, pad_server, "conv")
    page.locator(".lp-pad").scroll_into_view_if_needed()
    cdp = page.context.new_cdp_session(page)
    touch = lambda kind, pts: cdp.send("Input.dispatchTouchEvent",  # noqa: E731
                                       {"type": kind, "touchPoints": [{"x": x, "y": y} for x, y in pts]})
    touch("touchStart", [pad_point(page, 0.5, 0.5)])
    before, pictures = frames(page), [picture(page)]
    for k in range(1, 5):
        touch("touchMove", [pad_point(page, 0.5 - 0.08 * k, 0.5 + 0.07 * k)])
        z = drawn_z(page)
        pictures.append(picture(page))
        assert committed(page) == [0.0, 0.0]
    assert frames(page) > before and z[0] < -0.3 and z[1] < -0.3
    assert sum(not np.array_equal(a, b) for a, b in zip(pictures, pictures[1:])) >= 3
    touch("touchEnd", [])
    page.wait_for_function("(want) => [...document.querySelectorAll('p')].some(p => p.innerText === want)",
                           arg="Committed z = (" + ", ".join(f"{v:.3f}" for v in z) + ")", timeout=60_000)
    assert np.abs(picture(page) - grey(server_decode(vaes["conv"], [z])[0])).max() <= 1
    assert not exceptions_on(page)

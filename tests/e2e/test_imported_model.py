"""A model trained by other code, by hand in chromium (issue 20): pick the imported model in the sidebar, click
points of its Latent map; on the Decoder, the browser pad decodes its ONNX decoder graph as the server does; then
drag the Decoder's server-side sliders and type exact numbers. No exception may show, and the controls and the
picture must agree after each action.

Its own server on a folder of two imported models: a small convolutional VAE that follows the protocol of
vae_core/external.py (carried as ONNX graphs, decoded on the server by ONNX Runtime) and a PyTorch
examples-style fc VAE mapped onto Latent Lab's model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apptest_helpers import shared_data_root
from harness import VIEWPORT, PICKER, choose_in_picker, exceptions_on, go_to, open_page, option_texts, streamlit_server
from reference_vaes import FcVAE, TinyConvVAE, fc_loss, train_a_few_steps, trained
from test_hand_walk import MAIN, Hand, chart_point, decoder_agrees, latent_map_agrees
from ui import decoder_tools as dt
from vae_core import load_checkpoint, load_dataset
from vae_core.importers import map_file, onnx_model, save_imported, source_of

pytestmark = pytest.mark.e2e

ONNX_NAME = "conv VAE from elsewhere"
PAD = ".lp-root"


@pytest.fixture(scope="module")
def imported_server(browser_reason, tmp_path_factory):
    data_root = shared_data_root(tmp_path_factory)
    test = load_dataset("mnist", "test", data_root, download=False)
    folder = tmp_path_factory.mktemp("imported_models")
    with torch.random.fork_rng(devices=[]):
        conv = onnx_model(trained(TinyConvVAE()))
        save_imported(conv, source_of("onnx", None, "TinyConvVAE"), folder / "conv.safetensors", name=ONNX_NAME,
                      test=test, eval_samples=0)
        weights = tmp_path_factory.mktemp("src") / "vae.pt"
        torch.save(train_a_few_steps(FcVAE(64, 2), fc_loss).state_dict(), weights)
        model, source, description = map_file("fc-vae", weights)
        save_imported(model, source, folder / "fc.safetensors", name="fc VAE from elsewhere", test=test, eval_samples=0)
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with streamlit_server({"LATENT_LAB_MODEL_DIRS": str(folder), "VAE_DATA_DIR": str(data_root)}, log=log) as server:
        server.folder = folder
        yield server


@pytest.fixture
def tab(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def test_pick_the_imported_model_and_use_the_latent_map_and_the_server_sliders_by_hand(tab, imported_server):
    page = tab
    open_page(page, imported_server.url)
    go_to(page, "Latent map")
    label = f"{ONNX_NAME} · imported"
    assert label in option_texts(page, page.locator(PICKER).first)
    choose_in_picker(page, label)
    hand = Hand(page, latent_map_agrees)
    hand.after("pick the imported model", rerun=False)
    assert "imported from Python (PyTorch code, as ONNX graphs)" in page.locator("[data-testid='stSidebar']").inner_text()
    panel_js = ("() => { const m = document.querySelector(\"[data-testid='stMain']\").innerText.match(/Test image #(\\d+)/);"
                " return m ? m[1] : null; }")
    for trace, point in ((0, 0), (1, 2)):
        before = page.evaluate(panel_js)
        x, y = chart_point(page, 0, trace, point)
        page.mouse.click(x, y)
        page.wait_for_function(f"(before) => {{ const now = ({panel_js})(); return now !== null && now !== before; }}",
                               arg=before)
        hand.after(f"click map point {trace}/{point}")
    page.get_by_text("its reconstruction").first.wait_for()   # decoded by ONNX Runtime on the server

    go_to(page, "Decoder")
    hand = Hand(page, decoder_agrees)
    hand.after("open the Decoder", rerun=False)
    assert page.locator(PICKER).first.input_value() == label      # the choice holds across pages
    # decoded in the browser first: the pad runs the checkpoint's decoder graph in ONNX Runtime Web, as the server does
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && +r.dataset.frames > 0 }",
                           arg=PAD, timeout=90_000)
    assert page.get_attribute(PAD, "data-engine") == "onnx"
    zs = np.random.default_rng(0).normal(0, 1.5, (16, 2)).astype(np.float32)
    got = np.asarray(page.evaluate("([key, zs]) => window.__latentLab.decodeBatch(key, zs, null)",
                                   [page.get_attribute(PAD, "data-model"), zs.tolist()]))
    model, _ = load_checkpoint(imported_server.folder / "conv.safetensors")
    assert np.abs(got - model.decode(torch.from_numpy(zs)).numpy()).max() < 1e-4
    # then by the server's sliders
    page.locator("[data-testid='stSidebar'] [data-testid='stCheckbox'] label", has_text="Decode in the browser").click()
    page.get_by_text("Decoded image").wait_for()
    hand.after("decode on the server", rerun=False)
    caption = page.locator(f"{MAIN} [data-testid='stImage']").first
    for k in range(2):
        before = caption.inner_text()
        hand.drag_slider(page.locator(f".st-key-{dt.slider_key(k)} input[type=range]"), f"drag z{k + 1}", dx=60)
        assert caption.inner_text() != before, "dragging a slider moves the decoded digit"
    box = page.locator(f"{MAIN} input[type=number]").first
    hand.type_number(box, -1.25, "type -1.25 into z1")
    assert caption.inner_text().startswith("z = (-1.25")
    assert not exceptions_on(page)

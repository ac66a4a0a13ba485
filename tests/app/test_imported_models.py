"""Models trained by other code, in every page (AppTest from app.py): one of each importer (fc1/fc21/fc22/fc3/fc4,
timbmg's label CVAE, a Keras HDF5 VAE: mapped onto LatentModel) and two protocol models carried as ONNX graphs (a
small convolutional VAE and a label CVAE). Each appears in the pickers with where it came from, and Home, the
Latent map, the Decoder (server sliders), every Diagnose tab and Compare open it without an exception. A file
whose graph is hostile is one sentence in the page."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from apptest_helpers import errors_of, texts_of
from onnx import helper
from reference_vaes import (FcVAE, SeedKerasVAE, TimbmgVAE, TinyConvVAE, TinyLabelVAE, decoder_graph, fc_loss,
                            keras_loss, timbmg_loss, train_a_few_steps, trained, write_keras_h5, write_onnx_checkpoint)
from ui import decoder_tools as dt
from ui import latent_pad as lp
from vae_core import load_checkpoint, load_dataset
from vae_core.external import export_graphs
from vae_core.importers import map_file, onnx_model, save_imported, source_of

TABS = ["Posterior collapse", "Aggregate posterior", "Per-example losses", "Likelihood estimate",
        "Training history", "Two checkpoints", "p(z|x) vs q(z|x,y)"]
HISTORY = {"step": [10, 20, 30], "loss": [250.0, 220.0, 200.0], "recon": [240.0, 210.0, 190.0],
           "kl": [10.0, 10.0, 10.0], "epochs": [{"epoch": 0, "train": {"loss": 220.0, "recon": 210.0, "kl": 10.0},
                                                 "eval": {"loss": 215.0, "recon": 205.0, "kl": 10.0}}]}
# file stem -> display name
IMPORTED = {"pytorch_vae": "PyTorch examples VAE", "timbmg_cvae": "timbmg CVAE", "keras_vae": "Keras VAE",
            "conv_vae": "conv VAE (ONNX)", "label_vae": "label CVAE (ONNX)"}


@pytest.fixture(scope="module")
def imported_dir(tmp_path_factory, data_root):
    """The five imported models (a few hundred test images' worth of figures), and a hostile ONNX file."""
    folder = tmp_path_factory.mktemp("imported")
    src = tmp_path_factory.mktemp("sources")
    test = load_dataset("mnist", "test", data_root, download=False)
    torch.save(train_a_few_steps(FcVAE(64, 2), fc_loss).state_dict(), src / "vae.pt")
    torch.save(train_a_few_steps(TimbmgVAE([784, 64], 2, [64, 784], True, 10), timbmg_loss).state_dict(),
               src / "cvae.pt")
    keras = write_keras_h5(src / "vae.h5", train_a_few_steps(SeedKerasVAE(hidden=64), keras_loss))
    for stem, kind, path in (("pytorch_vae", "fc-vae", src / "vae.pt"), ("timbmg_cvae", "timbmg", src / "cvae.pt"),
                             ("keras_vae", "keras-h5", keras)):
        model, source, description = map_file(kind, path)
        save_imported(model, source, folder / f"{stem}.safetensors", name=IMPORTED[stem], description=description,
                      test=test, eval_samples=2, test_limit=1000)
    for stem, protocol in (("conv_vae", TinyConvVAE()), ("label_vae", TinyLabelVAE())):
        model = onnx_model(trained(protocol), where=f"{stem}.safetensors")
        save_imported(model, source_of("onnx", None, type(protocol).__name__), folder / f"{stem}.safetensors",
                      name=IMPORTED[stem], history=HISTORY if stem == "conv_vae" else None, test=test,
                      eval_samples=2, test_limit=1000)
    encoder, _ = export_graphs(TinyConvVAE().eval())
    write_onnx_checkpoint(folder / "hostile.safetensors", encoder,
                          decoder_graph([helper.make_node("EvilOp", ["z"], ["logits"])]))
    return folder


@pytest.fixture
def at(app, imported_dir, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(imported_dir))
    from ui.model_catalogue import clear_model_cache
    clear_model_cache()
    app.run()
    return app


def open_page(at, page, stem, imported_dir, **state):
    at.session_state["model"] = str(imported_dir / f"{stem}.safetensors")
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(page).run()
    assert not errors_of(at), errors_of(at)
    return at


def test_home_lists_every_imported_model_with_where_it_came_from(at):
    at.switch_page("pages/home.py").run()
    assert not errors_of(at)
    overview = at.dataframe[0].value
    names = list(overview["model"])
    for name in IMPORTED.values():
        assert any(n.endswith(f"{name} · imported") for n in names), names
    what = dict(zip(overview["model"].str.replace("★ ", ""), overview["what it is"]))
    assert "fc1/fc21/fc22/fc3/fc4" in what["PyTorch examples VAE · imported"]
    assert "timbmg/VAE-CVAE-MNIST label CVAE" in what["timbmg CVAE · imported"]
    assert "hostile · imported" in names  # its record reads, so it is listed; opening it is a sentence (below)
    details = at.dataframe[1].value
    assert details.loc[details["file"] == "conv_vae.safetensors", "test −ELBO"].notna().all()


@pytest.mark.parametrize("stem", list(IMPORTED))
def test_the_latent_map_opens_an_imported_model(at, imported_dir, stem):
    at = open_page(at, "pages/latent_map.py", stem, imported_dir)
    picker = at.sidebar.selectbox[0]
    assert picker.value == str(imported_dir / f"{stem}.safetensors")
    assert f"{IMPORTED[stem]} · imported" in picker.options
    assert "imported from" in " ".join(c.value for c in at.sidebar.caption)
    assert at.get("plotly_chart"), "the map is drawn"
    assert "10,000 test images" in texts_of(at) or "test images; latent means stored" in texts_of(at)
    # a click on a point shows its digit, reconstruction and latent mean
    at.session_state["latent_map_chart"] = {"selection": {"points": [{"customdata": [3]}], "point_indices": [3],
                                                          "box": [], "lasso": []}}
    at.run()
    assert not errors_of(at) and "Test image #3" in texts_of(at)


@pytest.mark.parametrize("stem", list(IMPORTED))
def test_the_decoders_server_sliders_decode_an_imported_model(at, imported_dir, stem):
    at = open_page(at, "pages/decoder.py", stem, imported_dir, **{lp.TOGGLE_KEY: False})
    before = at.image[0].value[0]
    at.slider(key=dt.slider_key(0)).set_value(1.5).run()
    assert not errors_of(at)
    assert at.image[0].value[0] != before and at.image[0].captions[0].startswith("z = (1.50")


@pytest.mark.parametrize("stem, engine", [("pytorch_vae", "mlp"), ("keras_vae", "mlp"), ("conv_vae", "onnx"),
                                           ("label_vae", "onnx")])
def test_the_browser_pad_takes_every_imported_model(at, imported_dir, stem, engine):
    """A model mapped onto LatentModel runs in the browser's own MLP decoder unchanged; one carried as ONNX graphs
    hands the pad its decoder graph and spec (OnnxModel.onnx_decoder), which ONNX Runtime Web runs."""
    import json
    at = open_page(at, "pages/decoder.py", stem, imported_dir, **{lp.TOGGLE_KEY: True})
    model, _ = load_checkpoint(imported_dir / f"{stem}.safetensors")
    assert lp.engine(model) == engine and lp.unavailable(model) is None
    pads = [e for e in at.get("bidi_component") if e.proto.component_name == lp.NAME]
    assert len(pads) == 1 and "decode on the server here" not in texts_of(at)
    assert json.loads(pads[0].proto.json)["latent_dim"] == model.config.latent_dim


@pytest.mark.parametrize("stem", list(IMPORTED))
def test_every_diagnose_tab_opens_an_imported_model(at, imported_dir, stem):
    at = open_page(at, "pages/diagnose.py", stem, imported_dir)
    sizes = [w for w in at.sidebar.selectbox if w.key == "diagnose_images"]
    sizes[0].select(500).run()
    for name in TABS:
        at.session_state["diagnose_tab"] = name
        at.run()
        assert not errors_of(at), (name, errors_of(at))
        text = texts_of(at)
        if name == "Posterior collapse":
            assert {"KL(q ‖ p), total", "Active units"} <= {m.label for m in at.metric}
        if name == "Likelihood estimate":
            assert "NLL at S = 1,000" in {m.label for m in at.metric}
        if name == "Training history":
            settings = at.dataframe[0].value
            assert "source" in set(settings["part"])
            if stem in ("conv_vae", "label_vae"):  # only what describes a model made of graphs
                assert "hidden_dims" not in set(settings["setting"])
            if stem == "conv_vae":
                assert at.get("plotly_chart") and "3 stored training steps" in text
            else:
                assert "This checkpoint stores no training history." in text
    # the per-example table of the last run used the model's own losses
    at.session_state["diagnose_tab"] = "Per-example losses"
    at.run()
    table = at.dataframe(key="diagnose_table").value
    assert len(table) == 500 and np.isfinite(table["NLL (IS)"]).all()


def test_compare_offers_the_imported_label_models(at, imported_dir):
    at.switch_page("pages/compare.py").run()
    assert not errors_of(at)
    chooser = at.selectbox(key="cmp_label_cvae")
    assert {"timbmg CVAE · imported", "label CVAE (ONNX) · imported"} <= set(chooser.options)
    for stem in ("timbmg_cvae", "label_vae"):
        at.selectbox(key="cmp_label_cvae").set_value(str(imported_dir / f"{stem}.safetensors")).run()
        assert not errors_of(at)
        captions = [c for img in at.image for c in img.captions]
        assert any(c.startswith(f"{IMPORTED[stem]} · diversity") for c in captions), captions


def test_a_hostile_graph_is_one_sentence_in_the_page(at, imported_dir):
    at = open_page(at, "pages/latent_map.py", "hostile", imported_dir)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "This checkpoint cannot be used: the decoder graph of hostile.safetensors uses the " \
                                "operator EvilOp" in errors[0]


def test_latent_labs_own_model_is_recommended_before_an_imported_one_of_its_kind(imported_dir, model_dir, tmp_path,
                                                                                  monkeypatch):
    """An imported 2-D MNIST VAE whose file sorts first (as checkpoints/mnist-conv-vae-2d does) does not take the
    place of the project's own 2-D VAE, which every page opens on."""
    import shutil

    from ui.model_catalogue import available_models, clear_model_cache
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(imported_dir / "conv_vae.safetensors", folder / "a-imported-vae-2d.safetensors")
    shutil.copy(model_dir / "vae_2d.safetensors", folder / "vae_2d.safetensors")
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    clear_model_cache()
    entries = available_models()
    assert [e.file_name for e in entries] == ["vae_2d.safetensors", "a-imported-vae-2d.safetensors"]
    assert [e.label for e in entries] == ["vae_2d", "conv VAE (ONNX) · imported"]

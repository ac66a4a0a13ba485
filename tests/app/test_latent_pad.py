"""The in-browser decoder (ui/latent_pad.py) as the server sees it: what data it is handed, once or on every
run, and the fallback to server-side sliders when it cannot be used. Its JavaScript runs in chromium:
tests/e2e/test_browser_decoder.py."""
from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from torch import nn

from apptest_helpers import errors_of, texts_of
from ui import decoder_tools as dt
from ui import latent_pad as lp
from ui import ort_web
from vae_core import ModelConfig, build_model

DECODER = "pages/decoder.py"
MAP = "pages/latent_map.py"


def open_page(app, model_dir, model: str, page: str = DECODER, browser: bool = True):
    app.session_state["model"] = str(model_dir / f"{model}.safetensors")
    app.session_state[lp.TOGGLE_KEY] = browser
    app.switch_page(page).run()
    assert not errors_of(app)
    return app


def pad_data(at) -> dict | None:
    """The data handed to the in-browser decoder in the last run (None when it is not on the page)."""
    pads = [e for e in at.get("bidi_component") if e.proto.component_name == lp.NAME]
    assert len(pads) <= 1
    return json.loads(pads[0].proto.json) if pads else None


def z_sliders(at):
    return [s for s in at.slider if s.key and s.key.startswith("decoder_slider_")]


def numpy_decode(payload: dict, z, label=None) -> np.ndarray:
    """The browser's arithmetic, in numpy: the same layers from the same base64 arrays."""
    dtype = np.float32 if payload["dtype"] == "float32" else np.float16
    x = np.zeros(payload["x_dim"] + payload["latent_dim"])
    if payload["x_dim"]:
        x[label or 0] = 1
    x[payload["x_dim"]:] = z
    for layer in payload["layers"]:
        w = np.frombuffer(base64.b64decode(layer["w"]), dtype).astype(np.float64).reshape(layer["shape"])
        b = np.frombuffer(base64.b64decode(layer["b"]), dtype).astype(np.float64)
        x = w @ x + b
        if layer["act"] == "relu":
            x = np.maximum(x, 0)
    return 1 / (1 + np.exp(-x))


# ----------------------------------------------------------------------------- the Decoder in the browser

def test_weights_travel_once_then_only_the_model_key(app, model_dir):
    at = open_page(app, model_dir, "vae_2d")
    first = pad_data(at)
    assert first["mode"] == "pad" and first["latent_dim"] == 2 and first["z"] == [0.0, 0.0]
    assert first["weights"]["dtype"] == "float32" and first["weights"]["x_dim"] == 0
    assert first["grid"]["png"].startswith("data:image/png;base64,") and len(first["grid"]["z1"]) == dt.GRID_CELLS
    assert not z_sliders(at), "no server sliders while the browser decodes"
    at.number_input(key=dt.number_key(1)).set_value(1.5).run()
    assert not errors_of(at)
    second = pad_data(at)
    assert second["model"] == first["model"]
    assert "weights" not in second and "png" not in second["grid"]
    assert second["z"] == [0.0, 1.5] and second["rev"] > first["rev"]
    assert second["echo"] is None  # a server-side change: the browser adopts it
    assert len(json.dumps(second)) < 2_000


def test_a_typed_value_outside_the_range_widens_the_browser_sliders_too(app, model_dir):
    at = open_page(app, model_dir, "vae_2d")
    at.number_input(key=dt.number_key(0)).set_value(-7.5).run()
    data = pad_data(at)
    assert data["z"] == [-7.5, 0.0] and data["range"] == [-7.5, 3.0]
    assert "to hold z1 = -7.50" in texts_of(at)


def test_payload_decodes_like_the_model_label_before_z(app, model_dir):
    from vae_core import load_checkpoint
    for name, label in (("vae_2d", None), ("cvae_label", 7)):
        model, _ = load_checkpoint(model_dir / f"{name}.safetensors")
        payload = lp.decoder_payload(model)
        z = np.array([0.7, -1.3], dtype=np.float32)
        x = None if label is None else torch.tensor([label])
        want = model.decode(torch.from_numpy(z)[None], x)[0].detach().numpy()
        assert np.abs(numpy_decode(payload, z, label) - want).max() < 1e-5, name


def test_a_large_decoder_travels_as_float16_and_still_decodes_closely():
    model = build_model(ModelConfig(latent_dim=2, hidden_dims=(1024, 1024)))
    payload = lp.decoder_payload(model)
    assert payload["weights"] > lp.FLOAT32_MAX_WEIGHTS and payload["dtype"] == "float16"
    z = np.array([0.3, 0.4], dtype=np.float32)
    want = model.decode(torch.from_numpy(z)[None])[0].detach().numpy()
    assert np.abs(numpy_decode(payload, z) - want).max() < 1e-2


def test_a_dropout_decoder_is_sent_without_its_dropout_layers_and_decodes_like_the_model():
    """nn.Dropout is the identity at inference: the browser gets the Linear/ReLU layers and decodes as
    LatentModel.decode does in eval mode (the mode load_checkpoint gives)."""
    model = build_model(ModelConfig(latent_dim=2, hidden_dims=(32, 16), dropout=0.3)).eval()
    assert any(isinstance(m, nn.Dropout) for m in model.generation_net)
    assert lp.decoder_problem(model) is None
    payload = lp.decoder_payload(model)
    assert [layer["act"] for layer in payload["layers"]] == ["relu", "relu", "none"]
    for z in ([0.0, 0.0], [1.2, -0.4], [-2.5, 3.0]):
        z = np.array(z, dtype=np.float32)
        want = model.decode(torch.from_numpy(z)[None])[0].detach().numpy()
        assert np.abs(numpy_decode(payload, z) - want).max() < 1e-5


def test_a_decoder_the_browser_cannot_run_is_refused_with_a_reason():
    model = build_model(ModelConfig(latent_dim=2, hidden_dims=(8,)))
    model.generation_net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 784))
    with pytest.raises(ValueError, match="cannot run a Tanh layer"):
        lp.decoder_layers(model)


def test_label_model_sends_its_class_and_a_3d_model_gets_sliders(app, model_dir):
    at = open_page(app, model_dir, "cvae_label")
    assert pad_data(at)["label"] == 0 and pad_data(at)["weights"]["x_dim"] == 10
    at.radio(key="decoder_label").set_value(4).run()
    assert pad_data(at)["label"] == 4 and pad_data(at)["grid"]["key"].endswith(":4")
    at = open_page(app, model_dir, "vae_3d")
    data = pad_data(at)
    assert data["mode"] == "sliders" and data["latent_dim"] == 3 and "grid" not in data
    assert "weights" in data  # another model: its own weights


# ----------------------------------------------------------------------------- the fallback

def test_switched_off_the_page_uses_server_sliders_without_excuses(app, model_dir):
    at = open_page(app, model_dir, "vae_2d", browser=False)
    assert pad_data(at) is None and len(z_sliders(at)) == 2
    assert "decode on the server here" not in texts_of(at)


def test_a_component_that_cannot_load_falls_back_to_server_sliders_with_one_sentence(app, model_dir, monkeypatch):
    monkeypatch.setattr(lp, "_COMPONENT", None)
    monkeypatch.setattr(lp, "_REGISTER_ERROR", "AttributeError: no components.v2 here")
    at = open_page(app, model_dir, "vae_2d")
    assert pad_data(at) is None and len(z_sliders(at)) == 2
    assert ("The sliders decode on the server here, because the in-browser decoder could not load "
            "(AttributeError: no components.v2 here).") in texts_of(at)
    at.slider(key=dt.slider_key(0)).set_value(1.0).run()       # and the sliders work
    assert at.image[0].captions[0] == "z = (1.00, 0.00)"


def test_an_error_reported_by_the_browser_falls_back_with_one_sentence(app, model_dir):
    app.session_state[lp.FAILED_KEY] = "ReferenceError: x is not defined"
    at = open_page(app, model_dir, "vae_2d")
    assert pad_data(at) is None and len(z_sliders(at)) == 2
    assert "because the browser reported an error (ReferenceError: x is not defined)" in texts_of(at)


# ----------------------------------------------------------------------------- the Latent map

def test_latent_map_hover_decoder_reuses_weights_the_decoder_sent(app, model_dir):
    at = open_page(app, model_dir, "vae_2d")
    key = pad_data(at)["model"]
    at.switch_page(MAP).run()
    picker = at.sidebar.selectbox[0]   # (whether the choice holds across pages: tests/e2e/test_model_choice.py)
    picker.select(next(o for o in picker.options if o == "vae_2d")).run()
    assert not errors_of(at)
    hover = pad_data(at)
    assert hover["mode"] == "hover" and hover["model"] == key and "weights" not in hover
    assert hover["chart"] == ".st-key-latent_map_chart" and hover["classes"] is None
    assert "Under the cursor" in texts_of(at)


def test_latent_map_hover_for_a_label_model_decodes_every_class(app, model_dir):
    at = open_page(app, model_dir, "cvae_label", page=MAP)
    hover = pad_data(at)
    assert hover["classes"] == [str(c) for c in range(10)] and "weights" in hover


def test_latent_map_without_browser_decoding_has_no_hover_view(app, model_dir):
    at = open_page(app, model_dir, "vae_2d", page=MAP, browser=False)
    assert pad_data(at) is None and "Under the cursor" not in texts_of(at)


# ----------------------------------------------------------------------------- decoders only ONNX can bring

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from onnx_models import ConvVAE, _Concatenated, export_decoder  # noqa: E402


def with_an_onnx_decoder(model):
    """The model with a convolutional generation net (which the hand-written JS cannot run) and that net as an
    ONNX graph in its `onnx_decoder` attribute, as an importer of a foreign model gives it."""
    conv = copy.deepcopy(model)
    classes = model.x_dim
    vae = ConvVAE(latent_dim=model.config.latent_dim, classes=classes, width=16, concat=True).eval()
    conv.generation_net = _Concatenated(vae.decoder, classes) if classes else vae.decoder
    conv.onnx_decoder = export_decoder(vae)
    return conv


@pytest.fixture
def onnx_models(monkeypatch, model_dir):
    """vae_2d and cvae_label load as models whose decoder only ONNX can bring (the other files as they are)."""
    from ui import decoder_tools, model_catalogue
    real, made = model_catalogue.load_model, {}

    def load(path):
        model, record = real(path)
        if Path(path).stem not in ("vae_2d", "cvae_label"):
            return model, record
        if str(path) not in made:
            made[str(path)] = with_an_onnx_decoder(model)
        return made[str(path)], record

    for module in (model_catalogue, decoder_tools):
        monkeypatch.setattr(module, "load_model", load)
    return made


def onnx_spec(**changes) -> dict:
    spec = {"inputs": [{"name": "z", "shape": ["batch", 2]}], "output": "logits", "latent_dim": 2,
            "label_classes": 0, "image_size": 28, "output_is_logits": True}
    return {**spec, **changes}


def test_the_pad_gets_the_onnx_decoder_for_a_conv_model_and_the_weights_for_an_mlp(app, model_dir, onnx_models):
    at = open_page(app, model_dir, "vae_2d")
    data = pad_data(at)
    graph, spec = next(iter(onnx_models.values())).onnx_decoder
    assert data["engine"] == "onnx" and "weights" not in data
    assert base64.b64decode(data["onnx"]["graph"]) == graph
    assert data["onnx"]["spec"] == {**spec, "inputs": [{"name": "z", "shape": ["batch", 2], "role": "z"}]}
    assert data["ort"] == {"module": "/app/static/ort/ort.wasm.bundle.min.mjs",
                           "wasm": "/app/static/ort/ort-wasm-simd-threaded.wasm.gz", "version": ort_web.VERSION}
    assert data["mode"] == "pad" and data["latent_dim"] == 2 and data["model"].startswith("onnx-")
    assert not z_sliders(at), "no server sliders while the browser decodes"
    at.number_input(key=dt.number_key(0)).set_value(1.5).run()     # the graph travels once
    again = pad_data(at)
    assert again["model"] == data["model"] and "onnx" not in again and again["z"] == [1.5, 0.0]
    assert len(json.dumps(again)) < 2_000

    at = open_page(app, model_dir, "cvae_label")                    # one input: the one-hot, then z
    data = pad_data(at)
    assert data["engine"] == "onnx" and data["onnx"]["spec"]["inputs"] == [
        {"name": "label_z", "shape": ["batch", 12], "role": "label+z"}]
    assert data["label"] == 0 and data["onnx"]["spec"]["label_classes"] == 10

    at = open_page(app, model_dir, "vae_3d")                        # an MLP: hand-written, and no runtime
    data = pad_data(at)
    assert data["engine"] == "mlp" and "weights" in data and "onnx" not in data and "ort" not in data


def test_the_latent_map_hovers_with_the_onnx_decoder_the_decoder_page_sent(app, model_dir, onnx_models):
    at = open_page(app, model_dir, "vae_2d")
    key = pad_data(at)["model"]
    at.switch_page(MAP).run()
    assert not errors_of(at)
    hover = pad_data(at)
    assert hover["mode"] == "hover" and hover["engine"] == "onnx" and hover["model"] == key
    assert "onnx" not in hover and hover["ort"]["module"].endswith("ort.wasm.bundle.min.mjs")


def test_engine_picks_the_hand_written_path_for_an_mlp_and_onnx_otherwise(model_dir):
    from vae_core import load_checkpoint
    mlp, _ = load_checkpoint(model_dir / "vae_2d.safetensors")
    conv = with_an_onnx_decoder(mlp)
    assert lp.engine(mlp) == "mlp"
    assert lp.engine(mlp, conv.onnx_decoder) == "mlp"      # an MLP the JS runs keeps the faster path
    assert lp.engine(conv) == "onnx" and lp.engine(None, conv.onnx_decoder) == "onnx"
    del conv.onnx_decoder
    assert lp.engine(conv) is None
    assert lp.unavailable(conv) == "this model has no decoder network to send to the browser"


@pytest.mark.parametrize("spec, why", [
    (onnx_spec(latent_dim=3), "input 'z' (z) has shape ['batch', 2], which holds 2 values per example, not 3"),
    (onnx_spec(label_classes=10), "input 'z' (label+z) has shape ['batch', 2], which holds 2 values per example, "
                                  "not 12"),
    (onnx_spec(inputs=[{"name": "z", "shape": ["batch", "latent"]}]), "only its first (batch) size may vary"),
    (onnx_spec(inputs=[{"name": "z", "shape": [4, 2]}]), "a fixed batch size must be 1"),
    (onnx_spec(inputs=[{"name": "z", "shape": ["b", 2]}, {"name": "y", "shape": ["b", 10]}]),
     "an input holds a label, but label_classes is 0"),
    (onnx_spec(inputs=[{"name": "z", "shape": ["b", 2], "role": "z"}, {"name": "y", "shape": ["b", 2], "role": "z"}]),
     "exactly one input must hold z"),
    (onnx_spec(image_size=0), "image_size: Input should be greater than or equal to 1"),
    ({"inputs": []}, "inputs: List should have at least 1 item"),
])
def test_a_spec_that_does_not_fit_is_one_sentence(spec, why):
    problem = lp.parse_onnx_decoder((b"graph", spec))
    assert isinstance(problem, str) and problem.startswith("its ONNX decoder's description is not usable (")
    assert why in problem


def test_other_bad_onnx_decoders_are_sentences(monkeypatch):
    assert lp.parse_onnx_decoder(b"graph") == "its ONNX decoder is not a (graph bytes, spec) pair"
    assert lp.parse_onnx_decoder(("graph", onnx_spec())) == "its ONNX decoder has no graph bytes"
    monkeypatch.setattr(lp, "ONNX_MAX_BYTES", 10)
    assert lp.parse_onnx_decoder((b"x" * 2**20, onnx_spec())).startswith("its ONNX decoder is 1 MB, more than")
    graph, spec, key = lp.parse_onnx_decoder((b"x", {**onnx_spec(), "opset": 17}))   # unknown keys are ignored
    assert key == lp.parse_onnx_decoder((b"x", onnx_spec()))[2] != lp.parse_onnx_decoder((b"y", onnx_spec()))[2]


def test_without_the_runtime_an_onnx_model_falls_back_to_server_sliders_with_one_sentence(app, model_dir, onnx_models,
                                                                                          monkeypatch, tmp_path):
    monkeypatch.setattr(ort_web, "FOLDER", tmp_path)
    at = open_page(app, model_dir, "vae_2d")
    assert pad_data(at) is None and len(z_sliders(at)) == 2
    assert ("The sliders decode on the server here, because ONNX Runtime Web is missing from static/ort/ "
            "(ort.wasm.bundle.min.mjs, ort-wasm-simd-threaded.wasm.gz; `python -m ui.ort_web` fetches it).") in texts_of(at)
    at.slider(key=dt.slider_key(0)).set_value(1.0).run()       # and the server decodes the conv model
    assert not errors_of(at) and at.image[0].captions[0] == "z = (1.00, 0.00)"
    at = open_page(app, model_dir, "vae_3d")                      # an MLP needs no runtime
    assert pad_data(at)["engine"] == "mlp"


def test_without_static_serving_an_onnx_model_falls_back_with_one_sentence(app, model_dir, onnx_models, monkeypatch):
    real = st.get_option
    monkeypatch.setattr(st, "get_option", lambda key: False if key == "server.enableStaticServing" else real(key))
    at = open_page(app, model_dir, "vae_2d")
    assert pad_data(at) is None
    assert ("because the app does not serve ONNX Runtime Web: static serving is off "
            "(server.enableStaticServing in .streamlit/config.toml).") in texts_of(at)


def test_a_decoder_the_browser_could_not_run_falls_back_alone(app, model_dir, onnx_models):
    """The browser's error about one ONNX decoder sends that model to the server sliders, with its message;
    the other models keep decoding in the browser."""
    at = open_page(app, model_dir, "vae_2d")
    key = pad_data(at)["model"]
    at.session_state[lp.FAILED_ONNX_KEY] = {key: "this decoder gives 784 values per image, not 400 (20 x 20)"}
    at.run()
    assert pad_data(at) is None and len(z_sliders(at)) == 2
    assert ("because the browser could not run this model's ONNX decoder (this decoder gives 784 values per "
            "image, not 400 (20 x 20)).") in texts_of(at)
    at = open_page(app, model_dir, "cvae_label")
    assert pad_data(at)["engine"] == "onnx"
    at = open_page(app, model_dir, "vae_3d")
    assert pad_data(at)["engine"] == "mlp"


def test_the_committed_runtime_is_the_pinned_npm_release():
    """static/ort/ holds onnxruntime-web's files as pinned in ui/ort_web.py (the wasm inflated), with its licence."""
    assert ort_web.check_folder() == []
    assert all(p.stat().st_size <= 8 * 2**20 for p in ort_web.FOLDER.iterdir())

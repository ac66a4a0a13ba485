"""The in-browser decoder (ui/latent_pad.py) as the server sees it: what data it is handed, once or on every
run, and the fallback to server-side sliders when it cannot be used. Its JavaScript runs in chromium:
tests/e2e/test_browser_decoder.py."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from torch import nn

from apptest_helpers import errors_of, texts_of
from ui import decoder_tools as dt
from ui import latent_pad as lp
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

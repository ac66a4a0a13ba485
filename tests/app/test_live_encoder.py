"""The live encoder (ui/live_encoder.py) as the server sees it: the encoder's weights as the browser gets them
(checked by running the browser's arithmetic in numpy), what travels once and what on every run, the stroke
mode for an encoder the browser cannot run, and the page's fallback sentence. Its JavaScript runs in
chromium: tests/e2e/test_live_encoder_browser.py."""
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
from ui import live_encoder as le
from vae_core import ModelConfig, build_model, load_checkpoint

DECODER = "pages/decoder.py"


def open_page(app, model_dir, model: str, browser: bool = True):
    app.session_state["model"] = str(model_dir / f"{model}.safetensors")
    app.session_state[lp.TOGGLE_KEY] = browser
    app.switch_page(DECODER).run()
    assert not errors_of(app)
    return app


def live_data(at) -> dict | None:
    found = [e for e in at.get("bidi_component") if e.proto.component_name == le.NAME]
    assert len(found) <= 1
    return json.loads(found[0].proto.json) if found else None


def arrays(entry: dict, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    kind = np.float32 if dtype == "float32" else np.float16
    w = np.frombuffer(base64.b64decode(entry["w"]), kind).astype(np.float64).reshape(entry["shape"])
    return w, np.frombuffer(base64.b64decode(entry["b"]), kind).astype(np.float64)


def numpy_encode(payload: dict, pixels: np.ndarray, label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The browser's arithmetic (nets.js) in float64 from the same base64 arrays."""
    h = pixels.astype(np.float64).reshape(1, 1, 28, 28)
    for conv in payload["convs"]:
        w, b = arrays(conv, payload["dtype"])
        h = torch.nn.functional.conv2d(torch.from_numpy(h), torch.from_numpy(w), torch.from_numpy(b),
                                       stride=conv["stride"], padding=conv["pad"]).clamp_min(0).numpy()
    x = np.zeros(payload["x_dim"])
    if payload["x_dim"]:
        x[label or 0] = 1
    x = np.concatenate([x, h.reshape(-1)])
    for layer in payload["layers"]:
        w, b = arrays(layer, payload["dtype"])
        x = w @ x + b
        x = np.maximum(x, 0) if layer["act"] == "relu" else x
    d = payload["latent_dim"]
    return x[:d], x[d:]


def digits(n: int = 6) -> np.ndarray:
    """uint8 [n, 28, 28]: blobs and strokes, as drawn digits are."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28))
    for i in range(n):
        cx, cy, r = rng.uniform(9, 19), rng.uniform(9, 19), rng.uniform(3, 8)
        out[i] = np.clip(2.5 - np.abs(np.hypot(xx - cx, yy - cy) - r), 0, 1)
    return (out * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the encoder as data

@pytest.mark.parametrize("name, label", [("vae_2d", None), ("vae_conv_2d", None), ("cvae_label", 4), ("vae_3d", None)])
def test_the_payload_encodes_as_the_model_does(model_dir, name, label):
    model, _ = load_checkpoint(model_dir / f"{name}.safetensors")
    payload = le.encoder_payload(model)
    assert payload["kind"] == ("conv" if model.config.encoder == "conv" else "mlp")
    assert payload["dtype"] == "float32"         # trained float32 weights are not float16 values
    for digit in digits():
        want = le.server_encoding(model, digit, label)
        mu, logvar = numpy_encode(payload, np.float32(digit) / np.float32(255), label)
        assert np.abs(mu - want["mu"]).max() < 1e-5 and np.abs(logvar - want["logvar"]).max() < 1e-5


def test_float16_values_travel_as_float16_and_lose_nothing():
    model = build_model(ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,), encoder="conv"))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())       # what loading a float16 checkpoint (the shipped ones) gives
    payload = le.encoder_payload(model)
    assert payload["dtype"] == "float16"
    digit = digits(1)[0]
    mu, logvar = numpy_encode(payload, np.float32(digit) / np.float32(255))
    want = le.server_encoding(model, digit, None)
    assert np.abs(mu - want["mu"]).max() < 1e-5 and np.abs(logvar - want["logvar"]).max() < 1e-5
    float32 = le.encoder_payload(model, dtype="float32")
    assert len(json.dumps(payload)) < 0.6 * len(json.dumps(float32))


def test_encoders_the_browser_cannot_run_say_why():
    gsnn = build_model(ModelConfig(variant="gsnn", condition="label", latent_dim=2, hidden_dims=(16,)))
    assert "no recognition network" in le.encoder_problem(gsnn)
    conv = build_model(ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(16,), encoder="conv"))
    assert le.encoder_problem(conv) is None
    conv.recognition_net.features[1] = nn.Tanh()
    assert "Tanh" in le.encoder_problem(conv)
    mlp = build_model(ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(16,)))
    mlp.recognition_net.body[1] = nn.Sigmoid()
    assert "Sigmoid" in le.encoder_problem(mlp)
    with pytest.raises(ValueError, match="Sigmoid"):
        le.encoder_payload(mlp)


def test_the_map_holds_the_stored_means_and_an_empty_one_without(model_dir):
    _, record = load_checkpoint(model_dir / "vae_2d.safetensors")
    m = le.map_payload(record)
    points = np.frombuffer(base64.b64decode(m["points"]), "<f4").reshape(-1, 2)
    labels = np.frombuffer(base64.b64decode(m["labels"]), np.uint8)
    means, stored_labels = record.latent_means()
    assert len(points) == len(labels) == min(le.MAP_POINTS, len(means))
    assert np.array_equal(points, means[:len(points)]) and np.array_equal(labels, stored_labels[:len(points)])
    x0, x1, y0, y1 = m["extent"]
    inside = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    assert inside.mean() >= 0.98 and x0 <= -3 and x1 >= 3
    import dataclasses
    bare = dataclasses.replace(record, extras={})
    assert le.map_payload(bare) == {"points": None, "labels": None, "extent": [-3.0, 3.0, -3.0, 3.0]}


def test_values_from_the_browser_are_checked():
    assert le.digit_from_browser({"pixels": [0] * 784}).shape == (28, 28)
    for bad in (None, {}, {"pixels": [0] * 783}, {"pixels": [300] + [0] * 783}, {"pixels": ["a"] * 784}):
        assert le.digit_from_browser(bad) is None
    assert le.z_from_browser({"z": [1, -2.5]}, 2) == [1.0, -2.5]
    for bad in ({"z": [1]}, {"z": [1, float("nan")]}, {"z": "1,2"}, None):
        assert le.z_from_browser(bad, 2) is None


def test_the_server_encoding_matches_the_page_helper(model_dir):
    model, _ = load_checkpoint(model_dir / "cvae_label.safetensors")
    digit = digits(1)[0]
    got = le.server_encoding(model, digit, 3)
    mu, std, recon = dt.encode_digit(model, digit, 3)
    assert np.allclose(got["mu"], mu, atol=1e-6) and np.allclose(np.exp(0.5 * np.array(got["logvar"])), std, atol=1e-6)
    assert np.allclose(got["recon"], recon.reshape(-1), atol=6e-4)


# ----------------------------------------------------------------------------- on the page

def test_the_decoder_page_mounts_the_live_encoder_and_sends_weights_once(app, model_dir):
    at = open_page(app, model_dir, "vae_conv_2d")
    first = live_data(at)
    assert first["mode"] == "live" and first["latent_dim"] == 2 and first["note"] is None and first["decoder"]
    assert first["encoder"]["kind"] == "conv" and first["map_data"]["points"]
    assert "weights" not in first, "the decoder's weights went to the explorer's pad in the same run"
    assert lp.model_key(str(model_dir / "vae_conv_2d.safetensors")) == first["model"]
    assert "The map updates when a stroke ends" not in texts_of(at)
    at.number_input(key=dt.number_key(0)).set_value(0.5).run()   # another run: only the keys
    assert not errors_of(at)
    second = live_data(at)
    assert second["model"] == first["model"] and "encoder" not in second and "map_data" not in second
    assert len(json.dumps(second)) < 1_000


def test_a_gsnn_draws_live_but_is_encoded_when_a_stroke_ends(app, model_dir):
    at = open_page(app, model_dir, "gsnn_label")
    data = live_data(at)
    assert data["mode"] == "stroke" and "encoder" not in data
    assert "does not run in the browser" in data["note"] and "when a stroke ends" in data["note"]
    assert data["label"] == 0   # the class picker "It is a" (its first class)


def test_more_dimensions_get_no_map(app, model_dir):
    data = live_data(open_page(app, model_dir, "vae_3d"))
    assert data["latent_dim"] == 3 and "map" not in data and data["mode"] == "live"


def test_with_the_browser_off_the_page_says_the_map_waits_for_the_stroke(app, model_dir):
    at = open_page(app, model_dir, "vae_2d", browser=False)
    assert live_data(at) is None
    assert "The map updates when a stroke ends, because “Decode in the browser” is off." in texts_of(at)


def test_a_browser_error_falls_back_with_a_sentence(app, model_dir):
    at = open_page(app, model_dir, "vae_2d")
    at.session_state[le.FAILED_KEY] = "TypeError: x is undefined"
    at.run()
    assert not errors_of(at) and live_data(at) is None
    assert "the browser reported an error in the live encoder (TypeError: x is undefined)" in texts_of(at)

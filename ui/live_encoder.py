"""The encoder live under the pen: a Streamlit component (components v2, inline JS/CSS from ui/live_encoder/)
that holds a drawing canvas, the model's encoder and its decoder, and shows q(z|x) and the reconstruction
on every pointer move, computed in the browser (as VAE Explainer, Bertucci and Endert 2024, does).

On every move the canvas becomes the 28 x 28 digit exactly as the server makes it
(ui/decoder_tools.drawing_to_digit, ported in ui/live_encoder/preprocess.js), the encoder gives mu and
log sigma^2 (an MLP, or ModelConfig.encoder == "conv": stride-2 3x3 convolutions with ReLU, then an MLP;
ui/live_encoder/nets.js), and the decoder (ui/latent_pad/mlp.js, the latent pad's own) draws the reconstruction of mu.

Weights travel once per session and model, as ui/latent_pad.py sends them, and share its bookkeeping: the
decoder's weights under latent_pad's own key and page-wide cache (one copy for both components), the
encoder's and the test-set map under their own kinds. The encoder goes as float16 when its weights are
float16 values (the shipped checkpoints store them so: no rounding), else float32, so the browser's mu and
log-variance equal the server's within 1e-4.

Where the browser cannot run the encoder (`encoder_problem`), the same canvas sends the digit when a stroke
ends and the server encodes it; where the component is not usable at all (`unavailable`), the page keeps
its server-side drawing canvas. Either way the page says so in one sentence.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Callable

import numpy as np
import PIL
import streamlit as st
import torch
from torch import nn

from ui import latent_pad as lp
from vae_core.models import ConvGaussianNet, GaussianNet

ASSETS = Path(__file__).with_name("live_encoder")
NAME = "latent_lab.live_encoder"
FAILED_KEY = "live_encoder_failed"     # the browser's error message, once it reported one
RESULT_KEY = "live_encoder_result"     # stroke mode: the server's encoding of the last released stroke
SENT_Z_KEY = "live_encoder_sent"       # {"z", "n"}: the last z sent to the sliders (the button's feedback)
MAP_POINTS = 2000                      # test-set means drawn behind the posterior (the first ones)
PIXELS = 784


def _register():
    try:
        js = lp.component_js("nets.js", "preprocess.js", "live_encoder.js", folder=ASSETS)
        return st.components.v2.component(
            NAME, html=(ASSETS / "live_encoder.html").read_text(), css=(ASSETS / "live_encoder.css").read_text(),
            js=js, isolate_styles=False), None
    except Exception as exc:  # noqa: BLE001 - an older Streamlit, missing files: the page falls back
        return None, f"{type(exc).__name__}: {exc}"


_COMPONENT, _REGISTER_ERROR = _register()


def unavailable() -> str | None:
    """Why the live encoder cannot be shown at all (a sentence fragment), or None."""
    if _COMPONENT is None:
        return f"the live encoder could not load ({_REGISTER_ERROR})"
    if st.session_state.get(FAILED_KEY):
        return f"the browser reported an error in the live encoder ({st.session_state[FAILED_KEY]})"
    return None


def tall_first() -> bool:
    """Whether the installed Pillow resizes tall pictures vertically first (Pillow 13 does: its Lanczos result
    then differs in a few pixels by one grey level); the browser's port follows the server's Pillow."""
    try:
        return int(PIL.__version__.split(".")[0]) >= 13
    except ValueError:
        return True


# ----------------------------------------------------------------------------- the encoder as data

def encoder_problem(model) -> str | None:
    """Why the browser cannot run this model's encoder q(z|x,y), or None. It runs an MLP on (one-hot label,
    pixels), or Conv2d layers (each followed by a ReLU, then a Flatten) whose features join the label
    before an MLP; Dropout, the identity at inference, is skipped."""
    if not hasattr(model, "recognition_net"):
        return "the browser runs only Latent Lab's own MLP and convolutional encoders"
    net = model.recognition_net
    if net is None:
        return "this model has no recognition network (its q(z|x) is the prior p(z|x), blind to the drawing)"
    if isinstance(net, ConvGaussianNet):
        layers = [m for m in net.features if not isinstance(m, nn.Dropout)]
        if not layers or not isinstance(layers[-1], nn.Flatten):
            return "its convolutional encoder does not end in a Flatten layer"
        previous = None
        for m in layers[:-1]:
            if isinstance(m, nn.Conv2d):
                if (m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str)
                        or m.kernel_size[0] != m.kernel_size[1] or m.stride[0] != m.stride[1]
                        or m.padding[0] != m.padding[1]):
                    return "the browser runs only square, undilated, zero-padded convolutions"
            elif not (isinstance(m, nn.ReLU) and isinstance(previous, nn.Conv2d)):
                return f"the browser cannot run a {type(m).__name__} layer of this encoder"
            previous = m
        if not all(isinstance(a, nn.Conv2d) and isinstance(b, nn.ReLU) for a, b in zip(layers[:-1:2], layers[1:-1:2])) \
                or len(layers[:-1]) % 2:
            return "the browser runs convolutions each followed by a ReLU"
        body = net.body
    elif isinstance(net, GaussianNet):
        body = net.body
    else:
        return f"the browser cannot run a {type(net).__name__} encoder"
    previous = None
    for m in lp._inference_layers(body):
        if not (isinstance(m, nn.Linear) or (isinstance(m, nn.ReLU) and isinstance(previous, nn.Linear))):
            return f"the browser cannot run a {type(m).__name__} layer of this encoder"
        previous = m
    if not isinstance(previous, nn.Linear):
        return "this encoder does not end in a Linear layer"
    return None


def _dense(body: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray, str]]:
    layers: list[list] = []
    for m in lp._inference_layers(body):
        if isinstance(m, nn.Linear):
            w = m.weight.detach().float().cpu().numpy()
            b = m.bias.detach().float().cpu().numpy() if m.bias is not None else np.zeros(w.shape[0], np.float32)
            layers.append([w, b, "none"])
        else:
            layers[-1][2] = "relu"
    return [tuple(layer) for layer in layers]


def encoder_arrays(model) -> tuple[list[tuple[np.ndarray, np.ndarray, int, int]], list[tuple[np.ndarray, np.ndarray, str]]]:
    """(convolutions as [(weight [out, in, k, k], bias [out], stride, padding)], dense layers as
    [(weight [out, in], bias [out], 'relu' or 'none')]). ValueError for an encoder the browser cannot run."""
    problem = encoder_problem(model)
    if problem:
        raise ValueError(problem)
    net = model.recognition_net
    convs = []
    if isinstance(net, ConvGaussianNet):
        for m in net.features:
            if isinstance(m, nn.Conv2d):
                w = m.weight.detach().float().cpu().numpy()
                b = m.bias.detach().float().cpu().numpy() if m.bias is not None else np.zeros(w.shape[0], np.float32)
                convs.append((w, b, int(m.stride[0]), int(m.padding[0])))
    return convs, _dense(net.body)


def _lossless_float16(arrays: list[np.ndarray]) -> bool:
    return all(np.array_equal(a.astype(np.float16).astype(np.float32), a) for a in arrays)


def encoder_payload(model, dtype: str | None = None) -> dict:
    """The encoder's weights for the browser: base64 little-endian arrays with their shapes; float16 only when
    every weight is a float16 value (nothing is rounded), unless `dtype` says otherwise."""
    convs, dense = encoder_arrays(model)
    arrays = [a for w, b, *_ in convs for a in (w, b)] + [a for w, b, _ in dense for a in (w, b)]
    dtype = dtype or ("float16" if _lossless_float16(arrays) else "float32")
    cfg = model.config
    return {"kind": "conv" if convs else "mlp", "dtype": dtype, "x_dim": int(model.x_dim),
            "latent_dim": int(cfg.latent_dim), "image_size": int(cfg.image_size),
            "weights": int(sum(a.size for a in arrays)),
            "convs": [{"w": lp._b64(w, dtype), "b": lp._b64(b, dtype), "shape": list(w.shape), "stride": s, "pad": p}
                      for w, b, s, p in convs],
            "layers": [{"w": lp._b64(w, dtype), "b": lp._b64(b, dtype), "shape": list(w.shape), "act": act}
                       for w, b, act in dense]}


def map_payload(record) -> dict:
    """The test set's latent means (the first MAP_POINTS) with labels, and the map's extent (the points'
    0.5%..99.5% range, at least [-3, 3]); without stored means, an empty map over [-3, 3]^2."""
    stored = record.latent_means()
    lo, hi = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
    if stored is None or stored[0].shape[1] != 2:
        return {"points": None, "labels": None, "extent": [-3.0, 3.0, -3.0, 3.0]}
    means, labels = stored[0][:MAP_POINTS].astype("<f4"), stored[1][:MAP_POINTS]
    lo = np.minimum(lo, np.percentile(means, 0.5, axis=0))
    hi = np.maximum(hi, np.percentile(means, 99.5, axis=0))
    pad = 0.05 * (hi - lo)
    lo, hi = np.floor((lo - pad) * 2) / 2, np.ceil((hi + pad) * 2) / 2
    return {"points": base64.b64encode(np.ascontiguousarray(means).tobytes()).decode("ascii"),
            "labels": base64.b64encode(np.clip(labels, 0, 255).astype(np.uint8).tobytes()).decode("ascii"),
            "extent": [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]}


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_encoder(path: str, key: str) -> dict:
    from ui.model_catalogue import load_model
    return encoder_payload(load_model(path)[0])


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_map(path: str, key: str) -> dict:
    from ui.model_catalogue import load_model
    return map_payload(load_model(path)[1])


# ----------------------------------------------------------------------------- encoding on the server

@torch.no_grad()
def server_encoding(model, digit: np.ndarray, label: int | None) -> dict:
    """mu, log-variance and the reconstruction (pixel probabilities, 3 decimals) of a uint8 [28, 28] digit, as
    ui/decoder_tools.encode_digit computes them: what the browser shows in stroke mode."""
    y = torch.from_numpy(np.asarray(digit, dtype=np.float32) / 255.0).reshape(1, -1)
    x = None if model.config.condition != "label" else torch.tensor([0 if label is None else int(label)])
    mu, logvar = model.encode(y, x)
    recon = model.decode(mu, x)[0].cpu().numpy()
    return {"mu": [float(v) for v in mu[0]], "logvar": [float(v) for v in logvar[0]],
            "recon": [round(float(v), 3) for v in recon]}


def digit_from_browser(value) -> np.ndarray | None:
    """The browser's 784 grey levels as a uint8 [28, 28] array, or None when the value is not that."""
    pixels = value.get("pixels") if isinstance(value, dict) else None
    if not isinstance(pixels, list) or len(pixels) != PIXELS:
        return None
    if not all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in pixels):
        return None
    return np.asarray(pixels, dtype=np.uint8).reshape(28, 28)


def z_from_browser(value, latent_dim: int) -> list[float] | None:
    """A sent z: `latent_dim` finite numbers, or None."""
    z = value.get("z") if isinstance(value, dict) else None
    if not isinstance(z, list) or len(z) != latent_dim:
        return None
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in z):
        return None
    return [float(v) for v in z]


# ----------------------------------------------------------------------------- the component

def _sent() -> dict:
    sent = lp._sent()
    sent.setdefault("encoders", set())
    sent.setdefault("maps", set())
    return sent


def _on_missing(widget_key: str) -> None:
    """The browser lacks the encoder, the map (ours) or the decoder (latent_pad's bookkeeping): send again."""
    ask = (st.session_state.get(widget_key) or {}).get("missing") or {}
    kind, key = ask.get("kind"), ask.get("key")
    if kind == "weights":
        lp._on_missing(widget_key)
        return
    if kind not in ("encoder", "map") or not key:
        return
    sent = _sent()
    tag = f"{kind}:{key}"
    asked = sent["asked"].get(tag, 0) + 1
    sent["asked"][tag] = asked
    if asked > lp.MISSING_LIMIT:
        st.session_state[FAILED_KEY] = f"the {kind} for {key} never arrived"
    sent["encoders" if kind == "encoder" else "maps"].discard(key)


def _on_failed(widget_key: str) -> None:
    message = (st.session_state.get(widget_key) or {}).get("failed")
    if message:
        st.session_state[FAILED_KEY] = str(message)[:200]


def live_encoder(path: str, model, record, *, label: int | None, on_send: Callable[[list[float]], None],
                 key: str = "live_encoder") -> None:
    """The drawing canvas with the encoder live under the pen (or, for an encoder the browser cannot run,
    encoded on the server when a stroke ends). "Send to the sliders" calls `on_send(mu)` (which may rerun)."""
    path = str(path)
    cfg = model.config
    mkey = lp.model_key(path)
    problem = encoder_problem(model)
    mode = "live" if problem is None else "stroke"
    data: dict = {"model": mkey, "mode": mode, "latent_dim": int(cfg.latent_dim),
                  "label": None if label is None else int(label), "tall_first": tall_first(),
                  "note": None if problem is None else
                  f"This model's encoder does not run in the browser ({problem}), so the server encodes the "
                  "drawing when a stroke ends."}
    sent = _sent()
    if mode == "live":
        if mkey not in sent["encoders"]:
            data["encoder"] = _cached_encoder(path, mkey)
            sent["encoders"].add(mkey)
        data["decoder"] = lp.decoder_problem(model) is None   # else no reconstruction (and nothing to ask for)
        if data["decoder"]:   # latent_pad's weights and bookkeeping: one copy for both components
            decoder_data, _ = lp._model_data(path, model, None)
            if decoder_data.get("engine") == "mlp" and "weights" in decoder_data:
                data["weights"] = decoder_data["weights"]
    if cfg.latent_dim == 2:
        data["map"] = f"{mkey}:map"
        if data["map"] not in sent["maps"]:
            data["map_data"] = _cached_map(path, mkey)
            sent["maps"].add(data["map"])
    result = st.session_state.get(RESULT_KEY)
    if mode == "stroke" and isinstance(result, dict) and result.get("model") == mkey:
        data["server"] = {k: result[k] for k in ("mu", "logvar", "recon", "n")}
    sent_z = st.session_state.get(SENT_Z_KEY)
    if isinstance(sent_z, dict):
        data["sent"] = sent_z

    def on_digit() -> None:
        value = (st.session_state.get(key) or {}).get("digit")
        digit = digit_from_browser(value)
        if digit is None:
            return
        st.session_state[RESULT_KEY] = {**server_encoding(model, digit, label), "model": mkey,
                                        "n": int(value.get("n") or 0)}

    def on_sent() -> None:
        value = (st.session_state.get(key) or {}).get("send")
        z = z_from_browser(value, cfg.latent_dim)
        if z is None:
            return
        st.session_state[SENT_Z_KEY] = {"z": z, "n": int(value.get("n") or 0)}
        on_send(z)

    _COMPONENT(key=key, data=data, height="content", on_digit_change=on_digit, on_send_change=on_sent,
               on_missing_change=lambda: _on_missing(key), on_failed_change=lambda: _on_failed(key))

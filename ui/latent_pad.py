"""Decode in the browser: a Streamlit component (components v2, inline JS/CSS from ui/latent_pad/) that
holds a model's decoder and redraws the digit on every pointer move, with no server round trip.

The decoder is an MLP (Linear / ReLU ..., a sigmoid at the end, the one-hot label before z for a label
model). Its weights travel once per model and session, base64 float32 (float16 above FLOAT32_MAX_WEIGHTS
weights); session state remembers what was sent and later reruns send only the model key (the browser
keeps a page-wide cache by key). Should the browser lose them, it asks again (the "missing" trigger).

Three uses, one component:
    decoder_pad(...)    the Decoder page: a pad over the manifold picture (2-D) or sliders (more dimensions);
                        releasing commits z through `on_commit(z)`
    hover_decoder(...)  the Latent map: the digit under the cursor of a Plotly map elsewhere in the page
If the component cannot be registered, or the browser reports an error, `unavailable()` says why in one
sentence and the pages fall back to server-side sliders.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st
from torch import nn

from ui.images import png_data_url

ASSETS = Path(__file__).with_name("latent_pad")
NAME = "latent_lab.latent_pad"
FLOAT32_MAX_WEIGHTS = 1_000_000      # above this many decoder weights, send float16 (half the bytes)
TOGGLE_KEY = "browser_decode"        # the sidebar switch "Decode in the browser"
SENT_KEY = "latent_pad_sent"         # {"weights": set of model keys, "pictures": set of picture keys} sent
FAILED_KEY = "latent_pad_failed"     # the browser's error message, once it reported one
MISSING_LIMIT = 5                    # resends of the same thing before giving up on the browser


def _compact(source: str) -> str:
    """The JS without its comment lines and indentation: the component's code travels with every rerun that
    mounts it (a commit's update), so a third fewer bytes there. Newlines stay, so the code means the same."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


def _register():
    try:
        return st.components.v2.component(
            NAME, html=(ASSETS / "latent_pad.html").read_text(), css=(ASSETS / "latent_pad.css").read_text(),
            js=_compact((ASSETS / "latent_pad.js").read_text()), isolate_styles=False), None
    except Exception as exc:  # noqa: BLE001 - an older Streamlit, missing files: the pages fall back
        return None, f"{type(exc).__name__}: {exc}"


_COMPONENT, _REGISTER_ERROR = _register()


# ----------------------------------------------------------------------------- is it usable?

def browser_toggle() -> bool:
    """The sidebar switch; True when the user wants the browser to decode (the default)."""
    return st.sidebar.toggle("Decode in the browser", value=True, key=TOGGLE_KEY,
                             help="On: the digit follows the mouse, decoded in this browser. Off: the server "
                                  "decodes, and the picture follows when a slider is released.")


def unavailable(model=None) -> str | None:
    """Why the browser cannot decode here (one sentence fragment), or None when it can."""
    if _COMPONENT is None:
        return f"the in-browser decoder could not load ({_REGISTER_ERROR})"
    if st.session_state.get(FAILED_KEY):
        return f"the browser reported an error ({st.session_state[FAILED_KEY]})"
    return None if model is None else decoder_problem(model)


def _inference_layers(net: nn.Sequential) -> list[nn.Module]:
    """The modules of a net that act at inference: nn.Dropout is the identity in eval mode, so it is left out."""
    return [m for m in net if not isinstance(m, nn.Dropout)]


def decoder_problem(model) -> str | None:
    """Why the browser cannot run this model's decoder, or None: it runs Linear layers with ReLU between them
    (a Dropout layer, the identity at inference, is skipped)."""
    net = getattr(model, "generation_net", None)
    if not isinstance(net, nn.Sequential) or not any(isinstance(m, nn.Linear) for m in net):
        return "this model has no decoder network to send to the browser"
    previous = None
    for module in _inference_layers(net):
        if not (isinstance(module, nn.Linear) or (isinstance(module, nn.ReLU) and isinstance(previous, nn.Linear))):
            return f"the browser cannot run a {type(module).__name__} layer of this decoder"
        previous = module
    return None


# ----------------------------------------------------------------------------- the decoder as data

def decoder_layers(model) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The generation net as [(weight [out, in], bias [out], activation after it: 'relu' or 'none')];
    a sigmoid follows the last layer. ValueError for a net the browser cannot run."""
    problem = decoder_problem(model)
    if problem:
        raise ValueError(problem)
    layers: list[list] = []
    for module in _inference_layers(model.generation_net):
        if isinstance(module, nn.Linear):
            w = module.weight.detach().float().cpu().numpy()
            b = (module.bias.detach().float().cpu().numpy() if module.bias is not None
                 else np.zeros(w.shape[0], np.float32))
            layers.append([w, b, "none"])
        else:  # a ReLU after a Linear
            layers[-1][2] = "relu"
    return [tuple(layer) for layer in layers]


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4" if dtype == "float32" else "<f2").tobytes()
                            ).decode("ascii")


def decoder_payload(model, dtype: str | None = None) -> dict:
    """The decoder's weights for the browser: base64 little-endian arrays with their shapes."""
    layers = decoder_layers(model)
    count = sum(w.size + b.size for w, b, _ in layers)
    dtype = dtype or ("float32" if count <= FLOAT32_MAX_WEIGHTS else "float16")
    cfg = model.config
    return {"dtype": dtype, "x_dim": int(model.x_dim), "latent_dim": int(cfg.latent_dim),
            "image_size": int(cfg.image_size), "weights": int(count),
            "layers": [{"w": _b64(w, dtype), "b": _b64(b, dtype), "shape": list(w.shape), "act": act}
                       for w, b, act in layers]}


def model_key(path: str) -> str:
    """A short key naming one version of a checkpoint file (its path and modification time)."""
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return hashlib.sha1(f"{Path(path).resolve()}:{stamp}".encode()).hexdigest()[:12]


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_payload(path: str, key: str) -> dict:
    from ui.model_catalogue import load_model
    return decoder_payload(load_model(path)[0])


def _sent() -> dict[str, set]:
    return st.session_state.setdefault(SENT_KEY, {"weights": set(), "pictures": set(), "asked": {}})


def _on_missing(widget_key: str) -> None:
    """The browser lacks something it was sent (a reload, a dropped message): send it again, a few times."""
    ask = (st.session_state.get(widget_key) or {}).get("missing") or {}
    kind, key = ask.get("kind"), ask.get("key")
    sent = _sent()
    if kind not in ("weights", "pictures", "picture") or not key:
        return
    kind = "pictures" if kind == "picture" else kind
    asked = sent["asked"].get(key, 0) + 1
    sent["asked"][key] = asked
    if asked > MISSING_LIMIT:
        st.session_state[FAILED_KEY] = f"the {kind} for {key} never arrived"
    sent[kind].discard(key)


def _on_failed(widget_key: str) -> None:
    message = (st.session_state.get(widget_key) or {}).get("failed")
    if message:
        st.session_state[FAILED_KEY] = str(message)[:200]


def _mount(key: str, data: dict, on_commit: Callable[[list[float]], None] | None = None,
           height: int | str = "content"):
    def commit() -> None:
        value = (st.session_state.get(key) or {}).get("commit") or {}
        z = value.get("z") if isinstance(value, dict) else None
        if on_commit is not None and isinstance(z, list) and z and all(isinstance(v, (int, float)) for v in z):
            on_commit([float(v) for v in z])

    return _COMPONENT(key=key, data=data, height=height, on_commit_change=commit,
                      on_missing_change=lambda: _on_missing(key), on_failed_change=lambda: _on_failed(key))


def _model_data(path) -> dict:
    path = str(path)
    key = model_key(path)
    data = {"model": key}
    sent = _sent()
    if key not in sent["weights"]:
        data["weights"] = _cached_payload(path, key)
        sent["weights"].add(key)
    return data


# ----------------------------------------------------------------------------- the two uses

def decoder_pad(path: str, model, *, z, rev: int, echo: bool, label: int | None, value_range: tuple[float, float],
                on_commit: Callable[[list[float]], None], grid: dict | None = None, key: str = "decoder_pad") -> None:
    """The Decoder's explorer: the decoded digit, and a pad over the manifold picture (`grid`: {png (bytes or
    a data URL), z1 of its columns, z2 of its rows from the top} for a 2-D latent) or one slider per dimension. `rev` counts the server's changes of z;
    `echo` says the last one was the browser's own commit (so the browser keeps its newer z)."""
    data = {**_model_data(path), "mode": "pad" if grid is not None else "sliders",
            "latent_dim": int(model.config.latent_dim), "z": [float(v) for v in z], "rev": int(rev),
            "echo": bool(echo) or None, "label": None if label is None else int(label),
            "range": [float(value_range[0]), float(value_range[1])]}
    if grid is not None:
        pic = f"{data['model']}:{label}"
        data["grid"] = {"key": pic, "z1": [float(v) for v in grid["z1"]], "z2": [float(v) for v in grid["z2"]]}
        if pic not in _sent()["pictures"]:
            png = grid["png"]
            data["grid"]["png"] = png if isinstance(png, str) else png_data_url(png)
            _sent()["pictures"].add(pic)
    _mount(key, data, on_commit)


def hover_decoder(path: str, model, *, chart_key: str, class_names: list[str] | None = None,
                  key: str = "latent_map_hover") -> None:
    """The digit under the cursor of the Plotly chart mounted with `key=chart_key` (its axes are z1, z2);
    for a label model, one digit per class (`class_names`)."""
    data = {**_model_data(path), "mode": "hover", "latent_dim": int(model.config.latent_dim),
            "chart": f".st-key-{chart_key}", "classes": list(class_names) if class_names else None}
    _mount(key, data)

"""Decode in the browser: a Streamlit component (components v2, inline JS/CSS from ui/latent_pad/; its MLP
decoder, mlp.js, is also the live encoder's) that holds a model's decoder and redraws the digit on every pointer
move, with no server round trip.

Two engines, picked per model by `engine(model, onnx_decoder)`:
- "mlp": the model's own MLP decoder (Linear / ReLU ..., a sigmoid at the end, the one-hot label before z for
  a label model) in hand-written JS, the faster path. Its weights travel once per model and session, base64
  float32 (float16 above FLOAT32_MAX_WEIGHTS weights).
- "onnx": any other decoder, given as an ONNX graph and a spec (`OnnxSpec`: its inputs, output, latent size,
  classes, image size, logits or probabilities), run by ONNX Runtime Web (WebAssembly, one thread) which the
  app serves itself (ui/ort_web.py, static/ort/); the runtime is loaded only when such a model is shown. The
  graph's bytes travel once per model and session, like the MLP's weights. A model carries it as its
  `onnx_decoder` attribute, `(graph bytes, spec dict)`, or a page passes `onnx_decoder=` explicitly.
Session state remembers what was sent and later reruns send only the model key (the browser keeps a page-wide
cache by key). Should the browser lose it, it asks again (the "missing" trigger).

Three uses, one component:
    decoder_pad(...)    the Decoder page: a pad over the manifold picture (2-D) or sliders (more dimensions);
                        releasing commits z through `on_commit(z)`
    hover_decoder(...)  the Latent map: the digit under the cursor of a Plotly map elsewhere in the page
If the component cannot be registered, the model has no decoder the browser can run, or the browser reports an
error, `unavailable(model)` says why in one sentence and the pages fall back to server-side sliders.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import streamlit as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from ui import ort_web
from ui.images import png_data_url

ASSETS = Path(__file__).with_name("latent_pad")
NAME = "latent_lab.latent_pad"
FLOAT32_MAX_WEIGHTS = 1_000_000      # above this many decoder weights, send float16 (half the bytes)
TOGGLE_KEY = "browser_decode"        # the sidebar switch "Decode in the browser"
SENT_KEY = "latent_pad_sent"         # {"weights": set of model keys, "pictures": set of picture keys} sent
FAILED_KEY = "latent_pad_failed"     # the browser's error message, once it reported one
FAILED_ONNX_KEY = "latent_pad_failed_onnx"  # {ONNX decoder key: the browser's error message} (that model only)
MISSING_LIMIT = 5                    # resends of the same thing before giving up on the browser
ONNX_MAX_BYTES = 64 * 2**20          # an ONNX decoder above this size is not sent to the browser


def _compact(source: str) -> str:
    """The JS without its comment lines and indentation: the component's code travels with every rerun that
    mounts it (a commit's update), so a third fewer bytes there. Newlines stay, so the code means the same."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


def component_js(*files: str, folder: Path = ASSETS) -> str:
    """One component's inline module: mlp.js (the MLP decoder both components run) then its own files, compacted."""
    return "\n".join(_compact(path.read_text()) for path in (ASSETS / "mlp.js", *(folder / f for f in files)))


def _register():
    try:
        return st.components.v2.component(
            NAME, html=(ASSETS / "latent_pad.html").read_text(), css=(ASSETS / "latent_pad.css").read_text(),
            js=component_js("latent_pad.js"), isolate_styles=False), None
    except Exception as exc:  # noqa: BLE001 - an older Streamlit, missing files: the pages fall back
        return None, f"{type(exc).__name__}: {exc}"


_COMPONENT, _REGISTER_ERROR = _register()


# ----------------------------------------------------------------------------- is it usable?

def browser_toggle() -> bool:
    """The sidebar switch; True when the user wants the browser to decode (the default)."""
    return st.sidebar.toggle("Decode in the browser", value=True, key=TOGGLE_KEY,
                             help="On: the digit follows the mouse, decoded in this browser. Off: the server "
                                  "decodes, and the picture follows when a slider is released.")


def unavailable(model=None, onnx_decoder: OnnxDecoder | None = None) -> str | None:
    """Why the browser cannot decode here (one sentence fragment), or None when it can. With a model (and its
    ONNX decoder, when a page holds it apart from the model), why the browser cannot run that model."""
    if _COMPONENT is None:
        return f"the in-browser decoder could not load ({_REGISTER_ERROR})"
    if st.session_state.get(FAILED_KEY):
        return f"the browser reported an error ({st.session_state[FAILED_KEY]})"
    if model is None and onnx_decoder is None:
        return None
    _, problem = _pick(model, onnx_decoder)
    return problem


def engine(model, onnx_decoder: OnnxDecoder | None = None) -> Literal["mlp", "onnx"] | None:
    """How the browser decodes this model: "mlp" (its MLP decoder in hand-written JS, the faster path),
    "onnx" (its ONNX decoder in ONNX Runtime Web), or None when it cannot (`unavailable` says why)."""
    picked, _ = _pick(model, onnx_decoder)
    return None if picked is None else picked[0]


def onnx_decoder_of(model, onnx_decoder: OnnxDecoder | None = None) -> OnnxDecoder | None:
    """The ONNX decoder a page passed, else the one the model carries (its `onnx_decoder` attribute)."""
    return onnx_decoder if onnx_decoder is not None else getattr(model, "onnx_decoder", None)


def _pick(model, onnx_decoder):
    """(("mlp", None) or ("onnx", (graph, OnnxSpec, key)), None), or (None, why not)."""
    mlp_problem = (decoder_problem(model) if model is not None
                   else "this model has no decoder network to send to the browser")
    if mlp_problem is None:
        return ("mlp", None), None
    onnx = onnx_decoder_of(model, onnx_decoder)
    if onnx is None:
        return None, mlp_problem
    parsed = parse_onnx_decoder(onnx)
    if isinstance(parsed, str):
        return None, parsed
    failed = st.session_state.get(FAILED_ONNX_KEY, {}).get(parsed[2])
    if failed:
        return None, f"the browser could not run this model's ONNX decoder ({failed})"
    problem = ort_web.problem()
    return (None, problem) if problem else (("onnx", parsed), None)


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


# ----------------------------------------------------------------------------- ONNX decoders

OnnxDecoder = tuple[bytes, Mapping]      # (the graph, as torch.onnx.export writes it; its spec, as OnnxSpec reads it)
Role = Literal["z", "label", "label+z", "z+label"]


class OnnxInput(BaseModel):
    """One input of the graph: its name, its shape with the batch first (an int, or a name or None for a
    dynamic batch; the other sizes fixed), and what it holds (see OnnxSpec)."""
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str = Field(min_length=1, max_length=256)
    shape: list[int | str | None] = Field(min_length=2, max_length=6)
    role: Role | None = None


class OnnxSpec(BaseModel):
    """What the browser needs to run an ONNX decoder (ui/latent_pad/latent_pad.js, `onnxDecode`).

    inputs   one or two, batch first. z is [B, latent_dim] (or, say, [B, latent_dim, 1, 1]); a label model
             takes the one-hot label (float32) as a second input [B, label_classes] (role "label"), or in the same
             input as z: "label+z" (the one-hot first, as LatentModel concatenates them) or "z+label". Left out,
             the roles are: one input, "z" (no classes) or "label+z"; two inputs, z then the label.
    output   the output's name: B images of image_size**2 values each (one channel; any shape with B first),
             logits when output_is_logits (the browser applies the sigmoid), else probabilities.
    Unknown keys are ignored, so an importer may keep more in the same dict."""
    model_config = ConfigDict(extra="ignore", frozen=True)
    inputs: list[OnnxInput] = Field(min_length=1, max_length=2)
    output: str = Field(min_length=1, max_length=256)
    latent_dim: int = Field(ge=1, le=1024)
    label_classes: int = Field(default=0, ge=0, le=1000)
    image_size: int = Field(ge=1, le=256)
    output_is_logits: bool = True

    def roles(self) -> list[str]:
        given = [i.role for i in self.inputs]
        if len(given) == 1:
            return [given[0] or ("label+z" if self.label_classes else "z")]
        if given[0] is None and given[1] is None:
            return ["z", "label"]
        if None in given:   # one named: the other is what is left
            other = {"z": "label", "label": "z"}.get(given[0] or given[1], "z")
            return [g or other for g in given]
        return list(given)

    @model_validator(mode="after")
    def _consistent(self) -> "OnnxSpec":
        roles = self.roles()
        if len({i.name for i in self.inputs}) < len(self.inputs):
            raise ValueError("two inputs have the same name")
        if sum("z" in r for r in roles) != 1:
            raise ValueError(f"exactly one input must hold z (roles: {', '.join(roles)})")
        holds_label = sum("label" in r for r in roles)
        if self.label_classes and holds_label != 1:
            raise ValueError(f"a model of {self.label_classes} classes needs one input holding the one-hot label")
        if not self.label_classes and holds_label:
            raise ValueError("an input holds a label, but label_classes is 0")
        for inp, role in zip(self.inputs, roles):
            if isinstance(inp.shape[0], int) and inp.shape[0] != 1:
                raise ValueError(f"input {inp.name!r} has shape {inp.shape}: a fixed batch size must be 1")
            rest = inp.shape[1:]
            if not all(isinstance(d, int) and d >= 1 for d in rest):
                raise ValueError(f"input {inp.name!r} has shape {inp.shape}: only its first (batch) size may vary")
            width = {"z": self.latent_dim, "label": self.label_classes}.get(role, self.latent_dim + self.label_classes)
            if int(np.prod(rest)) != width:
                raise ValueError(f"input {inp.name!r} ({role}) has shape {inp.shape}, which holds "
                                 f"{int(np.prod(rest))} values per example, not {width}")
        return self

    def browser(self) -> dict:
        """The spec as the browser reads it, with every input's role spelled out."""
        return {"inputs": [{"name": i.name, "shape": list(i.shape), "role": r} for i, r in zip(self.inputs, self.roles())],
                "output": self.output, "latent_dim": self.latent_dim, "label_classes": self.label_classes,
                "image_size": self.image_size, "output_is_logits": self.output_is_logits}


def _spec_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"its ONNX decoder's description is not usable ({where + ': ' if where else ''}{message})"


def parse_onnx_decoder(onnx_decoder) -> tuple[bytes, OnnxSpec, str] | str:
    """(graph, spec, key) for a (graph bytes, spec dict) pair, or why the browser cannot take it (a sentence
    fragment). The key names the pair by content: the browser keeps one ONNX session per key."""
    try:
        graph, raw = onnx_decoder
    except (TypeError, ValueError):
        return "its ONNX decoder is not a (graph bytes, spec) pair"
    if not isinstance(graph, (bytes, bytearray, memoryview)) or not len(graph):
        return "its ONNX decoder has no graph bytes"
    graph = bytes(graph)
    if len(graph) > ONNX_MAX_BYTES:
        return (f"its ONNX decoder is {len(graph) / 2**20:.0f} MB, more than the "
                f"{ONNX_MAX_BYTES / 2**20:.0f} MB the browser is sent")
    try:
        spec = raw if isinstance(raw, OnnxSpec) else OnnxSpec.model_validate(dict(raw))
    except ValidationError as e:
        return _spec_error(e)
    except (TypeError, ValueError) as e:
        return f"its ONNX decoder's description is not usable ({e})"
    return graph, spec, onnx_key(graph, json.dumps(spec.browser(), sort_keys=True))


@functools.lru_cache(maxsize=32)
def onnx_key(graph: bytes, spec_json: str) -> str:
    """A short key naming one ONNX decoder by content (bytes objects cache their hash, so a page that holds the
    same bytes object pays for the digest once)."""
    return "onnx-" + hashlib.sha1(graph + spec_json.encode()).hexdigest()[:12]


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
    """The browser's error: about one ONNX decoder ({model, message}: only that model falls back), or about
    the component itself (a string: every model falls back, for this session)."""
    failed = (st.session_state.get(widget_key) or {}).get("failed")
    if isinstance(failed, dict) and str(failed.get("model", "")).startswith("onnx-"):
        st.session_state.setdefault(FAILED_ONNX_KEY, {})[str(failed["model"])] = str(failed.get("message"))[:200]
    elif failed:
        st.session_state[FAILED_KEY] = str(failed)[:200]


def _mount(key: str, data: dict, on_commit: Callable[[list[float]], None] | None = None,
           height: int | str = "content"):
    def commit() -> None:
        value = (st.session_state.get(key) or {}).get("commit") or {}
        z = value.get("z") if isinstance(value, dict) else None
        if on_commit is not None and isinstance(z, list) and z and all(isinstance(v, (int, float)) for v in z):
            on_commit([float(v) for v in z])

    return _COMPONENT(key=key, data=data, height=height, on_commit_change=commit,
                      on_missing_change=lambda: _on_missing(key), on_failed_change=lambda: _on_failed(key))


def _model_data(path, model, onnx_decoder) -> tuple[dict, int]:
    """The decoder's part of the component's data (the weights or graph only if not yet sent), and the latent
    size. ValueError when the browser cannot run this model."""
    picked, problem = _pick(model, onnx_decoder)
    if picked is None:
        raise ValueError(problem)
    sent = _sent()
    if picked[0] == "mlp":
        path = str(path)
        key = model_key(path)
        data = {"model": key, "engine": "mlp"}
        if key not in sent["weights"]:
            data["weights"] = _cached_payload(path, key)
        latent_dim = int(model.config.latent_dim)
    else:
        graph, spec, key = picked[1]
        data = {"model": key, "engine": "onnx", "ort": ort_web.browser_config()}
        if key not in sent["weights"]:
            data["onnx"] = {"graph": base64.b64encode(graph).decode("ascii"), "spec": spec.browser()}
        latent_dim = spec.latent_dim
    sent["weights"].add(key)
    return data, latent_dim


# ----------------------------------------------------------------------------- the two uses

def decoder_pad(path: str, model, *, z, rev: int, echo: bool, label: int | None, value_range: tuple[float, float],
                on_commit: Callable[[list[float]], None], grid: dict | None = None, key: str = "decoder_pad",
                onnx_decoder: OnnxDecoder | None = None) -> None:
    """The Decoder's explorer: the decoded digit, and a pad over the manifold picture (`grid`: {png (bytes or
    a data URL), z1 of its columns, z2 of its rows from the top} for a 2-D latent) or one slider per dimension.
    `rev` counts the server's changes of z; `echo` says the last one was the browser's own commit (so the
    browser keeps its newer z). The engine is picked by `engine(model, onnx_decoder)`: an MLP decoder in
    hand-written JS, else the ONNX decoder (`onnx_decoder`, or the model's own) in ONNX Runtime Web."""
    model_data, latent_dim = _model_data(path, model, onnx_decoder)
    data = {**model_data, "mode": "pad" if grid is not None else "sliders",
            "latent_dim": latent_dim, "z": [float(v) for v in z], "rev": int(rev),
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
                  key: str = "latent_map_hover", onnx_decoder: OnnxDecoder | None = None) -> None:
    """The digit under the cursor of the Plotly chart mounted with `key=chart_key` (its axes are z1, z2);
    for a label model, one digit per class (`class_names`). The engine is picked as for `decoder_pad`."""
    model_data, latent_dim = _model_data(path, model, onnx_decoder)
    data = {**model_data, "mode": "hover", "latent_dim": latent_dim,
            "chart": f".st-key-{chart_key}", "classes": list(class_names) if class_names else None}
    _mount(key, data)

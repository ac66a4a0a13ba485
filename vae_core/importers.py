"""Bring your own VAE: models trained by other code, as Latent Lab checkpoints that every page opens.

Three reference codes map exactly onto LatentModel (so the pages, the estimators and the browser's own decoder
work unchanged), read without running any code from the file (torch.load(weights_only=True), safetensors,
or h5py):

    fc-vae    the fc1, fc21, fc22, fc3, fc4 VAE of PyTorch's examples/vae/main.py (784-400-20) and of the seed
              notes' PyTorch VAE (784-512-2): fc1 -> ReLU -> (fc21 = mu, fc22 = logvar); fc3 -> ReLU -> fc4 ->
              sigmoid. (pytorch/examples now clamps the probabilities to [1e-4, 1 - 1e-4] and trains with a
              continuous Bernoulli; Latent Lab keeps fc4's logits and its Bernoulli likelihood.)
    timbmg    timbmg/VAE-CVAE-MNIST's VAE and label CVAE: encoder MLP (ReLU after every layer) on [x, one-hot c],
              linear_means / linear_log_var heads, decoder MLP on [z, one-hot c] ending in a sigmoid, N(0, I)
              prior: variant cvae with prior 'standard' (or vae). LatentModel puts the condition first ([c, x],
              [c, z]), so the first layers' weight columns are permuted.
    keras-h5  a Keras VAE of Dense layers saved as HDF5 (the seed notes' Keras VAE: 784 -> 512 relu -> mu and
              log_sigma heads -> 512 relu -> 784 sigmoid), read with h5py, no TensorFlow. Keras kernels are
              [in, out]. The seed's log_sigma is log sigma^2 (it samples mu + exp(log_sigma / 2) * eps and its KL
              uses exp(log_sigma) as the variance), so it is the log-variance as it stands.

Any other PyTorch VAE follows the small protocol of vae_core/external.py and travels as ONNX graphs:
`explore(model)` from Python, or `python -m vae_core import --module my_vae.py:build --weights my.pt` from
the shell (the person's own file; never anything from a browser).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import pickle
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .atomic import check_writable_file
from .checkpoints import SUFFIX, save_checkpoint
from .config import ModelConfig
from .data import DatasetUnavailable, ImageDataset, load_dataset, make_batch
from .evaluation import checkpoint_metrics, encode_dataset
from .external import OnnxModel, ProtocolError, protocol_config
from .models import LatentModel, build_model, plain_variant
from .record import CheckpointError, CheckpointRecord, ModelSource, compact_history

KINDS = ("fc-vae", "timbmg", "keras-h5")
MAX_FILE_BYTES = 2 * 1024**3          # a weights file read whole (the largest shipped model is 8 MB)
MAX_HISTORY_BYTES = 16 * 1024**2
CHECK_IMAGES = 1000                   # metrics_test1000, as `train` stores them
FLOAT16_IMAGES = 500
AGREEMENT = 1e-4                      # exported graphs against the torch model, pixel probabilities
REPO = Path(__file__).resolve().parent.parent
MODEL_DIRS_VAR = "LATENT_LAB_MODEL_DIRS"


class ForeignModelError(ValueError):
    """A file or object cannot be imported; the message says why, in one sentence."""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_of(kind: str, path: str | os.PathLike | None, code: str = "") -> ModelSource:
    if path is None:
        return ModelSource(kind=kind, code=code[:200])
    return ModelSource(kind=kind, file=Path(path).name[:200], sha256=sha256_of(path), code=code[:200])


# ----------------------------------------------------------------------------- reading weights, running nothing
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch weights file (.pt / .pth / .bin: torch.load(weights_only=True), which refuses
    any pickled object other than tensors and plain containers) or a .safetensors file. A checkpoint dict that
    keeps the weights under 'state_dict', 'model_state_dict' or 'model' is unwrapped; a 'module.' prefix
    (DataParallel) is dropped. ForeignModelError with a sentence otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ForeignModelError(f"there is no file at {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ForeignModelError(f"{path.name} holds {size:,} bytes; at most {MAX_FILE_BYTES:,} are read")
    if path.suffix == SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ForeignModelError(f"{path.name} is not a readable safetensors file: {e}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ForeignModelError(
                f"{path.name} holds more than weights (a pickled object such as a whole model, or code that "
                "would run on loading); Latent Lab reads only tensors (torch.load with weights_only=True) and "
                "ran none of it: save the weights with torch.save(model.state_dict(), path)") from None
        except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ForeignModelError(f"{path.name} is not a readable PyTorch weights file: {first}") from None
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                          for k, v in state.items()):
        raise ForeignModelError(f"{path.name} does not hold a state dict (names -> tensors); save it with "
                                "torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ForeignModelError(f"{path.name}: the weight {key} holds NaN or infinite values")
    return state


def _expect_keys(state: dict, wanted: set[str], what: str, name: str) -> None:
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:4])}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:4])}"] if unexpected else [])
        raise ForeignModelError(f"{name} is not {what}: " + "; ".join(parts))


def _linear(state: dict, prefix: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    w, b = state[prefix + ".weight"], state[prefix + ".bias"]
    if w.dim() != 2 or b.shape != (w.shape[0],):
        raise ForeignModelError(f"{name}: {prefix} is not a linear layer (weight {list(w.shape)}, bias {list(b.shape)})")
    return w.float(), b.float()


def _image_side(pixels: int, name: str) -> int:
    side = math.isqrt(pixels)
    if side * side != pixels:
        raise ForeignModelError(f"{name} draws {pixels:,} pixels, not a square image")
    return side


def _assemble(config: ModelConfig, layers: dict[str, tuple[torch.Tensor, torch.Tensor]], name: str) -> LatentModel:
    """A LatentModel of `config` with its Linear layers set from `layers` (module path -> (weight, bias))."""
    try:
        model = build_model(config, seed=0)
    except ValueError as e:
        raise ForeignModelError(f"{name} maps onto no Latent Lab model: {e}") from None
    state = {}
    for module, (w, b) in layers.items():
        state[module + ".weight"], state[module + ".bias"] = w, b
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:  # the sizes read from the file disagree with one another
        bad = next(k for k in expected if got.get(k) != expected[k])
        raise ForeignModelError(f"{name}: its layer sizes do not fit together ({bad}: {list(got.get(bad, ()))}, "
                                f"expected {list(expected[bad])})")
    model.load_state_dict(state)
    return model.eval()


# ----------------------------------------------------------------------------- the three reference codes
FC_KEYS = {f"{layer}.{p}" for layer in ("fc1", "fc21", "fc22", "fc3", "fc4") for p in ("weight", "bias")}


def map_fc_vae(state: dict[str, torch.Tensor], name: str = "the file") -> tuple[LatentModel, str]:
    """(LatentModel, description) of an fc1 / fc21 / fc22 / fc3 / fc4 state dict; sizes read from the weights."""
    _expect_keys(state, FC_KEYS, "an fc1/fc21/fc22/fc3/fc4 VAE", name)
    fc1, fc21, fc22, fc3, fc4 = (_linear(state, k, name) for k in ("fc1", "fc21", "fc22", "fc3", "fc4"))
    pixels, hidden, latent = fc1[0].shape[1], fc1[0].shape[0], fc21[0].shape[0]
    if fc3[0].shape[0] != hidden:
        raise ForeignModelError(f"{name}: its decoder's hidden layer ({fc3[0].shape[0]}) differs from its encoder's "
                                f"({hidden}); Latent Lab's MLPs mirror each other (import it with --module instead)")
    config = ModelConfig(variant=plain_variant(False), condition="none", latent_dim=latent, hidden_dims=(hidden,),
                         image_size=_image_side(pixels, name))
    model = _assemble(config, {
        "recognition_net.body.0": fc1,
        # GaussianNet emits one Linear of 2 * latent and chunks it into (mu, logvar): fc21's rows, then fc22's
        "recognition_net.body.2": (torch.cat([fc21[0], fc22[0]]), torch.cat([fc21[1], fc22[1]])),
        "generation_net.0": fc3, "generation_net.2": fc4}, name)
    return model, f"a PyTorch fc1/fc21/fc22/fc3/fc4 VAE ({pixels}-{hidden}-{latent}, ReLU, Bernoulli pixels)"


def _numbered(state: dict, prefix: str) -> list[str]:
    """The module names prefix0, prefix1, ... present in a state dict, in order."""
    out = []
    while f"{prefix}{len(out)}.weight" in state:
        out.append(f"{prefix}{len(out)}")
    return out


def map_timbmg(state: dict[str, torch.Tensor], name: str = "the file") -> tuple[LatentModel, str]:
    """(LatentModel, description) of a timbmg/VAE-CVAE-MNIST VAE or CVAE state dict."""
    enc, dec = _numbered(state, "encoder.MLP.L"), _numbered(state, "decoder.MLP.L")
    heads = ["encoder.linear_means", "encoder.linear_log_var"]
    wanted = {f"{m}.{p}" for m in [*enc, *heads, *dec] for p in ("weight", "bias")}
    if not enc or not dec:
        wanted |= {"encoder.MLP.L0.weight", "decoder.MLP.L0.weight"}
    _expect_keys(state, wanted, "a timbmg/VAE-CVAE-MNIST model (encoder.MLP.L0 ..., encoder.linear_means, "
                                "encoder.linear_log_var, decoder.MLP.L0 ...)", name)
    enc_layers = [_linear(state, m, name) for m in enc]
    means, log_var = (_linear(state, m, name) for m in heads)
    dec_layers = [_linear(state, m, name) for m in dec]
    latent, pixels = means[0].shape[0], dec_layers[-1][0].shape[0]
    labels = dec_layers[0][0].shape[1] - latent                     # the decoder reads [z, one-hot c]
    if labels < 0 or enc_layers[0][0].shape[1] != pixels + labels:
        raise ForeignModelError(f"{name}: its first layers read {enc_layers[0][0].shape[1]} and "
                                f"{dec_layers[0][0].shape[1]} inputs, which fit no {latent}-D model of "
                                f"{pixels}-pixel images (with or without a one-hot label)")
    hidden = [w.shape[0] for w, _ in enc_layers]
    if [w.shape[0] for w, _ in dec_layers[:-1]] != hidden[::-1]:
        raise ForeignModelError(f"{name}: its decoder's hidden layers {[w.shape[0] for w, _ in dec_layers[:-1]]} "
                                f"are not its encoder's {hidden} reversed; Latent Lab's MLPs mirror each other "
                                "(import it with --module instead)")
    conditional = labels > 0
    if conditional:  # timbmg concatenates [x, c] and [z, c]; LatentModel [c, x] and [c, z]
        (w, b) = enc_layers[0]
        enc_layers[0] = (torch.cat([w[:, pixels:], w[:, :pixels]], dim=1), b)
        (w, b) = dec_layers[0]
        dec_layers[0] = (torch.cat([w[:, latent:], w[:, :latent]], dim=1), b)
    config = ModelConfig(variant=plain_variant(conditional), condition="label" if conditional else "none",
                         prior="standard", latent_dim=latent, hidden_dims=tuple(hidden),
                         num_classes=labels if conditional else 10, image_size=_image_side(pixels, name))
    layers = {f"recognition_net.body.{2 * i}": layer for i, layer in enumerate(enc_layers)}
    layers[f"recognition_net.body.{2 * len(enc_layers)}"] = (torch.cat([means[0], log_var[0]]),
                                                              torch.cat([means[1], log_var[1]]))
    layers.update({f"generation_net.{2 * i}": layer for i, layer in enumerate(dec_layers)})
    model = _assemble(config, layers, name)
    sizes = "-".join(map(str, [pixels, *hidden, latent]))
    kind = f"label CVAE ({labels} classes, N(0, I) prior)" if conditional else "VAE"
    return model, f"a timbmg/VAE-CVAE-MNIST {kind}, {sizes} MLPs with ReLU, Bernoulli pixels"


def _keras_layers(path: Path) -> tuple[list[tuple[str, Any, Any, str | None]], bool]:
    """[(layer name, kernel [in, out], bias [out], activation or None)] of the Dense layers of a Keras HDF5
    file, in the file's layer order, and whether the file holds the model's config (the activations)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - a requirement
        raise ForeignModelError("reading Keras HDF5 files needs the h5py package (pip install h5py)") from None
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ForeignModelError(f"{path.name} is not a readable HDF5 file: {e}") from None
    with f:
        activations: dict[str, str] = {}
        raw = f.attrs.get("model_config")
        if raw is not None:
            try:
                config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
                for layer in config.get("config", {}).get("layers", []):
                    cfg = layer.get("config", {})
                    if layer.get("class_name") == "Dense" and isinstance(cfg.get("activation"), str):
                        activations[cfg.get("name", layer.get("name"))] = cfg["activation"]
            except (ValueError, AttributeError, TypeError):
                raise ForeignModelError(f"{path.name} has a damaged model_config attribute") from None
        group = f["model_weights"] if "model_weights" in f else f
        names = _h5_strings(group.attrs.get("layer_names"))
        if names is None:
            raise ForeignModelError(f"{path.name} is not a Keras HDF5 model or weights file (no layer_names)")
        layers = []
        for name in names:
            if name not in group:
                raise ForeignModelError(f"{path.name} lists a layer {name[:60]!r} it does not hold")
            weights = [group[name][w] for w in _h5_strings(group[name].attrs.get("weight_names")) or []]
            if not weights:
                continue  # Input, Lambda, ...: no weights
            arrays = [w[()] for w in weights if getattr(w, "size", 0) <= 50_000_000]
            if len(arrays) != 2 or arrays[0].ndim != 2 or arrays[1].shape != (arrays[0].shape[1],):
                raise ForeignModelError(f"{path.name}: layer {name[:60]!r} is not a Dense layer with a bias "
                                        "(Latent Lab reads Keras VAEs made of Dense layers)")
            layers.append((name, arrays[0], arrays[1], activations.get(name)))
        return layers, bool(activations)


def _h5_strings(value) -> list[str] | None:
    if value is None:
        return None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in list(value)]


def map_keras_h5(path: str | os.PathLike) -> tuple[LatentModel, str]:
    """(LatentModel, description) of a Keras Dense VAE in HDF5: an encoder chain, two heads of the same shape
    (mean, then log-variance: by their names when they say so, else in the file's order, as in the seed), a
    decoder chain back to the image."""
    path = Path(path)
    name = path.name
    layers, has_config = _keras_layers(path)
    heads = next((i for i in range(1, len(layers) - 2)
                  if layers[i][1].shape == layers[i + 1][1].shape and layers[i - 1][1].shape[1] == layers[i][1].shape[0]
                  and layers[i + 2][1].shape[0] == layers[i][1].shape[1]), None)
    if heads is None:
        raise ForeignModelError(f"{name} is not a Dense VAE: Latent Lab looks for an encoder, two heads of the same "
                                f"size (mu and log_sigma) and a decoder back to the image; its Dense layers are "
                                + ", ".join(f"{n[:30]} {list(k.shape)}" for n, k, _, _ in layers[:8]))
    encoder, (first, second), decoder = layers[:heads], layers[heads:heads + 2], layers[heads + 2:]
    if _is_log_variance(first[0]) or _is_mean(second[0]):
        first, second = second, first
    want = {"encoder": "relu", "head": "linear", "decoder": "relu", "output": "sigmoid"}
    if has_config:
        roles = ([("encoder", l) for l in encoder] + [("head", first), ("head", second)]
                 + [("decoder", l) for l in decoder[:-1]] + [("output", decoder[-1])])
        for role, (lname, _, _, act) in roles:
            if act != want[role]:
                raise ForeignModelError(f"{name}: layer {lname[:60]!r} uses the activation {act!r}; Latent Lab's "
                                        f"model has {want[role]} there (ReLU hidden layers, linear heads, a sigmoid "
                                        "output)")
    pixels, latent = encoder[0][1].shape[0], first[1].shape[1]
    hidden = [k.shape[1] for _, k, _, _ in encoder]
    if decoder[-1][1].shape[1] != pixels or [k.shape[1] for _, k, _, _ in decoder[:-1]] != hidden[::-1]:
        raise ForeignModelError(f"{name}: its decoder's layers {[list(k.shape) for _, k, _, _ in decoder]} do not "
                                f"mirror its encoder's {[list(k.shape) for _, k, _, _ in encoder]} back to "
                                f"{pixels} pixels")
    t = lambda kernel, bias: (torch.from_numpy(kernel.T.copy()).float(), torch.from_numpy(bias.copy()).float())  # noqa: E731
    for lname, kernel, bias, _ in layers:
        if not (torch.isfinite(torch.from_numpy(kernel)).all() and torch.isfinite(torch.from_numpy(bias)).all()):
            raise ForeignModelError(f"{name}: layer {lname[:60]!r} holds NaN or infinite values")
    config = ModelConfig(variant=plain_variant(False), condition="none", latent_dim=latent, hidden_dims=tuple(hidden),
                         image_size=_image_side(pixels, name))
    mu, logvar = t(*first[1:3]), t(*second[1:3])
    parts = {f"recognition_net.body.{2 * i}": t(k, b) for i, (_, k, b, _) in enumerate(encoder)}
    # the seed's log_sigma is the log-variance (exp(log_sigma / 2) is its standard deviation): taken as it is
    parts[f"recognition_net.body.{2 * len(encoder)}"] = (torch.cat([mu[0], logvar[0]]), torch.cat([mu[1], logvar[1]]))
    parts.update({f"generation_net.{2 * i}": t(k, b) for i, (_, k, b, _) in enumerate(decoder)})
    model = _assemble(config, parts, name)
    sizes = "-".join(map(str, [pixels, *hidden, latent]))
    checked = "activations checked against the file's model config" if has_config else \
        "a weights-only file: ReLU hidden layers, linear heads and a sigmoid output assumed"
    return model, f"a Keras Dense VAE ({sizes}; heads {first[0]} = mean, {second[0]} = log-variance; {checked})"


def _is_log_variance(layer_name: str) -> bool:
    return bool(re.search(r"sigma|var|std", layer_name, re.IGNORECASE))


def _is_mean(layer_name: str) -> bool:
    return bool(re.search(r"(^|[^a-z])(mu|mean)", layer_name, re.IGNORECASE))


def map_file(kind: str, src: str | os.PathLike) -> tuple[LatentModel, ModelSource, str]:
    """(model, source, description) of a file of one of the reference codes (KINDS)."""
    if kind not in KINDS:
        raise ForeignModelError(f"--from must be one of {', '.join(KINDS)}; got {kind!r}")
    src = Path(src)
    if kind == "keras-h5":
        if not src.is_file():
            raise ForeignModelError(f"there is no file at {src}")
        model, description = map_keras_h5(src)
    else:
        state = read_state_dict(src)
        model, description = (map_fc_vae if kind == "fc-vae" else map_timbmg)(state, src.name)
    return model, source_of(kind, src), description


# ----------------------------------------------------------------------------- any other model: the protocol
def load_module_model(spec: str, weights: str | os.PathLike | None = None) -> tuple[Any, str]:
    """(protocol object, 'file.py:function') from 'path/to/file.py:function' (a person's own file, from the
    shell): the file is imported, the function called with no arguments, and the weights (read as
    read_state_dict reads them) loaded into what it returns with load_state_dict."""
    file, _, function = spec.rpartition(":")
    if not file or not function.isidentifier():
        raise ForeignModelError(f"--module takes FILE.py:FUNCTION, such as my_vae.py:build; got {spec!r}")
    path = Path(file)
    if path.suffix != ".py" or not path.is_file():
        raise ForeignModelError(f"--module {spec}: there is no Python file at {path}")
    module_name = f"_latent_lab_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader)
    sys.path.insert(0, str(path.resolve().parent))  # its own imports of files beside it
    try:
        loader.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.resolve().parent))
    build = getattr(module, function, None)
    if not callable(build):
        raise ForeignModelError(f"{path.name} has no function {function}()")
    model = build()
    if weights is not None:
        state = read_state_dict(weights)
        if not isinstance(model, torch.nn.Module):
            raise ForeignModelError(f"{function}() did not return a torch.nn.Module, so --weights cannot be loaded")
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            parts = ([f"missing {', '.join(result.missing_keys[:4])}"] if result.missing_keys else []) + \
                    ([f"unexpected {', '.join(result.unexpected_keys[:4])}"] if result.unexpected_keys else [])
            raise ForeignModelError(f"{Path(weights).name} does not fit the model {function}() made: " + "; ".join(parts))
    return model, f"{path.name}:{function}"


def onnx_model(model: Any, *, float16: bool = False, where: str = "the model") -> OnnxModel:
    """The OnnxModel of a protocol object, checked against the object itself: the exported graphs must give its
    pixel probabilities and latent means within AGREEMENT (a decode that samples, or branches on values in
    Python, would not survive the export)."""
    try:
        config = protocol_config(model)
        exported = OnnxModel.from_protocol(model, config, where=where)
    except (ProtocolError, CheckpointError) as e:  # off the protocol, or graphs Latent Lab does not run
        raise ForeignModelError(str(e)) from None
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(16, config.latent_dim, generator=gen)
    images = torch.rand(16, config.num_pixels, generator=gen)
    labels = torch.arange(16) % config.num_classes if config.condition == "label" else None
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    with torch.no_grad():
        want = torch.sigmoid((model.decode(z) if labels is None else model.decode(z, labels)).reshape(16, -1).float())
        got = exported.decode(z, labels)
        image_batch = images.reshape(-1, 1, config.image_size, config.image_size)
        mu = (model.encode(image_batch) if labels is None else model.encode(image_batch, labels))[0]
        mu_got, _ = exported.encode(images, labels)
    if isinstance(model, torch.nn.Module):
        model.train(was_training)
    gap = max(float((want - got).abs().max()), float((mu.reshape(16, -1).float() - mu_got).abs().max()))
    if not gap <= AGREEMENT:
        raise ForeignModelError(f"the exported graphs disagree with the model by {gap:.2g} (at most {AGREEMENT:g}): "
                                "does encode or decode draw random numbers, or branch in Python on values?")
    return exported.half() if float16 else exported


# ----------------------------------------------------------------------------- into a checkpoint
def read_history(path: str | os.PathLike) -> dict:
    """A training history as JSON ({'step', 'loss', 'recon', 'kl': per step; 'epochs': [{'epoch', 'train',
    'eval'}]}, the layout vae_core.fit keeps), for the record."""
    path = Path(path)
    if not path.is_file():
        raise ForeignModelError(f"there is no history file at {path}")
    if path.stat().st_size > MAX_HISTORY_BYTES:
        raise ForeignModelError(f"{path.name} is larger than {MAX_HISTORY_BYTES:,} bytes")
    try:
        history = json.loads(path.read_text())
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise ForeignModelError(f"{path.name} is not readable JSON: {e}") from None
    if not isinstance(history, dict):
        raise ForeignModelError(f"{path.name} must hold one JSON object (step, loss, recon, kl, epochs)")
    return history


@torch.no_grad()
def float16_change(model: LatentModel, test: ImageDataset) -> tuple[LatentModel, float]:
    """(the model with float16 weights, the largest change of a reconstructed pixel probability over the first
    FLOAT16_IMAGES test images): what `train --float16` records."""
    sub = test.subset(0, FLOAT16_IMAGES)
    y, x = make_batch(model.config, sub.images, sub.labels)
    before = model.reconstruct(y, x)
    if isinstance(model, OnnxModel):
        rounded = model.half()
    else:
        rounded = model
        for p in rounded.parameters():
            p.copy_(p.half().float())
    return rounded, float((rounded.reconstruct(y, x) - before).abs().max())


def save_imported(model: LatentModel, source: ModelSource, out: str | os.PathLike, *, dataset: str = "mnist",
                  name: str = "", description: str = "", command: str = "", history: dict | None = None,
                  test: ImageDataset | None = None, eval_samples: int = 100, test_limit: int = CHECK_IMAGES,
                  float16: bool = False, progress: Callable[[int], None] | None = None) -> Path:
    """Write an imported model as a checkpoint: its record (with `source`), the test metrics as `train` stores
    them (`metrics` on the first `test_limit` images, 0: all; `metrics_test1000`), the test set's latent means
    for a 2-D model, float16 weights when asked (and what rounding changed). Without a test set, no figures."""
    out = check_writable_file(out, "the output file", suffix=SUFFIX)
    if test is not None and test.image_size != model.config.image_size:
        raise ForeignModelError(f"the model draws {model.config.image_size}x{model.config.image_size} images; the "
                                f"{dataset} test images are {test.image_size}x{test.image_size}")
    fields: dict[str, Any] = {}
    if float16:
        if test is None:
            raise ForeignModelError("float16 storage is measured on the test set, which is not available here")
        model, fields["float16_max_abs_diff"] = float16_change(model, test)
    model.eval()
    extras = {}
    if test is not None:
        if eval_samples > 0:
            subset = test.subset(0, test_limit) if test_limit else test
            fields["metrics"] = checkpoint_metrics(model, subset, eval_samples, progress=progress)
            fields["metrics_test1000"] = (fields["metrics"] if test_limit == CHECK_IMAGES else
                                          checkpoint_metrics(model, test.subset(0, CHECK_IMAGES), eval_samples,
                                                             progress=progress))
        if model.config.has_2d_map:
            mu, _, labels = encode_dataset(model, test)
            extras = {"test_latent_means": mu, "test_labels": labels}
    if history:
        try:
            fields["history"] = compact_history(history)
            fields["epochs_completed"] = len(fields["history"].epochs) or None
        except (TypeError, ValueError) as e:
            raise ForeignModelError(f"the training history does not have the layout of vae_core.fit's "
                                    f"(step, loss, recon, kl, epochs): {str(e).splitlines()[0][:200]}") from None
    record = CheckpointRecord(model_config=model.config, dataset=dataset, name=(name or out.stem)[:200],
                              description=description[:4000], command=command[:4000], source=source, **fields)
    return save_checkpoint(out, model, record, extras=extras,
                           dtype=torch.float16 if float16 and not isinstance(model, OnnxModel) else torch.float32)


def test_set(dataset: str, data_dir: str | os.PathLike | None = None) -> ImageDataset | None:
    """The test split, or None when it is not on this machine (nothing is downloaded)."""
    try:
        return load_dataset(dataset, "test", data_dir, download=False)
    except DatasetUnavailable:
        return None


# ----------------------------------------------------------------------------- from a notebook
@dataclass
class Explored:
    """What `explore` wrote and how to open it: `command` opens Latent Lab on the folder of `path`."""

    path: Path
    command: str
    process: subprocess.Popen | None = None
    url: str | None = None

    def __str__(self) -> str:
        opened = f"Latent Lab is starting at {self.url}" if self.url else f"Open it with:\n  {self.command}"
        return f"Saved {self.path}\n{opened}"


def open_command(folder: Path, port: int | None = None) -> str:
    """The shell command that opens Latent Lab on the checkpoints of one folder."""
    flags = f" --server.port {port}" if port else ""
    return (f"{MODEL_DIRS_VAR}={shlex.quote(str(folder))} {shlex.quote(sys.executable)} -m streamlit run "
            f"{shlex.quote(str(REPO / 'app.py'))}{flags}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "model"


def explore(model: Any, dataset: str = "mnist", name: str = "", out: str | os.PathLike | None = None, *,
            float16: bool = False, eval_samples: int = 100, test_limit: int = CHECK_IMAGES,
            history: dict | None = None, data_dir: str | os.PathLike | None = None, launch: bool = False,
            port: int = 8501) -> Explored:
    """Look into a VAE trained by any PyTorch code, in every page of Latent Lab.

    `model` follows the protocol of vae_core/external.py (encode, decode, latent_dim, image_size, num_classes,
    condition, likelihood). Its encoder and decoder are exported as ONNX graphs, checked against the model,
    and written with its test figures into one checkpoint (`out`, default ./latent_lab_models/<name>.safetensors;
    `history`, in vae_core.fit's layout, becomes the Training history). Returns where it went and the command
    that opens Latent Lab on that folder (printed too); `launch=True` starts that server instead.

        import vae_core
        vae_core.explore(my_vae, name="my conv VAE")
    """
    title = name or type(model).__name__
    out = Path(out) if out is not None else Path("latent_lab_models") / f"{_slug(title)}{SUFFIX}"
    out = check_writable_file(out, "out", suffix=SUFFIX).resolve()
    converted = onnx_model(model, where=out.name)
    source = source_of("onnx", None, code=f"{type(model).__module__}.{type(model).__qualname__}")
    path = save_imported(converted, source, out, dataset=dataset, name=title,
                         description=f"{type(model).__qualname__}, trained elsewhere and explored from Python",
                         command=f"vae_core.explore({type(model).__qualname__}(...), dataset={dataset!r})",
                         history=history, test=test_set(dataset, data_dir), eval_samples=eval_samples,
                         test_limit=test_limit, float16=float16)
    folder = path.parent
    result = Explored(path, open_command(folder))
    if launch:
        env = {**os.environ, MODEL_DIRS_VAR: str(folder)}
        result.process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                                           "--server.port", str(port), "--server.headless", "true"], env=env,
                                          cwd=str(REPO))
        result.url = f"http://localhost:{port}"
    print(result)
    return result


"""Models trained by other code: the protocol they follow, and `OnnxModel`, which runs them in every page.

The protocol: any object (usually a torch.nn.Module) with

    encode(images[, labels]) -> (mu, logvar)   images float [B, 1, H, W] in [0, 1]; labels int64 [B] (label
                                               models); mu and logvar of q(z|x) (or q(z|x,y)), [B, latent_dim]
    decode(z[, labels]) -> logits              the Bernoulli logits of the pixels (before the sigmoid), [B, H*W]
                                               or [B, 1, H, W]
    latent_dim   int                           the size of z
    image_size   int (default 28)              H = W
    num_classes  int (default 10)              the labels of a label model
    condition    "none" (default) | "label"    a plain VAE, or a CVAE given the one-hot label
    likelihood   "bernoulli" (default)         the only one Latent Lab evaluates

The prior is N(0, I) and the loss the standard negative ELBO. `export_graphs` turns such a model into two ONNX
graphs (a computation, no code), which travel inside the one checkpoint file (vae_core/checkpoints.py) as
uint8 tensors ENCODER_TENSOR and DECODER_TENSOR, with a record whose `source.kind` is "onnx". Loading such a
file gives an `OnnxModel`: the public API of `LatentModel` (config, encode, decode, sample, reconstruct, loss,
device, eval, num_parameters, and the prior / recognition / generation_logits steps the estimators use),
computed by ONNX Runtime on the server, after vae_core/onnx_graphs.py has proved each graph cheap to run.

The graphs' interface (what `decoder_onnx` and `decoder_spec`, together `OnnxModel.onnx_decoder`, hand the
browser pad, ui/latent_pad.py):

    encoder  inputs  images float32 [N, H*W] in [0, 1]; label_onehot float32 [N, num_classes] (label models)
             outputs mu, logvar float32 [N, latent_dim]
    decoder  inputs  z float32 [N, latent_dim]; label_onehot float32 [N, num_classes] (label models)
             output  logits float32 [N, H*W] (pixel probabilities: sigmoid(logits)), row-major H x W
"""
from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .models import LatentModel, plain_variant
from .onnx_graphs import GraphPlan, GraphRunner, Port, half_weights
from .record import CheckpointError

ENCODER_TENSOR = "onnx.encoder"   # the checkpoint tensors (uint8, one dimension) that hold the graphs
DECODER_TENSOR = "onnx.decoder"
IMAGES, LABELS, Z = "images", "label_onehot", "z"
MU, LOGVAR, LOGITS = "mu", "logvar", "logits"
OPSET = 17
CONDITIONS = ("none", "label")


class ProtocolError(ValueError):
    """A model does not follow the protocol; the message says what to change."""


# ----------------------------------------------------------------------------- the protocol
def protocol_config(model: Any) -> ModelConfig:
    """The ModelConfig of a protocol object (its latent size, image size, classes and condition), or
    ProtocolError saying which attribute is missing or wrong."""
    for method in ("encode", "decode"):
        if not callable(getattr(model, method, None)):
            raise ProtocolError(f"the model has no {method}() method; Latent Lab needs encode(images) -> (mu, logvar) "
                                "and decode(z) -> logits (vae_core/external.py)")
    if not hasattr(model, "latent_dim"):
        raise ProtocolError("the model has no latent_dim attribute (the size of z)")
    likelihood = getattr(model, "likelihood", "bernoulli")
    if likelihood != "bernoulli":
        raise ProtocolError(f"the model's likelihood is {likelihood!r}; Latent Lab evaluates Bernoulli pixel "
                            "likelihoods only (likelihood = 'bernoulli', decode giving logits)")
    condition = getattr(model, "condition", "none")
    if condition not in CONDITIONS:
        raise ProtocolError(f"the model's condition is {condition!r}; it must be 'none' or 'label'")
    try:
        return ModelConfig(variant=plain_variant(condition != "none"), condition=condition, prior="standard",
                           latent_dim=model.latent_dim, image_size=getattr(model, "image_size", 28),
                           num_classes=getattr(model, "num_classes", 10))
    except ValueError as e:
        raise ProtocolError(f"the model's attributes do not describe a usable model: {e}") from None


def ports(config: ModelConfig) -> dict[str, tuple[tuple[Port, ...], tuple[Port, ...]]]:
    """(inputs, outputs) of each graph for a config: {'encoder': ..., 'decoder': ...}."""
    label = (Port(LABELS, config.num_classes),) if config.condition == "label" else ()
    d, p = config.latent_dim, config.num_pixels
    return {"encoder": ((Port(IMAGES, p), *label), (Port(MU, d), Port(LOGVAR, d))),
            "decoder": ((Port(Z, d), *label), (Port(LOGITS, p),))}


class _EncoderGraph(nn.Module):
    """encode() of a protocol object with the graph's interface: flat images (and a one-hot label) in."""

    def __init__(self, model, config: ModelConfig):
        super().__init__()
        self.model, self.size, self.latent = model, config.image_size, config.latent_dim

    def forward(self, images, label_onehot=None):
        x = images.reshape(-1, 1, self.size, self.size)
        mu, logvar = (self.model.encode(x) if label_onehot is None
                      else self.model.encode(x, label_onehot.argmax(dim=-1)))
        return mu.reshape(-1, self.latent), logvar.reshape(-1, self.latent)


class _DecoderGraph(nn.Module):
    def __init__(self, model, config: ModelConfig):
        super().__init__()
        self.model, self.pixels = model, config.num_pixels

    def forward(self, z, label_onehot=None):
        logits = self.model.decode(z) if label_onehot is None else self.model.decode(z, label_onehot.argmax(dim=-1))
        return logits.reshape(-1, self.pixels)


@torch.no_grad()
def check_protocol(model, config: ModelConfig) -> None:
    """Call encode and decode once on a few random inputs: the shapes they give, and logits rather than
    probabilities. ProtocolError with a sentence otherwise."""
    n, d = 4, config.latent_dim
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, config.image_size, config.image_size, generator=gen)
    labels = torch.arange(n) % config.num_classes if config.condition == "label" else None
    try:
        out = model.encode(images) if labels is None else model.encode(images, labels)
        mu, logvar = out
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"encode(images{', labels' if labels is not None else ''}) must return (mu, logvar): "
                            f"{e}") from None
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor) or t.numel() != n * d:
            shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ProtocolError(f"encode gave {name} of shape {shape} for {n} images; it must be [{n}, {d}]")
    z = torch.randn(n, d, generator=gen)
    logits = model.decode(z) if labels is None else model.decode(z, labels)
    if not isinstance(logits, torch.Tensor) or logits.numel() != n * config.num_pixels:
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ProtocolError(f"decode gave {shape} for {n} codes; it must be [{n}, {config.num_pixels}] or "
                            f"[{n}, 1, {config.image_size}, {config.image_size}] logits")
    if bool(((logits >= 0) & (logits <= 1)).all()) and float((logits < 0.05).float().mean()) > 0.1:
        # a trained decoder's logits are far below 0 on the background; probabilities sit near 0 there
        raise ProtocolError("decode must return logits (before the sigmoid); every value it gave lies in [0, 1] "
                            "and many near 0, which looks like probabilities")


def export_graphs(model, config: ModelConfig | None = None) -> tuple[bytes, bytes]:
    """(encoder, decoder) of a protocol object as ONNX graphs (torch.onnx.export, TorchScript exporter), with a
    free batch axis. The model is put in eval mode for the export and handed back in the mode it was in."""
    config = config or protocol_config(model)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        check_protocol(model, config)
        io_ports = ports(config)
        out = []
        for role, wrapper in (("encoder", _EncoderGraph), ("decoder", _DecoderGraph)):
            inputs, outputs = io_ports[role]
            args = tuple(torch.zeros(1, p.size) if p.name != LABELS
                         else torch.nn.functional.one_hot(torch.zeros(1, dtype=torch.long), p.size).float()
                         for p in inputs)
            names_in, names_out = [p.name for p in inputs], [p.name for p in outputs]
            buffer = io.BytesIO()
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(wrapper(model, config), args, buffer, dynamo=False, opset_version=OPSET,
                                  input_names=names_in, output_names=names_out,
                                  dynamic_axes={n: {0: "batch"} for n in names_in + names_out})
            out.append(buffer.getvalue())
        return out[0], out[1]
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)


# ----------------------------------------------------------------------------- the model the pages use
class OnnxModel(LatentModel):
    """A model trained by other code, run from its two ONNX graphs: the API of LatentModel.

    It is a LatentModel without networks of its own: no prior net (p(z) = N(0, I), or p(z|x) = N(0, I) for a
    label model), recognition q(z|x,y) and generation p(y|x,z) from the encoder and decoder graphs. Everything
    built on those steps (encode, decode, sample, reconstruct, the ELBO in `loss`, the likelihood estimators,
    the diagnostics) works unchanged. It has no torch parameters: it cannot be trained, and the browser's own
    MLP decoder cannot run it (`decoder_onnx` hands the browser its decoder graph instead). No gradients flow
    through it."""

    def __init__(self, config: ModelConfig, encoder: bytes, decoder: bytes, *, where: str = "the model",
                 storage_dtype: str = "float32"):
        nn.Module.__init__(self)  # not LatentModel.__init__: the networks are the graphs
        if config.condition not in CONDITIONS or not config.has_latent or config.prior != "standard":
            raise CheckpointError(f"{where}: ONNX models are plain VAEs or label CVAEs with a N(0, I) prior; "
                                  f"its record says {config.describe()}.")
        self.config = config
        self.x_dim = config.num_classes if config.condition == "label" else 0
        self.prior_net = self.recognition_net = self.generation_net = self.baseline_net = None
        self.storage_dtype = storage_dtype
        io_ports = ports(config)
        plans = {role: GraphPlan.check(data, *io_ports[role], f"the {role} graph of {where}")
                 for role, data in (("encoder", encoder), ("decoder", decoder))}
        self.encoder_graph = GraphRunner(plans["encoder"], f"the encoder graph of {where}")
        self.decoder_graph = GraphRunner(plans["decoder"], f"the decoder graph of {where}")

    @classmethod
    def from_protocol(cls, model, config: ModelConfig | None = None, *, float16: bool = False,
                      where: str = "the model") -> "OnnxModel":
        """Export a protocol object's graphs and load them as the server will (the same checks)."""
        config = config or protocol_config(model)
        encoder, decoder = export_graphs(model, config)
        if float16:
            encoder, decoder = half_weights(encoder), half_weights(decoder)
        return cls(config, encoder, decoder, where=where, storage_dtype="float16" if float16 else "float32")

    def half(self) -> "OnnxModel":
        """The same model with its weights stored as float16 (what a float16 checkpoint holds)."""
        return OnnxModel(self.config, half_weights(self.encoder_graph.plan.data),
                         half_weights(self.decoder_graph.plan.data), storage_dtype="float16")

    # ------------------------------------------------------------------ what LatentModel's API is built on
    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def recognition(self, h: torch.Tensor | None, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feeds = {IMAGES: _numpy(y)}
        if h is not None:
            feeds[LABELS] = _numpy(h)
        mu, logvar = self.encoder_graph.run(feeds)
        return torch.from_numpy(mu), torch.from_numpy(logvar)

    def generation_logits(self, z: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """Logits [..., P] for z [..., D] (any leading dimensions, as the estimators' [S, B, D])."""
        lead = z.shape[:-1]
        feeds = {Z: _numpy(z.reshape(-1, z.shape[-1]))}
        if h is not None:
            feeds[LABELS] = _numpy(h.expand(*lead, h.shape[-1]).reshape(-1, h.shape[-1]))
        (logits,) = self.decoder_graph.run(feeds)
        return torch.from_numpy(logits).reshape(*lead, -1)

    @property
    def onnx_decoder(self) -> tuple[bytes, dict]:
        """(decoder graph bytes, its spec): what the browser pad runs in ONNX Runtime Web (ui/latent_pad.py)."""
        return decoder_onnx(self), decoder_spec(self)

    def num_parameters(self) -> int:
        """The weights of both graphs (their initializers)."""
        return self.encoder_graph.plan.weights + self.decoder_graph.plan.weights

    def graph_tensors(self) -> dict[str, torch.Tensor]:
        """The graphs as the checkpoint stores them: uint8 tensors of their bytes."""
        return {name: torch.frombuffer(bytearray(runner.plan.data), dtype=torch.uint8)
                for name, runner in ((ENCODER_TENSOR, self.encoder_graph), (DECODER_TENSOR, self.decoder_graph))}


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


# ----------------------------------------------------------------------------- for the browser
def decoder_onnx(model) -> bytes | None:
    """The decoder graph of a model that runs from ONNX graphs, as bytes for ONNX Runtime Web; None for a model
    of Latent Lab's own (its MLP decoder runs in the browser's hand-written code). Interface: `decoder_spec`."""
    return model.decoder_graph.plan.data if isinstance(model, OnnxModel) else None


def decoder_spec(model) -> dict | None:
    """The interface of `decoder_onnx(model)` in the browser pad's terms (ui/latent_pad.py, OnnxSpec), or None:

        {'inputs': [{'name': 'z', 'shape': [None, D], 'role': 'z'},
                    {'name': 'label_onehot', 'shape': [None, C], 'role': 'label'}],     (the second: label models)
         'output': 'logits', 'output_is_logits': True, 'latent_dim': D, 'label_classes': C (0: none),
         'image_size': H, 'dtype': 'float32', 'max_rows': R}

    Feed float32 rows (a free batch axis), apply the sigmoid to the logits and read each row as H x W, row-major.
    R is the largest batch the server checked the graph for (the browser may run any)."""
    if not isinstance(model, OnnxModel):
        return None
    plan = model.decoder_graph.plan
    cfg = model.config
    roles = {Z: "z", LABELS: "label"}
    return {"inputs": [{"name": p.name, "shape": [None, p.size], "role": roles[p.name]} for p in plan.inputs],
            "output": LOGITS, "output_is_logits": True, "latent_dim": cfg.latent_dim,
            "label_classes": cfg.num_classes if cfg.condition == "label" else 0, "image_size": cfg.image_size,
            "dtype": "float32", "max_rows": plan.max_rows}

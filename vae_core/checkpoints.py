"""Checkpoints: one safetensors file per model.

The tensors are the model's weights (plus optional extras such as the test-set latent means, under
'extra.<name>'); the file's header holds the checkpoint record (vae_core/record.py) as JSON under the key
'latent_lab'. safetensors holds only tensors and strings, so loading a file never runs code from it (unlike
pickle). Writes go through vae_core/atomic.py (unique temporary file, fsync, rename), so a crash never leaves a
half-written checkpoint, and a save that must not overwrite claims its name atomically.

Loading checks, in this order, before any model is built: the header's size, the record against its schema
(every field bounded), the tensor names and shapes against the shapes the config implies (computed on
PyTorch's 'meta' device, which allocates nothing), then the values. Every failure is a CheckpointError
with a sentence a user can act on.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from safetensors.torch import save as safetensors_bytes

from .atomic import clean_stale_temps, write_atomic

from .external import DECODER_TENSOR, ENCODER_TENSOR, OnnxModel
from .models import LatentModel, build_model
from .onnx_graphs import MAX_GRAPH_BYTES
from .record import (MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_POINTS, MAX_SNAPSHOT_SIDE, MAX_SNAPSHOTS, CheckpointError,
                     CheckpointRecord, parse_record)

__all__ = ["CheckpointError", "CheckpointExists", "save_checkpoint", "read_record", "load_checkpoint", "list_checkpoints"]

META_KEY = "latent_lab"
EXTRA_PREFIX = "extra."
SUFFIX = ".safetensors"
MAX_HEADER_BYTES = 16 * 1024 * 1024   # the shipped files' headers are < 200 kB
MAX_EXTRA_ROWS = 1_000_000


class CheckpointExists(CheckpointError):
    """save_checkpoint(..., overwrite=False) found the name taken (perhaps by a save a moment earlier)."""


def save_checkpoint(path: str | os.PathLike, model: LatentModel, record: CheckpointRecord | None = None, *,
                    extras: dict[str, torch.Tensor] | None = None,
                    dtype: torch.dtype = torch.float32, overwrite: bool = True) -> Path:
    """Write model weights + its record (vae_core/record.py) + extra tensors, atomically.

    dtype=torch.float16 halves the file; loading converts back to float32. Without a record, the file
    holds a bare one (the model's config only). overwrite=False claims the name atomically: when the file
    exists, or another save takes the name first, CheckpointExists is raised and nothing is replaced.
    Weights that could not be loaded back (NaN or infinite, also after rounding to float16) are never written.
    An OnnxModel (vae_core/external.py) is written as its two graphs, as they are (`dtype` does not apply:
    OnnxModel.half() stores float16 weights); its record must say so (`source.kind` "onnx").
    """
    record = record if record is not None else CheckpointRecord(model_config=model.config)
    if record.model_config != model.config:
        raise ValueError("the record's model_config is not the model's config")
    if isinstance(model, OnnxModel) != record.is_onnx:
        raise ValueError("an OnnxModel is saved with a record whose source kind is 'onnx', and only then")
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    if isinstance(model, OnnxModel):
        record = dataclasses.replace(record, storage_dtype=model.storage_dtype, path=None, extras={})
        tensors = model.graph_tensors()
    else:
        record = dataclasses.replace(record, storage_dtype=str(dtype).replace("torch.", ""), path=None, extras={})
        tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    for name, value in (extras or {}).items():
        tensors[EXTRA_PREFIX + name] = torch.as_tensor(value).detach().cpu().contiguous()
    for key, value in tensors.items():  # never write weights that cannot be loaded back
        if value.is_floating_point() and not key.startswith(EXTRA_PREFIX) and not torch.isfinite(value).all():
            raise CheckpointError(f"not saved: the weight {key} holds NaN or infinite values"
                                  + (" in float16 (it exceeds float16's range of +-65504)" if dtype == torch.float16
                                     else "") + "; the file was left as it was")
    payload = safetensors_bytes(tensors, metadata={META_KEY: record.to_json()})
    try:
        return write_atomic(path, payload, overwrite=overwrite)
    except FileExistsError:
        raise CheckpointExists(f"a model named {path.stem!r} already exists in {path.parent}; choose another "
                               "name or allow overwriting") from None


def _header_size(path: Path) -> int:
    """The safetensors header length (the file's first 8 bytes), checked before the header is parsed."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CheckpointError(f"{path.name} cannot be read: {e.strerror or e}.") from None
    if len(head) < 8:
        raise CheckpointError(f"{path.name} is not a readable checkpoint (empty or truncated).")
    (size,) = struct.unpack("<Q", head)
    if size > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path.name} is not a readable checkpoint: its header claims {size:,} bytes "
                              f"(at most {MAX_HEADER_BYTES:,} are read).")
    return size


def read_record(path: str | os.PathLike) -> CheckpointRecord:
    """The record of a checkpoint, validated, without reading the weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint file at {path}.")
    _header_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated or not a safetensors "
                              f"file): {e}") from None
    if META_KEY not in header:
        raise CheckpointError(f"{path.name} is a safetensors file but not a Latent Lab checkpoint "
                              "(its header has no model record).")
    return parse_record(header[META_KEY], path.name).located(path)


def expected_shapes(record: CheckpointRecord) -> dict[str, tuple[int, ...]]:
    """The weight shapes the record's config implies, worked out without allocating any memory."""
    with torch.device("meta"):
        model = LatentModel(record.model_config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[LatentModel, CheckpointRecord]:
    """(model in eval mode, record). record.extras holds the extra tensors saved with the model.

    A model imported as ONNX graphs (record.is_onnx) comes back as an OnnxModel (vae_core/external.py), on
    the CPU, once vae_core/onnx_graphs.py has proved both graphs cheap to run; nothing in the file is run
    before that."""
    path = Path(path)
    record = read_record(path)
    if record.is_onnx:
        return _load_onnx(path, record)
    expected = expected_shapes(record)
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
            weights = {k: s for k, s in shapes.items() if not k.startswith(EXTRA_PREFIX)}
            _check_shapes(path, weights, expected)
            _check_extra_shapes(path, record, {k[len(EXTRA_PREFIX):]: s for k, s in shapes.items()
                                               if k.startswith(EXTRA_PREFIX)})
            state = {k: f.get_tensor(k) for k in weights}
            extras = {k[len(EXTRA_PREFIX):]: f.get_tensor(k) for k in shapes if k.startswith(EXTRA_PREFIX)}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path.name} could not be read (truncated or damaged): {e}") from None
    for key, value in state.items():
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise CheckpointError(f"{path.name}: tensor {key} holds NaN or infinite values")
        state[key] = value.float()
    _check_labels(path, record, extras)
    model = build_model(record.model_config, seed=None)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, record.located(path, extras)


def _load_onnx(path: Path, record: CheckpointRecord) -> tuple[OnnxModel, CheckpointRecord]:
    """The OnnxModel of a file holding graphs: the two uint8 graph tensors (sizes checked before reading),
    extras as for any checkpoint, then the graphs' own checks."""
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
            dtypes = {key: f.get_slice(key).get_dtype() for key in f.keys()}
            graphs = {k: s for k, s in shapes.items() if not k.startswith(EXTRA_PREFIX)}
            if set(graphs) != {ENCODER_TENSOR, DECODER_TENSOR}:
                raise CheckpointError(f"{path.name} says it holds ONNX graphs, but its tensors are "
                                      f"{', '.join(sorted(graphs)[:4]) or 'none'} (expected {ENCODER_TENSOR} and "
                                      f"{DECODER_TENSOR}).")
            for key, shape in graphs.items():
                if dtypes[key] != "U8" or len(shape) != 1:
                    raise CheckpointError(f"{path.name}: {key} is not a byte string (uint8, one dimension).")
                if shape[0] > MAX_GRAPH_BYTES:
                    raise CheckpointError(f"{path.name}: {key} holds {shape[0]:,} bytes; at most "
                                          f"{MAX_GRAPH_BYTES:,} are read.")
            _check_extra_shapes(path, record, {k[len(EXTRA_PREFIX):]: s for k, s in shapes.items()
                                               if k.startswith(EXTRA_PREFIX)})
            data = {k: f.get_tensor(k).numpy().tobytes() for k in graphs}
            extras = {k[len(EXTRA_PREFIX):]: f.get_tensor(k) for k in shapes if k.startswith(EXTRA_PREFIX)}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path.name} could not be read (truncated or damaged): {e}") from None
    _check_labels(path, record, extras)
    model = OnnxModel(record.model_config, data[ENCODER_TENSOR], data[DECODER_TENSOR], where=path.name,
                      storage_dtype=record.storage_dtype)
    return model.eval(), record.located(path, extras)


def _check_shapes(path: Path, found: dict, expected: dict) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path.name} does not match its own config: "
                              + (f"missing {', '.join(missing[:3])}" if missing else "")
                              + ("; " if missing and unexpected else "")
                              + (f"unexpected {', '.join(unexpected[:3])}" if unexpected else ""))
    for key, shape in found.items():
        if shape != expected[key]:
            raise CheckpointError(f"{path.name}: tensor {key} has shape {shape} but the config "
                                  f"needs {expected[key]}")


def _check_extra_shapes(path: Path, record: CheckpointRecord, shapes: dict) -> None:
    for name, shape in shapes.items():
        if not shape or shape[0] > MAX_EXTRA_ROWS or len(shape) > 4:
            raise CheckpointError(f"{path.name}: the extra tensor {name} has an unusable shape {shape}.")
    _check_snapshot_shapes(path, record, shapes)
    mu, labels = shapes.get("test_latent_means"), shapes.get("test_labels")
    if mu is not None or labels is not None:
        dim = record.model_config.latent_dim
        if mu is None or labels is None or mu != (labels[0], dim) or len(labels) != 1:
            raise CheckpointError(f"{path.name}: its stored test-set latent means {mu} and labels {labels} do "
                                  f"not fit a {dim}-D latent (expected [N, {dim}] and [N]).")


def _check_snapshot_shapes(path: Path, record: CheckpointRecord, shapes: dict) -> None:
    """A run's snapshots (vae_core/record.py) are bounded in count, size and bytes before anything is read."""
    previews, means, labels = (shapes.get(k) for k in ("snapshot_previews", "snapshot_means", "snapshot_labels"))
    if previews is None and means is None and labels is None:
        return
    k = len(record.snapshots)
    bad = (previews is None or len(previews) != 3 or previews[0] != k or k > MAX_SNAPSHOTS
           or max(previews[1:]) > MAX_SNAPSHOT_SIDE
           or (means is None) != (labels is None)
           or (means is not None and (len(means) != 3 or means[0] != k or means[1] > MAX_SNAPSHOT_POINTS
                                      or means[2] != record.model_config.latent_dim or labels != (means[1],))))
    if not bad:
        total = previews[0] * previews[1] * previews[2] + (2 * means[0] * means[1] * means[2] if means else 0)
        bad = total > MAX_SNAPSHOT_BYTES
    if bad:
        raise CheckpointError(f"{path.name}: its training snapshots (previews {previews}, means {means}, labels "
                              f"{labels}) do not fit its record's {k} snapshots or exceed their bounds.")


def _check_labels(path: Path, record: CheckpointRecord, extras: dict) -> None:
    labels = extras.get("test_labels")
    if labels is None:
        return
    classes = record.model_config.num_classes
    if labels.is_floating_point() or labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise CheckpointError(f"{path.name}: its stored test labels are not whole numbers from 0 to {classes - 1}.")
    extras["test_labels"] = labels.long()
    extras["test_latent_means"] = extras["test_latent_means"].float()
    if not torch.isfinite(extras["test_latent_means"]).all():
        raise CheckpointError(f"{path.name}: its stored test-set latent means hold NaN or infinite values.")


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The checkpoint files in a folder, sorted by name (not validated). Temporary files that a killed save
    left behind are removed on the way (a save in progress is left alone)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    clean_stale_temps(folder)
    return sorted(p for p in folder.glob("*" + SUFFIX) if p.is_file())

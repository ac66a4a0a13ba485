"""Checkpoints: one safetensors file per model.

The tensors are the model's weights (plus optional extras such as the test-set latent means, under
'extra.<name>'); the file's header metadata holds one JSON record under the key 'latent_lab':

    {"format": "latent-lab-checkpoint", "format_version": 1, "model_config": {...},
     "train_config": {...} | null, "dataset": "mnist" | ..., "metrics": {...}, "history": {...}, ...}

safetensors holds only tensors and strings, so loading a file never runs code from it (unlike pickle).
Writes go through vae_core.atomic (unique temporary file, fsync, rename), so a crash never leaves a
half-written checkpoint, and a save that must not overwrite claims its name atomically.
Loading checks everything and raises CheckpointError with a sentence a user can act on.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from safetensors.torch import save as safetensors_bytes

from .atomic import clean_stale_temps, write_atomic

from .config import ModelConfig
from .models import LatentModel, build_model

FORMAT = "latent-lab-checkpoint"
FORMAT_VERSION = 1
META_KEY = "latent_lab"
EXTRA_PREFIX = "extra."
SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of the wrong format, or does not match its config."""


class CheckpointExists(CheckpointError):
    """save_checkpoint(..., overwrite=False) found the name taken (perhaps by a save a moment earlier)."""


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def save_checkpoint(path: str | os.PathLike, model: LatentModel, meta: dict | None = None, *,
                    extras: dict[str, torch.Tensor] | None = None,
                    dtype: torch.dtype = torch.float32, overwrite: bool = True) -> Path:
    """Write model weights + its config + `meta` (train_config, dataset, metrics, history, ...) atomically.

    dtype=torch.float16 halves the file; loading converts back to float32. overwrite=False claims the name
    atomically: when the file exists, or another save takes the name first, CheckpointExists is raised and
    nothing is replaced.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    record = {k: _jsonable(v) for k, v in (meta or {}).items() if k != "extras"}
    record.update({"format": FORMAT, "format_version": FORMAT_VERSION,
                   "model_config": model.config.to_dict(), "storage_dtype": str(dtype).replace("torch.", "")})
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    for name, value in (extras or {}).items():
        tensors[EXTRA_PREFIX + name] = torch.as_tensor(value).detach().cpu().contiguous()
    for key, value in tensors.items():  # never write weights that cannot be loaded back
        if value.is_floating_point() and not key.startswith(EXTRA_PREFIX) and not torch.isfinite(value).all():
            raise CheckpointError(f"not saved: the weight {key} holds NaN or infinite values"
                                  + (" in float16 (it exceeds float16's range of +-65504)" if dtype == torch.float16
                                     else "") + "; the file was left as it was")
    payload = safetensors_bytes(tensors, metadata={META_KEY: json.dumps(record, allow_nan=True)})
    try:
        return write_atomic(path, payload, overwrite=overwrite)
    except FileExistsError:
        raise CheckpointExists(f"a model named {path.stem!r} already exists in {path.parent}; choose another "
                               "name or allow overwriting") from None


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON record of a checkpoint, checked, without building the model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path.name} is not a readable checkpoint (truncated or not a safetensors "
                              f"file): {e}") from None
    if META_KEY not in header:
        raise CheckpointError(f"{path.name} is a safetensors file but not a Latent Lab checkpoint "
                              "(its header has no model record).")
    try:
        record = json.loads(header[META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path.name} has a damaged model record: {e}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a Latent Lab checkpoint.")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path.name} has checkpoint format version {version}; this Latent Lab reads "
                              f"version {FORMAT_VERSION}.")
    try:
        record["model_config"] = ModelConfig.from_dict(record.get("model_config"))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path.name} has an invalid model config: {e}") from None
    return record


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[LatentModel, dict]:
    """(model in eval mode, meta). meta holds the JSON record (model_config as a ModelConfig) and
    meta['extras'], a dict of the extra tensors saved with the model."""
    path = Path(path)
    meta = read_meta(path)
    model = build_model(meta["model_config"], seed=None)
    expected = model.state_dict()
    state, extras = {}, {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                tensor = f.get_tensor(key)
                if key.startswith(EXTRA_PREFIX):
                    extras[key[len(EXTRA_PREFIX):]] = tensor
                else:
                    state[key] = tensor
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path.name} could not be read (truncated or damaged): {e}") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path.name} does not match its own config: "
                              + (f"missing {', '.join(missing[:3])}" if missing else "")
                              + ("; " if missing and unexpected else "")
                              + (f"unexpected {', '.join(unexpected[:3])}" if unexpected else ""))
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{path.name}: tensor {key} has shape {tuple(value.shape)} but the config "
                                  f"needs {tuple(expected[key].shape)}")
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path.name}: tensor {key} holds NaN or infinite values")
        state[key] = value.float()
    model.load_state_dict(state)
    model.to(device).eval()
    meta["extras"] = extras
    meta["path"] = str(path)
    return model, meta


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The checkpoint files in a folder, sorted by name (not validated). Temporary files that a killed save
    left behind are removed on the way (a save in progress is left alone)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    clean_stale_temps(folder)
    return sorted(p for p in folder.glob("*" + SUFFIX) if p.is_file())

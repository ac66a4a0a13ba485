"""The test set in latent space, for the Latent map page: means, projections, one point's details,
and the decoded digits drawn under the points."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from ui.cached_data import missing_data_note, test_set
from ui.images import grid, png_data_url
from ui.model_catalogue import load_model
from vae_core import LatentModel, encode_dataset, make_batch
from vae_core.data import CLASS_NAMES


@dataclass(frozen=True)
class LatentTable:
    """Latent means of a test set: mu [N, D], labels [N], and where they came from."""

    mu: np.ndarray
    labels: np.ndarray
    source: str  # "stored" (saved in the checkpoint) or "encoded" (computed here)
    note: str | None = None  # why the stored means were not used, when they were there but unusable


def map_unavailable_reason(config) -> str | None:
    """Why a model has no latent map, in one sentence, or None when it has one."""
    if not config.has_latent:
        return ("A baseline model is deterministic and has no latent space, so there is no map to draw: "
                "pick a vae, cvae, gsnn or hybrid model.")
    if config.condition == "quadrants":
        return ("This model encodes a digit together with its visible quadrants, so its latent space has no single "
                "map of the test set: pick a vae or a label-conditioned model (quadrant models live on the Compare page).")
    return None


@st.cache_data(show_spinner="Encoding the test set…", max_entries=8)
def _encoded(path: str, mtime_ns: int, dataset_name: str, data_source: str) -> tuple[np.ndarray, np.ndarray]:
    model, _ = load_model(path)
    data = test_set(dataset_name)
    mu, _, labels = encode_dataset(model, data)
    return mu.numpy(), labels.numpy()


def stored_latents(meta: dict, num_images: int | None = None) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The checkpoint's stored test-set latent means and labels, checked where they are read.

    Returns (mu [N, D] float32, labels [N] int64, None) when they are usable, or (None, None, sentence) when they
    are there but damaged (wrong shapes, non-finite means, a label that is not a class; with `num_images`, a
    count that differs from the test set's), or (None, None, None) when the checkpoint stores none.
    """
    extras = meta.get("extras") or {}
    if "test_latent_means" not in extras or "test_labels" not in extras:
        return None, None, None
    cfg = meta["model_config"]
    name = Path(str(meta.get("path", "this checkpoint"))).name
    mu = np.asarray(extras["test_latent_means"].float().numpy())
    labels = np.asarray(extras["test_labels"].numpy())
    classes = len(CLASS_NAMES.get(meta.get("dataset", "mnist"), ())) or cfg.num_classes
    if cfg.condition == "label":
        classes = min(classes, cfg.num_classes)
    problem = None
    if mu.ndim != 2 or mu.shape[1] != cfg.latent_dim:
        problem = f"its stored latent means have shape {tuple(mu.shape)}, not [images, {cfg.latent_dim}]"
    elif labels.ndim != 1 or labels.shape[0] != mu.shape[0]:
        problem = f"it stores {mu.shape[0]:,} latent means but labels of shape {tuple(labels.shape)}"
    elif labels.dtype.kind not in "iu":
        problem = f"its stored test labels are {labels.dtype} numbers, not whole class numbers"
    elif labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = int(labels[(labels < 0) | (labels >= classes)][0])
        problem = f"its stored test labels include {bad}, which is not one of the {classes} classes (0 to {classes - 1})"
    elif not np.isfinite(mu).all():
        problem = "its stored latent means hold NaN or infinite values"
    elif num_images is not None and mu.shape[0] != num_images:
        problem = (f"it stores latent means of {mu.shape[0]:,} test images but the test set here has "
                   f"{num_images:,}")
    if problem:
        return None, None, f"{name} cannot be mapped from what it stores: {problem}."
    return mu.astype(np.float32), labels.astype(np.int64), None


def test_latents(path: str, meta: dict) -> LatentTable | None:
    """The test set's latent means: stored in the checkpoint when it has usable ones, else encoded (needs the
    data; None without it). Damaged stored means or labels are never used: the table's note says why."""
    name = meta.get("dataset", "mnist")
    data = test_set(name)
    mu, labels, problem = stored_latents(meta, None if data is None else len(data))
    if mu is not None:
        return LatentTable(mu, labels, "stored")
    if data is None:
        return None
    mu, labels = _encoded(path, Path(path).stat().st_mtime_ns, name, data.source)
    note = None if problem is None else problem + " The map below was encoded from the test set instead."
    return LatentTable(mu, labels, "encoded", note)


def no_map_message(meta: dict) -> str:
    """Why test_latents gave no table: what is stored (nothing, or something damaged) and that the data is missing."""
    _, _, problem = stored_latents(meta)
    first = (problem + " Without usable stored means the map") if problem else \
        "This checkpoint has no stored latent means, so the map"
    return first + " needs the test set to encode. " + missing_data_note(meta.get("dataset", "mnist"))


def pca_axes(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the means: (scores [N, D] sorted by variance, explained-variance ratios [D])."""
    x = torch.from_numpy(np.asarray(mu, dtype=np.float32))
    x = x - x.mean(dim=0, keepdim=True)
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    var = s.square()
    return (x @ v.T).numpy(), (var / var.sum().clamp_min(1e-12)).numpy()


@torch.no_grad()
def point_details(model: LatentModel, image_uint8: torch.Tensor, label: int) -> dict:
    """Encode one test image: its latent mean and standard deviation and its reconstruction [H, W] in [0, 1]."""
    cfg = model.config
    y, x = make_batch(cfg, image_uint8.reshape(1, *image_uint8.shape).to(model.device),
                      torch.tensor([label], device=model.device))
    mu, logvar = model.encode(y, x)
    recon = model.reconstruct(y, x).reshape(cfg.image_size, cfg.image_size).cpu()
    return {"mu": mu[0].cpu().numpy(), "std": torch.exp(0.5 * logvar[0]).cpu().numpy(), "recon": recon.numpy()}


@torch.no_grad()
def decoded_background(model: LatentModel, x_range: tuple[float, float], y_range: tuple[float, float],
                       n: int = 16, label: int | None = None) -> str:
    """The decoder's output on an n x n grid spanning the given ranges of a 2-D latent, as a PNG data URI
    (dark digits on white, so coloured points stay readable on top). Row 0 is the top (highest z2)."""
    cfg = model.config
    xs = torch.linspace(x_range[0], x_range[1], n)
    ys = torch.linspace(y_range[1], y_range[0], n)
    z = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    x = None if label is None else torch.full((n * n,), int(label), dtype=torch.long)
    imgs = model.decode(z.to(model.device), x).reshape(n, n, cfg.image_size, cfg.image_size).cpu()
    picture = 255 - grid(imgs, pad=0)
    return png_data_url(picture)


def selected_indices(event, class_members: list[np.ndarray] | None = None) -> list[int]:
    """Test-set rows of the selected points of a latent_scatter chart (from each point's customdata;
    falls back to curve_number + point_index when customdata is missing)."""
    if not event:
        return []
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    points = (selection or {}).get("points", []) if isinstance(selection, dict) else getattr(selection, "points", [])
    out = []
    for p in points or []:
        custom = p.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if custom is not None:
            out.append(int(custom))
        elif class_members is not None and "curve_number" in p and "point_index" in p:
            members = class_members[int(p["curve_number"])]
            if 0 <= int(p["point_index"]) < len(members):
                out.append(int(members[int(p["point_index"])]))
    return list(dict.fromkeys(out))

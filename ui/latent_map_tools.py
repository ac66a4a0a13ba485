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


def test_latents(record) -> LatentTable | None:
    """The test set's latent means: stored in the checkpoint when it has them (load_checkpoint checked their
    shapes and labels), else encoded (needs the data; None without it). Stored means of a different number
    of images than the test set here are not used (a click would pick the wrong image): the note says so."""
    stored = record.latent_means()
    data = test_set(record.dataset)
    note = None
    if stored is not None:
        if data is None or len(stored[0]) == len(data):
            return LatentTable(*stored, "stored")
        note = (f"{Path(record.path).name} stores latent means of {len(stored[0]):,} test images, but the "
                f"{record.dataset} test set here has {len(data):,}; the map below was encoded from the test set.")
    if data is None:
        return None
    mu, labels = _encoded(record.path, Path(record.path).stat().st_mtime_ns, record.dataset, data.source)
    return LatentTable(mu, labels, "encoded", note)


def no_map_message(record) -> str:
    """Why test_latents gave no table: no stored means, and the data set is missing or damaged."""
    return ("This checkpoint has no stored latent means, so the map needs the test set to encode. "
            + missing_data_note(record.dataset))


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
    recon = model.decode(mu, x).reshape(cfg.image_size, cfg.image_size).cpu()   # reconstruct(), one encoder pass
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


def selected_indices(event, class_members: list[np.ndarray] | None = None, first_curve: int = 0) -> list[int]:
    """Test-set rows of the selected points of a latent_scatter chart (from each point's customdata;
    falls back to curve_number + point_index when customdata is missing). `first_curve`: the curve number of
    the first class's trace (1 when a layer's trace comes before the dots, ui/map_layers.py); points of other
    traces (a layer's heatmap cells) are no test images and are left out."""
    if not event:
        return []
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    points = (selection or {}).get("points", []) if isinstance(selection, dict) else getattr(selection, "points", [])
    out = []
    for p in points or []:
        curve = p.get("curve_number")
        if isinstance(curve, int) and (curve < first_curve
                                       or class_members is not None and curve >= first_curve + len(class_members)):
            continue   # not a dot: a layer's trace (the classifier's heatmap cells)
        custom = p.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if isinstance(custom, (int, float)) or (isinstance(custom, str) and custom.isdigit()):
            out.append(int(custom))
        elif class_members is not None and isinstance(curve, int) and isinstance(p.get("point_index"), int):
            members = class_members[curve - first_curve]
            if 0 <= int(p["point_index"]) < len(members):
                out.append(int(members[int(p["point_index"])]))
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- the selection, kept by the page
# Streamlit gives a chart a new identity (and an empty selection) whenever its figure changes: a view toggle,
# the dot size, another projection. So the page keeps the user's selection itself, per model, and draws it
# into every new figure; only a new selection or "Clear selection" changes it.

SELECTION_KEY = "latent_map_selection"   # {"model": path, "rows": [test-set rows]}


def kept_selection(model_path: str) -> list[int]:
    """The rows the user last selected on this model's map ([] when none, or when it was another model)."""
    kept = st.session_state.get(SELECTION_KEY) or {}
    return list(kept.get("rows", [])) if kept.get("model") == model_path else []


def keep_selection(model_path: str, rows) -> None:
    st.session_state[SELECTION_KEY] = {"model": model_path, "rows": [int(r) for r in rows]}


def show_selection(fig, rows) -> None:
    """Mark the selected rows in a latent_scatter figure (each trace's customdata holds its rows), so a
    redrawn chart shows the same selection as the panel beside it; no rows clears an earlier mark."""
    dots = [trace for trace in fig.data if trace.type in ("scatter", "scattergl")]  # a layer (the classifier's
    if not rows:                                                                    # heatmap) holds no rows
        for trace in dots:
            trace.selectedpoints = None
        return
    wanted = np.asarray(sorted(set(int(r) for r in rows)))
    for trace in dots:
        custom = np.asarray(trace.customdata if trace.customdata is not None else [], dtype=np.int64).reshape(-1)
        trace.selectedpoints = np.flatnonzero(np.isin(custom, wanted)).tolist()

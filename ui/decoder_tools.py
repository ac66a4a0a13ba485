"""Helpers of the Decoder page: the latent code kept in session state, decoding, the clickable
manifold grid, interpolation as a strip or a GIF, and turning a drawing into an MNIST-like digit.

The pure functions (no `st.` call) take a model and arrays; the few that touch session state say so.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from vae_core import ModelConfig, interpolate, manifold_grid
from ui.images import png_bytes, to_uint8, upscale
from ui.models import load_model

SLIDER_LIMIT = 3.0      # sliders span [-3, 3]; the number inputs accept a wider range
NUMBER_LIMIT = 10.0
GRID_CELLS = 15         # cells per side of the decoded manifold grid
GRID_COVERAGE = 0.997   # the grid spans the N(0, 1) quantiles of [0.15%, 99.85%], about +-3 like the sliders

Z_KEY = "decoder_z"                 # the current latent code (list of floats), the one source of truth
Z_OWNER_KEY = "decoder_z_model"     # which model (path, latent size) the code belongs to
GRID_CLICKS_KEY = "decoder_grid_clicks"  # bumped after each click on the grid, to give the chart a fresh key


def decodable(config: ModelConfig) -> bool:
    """The Decoder page shows models whose decoder needs only z (and a label): vae and label models."""
    return config.has_latent and config.condition != "quadrants"


# ----------------------------------------------------------------------------- the latent code in session state

def slider_key(i: int) -> str:
    return f"decoder_slider_{i}"


def number_key(i: int) -> str:
    return f"decoder_number_{i}"


def current_z() -> np.ndarray:
    return np.asarray(st.session_state[Z_KEY], dtype=np.float32)


def set_z(z) -> None:
    """Write a new latent code and every slider / number input that shows it (session state).
    Call it from a callback, or before the widgets are drawn in this run."""
    z = np.clip(np.asarray(z, dtype=np.float64).reshape(-1), -NUMBER_LIMIT, NUMBER_LIMIT)
    st.session_state[Z_KEY] = [round(float(v), 3) for v in z]
    for i, v in enumerate(st.session_state[Z_KEY]):
        st.session_state[slider_key(i)] = float(np.clip(v, -SLIDER_LIMIT, SLIDER_LIMIT))
        st.session_state[number_key(i)] = v


def ensure_z(model_path: str, latent_dim: int) -> None:
    """Start at the origin for a new model; restore widget values that Streamlit dropped while the
    user was on another page (it forgets the state of widgets that were not drawn)."""
    owner = [model_path, latent_dim]
    if st.session_state.get(Z_OWNER_KEY) != owner or len(st.session_state.get(Z_KEY, [])) != latent_dim:
        st.session_state[Z_OWNER_KEY] = owner
        set_z(np.zeros(latent_dim))
        return
    z = st.session_state[Z_KEY]
    for i, v in enumerate(z):
        if slider_key(i) not in st.session_state or number_key(i) not in st.session_state:
            set_z(z)
            return


def on_slider(i: int) -> None:
    """Callback of slider i: the number input follows."""
    v = float(st.session_state[slider_key(i)])
    st.session_state[Z_KEY][i] = v
    st.session_state[number_key(i)] = v


def on_number(i: int) -> None:
    """Callback of number input i: the slider follows (clipped to its range)."""
    v = st.session_state[number_key(i)]
    v = 0.0 if v is None else float(v)
    st.session_state[Z_KEY][i] = v
    st.session_state[slider_key(i)] = float(np.clip(v, -SLIDER_LIMIT, SLIDER_LIMIT))


# ----------------------------------------------------------------------------- decoding

def label_tensor(model, label: int | None) -> torch.Tensor | None:
    """The condition x for one decode: None for a vae, a [1] label tensor for a label model."""
    if model.config.condition != "label":
        return None
    return torch.tensor([0 if label is None else int(label)])


@torch.no_grad()
def decode(model, z, label: int | None = None) -> np.ndarray:
    """One latent code [D] -> pixel probabilities [H, W] (float in [0, 1])."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(1, -1)
    size = model.config.image_size
    return model.decode(z, label_tensor(model, label)).reshape(size, size).cpu().numpy()


@torch.no_grad()
def prior(model, label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of p(z|x): N(0, I) for a vae or a standard prior; the prior net's
    output for a label model with a learned prior."""
    x = label_tensor(model, label)
    mu, logvar = model.prior(model.features(x, 1), 1)
    return mu[0].cpu().numpy(), torch.exp(0.5 * logvar[0]).cpu().numpy()


def prior_sample(model, label: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """One draw z ~ p(z|x)."""
    rng = rng or np.random.default_rng()
    mu, std = prior(model, label)
    return mu + std * rng.standard_normal(mu.shape).astype(np.float32)


@torch.no_grad()
def encode_digit(model, image_uint8: np.ndarray, label: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A [H, W] uint8 digit -> (latent mean [D], standard deviation [D], reconstruction [H, W] in [0, 1])."""
    y = torch.from_numpy(np.asarray(image_uint8, dtype=np.float32) / 255.0).reshape(1, -1)
    x = label_tensor(model, label)
    mu, logvar = model.encode(y, x)
    size = model.config.image_size
    recon = model.decode(mu, x).reshape(size, size).cpu().numpy()
    return mu[0].cpu().numpy(), torch.exp(0.5 * logvar[0]).cpu().numpy(), recon


# ----------------------------------------------------------------------------- the manifold grid

def _mtime(path: str) -> int:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(show_spinner=False, max_entries=64)
def _grid_picture(path: str, mtime_ns: int, label: int | None, cells: int) -> tuple[bytes, np.ndarray, int]:
    model, _ = load_model(path)
    imgs, coords = manifold_grid(model, cells, x=None if model.config.condition != "label" else int(label or 0),
                                 coverage=GRID_COVERAGE)
    n, _, h, w = imgs.shape
    picture = to_uint8(imgs).transpose(0, 2, 1, 3).reshape(n * h, n * w)   # rows of cells, no padding
    return png_bytes(picture), coords.numpy(), h


def grid_picture(path: str, label: int | None = None, cells: int = GRID_CELLS) -> tuple[bytes, np.ndarray, int]:
    """(PNG of the decoded grid, the z value of each row/column [cells], cell size in pixels), cached
    per model file and label. Columns follow z1 left to right, rows z2 top (high) to bottom (low)."""
    return _grid_picture(path, _mtime(path), label, cells)


def grid_position(value: float, coords: np.ndarray) -> float:
    """Where a latent value falls on the grid axis, in cells (fractional; the grid's cells are spaced
    by normal quantiles, not evenly), extrapolated linearly past the ends."""
    idx = np.arange(len(coords), dtype=np.float64)
    if value < coords[0]:
        return float((value - coords[0]) / (coords[1] - coords[0]))
    if value > coords[-1]:
        return float(idx[-1] + (value - coords[-1]) / (coords[-1] - coords[-2]))
    return float(np.interp(value, coords, idx))


def grid_figure(png: bytes, coords: np.ndarray, cell: int, z=None, height: int = 460) -> go.Figure:
    """The decoded grid as a picture, an invisible point at every cell centre (click it to jump there;
    Plotly cannot select image pixels) and a red ring at the current z."""
    n = len(coords)
    side = n * cell
    source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    z1, z2 = coords[cols.ravel()], coords[::-1][rows.ravel()]
    fig = go.Figure()
    fig.add_layout_image(source=source, x=0, y=0, sizex=side, sizey=side, xref="x", yref="y",
                         sizing="stretch", layer="below")
    fig.add_trace(go.Scatter(
        x=(cols.ravel() + 0.5) * cell, y=(rows.ravel() + 0.5) * cell, mode="markers", name="cells",
        customdata=np.stack([z1, z2], axis=1).round(3),
        marker=dict(size=max(6, int(0.9 * height / n)), symbol="square", color="rgba(0,0,0,0)"),
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
        hovertemplate="click to jump to z = (%{customdata[0]:.2f}, %{customdata[1]:.2f})<extra></extra>",
    ))
    if z is not None:
        col = grid_position(float(z[0]), coords)
        row = (n - 1) - grid_position(float(z[1]), coords)
        fig.add_trace(go.Scatter(
            x=[(col + 0.5) * cell], y=[(row + 0.5) * cell], mode="markers", name="current z",
            marker=dict(size=18, symbol="circle-open", color="#ff3b30", line=dict(width=3)),
            hoverinfo="skip",
        ))
    ticks = list(range(0, n, max(1, n // 5)))
    fig.update_xaxes(range=[0, side], showgrid=False, zeroline=False, fixedrange=True, title_text="z₁",
                     tickvals=[(i + 0.5) * cell for i in ticks], ticktext=[f"{coords[i]:.1f}" for i in ticks])
    fig.update_yaxes(range=[side, 0], showgrid=False, zeroline=False, fixedrange=True, title_text="z₂",
                     scaleanchor="x", scaleratio=1,
                     tickvals=[(i + 0.5) * cell for i in ticks], ticktext=[f"{coords[::-1][i]:.1f}" for i in ticks])
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=10, b=40), showlegend=False,
                      plot_bgcolor="white", dragmode="pan", clickmode="event+select")
    return fig


def clicked_cell(event) -> list[float] | None:
    """The z of the grid cell a chart selection event points at, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points or []:
        data = p.get("customdata") if isinstance(p, dict) else None
        if data is not None and len(data) >= 2:
            return [float(data[0]), float(data[1])]
    return None


# ----------------------------------------------------------------------------- interpolation

def interpolation_frames(model, z0, z1, steps: int, label: int | None = None) -> np.ndarray:
    """uint8 [steps, H, W]: the decoded straight line from z0 to z1."""
    x = None if model.config.condition != "label" else int(label or 0)
    return to_uint8(interpolate(model, torch.as_tensor(np.asarray(z0, np.float32)),
                                torch.as_tensor(np.asarray(z1, np.float32)), steps, x=x))


def gif_bytes(frames: np.ndarray, scale: int = 6, frame_ms: int = 120, bounce: bool = True) -> bytes:
    """An animated, looping GIF of uint8 frames [T, H, W], upscaled sharply; `bounce` plays it forth and back."""
    seq = list(frames) + (list(frames[-2:0:-1]) if bounce and len(frames) > 2 else [])
    images = [Image.fromarray(upscale(f, scale)) for f in seq]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return buf.getvalue()


# ----------------------------------------------------------------------------- a drawn digit

def drawing_to_digit(rgba: np.ndarray | None, size: int = 28, box: int = 20, threshold: int = 20) -> np.ndarray | None:
    """A drawing (white on black, any size, RGBA or grey) -> an MNIST-like uint8 [size, size] digit, or None
    when nothing is drawn. As MNIST was made: fit the ink's bounding box into box x box pixels keeping its
    aspect ratio, then place it so that its centre of mass is at the image centre."""
    if rgba is None:
        return None
    arr = np.asarray(rgba)
    if arr.ndim == 3:
        grey = arr[..., :3].astype(np.float32).mean(axis=-1)
        if arr.shape[-1] == 4:  # transparent pixels are background
            grey = grey * (arr[..., 3].astype(np.float32) / 255.0)
    else:
        grey = arr.astype(np.float32)
    ink = grey > threshold
    if not ink.any():
        return None
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((new_w, new_h), Image.LANCZOS),
                       dtype=np.float32)
    out = np.zeros((size, size), dtype=np.float32)
    mass = small.sum()
    cy, cx = ((np.arange(new_h) @ small.sum(axis=1)) / mass, (np.arange(new_w) @ small.sum(axis=0)) / mass)
    top = int(np.clip(round(size / 2 - cy - 0.5), 0, size - new_h))
    left = int(np.clip(round(size / 2 - cx - 0.5), 0, size - new_w))
    out[top:top + new_h, left:left + new_w] = small
    peak = out.max()
    if peak > 0:
        out = out * (255.0 / peak)
    return np.clip(out, 0, 255).astype(np.uint8)

"""Helpers of the Decoder page: the latent code kept in session state, decoding, the clickable
manifold grid, interpolation as a strip or a GIF, and turning a drawing into an MNIST-like digit.

The pure functions (no `st.` call) take a model and arrays; the few that touch session state say so.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from vae_core import ModelConfig, interpolate, manifold_grid
from vae_core.evaluation import prior_quantiles
from ui.images import png_bytes, png_data_url, to_uint8, upscale
from ui.model_catalogue import load_model

SLIDER_LIMIT = 3.0      # sliders span [-3, 3] (wider where a learned prior puts its mass further out)
NUMBER_LIMIT = 50.0     # the exact number inputs accept more
GRID_CELLS = 15         # cells per side of the decoded manifold grid
GRID_COVERAGE = 0.997   # the grid spans the prior's quantiles 0.15%..99.85%: mean +- 3 sd, like the sliders

Z_KEY = "decoder_z"                 # the current latent code (list of floats), the one source of truth
Z_OWNER_KEY = "decoder_z_model"     # which model (path, latent size) the code belongs to
RANGE_KEY = "decoder_slider_range"  # [lo, hi] of the sliders for that model
GRID_CLICKS_KEY = "decoder_grid_clicks"  # bumped after each click on the grid, to give the chart a fresh key
REV_KEY = "decoder_z_rev"           # counts the server's writes of z (the browser adopts a new one)
ECHO_KEY = "decoder_z_echo"         # True when the last write was the browser's own commit


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


def model_range() -> tuple[float, float]:
    """The sliders' span for this model (the prior's mean +- 3 sd, at least [-3, 3])."""
    lo, hi = st.session_state.get(RANGE_KEY, (-SLIDER_LIMIT, SLIDER_LIMIT))
    return float(lo), float(hi)


def widened_range(lo: float, hi: float, z) -> tuple[float, float]:
    """[lo, hi] grown, in half units, until it holds every value of z: a typed 7.5 widens the sliders to
    [.., 7.5] instead of pinning them at 3.00 while the picture shows 7.5."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if z.size:
        lo, hi = min(lo, float(np.floor(z.min() * 2) / 2)), max(hi, float(np.ceil(z.max() * 2) / 2))
    return float(lo), float(hi)


def slider_range() -> tuple[float, float]:
    """The sliders' span now: the model's, widened to hold the current z."""
    return widened_range(*model_range(), st.session_state.get(Z_KEY, []))


def range_note() -> str | None:
    """One sentence when the sliders span more than the model's range (a typed value lies outside it)."""
    (lo, hi), (mlo, mhi) = slider_range(), model_range()
    if (lo, hi) == (mlo, mhi):
        return None
    z = st.session_state.get(Z_KEY, [])
    outside = [f"z{i + 1} = {v:.2f}" for i, v in enumerate(z) if not mlo <= v <= mhi]
    return (f"The sliders now span {lo:g} to {hi:g} (usually {mlo:g} to {mhi:g}) to hold "
            + " and ".join(outside) + ".")


def set_z(z, echo: bool = False) -> None:
    """Write a new latent code and every slider / number input that shows it (session state).
    Call it from a callback, or before the widgets are drawn in this run. `echo`: the browser's own
    commit (the in-browser decoder keeps its newer z rather than adopting this one)."""
    z = np.clip(np.asarray(z, dtype=np.float64).reshape(-1), -NUMBER_LIMIT, NUMBER_LIMIT)
    st.session_state[Z_KEY] = [round(float(v), 3) for v in z]
    for i, v in enumerate(st.session_state[Z_KEY]):
        st.session_state[slider_key(i)] = round(v, 2)   # the range widens to hold it (slider_range)
        st.session_state[number_key(i)] = v
    st.session_state[REV_KEY] = st.session_state.get(REV_KEY, 0) + 1
    st.session_state[ECHO_KEY] = echo


def commit_from_browser(z: list[float]) -> None:
    """The in-browser decoder released a z (callback): it becomes the page's z; the number boxes follow."""
    if len(z) == len(st.session_state.get(Z_KEY, [])):
        set_z(z, echo=True)


def ensure_z(model_path: str, model) -> None:
    """Start at the prior mean for a new model; restore widget values that Streamlit dropped while the
    user was on another page (it forgets the state of widgets that were not drawn)."""
    latent_dim = model.config.latent_dim
    owner = [model_path, latent_dim]
    if st.session_state.get(Z_OWNER_KEY) != owner or len(st.session_state.get(Z_KEY, [])) != latent_dim:
        st.session_state[Z_OWNER_KEY] = owner
        st.session_state[RANGE_KEY] = list(prior_range(model))
        set_z(prior(model, 0)[0])
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
    """Callback of number input i: the slider and the picture follow (the slider's range widens to hold it)."""
    v = st.session_state[number_key(i)]
    z = list(st.session_state[Z_KEY])
    z[i] = 0.0 if v is None else float(v)
    set_z(z)


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


def prior_range(model) -> tuple[float, float]:
    """A slider range that holds mean +- 3 sd of the prior for every class (at least [-3, 3]), rounded
    out to half units. A learned prior p(z|x) can sit far from N(0, I): the scale of z is arbitrary."""
    labels = range(model.config.num_classes) if model.config.condition == "label" else [None]
    lo, hi = -SLIDER_LIMIT, SLIDER_LIMIT
    for label in labels:
        mu, std = prior(model, label)
        lo, hi = min(lo, float((mu - 3 * std).min())), max(hi, float((mu + 3 * std).max()))
    return float(np.floor(lo * 2) / 2), float(np.ceil(hi * 2) / 2)


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


@torch.no_grad()
def prior_grid(model, label: int | None = None, cells: int = GRID_CELLS,
               coverage: float = GRID_COVERAGE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a cells x cells grid spaced by the prior's quantiles (Kingma and Welling 2014, fig. 4), for a
    2-D latent. For N(0, I) this is vae_core.manifold_grid; a learned prior p(z|x) shifts and stretches it.
    Returns (images [cells, cells, H, W] float, z1 of each column [cells], z2 of each row [cells], top row highest)."""
    x = None if model.config.condition != "label" else int(label or 0)
    mu, std = prior(model, label)
    if np.allclose(mu, 0) and np.allclose(std, 1):
        imgs, coords = manifold_grid(model, cells, x=x, coverage=coverage)
        c = coords.numpy()
        return imgs.numpy(), c, c[::-1].copy()
    unit = normal_quantiles(cells, coverage)
    z1, z2 = mu[0] + std[0] * unit, (mu[1] + std[1] * unit)[::-1].copy()
    zz = np.stack(np.meshgrid(z1, z2, indexing="xy"), axis=-1).reshape(-1, 2)
    size = model.config.image_size
    cond = None if x is None else torch.full((len(zz),), x)
    imgs = model.decode(torch.from_numpy(zz.astype(np.float32)), cond).reshape(cells, cells, size, size)
    return imgs.cpu().numpy(), z1, z2


def normal_quantiles(cells: int, coverage: float = GRID_COVERAGE) -> np.ndarray:
    """The N(0, 1) quantiles that vae_core.manifold_grid spaces its cells by, lowest first."""
    return prior_quantiles(cells, coverage).double().numpy()


@st.cache_data(show_spinner=False, max_entries=64)
def _grid_picture(path: str, mtime_ns: int, label: int | None, cells: int):
    model, _ = load_model(path)
    imgs, z1, z2 = prior_grid(model, label, cells)
    n, _, h, w = imgs.shape
    picture = to_uint8(imgs).transpose(0, 2, 1, 3).reshape(n * h, n * w)   # rows of cells, no padding
    return png_bytes(picture), z1, z2, h


def grid_picture(path: str, label: int | None = None, cells: int = GRID_CELLS):
    """(PNG of the decoded grid, z1 of each column [cells] left to right, z2 of each row [cells] top to
    bottom, cell size in pixels), cached per model file and label."""
    return _grid_picture(path, _mtime(path), label, cells)


def grid_position(value: float, coords: np.ndarray) -> float:
    """Where a latent value falls along a grid axis, in cells from the first one (fractional: the cells are
    spaced by quantiles, not evenly), extrapolated linearly past the ends. coords may run either way."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords[0] > coords[-1]:
        return len(coords) - 1 - grid_position(value, coords[::-1])
    if value < coords[0]:
        return float((value - coords[0]) / (coords[1] - coords[0]))
    if value > coords[-1]:
        return float(len(coords) - 1 + (value - coords[-1]) / (coords[-1] - coords[-2]))
    return float(np.interp(value, coords, np.arange(len(coords))))


def grid_figure(png: bytes, z1: np.ndarray, z2: np.ndarray, cell: int, z=None, height: int = 420) -> go.Figure:
    """The decoded grid as a picture, an invisible point at every cell centre (click it to jump there;
    Plotly cannot select image pixels) and a red ring at the current z.

    Everything but the ring is built (and checked by Plotly) once per picture: building and validating the
    whole figure took 26 ms, a quarter of a slider move; adding the ring to the cached parts takes 1 ms."""
    layout, cells, ring = _grid_parts(png, tuple(map(float, z1)), tuple(map(float, z2)), cell, height)
    data = [dict(cells)]  # a copy: Plotly pops and restores a trace's "type", and the cached parts are shared
    if z is not None:
        col, row = grid_position(float(z[0]), np.asarray(z1)), grid_position(float(z[1]), np.asarray(z2))
        data.append({**ring, "x": [(col + 0.5) * cell], "y": [(row + 0.5) * cell]})
    return go.Figure(data=data, layout=layout, _validate=False)  # the parts were validated in _grid_parts


@functools.lru_cache(maxsize=16)
def _grid_parts(png: bytes, z1: tuple, z2: tuple, cell: int, height: int) -> tuple[dict, dict, dict]:
    """(layout, the clickable cells trace, the ring trace without its position) as validated plain dicts."""
    n = len(z1)
    side = n * cell
    z1, z2 = np.asarray(z1), np.asarray(z2)
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    fig = go.Figure()
    fig.add_layout_image(source=png_data_url(png), x=0, y=0, sizex=side, sizey=side, xref="x", yref="y",
                         sizing="stretch", layer="below")
    fig.add_trace(go.Scatter(
        x=(cols.ravel() + 0.5) * cell, y=(rows.ravel() + 0.5) * cell, mode="markers", name="cells",
        # a nested list, not an array: Plotly sends arrays as typed arrays, and a clicked point's typed
        # customdata came back as {"0": z1, "1": z2}, which clicked_cell read as data[0]: KeyError 0
        customdata=np.stack([z1[cols.ravel()], z2[rows.ravel()]], axis=1).round(3).tolist(),
        marker=dict(size=max(6, int(0.8 * height / n)), symbol="square", color="rgba(0,0,0,0)"),
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
        hovertemplate="click to jump to z = (%{customdata[0]:.2f}, %{customdata[1]:.2f})<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=[0], y=[0], mode="markers", name="current z",
        marker=dict(size=18, symbol="circle-open", color="#ff3b30", line=dict(width=3)), hoverinfo="skip",
    ))
    ticks = list(range(0, n, max(1, n // 5))) + ([n - 1] if (n - 1) % max(1, n // 5) else [])
    fig.update_xaxes(range=[0, side], showgrid=False, zeroline=False, fixedrange=True, title_text="z₁",
                     tickvals=[(i + 0.5) * cell for i in ticks], ticktext=[f"{z1[i]:.1f}" for i in ticks])
    fig.update_yaxes(range=[side, 0], showgrid=False, zeroline=False, fixedrange=True, title_text="z₂",
                     scaleanchor="x", scaleratio=1, constrain="domain",
                     tickvals=[(i + 0.5) * cell for i in ticks], ticktext=[f"{z2[i]:.1f}" for i in ticks])
    fig.update_xaxes(constrain="domain")
    fig.update_layout(height=height, margin=dict(l=45, r=5, t=5, b=40), showlegend=False,
                      plot_bgcolor="white", dragmode="pan", clickmode="event+select")
    parts = fig.to_dict()
    cells, ring = parts["data"]
    ring = {k: v for k, v in ring.items() if k not in ("x", "y")}
    return parts["layout"], cells, ring


def clicked_cell(event) -> list[float] | None:
    """The z of the grid cell a chart selection event points at, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points or []:
        data = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(data, dict):  # a typed array serialised as {"0": .., "1": ..}
            data = [data.get("0", data.get(0)), data.get("1", data.get(1))]
        try:
            if data is not None and len(data) >= 2 and None not in data[:2]:
                return [float(data[0]), float(data[1])]
        except (TypeError, ValueError):
            continue
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


# ----------------------------------------------------------------------------- an uploaded picture

UPLOAD_MAX_BYTES = 5 * 1024 * 1024      # a PNG of a digit is a few kilobytes
UPLOAD_MAX_PIXELS = 4096 * 4096         # checked from the header, before a single pixel is decoded
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OTHER_FORMATS = {b"GIF87a": "a GIF", b"GIF89a": "a GIF", b"\xff\xd8\xff": "a JPEG", b"BM": "a BMP",
                  b"RIFF": "a WebP or other RIFF file", b"%PDF": "a PDF"}


def read_uploaded_png(data: bytes, name: str = "the file") -> tuple[np.ndarray | None, str | None]:
    """An uploaded PNG as a grey uint8 array, or (None, a sentence saying why not).

    Refused before decoding: anything over UPLOAD_MAX_BYTES, anything that is not a PNG (by its first bytes,
    not its name), and a picture whose header claims more than UPLOAD_MAX_PIXELS (a decompression bomb).
    A truncated or damaged PNG is refused when decoding fails.
    """
    if len(data) > UPLOAD_MAX_BYTES:
        return None, (f"{name} is {len(data) / 1e6:.1f} MB; a picture of a digit should be a small PNG "
                      f"(at most {UPLOAD_MAX_BYTES // (1024 * 1024)} MB).")
    if not data.startswith(PNG_SIGNATURE):
        kind = next((k for sig, k in _OTHER_FORMATS.items() if data.startswith(sig)), None)
        what = f"{name} is {kind}, not a PNG" if kind else f"{name} is not a PNG picture"
        return None, what + ": upload a PNG of one digit, light on a dark background."
    # the IHDR chunk follows the signature: length (4), 'IHDR' (4), width (4), height (4)
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None, f"{name} is a damaged PNG (its header is incomplete)."
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width == 0 or height == 0:
        return None, f"{name} is a damaged PNG (it claims {width} x {height} pixels)."
    if width * height > UPLOAD_MAX_PIXELS:
        return None, (f"{name} claims {width:,} x {height:,} pixels, too large to open safely (at most "
                      f"{UPLOAD_MAX_PIXELS:,} pixels); a digit needs no more than a few hundred pixels a side.")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            if img.width * img.height > UPLOAD_MAX_PIXELS:  # pragma: no cover - the IHDR check above sees it first
                return None, f"{name} is too large to open safely."
            grey = np.asarray(img.convert("L"))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, MemoryError) as e:
        reason = "it is truncated" if "truncated" in str(e).lower() else "it could not be decoded"
        return None, f"{name} is a damaged PNG ({reason}); export the picture again and upload the new file."
    return grey, None


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

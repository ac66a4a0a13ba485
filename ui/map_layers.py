"""What the Latent map can draw under its dots besides the decoded digits: what the shipped digit classifier
reads in the decoder's picture at every point (its borders, shaded by its uncertainty), and the test images
themselves as small thumbnails at their latent means (as TensorBoard's projector draws sprites).

Each layer is ONE picture placed under the axes (Plotly's layout image): Plotly draws a single image in
milliseconds where thousands of layout images, one per thumbnail, take seconds. The classifier layer adds an
invisible heatmap over the same cells so hovering between the dots shows the classifier's top three classes;
Plotly hands the hover (and a click) to a dot whenever one is near, so clicking and lasso keep selecting test
images (Plotly never selects heatmap cells; ui/latent_map_tools.selected_indices ignores them). The heatmap is
the figure's first trace: see add_classifier_layer for why.

The pure functions (no `st.` call) take arrays and return arrays or pictures; the cached ones are keyed by the
model file and its modification time, so a second look at the same model costs nothing.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from ui.cached_data import missing_data_note, test_set
from ui.images import png_data_url
from ui.model_catalogue import SHIPPED_DIR, load_model
from ui.plots import CLASS_COLORS
from vae_core.classifier import latent_grid_readings, load_classifier

CLASSIFIER_PATH = SHIPPED_DIR / "classifier" / "mnist-digits.safetensors"
CLASSIFIER_CELLS = 64            # a 64 x 64 grid: 4,096 decodes and classifier passes, in one call
CLASSIFIER_OPACITY = 0.8
THUMBNAIL_COUNTS = (200, 500, 1000, 2000, 5000, 10_000)
SPRITE_CANVAS = 1400             # pixels a side of the composited thumbnails picture
THUMBNAIL_PX = (12, 56)          # the smallest and largest thumbnail, in canvas pixels
MAP_COVERAGE = (0.5, 99.5)       # the layers span these percentiles of the dots (as the decoded digits do)

KEYS = {"decoded": "latent_background", "classifier": "latent_classifier_map", "thumbnails": "latent_thumbnails"}


# ----------------------------------------------------------------------------- one layer at a time
def only(kind: str):
    """An on_change callback for the toggle of one layer: turning it on turns the other layers off (they are
    all pictures under the same dots; two at once would hide each other)."""
    def callback() -> None:
        if st.session_state.get(KEYS[kind]):
            for other, key in KEYS.items():
                if other != kind:
                    st.session_state[key] = False
    return callback


def map_box(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """(x range, y range) the layers cover: the central 99 % of the dots on each axis."""
    lo, hi = np.percentile(np.asarray(points, dtype=np.float64), MAP_COVERAGE, axis=0)
    hi = np.maximum(hi, lo + 1e-6)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


# ----------------------------------------------------------------------------- the classifier's borders
def classifier_unavailable(record) -> str | None:
    """Why the classifier layer cannot be drawn for a model, in one sentence, or None when it can."""
    cfg = record.model_config
    if cfg.latent_dim != 2:
        return f"the classifier's map needs a 2-D latent; this model has {cfg.latent_dim} dimensions"
    if record.dataset != "mnist" or cfg.image_size != 28:
        return (f"the shipped classifier reads handwritten digits, and this model draws {record.dataset} "
                "images")
    if not CLASSIFIER_PATH.is_file():
        return f"the digit classifier is missing ({CLASSIFIER_PATH.relative_to(SHIPPED_DIR.parent)})"
    return None


@st.cache_resource(show_spinner=False, max_entries=2)
def _classifier(path: str, mtime_ns: int):
    return load_classifier(path)[0]


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of class probabilities [..., K], in nats."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1)


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def reading_picture(probs: np.ndarray, scale: int = 4) -> np.ndarray:
    """RGB uint8 [n * scale, n * scale]: each cell in the colour of the class the classifier reads there,
    faded towards white by its uncertainty (white at the entropy of a uniform guess), so the borders between
    classes show as pale bands."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[-1]
    certainty = 1.0 - entropy(probs) / math.log(k)                     # 1: sure, 0: a uniform guess
    colors = np.stack([_rgb(CLASS_COLORS[c % len(CLASS_COLORS)]) for c in range(k)])
    base = colors[probs.argmax(axis=-1)]                               # [n, n, 3]
    shade = np.clip(certainty, 0, 1)[..., None] ** 1.5
    rgb = 255.0 + (base - 255.0) * shade
    rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return np.kron(rgb, np.ones((scale, scale, 1), dtype=np.uint8))


def top_three_text(probs: np.ndarray, class_names: list[str]) -> np.ndarray:
    """[n, n] strings: the classifier's three likeliest classes with their probabilities, for the hover."""
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, axis=-1)[..., :3]
    top = np.take_along_axis(probs, order, axis=-1)
    names = np.asarray([str(c) for c in class_names], dtype=object)
    out = np.empty(probs.shape[:-1], dtype=object)
    for idx in np.ndindex(*probs.shape[:-1]):
        out[idx] = "<br>".join(f"{names[c]}: {100 * p:.0f}%" for c, p in zip(order[idx], top[idx]))
    return out


@dataclass(frozen=True)
class ClassifierLayer:
    """The classifier's reading of an n x n grid: the picture (a PNG data URL), the cell centres, the hover
    text, and how much of the grid reads as each class."""

    picture: str
    xs: np.ndarray          # cell centres along z1, left to right [n]
    ys: np.ndarray          # cell centres along z2, top to bottom [n]
    hover: list             # [n][n] strings, row 0 at the top
    entropy: np.ndarray     # [n, n] nats
    share: np.ndarray       # [classes]: the share of cells whose likeliest class is each one
    seconds: float          # the decodes, classifier passes and picture, measured when it was made


def make_classifier_layer(model, classifier, x_range, y_range, label: int | None, n: int,
                          class_names: list[str]) -> ClassifierLayer:
    """The classifier layer, computed: n * n decodes and classifier passes in one call, the picture and the hover
    text (bench/classifier_map.py times this)."""
    started = time.perf_counter()
    probs = latent_grid_readings(model, classifier, x_range, y_range, n, label).numpy()
    picture = png_data_url(reading_picture(probs))
    xs = np.linspace(x_range[0], x_range[1], n)
    ys = np.linspace(y_range[1], y_range[0], n)
    hover = top_three_text(probs, list(class_names)).tolist()
    share = np.bincount(probs.argmax(-1).ravel(), minlength=probs.shape[-1]) / probs[..., 0].size
    return ClassifierLayer(picture, xs, ys, hover, entropy(probs), share, time.perf_counter() - started)


@st.cache_data(show_spinner="Reading every point of the map with the digit classifier…", max_entries=32)
def _classifier_layer(path: str, mtime_ns: int, clf_path: str, clf_mtime_ns: int, x_range: tuple, y_range: tuple,
                      label: int | None, n: int, class_names: tuple) -> ClassifierLayer:
    model, _ = load_model(path)
    classifier = _classifier(clf_path, clf_mtime_ns)
    return make_classifier_layer(model, classifier, x_range, y_range, label, n, list(class_names))


def classifier_layer(record, x_range, y_range, label: int | None, class_names: list[str],
                     n: int = CLASSIFIER_CELLS) -> ClassifierLayer:
    """The classifier layer of a model over a box of its latent space (cached per model file, classifier file, box
    and label). Raises CheckpointError when the classifier file cannot be read, OSError when it went away."""
    path, clf_path = str(record.path), str(CLASSIFIER_PATH)
    return _classifier_layer(path, Path(path).stat().st_mtime_ns, clf_path, Path(clf_path).stat().st_mtime_ns,
                             tuple(map(float, x_range)),
                             tuple(map(float, y_range)), None if label is None else int(label), n,
                             tuple(map(str, class_names)))


def add_classifier_layer(fig: go.Figure, layer: ClassifierLayer, opacity: float = CLASSIFIER_OPACITY) -> None:
    """Put the layer under the dots: its picture as a layout image, and an invisible heatmap over the same cells
    whose hover shows the top three classes.

    The heatmap goes FIRST among the traces: Plotly's closest-point hover asks the traces in order, each within
    the distance of the best point so far, and a heatmap always answers at the largest hover distance. Placed
    after the dots it took every hover and click from them (checked in chromium: a click on a dot selected
    nothing); placed first, any dot within reach wins, and only the space between the dots hovers the layer.
    The dots' curve numbers then start at 1 (ui/latent_map_tools.selected_indices takes the offset)."""
    n = len(layer.xs)
    dx = (layer.xs[-1] - layer.xs[0]) / max(1, n - 1)
    dy = (layer.ys[0] - layer.ys[-1]) / max(1, n - 1)
    fig.add_layout_image(source=layer.picture, xref="x", yref="y", x=float(layer.xs[0] - dx / 2),
                         y=float(layer.ys[0] + dy / 2), sizex=float(n * dx), sizey=float(n * dy), sizing="stretch",
                         opacity=opacity, layer="below")
    fig.add_trace(go.Heatmap(
        x=layer.xs, y=layer.ys, z=layer.entropy, text=layer.hover, name="classifier", showscale=False,
        colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], showlegend=False,
        hovertemplate="the classifier reads<br>%{text}<br>at z = (%{x:.2f}, %{y:.2f})<extra></extra>"))
    fig.data = (fig.data[-1], *fig.data[:-1])


# ----------------------------------------------------------------------------- the test images as thumbnails
def spread_subset(pixels: np.ndarray, count: int, cell: float) -> np.ndarray:
    """Indices of at most `count` points, at most one per square cell of `cell` pixels (the one nearest the
    cell's centre), so no two chosen points crowd each other; when more cells are filled than `count`, a fixed
    random choice of them."""
    pixels = np.asarray(pixels, dtype=np.float64)
    cells = np.floor(pixels / cell).astype(np.int64)
    offset = pixels / cell - cells - 0.5
    nearness = (offset ** 2).sum(axis=1)
    key = cells[:, 0] * 1_000_003 + cells[:, 1]
    order = np.lexsort((nearness, key))                                # by cell, nearest to its centre first
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    chosen = order[first]
    if len(chosen) > count:
        chosen = np.random.default_rng(0).choice(chosen, count, replace=False)
    return np.sort(chosen)


def thumbnail_size(pixels: np.ndarray, count: int, smallest: float, largest: float) -> float:
    """The thumbnail side (canvas pixels) at which about `count` cells are filled: as large as possible while
    at least `count` points (or, when even the smallest size fills fewer cells, all of those) find a cell."""
    def filled(cell: float) -> int:
        return len(np.unique(np.floor(pixels / cell).astype(np.int64), axis=0))
    want = min(count, filled(smallest))
    lo, hi = smallest, largest
    if filled(hi) >= want:
        return hi
    for _ in range(20):                                                # filled() falls as the cell grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filled(mid) >= want else (lo, mid)
    return lo


ALPHA_LEVELS = 16   # the thumbnails' ink is stored in 16 levels of opacity per class: a palette PNG of 161 colours


def sprite_picture(images: np.ndarray, labels: np.ndarray, pixels: np.ndarray, size: int,
                   canvas: int = SPRITE_CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """(class [canvas, canvas] uint8, ink [canvas, canvas] uint8): each image [28, 28] (uint8, ink bright) drawn
    `size` pixels wide centred on its pixel position, as its ink's opacity and its class; where two overlap, the
    stronger ink wins. sprite_png turns the pair into one small PNG."""
    cls = np.zeros((canvas, canvas), dtype=np.uint8)
    ink = np.zeros((canvas, canvas), dtype=np.uint8)
    if len(images) == 0:
        return cls, ink
    small = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(images, dtype=np.float32))[:, None] / 255.0,
                                            size=(size, size), mode="area")[:, 0].numpy()
    alpha = (np.clip(small * 1.4, 0, 1) * 255 + 0.5).astype(np.uint8)  # thin strokes stay visible when shrunk
    half = size // 2
    for a, label, (px, py) in zip(alpha, np.asarray(labels), np.asarray(pixels)):
        left, top = int(round(px)) - half, int(round(py)) - half
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(canvas, left + size), min(canvas, top + size)
        if x1 <= x0 or y1 <= y0:
            continue
        patch = a[y0 - top:y1 - top, x0 - left:x1 - left]
        over = patch > ink[y0:y1, x0:x1]
        cls[y0:y1, x0:x1][over] = label
        ink[y0:y1, x0:x1][over] = patch[over]
    return cls, ink


def sprite_png(cls: np.ndarray, ink: np.ndarray, classes: int = 10) -> bytes:
    """A palette PNG of the thumbnails: each pixel's class colour (darkened, so light colours stay legible) at one
    of ALPHA_LEVELS opacities, index 0 transparent. A third the size of the same picture as RGBA (170 kB against
    590 kB for 4,000 thumbnails on 1,400 x 1,400 pixels), and it travels in every redrawn figure."""
    level = (ink.astype(np.uint16) * ALPHA_LEVELS // 256).astype(np.uint8)        # 0 .. ALPHA_LEVELS - 1
    index = np.where(level > 0, 1 + cls.astype(np.uint16) * ALPHA_LEVELS + level, 0).astype(np.uint8)
    palette, opacity = [0, 0, 0], [0]
    for c in range(classes):
        rgb = (_rgb(CLASS_COLORS[c % len(CLASS_COLORS)]) * 0.7).astype(int).tolist()
        for k in range(ALPHA_LEVELS):
            palette += rgb
            opacity.append(min(255, round(255 * k / (ALPHA_LEVELS - 1))))
    picture = Image.fromarray(index, mode="P")
    picture.putpalette(palette)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", transparency=bytes(opacity), compress_level=6)
    return buf.getvalue()


@dataclass(frozen=True)
class ThumbnailLayer:
    picture: str            # a PNG data URL
    x_range: tuple          # the latent box the picture covers
    y_range: tuple
    shown: int              # thumbnails drawn
    size: float             # their side in latent units along z1
    seconds: float          # choosing, drawing and encoding, measured when it was made
    png_bytes: int


def thumbnails(mu: np.ndarray, labels: np.ndarray, images: np.ndarray, count: int, x_range, y_range,
               canvas: int = SPRITE_CANVAS) -> tuple[bytes, int, float]:
    """(PNG of the thumbnails picture over the box, how many it shows, their side in canvas pixels)."""
    mu = np.asarray(mu, dtype=np.float64)
    pixels = np.stack([(mu[:, 0] - x_range[0]) / (x_range[1] - x_range[0]) * canvas,
                       (y_range[1] - mu[:, 1]) / (y_range[1] - y_range[0]) * canvas], axis=1)
    inside = np.flatnonzero(((pixels >= 0) & (pixels < canvas)).all(axis=1))
    size = thumbnail_size(pixels[inside], count, *THUMBNAIL_PX)
    chosen = inside[spread_subset(pixels[inside], count, size)]
    cls, ink = sprite_picture(images[chosen], labels[chosen], pixels[chosen], max(4, int(round(size))), canvas)
    return sprite_png(cls, ink), len(chosen), size


def make_thumbnail_layer(mu: np.ndarray, labels: np.ndarray, images: np.ndarray, count: int, x_range,
                         y_range) -> ThumbnailLayer:
    """The thumbnails layer, computed: choose, draw and encode (bench/classifier_map.py times this)."""
    started = time.perf_counter()
    png, shown, size = thumbnails(mu, labels, images, count, x_range, y_range)
    return ThumbnailLayer(png_data_url(png), tuple(x_range), tuple(y_range), shown,
                          size / SPRITE_CANVAS * (x_range[1] - x_range[0]), time.perf_counter() - started, len(png))


@st.cache_data(show_spinner="Placing the test images…", max_entries=16)
def _thumbnail_layer(path: str, mtime_ns: int, dataset: str, data_source: str, count: int, x_range: tuple,
                     y_range: tuple) -> ThumbnailLayer | None:
    from ui.latent_map_tools import test_latents
    _, record = load_model(path)
    table, data = test_latents(record), test_set(dataset)
    if table is None or data is None or len(table.mu) != len(data):
        return None
    return make_thumbnail_layer(table.mu, table.labels, data.images.numpy(), count, x_range, y_range)


def thumbnails_unavailable(record) -> str | None:
    """Why the thumbnails cannot be drawn, in one sentence, or None when they can."""
    if record.model_config.latent_dim != 2:
        return "Thumbnails are placed on a 2-D latent map; this model has a larger latent space."
    if test_set(record.dataset) is None:
        return ("Thumbnails show the test images themselves, and a checkpoint stores only where each one lands "
                "(its latent mean), not the images: " + missing_data_note(record.dataset))
    return None


def thumbnail_layer(record, count: int, x_range, y_range) -> ThumbnailLayer | None:
    """The thumbnails of `count` spread-out test images over a box of the latent space (cached per model file,
    count and box); None when the data set is missing or does not match the stored means."""
    path = str(record.path)
    data = test_set(record.dataset)
    return _thumbnail_layer(path, Path(path).stat().st_mtime_ns, record.dataset,
                            "" if data is None else str(data.source), int(count), tuple(map(float, x_range)),
                            tuple(map(float, y_range)))


def add_thumbnail_layer(fig: go.Figure, layer: ThumbnailLayer) -> None:
    (x0, x1), (y0, y1) = layer.x_range, layer.y_range
    fig.add_layout_image(source=layer.picture, xref="x", yref="y", x=x0, y=y1, sizex=x1 - x0, sizey=y1 - y0,
                         sizing="stretch", opacity=1.0, layer="below")



# ----------------------------------------------------------------------------- the page's controls and drawing
def layer_toggles(record) -> tuple[bool, bool, int | None]:
    """The sidebar toggles of the two layers (each turns the others off) and the thumbnails' density slider:
    (classifier on, thumbnails on, thumbnails asked for). A layer this model cannot have is not offered."""
    show_classifier = show_thumbnails = False
    count = None
    why_not = classifier_unavailable(record)
    if why_not:
        st.caption(f"No classifier layer: {why_not}.")
    else:
        show_classifier = st.toggle("Classifier's reading underneath", key=KEYS["classifier"],
                                    on_change=only("classifier"),
                                    help="Decode a 64 x 64 grid of latent points and colour each by the digit the "
                                         "shipped classifier reads there, faded where it is unsure: the borders "
                                         "between digits show. Hover between the dots for its top three classes.")
    show_thumbnails = st.toggle("Test images as thumbnails", key=KEYS["thumbnails"], on_change=only("thumbnails"),
                                help="Draw the test images themselves at their latent means (a spread-out subset: "
                                     "at most one per patch of the map, so they stay readable).")
    if show_thumbnails:
        count = st.select_slider("Thumbnails", THUMBNAIL_COUNTS, value=1000, key="latent_thumbnail_count",
                                 format_func=lambda n: f"{n:,}",
                                 help="How many test images to draw at most; the more, the smaller each one.")
    return show_classifier, show_thumbnails, count


def draw_layer(fig: go.Figure, record, points: np.ndarray, *, show_classifier: bool,
               thumbnail_count: int | None, label: int | None, class_names: list[str]) -> str | None:
    """Add the chosen layer under the map's dots; returns one sentence for the caption under the map (what the
    layer shows, or why it could not be drawn)."""
    x_range, y_range = map_box(points)
    if show_classifier:
        why_not = classifier_unavailable(record)
        if why_not:
            return f"No classifier layer: {why_not}."
        try:
            layer = classifier_layer(record, x_range, y_range, label, class_names)
        except (OSError, ValueError) as e:   # CheckpointError is a ValueError: a damaged classifier file
            return f"No classifier layer: the digit classifier could not be read ({e})."
        add_classifier_layer(fig, layer)
        as_label = "" if label is None else f" decoded as {class_names[label]}"
        kept = ("" if label is None else
                f" {layer.share[label]:.0%} of the grid still reads as {class_names[label]}.")
        return (f"Underneath: what the digit classifier reads in the decoder's picture{as_label} at each of "
                f"{len(layer.xs) ** 2:,} points, faded where it is unsure (hover between the dots).{kept}")
    if thumbnail_count is not None:
        why_not = thumbnails_unavailable(record)
        if why_not:
            return why_not
        layer = thumbnail_layer(record, thumbnail_count, x_range, y_range)
        if layer is None:
            return ("The thumbnails need the test images that match the stored latent means, and this "
                    f"{record.dataset} test set does not.")
        add_thumbnail_layer(fig, layer)
        return (f"Underneath: {layer.shown:,} of the test images at their latent means"
                + (f" (of {thumbnail_count:,} asked: at most one per patch of the map, so none hides another)"
                   if layer.shown < thumbnail_count else "") + ".")
    return None

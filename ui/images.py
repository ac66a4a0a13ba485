"""Images for the browser: sharp (nearest-neighbour) upscaling, grids (from vae_core.pictures), PNG bytes.

A 28x28 digit drawn at 224x224 by the browser is blurred; upscaling on the server with np.kron keeps
every pixel a crisp square.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from vae_core.pictures import BACKGROUND, grid, square_image, to_uint8  # noqa: F401  (re-exported for the pages)


def upscale(img, scale: int = 8) -> np.ndarray:
    """Nearest-neighbour upscaling of a [H, W] image (or a flat square [H*W]) -> uint8 [H*scale, W*scale]."""
    arr = to_uint8(img)
    if arr.ndim == 1:
        arr = square_image(arr)
    if arr.ndim != 2:
        raise ValueError(f"upscale expects one [H, W] image; got shape {arr.shape}")
    return np.kron(arr, np.ones((scale, scale), dtype=np.uint8))


def png_bytes(array) -> bytes:
    """PNG file bytes of a uint8 (or [0, 1] float) grey or RGB array, for st.download_button."""
    arr = to_uint8(array)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(array_or_png) -> str:
    """A PNG as a data: URL, from a uint8 / [0, 1] array or from PNG bytes. st.image shows such a URL as it
    is, so the picture travels inside the page update instead of being fetched from the server afterwards
    (on the Decoder that fetch waited behind the manifold chart's rerun: up to 200 ms per slider move)."""
    png = array_or_png if isinstance(array_or_png, bytes) else png_bytes(array_or_png)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def _nice_step(span: float) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about 5 ticks over `span`."""
    raw = max(span, 1e-9) / 5
    power = 10 ** np.floor(np.log10(raw))
    return float(power * min((1, 2, 5, 10), key=lambda m: abs(m * power - raw)))


def latent_map_png(points, labels, class_names, colors, *, width: int = 600, height: int = 420,
                   radius: float = 2.5) -> bytes:
    """A 2-D latent map as one PNG: points [N, 2] as dots coloured by class (colors[c] is '#rrggbb'), a light
    grid with tick values, the axes z1 and z2 and a legend of the classes on the right.

    The Train page shows this while a run trains: one picture per new map costs the browser a decode,
    where a Plotly figure of thousands of points costs a WebGL or SVG redraw on every poll."""
    from PIL import ImageDraw, ImageFont

    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    font = ImageFont.load_default(size=12)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    legend_w, left, bottom, top = 90, 40, 30, 8
    x0, x1, y0, y1 = left, width - legend_w, top, height - bottom        # the plot area in pixels
    finite = points[np.isfinite(points).all(axis=1)] if points.size else points
    lo = finite.min(axis=0) if len(finite) else np.array([-1.0, -1.0])
    hi = finite.max(axis=0) if len(finite) else np.array([1.0, 1.0])
    pad = np.maximum((hi - lo) * 0.05, 1e-3)
    lo, hi = lo - pad, hi + pad

    def px(v, axis):
        if axis == 0:
            return x0 + (v - lo[0]) / (hi[0] - lo[0]) * (x1 - x0)
        return y1 - (v - lo[1]) / (hi[1] - lo[1]) * (y1 - y0)

    for axis in (0, 1):                                                 # grid lines and tick values
        step = _nice_step(float(hi[axis] - lo[axis]))
        for t in np.arange(np.ceil(lo[axis] / step) * step, hi[axis], step):
            p = px(t, axis)
            color = "#ccc" if abs(t) < step / 2 else "#eee"
            text = f"{t:g}" if abs(t) >= step / 2 else "0"
            if axis == 0:
                draw.line([(p, y0), (p, y1)], fill=color)
                draw.text((p, y1 + 3), text, fill="#555", font=font, anchor="mt")
            else:
                draw.line([(x0, p), (x1, p)], fill=color)
                draw.text((x0 - 4, p), text, fill="#555", font=font, anchor="rm")
    draw.text(((x0 + x1) / 2, height - 2), "z1", fill="#333", font=font, anchor="mb")
    draw.text((2, (y0 + y1) / 2), "z2", fill="#333", font=font, anchor="lm")
    order = np.random.default_rng(0).permutation(len(points))          # no class drawn wholly on top
    xs, ys = px(points[order, 0], 0), px(points[order, 1], 1)
    for x, y, c in zip(xs.tolist(), ys.tolist(), labels[order].tolist()):
        if np.isfinite(x) and np.isfinite(y):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=_rgb(colors[int(c) % len(colors)]))
    draw.text((x1 + 12, y0 + 4), "class", fill="#333", font=font)
    for c, name in enumerate(class_names):
        y = y0 + 24 + 18 * c
        draw.ellipse([x1 + 12, y - 4, x1 + 20, y + 4], fill=_rgb(colors[c % len(colors)]))
        draw.text((x1 + 26, y), str(name), fill="#333", font=font, anchor="lm")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()

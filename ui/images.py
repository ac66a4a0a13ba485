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

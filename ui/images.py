"""Images for the browser: sharp (nearest-neighbour) upscaling, grids, PNG bytes.

A 28x28 digit drawn at 224x224 by the browser is blurred; upscaling on the server with np.kron keeps
every pixel a crisp square.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

BACKGROUND = 48  # the grey between grid cells, so neighbouring black backgrounds stay apart


def to_uint8(img) -> np.ndarray:
    """A tensor or array, float in [0, 1] or uint8, -> a uint8 array of the same shape."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _square(arr: np.ndarray) -> np.ndarray:
    """[..., H*W] -> [..., H, W] for a square image."""
    side = int(round(arr.shape[-1] ** 0.5))
    if side * side != arr.shape[-1]:
        raise ValueError(f"a flat image of {arr.shape[-1]} pixels is not square")
    return arr.reshape(*arr.shape[:-1], side, side)


def upscale(img, scale: int = 8) -> np.ndarray:
    """Nearest-neighbour upscaling of a [H, W] image (or a flat square [H*W]) -> uint8 [H*scale, W*scale]."""
    arr = to_uint8(img)
    if arr.ndim == 1:
        arr = _square(arr)
    if arr.ndim != 2:
        raise ValueError(f"upscale expects one [H, W] image; got shape {arr.shape}")
    return np.kron(arr, np.ones((scale, scale), dtype=np.uint8))


def grid(images, ncols: int | None = None, pad: int = 2, pad_value: int = BACKGROUND) -> np.ndarray:
    """Tile images [N, H, W] (or [N, H*W], or [R, C, H, W]) into one uint8 picture with `pad` pixels between cells."""
    if isinstance(images, (list, tuple)):
        images = np.stack([to_uint8(i) for i in images])
    arr = to_uint8(images)
    if arr.ndim == 2:  # [N, H*W]
        arr = _square(arr)
    if arr.ndim == 4:
        ncols = arr.shape[1]
        arr = arr.reshape(-1, *arr.shape[2:])
    n, h, w = arr.shape
    ncols = max(1, min(ncols or int(np.ceil(np.sqrt(n))), n)) if n else 1
    nrows = max(1, int(np.ceil(n / ncols)))
    out = np.full((nrows * h + (nrows + 1) * pad, ncols * w + (ncols + 1) * pad), pad_value, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        out[top:top + h, left:left + w] = arr[i]
    return out


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

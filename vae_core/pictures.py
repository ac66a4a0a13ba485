"""Picture tiling shared by every layer: digits as uint8 arrays and grids of them (numpy and torch only).

The worker (jobs/worker.py) draws its live sample grids with `grid`; ui/images.py re-exports these for the
pages and adds what only the browser needs (upscaling, PNG bytes, data URLs).
"""
from __future__ import annotations

import numpy as np
import torch

BACKGROUND = 48  # the grey between grid cells, so neighbouring black backgrounds stay apart


def to_uint8(img) -> np.ndarray:
    """A tensor or array, float in [0, 1] or uint8, -> a uint8 array of the same shape."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def square_image(arr: np.ndarray) -> np.ndarray:
    """[..., H*W] -> [..., H, W] for a square image."""
    side = int(round(arr.shape[-1] ** 0.5))
    if side * side != arr.shape[-1]:
        raise ValueError(f"a flat image of {arr.shape[-1]} pixels is not square")
    return arr.reshape(*arr.shape[:-1], side, side)


def grid(images, ncols: int | None = None, pad: int = 2, pad_value: int = BACKGROUND) -> np.ndarray:
    """Tile images [N, H, W] (or [N, H*W], or [R, C, H, W]) into one uint8 picture with `pad` pixels between cells."""
    if isinstance(images, (list, tuple)):
        images = np.stack([to_uint8(i) for i in images])
    arr = to_uint8(images)
    if arr.ndim == 2:  # [N, H*W]
        arr = square_image(arr)
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

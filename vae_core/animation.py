"""Animations for slides: frames as uint8 arrays (grey [T, H, W] or RGB [T, H, W, 3]) and their encoding as
GIF (Pillow, one palette for the whole clip) or MP4 (imageio with imageio-ffmpeg, optional).

Frame makers (each takes an optional `progress(fraction)`):
    walk_frames        the decoded straight line between two latent codes (the Decoder's interpolation)
    path_frames        a loop across the manifold: an ellipse through the prior, the digit beside the grid
    training_frames    the samples and latent map of a run's snapshots (CheckpointRecord.training_snapshots)
    sweep_frames       the latent map and manifold of each model of a beta sweep, in order of beta

Every animation fits a slide: at most MAX_SIDE pixels a side (cells are upscaled by whole numbers, nearest
neighbour) and, encoded, at most MAX_BYTES (`encode` drops frames evenly until it fits).
"""
from __future__ import annotations

import io
import math
from typing import Callable, Sequence

import numpy as np
import torch

from .evaluation import prior_quantiles
from .pictures import grid, to_uint8

MAX_SIDE = 640
MAX_BYTES = 5_000_000
CLASS_RGB = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
             (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]   # Plotly's, as the pages use
Progress = Callable[[float], None] | None


def _tell(progress: Progress, fraction: float) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))))


# ----------------------------------------------------------------------------- pictures

def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of [H, W] or [H, W, 3] by a whole number."""
    scale = max(1, int(scale))
    return img.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else img


def fit_scale(height: int, width: int, max_side: int = MAX_SIDE) -> int:
    """The largest whole enlargement that keeps both sides within max_side (at least 1)."""
    return max(1, max_side // max(height, width, 1))


def rgb(img: np.ndarray) -> np.ndarray:
    """A grey [H, W] or RGB [H, W, 3] uint8 picture as RGB."""
    img = to_uint8(img)
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def side_by_side(*pictures: np.ndarray, gap: int = 8, background: int = 255) -> np.ndarray:
    """RGB pictures in a row, centred vertically, on a light background."""
    pics = [rgb(p) for p in pictures]
    height = max(p.shape[0] for p in pics)
    width = sum(p.shape[1] for p in pics) + gap * (len(pics) + 1)
    out = np.full((height + 2 * gap, width, 3), background, np.uint8)
    x = gap
    for p in pics:
        top = gap + (height - p.shape[0]) // 2
        out[top:top + p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def with_caption(img: np.ndarray, text: str, size: int = 18) -> np.ndarray:
    """An RGB picture with a line of text in a band above it (Pillow's own font: Latin letters only, so
    captions spell 'beta', not the Greek letter)."""
    from PIL import Image, ImageDraw
    img = rgb(img)
    band = size + 12
    out = np.full((img.shape[0] + band, img.shape[1], 3), 255, np.uint8)
    out[band:] = img
    pil = Image.fromarray(out)
    ImageDraw.Draw(pil).text((8, 5), text, fill=(20, 20, 20), font=_font(size))
    return np.asarray(pil)


def scatter_picture(points: np.ndarray, labels: np.ndarray, extent: Sequence[float], size: int = 280,
                    marker: np.ndarray | None = None) -> np.ndarray:
    """Latent points [N, 2] as coloured dots (class colours) on white, axes through 0, and an optional marker
    (a red ring) at one point. extent: (x0, x1, y0, y1), y upwards."""
    out = np.full((size, size, 3), 255, np.uint8)
    x0, x1, y0, y1 = map(float, extent)

    def pixel(p):
        return (np.asarray(p[..., 0] - x0) / (x1 - x0) * (size - 1), np.asarray(y1 - p[..., 1]) / (y1 - y0) * (size - 1))

    zx, zy = pixel(np.array([0.0, 0.0]))
    if 0 <= zx < size:
        out[:, int(zx)] = 225
    if 0 <= zy < size:
        out[int(zy), :] = 225
    if len(points):
        px, py = pixel(np.asarray(points, np.float64))
        keep = (px >= 1) & (px < size - 2) & (py >= 1) & (py < size - 2)
        colours = np.asarray(CLASS_RGB, np.uint8)[np.asarray(labels) % len(CLASS_RGB)]
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                out[(py[keep] + dy).astype(int), (px[keep] + dx).astype(int)] = colours[keep]
    if marker is not None:
        mx, my = pixel(np.asarray(marker, np.float64))
        yy, xx = np.mgrid[0:size, 0:size]
        ring = np.abs(np.hypot(xx - mx, yy - my) - 8) < 1.8
        out[ring] = (255, 59, 48)
    return out


def extent_of(points: np.ndarray | None, at_least: float = 3.0) -> tuple[float, float, float, float]:
    """A square-ish map extent holding 99% of the points (at least [-at_least, at_least] on both axes)."""
    lo, hi = np.array([-at_least, -at_least]), np.array([at_least, at_least])
    if points is not None and len(points):
        lo = np.minimum(lo, np.percentile(points, 0.5, axis=0))
        hi = np.maximum(hi, np.percentile(points, 99.5, axis=0))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


# ----------------------------------------------------------------------------- frames

def _condition(model, label: int | None, n: int):
    return None if model.config.condition != "label" else torch.full((n,), int(label or 0))


@torch.no_grad()
def decode_many(model, zs: np.ndarray, label: int | None = None) -> np.ndarray:
    """uint8 [N, H, W] digits decoded from latent codes [N, D]."""
    zs = torch.as_tensor(np.asarray(zs, np.float32))
    size = model.config.image_size
    return to_uint8(model.decode(zs, _condition(model, label, len(zs))).reshape(len(zs), size, size))


def walk_frames(model, z0, z1, steps: int = 24, label: int | None = None, bounce: bool = True,
                progress: Progress = None) -> np.ndarray:
    """Grey [T, S, S]: the decoded straight line z0 -> z1 in `steps` frames (and back, with bounce),
    enlarged to fit MAX_SIDE."""
    t = np.linspace(0.0, 1.0, max(2, int(steps)))[:, None]
    zs = (1 - t) * np.asarray(z0, np.float64) + t * np.asarray(z1, np.float64)
    digits = decode_many(model, zs, label)
    _tell(progress, 0.9)
    seq = list(digits) + (list(digits[-2:0:-1]) if bounce and len(digits) > 2 else [])
    scale = min(12, fit_scale(*digits.shape[1:]))
    frames = np.stack([upscale(d, scale) for d in seq])
    _tell(progress, 1.0)
    return frames


@torch.no_grad()
def manifold_picture(model, label: int | None = None, cells: int = 15, coverage: float = 0.997):
    """(uint8 [cells * H, cells * W] decoded grid over N(0, I)'s quantiles, z1 of each column, z2 of each row
    from the top) for a 2-D latent."""
    q = prior_quantiles(cells, coverage).double().numpy()
    z1, z2 = q, q[::-1].copy()
    zz = np.stack(np.meshgrid(z1, z2, indexing="xy"), axis=-1).reshape(-1, 2)
    digits = decode_many(model, zz, label)
    h, w = digits.shape[1:]
    picture = digits.reshape(cells, cells, h, w).transpose(0, 2, 1, 3).reshape(cells * h, cells * w)
    return picture, z1, z2


def path_frames(model, steps: int = 48, radius: float = 1.6, label: int | None = None,
                progress: Progress = None) -> np.ndarray:
    """RGB [T, H, W, 3]: z goes once round a loop across the latent space (a circle of `radius` prior standard
    deviations in the first two dimensions, the others at 0). For a 2-D latent each frame shows the digit
    beside the decoded manifold with a ring at z; otherwise the digit alone, with z written above it."""
    d = model.config.latent_dim
    angles = np.linspace(0, 2 * np.pi, max(4, int(steps)), endpoint=False)
    zs = np.zeros((len(angles), d))
    zs[:, 0] = radius * np.cos(angles)
    if d > 1:
        zs[:, 1] = radius * np.sin(angles)
    digits = decode_many(model, zs, label)
    _tell(progress, 0.3)
    frames = []
    if d == 2:
        picture, z1, z2 = manifold_picture(model, label)
        _tell(progress, 0.6)
        cells, h = len(z1), digits.shape[1]
        scale = max(1, 300 // picture.shape[0]) if picture.shape[0] < 300 else 1
        base = rgb(upscale(picture, scale))
        side = base.shape[0]
        yy, xx = np.mgrid[0:side, 0:side]
        for k, (z, digit) in enumerate(zip(zs, digits)):
            col = np.interp(z[0], z1, np.arange(cells)) + 0.5
            row = np.interp(-z[1], -z2, np.arange(cells)) + 0.5
            frame = base.copy()
            frame[np.abs(np.hypot(xx - col * h * scale, yy - row * h * scale) - 9) < 2] = (255, 59, 48)
            frames.append(side_by_side(upscale(digit, side // h), frame))
            _tell(progress, 0.6 + 0.4 * (k + 1) / len(zs))
    else:
        for k, (z, digit) in enumerate(zip(zs, digits)):
            text = "z = (" + ", ".join(f"{v:.1f}" for v in z[:4]) + (", …)" if d > 4 else ")")
            frames.append(with_caption(upscale(digit, 12), text, size=14))
            _tell(progress, 0.3 + 0.7 * (k + 1) / len(zs))
    return _fit(np.stack(frames))


def training_frames(snapshots: Sequence, progress: Progress = None) -> np.ndarray:
    """RGB frames, one per snapshot of a run (vae_core.record.TrainingSnapshot: epoch, caption, preview grid,
    latent means of a fixed set of evaluation images and their labels): the samples beside the latent map, on
    one extent for the whole run so the points are seen to move."""
    if not snapshots:
        raise ValueError("this run kept no snapshots to animate")
    maps = [s.means for s in snapshots if s.means is not None and s.means.shape[1] == 2]
    extent = extent_of(np.concatenate(maps)) if maps else None
    frames = []
    for k, snap in enumerate(snapshots):
        preview = rgb(snap.preview)
        scale = max(1, 300 // max(preview.shape[:2])) if max(preview.shape[:2]) < 300 else 1
        parts = [upscale(preview, scale)]
        if extent is not None and snap.means is not None:
            parts.append(scatter_picture(snap.means, snap.labels, extent, size=parts[0].shape[0]))
        frames.append(with_caption(side_by_side(*parts), snap.caption))
        _tell(progress, (k + 1) / len(snapshots))
    return _fit(_same_size(frames))


def sweep_frames(items: Sequence[tuple[str, object, np.ndarray | None, np.ndarray | None]],
                 label: int | None = None, progress: Progress = None) -> np.ndarray:
    """RGB frames, one per model of a sweep: items are (caption, model, latent means [N, 2] or None, labels)
    in the sweep's order. A 2-D model shows its test-set map beside its decoded manifold; others 8 x 8
    samples from the prior (the same noise for every model)."""
    if len(items) < 2:
        raise ValueError("a sweep needs at least two models to animate")
    maps = [m for _, _, m, _ in items if m is not None and m.shape[1] == 2]
    extent = extent_of(np.concatenate(maps)) if maps else None
    frames = []
    for k, (caption, model, means, labels) in enumerate(items):
        if model.config.latent_dim == 2:
            picture, _, _ = manifold_picture(model, label)
            parts = [upscale(picture, max(1, 280 // picture.shape[0]))]
            if extent is not None and means is not None:
                parts.insert(0, scatter_picture(means, labels, extent, size=parts[0].shape[0]))
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1234)
                zs = torch.randn(64, model.config.latent_dim).numpy()
            parts = [upscale(grid(decode_many(model, zs, label), ncols=8), 1)]
        frames.append(with_caption(side_by_side(*parts), caption))
        _tell(progress, (k + 1) / len(items))
    return _fit(_same_size(frames))


def _same_size(frames: list[np.ndarray]) -> np.ndarray:
    """Pad RGB frames of slightly different sizes (captions, grids) to the largest, on white."""
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    out = np.full((len(frames), h, w, 3), 255, np.uint8)
    for i, f in enumerate(frames):
        out[i, :f.shape[0], :f.shape[1]] = f
    return out


def _fit(frames: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Shrink frames whose side exceeds max_side by a whole factor (keeping every k-th pixel of a nearest
    enlargement, or area-averaging otherwise)."""
    h, w = frames.shape[1:3]
    if max(h, w) <= max_side:
        return frames
    from PIL import Image
    f = max_side / max(h, w)
    size = (max(1, int(w * f)), max(1, int(h * f)))
    return np.stack([np.asarray(Image.fromarray(fr).resize(size, Image.LANCZOS)) for fr in frames])


# ----------------------------------------------------------------------------- files

def mp4_available() -> bool:
    """True when imageio-ffmpeg (the optional MP4 writer) is installed."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def encode(frames: np.ndarray, fmt: str = "gif", fps: float = 10.0, max_bytes: int = MAX_BYTES) -> bytes:
    """GIF or MP4 bytes of uint8 frames (grey or RGB), looping (GIF). Frames are dropped evenly (the clip keeps
    its length in seconds) until the file fits max_bytes. ValueError for an unknown format or a missing
    MP4 writer."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or not len(frames):
        raise ValueError("frames must be a non-empty uint8 array [T, H, W] or [T, H, W, 3]")
    if fmt not in ("gif", "mp4"):
        raise ValueError(f"an animation is a gif or an mp4, not {fmt!r}")
    if fmt == "mp4" and not mp4_available():
        raise ValueError("MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); GIF works without it")
    step = 1
    while True:
        data = _write(frames[::step], fmt, fps / step)
        if len(data) <= max_bytes or len(frames[::step]) <= 2:
            return data
        step += max(1, math.ceil(step * (len(data) / max_bytes - 1)))


def _gif(frames: np.ndarray, fps: float) -> bytes:
    """A looping GIF with one palette for every frame, taken from the first, middle and last frames (these
    pictures hold few colours: greys, the class colours, a red ring). Quantising each frame on its own, as
    imageio's writer does, took 4x longer and made a 6x larger file of the 48-frame manifold path."""
    from PIL import Image
    if frames.ndim == 3:
        images = [Image.fromarray(f, "L") for f in frames]
    else:
        sample = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=0)
        palette = Image.fromarray(sample).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000.0 / fps),
                   loop=0, optimize=False)
    return buf.getvalue()


def _write(frames: np.ndarray, fmt: str, fps: float) -> bytes:
    if fmt == "gif":
        return _gif(frames, fps)
    import imageio.v3 as iio
    rgb_frames = np.stack([rgb(f) for f in frames])
    h, w = rgb_frames.shape[1:3]
    ph, pw = -h % 16, -w % 16            # H.264 wants sides in multiples of 16: pad with white, never resize
    if ph or pw:
        rgb_frames = np.pad(rgb_frames, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=255)
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "animation.mp4"
        iio.imwrite(path, rgb_frames, plugin="FFMPEG", fps=fps, codec="libx264", quality=7,
                    pixelformat="yuv420p", macro_block_size=16)
        return path.read_bytes()

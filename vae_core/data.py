"""MNIST and Fashion-MNIST held in memory as uint8 tensors, and the conditions built from them.

Batches are taken by slicing a tensor that lives on the training device: no DataLoader, no
per-sample transforms. That is what makes training several times faster than the usual
DataLoader + ToTensor loop on a small CPU (see bench/train_throughput.py).
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ENV_VAR = "VAE_DATA_DIR"

# file stem -> (split, kind)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# our name -> (our folder name, torchvision class / folder name)
_LAYOUTS = {"mnist": ("mnist", "MNIST"), "fashion-mnist": ("fashion-mnist", "FashionMNIST")}

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def class_names(dataset: str | None = None, num_classes: int = 10) -> tuple[str, ...]:
    """The names of a data set's classes (Fashion-MNIST: 'T-shirt/top', ...), else '0', '1', ..."""
    names = CLASS_NAMES.get(dataset or "", ())
    return names if len(names) == num_classes else tuple(str(i) for i in range(num_classes))


class DatasetUnavailable(RuntimeError):
    """The data set is missing (the message says what to put where) or one of its files is damaged (the
    message names the file and what is wrong with it). Data files are validated once, when they are loaded."""


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 [N, H, W] and labels as int64 [N], in memory."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str = "custom"
    split: str = "train"
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 3:
            raise ValueError("images must be a uint8 tensor of shape [N, H, W]")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be a tensor of shape [N] matching the images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def class_names(self) -> tuple[str, ...]:
        return class_names(self.name)

    def subset(self, start: int, stop: int | None = None) -> "ImageDataset":
        return ImageDataset(self.images[start:stop], self.labels[start:stop], self.name, self.split, self.source)

    def take(self, index: torch.Tensor) -> "ImageDataset":
        return ImageDataset(self.images[index], self.labels[index], self.name, self.split, self.source)

    def to(self, device: torch.device | str) -> "ImageDataset":
        return ImageDataset(self.images.to(device), self.labels.to(device), self.name, self.split, self.source)


# The largest IDX payload read (values = bytes for uint8): MNIST's training images are 47 million; a header
# that promises more is refused before anything is read, so a hostile file cannot make us allocate gigabytes.
MAX_IDX_VALUES = 256 * 1024 * 1024
MAX_IMAGE_SIDE = 1024
_IDX_UBYTE = 0x08
_MAX_DEFLATE_RATIO = 1100  # deflate's limit is about 1032:1


def _read_exactly(f, n: int) -> bytes:
    """Up to n bytes (fewer only at the end of the stream)."""
    chunks, left = [], n
    while left > 0:
        chunk = f.read(min(left, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions, validated before its payload is read.

    The header is checked first (magic number, dimension count, sizes whose product is bounded by
    MAX_IDX_VALUES); then exactly the promised number of values is read, and the file must end there. A gzip
    that expands beyond what the header promises is never decompressed past that point. Every problem
    raises DatasetUnavailable with a sentence naming the file.
    """
    gz = path.suffix == ".gz"
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            head = _read_exactly(f, 4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != _IDX_UBYTE:
                raise DatasetUnavailable(f"{path} is not an IDX file of unsigned bytes (it may be corrupt or "
                                         "not a data file at all)")
            if head[3] != ndim:
                raise DatasetUnavailable(f"{path} has {head[3]} dimensions in its header; this file should have "
                                         f"{ndim} (it may be corrupt)")
            raw_dims = _read_exactly(f, 4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DatasetUnavailable(f"{path} is truncated: its header ends early")
            dims = tuple(int.from_bytes(raw_dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(dims)
            if expected > MAX_IDX_VALUES:
                raise DatasetUnavailable(f"{path} claims {' x '.join(map(str, dims))} values, more than the "
                                         f"{MAX_IDX_VALUES:,} a data file may hold here (the header is corrupt)")
            on_disk = os.stat(path).st_size
            if not gz and on_disk - 4 - 4 * ndim != expected:  # the size must match before anything is read
                raise DatasetUnavailable(f"{path} is truncated or corrupt: its header promises {expected:,} "
                                         f"values, the file holds {on_disk - 4 - 4 * ndim:,}")
            if gz and expected > _MAX_DEFLATE_RATIO * on_disk:  # deflate cannot expand that far
                raise DatasetUnavailable(f"{path} is truncated or corrupt: its header promises {expected:,} "
                                         f"values, more than a {on_disk:,}-byte gzip file can hold")
            payload = bytearray(expected)
            got, view = 0, memoryview(payload)
            while got < expected:
                n = f.readinto(view[got:got + (1 << 24)])
                if not n:
                    break
                got += n
            view.release()
            if got != expected:
                raise DatasetUnavailable(f"{path} is truncated or corrupt: its header promises {expected:,} "
                                         f"values, the file holds {got:,}")
            if f.read(1):
                raise DatasetUnavailable(f"{path} is corrupt: it holds more than the {expected:,} values its "
                                         "header promises")
    except DatasetUnavailable:
        raise
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:  # a damaged or truncated .gz, a read error
        raise DatasetUnavailable(f"{path} could not be read (it may be corrupt or truncated): "
                                 f"{getattr(e, 'strerror', None) or e}") from None
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _candidate_folders(name: str, base: Path) -> list[Path]:
    ours, tv = _LAYOUTS[name]
    folders = [base / ours, base / tv / "raw"]
    if base.name.lower() in (ours, tv.lower()):  # root points straight at the data set's folder
        folders.append(base)
    return folders


def search_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Where load_dataset looks, in order: root, $VAE_DATA_DIR, ./data."""
    roots = []
    if root is not None:
        roots.append(Path(root))
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    roots.append(Path("data"))
    return roots


def locate_dataset(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding all four IDX files of `name`, or None."""
    _check_name(name)
    for base in search_roots(root):
        for folder in _candidate_folders(name, base):
            stems = _FILES["train"] + _FILES["test"]
            if all(_find_file(folder, s) for s in stems):
                return folder.resolve()
    return None


def dataset_files(name: str, root: str | os.PathLike | None = None) -> tuple[str, list[Path]]:
    """Our folder name for `name` ('mnist') and the four IDX files (plain or .gz) where locate_dataset finds
    them, [] when it does not: what a Ray cluster's nodes get to rebuild the data set in a folder of their own."""
    folder = locate_dataset(name, root)
    if folder is None:
        return _LAYOUTS[name][0], []
    return _LAYOUTS[name][0], [_find_file(folder, s) for s in _FILES["train"] + _FILES["test"]]


def _check_name(name: str) -> None:
    if name not in _LAYOUTS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(_LAYOUTS)}")


def _missing_message(name: str, root) -> str:
    ours, tv = _LAYOUTS[name]
    looked = ", ".join(str(p) for p in search_roots(root))
    files = ", ".join(f"{s}.gz" for s in _FILES["train"] + _FILES["test"])
    return (f"The {name} data set was not found (looked in: {looked}) and could not be downloaded. "
            f"Put the four files {files} in a folder named '{ours}/' inside one of those folders, "
            f"or set {ENV_VAR} to a folder that holds '{ours}/'.")


def _try_download(name: str) -> None:
    import torchvision  # imported lazily: only this fallback needs it

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    for train in (True, False):
        cls(root="data", train=train, download=True)


def _files_signature(folder: Path, split: str) -> tuple:
    """(path, size, mtime) of a split's two files: the cache key, so a replaced file is read again."""
    out = []
    for stem in _FILES[split]:
        path = _find_file(folder, stem)
        if path is None:
            raise DatasetUnavailable(f"{folder / stem}(.gz) disappeared while it was being loaded")
        st = path.stat()
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _load_checked(folder: Path, name: str, split: str) -> ImageDataset:
    return _load_cached(str(folder), name, split, _files_signature(folder, split))


@functools.lru_cache(maxsize=8)
def _load_cached(folder: str, name: str, split: str, signature: tuple) -> ImageDataset:
    """Both files of a split, validated together: images square and of a sane size, one label per image,
    every label a class of the data set."""
    (img_path, *_), (lbl_path, *_) = signature
    img_path, lbl_path = Path(img_path), Path(lbl_path)
    labels = _read_idx(lbl_path, ndim=1)
    images = _read_idx(img_path, ndim=3)
    n, rows, cols = images.shape
    if rows != cols or not 1 <= rows <= MAX_IMAGE_SIDE:
        raise DatasetUnavailable(f"{img_path} holds {rows} x {cols} images; Latent Lab needs square images of at "
                                 f"most {MAX_IMAGE_SIDE} pixels a side")
    if n != labels.shape[0]:
        raise DatasetUnavailable(f"the {name} {split} files in {folder} do not match each other: {n:,} images "
                                 f"but {labels.shape[0]:,} labels")
    if n == 0:
        raise DatasetUnavailable(f"{img_path} holds no images")
    classes = len(CLASS_NAMES[name])
    top = int(labels.max())
    if top >= classes:
        bad = int(np.argmax(labels >= classes))
        raise DatasetUnavailable(f"{lbl_path} is corrupt: label {top} (first at row {bad:,}) is not one of the "
                                 f"{classes} classes of {name} (0 to {classes - 1})")
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                        name=name, split=split, source=folder)


def load_dataset(name: str, split: str, root: str | os.PathLike | None = None,
                 download: bool = True) -> ImageDataset:
    """Load `name` ('mnist' or 'fashion-mnist'), `split` ('train' or 'test') into memory.

    Looks in `root`, then $VAE_DATA_DIR, then ./data, for `mnist/` or `fashion-mnist/` holding the four
    IDX files (gzipped or not), or torchvision's `MNIST/raw` layout. If nothing is found, tries
    torchvision's download into ./data; if that fails, raises DatasetUnavailable saying what to put where.
    """
    _check_name(name)
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    folder = locate_dataset(name, root)
    if folder is None and download:
        try:
            _try_download(name)
        except Exception:  # noqa: BLE001 - any failure means "not available", reported below
            pass
        folder = locate_dataset(name, root)
    if folder is None:
        raise DatasetUnavailable(_missing_message(name, root))
    return _load_checked(folder, name, split)


# ----------------------------------------------------------------------------- conditions

# The paper's MNIST protocol, as Pyro's example follows it: quadrants are numbered
# 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
VISIBLE_QUADRANTS = {1: (2,), 2: (0, 2), 3: (0, 1, 2)}
MASKED_VALUE = -1.0


def quadrant_mask(n_visible: int, size: int = 28) -> torch.Tensor:
    """Bool [size, size]: True where a pixel is visible with `n_visible` quadrants shown."""
    if n_visible not in VISIBLE_QUADRANTS:
        raise ValueError(f"the number of visible quadrants must be 1, 2 or 3; got {n_visible!r}")
    h = size // 2
    mask = torch.zeros(size, size, dtype=torch.bool)
    for q in VISIBLE_QUADRANTS[n_visible]:
        r, c = divmod(q, 2)
        mask[r * h:(r + 1) * h, c * h:(c + 1) * h] = True
    return mask


def quadrant_input(images: torch.Tensor, n_visible: torch.Tensor | int) -> torch.Tensor:
    """The conditioning input x: flattened images with hidden pixels set to -1.

    images: float [B, H, W] or [B, H*W] in [0, 1]; n_visible: an int or an int tensor [B] of 1..3.
    The hidden pixels are exactly those where x == -1, which is how the loss finds y's pixels.
    """
    size = images.shape[-1] if images.dim() == 3 else int(round(images.shape[-1] ** 0.5))
    flat = images.reshape(images.shape[0], -1)
    masks = torch.stack([quadrant_mask(k, size).flatten() for k in (1, 2, 3)]).to(flat.device)
    if isinstance(n_visible, int):
        visible = masks[n_visible - 1].expand_as(flat)
    else:
        visible = masks[n_visible.to(flat.device).long() - 1]
    return torch.where(visible, flat, torch.full_like(flat, MASKED_VALUE))


def hidden_pixels(x: torch.Tensor) -> torch.Tensor:
    """Bool, the shape of x: True where a quadrant input hides the pixel (the pixels y stands for)."""
    return x == MASKED_VALUE


def target_mask(x: torch.Tensor | None, num_pixels: int) -> torch.Tensor | None:
    """Which pixels of y the likelihood covers: the hidden ones for quadrant inputs, else all (None)."""
    if x is None or x.dtype in (torch.int64, torch.int32) or x.shape[-1] != num_pixels:
        return None
    return hidden_pixels(x)


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W] -> float [B, H*W] in [0, 1]."""
    return images_uint8.reshape(images_uint8.shape[0], -1).float().div_(255.0)


def make_batch(config, images_uint8: torch.Tensor, labels: torch.Tensor,
               quadrants: int | None = None, generator: torch.Generator | None = None):
    """(y, x) for a model config: y the float images, x its condition (None, labels, or masked images).

    quadrants overrides the config's count (1-3); a config with quadrants=0 draws 1-3 per example.
    """
    y = to_float(images_uint8)
    if config.condition == "none":
        return y, None
    if config.condition == "label":
        return y, labels
    k = quadrants or config.quadrants
    if not k:
        k = torch.randint(1, 4, (y.shape[0],), generator=generator, device="cpu").to(y.device)
    return y, quadrant_input(y, k)


def batches(config, dataset: ImageDataset, batch_size: int, device: torch.device | str = "cpu",
            quadrants: int | None = None, seed: int = 0):
    """(y, x, labels) for consecutive batches of a whole split, in order, on `device`: the one loop behind
    evaluation and encoding. A model trained on 1-3 quadrants draws each example's count from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, len(dataset), batch_size):
        imgs = dataset.images[start:start + batch_size].to(device)
        labels = dataset.labels[start:start + batch_size].to(device)
        y, x = make_batch(config, imgs, labels, quadrants=quadrants, generator=gen)
        yield y, x, labels

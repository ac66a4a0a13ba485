"""Shared fixtures: tiny synthetic image data sets (no network, no real data) and the real-data folder."""
from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

# The suite runs on two xdist workers over two cores (.ci/run): the processes it starts (the CLI, streamlit run,
# workers) let their OpenMP threads sleep rather than spin when they wait for a core the other worker holds.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Make `import vae_core` find the package when pytest is started as plain `pytest` (which puts tests/,
# not the repository root, on sys.path; tests/vae_core/ would otherwise look like a namespace package).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vae_core import ImageDataset, locate_dataset  # noqa: E402
from vae_core import cpu  # noqa: E402

# fit(threads="auto") first looks at the machine after cpu.FIRST_CHECK_SECONDS and may then change the thread
# count, which can change the last bits of a sum. The tests train fixture models and compare seeded runs bit for
# bit on a machine the other xdist worker keeps busy: in this process the first look waits as long as the later
# ones, so a short run is never changed by the load. (tests/vae_core/test_cpu_threads.py sets its own.)
cpu.FIRST_CHECK_SECONDS = cpu.CHECK_SECONDS

BROWSER_TESTS = ROOT / "tests" / "e2e"
# files that must not run at the same time as each other on two xdist workers: each starts a Ray of its own
# (ray.init, `ray start --head`), and two on one machine would share Ray's default agent ports
SHARED_GROUPS = {"tests/app/test_train_ray.py": "ray", "tests/app/test_train_ray_cluster.py": "ray"}


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    """How pytest-xdist shares the tests out under `--dist loadgroup` (README, .ci/run: `-n 2`): every browser
    test goes to one worker, in file order (one server and one chromium, never two browser tests at once on
    two cores), and each other file goes whole to one worker (its module fixtures made once), the Ray files
    together; the largest groups go first. Without xdist the marks do nothing."""
    for item in items:
        path = Path(str(item.fspath))
        name = path.relative_to(ROOT).as_posix()
        group = "browser" if BROWSER_TESTS in path.parents else SHARED_GROUPS.get(name, name)
        item.add_marker(pytest.mark.xdist_group(group))


def synthetic_images(n: int = 256, size: int = 8, num_classes: int = 10, seed: int = 0):
    """uint8 [n, size, size] images and int64 labels: each class is a fixed random binary pattern with
    a little pixel noise, so a model can learn something in a few steps."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((num_classes, size, size)) < 0.4
    labels = rng.integers(0, num_classes, n)
    flips = rng.random((n, size, size)) < 0.05
    images = np.where(patterns[labels] ^ flips, 255, 0).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture
def tiny_data() -> ImageDataset:
    """256 synthetic 8x8 images in 10 classes."""
    images, labels = synthetic_images()
    return ImageDataset(images, labels, name="synthetic", split="train")


def write_idx(path: Path, array: np.ndarray, gz: bool | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    gz = path.suffix == ".gz" if gz is None else gz
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_fake_mnist(folder: Path, n_train: int = 300, n_test: int = 100, size: int = 28,
                     gz: bool = True, seed: int = 0) -> Path:
    """The four MNIST IDX files, filled with synthetic digits, in `folder`."""
    suffix = ".gz" if gz else ""
    tr_x, tr_y = synthetic_images(n_train, size, seed=seed)
    te_x, te_y = synthetic_images(n_test, size, seed=seed + 1)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", tr_x.numpy())
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", tr_y.numpy().astype(np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", te_x.numpy())
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", te_y.numpy().astype(np.uint8))
    return folder


@pytest.fixture
def fake_data_dir(tmp_path) -> Path:
    """A data folder holding mnist/ with 300 train and 100 test synthetic 28x28 images."""
    write_fake_mnist(tmp_path / "data" / "mnist")
    return tmp_path / "data"


@pytest.fixture
def idx_tools():
    """(write_idx, write_fake_mnist, synthetic_images), for tests that build their own files."""
    return write_idx, write_fake_mnist, synthetic_images


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder from $VAE_DATA_DIR; skips the test when it is absent."""
    if not os.environ.get("VAE_DATA_DIR"):
        pytest.skip("real MNIST not available: set VAE_DATA_DIR to a folder holding mnist/ with the four IDX files")
    folder = locate_dataset("mnist", os.environ["VAE_DATA_DIR"])
    if folder is None:
        pytest.skip(f"real MNIST not found under VAE_DATA_DIR={os.environ['VAE_DATA_DIR']} "
                    "(expected mnist/ with the four IDX files)")
    return folder

"""Helpers for the AppTests (importable: `from apptest_helpers import ...`; conftest.py holds the fixtures).

A session-scoped folder of tiny checkpoints trained here by vae_core (hidden_dims=(32,), a few hundred
images, seconds in all), plus a corrupt file; LATENT_LAB_MODEL_DIRS points at it for every test.
When the real MNIST files are not found, a small synthetic MNIST-shaped data set is written in IDX
format and VAE_DATA_DIR points at it, so the pages and the Train page work offline too.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from filelock import FileLock

from vae_core import (ModelConfig, TrainConfig, build_model, encode_dataset, fit, load_dataset, locate_dataset,
                      record_from_fit, save_checkpoint)
from vae_core.evaluation import checkpoint_metrics
from vae_core.training import TrainingData

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TRAIN_IMAGES = 300
TEST_IMAGES = 500

# name -> model config; the fixture trains each one for a couple of epochs
FIXTURE_MODELS = {
    "vae_2d": ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,)),
    "cvae_label": ModelConfig(variant="cvae", condition="label", latent_dim=2, hidden_dims=(32,)),
    "gsnn_label": ModelConfig(variant="gsnn", condition="label", latent_dim=2, hidden_dims=(32,)),
    "hybrid_label": ModelConfig(variant="hybrid", condition="label", latent_dim=2, hidden_dims=(32,)),
    "cvae_quadrants": ModelConfig(variant="cvae", condition="quadrants", quadrants=0, latent_dim=2, hidden_dims=(32,)),
    "gsnn_quadrants": ModelConfig(variant="gsnn", condition="quadrants", quadrants=0, latent_dim=2, hidden_dims=(32,)),
    "hybrid_quadrants": ModelConfig(variant="hybrid", condition="quadrants", quadrants=0, latent_dim=2,
                                    hidden_dims=(32,)),
    "baseline_quadrants": ModelConfig(variant="baseline", condition="quadrants", quadrants=0, hidden_dims=(32,)),
    "vae_3d": ModelConfig(variant="vae", condition="none", latent_dim=3, hidden_dims=(32,)),
    # the shipped 2-D VAEs encode with convolutions (ModelConfig.encoder == "conv"): the live encoder runs them
    "vae_conv_2d": ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,), encoder="conv"),
    # a Fashion-MNIST VAE whose file name sorts first, as the shipped checkpoints/ do: the pages must still
    # open on the MNIST 2-D VAE
    "fashion_vae_2d": ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,)),
    # a tiny β sweep: three models trained alike but for β (FIXTURE_BETAS), found as a sweep from their records;
    # their size differs from vae_2d's, so the default model belongs to no sweep
    **{name: ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(24,))
       for name in ("vae_2d_beta05", "vae_2d_beta2", "vae_2d_beta8")},
}
FIXTURE_DATASETS = {"fashion_vae_2d": "fashion-mnist"}   # the others are trained on MNIST
FIXTURE_BETAS = {"vae_2d_beta05": 0.5, "vae_2d_beta2": 2.0, "vae_2d_beta8": 8.0}   # the others: β = 1
SWEEP_FIXTURES = tuple(FIXTURE_BETAS)
BROKEN = "broken.safetensors"


def _synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped stand-ins: class c is a bright bar whose position and angle depend on c, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    images = np.zeros((n, 28, 28), dtype=np.float32)
    for i, c in enumerate(labels):
        angle = np.pi * c / 10 + rng.normal(0, 0.08)
        cx, cy = 14 + rng.normal(0, 1.5), 14 + rng.normal(0, 1.5)
        dist = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle))
        along = np.abs((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle))
        images[i] = np.clip(1.6 - dist, 0, 1) * (along < 4 + c % 5)
    images = np.clip(images + rng.normal(0, 0.03, images.shape), 0, 1)
    return (images * 255).astype(np.uint8), labels


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_synthetic_mnist(root: Path, n_train: int = 1000, n_test: int = TEST_IMAGES,
                          datasets: tuple[str, ...] = ("mnist", "fashion-mnist")) -> Path:
    """Synthetic stand-ins for each data set (Fashion-MNIST: the same bars, other seeds) under root/<name>/."""
    for offset, name in enumerate(datasets):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for stem, n, seed in (("train", n_train, 1 + 10 * offset), ("t10k", n_test, 2 + 10 * offset)):
            images, labels = _synthetic_digits(n, seed)
            _write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images)
            _write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)
    return root


def real_data_root() -> Path | None:
    """The folder holding the real mnist/ and fashion-mnist/ when both are found there, else None."""
    mnist, fashion = locate_dataset("mnist"), locate_dataset("fashion-mnist")
    return mnist.parent if mnist is not None and fashion is not None and mnist.parent == fashion.parent else None


def fixture_data_root(tmp: Path) -> Path:
    """A folder holding mnist/ and fashion-mnist/: the real ones when both are found, else synthetic ones
    (real MNIST without Fashion-MNIST gets a synthetic Fashion-MNIST beside a link to the real MNIST)."""
    real = real_data_root()
    if real is not None:
        return real
    mnist = locate_dataset("mnist")
    if mnist is None:
        return write_synthetic_mnist(tmp)
    (tmp / "mnist").symlink_to(mnist, target_is_directory=True)
    return write_synthetic_mnist(tmp, datasets=("fashion-mnist",))


def train_fixture_model(name: str, config: ModelConfig, root: Path, out: Path) -> None:
    dataset = FIXTURE_DATASETS.get(name, "mnist")
    tcfg = TrainConfig(dataset=dataset, epochs=2, batch_size=64, seed=0, train_limit=TRAIN_IMAGES,
                       eval_limit=200, device="cpu", beta=FIXTURE_BETAS.get(name, 1.0))
    train = load_dataset(dataset, "train", root, download=False).subset(0, TRAIN_IMAGES)
    test = load_dataset(dataset, "test", root, download=False)
    model = build_model(config, seed=0)
    result = fit(model, TrainingData(train, test.subset(0, 200)), tcfg)
    model.eval()
    metrics = {**checkpoint_metrics(model, test.subset(0, 100), samples=10, diversity_examples=10), "test_images": 100}
    record = record_from_fit(config, tcfg, result, name=name, description=f"test fixture: {config.describe()}",
                             command="tests/app/conftest.py", metrics=metrics)
    extras = {}
    if config.has_2d_map:
        mu, _, labels = encode_dataset(model, test)
        extras = {"test_latent_means": mu, "test_labels": labels}
    save_checkpoint(out / f"{name}.safetensors", model, record, extras=extras)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder that `make(folder)` fills once per test run, shared by every pytest-xdist worker of the run (the
    first to ask makes it under a file lock; the others wait for it): the fixture models and data sets are
    trained or written once, not once per worker, and AppTest and browser tests read the same files. Treat
    it as read-only; copy what a test may change."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent   # the run's folder, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def shared_data_root(tmp_path_factory) -> Path:
    """fixture_data_root, written once per test run (made_once) when the real data sets are not both found."""
    return real_data_root() or made_once(tmp_path_factory, "fixture_data", fixture_data_root)


def trained_fixture_models(tmp_path_factory, data_root: Path) -> Path:
    """Every model of FIXTURE_MODELS, trained once per test run (made_once) on `data_root`."""
    def train_all(out: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            for name, config in FIXTURE_MODELS.items():
                train_fixture_model(name, config, data_root, out)
    return made_once(tmp_path_factory, "fixture_models", train_all)


TRAIN_VIEW = "train_view"   # the Train page's session key of the job it shows


def service():
    """The job service of this test process (the pages' own, ui.training_job.jobs)."""
    from ui.training_job import jobs
    return jobs()


def viewed(at):
    """The snapshot of the job the page shows."""
    return service().progress(at.session_state[TRAIN_VIEW], touch=False)


def tiny_settings(at, epochs=1, batch=128):
    """The Train page set to a tiny run (one 32-unit layer, 1,000 images), then run."""
    at.text_input(key="train_hidden").set_value("32")
    at.number_input(key="train_epochs").set_value(epochs)
    at.select_slider(key="train_images").set_value(1000)
    at.select_slider(key="train_batch").set_value(batch)
    return at.run()


def wait_until(at, done, deadline_s=90.0):
    """run_every fragments do not fire inside AppTest: rerun the page until done(at) or the deadline, then
    once more. done(at) reads the job service, which can move on after the page's run has drawn it (a job that
    ends between the two): the extra run is the page's next poll, which a browser's fragment would make."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        at.run()
        assert not errors_of(at)
        if done(at):
            at.run()
            assert not errors_of(at)
            return at
        time.sleep(0.2)
    raise AssertionError("the page did not reach the expected state before the deadline")


def errors_of(at) -> list[str]:
    """Exceptions shown in the page (each as its message): a page must show none."""
    return [e.value for e in at.exception]


def texts_of(at) -> str:
    """All markdown, captions, info/warning/error/success texts of the page, joined (for 'in' checks)."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader"):
        parts += [str(el.value) for el in getattr(at, kind)]
    return "\n".join(parts)


def run_a_tiny_job(at, seconds: float = 120):
    """On the Train page (`at`): a 16-unit model, 1 epoch on 1,000 images, started and followed to its end
    with the page rerun every 0.5 s (no exception may show meanwhile). Returns the job's last snapshot."""
    import time

    from ui.training_job import jobs
    at.text_input(key="train_hidden").set_value("16")
    at.number_input(key="train_epochs").set_value(1)
    at.select_slider(key="train_images").set_value(1000)
    at.run().button(key="train_start").click().run()
    assert not errors_of(at)
    service, job_id = jobs(), at.session_state["train_view"]
    end = time.monotonic() + seconds
    while time.monotonic() < end and not service.progress(job_id).finished:
        at.run()
        assert not errors_of(at)
        time.sleep(0.5)
    return service.progress(job_id)


def save_the_finished_run(at, name: str) -> None:
    """The finished run's page says so, and its Save button saves it under `name`."""
    at.run()
    assert any("Training finished" in s.value for s in at.success)
    at.text_input(key="train_save_name").set_value(name)
    [b for b in at.button if b.label == "Save"][0].click().run()
    assert any("Saved to" in s.value for s in at.success)


SWEEP_BETAS = (0.5, 1.0, 4.0)


def train_sweep(root: Path, out: Path, betas=SWEEP_BETAS) -> list[Path]:
    """A tiny beta sweep (the same 2-D VAE config trained with each beta, 1 epoch on 300 images), as the
    shipped sweep is laid out: one checkpoint per beta in one folder, each with its test-set latent means."""
    config = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,))
    train = load_dataset("mnist", "train", root, download=False).subset(0, TRAIN_IMAGES)
    test = load_dataset("mnist", "test", root, download=False).subset(0, 300)
    paths = []
    for beta in betas:
        tcfg = TrainConfig(dataset="mnist", epochs=1, batch_size=64, seed=0, beta=beta, train_limit=TRAIN_IMAGES,
                           device="cpu")
        model = build_model(config, seed=0)
        result = fit(model, train, tcfg)
        model.eval()
        mu, _, labels = encode_dataset(model, test)
        record = record_from_fit(config, tcfg, result, name=f"sweep beta {beta:g}", command="tests: train_sweep")
        paths.append(save_checkpoint(out / f"sweep_beta_{beta:g}.safetensors", model, record,
                                     extras={"test_latent_means": mu, "test_labels": labels}))
    return paths

"""A training run in a worker thread, for the Train page.

`TrainingJob` is a plain object kept in st.session_state: the worker thread trains with
vae_core.fit and records progress under a lock; the page reads `snapshot()` (a copy) from a fragment
that polls. The worker never calls streamlit (calls from a thread without a script context are lost),
and a stop request is seen by fit before the next batch.
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vae_core import (LatentModel, ModelConfig, TrainConfig, build_model, encode_dataset, fit, load_dataset,
                      prepare_data, record_from_fit, save_checkpoint)
from vae_core.checkpoints import CheckpointExists
from vae_core.data import DatasetUnavailable
from vae_core.evaluation import checkpoint_metrics
from vae_core.data import class_names, hidden_pixels, quadrant_input

from ui.images import grid

PREVIEW_SEED = 1234
LATENT_POINTS = 2000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FINISHED = ("completed", "stopped", "diverged", "failed")


@dataclass
class Snapshot:
    """A copy of a job's state at one moment: safe to read without the lock."""

    status: str                       # starting | running | completed | stopped | diverged | failed
    message: str
    model_config: ModelConfig
    train_config: TrainConfig
    epoch: int = 0                    # the epoch in progress, from 0
    epochs: int = 1
    global_step: int = 0
    total_steps: int = 0
    steps_per_epoch: int = 1
    images_per_sec: float = 0.0
    elapsed: float = 0.0
    eta: float = 0.0
    train_images: int = 0
    eval_images: int = 0
    steps: dict[str, list] = field(default_factory=dict)   # 'step', 'loss', 'recon', 'kl' per optimiser step
    epoch_records: list[dict] = field(default_factory=list)  # {'epoch', 'train', 'eval'[, 'kl_per_dim']}
    preview: np.ndarray | None = None
    preview_caption: str = ""
    latent: tuple[np.ndarray, np.ndarray] | None = None      # (points [N, 2], labels [N])
    class_names: tuple[str, ...] = class_names()
    saved_path: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def fraction(self) -> float:
        return min(1.0, self.global_step / self.total_steps) if self.total_steps else 0.0

    @property
    def can_save(self) -> bool:
        if self.status in ("completed", "stopped"):
            return self.global_step > 0
        return self.status == "diverged" and bool(self.epoch_records)


class TrainingJob:
    """One training run: start() launches the worker, stop() asks it to stop, snapshot() reads it."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, data_root: str | Path | None = None):
        self.model_config = model_config
        self.train_config = train_config
        self.data_root = data_root
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status, self._message = "starting", "loading the data set"
        self._progress: dict = {}
        self._steps = {"step": [], "loss": [], "recon": [], "kl": []}
        self._epochs: list[dict] = []
        self._preview: np.ndarray | None = None
        self._preview_caption = ""
        self._latent: tuple[np.ndarray, np.ndarray] | None = None
        self._sizes = (0, 0)
        self._class_names = class_names(train_config.dataset)
        self._saved_path: str | None = None
        self.model: LatentModel | None = None
        self.result = None
        self.data = None

    # ------------------------------------------------------------------ control (page side)
    def start(self) -> "TrainingJob":
        self._thread = threading.Thread(target=self._run, name="latent-lab-training", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        with self._lock:
            p = self._progress
            return Snapshot(
                status=self._status, message=self._message, model_config=self.model_config,
                train_config=self.train_config, epoch=p.get("epoch", 0), epochs=self.train_config.epochs,
                global_step=p.get("global_step", 0), total_steps=p.get("total_steps", 0),
                steps_per_epoch=p.get("steps_per_epoch", 1), images_per_sec=p.get("images_per_sec", 0.0),
                elapsed=p.get("elapsed", 0.0), eta=p.get("eta", 0.0), train_images=self._sizes[0],
                eval_images=self._sizes[1], steps={k: list(v) for k, v in self._steps.items()},
                epoch_records=list(self._epochs), preview=self._preview, preview_caption=self._preview_caption,
                latent=self._latent, class_names=self._class_names, saved_path=self._saved_path,
            )

    # ------------------------------------------------------------------ fit callbacks (worker side)
    def should_stop(self) -> bool:
        return self._stop.is_set()

    def on_step(self, info) -> None:
        with self._lock:
            self._progress = {"epoch": info.epoch, "global_step": info.global_step, "total_steps": info.total_steps,
                              "steps_per_epoch": info.steps_per_epoch, "images_per_sec": info.images_per_sec,
                              "elapsed": info.elapsed, "eta": info.eta}
            self._steps["step"].append(info.global_step)
            self._steps["loss"].append(info.loss)
            self._steps["recon"].append(info.recon)
            self._steps["kl"].append(info.kl)

    def on_epoch(self, info) -> None:
        preview, caption = self._make_preview()
        latent = self._make_latent()
        with self._lock:
            self._epochs.append({"epoch": info.epoch, "train": dict(info.train),
                                 "eval": None if info.eval is None else dict(info.eval),
                                 **({"kl_per_dim": list(info.kl_per_dim)} if info.kl_per_dim else {})})
            self._progress.update(eta=info.eta, elapsed=info.elapsed, images_per_sec=info.images_per_sec)
            self._preview, self._preview_caption = preview, caption + f" after epoch {info.epoch + 1}"
            if latent is not None:
                self._latent = latent

    # ------------------------------------------------------------------ the worker
    def _set(self, status: str, message: str) -> None:
        with self._lock:
            self._status, self._message = status, message

    def _run(self) -> None:
        try:
            self.data = prepare_data(self.train_config, self.data_root)
            with self._lock:
                self._sizes = (len(self.data.train), len(self.data.eval) if self.data.eval is not None else 0)
                self._class_names = self.data.train.class_names
            if self._stop.is_set():
                self._set("stopped", "stopped before the first step")
                return
            self.model = build_model(self.model_config, seed=self.train_config.seed)
            preview, caption = self._make_preview()
            latent = self._make_latent()
            with self._lock:
                self._preview, self._preview_caption = preview, caption + " before training"
                self._latent = latent
                steps = math.ceil(len(self.data.train) / self.train_config.batch_size)
                self._progress = {"steps_per_epoch": steps, "total_steps": steps * self.train_config.epochs}
                self._status, self._message = "running", "training"
            self.result = fit(self.model, self.data, self.train_config, [self])
            self.model.eval()
            self._set(self.result.status, _sentence(self.result.message))
        except Exception as e:  # noqa: BLE001 - the page shows any failure as a sentence
            self._set("failed", f"Training failed: {e}")

    # ------------------------------------------------------------------ live pictures
    @torch.no_grad()
    def _make_preview(self) -> tuple[np.ndarray | None, str]:
        """Samples (vae: 8x8 from the prior; label: one row per class) or quadrant completions, with the
        same noise every epoch so a class sees the same samples sharpen."""
        model, cfg = self.model, self.model_config
        if model is None or self.data is None:
            return None, ""
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(PREVIEW_SEED)
                if cfg.condition == "none":
                    imgs = model.sample(None, 64).cpu()
                    return grid(imgs.reshape(64, cfg.image_size, cfg.image_size), ncols=8), "64 samples from the prior"
                if cfg.condition == "label":
                    labels = torch.arange(cfg.num_classes, device=model.device)
                    imgs = model.sample(labels, 8).cpu()                        # [10, 8, P]
                    imgs = imgs.reshape(cfg.num_classes, 8, cfg.image_size, cfg.image_size)
                    what = "predictions" if not cfg.has_latent else "samples"
                    return grid(imgs), f"{what} for each label (one row per class)"
                return self._completion_preview()
        finally:
            model.train(was_training)

    def _completion_preview(self) -> tuple[np.ndarray, str]:
        model, cfg = self.model, self.model_config
        source = self.data.eval if self.data.eval is not None else self.data.train
        k = cfg.quadrants or 2
        digits = source.images[:8].float().div(255).reshape(8, -1).to(model.device)
        x = quadrant_input(digits, k)
        hidden = hidden_pixels(x)
        rows = [torch.where(hidden, torch.full_like(x, 0.25), x)]  # the visible part, hidden pixels dark grey
        draws = 1 if not cfg.has_latent else 3
        for _ in range(draws):
            rows.append(torch.where(hidden, model.sample(x, 1)[:, 0], x))
        rows.append(digits)
        imgs = torch.stack(rows).cpu().reshape(len(rows), 8, cfg.image_size, cfg.image_size)
        what = "prediction" if not cfg.has_latent else f"{draws} sampled completions"
        return grid(imgs), f"{k} visible quadrant{'s' * (k > 1)}: input (top), {what}, truth (bottom)"

    @torch.no_grad()
    def _make_latent(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Latent means of up to LATENT_POINTS evaluation images, for a 2-D latent."""
        model, cfg = self.model, self.model_config
        if model is None or self.data is None or self.data.eval is None:
            return None
        if not cfg.has_2d_map:
            return None
        was_training = model.training
        try:
            mu, _, labels = encode_dataset(model, self.data.eval.subset(0, LATENT_POINTS))
        finally:
            model.train(was_training)
        return mu.numpy(), labels.numpy()

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path, name: str, *, overwrite: bool = False, metric_images: int = 1000,
             samples: int = 20) -> Path:
        """Write the trained model to folder/name.safetensors with its configs, history and quick metrics.

        Raises ValueError with a sentence for a bad name, an existing file, or a job with nothing to save.
        """
        snap = self.snapshot()
        check_name(name)
        if not snap.can_save or self.model is None or self.data is None:
            raise ValueError("there is no trained model to save yet")
        path = Path(folder) / f"{name}.safetensors"
        if path.exists() and not overwrite:
            raise ValueError(f"a model named {name!r} already exists; choose another name or tick 'overwrite'")
        model, cfg, tcfg = self.model, self.model_config, self.train_config
        model.eval()
        try:  # the page shows a ValueError as "Not saved: ..."; a test set damaged since training is one too
            test = load_dataset(tcfg.dataset, "test", self.data_root, download=False)
        except DatasetUnavailable as e:
            raise ValueError(f"the test set could not be read to measure the model: {e}") from None
        small = test.subset(0, metric_images)
        metrics = checkpoint_metrics(model, small, samples, diversity_examples=50)
        metrics["test_images"] = len(small)
        record = record_from_fit(cfg, tcfg, self.result, name=name, command="Latent Lab Train page",
                                 description=f"trained in the app: {cfg.describe()}", metrics=metrics)
        extras = {}
        if cfg.has_2d_map:
            mu, _, labels = encode_dataset(model, test)
            extras = {"test_latent_means": mu, "test_labels": labels}
        try:  # the name is claimed atomically: of two saves of one name at once, only one succeeds
            saved = save_checkpoint(path, model, record, extras=extras, overwrite=overwrite)
        except CheckpointExists:
            raise ValueError(f"a model named {name!r} was saved a moment ago (perhaps from another tab); "
                             "choose another name or tick 'overwrite'") from None
        except OSError as e:
            raise ValueError(f"the file {path} could not be written ({(e.strerror or str(e)).lower()})") from None
        with self._lock:
            self._saved_path = str(saved)
        return saved


def check_name(name: str) -> str:
    """A model name is 1-64 letters, digits, '-' and '_' (it becomes a file name)."""
    if not NAME_PATTERN.match(name or ""):
        raise ValueError("a model name may use only letters, digits, '-' and '_' (1 to 64 of them), "
                         f"like cvae_label_2d; got {name!r}")
    return name


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 512' -> (512, 512); a sentence in a ValueError otherwise."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"hidden layers must be whole numbers separated by commas, like 512, 512; got {text!r}")
    return tuple(int(p) for p in parts)




def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text

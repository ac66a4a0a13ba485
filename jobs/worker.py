"""The body of one training job, the same under every backend: load the data, build the model, run
vae_core.fit, and report through `emit(kind, payload)`:

    ("started",  sizes, class names, steps per epoch)             once the data is in memory
    ("steps",    the new per-step losses and the progress)        at most every STEP_FLUSH_SECONDS
    ("pictures", samples and the 2-D latent map)                  every REDRAW_SECONDS and after each epoch
    ("epoch",    the epoch's train and test losses)               after each epoch
    ("result",   the weights (numpy), the checkpoint record, extras)  when there is something to save
    ("end",      status and a sentence)                           last

A stop request (`should_stop()`, checked before every batch) ends fit within one batch and still sends
the weights, so a stopped or abandoned run can be saved. Only plain Python, numpy and torch go through
emit, so a multiprocessing queue or a Ray actor can carry them.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vae_core import (ModelConfig, TrainConfig, build_model, encode_dataset, fit, load_dataset,  # noqa: E402
                      prepare_data, record_from_fit)
from vae_core.data import DatasetUnavailable, hidden_pixels, quadrant_input  # noqa: E402
from vae_core.evaluation import checkpoint_metrics  # noqa: E402
from vae_core.pictures import grid  # noqa: E402
from vae_core.record import snapshot_extras  # noqa: E402

PREVIEW_SEED = 1234
LATENT_POINTS = 2000
SNAPSHOTS = 10          # moments of a run kept in its record for an animation (the first step and <= 9 epochs)
SNAPSHOT_POINTS = 500   # latent means kept per snapshot (the same evaluation images each time)
STEP_FLUSH_SECONDS = 0.25
REDRAW_SECONDS = 1.0
METRIC_IMAGES = 500
METRIC_SAMPLES = 20

Emit = Callable[[str, dict], None]


def settings_to_dict(model_config: ModelConfig, train_config: TrainConfig) -> dict:
    return {"model_config": model_config.to_dict(), "train_config": train_config.to_dict()}


def settings_from_dict(settings: dict) -> tuple[ModelConfig, TrainConfig]:
    return ModelConfig.from_dict(settings["model_config"]), TrainConfig.from_dict(settings["train_config"])


def lower_priority(threads: int, nice: int) -> None:
    """The torch threads this worker starts with, and a lower CPU priority so the explorer's clicks win.
    fit's default thread policy (vae_core.cpu.AdaptiveThreads) then uses more threads while the machine's other
    cores stay idle (a lone run, nobody exploring) and steps back down as soon as other work needs them."""
    if threads > 0:
        torch.set_num_threads(threads)
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:
            pass


def run_job(settings: dict, data_root: str | None, emit: Emit, should_stop: Callable[[], bool], *,
            redraw_seconds: float = REDRAW_SECONDS, timings: dict | None = None,
            quick: Callable[[], bool] = lambda: False) -> None:
    """Train one job; never raises (a failure is an "end" message with a sentence).

    `timings` (wall-clock times, time.time()) travel in the "started" message with the worker's own
    ("data", "model"), and the first "steps" message carries "first_step": where the start-up time goes.
    When `quick()` holds at the end (the server went away: the worker has seconds to keep its weights), the
    result skips the test-set figures and latent means."""
    try:
        _run(settings, data_root, emit, should_stop, redraw_seconds, dict(timings or {}), quick)
    except Exception as e:  # noqa: BLE001 - the page shows any failure as a sentence
        emit("end", {"status": "failed", "message": _sentence(f"Training failed: {e}")})


def _run(settings, data_root, emit, should_stop, redraw_seconds, timings, quick=lambda: False) -> None:
    model_config, train_config = settings_from_dict(settings)
    wall0 = time.time()
    data = prepare_data(train_config, data_root)
    timings["data"] = time.time()
    if should_stop():
        emit("end", {"status": "stopped", "message": "Stopped before the first step."})
        return
    model = build_model(model_config, seed=train_config.seed)
    timings["model"] = time.time()
    steps_per_epoch = math.ceil(len(data.train) / train_config.batch_size)
    emit("started", {"train_images": len(data.train), "eval_images": len(data.eval) if data.eval else 0,
                     "class_names": list(data.train.class_names), "steps_per_epoch": steps_per_epoch,
                     "total_steps": steps_per_epoch * train_config.epochs, "load_seconds": time.time() - wall0,
                     "timings": timings})
    # The pictures "before training" follow the first step (Reporter.on_step), so that step is not kept waiting.
    reporter = Reporter(model, data, emit, should_stop, redraw_seconds)
    result = fit(model, data, train_config, [reporter])
    reporter.flush()
    model.eval()
    status, message = result.status, _sentence(result.message)
    if reporter.stop_reason and status == "stopped":
        message = _sentence(reporter.stop_reason)
    saveable = result.has_good_state  # trained, with finite weights (a diverged run: those of its last good epoch)
    if saveable:
        emit("result", make_result(model, data, train_config, result, reporter, status, message, data_root,
                                   wall=time.time() - wall0, quick=quick()))
    emit("end", {"status": status, "message": message, "elapsed": result.elapsed,
                 "wall": time.time() - wall0})


class Reporter:
    """fit's callback: batches the per-step losses, redraws the pictures on a clock, asks about stops."""

    def __init__(self, model, data, emit: Emit, should_stop, redraw_seconds: float):
        self.model, self.data, self.emit, self._should_stop = model, data, emit, should_stop
        self.redraw_seconds = redraw_seconds
        self.buffer = {"step": [], "loss": [], "recon": [], "kl": []}
        self.progress: dict = {}
        self.global_step = 0
        self.elapsed = 0.0
        self.images_per_sec = 0.0
        self.last_flush = self.last_draw = time.monotonic()
        self.stop_reason = ""
        self.epochs: list[dict] = []
        self.snapshots: list[tuple] = []      # (epoch, caption, preview, means, labels): vae_core.record.snapshot_extras
        self.snapshot_epochs: set[int] = set()

    def should_stop(self) -> bool:
        answer = self._should_stop()
        if answer and isinstance(answer, str):
            self.stop_reason = answer
        return bool(answer)

    def on_step(self, info) -> None:
        self.global_step, self.elapsed, self.images_per_sec = info.global_step, info.elapsed, info.images_per_sec
        self.buffer["step"].append(info.global_step)
        self.buffer["loss"].append(info.loss)
        self.buffer["recon"].append(info.recon)
        self.buffer["kl"].append(info.kl)
        self.progress = {"epoch": info.epoch, "global_step": info.global_step, "total_steps": info.total_steps,
                         "steps_per_epoch": info.steps_per_epoch, "images_per_sec": info.images_per_sec,
                         "elapsed": info.elapsed, "eta": info.eta}
        now = time.monotonic()
        if info.global_step == 1:  # the first step goes out at once, then the pictures of the untrained model
            self.progress["first_step"] = time.time()
            self.flush()
            epochs = max(1, math.ceil(info.total_steps / info.steps_per_epoch))
            self.snapshot_epochs = {int(e) for e in np.linspace(0, epochs - 1, min(epochs, SNAPSHOTS - 1)).round()}
            self.pictures("after its first step", snapshot_epoch=0)
            return
        if now - self.last_flush >= STEP_FLUSH_SECONDS:
            self.flush()
        if now - self.last_draw >= self.redraw_seconds:
            frac = (info.step + 1) / info.steps_per_epoch
            self.pictures(f"in epoch {info.epoch + 1} ({frac:.0%} through)")

    def on_epoch(self, info) -> None:
        self.flush()
        record = {"epoch": info.epoch, "train": dict(info.train),
                  "eval": None if info.eval is None else dict(info.eval),
                  **({"kl_per_dim": list(info.kl_per_dim)} if getattr(info, "kl_per_dim", None) else {})}
        self.epochs.append(record)
        self.emit("epoch", {"record": record, "eta": info.eta, "elapsed": info.elapsed,
                            "images_per_sec": info.images_per_sec})
        keep = info.epoch in self.snapshot_epochs or info.epoch + 1 == info.epochs
        self.pictures(f"after epoch {info.epoch + 1}", snapshot_epoch=info.epoch + 1 if keep else None)

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer["step"] and not self.progress:
            return
        self.emit("steps", {"steps": self.buffer, "progress": dict(self.progress)})
        self.buffer = {"step": [], "loss": [], "recon": [], "kl": []}

    def pictures(self, when: str, snapshot_epoch: int | None = None) -> None:
        preview, caption = make_preview(self.model, self.data)
        latent = make_latent(self.model, self.data)
        payload = {"preview": preview, "caption": f"{caption} {when}".strip()}
        if latent is not None:
            payload["latent"] = latent
        self.emit("pictures", payload)
        self.last_draw = time.monotonic()
        if snapshot_epoch is not None and preview is not None:   # kept for the record's animation of the run
            means, labels = (latent[0][:SNAPSHOT_POINTS], latent[1][:SNAPSHOT_POINTS]) if latent else (None, None)
            self.snapshots.append((snapshot_epoch, when[:1].upper() + when[1:], preview, means, labels))


# ---------------------------------------------------------------------------- live pictures
@torch.no_grad()
def make_preview(model, data) -> tuple[np.ndarray | None, str]:
    """Samples (vae: 8x8 from the prior; label: one row per class) or quadrant completions, with the
    same noise every time so a class sees the same samples sharpen."""
    cfg = model.config
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
                imgs = model.sample(labels, 8).cpu().reshape(cfg.num_classes, 8, cfg.image_size, cfg.image_size)
                what = "predictions" if not cfg.has_latent else "samples"
                return grid(imgs), f"{what} for each label (one row per class)"
            return _completion_preview(model, data)
    finally:
        model.train(was_training)


def _completion_preview(model, data) -> tuple[np.ndarray, str]:
    cfg = model.config
    source = data.eval if data.eval is not None else data.train
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
def make_latent(model, data) -> tuple[np.ndarray, np.ndarray] | None:
    """Latent means of up to LATENT_POINTS evaluation images, for a 2-D latent."""
    cfg = model.config
    if data.eval is None or not cfg.has_2d_map:
        return None
    was_training = model.training
    try:
        mu, _, labels = encode_dataset(model, data.eval.subset(0, LATENT_POINTS))
    finally:
        model.train(was_training)
    return mu.numpy(), labels.numpy()


def pictures_of_result(model, record) -> tuple[np.ndarray | None, str, tuple[np.ndarray, np.ndarray] | None]:
    """(samples, caption, latent map) of a finished run, drawn again from its result file: the same noise as
    the live pictures, and the test-set latent means the file carries. Quadrant completions need the data
    set, which the server does not load for this: None there."""
    preview, caption = (None, "")
    if model.config.condition != "quadrants":
        preview, caption = make_preview(model, None)
        caption = f"{caption} of the final weights"
    latent = None
    if "test_latent_means" in record.extras:
        latent = (record.extras["test_latent_means"][:LATENT_POINTS].numpy(),
                  record.extras["test_labels"][:LATENT_POINTS].numpy())
    return preview, caption, latent


# ---------------------------------------------------------------------------- the result
def make_result(model, data, train_config: TrainConfig, result, reporter: Reporter, status: str, message: str,
                data_root, wall: float, quick: bool = False) -> dict:
    """What the server needs to write a checkpoint without touching torch training: the weights as numpy
    arrays, the record (vae_core.record, as its JSON text: configs, history, quick metrics) and the extras
    (test latent means). `quick`: the weights and record only (no test-set figures)."""
    import dataclasses

    cfg = model.config
    try:
        test = None if quick else load_dataset(train_config.dataset, "test", data_root, download=False)
    except DatasetUnavailable:  # damaged since the run began: keep the weights, without test figures
        test = None
    metrics = {}
    if test is not None:
        small = test.subset(0, METRIC_IMAGES)
        metrics = checkpoint_metrics(model, small, METRIC_SAMPLES, diversity_examples=50)
        metrics["test_images"] = len(small)
    snapshots, extras = snapshot_extras(reporter.snapshots)
    record = record_from_fit(cfg, train_config, result, description=f"trained in the app: {cfg.describe()}",
                             command="Latent Lab Train page", metrics=metrics, wall_seconds=round(wall, 2),
                             snapshots=snapshots)
    record = dataclasses.replace(record, status=status, message=message)
    if cfg.has_2d_map and test is not None:
        mu, _, labels = encode_dataset(model, test)
        extras.update({"test_latent_means": mu.numpy(), "test_labels": labels.numpy()})
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return {"model_config": cfg.to_dict(), "state": state, "record": record.to_json(), "extras": extras}


def write_result_file(path, payload: dict, name: str):
    """A "result" message (weights as numpy, the record's JSON, extras) as a checkpoint file at `path`
    (vae_core's atomic writer); the server writes it, or the worker itself when its server went away."""
    import dataclasses

    from vae_core import save_checkpoint
    from vae_core.record import parse_record

    model = build_model(ModelConfig.from_dict(payload["model_config"]), seed=None)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in payload["state"].items()})
    record = dataclasses.replace(parse_record(payload["record"], "the worker's result"), name=name)
    extras = {k: torch.from_numpy(np.array(v)) for k, v in payload.get("extras", {}).items()}
    return save_checkpoint(path, model, record, extras=extras)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text

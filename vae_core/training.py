"""fit(): the training loop. It knows nothing of the maths (model.loss does) and nothing of the UI:
it reports plain dataclasses to callbacks and never prints.

A callback is any object with some of these methods:
    on_step(StepInfo)     after every optimiser step
    on_epoch(EpochInfo)   after every epoch, with the evaluation loss when there is an eval set
    should_stop() -> bool asked before every batch: a stop takes effect within one batch
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .config import TrainConfig
from .cpu import AdaptiveThreads
from .data import ImageDataset, batches, load_dataset, make_batch
from .models import VARIANTS


@dataclass(frozen=True)
class StepInfo:
    epoch: int            # counts from 0
    step: int             # step within the epoch, from 0
    steps_per_epoch: int
    global_step: int      # from 1
    total_steps: int
    loss: float
    recon: float
    kl: float
    kl_weight: float
    images_per_sec: float
    elapsed: float        # seconds of training so far
    eta: float            # seconds left, estimated


@dataclass(frozen=True)
class EpochInfo:
    epoch: int            # counts from 0
    epochs: int
    train: dict[str, float]
    eval: dict[str, float] | None
    images_per_sec: float
    elapsed: float
    eta: float
    is_best: bool
    kl_per_dim: list[float] | None = None   # KL(q || p) of each latent dimension on the evaluation set


@dataclass
class FitResult:
    status: str                      # "completed", "stopped" or "diverged"
    message: str
    epochs_completed: int
    elapsed: float
    images_per_sec: float
    best_epoch: int | None
    history: dict[str, list] = field(default_factory=dict)
    # True when the model now holds finite weights that training produced (a diverged run: those of the end of
    # its last good epoch); False means there is nothing worth saving
    has_good_state: bool = False

    @property
    def ok(self) -> bool:
        return self.status != "diverged"


class Callback:
    """Base class with no-op hooks; subclass and override what you need."""

    def on_step(self, info: StepInfo) -> None:
        pass

    def on_epoch(self, info: EpochInfo) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class TrainingData:
    """The training images and, optionally, the images evaluated after every epoch."""

    train: ImageDataset
    eval: ImageDataset | None = None


def prepare_data(config: TrainConfig, root=None) -> TrainingData:
    """Load config.dataset and carve the splits the config asks for.

    With val_fraction > 0 a validation set is held out of the training split (a fixed shuffle, the
    same for every seed), so that early stopping never looks at the test set; otherwise the test split
    is evaluated each epoch.
    """
    train = load_dataset(config.dataset, "train", root)
    if config.val_fraction > 0:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(20150101))
        n_val = max(1, int(round(len(train) * config.val_fraction)))
        evaluation = train.take(order[:n_val])
        evaluation = ImageDataset(evaluation.images, evaluation.labels, train.name, "validation", train.source)
        train = train.take(order[n_val:])
    else:
        evaluation = load_dataset(config.dataset, "test", root)
    if config.train_limit:
        train = train.subset(0, config.train_limit)
    if config.eval_limit:
        evaluation = evaluation.subset(0, config.eval_limit)
    return TrainingData(train, evaluation)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(name)


def check_compatible(model, data: TrainingData) -> None:
    """Refuse, before any work, a model whose condition or image size the data cannot give."""
    c = model.config
    size = data.train.image_size
    if size != c.image_size:
        raise ValueError(f"the model expects {c.image_size}x{c.image_size} images but the data set has "
                         f"{size}x{size}")
    if c.condition == "label":
        top = int(data.train.labels.max()) if len(data.train) else 0
        if top >= c.num_classes:
            raise ValueError(f"condition 'label' needs labels below {c.num_classes}; the data has label {top}")
    if len(data.train) == 0:
        raise ValueError("the training set is empty")


@torch.no_grad()
def loss_terms_per_example(model, dataset: ImageDataset, beta: float = 1.0, batch_size: int = 1000,
                           quadrants: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """The objective's terms for every image of a data set (one z sample per image, fixed noise), on the CPU:
    {'loss', 'recon', 'kl'} as [N], plus 'kl_per_dim' [N, latent_dim] (KL(q || p) per latent dimension,
    before the hybrid's alpha) for the variants with a KL term (vae, cvae, hybrid)."""
    was_training = model.training
    model.eval()
    device = model.device
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for y, x, _ in batches(model.config, dataset, batch_size, device, quadrants, seed):
            for k, v in model.loss(y, x, beta, per_example=True).items():
                parts.setdefault(k, []).append(v.detach().cpu())
    model.train(was_training)
    if not parts:  # an empty data set
        return {k: torch.zeros(0) for k in ("loss", "recon", "kl")}
    return {k: torch.cat(v) for k, v in parts.items()}


@torch.no_grad()
def evaluation_terms(model, dataset: ImageDataset, beta: float = 1.0, batch_size: int = 1000,
                     quadrants: int | None = None, seed: int = 0) -> tuple[dict[str, float], list[float] | None]:
    """(evaluate_loss's terms, the mean KL(q || p) of each latent dimension or None for a variant without a
    KL term). The list sums to 'kl' (for the hybrid, to kl / alpha: its objective weights the KL by alpha);
    it costs nothing extra, since the objective computes the KL per dimension anyway."""
    n = max(1, len(dataset))
    if not VARIANTS[model.config.variant].gives_per_example:  # a registered objective giving batch means only
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for y, x, _ in batches(model.config, dataset, batch_size, model.device, quadrants, seed):
                terms = model.loss(y, x, beta)
                for k in sums:
                    sums[k] += float(terms[k]) * y.shape[0]
        model.train(was_training)
        return {k: v / n for k, v in sums.items()}, None
    terms = loss_terms_per_example(model, dataset, beta, batch_size, quadrants, seed)
    means = {k: float(terms[k].double().sum()) / n for k in ("loss", "recon", "kl")}
    per_dim = [float(v) / n for v in terms["kl_per_dim"].double().sum(0)] if "kl_per_dim" in terms else None
    return means, per_dim


@torch.no_grad()
def evaluate_loss(model, dataset: ImageDataset, beta: float = 1.0, batch_size: int = 1000,
                  quadrants: int | None = None, seed: int = 0, progress=None) -> dict[str, float]:
    """The objective on a whole data set (one z sample per image, fixed noise), averaged per image.

    With beta = 1 this is the negative ELBO for vae / cvae (recon + KL, nats per image).
    progress, if given, is called with the number of images once they are done.
    """
    terms = evaluation_terms(model, dataset, beta, batch_size, quadrants, seed)[0]
    if progress is not None:
        progress(len(dataset))
    return terms


def _state_copy(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def weights_finite(model) -> bool:
    """True when every floating-point weight and buffer is finite (no NaN, no inf)."""
    return all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point())


def make_optimizer(model, lr: float, weight_decay: float = 0.0, params=None) -> torch.optim.Optimizer:
    """Adam (AdamW with decoupled weight decay when weight_decay > 0), with torch's fused kernel where it has
    one: on the CPU the default (foreach) Adam takes about a quarter of a training step of the 784-512-2 VAE,
    the fused one about a twelfth (bench/train_throughput.py). params: the weights to train (default: all)."""
    cls, kwargs = ((torch.optim.AdamW, {"weight_decay": weight_decay}) if weight_decay > 0
                   else (torch.optim.Adam, {}))
    params = list(model.parameters() if params is None else params)
    try:
        return cls(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused Adam
        return cls(params, lr=lr, **kwargs)


def trained_parameters(model, train_config: TrainConfig) -> list:
    """The weights a run trains: all of them, or with freeze_decoder only the recognition net's."""
    if not train_config.freeze_decoder:
        return list(model.parameters())
    if getattr(model, "recognition_net", None) is None:
        raise ValueError(f"freeze_decoder trains only the recognition net (encoder), and a "
                         f"{model.config.variant} model has none")
    return list(model.recognition_net.parameters())


def fit(model, data: TrainingData | ImageDataset, train_config: TrainConfig,
        callbacks: Iterable[Any] = (), *, threads: int | str | None = "auto") -> FitResult:
    """Train `model` in place on `data` with `train_config`; report through `callbacks` (see _fit).
    With freeze_decoder the weights outside the recognition net take no gradient while it runs. A beta of None
    is the variant's default (TrainConfig.for_variant).

    threads (CPU only): "auto" follows the cores other processes leave free, checked every few seconds
    (vae_core.cpu.AdaptiveThreads: a lone run uses every core, one beside other work steps down to one thread);
    a number fixes torch's thread count for the run; None leaves it as it is. torch's count is put back after."""
    train_config = train_config.for_variant(model.config.variant)
    trained = {id(p) for p in trained_parameters(model, train_config)}
    frozen = [p for p in model.parameters() if id(p) not in trained and p.requires_grad]
    callbacks = list(callbacks)
    threads_before = torch.get_num_threads()
    on_cpu = resolve_device(train_config.device).type == "cpu"
    if on_cpu and threads == "auto" and not any(isinstance(cb, AdaptiveThreads) for cb in callbacks):
        callbacks.append(AdaptiveThreads())
    elif on_cpu and isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        torch.set_num_threads(threads)
    elif threads not in (None, "auto"):
        raise ValueError(f"threads must be 'auto', a positive whole number or None; got {threads!r}")
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _fit(model, data, train_config, callbacks)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)


def _fit(model, data: TrainingData | ImageDataset, train_config: TrainConfig,
         callbacks: Iterable[Any] = ()) -> FitResult:
    """Train `model` in place on `data` with `train_config`; report through `callbacks`.

    Seeded and reproducible on the CPU. The model is left in eval mode (dropout off). With
    train_config.ema_decay > 0 an exponential moving average of the weights (torch's AveragedModel) is updated
    after every step; the per-epoch evaluation and keep_best then look at the averaged weights, and the model
    ends holding them (the best epoch's with keep_best, else the last).
    Returns a FitResult whose status is 'completed', 'stopped' (a callback asked to stop) or 'diverged' (a NaN
    or infinite loss, or weights that became NaN or infinite: the model is put back to the state at the end of
    its last epoch whose weights were all finite, and the message says so). `has_good_state` is False when
    there is nothing worth saving.
    """
    run = _Run.start(model, data, train_config, callbacks)
    cfg = run.cfg
    model.train()
    for epoch in range(cfg.epochs):
        train_avg = _train_epoch(run, epoch)
        if train_avg is None:  # stopped by request, or diverged, within the epoch
            return run.result()
        run.scheduler.step()
        if not weights_finite(model):  # the last steps of the epoch blew the weights up: not a good state
            _diverged(run, f"the weights became NaN or infinite in epoch {epoch + 1} (the loss was still finite); "
                           f"training stopped and ")
            return run.result()
        run.epochs_done = epoch + 1
        eval_terms, kl_per_dim, is_best = _evaluate_epoch(run, epoch)
        run.good_state = _state_copy(model)
        _record_epoch(run, epoch, train_avg, eval_terms, kl_per_dim, is_best)
        if _out_of_patience(run, epoch, eval_terms):
            run.message = (f"stopped early after epoch {epoch + 1} of at most {cfg.epochs}: the evaluation loss "
                           f"had not improved for {cfg.patience} epochs")
            break
    _finish_weights(run)
    return run.result()


@dataclass
class _Run:
    """One fit() run: what it trains with, and what it has done so far."""

    model: Any
    cfg: TrainConfig
    data: TrainingData
    callbacks: list
    images: torch.Tensor
    labels: torch.Tensor
    gen: torch.Generator                 # the batch order and the batches' random conditions
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: AveragedModel | None
    steps_per_epoch: int
    total_steps: int
    # the state to fall back to: only finite weights count, taken at an epoch end (epochs_done says which)
    good_state: dict | None
    history: dict = field(default_factory=lambda: {"step": [], "loss": [], "recon": [], "kl": [], "epochs": []})
    best_state: dict | None = None
    best_loss: float = math.inf
    best_epoch: int | None = None
    train_time: float = 0.0
    seen: int = 0
    global_step: int = 0
    epochs_done: int = 0
    status: str = "completed"
    message: str = ""

    @classmethod
    def start(cls, model, data: TrainingData | ImageDataset, cfg: TrainConfig, callbacks: Iterable[Any]) -> "_Run":
        """Check the data, move the model to its device, seed, and build the optimiser (and the average)."""
        if isinstance(data, ImageDataset):
            data = TrainingData(data, None)
        if cfg.patience and data.eval is None:
            raise ValueError("patience (early stopping) needs an evaluation set: set val_fraction or pass "
                             "TrainingData with an eval split")
        check_compatible(model, data)
        callbacks = list(callbacks)
        device = resolve_device(cfg.device)
        model.to(device)
        images, labels = data.train.images.to(device), data.train.labels.to(device)
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, trained_parameters(model, cfg))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)
        ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
               if cfg.ema_decay > 0 else None)
        steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
        return cls(model, cfg, data, callbacks, images, labels, gen, optimizer, scheduler, ema, steps_per_epoch,
                   steps_per_epoch * cfg.epochs, good_state=_state_copy(model) if weights_finite(model) else None,
                   message=f"trained {cfg.epochs} epochs")

    @property
    def averaged(self):
        """The weights that are evaluated, kept and handed back: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def rate_and_eta(self) -> tuple[float, float]:
        """Images per second of training so far, and the seconds the remaining steps should take."""
        rate = self.seen / max(self.train_time, 1e-9)
        return rate, (self.total_steps - self.global_step) * self.cfg.batch_size / rate

    def result(self) -> FitResult:
        self.model.eval()  # what fit hands back is for use: dropout (if any) off
        return FitResult(self.status, self.message, self.epochs_done, self.train_time,
                         self.seen / max(self.train_time, 1e-9), self.best_epoch, self.history,
                         has_good_state=self._trained_and_finite())

    def _trained_and_finite(self) -> bool:
        if self.status == "diverged":  # put back to the end of the last finite epoch, if there was one
            return self.good_state is not None and self.epochs_done > 0
        return self.global_step > 0 and weights_finite(self.model)


def _train_epoch(run: _Run, epoch: int) -> dict[str, float] | None:
    """One pass over the training set in a fresh random order: the epoch's mean terms per image, or None when
    the run ended inside it (a callback asked to stop, or the loss was not finite)."""
    perm = torch.randperm(len(run.data.train), generator=run.gen).to(run.images.device)
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    epoch_seen = 0
    for step in range(run.steps_per_epoch):
        if _stop_requested(run.callbacks):
            _stop(run, epoch)
            return None
        batch = _train_step(run, epoch, step, perm, sums)
        if batch is None:
            return None
        epoch_seen += batch
    return {k: v / max(epoch_seen, 1) for k, v in sums.items()}


def _train_step(run: _Run, epoch: int, step: int, perm: torch.Tensor, sums: dict[str, float]) -> int | None:
    """One optimiser step on the step-th batch of `perm`: the batch's size, or None when its loss was not finite
    (the run has then diverged). Adds the batch's terms to `sums`, the history and the step callbacks."""
    cfg, model = run.cfg, run.model
    t0 = time.perf_counter()
    idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
    y, x = make_batch(model.config, run.images[idx], run.labels[idx], generator=run.gen)
    beta = cfg.kl_weight(epoch, step / run.steps_per_epoch)
    terms = model.loss(y, x, beta)
    values = {k: float(v.detach()) for k, v in terms.items()}
    if not all(math.isfinite(v) for v in values.values()):
        _diverged(run, f"the loss became {values['loss']} at epoch {epoch + 1}, step {step + 1}; "
                       f"training stopped and ")
        return None
    run.optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    run.optimizer.step()
    if run.ema is not None:
        run.ema.update_parameters(model)
    batch = y.shape[0]
    run.train_time += time.perf_counter() - t0
    run.seen += batch
    run.global_step += 1
    for k in sums:
        sums[k] += values[k] * batch
    run.history["step"].append(run.global_step)
    for k in ("loss", "recon", "kl"):
        run.history[k].append(values[k])
    if run.callbacks:
        rate, eta = run.rate_and_eta()
        _tell(run.callbacks, "on_step", StepInfo(epoch, step, run.steps_per_epoch, run.global_step, run.total_steps,
                                                 values["loss"], values["recon"], values["kl"], beta, rate,
                                                 run.train_time, eta))
    return batch


def _evaluate_epoch(run: _Run, epoch: int) -> tuple[dict[str, float] | None, list[float] | None, bool]:
    """The (averaged) model's terms on the evaluation set, its KL per latent dimension, and whether this is the
    best epoch so far (then, with keep_best, its weights are kept). (None, None, False) without an eval set."""
    if run.data.eval is None:
        return None, None, False
    eval_terms, kl_per_dim = evaluation_terms(run.averaged, run.data.eval, beta=1.0, seed=run.cfg.seed)
    is_best = math.isfinite(eval_terms["loss"]) and eval_terms["loss"] < run.best_loss
    if is_best:
        run.best_loss, run.best_epoch = eval_terms["loss"], epoch
        if run.cfg.keep_best:
            run.best_state = _state_copy(run.averaged)
    return eval_terms, kl_per_dim, is_best


def _record_epoch(run: _Run, epoch: int, train_avg: dict[str, float], eval_terms: dict[str, float] | None,
                  kl_per_dim: list[float] | None, is_best: bool) -> None:
    """Add the epoch to the history and tell the epoch callbacks."""
    record = {"epoch": epoch, "train": train_avg, "eval": eval_terms}
    if kl_per_dim is not None:  # for the Diagnose page's KL-per-dimension-over-epochs chart
        record["kl_per_dim"] = kl_per_dim
    run.history["epochs"].append(record)
    rate, eta = run.rate_and_eta()
    _tell(run.callbacks, "on_epoch", EpochInfo(epoch, run.cfg.epochs, train_avg, eval_terms, rate, run.train_time,
                                               eta, is_best, kl_per_dim))


def _out_of_patience(run: _Run, epoch: int, eval_terms: dict[str, float] | None) -> bool:
    """Early stopping: the evaluation loss has not improved for `patience` epochs, and epochs remain."""
    cfg = run.cfg
    return bool(cfg.patience and eval_terms is not None and run.best_epoch is not None
                and epoch - run.best_epoch >= cfg.patience and epoch + 1 < cfg.epochs)


def _stop(run: _Run, epoch: int) -> None:
    """A callback asked to stop: hand back the weights as at the end of a run, unless they have blown up."""
    if not weights_finite(run.model):
        _diverged(run, f"stopped by request in epoch {epoch + 1}, but the weights had become NaN or infinite; ")
        return
    run.status = "stopped"
    run.message = f"stopped by request in epoch {epoch + 1}, after {run.global_step} steps"
    _finish_weights(run)


def _finish_weights(run: _Run) -> None:
    """The weights a stopped or completed run hands back: the best epoch's with keep_best (when an epoch was
    evaluated), else the moving average when there is one, else the model's own; the message says which."""
    cfg = run.cfg
    if cfg.keep_best and run.best_state is not None:
        run.model.load_state_dict(run.best_state)
        run.message += f"; kept the weights of epoch {run.best_epoch + 1}, the best on the evaluation set"
    elif run.ema is not None and run.ema.n_averaged > 0:
        run.model.load_state_dict(run.ema.module.state_dict())
    if run.ema is not None:
        run.message += f" (weights averaged with decay {cfg.ema_decay:g})"


def _diverged(run: _Run, cause: str) -> None:
    """Training blew up: put the model back to its last good state, and say what happened and where it went
    back to (`cause` ends where that clause begins)."""
    if run.good_state is not None:
        run.model.load_state_dict(run.good_state)
    if run.epochs_done:
        restored = f"the model was put back to the end of epoch {run.epochs_done}"
    else:
        restored = "the model was put back to its initial weights (no epoch finished with finite weights)"
    run.status = "diverged"
    run.message = f"{cause}{restored}. Try a lower learning rate."


def _stop_requested(callbacks: list) -> bool:
    return any(cb.should_stop() for cb in callbacks if hasattr(cb, "should_stop"))


def _tell(callbacks: list, hook: str, info) -> None:
    for cb in callbacks:
        if hasattr(cb, hook):
            getattr(cb, hook)(info)

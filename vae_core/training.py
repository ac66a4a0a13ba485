"""fit(): the training loop. It knows nothing of the maths (model.loss does) and nothing of the UI:
it reports plain dataclasses to callbacks and never prints.

A callback is any object with some of these methods:
    on_step(StepInfo)     after every optimiser step
    on_epoch(EpochInfo)   after every epoch, with the evaluation loss when there is an eval set
    should_stop() -> bool asked before every batch: a stop takes effect within one batch
"""
from __future__ import annotations

import copy
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
    Returns a FitResult whose status is 'completed', 'stopped' (a callback asked to stop) or 'diverged' (a NaN or infinite loss, or weights that became NaN or infinite:
    the model is put back to the state at the end of its last epoch whose weights were all finite, and the
    message says so). `has_good_state` is False when there is nothing worth saving.
    """
    cfg = train_config
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
    averaged = ema.module if ema is not None else model  # the weights that are evaluated, kept and handed back

    def hand_back_average() -> None:
        if ema is not None and ema.n_averaged > 0:
            model.load_state_dict(ema.module.state_dict())

    n = len(data.train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    history: dict[str, list] = {"step": [], "loss": [], "recon": [], "kl": [], "epochs": []}
    # The state to fall back to: only finite weights count, taken at an epoch end (epochs_done says which)
    good_state = _state_copy(model) if weights_finite(model) else None
    best_state, best_loss, best_epoch = None, math.inf, None
    train_time, seen, global_step, epochs_done = 0.0, 0, 0, 0
    status, message = "completed", f"trained {cfg.epochs} epochs"

    def result() -> FitResult:
        model.eval()  # what fit hands back is for use: dropout (if any) off
        return FitResult(status, message, epochs_done, train_time, seen / max(train_time, 1e-9),
                         best_epoch, history, has_good_state=trained_and_finite())

    def trained_and_finite() -> bool:
        if status == "diverged":  # put back to the end of the last finite epoch, if there was one
            return good_state is not None and epochs_done > 0
        return global_step > 0 and weights_finite(model)

    def restore() -> str:
        """Put the model back to the last good state; say where that was."""
        if good_state is not None:
            model.load_state_dict(good_state)
        if epochs_done:
            return f"the model was put back to the end of epoch {epochs_done}"
        return "the model was put back to its initial weights (no epoch finished with finite weights)"

    model.train()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        epoch_seen = 0
        for step in range(steps_per_epoch):
            if any(cb.should_stop() for cb in callbacks if hasattr(cb, "should_stop")):
                if not weights_finite(model):
                    status = "diverged"
                    message = (f"stopped by request in epoch {epoch + 1}, but the weights had become NaN or "
                               f"infinite; {restore()}. Try a lower learning rate.")
                    return result()
                status = "stopped"
                message = f"stopped by request in epoch {epoch + 1}, after {global_step} steps"
                if cfg.keep_best and best_state is not None:
                    model.load_state_dict(best_state)
                    message += f"; kept the weights of epoch {best_epoch + 1}, the best on the evaluation set"
                else:
                    hand_back_average()
                if ema is not None:
                    message += f" (weights averaged with decay {cfg.ema_decay:g})"
                return result()
            t0 = time.perf_counter()
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            y, x = make_batch(model.config, images[idx], labels[idx], generator=gen)
            beta = cfg.kl_weight(epoch, step / steps_per_epoch)
            terms = model.loss(y, x, beta)
            values = {k: float(v.detach()) for k, v in terms.items()}
            if not all(math.isfinite(v) for v in values.values()):
                status = "diverged"
                message = (f"the loss became {values['loss']} at epoch {epoch + 1}, step {step + 1}; "
                           f"training stopped and {restore()}. Try a lower learning rate.")
                return result()
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            batch = y.shape[0]
            train_time += time.perf_counter() - t0
            seen += batch
            epoch_seen += batch
            global_step += 1
            for k in sums:
                sums[k] += values[k] * batch
            history["step"].append(global_step)
            for k in ("loss", "recon", "kl"):
                history[k].append(values[k])
            if callbacks:
                rate = seen / max(train_time, 1e-9)
                info = StepInfo(epoch, step, steps_per_epoch, global_step, total_steps, values["loss"],
                                values["recon"], values["kl"], beta, rate, train_time,
                                (total_steps - global_step) * cfg.batch_size / rate)
                for cb in callbacks:
                    if hasattr(cb, "on_step"):
                        cb.on_step(info)
        scheduler.step()
        if not weights_finite(model):  # the last steps of the epoch blew the weights up: not a good state
            status = "diverged"
            message = (f"the weights became NaN or infinite in epoch {epoch + 1} (the loss was still finite); "
                       f"training stopped and {restore()}. Try a lower learning rate.")
            return result()
        epochs_done = epoch + 1
        train_avg = {k: v / max(epoch_seen, 1) for k, v in sums.items()}
        eval_terms, kl_per_dim = (evaluation_terms(averaged, data.eval, beta=1.0, seed=cfg.seed)
                                  if data.eval is not None else (None, None))
        is_best = False
        if eval_terms is not None and math.isfinite(eval_terms["loss"]) and eval_terms["loss"] < best_loss:
            best_loss, best_epoch, is_best = eval_terms["loss"], epoch, True
            if cfg.keep_best:
                best_state = _state_copy(averaged)
        good_state = _state_copy(model)
        record = {"epoch": epoch, "train": train_avg, "eval": eval_terms}
        if kl_per_dim is not None:  # for the Diagnose page's KL-per-dimension-over-epochs chart
            record["kl_per_dim"] = kl_per_dim
        history["epochs"].append(record)
        rate = seen / max(train_time, 1e-9)
        info = EpochInfo(epoch, cfg.epochs, train_avg, eval_terms, rate, train_time,
                         (total_steps - global_step) * cfg.batch_size / rate, is_best, kl_per_dim)
        for cb in callbacks:
            if hasattr(cb, "on_epoch"):
                cb.on_epoch(info)
        if (cfg.patience and eval_terms is not None and best_epoch is not None
                and epoch - best_epoch >= cfg.patience and epoch + 1 < cfg.epochs):
            message = (f"stopped early after epoch {epoch + 1} of at most {cfg.epochs}: the evaluation loss "
                       f"had not improved for {cfg.patience} epochs")
            break
    if cfg.keep_best and best_state is not None:
        model.load_state_dict(best_state)
        message += f"; kept the weights of epoch {best_epoch + 1}, the best on the evaluation set"
    else:
        hand_back_average()
    if ema is not None:
        message += f" (weights averaged with decay {cfg.ema_decay:g})"
    return result()

"""Configuration of a model and of a training run.

Both are frozen dataclasses that validate themselves on construction, so a bad setting raises a
`ValueError` naming the setting before any work starts. They round-trip through plain dicts
(`to_dict` / `from_dict`), which is how checkpoints store them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

VARIANT_NAMES = ("vae", "cvae", "gsnn", "hybrid", "baseline")
CONDITIONS = ("none", "label", "quadrants")
PRIORS = ("learned", "standard")
DATASETS = ("mnist", "fashion-mnist")
# The one default model size: the CLI's --hidden-dims and the Train page's "Hidden layers" both start here
# (two ReLU layers of 256 units in each net; the decoder mirrors the encoder).
DEFAULT_HIDDEN_DIMS = (256, 256)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} must be given as a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        _check(not unknown, f"{cls.__name__} has no setting named {', '.join(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(_DictMixin):
    """What a model is: enough to rebuild it from a checkpoint.

    variant    vae | cvae | gsnn | hybrid | baseline (see vae_core.models.VARIANTS)
    condition  none (plain VAE) | label (x = digit class, y = image) |
               quadrants (x = image with some quadrants visible, y = the missing pixels)
    quadrants  for the quadrants condition: 1, 2 or 3 visible quadrants, or 0 to draw the count at
               random per example (a model that handles all three)
    prior      learned p(z|x) (Sohn et al.) or standard N(0, I), for conditional models
    alpha      hybrid weight: alpha * L_cvae + (1 - alpha) * L_gsnn
    hidden_dims  hidden layer sizes of each net (default DEFAULT_HIDDEN_DIMS, shared by the CLI and Train page)
    """

    variant: str = "vae"
    condition: str = "none"
    latent_dim: int = 2
    hidden_dims: tuple[int, ...] = DEFAULT_HIDDEN_DIMS
    prior: str = "learned"
    alpha: float = 0.5
    quadrants: int = 0
    image_size: int = 28
    num_classes: int = 10

    def __post_init__(self) -> None:
        _check(self.variant in VARIANT_NAMES,
               f"variant must be one of {', '.join(VARIANT_NAMES)}; got {self.variant!r}")
        _check(self.condition in CONDITIONS,
               f"condition must be one of {', '.join(CONDITIONS)}; got {self.condition!r}")
        if self.variant == "vae":
            _check(self.condition == "none",
                   f"a vae is unconditional: condition must be 'none', got {self.condition!r} "
                   "(use cvae for a conditional model)")
        else:
            _check(self.condition != "none",
                   f"a {self.variant} model needs a condition ('label' or 'quadrants'), got 'none'")
        _check(isinstance(self.latent_dim, int) and 1 <= self.latent_dim <= 64,
               f"latent_dim must be a whole number from 1 to 64; got {self.latent_dim!r}")
        _check(isinstance(self.hidden_dims, tuple) and len(self.hidden_dims) >= 1
               and all(isinstance(h, int) and 1 <= h <= 8192 for h in self.hidden_dims),
               f"hidden_dims must be one or more layer sizes from 1 to 8192; got {self.hidden_dims!r}")
        _check(self.prior in PRIORS, f"prior must be 'learned' or 'standard'; got {self.prior!r}")
        _check(isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha)
               and 0.0 <= self.alpha <= 1.0, f"alpha must lie in [0, 1]; got {self.alpha!r}")
        _check(self.quadrants in (0, 1, 2, 3),
               f"quadrants must be 1, 2 or 3 visible quadrants, or 0 for a random count; got {self.quadrants!r}")
        _check(isinstance(self.image_size, int) and self.image_size >= 2 and self.image_size % 2 == 0,
               f"image_size must be an even number of pixels of at least 2; got {self.image_size!r}")
        _check(isinstance(self.num_classes, int) and self.num_classes >= 2,
               f"num_classes must be at least 2; got {self.num_classes!r}")

    @property
    def num_pixels(self) -> int:
        return self.image_size * self.image_size

    @property
    def is_conditional(self) -> bool:
        return self.condition != "none"

    @property
    def has_latent(self) -> bool:
        return self.variant != "baseline"

    def describe(self) -> str:
        """A short human label, e.g. 'cvae | label | 2-D latent'."""
        parts = [self.variant]
        if self.condition == "quadrants":
            parts.append("quadrants " + ("1-3" if self.quadrants == 0 else str(self.quadrants)))
        elif self.condition == "label":
            parts.append("label")
        if self.has_latent:
            parts.append(f"{self.latent_dim}-D latent")
        if self.variant == "hybrid":
            parts.append(f"alpha {self.alpha:g}")
        return " | ".join(parts)


@dataclass(frozen=True)
class TrainConfig(_DictMixin):
    """How to train: optimisation, data and evaluation settings.

    beta             weight of the KL term (1 gives the true ELBO)
    kl_warmup_epochs the KL weight rises linearly from 0 to beta over this many epochs (0: off)
    val_fraction     share of the training split held out for validation, early stopping and the
                     per-epoch curve (0: evaluate on the test split instead)
    train_limit      use only the first N training images (0: all); tests use small subsets
    eval_limit       evaluate per epoch on at most N images (0: all)
    keep_best        at the end, restore the weights of the epoch with the lowest evaluation loss
    patience         early stopping: end training once the evaluation loss has not improved for this many
                     epochs (0: off; needs an evaluation set); `epochs` is then an upper bound
    """

    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    kl_warmup_epochs: int = 0
    seed: int = 0
    val_fraction: float = 0.0
    train_limit: int = 0
    eval_limit: int = 0
    keep_best: bool = False
    lr_decay: float = 1.0
    patience: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(self.dataset in DATASETS,
               f"dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        _check(isinstance(self.epochs, int) and self.epochs >= 1,
               f"epochs must be a whole number of at least 1; got {self.epochs!r}")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1,
               f"batch_size must be a whole number of at least 1; got {self.batch_size!r}")
        _check(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
               f"lr (learning rate) must be a positive number; got {self.lr!r}")
        _check(isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0,
               f"beta (KL weight) must be zero or positive; got {self.beta!r}")
        _check(isinstance(self.kl_warmup_epochs, int) and self.kl_warmup_epochs >= 0,
               f"kl_warmup_epochs must be zero or a positive whole number; got {self.kl_warmup_epochs!r}")
        _check(isinstance(self.seed, int), f"seed must be a whole number; got {self.seed!r}")
        _check(isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 1.0,
               f"val_fraction must lie in [0, 1); got {self.val_fraction!r}")
        _check(isinstance(self.train_limit, int) and self.train_limit >= 0,
               f"train_limit must be zero (all) or a positive whole number; got {self.train_limit!r}")
        _check(isinstance(self.eval_limit, int) and self.eval_limit >= 0,
               f"eval_limit must be zero (all) or a positive whole number; got {self.eval_limit!r}")
        _check(isinstance(self.lr_decay, (int, float)) and 0.0 < self.lr_decay <= 1.0,
               f"lr_decay (per-epoch learning-rate factor) must lie in (0, 1]; got {self.lr_decay!r}")
        _check(isinstance(self.patience, int) and self.patience >= 0,
               f"patience (epochs without improvement before stopping) must be zero (off) or a positive "
               f"whole number; got {self.patience!r}")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"device must be 'auto', 'cpu' or 'cuda'; got {self.device!r}")

    def kl_weight(self, epoch: int, fraction_of_epoch: float = 0.0) -> float:
        """The KL weight at a point of training (epoch counts from 0)."""
        if self.kl_warmup_epochs <= 0:
            return float(self.beta)
        progress = (epoch + fraction_of_epoch) / self.kl_warmup_epochs
        return float(self.beta) * min(1.0, progress)

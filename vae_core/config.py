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

CONDITIONS = ("none", "label", "quadrants")
PRIORS = ("learned", "standard")
DATASETS = ("mnist", "fashion-mnist")
ENCODERS = ("mlp", "conv")
# The one default model size: the CLI's --hidden-dims and the Train page's "Hidden layers" both start here
# (two ReLU layers of 256 units in each net; the decoder mirrors the encoder).
DEFAULT_HIDDEN_DIMS = (256, 256)


# Upper bounds: a config read from a file decides how much memory a model takes, so every size is bounded.
MAX_LATENT_DIM = 64
MAX_HIDDEN_LAYERS = 8
MAX_LAYER_WIDTH = 8192
MAX_IMAGE_SIZE = 128
MAX_CLASSES = 1000
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536
MAX_SEED = 2**63 - 1
MAX_DROPOUT = 0.9
MAX_WEIGHT_DECAY = 10.0


def variant_names() -> tuple[str, ...]:
    """The registered variants (vae_core.models.VARIANTS), in registry order."""
    from .models import VARIANTS  # models imports this module: look the registry up when asked
    return tuple(VARIANTS)


def variant_info(name: str):
    """The registry entry (vae_core.models.Variant) of a variant name."""
    from .models import VARIANTS
    return VARIANTS[name]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


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

    variant    a name in vae_core.models.VARIANTS: vae | cvae | gsnn | hybrid | baseline
    condition  none (plain VAE) | label (x = digit class, y = image) |
               quadrants (x = image with some quadrants visible, y = the missing pixels)
    quadrants  for the quadrants condition: 1, 2 or 3 visible quadrants, or 0 to draw the count at
               random per example (a model that handles all three)
    prior      learned p(z|x) (Sohn et al.) or standard N(0, I), for conditional models
    alpha      hybrid weight: alpha * L_cvae + (1 - alpha) * L_gsnn
    hidden_dims  hidden layer sizes of each net (default DEFAULT_HIDDEN_DIMS, shared by the CLI and Train page)
    dropout    probability of dropping a hidden unit during training (nn.Dropout after every hidden ReLU of
               every net), in [0, MAX_DROPOUT]; 0 (the default) builds no Dropout module at all
    encoder    the recognition net q(z|x,y): mlp (the default), or conv (three stride-2 3x3 convolutions of
               the image, then the condition joins and an MLP of hidden_dims gives mu and logvar). The
               generation net stays an MLP either way (the browser decodes it)
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
    dropout: float = 0.0
    encoder: str = "mlp"

    def __post_init__(self) -> None:
        names = variant_names()
        _check(self.variant in names, f"variant must be one of {', '.join(names)}; got {self.variant!r}")
        _check(self.condition in CONDITIONS,
               f"condition must be one of {', '.join(CONDITIONS)}; got {self.condition!r}")
        if not variant_info(self.variant).conditional:
            _check(self.condition == "none",
                   f"a {self.variant} is unconditional: condition must be 'none', got {self.condition!r} "
                   "(use cvae for a conditional model)")
        else:
            _check(self.condition != "none",
                   f"a {self.variant} model needs a condition ('label' or 'quadrants'), got 'none'")
        _check(_whole(self.latent_dim) and 1 <= self.latent_dim <= MAX_LATENT_DIM,
               f"latent_dim must be a whole number from 1 to {MAX_LATENT_DIM}; got {self.latent_dim!r}")
        _check(isinstance(self.hidden_dims, tuple) and 1 <= len(self.hidden_dims) <= MAX_HIDDEN_LAYERS
               and all(_whole(h) and 1 <= h <= MAX_LAYER_WIDTH for h in self.hidden_dims),
               f"hidden_dims must be one or more layer sizes (at most {MAX_HIDDEN_LAYERS}) from 1 to "
               f"{MAX_LAYER_WIDTH}; got {self.hidden_dims!r}")
        _check(self.prior in PRIORS, f"prior must be 'learned' or 'standard'; got {self.prior!r}")
        _check(_number(self.alpha) and 0.0 <= self.alpha <= 1.0, f"alpha must lie in [0, 1]; got {self.alpha!r}")
        _check(self.quadrants in (0, 1, 2, 3) and _whole(self.quadrants),
               f"quadrants must be 1, 2 or 3 visible quadrants, or 0 for a random count; got {self.quadrants!r}")
        _check(_whole(self.image_size) and 2 <= self.image_size <= MAX_IMAGE_SIZE and self.image_size % 2 == 0,
               f"image_size must be an even number of pixels from 2 to {MAX_IMAGE_SIZE}; got {self.image_size!r}")
        _check(_whole(self.num_classes) and 2 <= self.num_classes <= MAX_CLASSES,
               f"num_classes must be from 2 to {MAX_CLASSES}; got {self.num_classes!r}")
        _check(_number(self.dropout) and 0.0 <= self.dropout <= MAX_DROPOUT,
               f"dropout must lie in [0, {MAX_DROPOUT:g}]; got {self.dropout!r}")
        _check(self.encoder in ENCODERS, f"encoder must be one of {', '.join(ENCODERS)}; got {self.encoder!r}")

    @property
    def num_pixels(self) -> int:
        return self.image_size * self.image_size

    @property
    def is_conditional(self) -> bool:
        return self.condition != "none"

    @property
    def has_latent(self) -> bool:
        return variant_info(self.variant).has_latent

    @property
    def has_2d_map(self) -> bool:
        """Does the test set have one 2-D map of latent means (a 2-D latent, encoded without hidden quadrants)?"""
        return self.has_latent and self.latent_dim == 2 and self.condition != "quadrants"

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

    beta             weight of the KL term (1 gives the true ELBO); None (the default): the variant's own
                     (Variant.default_beta, e.g. 4 for the β-VAE), resolved once by `for_variant`, which
                     fit and the checkpoint record (vae_core.record) call: a record states the number used
    kl_warmup_epochs the KL weight rises linearly from 0 to beta over this many epochs (0: off)
    val_fraction     share of the training split held out for validation, early stopping and the
                     per-epoch curve (0: evaluate on the test split instead)
    train_limit      use only the first N training images (0: all); tests use small subsets
    eval_limit       evaluate per epoch on at most N images (0: all)
    keep_best        at the end, restore the weights of the epoch with the lowest evaluation loss
    patience         early stopping: end training once the evaluation loss has not improved for this many
                     epochs (0: off; needs an evaluation set); `epochs` is then an upper bound
    weight_decay     decoupled weight decay (AdamW) per step, times the learning rate; 0: plain Adam
    ema_decay        Polyak / exponential moving average of the weights (torch.optim.swa_utils.AveragedModel),
                     updated after every step with this decay, in [0, 1) (0: off). When on, the per-epoch
                     evaluation, keep_best and the weights fit hands back are the averaged ones
    freeze_decoder   train only the recognition net q(z|x,y) (the encoder); the generative model (decoder, and
                     a conditional model's prior net) keeps its weights. This only tightens the ELBO (a smaller
                     amortisation gap); the model's likelihood p(y|x) stays as it was
    """

    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    beta: float | None = None
    kl_warmup_epochs: int = 0
    seed: int = 0
    val_fraction: float = 0.0
    train_limit: int = 0
    eval_limit: int = 0
    keep_best: bool = False
    lr_decay: float = 1.0
    patience: int = 0
    device: str = "auto"
    weight_decay: float = 0.0
    ema_decay: float = 0.0
    freeze_decoder: bool = False

    def __post_init__(self) -> None:
        _check(self.dataset in DATASETS,
               f"dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        _check(_whole(self.epochs) and 1 <= self.epochs <= MAX_EPOCHS,
               f"epochs must be a whole number from 1 to {MAX_EPOCHS:,}; got {self.epochs!r}")
        _check(_whole(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH,
               f"batch_size must be a whole number from 1 to {MAX_BATCH:,}; got {self.batch_size!r}")
        _check(_number(self.lr) and 0 < self.lr <= 1e9,
               f"lr (learning rate) must be a positive number; got {self.lr!r}")
        _check(self.beta is None or (_number(self.beta) and 0 <= self.beta <= 1e6),
               f"beta (KL weight) must be zero or positive (at most 1e6); got {self.beta!r}")
        _check(_whole(self.kl_warmup_epochs) and 0 <= self.kl_warmup_epochs <= MAX_EPOCHS,
               f"kl_warmup_epochs must be zero or a positive whole number; got {self.kl_warmup_epochs!r}")
        _check(_whole(self.seed) and 0 <= self.seed <= MAX_SEED,
               f"seed must be a whole number from 0 to 2**63 - 1; got {self.seed!r}")
        _check(_number(self.val_fraction) and 0.0 <= self.val_fraction < 1.0,
               f"val_fraction must lie in [0, 1); got {self.val_fraction!r}")
        _check(_whole(self.train_limit) and 0 <= self.train_limit <= 10**9,
               f"train_limit must be zero (all) or a positive whole number; got {self.train_limit!r}")
        _check(_whole(self.eval_limit) and 0 <= self.eval_limit <= 10**9,
               f"eval_limit must be zero (all) or a positive whole number; got {self.eval_limit!r}")
        _check(isinstance(self.keep_best, bool), f"keep_best must be true or false; got {self.keep_best!r}")
        _check(_number(self.lr_decay) and 0.0 < self.lr_decay <= 1.0,
               f"lr_decay (per-epoch learning-rate factor) must lie in (0, 1]; got {self.lr_decay!r}")
        _check(_whole(self.patience) and 0 <= self.patience <= MAX_EPOCHS,
               f"patience (epochs without improvement before stopping) must be zero (off) or a positive "
               f"whole number; got {self.patience!r}")
        _check(_number(self.weight_decay) and 0.0 <= self.weight_decay <= MAX_WEIGHT_DECAY,
               f"weight_decay must lie in [0, {MAX_WEIGHT_DECAY:g}]; got {self.weight_decay!r}")
        _check(_number(self.ema_decay) and 0.0 <= self.ema_decay < 1.0,
               f"ema_decay (weight averaging) must lie in [0, 1): 0 turns it off, 0.999 averages over about "
               f"the last 1,000 steps; got {self.ema_decay!r}")
        _check(isinstance(self.freeze_decoder, bool),
               f"freeze_decoder must be true or false; got {self.freeze_decoder!r}")
        _check(isinstance(self.device, str) and (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")),
               f"device must be 'auto', 'cpu' or 'cuda'; got {self.device!r}")

    def for_variant(self, variant: str) -> "TrainConfig":
        """This config with beta = None resolved to the variant's default_beta (the one place it is resolved);
        a config with a beta of its own comes back unchanged."""
        return self if self.beta is not None else self.replace(beta=float(variant_info(variant).default_beta))

    def kl_weight(self, epoch: int, fraction_of_epoch: float = 0.0) -> float:
        """The KL weight at a point of training (epoch counts from 0); beta must be resolved (for_variant)."""
        _check(self.beta is not None, "beta is the variant's default until resolved: call for_variant(variant)")
        if self.kl_warmup_epochs <= 0:
            return float(self.beta)
        progress = (epoch + fraction_of_epoch) / self.kl_warmup_epochs
        return float(self.beta) * min(1.0, progress)

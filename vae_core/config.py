"""Configuration of a model and of a training run.

Both are frozen dataclasses that validate themselves on construction (pydantic, through vae_core/validation.py),
so a bad setting raises a `ValueError` (SettingError) whose text is one sentence naming the setting, its range
and the bad value, before any work starts. They round-trip through plain dicts (`to_dict` / `from_dict`), which
is how checkpoints store them.
"""
import dataclasses
from typing import Annotated, Any

from pydantic import AfterValidator

from .validation import Flag, Number, OneOf, SettingError, Sizes, Text, Whole, quote, settings

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


def _even(size: int) -> int:
    if size % 2:
        raise ValueError("odd")  # the sentence is image_size's rule
    return size


def _device(name: str) -> str:
    if name in ("auto", "cpu", "cuda") or name.startswith("cuda:"):
        return name
    raise ValueError("unknown device")  # the sentence is device's rule


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """From a plain dict (JSON): lists become tuples; an unknown key is refused with a sentence."""
        if not isinstance(data, dict):
            raise SettingError(f"{cls.__name__} must be given as a mapping of settings; got {quote(data)}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((k for k in data if k not in names), key=str)
        if unknown:
            raise SettingError(f"{cls.__name__} has no setting named {', '.join(quote(k) for k in unknown[:3])}"
                               f"{' (and more)' if len(unknown) > 3 else ''}; its settings are "
                               f"{', '.join(sorted(names))}.")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@settings
class ModelConfig(_DictMixin):
    """What a model is: enough to rebuild it from a checkpoint.

    variant    a name in vae_core.models.VARIANTS: vae | beta-vae | cvae | gsnn | hybrid | baseline (the registry decides)
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

    variant: Annotated[str, OneOf(variant_names, "the kind of model")] = "vae"
    condition: Annotated[str, OneOf(CONDITIONS, "what the model is given")] = "none"
    latent_dim: Annotated[int, Whole(1, MAX_LATENT_DIM, "latent dimensions")] = 2
    hidden_dims: Annotated[tuple[int, ...], Sizes(
        MAX_HIDDEN_LAYERS, 1, MAX_LAYER_WIDTH, "hidden layer sizes", rule=f"be one or more layer sizes (at most "
        f"{MAX_HIDDEN_LAYERS}), each a whole number from 1 to {MAX_LAYER_WIDTH:,}")] = DEFAULT_HIDDEN_DIMS
    prior: Annotated[str, OneOf(PRIORS, "the prior p(z|x)", rule="be 'learned' or 'standard'")] = "learned"
    alpha: Annotated[float, Number(0, 1, "the hybrid's weight of the CVAE loss")] = 0.5
    quadrants: Annotated[int, Whole(0, 3, "visible quadrants", rule="be 1, 2 or 3, or 0 for a random count per "
                                                                     "image")] = 0
    image_size: Annotated[int, Whole(2, MAX_IMAGE_SIZE, "image side in pixels", rule="be an even number of "
                                     f"pixels from 2 to {MAX_IMAGE_SIZE}"), AfterValidator(_even)] = 28
    num_classes: Annotated[int, Whole(2, MAX_CLASSES, "number of classes")] = 10
    dropout: Annotated[float, Number(0, MAX_DROPOUT, "dropout probability")] = 0.0
    encoder: Annotated[str, OneOf(ENCODERS, "the recognition net")] = "mlp"

    def __post_init__(self) -> None:
        """The checks that read two settings: whether the variant is conditional decides the condition."""
        if not variant_info(self.variant).conditional and self.condition != "none":
            raise SettingError(f"a {self.variant} is unconditional: condition must be 'none' (use cvae for a "
                               f"conditional model); got {self.condition!r}.")
        if variant_info(self.variant).conditional and self.condition == "none":
            raise SettingError(f"a {self.variant} model needs a condition: condition must be 'label' or "
                               f"'quadrants'; got 'none'.")

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
        if variant_info(self.variant).uses_alpha:
            parts.append(f"alpha {self.alpha:g}")
        return " | ".join(parts)


@settings
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

    dataset: Annotated[str, OneOf(DATASETS, "data set")] = "mnist"
    epochs: Annotated[int, Whole(1, MAX_EPOCHS, "passes over the training images")] = 10
    batch_size: Annotated[int, Whole(1, MAX_BATCH, "images per step")] = 128
    lr: Annotated[float, Number(0, 1e9, "learning rate", open_low=True,
                                rule="be a positive number (at most 1e9)")] = 1e-3
    beta: Annotated[float | None, Number(0, 1e6, "KL weight", rule="be zero or positive (at most 1e6), or None for "
                                         "the variant's own")] = None
    kl_warmup_epochs: Annotated[int, Whole(0, MAX_EPOCHS, "epochs over which the KL weight rises")] = 0
    seed: Annotated[int, Whole(0, MAX_SEED, "random seed", rule="be a whole number from 0 to 2**63 - 1")] = 0
    val_fraction: Annotated[float, Number(0, 1, "share held out for validation", open_high=True)] = 0.0
    train_limit: Annotated[int, Whole(0, 10**9, "training images used, 0 for all")] = 0
    eval_limit: Annotated[int, Whole(0, 10**9, "evaluation images, 0 for all")] = 0
    keep_best: Annotated[bool, Flag("keep the best epoch's weights")] = False
    lr_decay: Annotated[float, Number(0, 1, "per-epoch learning-rate factor", open_low=True)] = 1.0
    patience: Annotated[int, Whole(0, MAX_EPOCHS, "epochs without improvement before stopping, 0 for off")] = 0
    device: Annotated[str, Text(32, "where to train", rule="be 'auto', 'cpu' or 'cuda' (or 'cuda:N')"),
                      AfterValidator(_device)] = "auto"
    weight_decay: Annotated[float, Number(0, MAX_WEIGHT_DECAY, "decoupled weight decay")] = 0.0
    ema_decay: Annotated[float, Number(0, 1, "weight averaging", open_high=True, rule="lie in [0, 1): 0 turns it "
                                       "off, 0.999 averages over about the last 1,000 steps")] = 0.0
    freeze_decoder: Annotated[bool, Flag("train only the encoder")] = False

    def for_variant(self, variant: str) -> "TrainConfig":
        """This config with beta = None resolved to the variant's default_beta (the one place it is resolved);
        a config with a beta of its own comes back unchanged."""
        return self if self.beta is not None else self.replace(beta=float(variant_info(variant).default_beta))

    def kl_weight(self, epoch: int, fraction_of_epoch: float = 0.0) -> float:
        """The KL weight at a point of training (epoch counts from 0); beta must be resolved (for_variant)."""
        if self.beta is None:
            raise SettingError("beta is the variant's default until resolved: call for_variant(variant) first.")
        if self.kl_warmup_epochs <= 0:
            return float(self.beta)
        progress = (epoch + fraction_of_epoch) / self.kl_warmup_epochs
        return float(self.beta) * min(1.0, progress)

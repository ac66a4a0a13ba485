"""One family of conditional generative models (Sohn, Lee and Yan, 2015).

Three networks, named as in the paper and in Pyro's CVAE example, in the notation the pages state
(ui/notation.py: x is what the model is given, y the image it explains; a plain VAE's x is empty, so its
recognition net is q(z|y) and its prior N(0, I)):

    prior_net        p(z|x)        x -> (mu, logvar)     absent for a standard N(0, I) prior
    recognition_net  q(z|x,y)      (x, y) -> (mu, logvar)
    generation_net   p(y|x,z)      (x, z) -> pixel logits (Bernoulli)

plus `baseline_net`, a deterministic x -> y network. The variants (vae, cvae, gsnn, hybrid,
baseline, beta-vae) are the same module with different objectives; `VARIANTS` says which networks each
one builds, which loss it trains with (vae_core.losses) and its per-variant defaults.

Shapes: y is float [B, P] in [0, 1] (P = image pixels, images of [B, H, W] are flattened);
x is None (vae), int64 labels [B] (label condition), or float [B, P] with hidden pixels at -1
(quadrant condition).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import losses
from .losses import bernoulli_log_likelihood, gaussian_log_density  # noqa: F401 (re-exported)
from .config import ModelConfig


@dataclass(frozen=True)
class Variant:
    """One member of the family: how it trains, which networks it builds, and how people should see it.

    Everything else (config validation, the Train page's list and its β field, Home's tables, Compare's rows,
    Diagnose's notes, the CLI's help, the README's variant table) reads this registry, so a new variant is one
    entry here (and its objective in vae_core.losses). Nothing outside models.py writes a variant's name to
    decide what to do: it reads these fields."""

    title: str                       # short name for tables and pickers, e.g. "CVAE"
    description: str                 # one line for people, e.g. "conditional, z ~ q(z|x,y), KL to p(z|x)"
    objective: Callable              # (model, y, x, beta[, per_example=False]) -> dict of named terms
    nets: tuple[str, ...]            # which of prior / recognition / generation / baseline it builds
    conditional: bool = True         # needs a condition x (label or quadrants); False: condition must be none
    uses_kl: bool = True             # its loss has a KL term, so beta and KL warm-up apply
    uses_alpha: bool = False         # mixes two objectives by ModelConfig.alpha (the hybrid)
    default_beta: float = 1.0        # the KL weight a run uses unless told otherwise (TrainConfig.beta = None)
    plain: bool = False              # the plain ELBO model of its kind (VAE, CVAE): an imported VAE or CVAE becomes
                                     # one (plain_variant), and Diagnose opens on an unconditional one first
    loss_text: str = ""              # the loss per example, for the variant table (README); "" shows the description

    @property
    def has_latent(self) -> bool:
        return "generation" in self.nets

    @property
    def uses_prior(self) -> bool:
        """Has a prior network p(z|x) (learned, or a standard N(0, I) by ModelConfig.prior)."""
        return "prior" in self.nets

    @property
    def recognition_is_prior(self) -> bool:
        """Has a latent but no recognition net: q(z|x,y) is p(z|x) (the GSNN), so its KL is zero by construction."""
        return self.has_latent and "recognition" not in self.nets

    @property
    def trains_on(self) -> str:
        """Where z comes from during training: 'q' (the recognition net), 'prior' (the prior net), 'both' (a
        mix of the two objectives by alpha) or 'none' (a deterministic network)."""
        if not self.has_latent:
            return "none"
        if self.recognition_is_prior:
            return "prior"
        return "both" if self.uses_alpha else "q"

    @property
    def gives_per_example(self) -> bool:
        """Its objective takes per_example=True and returns one value per example (the diagnostics need it;
        an objective without it still trains and evaluates, from batch means)."""
        return "per_example" in inspect.signature(self.objective).parameters


VARIANTS: dict[str, Variant] = {
    "vae": Variant("VAE", "unconditional, z ~ q(z|y), KL to N(0, I)", losses.elbo_objective,
                   ("recognition", "generation"), conditional=False, plain=True,
                   loss_text="recon + β · KL(q(z|y) ‖ N(0, I))"),
    "cvae": Variant("CVAE", "conditional, z ~ q(z|x,y), KL to p(z|x)", losses.elbo_objective,
                    ("prior", "recognition", "generation"), plain=True,
                    loss_text="recon + β · KL(q(z|x,y) ‖ p(z|x))"),
    "gsnn": Variant("GSNN", "trained with z ~ p(z|x), as used at test time (no KL)", losses.gsnn_objective,
                    ("prior", "generation"), uses_kl=False,
                    loss_text="recon only (the recognition net is the prior net)"),
    "hybrid": Variant("Hybrid", "α · CVAE + (1 − α) · GSNN", losses.hybrid_objective,
                      ("prior", "recognition", "generation"), uses_alpha=True,
                      loss_text="α · L_cvae + (1 − α) · L_gsnn"),
    "baseline": Variant("Baseline NN", "deterministic x → y, no latent", losses.baseline_objective,
                        ("baseline",), uses_kl=False, loss_text="recon of a deterministic x → y network"),
    "beta-vae": Variant("β-VAE", "unconditional VAE with a heavier KL weight β (Higgins et al., 2017)",
                        losses.elbo_objective, ("recognition", "generation"), conditional=False, default_beta=4.0,
                        loss_text="recon + β · KL(q(z|y) ‖ N(0, I)), β > 1 (Higgins et al., 2017)"),
}

# Where z comes from in training, in the paper's order of the models it compares (Sohn et al., 2015, Table 2:
# the deterministic baseline, the GSNN, the CVAE, the hybrid): Compare's rows and columns follow it.
TRAINS_ON = ("none", "prior", "q", "both")
TRAINS_ON_TEXT = {"none": "none", "prior": "p(z|x)", "both": "both"}   # 'q': q(z|y), or q(z|x,y) if conditional


def compared_variants(with_latent: bool | None = None) -> list[str]:
    """The conditional variants, in the paper's order (TRAINS_ON, then registry order): what Compare sets side by
    side. with_latent=True: only the stochastic ones (they have samples); False: only the deterministic ones."""
    names = [n for n, v in VARIANTS.items() if v.conditional and (with_latent is None or v.has_latent == with_latent)]
    return sorted(names, key=lambda n: TRAINS_ON.index(VARIANTS[n].trains_on))


def plain_variant(conditional: bool) -> str:
    """The plain ELBO variant (flag `plain`) that takes a condition or not: the VAE, or the CVAE. A model trained
    elsewhere (vae_core/importers.py, vae_core/external.py) becomes one, and Diagnose opens on the VAE."""
    return next(name for name, v in VARIANTS.items() if v.plain and v.conditional == conditional)


def unconditional_variants() -> list[str]:
    """The variants that take no condition x (the VAE and its kin), in registry order."""
    return [n for n, v in VARIANTS.items() if not v.conditional]


def variant_table() -> str:
    """The variant table of the README, in Markdown, from the registry (`python -m vae_core variants --markdown`;
    tests/test_variant_table_doc.py checks that the README's table is this one)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| variant | title | z during training | loss per example | β by default |", "|---|---|---|---|---|"]
    for name, v in VARIANTS.items():
        z = TRAINS_ON_TEXT.get(v.trains_on) or ("q(z|x,y)" if v.conditional else "q(z|y)")
        beta = f"{v.default_beta:g}" if v.uses_kl else "–"
        lines.append(f"| `{name}` | {cell(v.title)} | {cell(z)} | {cell(v.loss_text or v.description)} | {beta} |")
    return "\n".join(lines) + "\n"


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last); dropout > 0 puts an nn.Dropout after each
    ReLU. With dropout 0 no Dropout module is made, so the layout and state-dict keys are those of every
    checkpoint saved before dropout existed (0.Linear, 1.ReLU, 2.Linear, ...)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class GaussianNet(nn.Module):
    """inputs -> (mu, logvar) of a diagonal Gaussian."""

    def __init__(self, *, in_dim: int, hidden: tuple[int, ...], latent_dim: int, dropout: float = 0.0):
        super().__init__()
        self.body = mlp([in_dim, *hidden, 2 * latent_dim], dropout)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.body(h).chunk(2, dim=-1)
        return mu, logvar


def conv_stack(image_size: int, channels: tuple[int, ...] = (32, 64, 64)) -> tuple[nn.Sequential, int]:
    """3x3 convolutions of stride 2 with ReLU after each (28 -> 14 -> 7 -> 4), then a flatten; returns the stack
    and the length of its output (channels[-1] * side * side)."""
    layers: list[nn.Module] = []
    side, previous = image_size, 1
    for c in channels:
        layers += [nn.Conv2d(previous, c, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        side, previous = (side + 1) // 2, c
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), previous * side * side


class ConvGaussianNet(nn.Module):
    """(condition features [B, x_dim], image [B, P]) concatenated -> (mu, logvar): the image goes through
    `features` (conv_stack), the condition joins its output, and `body` (an MLP as in GaussianNet) gives the
    Gaussian. Used for the recognition net when ModelConfig.encoder is 'conv'."""

    def __init__(self, *, x_dim: int, image_size: int, hidden: tuple[int, ...], latent_dim: int,
                 dropout: float = 0.0):
        super().__init__()
        self.x_dim, self.image_size = x_dim, image_size
        self.features, flat = conv_stack(image_size)
        self.body = mlp([x_dim + flat, *hidden, 2 * latent_dim], dropout)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = h[:, :self.x_dim], h[:, self.x_dim:]
        f = self.features(y.reshape(-1, 1, self.image_size, self.image_size))
        mu, logvar = self.body(torch.cat([x, f], dim=-1)).chunk(2, dim=-1)
        return mu, logvar


class LatentModel(nn.Module):
    """Every variant of the family; `config.variant` picks the networks and the objective."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        nets = VARIANTS[c.variant].nets
        x_dim = {"none": 0, "label": c.num_classes, "quadrants": c.num_pixels}[c.condition]
        hidden = tuple(c.hidden_dims)
        p = c.dropout
        self.x_dim = x_dim
        self.prior_net = (GaussianNet(in_dim=x_dim, hidden=hidden, latent_dim=c.latent_dim, dropout=p)
                          if "prior" in nets and c.prior == "learned" else None)
        if "recognition" not in nets:
            self.recognition_net = None
        elif c.encoder == "conv":
            self.recognition_net = ConvGaussianNet(x_dim=x_dim, image_size=c.image_size, hidden=hidden,
                                                   latent_dim=c.latent_dim, dropout=p)
        else:
            self.recognition_net = GaussianNet(in_dim=x_dim + c.num_pixels, hidden=hidden, latent_dim=c.latent_dim,
                                               dropout=p)
        self.generation_net = (mlp([x_dim + c.latent_dim, *reversed(hidden), c.num_pixels], p)
                               if "generation" in nets else None)
        self.baseline_net = mlp([x_dim, *hidden, c.num_pixels], p) if "baseline" in nets else None

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def features(self, x: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """The condition as a float tensor [B, x_dim] (one-hot labels, or masked pixels)."""
        c = self.config
        if c.condition == "none":
            return None
        if x is None:
            raise ValueError(f"this {c.variant} model is conditioned on {c.condition}: pass x")
        if c.condition == "label":
            x = torch.as_tensor(x, device=self.device).long().reshape(-1)
            if x.numel() == 1 and batch > 1:
                x = x.expand(batch)
            if int(x.min()) < 0 or int(x.max()) >= c.num_classes:
                raise ValueError(f"labels must lie in 0..{c.num_classes - 1}")
            return F.one_hot(x, c.num_classes).float()
        x = x.to(self.device).float().reshape(x.shape[0], -1)
        if x.shape[0] == 1 and batch > 1:
            x = x.expand(batch, -1)
        return x

    def _flat(self, y: torch.Tensor) -> torch.Tensor:
        return y.to(self.device).float().reshape(y.shape[0], -1)

    @staticmethod
    def _cat(*parts: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([p for p in parts if p is not None], dim=-1)

    # ------------------------------------------------------------------ distributions
    def prior(self, h: torch.Tensor | None, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z|x) as (mu, logvar); N(0, I) for a vae or a standard prior."""
        if self.prior_net is None:
            zeros = torch.zeros(batch, self.config.latent_dim, device=self.device)
            return zeros, zeros
        return self.prior_net(h)

    def recognition(self, h: torch.Tensor | None, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x,y) as (mu, logvar); for a GSNN the recognition net is the prior net."""
        if self.recognition_net is None:
            return self.prior(h, y.shape[0])
        return self.recognition_net(self._cat(h, y))

    def generation_logits(self, z: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        return self.generation_net(self._cat(h, z))

    def _require_latent(self) -> None:
        if not self.config.has_latent:
            raise ValueError("a baseline model is deterministic and has no latent space")

    # ------------------------------------------------------------------ public API
    def encode(self, y: torch.Tensor, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x,y): the latent mean and log-variance of images y (given condition x)."""
        self._require_latent()
        y = self._flat(y)
        return self.recognition(self.features(x, y.shape[0]), y)

    def decode(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """p(y|x,z): pixel probabilities [B, P] for latent codes z [B, latent_dim]."""
        z = z.to(self.device).float().reshape(-1, self.config.latent_dim) if self.config.has_latent else z
        batch = z.shape[0] if z is not None else (1 if x is None else len(x))
        h = self.features(x, batch)
        if self.baseline_net is not None:
            return torch.sigmoid(self.baseline_net(h))
        return torch.sigmoid(self.generation_logits(z, h))

    def sample(self, x: torch.Tensor | int | None, n: int) -> torch.Tensor:
        """n samples of y from the prior p(z|x), decoded to pixel probabilities.

        One condition (None, an int label, or one masked image [P]) gives [n, P];
        a batch of conditions (labels [B], masked images [B, P]) gives [B, n, P].
        """
        c = self.config
        if x is None:
            return self._sample_flat(None, n)
        x = torch.as_tensor(x, device=self.device)
        single = x.dim() == (0 if c.condition == "label" else 1)
        xs = x.reshape(-1) if c.condition == "label" else x.reshape(-1, c.num_pixels)
        out = self._sample_flat(xs.repeat_interleave(n, dim=0), xs.shape[0] * n).reshape(xs.shape[0], n, -1)
        return out[0] if single else out

    def _sample_flat(self, x: torch.Tensor | None, batch: int) -> torch.Tensor:
        h = self.features(x, batch)
        if self.baseline_net is not None:
            return torch.sigmoid(self.baseline_net(h))
        mu, logvar = self.prior(h, batch)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return torch.sigmoid(self.generation_logits(z, h))

    def reconstruct(self, y: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the recognition mean of y: [B, P] pixel probabilities (the baseline: its prediction)."""
        y = self._flat(y)
        h = self.features(x, y.shape[0])
        if self.baseline_net is not None:
            return torch.sigmoid(self.baseline_net(h))
        mu, _ = self.recognition(h, y)
        return torch.sigmoid(self.generation_logits(mu, h))

    def loss(self, y: torch.Tensor, x: torch.Tensor | None = None, beta: float = 1.0,
             per_example: bool = False) -> dict[str, torch.Tensor]:
        """The variant's training objective, averaged over the batch: {'loss', 'recon', 'kl'}.

        per_example=True: one value per example instead ([B]), plus 'kl_per_dim' ([B, latent_dim],
        KL(q || p) per dimension before the hybrid's alpha) for variants with a KL term."""
        variant = VARIANTS[self.config.variant]
        if not per_example:
            return variant.objective(self, self._flat(y), x, beta)
        if not variant.gives_per_example:
            raise ValueError(f"the {variant.title} objective gives batch means only (it takes no per_example "
                             "argument), so per-example terms are not available for this model")
        return variant.objective(self, self._flat(y), x, beta, per_example=True)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(config: ModelConfig | dict, seed: int | None = 0) -> LatentModel:
    """A fresh model for `config`, with weights initialised from `seed` (None: the global RNG)."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    if seed is None:
        return LatentModel(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LatentModel(config)

"""Evaluation: likelihood estimates, sample diversity, manifold grids, interpolation, encoding a split.

The two conditional log-likelihood estimators are the paper's (Sohn et al. 2015, section 4.2),
computed per example in log space:

    Monte Carlo          log p(y|x) ~ logsumexp_s log p(y|x,z_s)                                - log S,  z_s ~ p(z|x)
    importance sampling  log p(y|x) ~ logsumexp_s [log p(y|x,z_s) + log p(z_s|x) - log q(z_s|x,y)] - log S,  z_s ~ q(z|x,y)

For the unconditional VAE, importance sampling with q(z|y) and p(z) = N(0, I) is the importance-weighted
log-likelihood of Burda et al. (2016). Figures are reported as negative log-likelihoods in nats per
image (quadrant models: over the missing pixels only).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable

import torch

from .config import ModelConfig
from .data import ImageDataset, batches, make_batch, target_mask
from .losses import bernoulli_log_likelihood, gaussian_log_density
from .training import evaluate_loss

Progress = Callable[[int], None]  # called with an amount of work just done (see evaluation_work)

__all__ = [
    "evaluation_work", "log_likelihood", "log_likelihood_per_example", "conditional_nll", "evaluate",
    "sample_diversity", "manifold_grid", "interpolate", "encode_dataset", "evaluate_loss", "prior_quantiles",
    "checkpoint_metrics",
]
GRID_COVERAGE = 0.95  # manifold grids span the central 95 % of N(0, 1) along each axis


def prior_quantiles(n: int, coverage: float = GRID_COVERAGE) -> torch.Tensor:
    """n evenly spaced quantiles of N(0, 1) over its central `coverage`, lowest first: the spacing of a
    manifold grid (Kingma and Welling, 2014, fig. 4), so each cell covers the same prior mass."""
    lo = (1 - coverage) / 2
    return torch.tensor([NormalDist().inv_cdf(lo + (1 - 2 * lo) * i / (n - 1)) for i in range(n)],
                        dtype=torch.float64)


@torch.no_grad()
def log_likelihood(model, y: torch.Tensor, x: torch.Tensor | None, samples: int = 100,
                   method: str = "is", chunk: int = 50, return_log_weights: bool = False,
                   progress: Progress | None = None) -> torch.Tensor:
    """Per-example estimate of log p(y|x) in nats: [B]. method 'mc' (z from the prior) or 'is' (z from q).

    return_log_weights=True returns the S log weights instead, [S, B] (log p(y|x,z_s) for 'mc', plus
    log p(z_s|x) - log q(z_s|x,y) for 'is'): the estimate is their logsumexp over S minus log S. A baseline
    model is deterministic: its S weights are all the exact log-likelihood.
    progress, if given, is called with the number of decoded samples after each chunk (images x draws).
    """
    if method not in ("mc", "is"):
        raise ValueError(f"method must be 'mc' or 'is'; got {method!r}")
    if isinstance(samples, float) and samples.is_integer():  # e.g. S as read back from a JSON record
        samples = int(samples)
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a whole number of at least 1; got {samples}")
    y = model._flat(y)
    batch = y.shape[0]
    h = model.features(x, batch)
    mask = target_mask(x, y.shape[-1])
    if model.baseline_net is not None:  # deterministic: both estimators are exact
        exact = bernoulli_log_likelihood(model.baseline_net(h), y, mask)
        if progress is not None:
            progress(samples * batch)
        return exact.expand(samples, batch) if return_log_weights else exact
    mu_p, logvar_p = model.prior(h, batch)
    if method == "is":
        mu_q, logvar_q = model.recognition(h, y)
    else:
        mu_q, logvar_q = mu_p, logvar_p
    parts = []
    for start in range(0, samples, chunk):
        s = min(chunk, samples - start)
        eps = torch.randn(s, *mu_q.shape, device=mu_q.device)
        z = mu_q + torch.exp(0.5 * logvar_q) * eps                     # [s, B, D]
        h_rep = None if h is None else h.expand(s, *h.shape)
        logits = model.generation_logits(z, h_rep)
        log_w = bernoulli_log_likelihood(logits, y, mask)               # [s, B]
        if method == "is":
            log_w = log_w + gaussian_log_density(z, mu_p, logvar_p) - gaussian_log_density(z, mu_q, logvar_q)
        parts.append(log_w)
        if progress is not None:
            progress(s * batch)
    log_w = torch.cat(parts, dim=0)
    if return_log_weights:
        return log_w
    return torch.logsumexp(log_w, dim=0) - math.log(samples)


@torch.no_grad()
def log_likelihood_per_example(model, dataset: ImageDataset, samples: int = 100, method: str = "is",
                               quadrants: int | None = None, batch_size: int = 500, seed: int = 0,
                               on_batch: Callable[[int], None] | None = None,
                               progress: Progress | None = None) -> torch.Tensor:
    """log p(y|x) of every image of a data set, in nats, on the CPU: [N] (fixed noise from `seed`).
    on_batch(images done so far) is called after every batch (for a progress bar); progress, finer, with
    each count of decoded samples done (see log_likelihood)."""
    model.eval()
    device = model.device
    parts = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for y, x, _ in batches(model.config, dataset, batch_size, device, quadrants, seed):
            parts.append(log_likelihood(model, y, x, samples, method, progress=progress).cpu())
            if on_batch is not None:
                on_batch(sum(len(p) for p in parts))
    return torch.cat(parts) if parts else torch.zeros(0)


@torch.no_grad()
def conditional_nll(model, dataset: ImageDataset, samples: int = 100, method: str = "is",
                    quadrants: int | None = None, batch_size: int = 500, seed: int = 0,
                    progress: Progress | None = None) -> float:
    """Mean negative (conditional) log-likelihood over a data set, nats per image.

    progress: called with each count of decoded samples done (len(dataset) x samples in all)."""
    ll = log_likelihood_per_example(model, dataset, samples, method, quadrants, batch_size, seed, progress=progress)
    return float(-ll.double().sum()) / max(1, len(dataset))


@torch.no_grad()
def sample_diversity(model, x: torch.Tensor | None, n: int = 10, seed: int = 0) -> float:
    """Mean pairwise Euclidean distance between n samples drawn for the same condition, averaged over
    the conditions in x (over the predicted pixels only, for quadrant inputs). 0 means deterministic."""
    if n < 2:
        raise ValueError("diversity needs at least 2 samples")
    model.eval()
    device = model.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if x is None:
            s = model.sample(None, n).unsqueeze(0)
            masks = None
        else:
            x = torch.as_tensor(x)
            batched = x if (x.dim() == (1 if model.config.condition == "label" else 2)) else x.unsqueeze(0)
            s = model.sample(batched, n)                               # [B, n, P]
            masks = target_mask(batched.to(device), s.shape[-1]) if model.config.condition == "quadrants" else None
    if masks is not None:
        s = s * masks.unsqueeze(1)
    d = torch.cdist(s, s)                                               # [B, n, n]
    return float(d.sum(dim=(1, 2)).mean() / (n * (n - 1)))


@torch.no_grad()
def evaluation_work(config: ModelConfig, n_images: int, samples: int = 100) -> int:
    """How many units `evaluate` reports through its `progress` callback for n_images: one per image for the
    loss pass, then one per decoded sample for each likelihood estimate. A progress bar's total."""
    estimates = int(config.has_latent) + int(config.is_conditional)
    return n_images * (1 + estimates * samples)


@torch.no_grad()
def evaluate(model, dataset: ImageDataset, samples: int = 100, quadrants: int | None = None,
             diversity_n: int = 10, diversity_examples: int = 100, seed: int = 0,
             progress: Progress | None = None) -> dict[str, float]:
    """The standard report for one model on one data set (nats per image).

    neg_elbo, recon, kl: the training objective with beta = 1 (for gsnn and baseline, recon only);
    nll_is / nll_mc: negative log-likelihood by importance sampling / Monte Carlo with `samples` draws;
    diversity: sample_diversity over the first `diversity_examples` conditions.
    progress: a callable given each amount of work done; evaluation_work(...) is the total. It lets a caller
    (the CLI's progress bar) follow a long evaluation without this module printing anything.
    """
    model.eval()
    terms = evaluate_loss(model, dataset, beta=1.0, quadrants=quadrants, seed=seed, progress=progress)
    out = {"neg_elbo": terms["loss"], "recon": terms["recon"], "kl": terms["kl"], "samples": samples}
    if model.config.has_latent:
        out["nll_is"] = conditional_nll(model, dataset, samples, "is", quadrants, seed=seed, progress=progress)
    if model.config.is_conditional:
        out["nll_mc"] = conditional_nll(model, dataset, samples, "mc", quadrants, seed=seed, progress=progress)
        sub = dataset.subset(0, diversity_examples)
        _, x = make_batch(model.config, sub.images.to(model.device), sub.labels.to(model.device),
                          quadrants=quadrants, generator=torch.Generator().manual_seed(seed))
        out["diversity"] = sample_diversity(model, x, diversity_n, seed)
    elif model.config.has_latent:
        out["diversity"] = sample_diversity(model, None, diversity_n, seed)
    return out


def checkpoint_metrics(model, dataset: ImageDataset, samples: int = 100, **options) -> dict:
    """The metrics a checkpoint stores: `evaluate` on the data set, or for a quadrant model trained on 1-3
    visible quadrants one block per count ({'q1': {...}, 'q2': {...}, 'q3': {...}})."""
    cfg = model.config
    if cfg.condition == "quadrants" and cfg.quadrants == 0:
        return {f"q{k}": evaluate(model, dataset, samples, quadrants=k, **options) for k in (1, 2, 3)}
    return evaluate(model, dataset, samples, **options)


@torch.no_grad()
def manifold_grid(model, n: int = 15, x: torch.Tensor | int | None = None, dims: tuple[int, int] = (0, 1),
                  z_base: torch.Tensor | None = None, coverage: float = GRID_COVERAGE) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode an n x n grid over two latent dimensions, spaced by the N(0,1) quantiles
    (Kingma and Welling, 2014, fig. 4). Returns (images [n, n, H, W], coordinates [n] along each axis).
    Row 0 is the top of the picture (highest value of the second dimension)."""
    model._require_latent()
    c = model.config
    coords = prior_quantiles(n, coverage)
    z = torch.zeros(n, n, c.latent_dim) if z_base is None else z_base.reshape(1, 1, -1).repeat(n, n, 1).float()
    if c.latent_dim == 1:
        z[:, :, 0] = coords.reshape(1, n)
    else:
        z[:, :, dims[0]] = coords.reshape(1, n)
        z[:, :, dims[1]] = coords.flip(0).reshape(n, 1)
    cond = None
    if x is not None:
        cond = torch.as_tensor(x).reshape(1, -1) if c.condition == "quadrants" else torch.as_tensor(x).reshape(1)
        cond = cond.repeat_interleave(n * n, dim=0)
    model.eval()
    imgs = model.decode(z.reshape(n * n, -1).to(model.device), cond)
    return imgs.reshape(n, n, c.image_size, c.image_size).cpu(), coords


@torch.no_grad()
def interpolate(model, z0: torch.Tensor, z1: torch.Tensor, steps: int = 10,
                x: torch.Tensor | int | None = None) -> torch.Tensor:
    """Decode `steps` points on the straight line from z0 to z1: [steps, H, W]."""
    c = model.config
    model._require_latent()
    t = torch.linspace(0, 1, steps).reshape(-1, 1)
    z = (1 - t) * torch.as_tensor(z0).float().reshape(1, -1) + t * torch.as_tensor(z1).float().reshape(1, -1)
    cond = None
    if x is not None:
        cond = torch.as_tensor(x).reshape(1, -1) if c.condition == "quadrants" else torch.as_tensor(x).reshape(1)
        cond = cond.repeat_interleave(steps, dim=0)
    model.eval()
    return model.decode(z.to(model.device), cond).reshape(steps, c.image_size, c.image_size).cpu()


@torch.no_grad()
def encode_dataset(model, dataset: ImageDataset, batch_size: int = 2000,
                   quadrants: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode a whole split: (latent means [N, D], log-variances [N, D], labels [N]), on the CPU.
    Label-conditioned models encode each image with its true label."""
    model._require_latent()
    model.eval()
    mus, logvars = [], []
    for y, x, _ in batches(model.config, dataset, batch_size, model.device, quadrants):
        mu, logvar = model.encode(y, x)
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return torch.cat(mus), torch.cat(logvars), dataset.labels.clone()


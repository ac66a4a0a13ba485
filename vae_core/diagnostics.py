"""Diagnostics for a model that misbehaves: where the KL goes, which latent units are used, which examples
the model explains worst, and whether the likelihood estimate can be trusted.

    kl_per_dimension   KL(q(z|x,y) || p(z|x)) of each latent dimension, averaged over a data set (closed form:
                       both are diagonal Gaussians; p is N(0, I) for a vae or a standard prior). The values add
                       up to the test KL of `evaluate_loss` (for the hybrid, to that KL divided by alpha: its
                       objective weights the KL by alpha).
    active_units       Burda, Grosse and Salakhutdinov (2016, IWAE), section 5.2: a unit u is active when
                       Cov_y(E_q[z_u]) > 0.01, the variance over the data of the posterior mean.
    per_example_terms  reconstruction, KL, -ELBO, importance-sampled NLL and the gap -ELBO - NLL of every image.
    importance_curve   the importance-sampled NLL as the number of samples S grows, with the effective sample
                       size of the normalised weights, ESS = 1 / sum_s w_s^2 (Kish): near S when q matches the
                       true posterior, near 1 when one sample carries the estimate (then do not trust it).

`diagnose` runs them all and returns one JSON-ready dict (what `python -m vae_core diagnose --json` prints).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .config import variant_info
from .data import ImageDataset, batches, make_batch
from .evaluation import log_likelihood, log_likelihood_per_example
from .losses import gaussian_kl_per_dim
from .training import loss_terms_per_example

__all__ = ["ACTIVE_THRESHOLD", "kl_per_dimension", "posterior_moments", "active_units", "per_example_terms",
           "effective_sample_size", "sample_sizes", "importance_curve", "quantiles", "diagnose",
           "default_quadrants", "kl_unavailable_reason", "diagnostics_unavailable_reason", "aggregate_density", "conditional_gaussians"]

ACTIVE_THRESHOLD = 0.01
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
Progress = Callable[[str, float], None]  # (what is being done, fraction of the whole job done)


def default_quadrants(config, quadrants: int | None = None) -> int | None:
    """The quadrant count diagnostics use: the one asked for, the model's own, or 2 for a model trained on a
    random count (per-example figures compare like with like only at one count)."""
    if config.condition != "quadrants":
        return None
    return quadrants or config.quadrants or 2


def diagnostics_unavailable_reason(config) -> str | None:
    """Why no per-example diagnostics can be computed for a model (its objective gives batch means only), or None."""
    info = variant_info(config.variant)
    if not info.gives_per_example:
        return (f"The {info.title} objective returns batch means only (it takes no per_example argument), so "
                "the per-example diagnostics cannot be computed for this model.")
    return None


def kl_unavailable_reason(config) -> str | None:
    """Why a model has no KL per dimension to show, in one sentence, or None when it has one."""
    info = variant_info(config.variant)
    if not config.has_latent:
        return f"This {info.title} model is deterministic: it has no latent code, so no KL and no active units."
    if info.recognition_is_prior:
        return (f"A {info.title} trains with z drawn from its prior net p(z|x) and has no KL term (its recognition "
                "net is the prior net), so every dimension's KL is zero by construction.")
    if not info.uses_kl:
        return f"A {info.title} model's objective has no KL term, so there is no KL per dimension to show."
    return None


@torch.no_grad()
def kl_per_dimension(model, dataset: ImageDataset, quadrants: int | None = None, batch_size: int = 1000,
                     seed: int = 0) -> torch.Tensor:
    """Mean KL(q(z|x,y) || p(z|x)) of each latent dimension over a data set, in nats: [latent_dim]."""
    reason = kl_unavailable_reason(model.config)
    if reason:
        raise ValueError(reason)
    terms = loss_terms_per_example(model, dataset, 1.0, batch_size, quadrants, seed)
    return terms["kl_per_dim"].double().mean(0)


@torch.no_grad()
def posterior_moments(model, dataset: ImageDataset, quadrants: int | None = None, batch_size: int = 1000,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-variance of q(z|x,y) for every image (for a GSNN, of p(z|x)), on the CPU: ([N, D], [N, D])."""
    model._require_latent()
    model.eval()
    mus, logvars = [], []
    for y, x, _ in batches(model.config, dataset, batch_size, model.device, quadrants, seed):
        mu, logvar = model.encode(y, x)
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    if not mus:
        d = model.config.latent_dim
        return torch.zeros(0, d), torch.zeros(0, d)
    return torch.cat(mus), torch.cat(logvars)


def active_units(means: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, torch.Tensor]:
    """(number of active units, variance over the data of each unit's posterior mean [D]) from means [N, D]."""
    means = torch.as_tensor(means, dtype=torch.float64)
    if means.shape[0] < 2:
        raise ValueError("active units need the posterior means of at least two examples")
    variance = means.var(dim=0, unbiased=False)
    return int((variance > threshold).sum()), variance


@torch.no_grad()
def per_example_terms(model, dataset: ImageDataset, samples: int = 100, quadrants: int | None = None,
                      seed: int = 0, on_batch: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """Every image's terms, nats, [N] each: 'recon', 'kl', 'neg_elbo' (the objective with beta = 1, one z per
    image: the figures `evaluate` averages), 'nll_is' (importance sampling with `samples` draws; for the
    baseline its exact NLL) and 'gap' = neg_elbo - nll_is (how loose the bound is, up to sampling noise);
    for the variants with a KL term also 'kl_per_dim' [N, D] (as kl_per_dimension). The means equal evaluate(model, dataset, samples, quadrants, seed=seed)'s neg_elbo, recon, kl, nll_is."""
    terms = loss_terms_per_example(model, dataset, 1.0, quadrants=quadrants, seed=seed)
    ll = log_likelihood_per_example(model, dataset, samples, "is", quadrants, seed=seed, on_batch=on_batch)
    out = {"recon": terms["recon"], "kl": terms["kl"], "neg_elbo": terms["loss"], "nll_is": -ll}
    out["gap"] = out["neg_elbo"] - out["nll_is"]
    if "kl_per_dim" in terms:
        out["kl_per_dim"] = terms["kl_per_dim"]
    return out


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size of importance weights given as logs over dim 0: 1 / sum_s w_s^2 with w
    normalised to sum to 1, = exp(2 logsumexp(log w) - logsumexp(2 log w)). Between 1 and S."""
    log_weights = torch.as_tensor(log_weights, dtype=torch.float64)
    return torch.exp(2 * torch.logsumexp(log_weights, 0) - torch.logsumexp(2 * log_weights, 0))


def sample_sizes(largest: int = 1000, per_decade: int = 4) -> list[int]:
    """Log-spaced whole numbers from 1 to `largest` (both included): 1, 2, 3, 6, 10, 18, 32, 56, 100, ..."""
    if largest < 1:
        raise ValueError(f"the largest number of samples must be at least 1; got {largest}")
    steps = max(1, int(round(math.log10(largest) * per_decade)))
    values = {int(round(10 ** (math.log10(largest) * i / steps))) for i in range(steps + 1)}
    return sorted(v for v in values | {1, largest} if 1 <= v <= largest)


@torch.no_grad()
def importance_curve(model, y: torch.Tensor, x: torch.Tensor | None, sizes: list[int] | None = None,
                     seed: int = 0, chunk: int = 50) -> dict[str, np.ndarray]:
    """The importance-sampled NLL of each example as S grows, with the ESS of its weights.

    One set of max(sizes) draws per example; the estimate at S uses the first S of them (so the curve shows
    how the estimate settles, not independent runs). Returns {'samples' [K], 'nll' [K, B], 'ess' [K, B]}.
    """
    model._require_latent()
    sizes = sorted(set(sizes or sample_sizes()))
    if sizes[0] < 1:
        raise ValueError("every number of samples must be at least 1")
    device = model.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        log_w = log_likelihood(model, y, x, sizes[-1], "is", chunk=chunk, return_log_weights=True)
    log_w = log_w.double().cpu()
    nll = torch.stack([-(torch.logsumexp(log_w[:s], 0) - math.log(s)) for s in sizes])
    ess = torch.stack([effective_sample_size(log_w[:s]) for s in sizes])
    return {"samples": np.asarray(sizes), "nll": nll.numpy(), "ess": ess.numpy()}


def quantiles(values, qs: tuple[float, ...] = QUANTILES) -> dict[str, float]:
    """{'mean', 'min', 'q05', ..., 'max'} of a 1-D array, as plain floats."""
    v = np.asarray(torch.as_tensor(values, dtype=torch.float64))
    if v.size == 0:
        return {}
    out = {"mean": float(v.mean())}
    for q in qs:
        name = "min" if q == 0 else "max" if q == 1 else "median" if q == 0.5 else f"q{round(100 * q):02d}"
        out[name] = float(np.quantile(v, q))
    return out


@torch.no_grad()
def conditional_gaussians(model, y: torch.Tensor, x: torch.Tensor | None) -> dict[str, np.ndarray]:
    """For one example: p(z|x) and q(z|x,y) as means and standard deviations [D], and KL(q || p) per dimension."""
    model._require_latent()
    y = model._flat(y.reshape(1, -1))
    h = model.features(x, 1)
    mu_p, logvar_p = model.prior(h, 1)
    mu_q, logvar_q = model.recognition(h, y)
    kl = gaussian_kl_per_dim(mu_q, logvar_q, mu_p, logvar_p)
    as_np = lambda t: t[0].double().cpu().numpy()  # noqa: E731
    return {"prior_mu": as_np(mu_p), "prior_std": as_np(torch.exp(0.5 * logvar_p)),
            "q_mu": as_np(mu_q), "q_std": as_np(torch.exp(0.5 * logvar_q)), "kl_per_dim": as_np(kl)}


def aggregate_density(means: torch.Tensor, logvars: torch.Tensor, points: torch.Tensor,
                      chunk: int = 2000) -> torch.Tensor:
    """The aggregate posterior q(z) = 1/N sum_n N(z; mu_n, var_n) at points [M, D]: [M] (a density)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    logvars = torch.as_tensor(logvars, dtype=torch.float64)
    points = torch.as_tensor(points, dtype=torch.float64)
    total = torch.full((points.shape[0],), -math.inf, dtype=torch.float64)
    for start in range(0, means.shape[0], chunk):
        mu, lv = means[start:start + chunk], logvars[start:start + chunk]
        diff = points[:, None, :] - mu[None]                                     # [M, n, D]
        log_n = -0.5 * (math.log(2 * math.pi) + lv[None] + diff.pow(2) * torch.exp(-lv[None])).sum(-1)
        total = torch.logaddexp(total, torch.logsumexp(log_n, 1))
    return torch.exp(total - math.log(max(1, means.shape[0])))


def diagnose(model, dataset: ImageDataset, samples: int = 100, quadrants: int | None = None,
             curve_images: int = 20, curve_max: int = 1000, seed: int = 0,
             progress: Progress | None = None) -> dict:
    """Every diagnostic of one model on one data set, as a JSON-ready dict (nats; see the module docstring).

    kl_per_dim (a list summing to `kl`), kl_in_objective (the KL as evaluate_loss reports it), active_units,
    posterior_mean_variance, per_example (quantiles of each term), is_vs_samples (mean NLL and ESS at each S
    over the first `curve_images` images). Entries that do not apply to the model are None, and `notes` says why.
    """
    cfg = model.config
    quadrants = default_quadrants(cfg, quadrants)
    report = {"model": cfg.describe(), "variant": cfg.variant, "latent_dim": cfg.latent_dim if cfg.has_latent else 0,
              "images": len(dataset), "samples": samples, "quadrants": quadrants, "notes": [],
              "kl_per_dim": None, "kl": None, "kl_in_objective": None, "active_units": None,
              "active_threshold": ACTIVE_THRESHOLD, "posterior_mean_variance": None, "per_example": None,
              "is_vs_samples": None}
    if len(dataset) < 2:
        raise ValueError("diagnostics need at least two test images")
    unavailable = diagnostics_unavailable_reason(cfg)
    if unavailable:
        raise ValueError(unavailable)
    say = progress or (lambda what, done: None)
    # the per-example likelihood dominates the cost: it gets 80 % of the bar
    say("per-example losses and importance-sampled NLL", 0.0)
    per = per_example_terms(model, dataset, samples, quadrants, seed,
                            on_batch=lambda done: say("per-example losses and importance-sampled NLL",
                                                      0.8 * done / len(dataset)))
    report["per_example"] = {k: quantiles(v) for k, v in per.items() if k != "kl_per_dim"}
    report["kl_in_objective"] = float(per["kl"].double().mean())
    reason = kl_unavailable_reason(cfg)
    if reason:
        report["notes"].append(reason)
    else:
        kl = per["kl_per_dim"].double().mean(0)  # the same numbers as kl_per_dimension, already computed
        report["kl_per_dim"] = [float(v) for v in kl]
        report["kl"] = float(kl.sum())
        if variant_info(cfg.variant).uses_alpha:
            report["notes"].append(f"The {variant_info(cfg.variant).title}'s objective weights the KL by alpha = "
                                   f"{cfg.alpha:g}: kl_in_objective is alpha times kl.")
    if cfg.has_latent:
        say("active units", 0.85)
        means, _ = posterior_moments(model, dataset, quadrants, seed=seed)
        count, variance = active_units(means)
        report["active_units"] = count
        report["posterior_mean_variance"] = [float(v) for v in variance]
        say("importance-sampled NLL against S", 0.9)
        sub = dataset.subset(0, curve_images)
        y, x = make_batch(cfg, sub.images.to(model.device), sub.labels.to(model.device), quadrants=quadrants)
        curve = importance_curve(model, y, x, sample_sizes(curve_max), seed)
        report["is_vs_samples"] = {"images": len(sub), "samples": curve["samples"].tolist(),
                                   "nll": curve["nll"].mean(1).tolist(), "ess": curve["ess"].mean(1).tolist(),
                                   "ess_min": curve["ess"].min(1).tolist()}
    else:
        report["notes"].append("The importance-sampled NLL of a deterministic model is exact: no curve against S.")
    say("done", 1.0)
    return report

"""The objectives of the model family, as pure functions returning named terms.

Each returns {'loss', 'recon', 'kl'} averaged over the batch, in nats per example, where
loss = recon + beta * kl. recon is -log p(y | x, z) summed over the pixels the likelihood covers
(all pixels, or only the hidden ones for quadrant inputs). Sohn, Lee and Yan (2015), eq. 4-9:

    cvae / vae  recon with z ~ q(z|x,y)  +  KL(q(z|x,y) || p(z|x))
    gsnn        recon with z ~ p(z|x)    (the recognition net is the prior net; no KL)
    hybrid      alpha * L_cvae + (1 - alpha) * L_gsnn
    baseline    recon of a deterministic x -> y network

The hybrid draws one noise tensor and uses it for both of its terms, so at alpha = 1 it equals the
CVAE objective and at alpha = 0 the GSNN objective exactly, for the same weights and seed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import target_mask

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """log p(y | logits) summed over pixels (only where mask is True, if given).

    y may hold grey levels in [0, 1]: this is the usual 'Bernoulli' likelihood of VAE papers on MNIST.
    """
    ll = -F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none")
    if mask is not None:
        ll = ll * mask.expand_as(ll)
    return ll.sum(-1)



def gaussian_kl_per_dim(mu_q: torch.Tensor, logvar_q: torch.Tensor,
                        mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) for diagonal Gaussians, one value per dimension (the last)."""
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p)
                  - 1.0)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor,
                mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) for diagonal Gaussians, summed over the last dim."""
    return gaussian_kl_per_dim(mu_q, logvar_q, mu_p, logvar_p).sum(-1)


def _terms(recon: torch.Tensor, kl: torch.Tensor, beta: float, per_example: bool = False,
           kl_per_dim: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The named terms, averaged over the batch; per_example=True keeps one value per example ([B]) and
    adds 'kl_per_dim' ([B, D], KL(q || p) per latent dimension, not weighted by the hybrid's alpha)
    for the variants that have a KL term."""
    if per_example:
        out = {"loss": recon + beta * kl, "recon": recon, "kl": kl}
        if kl_per_dim is not None:
            out["kl_per_dim"] = kl_per_dim
        return out
    recon, kl = recon.mean(), kl.mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def _recon(model, z: torch.Tensor, h, y: torch.Tensor, mask) -> torch.Tensor:
    return -bernoulli_log_likelihood(model.generation_logits(z, h), y, mask)


def _cvae_and_gsnn_parts(model, y, x, need_cvae: bool, need_gsnn: bool):
    """Per-example (recon_q, kl per dimension [B, D], recon_p), sharing one draw of noise eps."""
    h = model.features(x, y.shape[0])
    mask = target_mask(x, y.shape[-1])
    mu_p, logvar_p = model.prior(h, y.shape[0])
    eps = torch.randn_like(mu_p)
    recon_q = kl = recon_p = None
    if need_cvae:
        mu_q, logvar_q = model.recognition(h, y)
        z_q = mu_q + torch.exp(0.5 * logvar_q) * eps
        recon_q = _recon(model, z_q, h, y, mask)
        kl = gaussian_kl_per_dim(mu_q, logvar_q, mu_p, logvar_p)
    if need_gsnn:
        z_p = mu_p + torch.exp(0.5 * logvar_p) * eps
        recon_p = _recon(model, z_p, h, y, mask)
    return recon_q, kl, recon_p


def elbo_objective(model, y, x, beta: float = 1.0, per_example: bool = False) -> dict[str, torch.Tensor]:
    """VAE and CVAE: the negative ELBO (with the KL weighted by beta)."""
    recon_q, kl, _ = _cvae_and_gsnn_parts(model, y, x, True, False)
    return _terms(recon_q, kl.sum(-1), beta, per_example, kl)


def gsnn_objective(model, y, x, beta: float = 1.0, per_example: bool = False) -> dict[str, torch.Tensor]:
    """GSNN: reconstruction with z drawn from the prior net, no KL term."""
    _, _, recon_p = _cvae_and_gsnn_parts(model, y, x, False, True)
    return _terms(recon_p, torch.zeros_like(recon_p), beta, per_example)


def hybrid_objective(model, y, x, beta: float = 1.0, per_example: bool = False) -> dict[str, torch.Tensor]:
    """alpha * L_cvae + (1 - alpha) * L_gsnn, with recon and kl weighted the same way."""
    a = float(model.config.alpha)
    recon_q, kl, recon_p = _cvae_and_gsnn_parts(model, y, x, True, True)
    return _terms(a * recon_q + (1 - a) * recon_p, a * kl.sum(-1), beta, per_example, kl)


def baseline_objective(model, y, x, beta: float = 1.0, per_example: bool = False) -> dict[str, torch.Tensor]:
    """The deterministic baseline: -log p(y | x) under its Bernoulli prediction."""
    h = model.features(x, y.shape[0])
    recon = -bernoulli_log_likelihood(model.baseline_net(h), y, target_mask(x, y.shape[-1]))
    return _terms(recon, torch.zeros_like(recon), beta, per_example)

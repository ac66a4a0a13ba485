"""The likelihood estimators against an exact answer.

With a one-dimensional latent, log p(y|x) = log integral p(y|x,z) p(z|x) dz can be computed to many
digits on a fine grid (trapezoid rule on [-12, 12], in float64), so the Monte Carlo and importance-
sampling estimators of vae_core.evaluation can be checked against it.
"""
import math

import pytest
import torch

from vae_core import ModelConfig, build_model, log_likelihood, make_batch
from vae_core.losses import bernoulli_log_likelihood, gaussian_kl, gaussian_log_density


def exact_log_likelihood(model, y, x, grid_points=40001, lo=-12.0, hi=12.0):
    """Per example log p(y|x) by the trapezoid rule over a 1-D latent, in float64: ([B], z grid, log joint)."""
    m = build_model(model.config, seed=None)
    m.load_state_dict(model.state_dict())
    m = m.double()
    y = y.double()
    with torch.no_grad():
        h = m.features(x, y.shape[0])
        h = None if h is None else h.double()
        mu_p, logvar_p = m.prior(h, y.shape[0])
        mu_p, logvar_p = mu_p.double(), logvar_p.double()
        z = torch.linspace(lo, hi, grid_points, dtype=torch.float64).reshape(-1, 1, 1)   # [K, 1, 1]
        zb = z.expand(-1, y.shape[0], 1)                                                  # [K, B, 1]
        h_rep = None if h is None else h.expand(grid_points, *h.shape)
        logits = m.generation_net(torch.cat([t for t in (h_rep, zb) if t is not None], dim=-1))
        mask = None if x is None or x.dtype == torch.int64 else (x == -1)
        log_joint = bernoulli_log_likelihood(logits, y, mask) + gaussian_log_density(zb, mu_p, logvar_p)  # [K, B]
        dz = (hi - lo) / (grid_points - 1)
        w = torch.full((grid_points, 1), math.log(dz), dtype=torch.float64)
        w[0] = w[-1] = math.log(dz / 2)
        return torch.logsumexp(log_joint + w, dim=0), z.reshape(-1), log_joint


def one_d_model(variant, condition, quadrants=0, seed=0):
    cfg = ModelConfig(variant=variant, condition=condition, quadrants=quadrants, latent_dim=1,
                      hidden_dims=(8,), image_size=2, num_classes=3)
    model = build_model(cfg, seed=seed)
    with torch.no_grad():  # make the pixels depend strongly on z, so the posterior is narrow
        first = model.generation_net[0]
        first.weight[:, -1] *= 4.0
    return model.eval()


def fit_q_to_posterior(model, y, x):
    """Make q(z|x,y) the Gaussian with the exact posterior's mean and variance for this one (x, y)."""
    _, z, log_joint = exact_log_likelihood(model, y, x)
    post = torch.softmax(log_joint[:, 0], dim=0)
    mean = float((post * z).sum())
    var = float((post * (z - mean) ** 2).sum())
    last = model.recognition_net.body[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([mean, math.log(var)]))


def one_example(model):
    y = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    cfg = model.config
    if cfg.condition == "none":
        return y, None
    if cfg.condition == "label":
        return y, torch.tensor([2])
    _, x = make_batch(cfg, (y * 255).to(torch.uint8).reshape(1, 2, 2), torch.tensor([0]))
    return y, x


CASES = [("vae", "none", 0), ("cvae", "label", 0), ("cvae", "quadrants", 1), ("gsnn", "label", 0),
         ("hybrid", "quadrants", 2)]


@pytest.mark.parametrize("variant, condition, quadrants", CASES)
@pytest.mark.parametrize("method", ["mc", "is"])
def test_estimators_match_the_exact_integral(variant, condition, quadrants, method):
    model = one_d_model(variant, condition, quadrants)
    y, x = one_example(model)
    exact = float(exact_log_likelihood(model, y, x)[0])
    torch.manual_seed(0)
    est = float(log_likelihood(model, y, x, samples=20000, method=method, chunk=5000))
    # measured errors at most 0.006 nats (about 1.5 standard errors); the 1-sample ELBO is 0.07-0.17 below
    assert est == pytest.approx(exact, abs=0.02), (est, exact)


def test_the_exact_integral_is_a_normalised_density():
    """Sanity check of the reference itself: summing p(y|x) over all 16 binary images gives 1."""
    model = one_d_model("cvae", "label")
    ys = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)], dtype=torch.float32)
    x = torch.full((16,), 1)
    log_p = exact_log_likelihood(model, ys, x)[0]
    assert float(torch.logsumexp(log_p, 0).exp()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("condition, quadrants", [("label", 0), ("quadrants", 1)])
def test_importance_sampling_with_a_good_q_has_lower_variance(condition, quadrants):
    model = one_d_model("cvae", condition, quadrants)
    y, x = one_example(model)
    fit_q_to_posterior(model, y, x)
    exact = float(exact_log_likelihood(model, y, x)[0])
    reps = 400
    ys = y.expand(reps, -1)
    xs = x.expand(reps, *x.shape[1:]) if x.dim() > 1 else x.expand(reps)
    torch.manual_seed(1)
    mc = log_likelihood(model, ys, xs, samples=10, method="mc")     # 400 independent 10-sample estimates
    is_ = log_likelihood(model, ys, xs, samples=10, method="is")
    assert float(is_.var()) < 0.25 * float(mc.var()), (float(is_.var()), float(mc.var()))
    # with a q close to the posterior every weight is close to p(y|x)
    assert float(is_.mean()) == pytest.approx(exact, abs=0.02)
    # both are lower bounds in expectation (Jensen): their means sit at or below the exact value
    assert float(mc.mean()) < exact + 0.02


@pytest.mark.parametrize("condition, quadrants", [("label", 0), ("quadrants", 2)])
def test_baseline_estimates_equal_its_deterministic_likelihood(condition, quadrants, tiny_data):
    cfg = ModelConfig(variant="baseline", condition=condition, quadrants=quadrants, hidden_dims=(32,),
                      image_size=8)
    model = build_model(cfg).eval()
    y, x = make_batch(cfg, tiny_data.images[:20], tiny_data.labels[:20])
    with torch.no_grad():
        mask = None if condition == "label" else (x == -1)
        direct = bernoulli_log_likelihood(model.baseline_net(model.features(x, 20)), y, mask)
        assert torch.allclose(-direct.mean(), model.loss(y, x)["loss"], atol=1e-4)
    for method in ("mc", "is"):
        assert torch.allclose(log_likelihood(model, y, x, samples=7, method=method), direct, atol=1e-5)


def test_vae_importance_bound_is_above_the_elbo(tiny_data):
    cfg = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,), image_size=8)
    model = build_model(cfg).eval()
    y, _ = make_batch(cfg, tiny_data.images[:32], tiny_data.labels[:32])
    reps = 200
    ys = y.repeat(reps, 1)
    torch.manual_seed(0)
    with torch.no_grad():
        neg_elbo = float(model.loss(ys, None)["loss"])               # one z per copy: unbiased -ELBO
        one_sample = log_likelihood(model, ys, None, samples=1, method="is")
        iwae = log_likelihood(model, y, None, samples=200, method="is")
    # the 1-sample importance estimate is the ELBO itself
    assert float(one_sample.mean()) == pytest.approx(-neg_elbo, abs=0.3)
    assert float(iwae.mean()) > -neg_elbo
    # ... per example too, against each example's own ELBO
    per_example_elbo = one_sample.reshape(reps, 32).mean(0)
    assert float((iwae > per_example_elbo).float().mean()) > 0.9


def test_gaussian_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu_q, logvar_q = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([-0.5, 0.4, -2.0])
    mu_p, logvar_p = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.2, -0.3, 0.0])
    closed = float(gaussian_kl(mu_q, logvar_q, mu_p, logvar_p))
    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn(400_000, 3)
    mc = float((gaussian_log_density(z, mu_q, logvar_q) - gaussian_log_density(z, mu_p, logvar_p)).mean())
    assert mc == pytest.approx(closed, abs=0.02)
    assert float(gaussian_kl(mu_q, logvar_q, mu_q, logvar_q)) == pytest.approx(0.0, abs=1e-6)
    # against N(0, I) it is the textbook VAE term
    zeros = torch.zeros(3)
    textbook = float(-0.5 * (1 + logvar_q - mu_q ** 2 - logvar_q.exp()).sum())
    assert float(gaussian_kl(mu_q, logvar_q, zeros, zeros)) == pytest.approx(textbook, rel=1e-6)


def test_log_likelihood_rejects_bad_arguments(tiny_data):
    model = build_model(ModelConfig(hidden_dims=(32,), image_size=8))
    y = torch.rand(2, 64)
    with pytest.raises(ValueError, match="method"):
        log_likelihood(model, y, None, method="exact")
    with pytest.raises(ValueError, match="samples"):
        log_likelihood(model, y, None, samples=0)

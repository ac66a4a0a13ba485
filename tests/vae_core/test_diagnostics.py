"""vae_core.diagnostics against independent answers: the KL per dimension adds up to evaluate's KL and is
taken against p(z|x) for a CVAE; a dimension forced inactive is found; per-example terms average to
evaluate's figures; the effective sample size on cases whose answer is known."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from test_estimators import exact_log_likelihood, fit_q_to_posterior, one_d_model, one_example
from vae_core import ImageDataset, ModelConfig, build_model, evaluate, evaluate_loss, make_batch
from vae_core.diagnostics import (active_units, aggregate_density, diagnose, effective_sample_size,
                                  importance_curve, kl_per_dimension, kl_unavailable_reason, per_example_terms,
                                  posterior_moments, quantiles, sample_sizes)

TINY = dict(hidden_dims=(32,), image_size=8)


def tiny(variant, condition="none", latent_dim=3, **kw):
    return build_model(ModelConfig(variant=variant, condition=condition, latent_dim=latent_dim, **TINY, **kw),
                       seed=0).eval()


@pytest.mark.parametrize("variant, condition, extra", [
    ("vae", "none", {}), ("cvae", "label", {}), ("cvae", "quadrants", {"quadrants": 2}),
    ("cvae", "label", {"prior": "standard"}), ("hybrid", "label", {"alpha": 0.3}),
    ("hybrid", "quadrants", {"quadrants": 0, "alpha": 0.7})])
def test_kl_per_dimension_sums_to_the_test_kl_of_evaluate_loss(tiny_data, variant, condition, extra):
    model = tiny(variant, condition, **extra)
    kl = kl_per_dimension(model, tiny_data)
    assert kl.shape == (3,) and (kl >= 0).all() and float(kl.sum()) > 0
    total = evaluate_loss(model, tiny_data)["kl"]
    weight = model.config.alpha if variant == "hybrid" else 1.0
    assert weight * float(kl.sum()) == pytest.approx(total, rel=1e-5)


def test_kl_of_a_cvae_is_taken_against_its_learned_prior(tiny_data):
    model = tiny("cvae", "label")
    with torch.no_grad():  # a prior far from N(0, I), so the two answers differ clearly
        model.prior_net.body[-1].bias[:3] += 2.0
    y, x = make_batch(model.config, tiny_data.images, tiny_data.labels)
    with torch.no_grad():
        h = model.features(x, len(y))
        mu_p, lv_p = model.prior(h, len(y))
        mu_q, lv_q = model.recognition(h, y)
    ref = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(mu_p, (0.5 * lv_p).exp())).mean(0)
    against_standard = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(0.0, 1.0)).mean(0)
    ours = kl_per_dimension(model, tiny_data)
    assert torch.allclose(ours.float(), ref, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ours.float(), against_standard, rtol=1e-2)


def test_a_dimension_forced_inactive_is_found(tiny_data):
    model = tiny("vae", latent_dim=4)
    d = 4
    last = model.recognition_net.body[-1]
    with torch.no_grad():
        last.weight[[0, 2, 3]] *= 20.0               # the other means vary clearly over the data
        for row in (1, 1 + d):                       # dimension 1: mu = 0 and logvar = 0 for every image
            last.weight[row].zero_()
            last.bias[row] = 0.0
    means, logvars = posterior_moments(model, tiny_data)
    count, variance = active_units(means)
    assert count == 3
    assert variance[1] == 0 and (variance[[0, 2, 3]] > 0.01).all()
    kl = kl_per_dimension(model, tiny_data)
    assert float(kl[1]) == pytest.approx(0.0, abs=1e-7)     # q = N(0, 1) = p: no information in it
    assert (kl[[0, 2, 3]] > 0.01).all()


def test_active_units_threshold_and_bad_input():
    means = torch.tensor([[0.0, 0.0], [0.3, 0.1], [-0.3, -0.1]])   # variances 0.06 and 0.00667
    count, variance = active_units(means)
    assert count == 1 and variance.tolist() == pytest.approx([0.06, 0.02 / 3])
    with pytest.raises(ValueError, match="two examples"):
        active_units(means[:1])


@pytest.mark.parametrize("variant, condition, quadrants", [
    ("vae", "none", None), ("cvae", "label", None), ("hybrid", "quadrants", 2), ("gsnn", "label", None),
    ("baseline", "quadrants", 1)])
def test_per_example_terms_average_to_evaluate(tiny_data, variant, condition, quadrants):
    extra = {"quadrants": quadrants} if condition == "quadrants" else {}
    model = tiny(variant, condition, **extra)
    per = per_example_terms(model, tiny_data, samples=8, quadrants=quadrants)
    assert all(v.shape == (len(tiny_data),) for k, v in per.items() if k != "kl_per_dim")
    assert ("kl_per_dim" in per) == (variant in ("vae", "cvae", "hybrid"))
    ref = evaluate(model, tiny_data, samples=8, quadrants=quadrants, diversity_n=2, diversity_examples=2)
    assert float(per["recon"].mean()) == pytest.approx(ref["recon"], rel=1e-5)
    assert float(per["kl"].mean()) == pytest.approx(ref["kl"], rel=1e-5, abs=1e-6)
    assert float(per["neg_elbo"].mean()) == pytest.approx(ref["neg_elbo"], rel=1e-5)
    if model.config.has_latent:
        assert float(per["nll_is"].mean()) == pytest.approx(ref["nll_is"], rel=1e-5)
    assert torch.allclose(per["gap"], per["neg_elbo"] - per["nll_is"])
    if variant == "baseline":  # deterministic: the bound is the likelihood
        assert torch.allclose(per["gap"], torch.zeros_like(per["gap"]), atol=1e-3)


def test_effective_sample_size_of_known_weights():
    for s in (1, 7, 1000):
        assert float(effective_sample_size(torch.full((s,), -3.2))) == pytest.approx(s)
    one = torch.tensor([0.0, -200.0, -200.0, -200.0])          # one sample carries all the weight
    assert float(effective_sample_size(one)) == pytest.approx(1.0)
    a = 0.8                                                    # two weights a and 1 - a: 1 / (a^2 + (1 - a)^2)
    two = torch.log(torch.tensor([a, 1 - a])) + 17.0
    assert float(effective_sample_size(two)) == pytest.approx(1 / (a * a + (1 - a) ** 2))
    batch = torch.stack([torch.zeros(5), torch.tensor([0.0, -1e3, -1e3, -1e3, -1e3])], dim=1)   # [S, B]
    assert effective_sample_size(batch).tolist() == pytest.approx([5.0, 1.0])


def test_sample_sizes_are_log_spaced_from_1_to_the_largest():
    sizes = sample_sizes(1000)
    assert sizes[0] == 1 and sizes[-1] == 1000 and sizes == sorted(set(sizes))
    ratios = np.diff(np.log10(sizes))
    assert ratios.max() < 0.5 and len(sizes) >= 10
    assert sample_sizes(1) == [1]
    with pytest.raises(ValueError):
        sample_sizes(0)


def test_a_posterior_equal_to_q_gives_ess_s_and_the_exact_likelihood():
    """A 1-D VAE whose decoder ignores z: the true posterior is the prior N(0, 1); with q = N(0, 1) as well
    every importance weight equals p(y), so ESS = S at every S and each estimate is exact."""
    model = one_d_model("vae", "none")
    with torch.no_grad():
        model.generation_net[0].weight[:, -1] = 0.0          # z no longer reaches the pixels
        model.recognition_net.body[-1].weight.zero_()        # q(z|y) = N(0, 1) for every y
        model.recognition_net.body[-1].bias.zero_()
    y, x = one_example(model)
    exact = float(exact_log_likelihood(model, y, x)[0])
    curve = importance_curve(model, y, x, sizes=[1, 10, 100, 1000])
    assert curve["ess"][:, 0] == pytest.approx([1, 10, 100, 1000], rel=1e-9)
    assert curve["nll"][:, 0] == pytest.approx([-exact] * 4, abs=1e-4)


def test_a_q_fitted_to_the_true_posterior_has_a_high_ess():
    model = one_d_model("cvae", "label")
    y, x = one_example(model)
    fit_q_to_posterior(model, y, x)
    exact = float(exact_log_likelihood(model, y, x)[0])
    curve = importance_curve(model, y, x, sizes=[1, 100, 1000])
    assert curve["ess"][-1, 0] > 0.8 * 1000
    assert curve["nll"][-1, 0] == pytest.approx(-exact, abs=0.02)
    # and a q pushed far from the posterior: a few samples carry the estimate
    with torch.no_grad():
        model.recognition_net.body[-1].bias[0] += 3.0
    bad = importance_curve(model, y, x, sizes=[1000])
    assert bad["ess"][-1, 0] < 0.2 * 1000


def test_aggregate_density_is_a_density():
    means = torch.tensor([[0.0, 0.0], [2.0, -1.0]])
    logvars = torch.log(torch.tensor([[0.5, 0.5], [1.0, 0.2]]))
    g = torch.linspace(-8, 8, 401)
    pts = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dens = aggregate_density(means, logvars, pts, chunk=1)
    cell = float(g[1] - g[0]) ** 2
    assert float(dens.sum()) * cell == pytest.approx(1.0, abs=1e-3)
    at_first_mean = 0.5 / (2 * math.pi * 0.5) + 0.5 * float(Normal(torch.tensor([2.0, -1.0]),
                                                                   torch.tensor([1.0, 0.2]).sqrt()).log_prob(
        torch.zeros(2)).sum().exp())
    assert float(aggregate_density(means, logvars, torch.zeros(1, 2))) == pytest.approx(at_first_mean, rel=1e-6)


def test_quantiles():
    q = quantiles(torch.arange(101.0))
    assert q["min"] == 0 and q["max"] == 100 and q["median"] == 50 and q["q05"] == 5 and q["mean"] == 50


def test_diagnose_report(tiny_data):
    model = tiny("cvae", "label")
    seen = []
    report = diagnose(model, tiny_data.subset(0, 60), samples=4, curve_images=3, curve_max=20,
                      progress=lambda what, done: seen.append(done))
    assert sum(report["kl_per_dim"]) == pytest.approx(report["kl"]) == pytest.approx(report["kl_in_objective"])
    assert report["kl_per_dim"] == pytest.approx(kl_per_dimension(model, tiny_data.subset(0, 60)).tolist())
    assert 0 <= report["active_units"] <= 3 and len(report["posterior_mean_variance"]) == 3
    assert set(report["per_example"]) == {"recon", "kl", "neg_elbo", "nll_is", "gap"}
    curve = report["is_vs_samples"]
    assert curve["samples"][0] == 1 and curve["samples"][-1] == 20 and curve["images"] == 3
    assert all(1 - 1e-9 <= e <= s + 1e-9 for e, s in zip(curve["ess"], curve["samples"]))
    assert seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.parametrize("variant, condition", [("baseline", "label"), ("gsnn", "label")])
def test_diagnose_says_what_does_not_apply(tiny_data, variant, condition):
    model = tiny(variant, condition)
    report = diagnose(model, tiny_data.subset(0, 20), samples=2, curve_images=2, curve_max=4)
    assert report["kl_per_dim"] is None and report["notes"]
    assert kl_unavailable_reason(model.config) in report["notes"]
    with pytest.raises(ValueError, match="KL"):
        kl_per_dimension(model, tiny_data)
    assert (report["is_vs_samples"] is None) == (variant == "baseline")


def test_diagnose_refuses_a_single_image(tiny_data):
    with pytest.raises(ValueError, match="two"):
        diagnose(tiny("vae"), ImageDataset(tiny_data.images[:1], tiny_data.labels[:1]))


def test_a_registered_objective_without_per_example_terms_still_trains_and_says_so(tiny_data):
    from vae_core import VARIANTS, Variant, TrainConfig, fit, losses
    from vae_core.diagnostics import diagnostics_unavailable_reason

    def batch_means_only(model, y, x, beta):
        return losses.elbo_objective(model, y, x, beta)
    VARIANTS["means_only"] = Variant("Means only", "a test objective", batch_means_only, ("recognition", "generation"),
                                     conditional=False)
    try:
        cfg = ModelConfig(variant="means_only", condition="none", latent_dim=2, **TINY)
        model = build_model(cfg)
        ref = tiny("vae", latent_dim=2)                     # the same weights, the built-in objective
        assert evaluate_loss(model, tiny_data) == pytest.approx(evaluate_loss(ref, tiny_data), rel=1e-5)
        result = fit(model, tiny_data.subset(0, 64), TrainConfig(epochs=1, batch_size=32))
        assert result.status == "completed"
        with pytest.raises(ValueError, match="per-example"):
            model.loss(torch.rand(2, 64), None, per_example=True)
        assert "batch means only" in diagnostics_unavailable_reason(cfg)
        with pytest.raises(ValueError, match="batch means only"):
            diagnose(model, tiny_data.subset(0, 10))
    finally:
        del VARIANTS["means_only"]

"""Words computed from the model (vae_core/verdicts.py): each rule on measured quantities where it holds and
where it does not, several on the shipped checkpoints' own stored latent means (issue 21)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_core.verdicts import (Bias, Measured, class_share, collapse_verdict, comparison_note, distinct_points,
                               latent_map_verdict, likelihood_verdict, map_is_informative, nll_bias,
                               same_z_verdict, time_promise)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def stored_means(name):
    path = CHECKPOINTS / f"{name}.safetensors"
    from vae_core import load_checkpoint
    _, record = load_checkpoint(path)
    return record.latent_means()


# ----------------------------------------------------------------------------- the latent map
def test_distinct_points_counts_places_not_rows():
    rng = np.random.default_rng(0)
    ten = np.repeat(rng.normal(size=(10, 2)), 100, axis=0) + rng.normal(0, 1e-7, (1000, 2))
    assert distinct_points(ten) == 10
    assert distinct_points(rng.normal(size=(1000, 2))) == 1000
    assert distinct_points(np.zeros((5, 2))) == 1


def test_the_shipped_label_gsnn_map_is_one_point_per_label_and_says_so():
    """Issue 21 item 1: the GSNN's 10,000 means sit on ten points; the banner must not promise style."""
    mu, labels = stored_means("mnist-label-gsnn")
    d = distinct_points(mu)
    assert d == 10
    v = latent_map_verdict(condition="label", distinct=d, n_points=len(mu), num_classes=10,
                           share=class_share(mu, labels), dataset="mnist")
    assert v.rule == "one_point_per_label" and v.tone == "warning"
    assert "only 10 points" in v.text and "style (" not in v.text
    assert not map_is_informative("label", d, 10)


def test_the_shipped_label_cvae_map_shows_style_with_the_measured_class_share():
    mu, labels = stored_means("mnist-label-cvae")
    d, share = distinct_points(mu), class_share(mu, labels)
    assert d > 1000 and 0.25 <= share < 0.6
    v = latent_map_verdict(condition="label", distinct=d, n_points=len(mu), num_classes=10, share=share,
                           dataset="mnist")
    assert v.rule == "label_model_style" and f"{share:.0%}" in v.text and "overlap in part" in v.text
    assert map_is_informative("label", d, 10)


def test_a_vae_map_clusters_by_class_and_fashion_words_follow_the_data_set():
    mu, labels = stored_means("fashion-vae-2d")
    share = class_share(mu, labels)
    v = latent_map_verdict(condition="none", distinct=distinct_points(mu), n_points=len(mu), num_classes=10,
                           share=share, dataset="fashion-mnist")
    assert v.rule == "classes_cluster" and "items of clothing" in v.text and "digit" not in v.text
    mixed = latent_map_verdict(condition="none", distinct=1000, n_points=1000, num_classes=10, share=0.1,
                               dataset="mnist")
    assert mixed.rule == "classes_mixed" and "10%" in mixed.text
    label_mixed = latent_map_verdict(condition="label", distinct=1000, n_points=1000, num_classes=10, share=0.1,
                                     dataset="fashion-mnist")
    assert "the colours overlap." in label_mixed.text and "shape, shade, pattern" in label_mixed.text


def test_class_share_is_one_for_one_spot_per_class_and_near_zero_for_mixed_classes():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 50)
    spots = np.repeat(rng.normal(size=(10, 2)) * 5, 50, axis=0)
    assert class_share(spots, labels) == pytest.approx(1.0)
    assert class_share(rng.normal(size=(500, 2)), labels) < 0.05


# ----------------------------------------------------------------------------- the likelihood estimate
SIZES = np.array([1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000])


def curve(offset_at_small: float, noise: float, images: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(130, 10, images)
    shape = offset_at_small * np.log10(1000 / SIZES) / 2             # 0 at S = 1,000
    return base[None, :] + shape[:, None] + rng.normal(0, noise, (len(SIZES), images))


def test_the_bias_direction_comes_from_the_curve():
    """Issue 21 item 3: a VAE whose NLL(S) lies above NLL(1,000) at small S must not be called 'biased low'."""
    above = nll_bias(SIZES, curve(0.6, 0.05))
    assert above.s_small == 10 and above.s_max == 1000 and above.direction == "above"
    below = nll_bias(SIZES, curve(-0.6, 0.05))
    assert below.direction == "below"
    level = nll_bias(SIZES, curve(0.0, 0.5))
    assert level.direction == "level"
    text = likelihood_verdict(ess_fraction=0.29, diversity=6.7, bias=above).text
    assert "above the one at S = 1,000" in text and "biased low" not in text
    assert "below the one at S = 1,000" in likelihood_verdict(ess_fraction=0.29, diversity=6.7, bias=below).text
    assert "no bias shows" in likelihood_verdict(ess_fraction=0.29, diversity=6.7, bias=level).text


def test_even_weights_of_a_model_that_ignores_z_are_not_called_a_good_posterior():
    """Issue 21 item 2: the GSNN's ESS/S is 100% because its decoder ignores z (diversity 0.01)."""
    flat = Bias(10, 1000, 0.003, 0.002)
    gsnn = likelihood_verdict(ess_fraction=0.998, diversity=0.0093, bias=flat)
    assert gsnn.rule == "z_ignored" and "close to the true posterior" not in gsnn.text
    assert "barely depends on z" in gsnn.text and "0.0093" in gsnn.text
    good = likelihood_verdict(ess_fraction=0.998, diversity=5.4, bias=flat)
    assert good.rule.startswith("even_weights") and "close to the true posterior" in good.text
    assert likelihood_verdict(ess_fraction=0.3, diversity=5.4, bias=flat).rule.startswith("uneven_weights")
    assert likelihood_verdict(ess_fraction=0.01, diversity=5.4, bias=flat).rule.startswith("degenerate_weights")


# ----------------------------------------------------------------------------- posterior collapse
def test_invisible_inactive_bars_are_not_called_grey_bars():
    """Issue 21 item 4: the 32-D quadrant CVAE's inactive dimensions carry 0.002 nats against 1.4 for the
    busiest; their bars cannot be seen, so the text must not point at them."""
    kl = np.array([1.414, 1.372, 1.179, 0.908, 0.390] + [0.002] * 10 + [0.008] * 17)
    variance = np.array([1.0] * 5 + [0.001] * 10 + [0.05] * 17)
    v = collapse_verdict(kl, variance, 0.01, learned_prior=True)
    assert v.rule == "inactive" and "10 of 32 dimensions are inactive" in v.text
    assert "too short to see" in v.text and "(grey bars)" not in v.text
    assert "17 more" in v.text and "follows the prior p(z|x)" in v.text
    visible = collapse_verdict(np.array([1.0, 0.3]), np.array([1.0, 0.001]), 0.01)
    assert "their bars are grey in the chart" in visible.text and "too short" not in visible.text


def test_all_active_and_a_vae_without_prior_following_dimensions():
    v = collapse_verdict(np.array([3.0, 2.5]), np.array([1.0, 0.9]), 0.01)
    assert v.rule == "all_active" and v.tone == "success"
    quiet = collapse_verdict(np.array([3.0, 0.001]), np.array([1.0, 0.5]), 0.01, learned_prior=False)
    assert quiet.rule == "all_active"          # an unconditional model: no p(z|x) for a dimension to follow
    follows = collapse_verdict(np.array([3.0, 0.001]), np.array([1.0, 0.5]), 0.01, learned_prior=True)
    assert follows.rule == "follows_prior" and "1 more (z2)" in follows.text


# ----------------------------------------------------------------------------- two checkpoints
def test_figures_measured_differently_are_flagged_and_alike_ones_are_not():
    """Issue 21 item 5: 10,000 images at S = 1,000 beside 500 images at S = 20."""
    shipped, app = Measured(10_000, 1000, "mnist"), Measured(500, 20, "mnist")
    note = comparison_note(shipped, app)
    assert note is not None and "10,000 test images (mnist) at S = 1,000" in note.text
    assert "500 test images (mnist) at S = 20" in note.text
    assert comparison_note(Measured(None, 100, "mnist"), Measured(None, 100, "mnist")) is not None
    assert comparison_note(Measured(1000, 100, "mnist"), Measured(1000, 100, "mnist")) is None
    assert comparison_note(Measured(1000, 100, "mnist"), Measured(1000, 100, "fashion-mnist")) is not None


def test_the_same_z_sentence_follows_relatedness_and_the_measured_distance():
    assert same_z_verdict(related=False, distance=6.0).rule == "separate"
    assert "rotation" in same_z_verdict(related=False, distance=6.0).text
    assert same_z_verdict(related=False, distance=0.2).rule == "separate_but_alike"
    assert same_z_verdict(related=True, distance=0.5).rule == "continued"
    assert same_z_verdict(related=False, distance=0.0, identical=True).rule == "same_file"
    assert "trained separately" not in same_z_verdict(related=False, distance=0.0, identical=True).text


# ----------------------------------------------------------------------------- promised times
def test_a_time_is_promised_only_when_measured():
    """Issue 21 item 6: 'about 25 seconds here' was a constant."""
    assert "second" not in time_promise(None) and "progress bar" in time_promise(None)
    assert time_promise(54.6) == "A run with these settings took 55 seconds on this server last time."
    assert "about 3 minutes" in time_promise(170)


def test_verdicts_never_import_a_screen():
    import vae_core.verdicts as v
    source = Path(v.__file__).read_text()
    assert "import streamlit" not in source and "import torch" not in source

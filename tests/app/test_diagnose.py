"""The Diagnose page (AppTest from app.py): every tab on every kind of fixture model and on every shipped
checkpoint without an exception, the sentences where a view does not apply, a dimension forced inactive,
a clicked table row, and the history and settings card without the data set."""
from __future__ import annotations

import pytest
import torch

from apptest_helpers import FIXTURE_MODELS, ROOT, errors_of, texts_of
from vae_core import (CheckpointRecord, ModelConfig, build_model, list_checkpoints, load_checkpoint,
                      save_checkpoint)

PAGE = "pages/diagnose.py"
TABS = ["Posterior collapse", "Aggregate posterior", "Per-example losses", "Likelihood estimate",
        "Training history", "Two checkpoints", "p(z|x) vs q(z|x,y)"]
SHIPPED = list_checkpoints(ROOT / "checkpoints")


def open_diagnose(at, model_name=None):
    at.switch_page(PAGE).run()
    if model_name is not None:
        picker = at.sidebar.selectbox[0]
        label = next(o for o in picker.options if o == model_name)  # the picker lists models by name
        picker.select(label).run()
    sizes = [w for w in at.sidebar.selectbox if w.key == "diagnose_images"]
    if sizes and sizes[0].value != 500:
        sizes[0].select("first 500").run()
    assert not errors_of(at)
    return at


def tab(at, name):
    at.session_state["diagnose_tab"] = name
    at.run()
    assert not errors_of(at), (name, errors_of(at))
    return at


def charts(at) -> int:
    return len(at.get("plotly_chart"))


@pytest.mark.parametrize("name", list(FIXTURE_MODELS))
def test_every_tab_on_every_kind_of_model(app, name):
    at = open_diagnose(app, name)
    for t in TABS:
        tab(at, t)


def test_posterior_collapse_of_a_2d_vae(app):
    at = open_diagnose(app, "vae_2d")
    labels = [m.label for m in at.metric]
    assert {"KL(q ‖ p), total", "Active units"} <= set(labels)
    kl_total = float(next(m for m in at.metric if m.label.startswith("KL")).value.split()[0])
    assert kl_total > 0
    assert charts(at) == 2  # the bars and the KL per dimension over the two training epochs
    assert "On the first 500 test images" in texts_of(at)


@pytest.mark.parametrize("name, words", [("baseline_quadrants", "no latent code"), ("gsnn_label", "no KL term")])
def test_models_without_a_kl_say_so(app, name, words):
    at = open_diagnose(app, name)
    assert words in texts_of(at)


def test_a_dimension_forced_inactive_is_named(app, tmp_path, monkeypatch):
    cfg = ModelConfig(variant="vae", condition="none", latent_dim=3, hidden_dims=(32,))
    model = build_model(cfg, seed=0)
    last = model.recognition_net.body[-1]
    with torch.no_grad():
        last.weight[[0, 2]] *= 50.0
        for row in (1, 4):  # z2: mean 0 and log-variance 0 for every image
            last.weight[row].zero_()
            last.bias[row] = 0.0
    folder = tmp_path / "dead"
    save_checkpoint(folder / "dead_dim.safetensors", model, CheckpointRecord(model_config=cfg, name="dead_dim"))
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    at = open_diagnose(app)
    text = texts_of(at)
    assert "1 of 3 dimensions is inactive (z2)" in text
    assert next(m for m in at.metric if m.label == "Active units").value == "2 of 3"
    assert "has no KL per dimension" in text  # no history stored in this file
    tab(at, "Training history")
    assert "stores no training history" in texts_of(at)


def test_aggregate_posterior_maps_and_histograms(app):
    at = tab(open_diagnose(app, "vae_2d"), "Aggregate posterior")
    assert charts(at) == 2 and "holes" in texts_of(at)
    at = tab(open_diagnose(app, "cvae_label"), "Aggregate posterior")
    at.selectbox(key="diagnose_agg_class").select("3").run()
    assert not errors_of(at) and "p(z | x = 3)" in texts_of(at)
    at = tab(open_diagnose(app, "vae_3d"), "Aggregate posterior")
    assert charts(at) == 1 and "no single 2-D map" in texts_of(at)


def test_per_example_table_and_a_clicked_row(app):
    at = tab(open_diagnose(app, "vae_2d"), "Per-example losses")
    table = at.dataframe[0].value
    assert len(table) == 500
    assert list(table.columns) == ["image", "label", "recon", "KL", "−ELBO", "NLL (IS)", "gap"]
    assert (table["−ELBO"].diff().dropna() <= 0).all()                  # worst first
    assert (table["−ELBO"] - table["recon"] - table["KL"]).abs().max() < 1e-3
    assert "No row selected yet" in texts_of(at)
    worst = int(table["image"].iloc[2])
    at.session_state["diagnose_table"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert not errors_of(at)
    assert f"Test image #{worst}" in texts_of(at)
    captions = [c for im in at.image for c in im.captions]
    assert "the selected test image" in captions and "its reconstruction" in captions
    assert charts(at) == 1  # where it sits on the 2-D map


def test_likelihood_estimate_curve(app):
    at = tab(open_diagnose(app, "cvae_label"), "Likelihood estimate")
    assert charts(at) == 1
    ess = next(m for m in at.metric if m.label.startswith("ESS"))
    assert 0 < float(ess.value.rstrip("%")) <= 100
    at = tab(open_diagnose(app, "baseline_quadrants"), "Likelihood estimate")
    assert "likelihood is exact" in texts_of(at)


def test_two_checkpoints_side_by_side(app):
    at = tab(open_diagnose(app, "cvae_label"), "Two checkpoints")
    at.selectbox(key="diagnose_other").select(
        next(o for o in at.selectbox(key="diagnose_other").options if o.startswith("hybrid_label"))).run()
    assert not errors_of(at)
    assert any("decoded by A (top row) and B (bottom row)" in c for im in at.image for c in im.captions)
    settings = at.dataframe[1].value
    assert "variant" in set(settings["setting"])
    at.selectbox(key="diagnose_other").select(
        next(o for o in at.selectbox(key="diagnose_other").options if o.startswith("baseline_quadrants"))).run()
    assert not errors_of(at) and "no common z" in texts_of(at)


def test_prior_against_posterior_of_a_cvae(app):
    at = tab(open_diagnose(app, "cvae_label"), "p(z|x) vs q(z|x,y)")
    kl = next(m for m in at.metric if m.label.startswith("KL(q(z|x,y)"))
    assert float(kl.value.split()[0]) >= 0 and charts(at) == 1
    at.number_input(key="diagnose_example").set_value(7).run()
    assert not errors_of(at)
    at = tab(open_diagnose(app, "vae_2d"), "p(z|x) vs q(z|x,y)")
    assert "has no condition x" in texts_of(at)


def test_without_data_the_history_and_settings_card_still_show(no_data, app):
    at = open_diagnose(app, "vae_2d")
    assert "needs the test set" in texts_of(at)
    assert charts(at) == 1  # KL per dimension over the epochs comes from the stored history
    tab(at, "Training history")
    assert charts(at) == 1
    assert [c.value for c in at.code] == ["tests/app/conftest.py"]
    settings = at.dataframe[0].value
    assert {"variant", "latent_dim", "epochs", "batch_size"} <= set(settings["setting"])
    for t in ("Aggregate posterior", "Per-example losses", "Likelihood estimate"):
        assert "needs the test set" in texts_of(tab(at, t))


@pytest.mark.parametrize("name, view, sentence, kind", [
    ("vae_2d", "Posterior collapse", "needs the test set", "warning"),
    ("vae_2d", "Aggregate posterior", "needs the test set", "warning"),
    ("vae_2d", "Per-example losses", "needs the test set", "warning"),
    ("vae_2d", "Likelihood estimate", "needs the test set", "warning"),
    ("vae_2d", "p(z|x) vs q(z|x,y)", "has no condition x", "info"),          # does not apply: said before no data
    ("baseline_quadrants", "Aggregate posterior", "no latent code", "info"),
    ("baseline_quadrants", "Likelihood estimate", "likelihood is exact", "info"),
])
def test_each_view_says_once_why_it_cannot_draw(no_data, app, name, view, sentence, kind):
    """One preamble per tab (ui/diagnose_tools.view_applies): the reason the view does not apply to this model
    (an info) wins over the missing data (a warning), and the tab shows exactly one of them."""
    at = tab(open_diagnose(app, name), view)
    infos, warnings = [i.value for i in at.info], [w.value for w in at.warning]
    shown = infos if kind == "info" else warnings
    assert len(infos) + len(warnings) == 1 and sentence in shown[0], (infos, warnings)


@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints in checkpoints/")
def test_every_shipped_model_opens(app, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(ROOT / "checkpoints"))
    at = open_diagnose(app)
    options = at.sidebar.selectbox[0].options
    assert len(options) == len(SHIPPED)
    for label in options:
        at.sidebar.selectbox[0].select(label).run()
        assert not errors_of(at), label
        for t in ("Posterior collapse", "Training history"):
            tab(at, t)
        tab(at, "Posterior collapse")


def test_fixture_histories_record_kl_per_dimension(model_dir):
    _, record = load_checkpoint(model_dir / "vae_2d.safetensors")
    assert len(record.history.epochs) == 2
    for epoch in record.history.epochs:
        assert len(epoch.kl_per_dim) == 2 and sum(epoch.kl_per_dim) == pytest.approx(epoch.eval["kl"], rel=1e-6)

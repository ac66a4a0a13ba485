"""The Compare CVAE vs GSNN page (AppTest from app.py), and its helpers in ui/compare_tools.py."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import torch

from apptest_helpers import errors_of, texts_of
from ui import compare_tools as ct
from vae_core import load_checkpoint, save_checkpoint

PAGE = "pages/compare.py"


def open_compare(app):
    app.switch_page(PAGE).run()
    assert not errors_of(app)
    return app


def model_folder(tmp_path, model_dir, names, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in names:
        shutil.copy(model_dir / f"{name}.safetensors", folder)
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    return folder


def test_label_samples_of_the_three_models_side_by_side(app):
    at = open_compare(app)
    assert at.title[0].value == "Compare CVAE vs GSNN"
    assert [s.value for s in at.subheader][:3] == ["GSNN", "CVAE", "Hybrid"]
    captions = [c for img in at.image for c in img.captions]
    for name in ("gsnn_label", "cvae_label", "hybrid_label"):
        assert any(c.startswith(f"{name} · diversity") for c in captions)
    before = at.image[0].value
    at.number_input(key="cmp_label_seed").set_value(3).run()
    assert at.image[0].value != before  # new noise, new samples


def test_quadrant_completion_rows_with_diversity(app):
    at = open_compare(app)
    captions = [c for img in at.image for c in img.captions]
    assert {"Input", "Truth", "Baseline NN"} <= set(captions)
    rows = [m.value for m in at.markdown if "diversity" in m.value]
    assert [r.split(" · ")[0] for r in rows] == ["**GSNN**", "**CVAE**", "**Hybrid**"]
    first = at.image[3].value  # the input
    at.radio(key="cmp_quadrants").set_value(3).run()
    assert not errors_of(at)
    assert at.image[3].value != first
    at.number_input(key="cmp_index").set_value(5).run()
    assert not errors_of(at)


def test_likelihood_table_has_every_quadrant_model_and_count(app):
    at = open_compare(app)
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["Baseline NN", "GSNN", "CVAE", "Hybrid"]
    for k, word in ((1, "quadrant"), (2, "quadrants"), (3, "quadrants")):
        for m in ("MC", "IS"):
            assert table[f"{k} {word}: {m}"].notna().all()
    assert "negative conditional log-likelihood" in texts_of(at)
    assert "stored in the checkpoint" in texts_of(at)


def test_without_data_the_label_part_and_the_stored_table_still_work(no_data, app):
    at = open_compare(app)
    assert any("was not found" in i.value for i in at.info)
    assert [s.value for s in at.subheader][:3] == ["GSNN", "CVAE", "Hybrid"]
    assert len(at.dataframe) == 1  # the fixture checkpoints store their likelihoods


def test_missing_models_are_named(app, model_dir, tmp_path, monkeypatch):
    model_folder(tmp_path, model_dir, ["cvae_label"], monkeypatch)
    at = open_compare(app)
    notes = " ".join(i.value for i in at.info)
    assert "GSNN, Hybrid" in notes and "label-conditioned" in notes
    assert "quadrant-completion model was found" in notes
    assert [s.value for s in at.subheader][:1] == ["CVAE"]


def test_likelihoods_are_computed_when_the_checkpoint_has_none(app, model_dir, tmp_path, monkeypatch):
    folder = model_folder(tmp_path, model_dir, [], monkeypatch)
    monkeypatch.setattr(ct, "NLL_IMAGES", 100)  # the page's 500 images x 100 samples, smaller for a quick test
    monkeypatch.setattr(ct, "NLL_SAMPLES", 20)
    model, record = load_checkpoint(model_dir / "gsnn_quadrants.safetensors")
    save_checkpoint(folder / "gsnn_plain.safetensors", model, dataclasses.replace(record, metrics={}))
    at = open_compare(app)
    table = at.dataframe[0].value
    assert table[[c for c in table.columns if "quadrant" in c]].notna().all(axis=None)
    assert f"computed here ({ct.NLL_IMAGES} test images, S = {ct.NLL_SAMPLES})" in texts_of(at)


# ----------------------------------------------------------------------------- helpers

def test_completions_keep_the_visible_pixels():
    truth = torch.arange(16, dtype=torch.uint8).reshape(4, 4) * 10
    x = ct.condition(truth, 2)  # left half visible
    filled = ct.completions(x, np.full((3, 16), 0.5))
    assert filled.shape == (3, 4, 4)
    np.testing.assert_allclose(filled[:, :, :2], np.broadcast_to(truth.numpy()[:, :2] / 255.0, (3, 4, 2)), atol=1e-6)
    assert (filled[:, :, 2:] == 0.5).all()
    rgb = ct.masked_rgb(x)
    assert tuple(rgb[0, 3]) == ct.HIDDEN_TINT


def test_wide_table_orders_like_the_paper_and_finding_compares_cvae_with_gsnn():
    long = pd.DataFrame([
        {"model": m, "variant": v, "visible quadrants": k, "NLL (MC)": mc, "NLL (IS)": mc - 1, "source": "s"}
        for m, v, base in (("c", "CVAE", 60.0), ("g", "GSNN", 90.0), ("b", "Baseline NN", 95.0))
        for k, mc in ((1, base), (2, base - 20))])
    wide = ct.wide_table(long)
    assert list(wide["variant"]) == ["Baseline NN", "GSNN", "CVAE"]
    assert list(wide.columns[2:]) == ["1 quadrant: MC", "1 quadrant: IS", "2 quadrants: MC", "2 quadrants: IS"]
    assert "lower than the GSNN's" in ct.finding(long)

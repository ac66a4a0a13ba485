"""A new variant is one entry in vae_core.models.VARIANTS: registered there alone (here, only inside the test),
it trains from the CLI with its own default β, is listed by the CLI's help, the Train page's Variant box (whose
β field starts at its default) and Home's tables, is named by Compare (as a column when it is conditional, in the
sentence about unconditional models when it is not) and is diagnosed by Diagnose. The β-VAE, the registry's own
example of this, starts the Train page's β field at 4 and trains with it."""
from __future__ import annotations

import os

import pytest

import vae_core.losses as losses
from apptest_helpers import APP, errors_of, run_a_tiny_job, texts_of
from vae_core import (VARIANTS, ModelConfig, TrainConfig, TrainingData, Variant, build_model, fit, load_dataset,
                      read_record, record_from_fit, save_checkpoint)
from vae_core.__main__ import main


def half_kl_objective(model, y, x, beta, per_example=False):
    """A toy objective: the ELBO with the KL counted at half weight."""
    return losses.elbo_objective(model, y, x, 0.5 * beta, per_example=per_example)


@pytest.fixture
def toy_variants():
    """Two variants that exist only in this test: an unconditional one with its own default β, and a
    conditional one (a CVAE by another name) that Compare must set beside the others."""
    VARIANTS["toy"] = Variant("Toy VAE", "a VAE whose KL counts half (a test of the registry)", half_kl_objective,
                              ("recognition", "generation"), conditional=False, default_beta=0.5)
    VARIANTS["toy-cond"] = Variant("Toy CVAE", "a conditional toy (a test of the registry)", losses.elbo_objective,
                                   ("prior", "recognition", "generation"))
    try:
        yield "toy", "toy-cond"
    finally:
        del VARIANTS["toy"], VARIANTS["toy-cond"]


def new_app(folder, monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not errors_of(app)
    return app


def test_a_registered_variant_reaches_the_cli_train_home_compare_and_diagnose(toy_variants, data_root, tmp_path,
                                                                               monkeypatch, capsys):
    # the CLI lists it with its default β, and trains it with that β
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "toy: a VAE whose KL counts half" in help_text and "0.5 for toy" in help_text
    out = tmp_path / "models" / "toy.safetensors"
    code = main(["train", "--variant", "toy", "--hidden-dims", "16", "--epochs", "1", "--train-limit", "256",
                 "--eval-samples", "2", "--test-limit", "50", "--quiet", "--data-dir", str(data_root),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = read_record(out)
    assert record.model_config.variant == "toy" and record.train_config.beta == 0.5

    # Home: its checkpoint in the models table, the variant in the family's table
    app = new_app(out.parent, monkeypatch)
    home = app.dataframe[0].value
    assert "toy" in {m.lstrip("★ ") for m in home["model"]} and "Toy VAE, 2-D latent" in set(home["what it is"])
    assert "| `toy` | Toy VAE | q(z\\|y) |" in texts_of(app)

    # Train: in the Variant box; picked, its description shows, no condition box, and β starts at 0.5
    app.switch_page("pages/train.py").run()
    assert not errors_of(app)
    box = app.selectbox(key="train_variant")
    assert "Toy VAE" in box.options and "Toy CVAE" in box.options
    box.set_value("toy").run()
    assert not errors_of(app)
    assert "a VAE whose KL counts half" in " ".join(c.value for c in app.caption)
    assert "train_condition" not in [s.key for s in app.selectbox]  # unconditional, as its registry entry says
    assert app.number_input(key="train_beta_toy").value == 0.5

    # Compare: named among the unconditional models it does not compare
    app.switch_page("pages/compare.py").run()
    assert not errors_of(app)
    assert "Toy VAE" in " ".join(c.value for c in app.caption if "Unconditional models" in c.value)

    # Diagnose: opens on it (the only model here), every figure of the first tab, and the β it trained with
    app.switch_page("pages/diagnose.py").run()
    assert not errors_of(app)
    assert {"KL(q ‖ p), total", "Active units"} <= {m.label for m in app.metric}
    assert "trained with β = 0.5" in texts_of(app)


def test_a_registered_conditional_variant_is_a_column_of_compare(toy_variants, data_root, tmp_path, monkeypatch):
    cfg = ModelConfig(variant="toy-cond", condition="label", latent_dim=2, hidden_dims=(16,))
    train = load_dataset("mnist", "train", data_root, download=False).subset(0, 256)
    test = load_dataset("mnist", "test", data_root, download=False).subset(0, 100)
    model, tcfg = build_model(cfg), TrainConfig(epochs=1, batch_size=64, device="cpu")
    result = fit(model, TrainingData(train, test), tcfg)
    folder = tmp_path / "models"
    save_checkpoint(folder / "toy_cond.safetensors", model, record_from_fit(cfg, tcfg, result, name="toy_cond"))

    app = new_app(folder, monkeypatch)
    app.switch_page("pages/compare.py").run()
    assert not errors_of(app)
    assert [s.value for s in app.subheader] == ["Toy CVAE"]   # its label samples, where the CVAE's would be
    assert any(c.startswith("toy_cond · diversity") for img in app.image for c in img.captions)
    label_note, quadrant_note = (next(i.value for i in app.info if what in i.value)
                                 for what in ("No label-conditioned", "No quadrant-completion Baseline"))
    assert "GSNN" in label_note and "Toy CVAE" not in label_note      # the others are missing here; it is not
    assert "Toy CVAE" in quadrant_note and "toy-cond" in quadrant_note  # and it is missing among quadrant models

    # Diagnose: it has a recognition net and a learned prior, so the p(z|x) vs q(z|x,y) view draws it
    app.switch_page("pages/diagnose.py").run()
    app.session_state["diagnose_tab"] = "p(z|x) vs q(z|x,y)"
    app.run()
    assert not errors_of(app)
    assert any(m.label == "KL(q(z|x,y) ‖ p(z|x))" for m in app.metric)


@pytest.fixture
def runs(tmp_path, model_dir, monkeypatch):
    """A fresh runs folder (its own job table); workers spawned at this test's priority (see test_train.py)."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", f"{folder}{os.pathsep}{model_dir}")
    monkeypatch.setenv("LATENT_LAB_WARM_WORKER", "0")
    monkeypatch.setenv("LATENT_LAB_WORKER_NICE", "0")
    yield folder
    from jobs.api import shutdown_all
    shutdown_all()


def beta_fields(at) -> dict[str, float]:
    """The β fields the page shows, by key: one at a time, that of the picked variant."""
    return {n.key: n.value for n in at.number_input if n.key.startswith("train_beta")}


def test_picking_the_beta_vae_starts_the_beta_field_at_4_and_trains_with_it(app, runs):
    app.switch_page("pages/train.py").run()
    assert beta_fields(app) == {"train_beta_vae": 1.0}                 # the default variant, the VAE
    app.selectbox(key="train_variant").set_value("beta-vae").run()
    assert not errors_of(app)
    assert beta_fields(app) == {"train_beta_beta-vae": 4.0}
    app.selectbox(key="train_variant").set_value("vae").run()
    app.number_input(key="train_beta_vae").set_value(0.5).run()        # a hand-set β of the VAE ...
    app.selectbox(key="train_variant").set_value("beta-vae").run()     # ... leaves the β-VAE's at 4
    assert beta_fields(app) == {"train_beta_beta-vae": 4.0}
    app.selectbox(key="train_variant").set_value("vae").run()          # ... and is kept for the VAE
    assert beta_fields(app) == {"train_beta_vae": 0.5}
    app.selectbox(key="train_variant").set_value("beta-vae").run()
    assert beta_fields(app) == {"train_beta_beta-vae": 4.0}
    assert "Will train a **beta-vae | 2-D latent** model" in texts_of(app)

    snap = run_a_tiny_job(app)
    assert snap.status == "completed", snap.message
    assert snap.model_config.variant == "beta-vae" and snap.train_config.beta == 4.0
    assert not errors_of(app)

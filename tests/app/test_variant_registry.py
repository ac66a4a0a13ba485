"""A new variant is one entry in vae_core.models.VARIANTS: registered there alone, it trains from the CLI,
is listed by the CLI's help and the Train page's Variant box, and its checkpoint shows on Home."""
from __future__ import annotations

import pytest

import vae_core.losses as losses
from apptest_helpers import APP, errors_of
from vae_core import VARIANTS, Variant, read_record
from vae_core.__main__ import main


def half_kl_objective(model, y, x, beta):
    """A toy objective: the ELBO with the KL counted at half weight."""
    return losses.elbo_objective(model, y, x, 0.5 * beta)


@pytest.fixture
def toy_variant():
    VARIANTS["toy"] = Variant("Toy VAE", "a VAE whose KL counts half (a test of the registry)", half_kl_objective,
                              ("recognition", "generation"), conditional=False)
    try:
        yield "toy"
    finally:
        del VARIANTS["toy"]


def test_a_registered_variant_reaches_the_cli_the_train_page_and_home(toy_variant, data_root, tmp_path,
                                                                       monkeypatch, capsys):
    # the CLI lists it and trains it
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "toy: a VAE whose KL counts half" in " ".join(capsys.readouterr().out.split())
    out = tmp_path / "models" / "toy.safetensors"
    code = main(["train", "--variant", "toy", "--hidden-dims", "16", "--epochs", "1", "--train-limit", "256",
                 "--eval-samples", "2", "--test-limit", "50", "--quiet", "--data-dir", str(data_root),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert read_record(out).model_config.variant == "toy"

    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(out.parent))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not errors_of(app)
    home = app.dataframe[0].value
    assert "toy" in set(home["name"]) and "Toy VAE, 2-D latent" in set(home["description"])

    app.switch_page("pages/train.py").run()
    assert not errors_of(app)
    box = app.selectbox(key="train_variant")
    assert "Toy VAE" in box.options
    box.set_value("toy").run()
    assert not errors_of(app)
    assert "a VAE whose KL counts half" in " ".join(c.value for c in app.caption)
    assert "train_condition" not in [s.key for s in app.selectbox]  # unconditional, as its registry entry says

"""The β-VAE, added as one registry entry (vae_core/models.py): a VAE whose KL weight defaults to 4 (Higgins et
al., 2017). Its default β flows through TrainConfig (beta None = the variant's), fit, the record and the CLI; an
explicit β wins; the evaluation figures are the true ELBO (β = 1) whatever β trained the model."""
import pytest

import vae_core.data as data_mod
from vae_core import (ENV_VAR, VARIANTS, ModelConfig, TrainConfig, build_model, evaluate, fit, read_record,
                      record_from_fit)
from vae_core.__main__ import main
from vae_core.checkpoints import load_checkpoint, save_checkpoint
from vae_core.record import CheckpointRecord

TINY = dict(image_size=8, hidden_dims=(32,))
TINY_TRAIN = ["--hidden-dims", "16", "--epochs", "1", "--batch-size", "64", "--eval-samples", "2",
              "--test-limit", "50", "--quiet"]


def test_the_registry_entry():
    kind = VARIANTS["beta-vae"]
    assert kind.title == "β-VAE" and kind.default_beta == 4.0
    assert not kind.conditional and kind.uses_kl and kind.has_latent and not kind.plain
    assert kind.objective is VARIANTS["vae"].objective and kind.nets == VARIANTS["vae"].nets  # only β differs


def test_config_accepts_it_unconditional_only():
    assert ModelConfig(variant="beta-vae").condition == "none"
    with pytest.raises(ValueError, match="unconditional"):
        ModelConfig(variant="beta-vae", condition="label")


def test_beta_none_is_the_variants_default_and_an_explicit_beta_wins():
    assert TrainConfig().beta is None
    assert TrainConfig().for_variant("beta-vae").beta == 4.0
    assert TrainConfig().for_variant("vae").beta == 1.0
    assert TrainConfig(beta=2.0).for_variant("beta-vae").beta == 2.0
    assert TrainConfig(beta=0.0).for_variant("beta-vae").beta == 0.0   # zero is a choice, not "unset"
    with pytest.raises(ValueError, match="for_variant"):
        TrainConfig().kl_weight(0)
    with pytest.raises(ValueError, match="beta"):
        TrainConfig(beta=float("nan"))


class KLWeights:
    def __init__(self):
        self.weights = []

    def on_step(self, info):
        self.weights.append(info.kl_weight)


@pytest.mark.parametrize("variant, beta, used", [("beta-vae", None, 4.0), ("beta-vae", 2.0, 2.0),
                                                  ("vae", None, 1.0)])
def test_fit_trains_with_the_resolved_beta_and_the_record_states_it(variant, beta, used, tiny_data):
    model_cfg, train_cfg = ModelConfig(variant=variant, **TINY), TrainConfig(epochs=1, batch_size=64, beta=beta)
    seen = KLWeights()
    result = fit(build_model(model_cfg), tiny_data, train_cfg, [seen])
    assert result.status == "completed" and seen.weights and set(seen.weights) == {used}
    assert record_from_fit(model_cfg, train_cfg, result).train_config.beta == used


def test_a_stored_beta_loads_unchanged(tmp_path):
    """Old checkpoints store beta explicitly (it defaulted to 1.0): reading one gives that number back, and a
    record without a beta at all (hand-made) reads as the variant's default, never as None."""
    vae = ModelConfig(**TINY)
    for variant, stored, expected in (("vae", 1.0, 1.0), ("beta-vae", 1.0, 1.0), ("beta-vae", None, 4.0)):
        cfg = vae.replace(variant=variant)
        train = {k: v for k, v in TrainConfig(beta=stored).to_dict().items() if k != "beta" or stored is not None}
        record = CheckpointRecord(model_config=cfg, train_config=train)
        path = save_checkpoint(tmp_path / f"{variant}-{stored}.safetensors", build_model(cfg), record)
        assert read_record(path).train_config.beta == expected


def test_evaluation_is_the_true_elbo_whatever_beta_trained_it(tiny_data):
    """The same weights as a β-VAE and as a VAE give the very same test figures: -ELBO at β = 1, IS NLL."""
    bvae = build_model(ModelConfig(variant="beta-vae", **TINY))
    fit(bvae, tiny_data, TrainConfig(epochs=1, batch_size=64))
    vae = build_model(ModelConfig(variant="vae", **TINY))
    vae.load_state_dict(bvae.state_dict())
    a, b = evaluate(bvae, tiny_data, samples=8), evaluate(vae, tiny_data, samples=8)
    assert a["neg_elbo"] == pytest.approx(b["neg_elbo"], rel=1e-6)
    assert a["nll_is"] == pytest.approx(b["nll_is"], rel=1e-6)
    assert a["neg_elbo"] == pytest.approx(a["recon"] + a["kl"], rel=1e-5)   # KL counted once, not four times


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_mod, "_try_download", lambda name: (_ for _ in ()).throw(RuntimeError("offline")))


@pytest.mark.parametrize("flags, used", [((), 4.0), (("--beta", "2"), 2.0)])
def test_cli_trains_a_beta_vae_with_beta_4_unless_told(flags, used, offline, fake_data_dir, tmp_path, capsys):
    out = tmp_path / "bvae.safetensors"
    code = main(["train", "--variant", "beta-vae", *flags, *TINY_TRAIN, "--data-dir", str(fake_data_dir),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"β = {used:g})" in err                      # the first line says which β it trains with
    record = read_record(out)
    assert record.model_config.variant == "beta-vae" and record.train_config.beta == used
    assert record.command.startswith("python -m vae_core train --variant beta-vae")
    model, _ = load_checkpoint(out)
    assert model.config.variant == "beta-vae"


def test_cli_help_says_the_beta_default_is_the_variants(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "beta-vae: unconditional VAE with a heavier KL weight" in text
    assert "the variant's: 1, or 4 for beta-vae" in text


def test_cli_refuses_a_negative_beta_in_one_line(capsys):
    assert main(["train", "--variant", "beta-vae", "--beta", "-1", "--out", "x.safetensors"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --beta") and "Traceback" not in err and len(err.splitlines()) == 1

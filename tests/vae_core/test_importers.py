"""Importers of VAEs trained by other code (vae_core/importers.py): each reference architecture is written here
from its published layer sizes, trained a few steps, saved as its own code saves it, imported, and must encode
and decode exactly as the original does (within 1e-6 on random inputs). A .pt carrying a pickled code gadget
runs nothing and is one sentence; the CLI writes a checkpoint with the model's source in its record."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import vae_core.data as data_mod
from vae_core import ENV_VAR, load_checkpoint, read_record
from vae_core.__main__ import main
from vae_core.importers import ForeignModelError, map_file, read_state_dict
from reference_vaes import (FcVAE, SeedKerasVAE, TimbmgVAE, fc_loss, keras_forward, keras_loss, timbmg_loss,
                            train_a_few_steps, write_keras_h5)

TOL = 1e-6


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_mod, "_try_download", lambda name: (_ for _ in ()).throw(RuntimeError("offline")))


@pytest.mark.parametrize("hidden, latent", [(400, 20), (512, 2)], ids=["pytorch-examples", "seed-notes"])
def test_fc_vae_encodes_and_decodes_as_the_original(tmp_path, hidden, latent):
    ref = train_a_few_steps(FcVAE(hidden, latent), fc_loss)
    torch.save(ref.state_dict(), tmp_path / "vae.pt")
    model, source, description = map_file("fc-vae", tmp_path / "vae.pt")
    cfg = model.config
    assert (cfg.variant, cfg.latent_dim, cfg.hidden_dims, cfg.image_size) == ("vae", latent, (hidden,), 28)
    assert source.kind == "fc-vae" and source.file == "vae.pt" and len(source.sha256) == 64
    assert f"784-{hidden}-{latent}" in description
    x, z = torch.rand(64, 784), torch.randn(64, latent) * 2
    with torch.no_grad():
        mu, logvar = model.encode(x)
        ref_mu, ref_logvar = ref.encode(x)
        assert torch.allclose(mu, ref_mu, atol=TOL, rtol=0) and torch.allclose(logvar, ref_logvar, atol=TOL, rtol=0)
        assert torch.allclose(model.decode(z), ref.decode(z), atol=TOL, rtol=0)
    assert (mu - ref_mu).abs().max() < TOL and not torch.equal(ref_mu, torch.zeros_like(ref_mu))


def test_fc_vae_with_other_names_or_unequal_hidden_layers_is_one_sentence(tmp_path):
    state = FcVAE(64, 2).state_dict()
    torch.save({k.replace("fc21", "mu"): v for k, v in state.items()}, tmp_path / "renamed.pt")
    with pytest.raises(ForeignModelError, match="not an fc1/fc21/fc22/fc3/fc4 VAE: missing fc21.bias, fc21.weight"):
        map_file("fc-vae", tmp_path / "renamed.pt")
    odd = FcVAE(64, 2)
    odd.fc3, odd.fc4 = nn.Linear(2, 32), nn.Linear(32, 784)
    torch.save(odd.state_dict(), tmp_path / "odd.pt")
    with pytest.raises(ForeignModelError, match="decoder's hidden layer .32. differs from its encoder's .64.*--module"):
        map_file("fc-vae", tmp_path / "odd.pt")


def test_a_checkpoint_dict_and_a_safetensors_file_are_read_too(tmp_path):
    from safetensors.torch import save_file
    ref = FcVAE(32, 2)
    torch.save({"epoch": 3, "model_state_dict": ref.state_dict()}, tmp_path / "ckpt.pt")
    save_file(ref.state_dict(), str(tmp_path / "w.safetensors"))
    for name in ("ckpt.pt", "w.safetensors"):
        state = read_state_dict(tmp_path / name)
        assert set(state) == set(ref.state_dict())


# ----------------------------------------------------------------------------- timbmg/VAE-CVAE-MNIST
@pytest.mark.parametrize("conditional", [True, False], ids=["cvae", "vae"])
@pytest.mark.parametrize("enc, dec", [([784, 256], [256, 784]), ([784, 128, 64], [64, 128, 784])],
                         ids=["repo-defaults", "two-hidden"])
def test_timbmg_models_encode_and_decode_as_the_original(tmp_path, conditional, enc, dec):
    ref = train_a_few_steps(TimbmgVAE(enc, 2, dec, conditional, 10 if conditional else 0), timbmg_loss)
    torch.save(ref.state_dict(), tmp_path / "timbmg.pt")
    model, source, description = map_file("timbmg", tmp_path / "timbmg.pt")
    cfg = model.config
    assert cfg.hidden_dims == tuple(enc[1:]) and cfg.latent_dim == 2 and source.kind == "timbmg"
    if conditional:
        assert (cfg.variant, cfg.condition, cfg.prior, cfg.num_classes) == ("cvae", "label", "standard", 10)
        assert "label CVAE" in description
    else:
        assert (cfg.variant, cfg.condition) == ("vae", "none")
    x, z = torch.rand(50, 784), torch.randn(50, 2) * 2
    c = torch.arange(50) % 10
    with torch.no_grad():
        mu, logvar = model.encode(x, c if conditional else None)
        ref_mu, ref_logvar = ref.encoder(x, c)
        assert (mu - ref_mu).abs().max() < TOL and (logvar - ref_logvar).abs().max() < TOL
        assert (model.decode(z, c if conditional else None) - ref.decoder(z, c)).abs().max() < TOL
        if conditional:  # the label matters, so the permuted columns are the right ones
            other = model.decode(z, (c + 1) % 10)
            assert (other - ref.decoder(z, c)).abs().max() > 1e-3
            assert (model.prior(model.features(c, 50), 50)[0] == 0).all()  # N(0, I), as timbmg samples


def test_timbmg_with_unmirrored_layers_is_one_sentence(tmp_path):
    torch.save(TimbmgVAE([784, 128], 2, [64, 784]).state_dict(), tmp_path / "t.pt")
    with pytest.raises(ForeignModelError, match=r"decoder's hidden layers \[64\] are not its encoder's \[128\]"):
        map_file("timbmg", tmp_path / "t.pt")
    torch.save(FcVAE(32, 2).state_dict(), tmp_path / "fc.pt")
    with pytest.raises(ForeignModelError, match="is not a timbmg/VAE-CVAE-MNIST model"):
        map_file("timbmg", tmp_path / "fc.pt")


# ----------------------------------------------------------------------------- Keras Dense VAE in HDF5
@pytest.mark.parametrize("keras3", [False, True], ids=["keras2-names", "keras3-names"])
def test_keras_h5_encodes_and_decodes_as_the_original(tmp_path, keras3):
    ref = train_a_few_steps(SeedKerasVAE(), keras_loss)
    path = write_keras_h5(tmp_path / "vae.h5", ref, keras3=keras3)
    model, source, description = map_file("keras-h5", path)
    assert (model.config.variant, model.config.latent_dim, model.config.hidden_dims) == ("vae", 2, (512,))
    assert source.kind == "keras-h5" and "checked against the file's model config" in description
    x, z = np.random.default_rng(0).random((40, 784), np.float32), np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    mu_k, log_sigma_k, out_k = keras_forward(path, x, z)
    with torch.no_grad():
        mu, logvar = model.encode(torch.from_numpy(x))
        decoded = model.decode(torch.from_numpy(z)).numpy()
        ref_mu, ref_log_sigma = ref.encode(torch.from_numpy(x))
    assert np.abs(mu.numpy() - mu_k).max() < TOL and np.abs(logvar.numpy() - log_sigma_k).max() < TOL
    assert np.abs(decoded - out_k).max() < TOL
    # log_sigma is the log-variance: the imported standard deviation is the seed's exp(log_sigma / 2)
    assert torch.allclose(torch.exp(0.5 * logvar), torch.exp(ref_log_sigma / 2), atol=TOL)
    assert torch.allclose(mu, ref_mu, atol=1e-5)


def test_keras_heads_named_log_sigma_and_mu_are_taken_by_name_and_weights_only_files_work(tmp_path):
    ref = train_a_few_steps(SeedKerasVAE(hidden=64), keras_loss)
    names = ["encoder_h", "z_log_sigma", "z_mu", "decoder_h", "decoder_out"]
    path = write_keras_h5(tmp_path / "named.h5", ref, names=names, swap_heads=True)
    model, _, description = map_file("keras-h5", path)
    assert "heads z_mu = mean, z_log_sigma = log-variance" in description
    x = np.random.default_rng(0).random((8, 784), np.float32)
    mu_k, log_sigma_k, _ = keras_forward(path, x, np.zeros((8, 2), np.float32),
                                         order=("encoder_h", "z_mu", "z_log_sigma", "decoder_h", "decoder_out"))
    mu, logvar = model.encode(torch.from_numpy(x))
    assert np.abs(mu.detach().numpy() - mu_k).max() < TOL and np.abs(logvar.detach().numpy() - log_sigma_k).max() < TOL
    weights_only = write_keras_h5(tmp_path / "weights.h5", ref, with_config=False)
    _, _, description = map_file("keras-h5", weights_only)
    assert "weights-only file" in description


def test_keras_with_other_activations_or_layers_is_one_sentence(tmp_path):
    ref = SeedKerasVAE(hidden=32)
    path = write_keras_h5(tmp_path / "vae.h5", ref)
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = str(f.attrs["model_config"]).replace('"relu"', '"tanh"', 1).encode()
    with pytest.raises(ForeignModelError, match="layer 'dense_1' uses the activation 'tanh'"):
        map_file("keras-h5", path)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ForeignModelError, match="is not a readable HDF5 file"):
        map_file("keras-h5", tmp_path / "junk.h5")


# ----------------------------------------------------------------------------- files that would run code
class Gadget:
    """Unpickling this runs `touch MARKER` (a __reduce__ gadget, as a hostile .pt file would carry)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_payload_runs_no_code_and_is_one_sentence(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    torch.save({"fc1.weight": torch.zeros(2, 2), "evil": Gadget(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ForeignModelError) as e:
        read_state_dict(tmp_path / "evil.pt")
    assert "ran none of it" in str(e.value) and "\n" not in str(e.value)
    code = main(["import", "--from", "fc-vae", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: evil.pt holds more than weights")
    assert not marker.exists(), "loading the file ran its code"
    assert not (tmp_path / "x.safetensors").exists()


def test_a_whole_pickled_model_is_refused_with_the_fix(tmp_path):
    torch.save(FcVAE(16, 2), tmp_path / "whole.pt")
    with pytest.raises(ForeignModelError, match=r"save the weights with torch.save\(model.state_dict\(\), path\)"):
        read_state_dict(tmp_path / "whole.pt")


# ----------------------------------------------------------------------------- the CLI
def test_cli_imports_a_file_with_its_figures_and_source(tmp_path, fake_data_dir, capsys):
    ref = train_a_few_steps(FcVAE(64, 2), fc_loss)
    torch.save(ref.state_dict(), tmp_path / "examples-vae.pt")
    out = tmp_path / "models" / "pytorch-vae.safetensors"
    code = main(["import", "--from", "fc-vae", str(tmp_path / "examples-vae.pt"), "--out", str(out), "--name",
                 "PyTorch examples VAE", "--eval-samples", "4", "--test-limit", "50", "--quiet",
                 "--data-dir", str(fake_data_dir)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "open it with: LATENT_LAB_MODEL_DIRS=" in err
    model, record = load_checkpoint(out)
    assert record.name == "PyTorch examples VAE" and record.source.kind == "fc-vae"
    assert record.source.file == "examples-vae.pt" and record.origin().startswith("imported from examples-vae.pt")
    assert record.command.startswith("python -m vae_core import --from fc-vae")
    assert {"neg_elbo", "nll_is"} <= set(record.metrics) and record.metrics_test1000["samples"] == 4
    assert record.latent_means()[0].shape == (100, 2)  # the whole (fake) test set, for the latent map
    x = torch.rand(5, 784)
    assert (model.encode(x)[0] - ref.encode(x)[0]).abs().max() < TOL


@pytest.mark.parametrize("argv, words", [
    (["--from", "fc-vae"], "--from fc-vae needs the file to import"),
    (["--from", "fc-vae", "a.pt", "--module", "m.py:build"], "give either --from KIND SRC or --module"),
    (["--module", "missing.py:build"], "there is no Python file at missing.py"),
    (["--module", "nofunction"], "--module takes FILE.py:FUNCTION"),
    (["--from", "keras-h5", "missing.h5"], "there is no file at missing.h5"),
])
def test_cli_import_mistakes_are_one_line(tmp_path, capsys, argv, words):
    code = main(["import", *argv, "--out", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_info_prints_where_an_imported_model_came_from(tmp_path, fake_data_dir, capsys):
    torch.save(FcVAE(16, 2).state_dict(), tmp_path / "v.pt")
    out = tmp_path / "v.safetensors"
    assert main(["import", "--from", "fc-vae", str(tmp_path / "v.pt"), "--out", str(out), "--eval-samples", "0",
                 "--data-dir", str(fake_data_dir), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "source       imported from v.pt (a PyTorch fc1/fc21/fc22/fc3/fc4 VAE), sha256 " in capsys.readouterr().out
    assert read_record(out).metrics == {}

"""The CLI: train writes a checkpoint, eval --json prints one JSON object, info works; user errors exit 2
with one 'error:' line and no traceback. Runs on a synthetic 28x28 data folder (no network)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vae_core.data as data_mod
from vae_core import ENV_VAR, load_checkpoint, read_record
from vae_core.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = ["--hidden-dims", "32", "--epochs", "2", "--batch-size", "64", "--eval-samples", "4", "--quiet"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)

    def no_download(name):
        raise RuntimeError("the tests never download")
    monkeypatch.setattr(data_mod, "_try_download", no_download)


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


@pytest.fixture
def trained(fake_data_dir, tmp_path, capsys):
    out = tmp_path / "models" / "tiny-cvae.safetensors"
    code, _, err = run_main(capsys, "train", "--variant", "cvae", "--condition", "label", *TINY_TRAIN,
                            "--data-dir", fake_data_dir, "--out", out)
    assert code == 0, err
    return out


def test_train_writes_a_checkpoint(trained, fake_data_dir):
    model, record = load_checkpoint(trained)
    assert record.model_config.variant == "cvae" and record.model_config.hidden_dims == (32,)
    assert record.status == "completed" and record.epochs_completed == 2
    assert record.train_config.epochs == 2 and record.dataset == "mnist"
    assert "--variant cvae" in record.command and record.name == "tiny-cvae"
    assert len(record.history.loss) == 2 * 5 and len(record.history.epochs) == 2
    assert {"neg_elbo", "nll_is", "nll_mc", "diversity"} <= set(record.metrics)
    # a 2-D label model carries the test set's latent means for the latent map
    assert record.extras["test_latent_means"].shape == (100, 2)
    assert torch.equal(record.extras["test_labels"], torch.as_tensor(
        __import__("vae_core").load_dataset("mnist", "test", fake_data_dir).labels))


def test_train_a_quadrant_model_in_float16(fake_data_dir, tmp_path, capsys):
    out = tmp_path / "q.safetensors"
    code, _, err = run_main(capsys, "train", "--variant", "gsnn", "--condition", "quadrants", "--quadrants", "0",
                            *TINY_TRAIN, "--float16", "--data-dir", fake_data_dir, "--out", out)
    assert code == 0, err
    record = read_record(out)
    assert record.storage_dtype == "float16"
    assert set(record.metrics) == {"q1", "q2", "q3"}


def test_eval_json_prints_one_object(trained, fake_data_dir, capsys):
    code, out, _ = run_main(capsys, "eval", trained, "--json", "--samples", "4", "--data-dir", fake_data_dir)
    assert code == 0
    assert len(out.strip().splitlines()) == 1
    record = json.loads(out)
    assert record["model"] == "cvae | label | 2-D latent" and record["dataset"] == "mnist"
    metrics = record["metrics"]
    assert metrics["samples"] == 4
    assert all(isinstance(metrics[k], float) for k in ("neg_elbo", "recon", "kl", "nll_is", "nll_mc"))
    assert metrics["neg_elbo"] == pytest.approx(metrics["recon"] + metrics["kl"], rel=1e-6)


def test_eval_plain_text_and_info(trained, fake_data_dir, capsys):
    code, out, _ = run_main(capsys, "eval", trained, "--samples", "4", "--limit", "20", "--data-dir",
                            fake_data_dir)
    assert code == 0 and "neg_elbo" in out and "cvae | label" in out
    code, out, _ = run_main(capsys, "info", trained)
    assert code == 0
    assert "cvae | label | 2-D latent" in out and "model config" in out and "completed" in out


@pytest.mark.parametrize("argv, words", [
    (["train", "--lr", "-1", "--out", "x.safetensors"], "lr"),
    (["train", "--lr", "0", "--out", "x.safetensors"], "lr"),
    (["train", "--batch-size", "0", "--out", "x.safetensors"], "batch_size"),
    (["train", "--latent-dim", "0", "--out", "x.safetensors"], "latent_dim"),
    (["train", "--variant", "hybrid", "--condition", "label", "--alpha", "1.5", "--out", "x.safetensors"],
     "alpha"),
    (["train", "--variant", "vae", "--condition", "label", "--out", "x.safetensors"], "condition"),
    (["train", "--variant", "cvae", "--out", "x.safetensors"], "condition"),
    (["train", "--epochs", "two", "--out", "x.safetensors"], "epochs"),
    (["train", "--epochs", "1"], "--out"),
    (["train", "--no-such-flag", "--out", "x.safetensors"], "no-such-flag"),
    (["frobnicate"], "frobnicate"),
    ([], "command"),
    (["eval", "missing.safetensors"], "No checkpoint file"),
    (["info", "missing.safetensors"], "No checkpoint file"),
])
def test_user_errors_exit_2_with_one_line(argv, words, capsys):
    code, out, err = run_main(capsys, *argv)
    assert_one_error_line(code, err)
    assert words in err
    assert not Path("x.safetensors").exists()


def test_missing_data_exits_2(tmp_path, capsys):
    code, _, err = run_main(capsys, "train", "--epochs", "1", "--data-dir", tmp_path / "empty", "--out", "x")
    assert_one_error_line(code, err)
    assert "train-images-idx3-ubyte" in err


def test_damaged_checkpoint_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(os.urandom(100))
    for command in ("eval", "info"):
        code, _, err = run_main(capsys, command, bad)
        assert_one_error_line(code, err)
        assert "bad.safetensors" in err


def test_diverged_training_exits_nonzero_without_a_file(fake_data_dir, tmp_path, capsys):
    out = tmp_path / "diverged.safetensors"
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--lr", "1e6", "--data-dir", fake_data_dir,
                            "--out", out)
    assert code == 1 and "diverged" in err and "Traceback" not in err
    assert not out.exists()


def test_module_entry_point_errors_cleanly(tmp_path):
    """The real `python -m vae_core` process: exit 2, one 'error:' line on stderr, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(ENV_VAR, None)
    proc = subprocess.run([sys.executable, "-m", "vae_core", "train", "--lr", "-1", "--out", "x"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: lr") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""

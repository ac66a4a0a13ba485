"""`python -m vae_core diagnose`: the JSON object's figures agree with `eval` and with the per-epoch history,
the plain-text report names what it shows, and bad input exits 2 with one line. In-process main(), on the
synthetic 28x28 data folder of test_cli.py (no network)."""
import json

import pytest

from test_cli import TINY_TRAIN, assert_one_error_line, offline, run_main, trained  # noqa: F401 (fixtures)
from vae_core import load_checkpoint, load_dataset
from vae_core.evaluation import evaluate


def test_diagnose_json(trained, fake_data_dir, capsys):  # noqa: F811
    code, out, err = run_main(capsys, "diagnose", trained, "--json", "--samples", "4", "--limit", "60",
                              "--curve-images", "5", "--data-dir", fake_data_dir)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1
    r = json.loads(out)
    model, record = load_checkpoint(trained)
    ref = evaluate(model, load_dataset("mnist", "test", fake_data_dir).subset(0, 60), samples=4,
                   diversity_n=2, diversity_examples=2)
    assert len(r["kl_per_dim"]) == 2 and all(v >= 0 for v in r["kl_per_dim"])
    assert sum(r["kl_per_dim"]) == pytest.approx(ref["kl"], rel=1e-5)      # sums to the model's test KL
    assert 0 <= r["active_units"] <= 2 and r["images"] == 60
    assert r["per_example"]["neg_elbo"]["mean"] == pytest.approx(ref["neg_elbo"], rel=1e-5)
    assert r["per_example"]["nll_is"]["mean"] == pytest.approx(ref["nll_is"], rel=1e-5)
    q = r["per_example"]["recon"]
    assert q["min"] <= q["q05"] <= q["median"] <= q["q95"] <= q["max"]
    curve = r["is_vs_samples"]
    assert curve["samples"][0] == 1 and curve["samples"][-1] == 1000 and curve["images"] == 5
    assert len(curve["nll"]) == len(curve["ess"]) == len(curve["samples"])
    assert all(1 - 1e-6 <= e <= s + 1e-6 for e, s in zip(curve["ess"], curve["samples"]))
    # the progress bar went to stderr, not into the JSON
    assert "%" in err
    # training recorded the KL of each dimension every epoch, adding up to the epoch's KL
    assert len(record.history.epochs) == 2
    for epoch in record.history.epochs:
        assert len(epoch.kl_per_dim) == 2
        assert sum(epoch.kl_per_dim) == pytest.approx(epoch.eval["kl"], rel=1e-6)


def test_diagnose_plain_text(trained, fake_data_dir, capsys):  # noqa: F811
    code, out, _ = run_main(capsys, "diagnose", trained, "--samples", "2", "--limit", "30", "--curve-images", "2",
                            "--quiet", "--data-dir", fake_data_dir)
    assert code == 0
    assert "KL per dimension" in out and "active units:" in out and "nll_is" in out and "ESS" in out


def test_diagnose_a_quadrant_baseline_says_what_does_not_apply(fake_data_dir, tmp_path, capsys):
    out = tmp_path / "base.safetensors"
    code, _, err = run_main(capsys, "train", "--variant", "baseline", "--condition", "quadrants", *TINY_TRAIN,
                            "--data-dir", fake_data_dir, "--out", out)
    assert code == 0, err
    code, text, _ = run_main(capsys, "diagnose", out, "--json", "--samples", "2", "--limit", "20",
                             "--quadrants", "3", "--quiet", "--data-dir", fake_data_dir)
    r = json.loads(text)
    assert code == 0 and r["kl_per_dim"] is None and r["is_vs_samples"] is None and r["quadrants"] == 3
    assert any("deterministic" in n for n in r["notes"])
    assert r["per_example"]["gap"]["max"] == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("extra, words", [
    (["--samples", "0"], "--samples"), (["--limit", "1"], "two test images"), (["--limit", "-3"], "--limit"),
    (["--quadrants", "2"], "quadrant models only")])
def test_diagnose_bad_input_exits_2(trained, fake_data_dir, capsys, extra, words):  # noqa: F811
    code, _, err = run_main(capsys, "diagnose", trained, *extra, "--data-dir", fake_data_dir)
    assert_one_error_line(code, err)
    assert words in err


def test_diagnose_a_missing_file_exits_2(capsys):
    code, _, err = run_main(capsys, "diagnose", "missing.safetensors")
    assert_one_error_line(code, err)
    assert "No checkpoint file" in err


def test_diagnose_draws_its_finished_bar_once(trained, fake_data_dir, capsys, monkeypatch):  # noqa: F811
    import time

    from vae_core import diagnostics
    real = diagnostics.diagnose

    def slow_end(*args, progress, **kwargs):  # the last step comes after tqdm's redraw interval, as in a real run
        def report(what, done):
            if done >= 1:
                time.sleep(0.3)
            progress(what, done)
        return real(*args, progress=report, **kwargs)

    monkeypatch.setattr(diagnostics, "diagnose", slow_end)
    code, _, err = run_main(capsys, "diagnose", trained, "--json", "--samples", "2", "--limit", "30",
                            "--curve-images", "2", "--data-dir", fake_data_dir)
    assert code == 0, err
    frames = [f for f in err.replace("\r", "\n").splitlines() if f.strip()]  # each redraw of the bar
    assert sum("100%" in f for f in frames) == 1, frames
    assert frames[-1].startswith("done: 100%")

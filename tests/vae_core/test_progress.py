"""Progress of the final likelihood evaluation: vae_core.evaluate reports its work through a callback (the core
never prints), the reported amounts add up to evaluation_work(...), and the CLI turns them into a tqdm bar on
stderr for `train` and `eval` (none with --quiet). The default --test-limit keeps a quick run quick."""
import re

import pytest

import vae_core.data as data_mod
from vae_core import ENV_VAR, ImageDataset, ModelConfig, build_model, evaluate, evaluation_work, read_record
from vae_core.__main__ import QUICK_TEST_IMAGES, main

TINY = dict(hidden_dims=(16,), image_size=8)


@pytest.mark.parametrize("variant, condition, quadrants", [
    ("vae", "none", None), ("cvae", "label", None), ("hybrid", "quadrants", 2), ("baseline", "quadrants", 1)])
def test_evaluate_reports_all_its_work_in_order(variant, condition, quadrants, tiny_data):
    model = build_model(ModelConfig(variant=variant, condition=condition, **TINY))
    data = ImageDataset(tiny_data.images[:120], tiny_data.labels[:120], "synthetic", "test")
    seen = []
    metrics = evaluate(model, data, samples=60, quadrants=quadrants, progress=seen.append)
    total = evaluation_work(model.config, len(data), 60)
    assert sum(seen) == total
    # a bar that moves: S = 60 draws are two chunks (the deterministic baseline needs one pass per batch)
    assert all(n > 0 for n in seen) and len(seen) >= (2 if variant == "baseline" else 3)
    # the same figures with and without a progress callback
    assert metrics == evaluate(model, data, samples=60, quadrants=quadrants)


def test_evaluation_work_counts_images_and_draws():
    vae, cvae = ModelConfig(**TINY), ModelConfig(variant="cvae", condition="label", **TINY)
    base = ModelConfig(variant="baseline", condition="quadrants", **TINY)
    assert evaluation_work(vae, 10, 100) == 10 * (1 + 100)          # loss pass + IS
    assert evaluation_work(cvae, 10, 100) == 10 * (1 + 2 * 100)     # loss pass + IS + MC
    assert evaluation_work(base, 10, 100) == 10 * (1 + 100)         # loss pass + MC (exact)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_mod, "_try_download", lambda name: (_ for _ in ()).throw(RuntimeError("no download")))


def _bar_lines(err: str) -> list[str]:
    return [part for part in re.split(r"[\r\n]+", err) if part.startswith("evaluating")]


def _train(capsys, fake_data_dir, tmp_path, *extra):
    out = tmp_path / "m.safetensors"
    code = main(["train", "--variant", "cvae", "--condition", "label", "--hidden-dims", "16", "--epochs", "1",
                 "--batch-size", "100", "--eval-samples", "5", "--data-dir", str(fake_data_dir),
                 "--out", str(out), *extra])
    _, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_train_shows_a_bar_for_the_final_evaluation(offline, fake_data_dir, tmp_path, capsys):
    out, err = _train(capsys, fake_data_dir, tmp_path)
    bars = _bar_lines(err)
    assert bars, err
    # 100 fake test images, cvae: loss pass + IS + MC with S = 5, metrics computed once (the default limit, 1,000, covers all 100)
    total = evaluation_work(read_record(out).model_config, 100, 5)
    assert "100%" in bars[-1] and f"/{total / 1000:.2f}k" in bars[-1].replace(" ", ""), bars[-1]
    assert err.index("evaluating") > err.index("completed: trained 1 epochs")


def test_quiet_train_has_no_bars(offline, fake_data_dir, tmp_path, capsys):
    out, err = _train(capsys, fake_data_dir, tmp_path, "--quiet")
    assert _bar_lines(err) == [] and "step/s" not in err and "it/s" not in err
    assert read_record(out).metrics["samples"] == 5


def test_eval_shows_a_bar_on_stderr_only(offline, fake_data_dir, tmp_path, capsys):
    ckpt, _ = _train(capsys, fake_data_dir, tmp_path, "--quiet")
    code = main(["eval", str(ckpt), "--json", "--samples", "3", "--data-dir", str(fake_data_dir)])
    out, err = capsys.readouterr()
    assert code == 0 and "evaluating" not in out
    assert "100%" in _bar_lines(err)[-1]
    code = main(["eval", str(ckpt), "--json", "--samples", "3", "--quiet", "--data-dir", str(fake_data_dir)])
    out, err = capsys.readouterr()
    assert code == 0 and _bar_lines(err) == []


def test_default_test_limit_keeps_a_quick_run_quick(offline, fake_data_dir, tmp_path, capsys, monkeypatch):
    """The final metrics default to the first QUICK_TEST_IMAGES test images; --test-limit 0 means all."""
    import vae_core.__main__ as cli
    sizes = []
    real = cli.checkpoint_metrics
    monkeypatch.setattr(cli, "checkpoint_metrics",
                        lambda model, data, *a, **k: sizes.append(len(data)) or real(model, data, *a, **k))
    monkeypatch.setattr(cli, "QUICK_TEST_IMAGES", 40)  # the fake test split has only 100 images
    monkeypatch.setattr(cli, "CHECK_IMAGES", 40)
    out, _ = _train(capsys, fake_data_dir, tmp_path, "--quiet")
    assert sizes == [40]  # computed once: the default limit is the re-check subset
    record = read_record(out)
    assert record.metrics == record.metrics_test1000
    sizes.clear()
    _train(capsys, fake_data_dir, tmp_path, "--quiet", "--test-limit", "0")
    assert sizes == [100, 40]  # the whole test split, then the re-check subset
    assert QUICK_TEST_IMAGES == 1000


def test_a_whole_float_sample_count_is_accepted(tiny_data):
    """A count stored as 100.0 in a checkpoint's JSON evaluates as 100; a fractional one is refused."""
    model = build_model(ModelConfig(**TINY))
    data = ImageDataset(tiny_data.images[:50], tiny_data.labels[:50], "synthetic", "test")
    assert evaluate(model, data, samples=4.0) == evaluate(model, data, samples=4)
    with pytest.raises(ValueError, match="whole number"):
        evaluate(model, data, samples=2.5)

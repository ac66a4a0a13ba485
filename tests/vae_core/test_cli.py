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
    assert set(record.metrics) == {"q1", "q2", "q3", "test_images"}


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
    assert code == 0 and "cvae | label" in out
    # issue 21 item 9: human names with units, counts whole (was "neg_elbo   134.327", "samples 1000")
    assert "−ELBO (nats per image)" in out and "neg_elbo" not in out
    assert "samples S per image" in out and "test images" in out
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


def test_cli_and_model_config_share_one_default_size():
    """The CLI's --hidden-dims default is ModelConfig's, DEFAULT_HIDDEN_DIMS (the Train page starts there too)."""
    from vae_core.__main__ import make_parser
    from vae_core.config import DEFAULT_HIDDEN_DIMS
    from vae_core import ModelConfig
    args = make_parser().parse_args(["train", "--out", "x.safetensors"])
    assert tuple(args.hidden_dims) == ModelConfig().hidden_dims == DEFAULT_HIDDEN_DIMS == (256, 256)


def test_init_from_continues_from_a_checkpoint(trained, fake_data_dir, tmp_path, capsys):
    """--init-from starts from the file's weights (a near-zero learning rate leaves them where they were);
    without it training starts from fresh weights; a file of another model config is refused with one line."""
    source, _ = load_checkpoint(trained)
    base = ["train", "--variant", "cvae", "--condition", "label", *TINY_TRAIN, "--lr", "1e-12",
            "--data-dir", fake_data_dir]
    code, _, err = run_main(capsys, *base, "--init-from", trained, "--out", tmp_path / "cont.safetensors")
    assert code == 0, err
    cont, record = load_checkpoint(tmp_path / "cont.safetensors")
    assert "--init-from" in record.command
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(source.state_dict().values(),
                                                               cont.state_dict().values()))
    code, _, err = run_main(capsys, *base, "--out", tmp_path / "fresh.safetensors")
    fresh, _ = load_checkpoint(tmp_path / "fresh.safetensors")
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(source.state_dict().values(),
                                                                   fresh.state_dict().values()))
    code, _, err = run_main(capsys, "train", "--variant", "cvae", "--condition", "label", "--hidden-dims", "16",
                            "--epochs", "1", "--data-dir", fake_data_dir, "--init-from", trained,
                            "--out", tmp_path / "bad.safetensors")
    assert_one_error_line(code, err)
    assert "--init-from" in err and not (tmp_path / "bad.safetensors").exists()


# ----------------------------------------------------------------------------- bad input before any work

@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the command gets as far as loading data (the checks must come first)."""
    import vae_core.__main__ as cli

    def too_far(*args, **kwargs):
        raise AssertionError("the command started work before refusing its arguments")
    monkeypatch.setattr(cli, "prepare_data", too_far)


@pytest.mark.parametrize("out, words", [
    ("", "--out is empty"),
    ("models/", "names a folder"),
    ("{folder}", "is a folder"),
    ("{file}/model.safetensors", "is a file, not a folder"),
    ("/proc/latent-lab/model.safetensors", "cannot be written"),
    ("/proc/self/model", "cannot be written"),
])
def test_a_bad_out_is_refused_before_training_with_a_sentence(out, words, tmp_path, capsys, no_training):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    out = out.format(folder=tmp_path / "a-folder", file=tmp_path / "a-file")
    code, _, err = run_main(capsys, "train", "--epochs", "1", "--out", out)
    assert_one_error_line(code, err)
    assert words in err and "Errno" not in err


@pytest.mark.parametrize("argv, words", [
    (["train", "--seed", str(2**70), "--out", "x"], "--seed: must be a whole number from 0"),
    (["train", "--seed", "-1", "--out", "x"], "--seed: must be a whole number from 0"),
    (["train", "--threads", "100000", "--out", "x"], "--threads: must be a whole number from 0"),
    (["train", "--max-seconds", "-1", "--out", "x"], "--max-seconds: must be a number of at least 0"),
    (["train", "--max-seconds", "nan", "--out", "x"], "--max-seconds"),
    (["train", "--eval-samples", "-3", "--out", "x"], "--eval-samples"),
    (["train", "--test-limit", "-1", "--out", "x"], "--test-limit"),
    (["train", "--hidden-dims", "8192", "8192", "8192", "8192", "--out", "x"], "weights, more than the"),
    (["eval", "x.safetensors", "--limit", "-5"], "--limit: must be a whole number from 0"),
    (["eval", "x.safetensors", "--samples", "0"], "--samples"),
    (["classifier", "--epochs", "0"], "--epochs"),
    (["train", "--keep-best", "maybe", "--out", "x"], "expected true or false"),
    (["train", "--name", "n" * 201, "--out", "x"], "--name: must be at most 200 characters"),
])
def test_out_of_range_settings_are_one_line_and_exit_2(argv, words, capsys, no_training):
    code, _, err = run_main(capsys, *argv)
    assert_one_error_line(code, err)
    assert words in err, err


@pytest.mark.parametrize("error, words", [
    (RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB\n(more torch detail)"), "CUDA out of memory."),
    (MemoryError(), "not enough memory"),
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
    (PermissionError(13, "Permission denied", "/root/x.safetensors"), "permission denied (/root/x.safetensors)"),
])
def test_runtime_memory_and_recursion_errors_are_one_line_too(error, words, monkeypatch, capsys):
    import vae_core.__main__ as cli

    def fail(path):
        raise error
    monkeypatch.setattr(cli, "read_record", fail)
    code, _, err = run_main(capsys, "info", "any.safetensors")
    assert_one_error_line(code, err)
    assert words in err and "Errno" not in err


@pytest.mark.parametrize("flags, expected", [([], False), (["--keep-best"], True), (["--keep-best", "true"], True),
                                             (["--keep-best", "false"], False)])
def test_keep_best_is_a_plain_flag(flags, expected):
    from vae_core.__main__ import make_parser
    args = make_parser().parse_args(["train", *flags, "--out", "x"])
    assert args.keep_best is expected


def test_every_flag_of_every_command_has_help_text():
    import argparse
    from vae_core.__main__ import make_parser
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS or action.help.startswith("default"):
                missing.append(f"{name} {action.option_strings or action.dest}")
    assert missing == []


def _blow_up_fit(epoch: int):
    """fit() with a callback that makes the weights infinite at the end of `epoch` (from 0)."""
    import vae_core.__main__ as cli
    real_fit = cli.fit

    class BlowUp:
        def __init__(self, model):
            self.model = model

        def on_step(self, info):
            if info.epoch == epoch and info.step == info.steps_per_epoch - 1:
                with torch.no_grad():
                    next(self.model.parameters()).view(-1)[0] = float("inf")

    def fit(model, data, cfg, callbacks=(), **kwargs):
        return real_fit(model, data, cfg, [*callbacks, BlowUp(model)], **kwargs)
    return fit


def test_out_over_a_good_checkpoint_is_kept_when_the_run_never_had_a_good_state(trained, fake_data_dir, capsys,
                                                                               monkeypatch):
    import vae_core.__main__ as cli
    good = trained.read_bytes()
    monkeypatch.setattr(cli, "fit", _blow_up_fit(0))
    code, _, err = run_main(capsys, "train", "--variant", "cvae", "--condition", "label", *TINY_TRAIN,
                            "--data-dir", fake_data_dir, "--out", trained)
    assert code == 1 and "nothing was saved" in err and "left as it was" in err and "Traceback" not in err
    assert trained.read_bytes() == good


def test_a_late_blow_up_saves_the_last_finite_epoch_which_loads(fake_data_dir, tmp_path, capsys, monkeypatch):
    import vae_core.__main__ as cli
    out = tmp_path / "late.safetensors"
    monkeypatch.setattr(cli, "fit", _blow_up_fit(1))
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--data-dir", fake_data_dir, "--out", out)
    assert code == 1 and "diverged" in err
    model, record = load_checkpoint(out)                        # loads: every weight is finite
    assert record.status == "diverged" and record.epochs_completed == 1


HOSTILE_RECORDS = {
    "nested 100,000 deep": lambda h: '{"format": "latent-lab-checkpoint", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "5,000-digit integer": lambda h: json.dumps(h)[:-1] + ', "n": ' + "9" * 5000 + "}",
    "metrics a list": lambda h: json.dumps({**h, "metrics": [1, 2]}),
    "train_config a string": lambda h: json.dumps({**h, "train_config": "fast"}),
    "num_classes 10^12": lambda h: json.dumps({**h, "model_config": {**h["model_config"], "num_classes": 10**12}}),
    "image_size 2048": lambda h: json.dumps({**h, "model_config": {**h["model_config"], "image_size": 2048}}),
}


@pytest.mark.parametrize("case", list(HOSTILE_RECORDS))
@pytest.mark.parametrize("command", ["info", "eval"])
def test_hostile_checkpoint_headers_are_one_line_in_info_and_eval(case, command, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from vae_core import ModelConfig, build_model, save_checkpoint
    good = save_checkpoint(tmp_path / "good", build_model(ModelConfig(hidden_dims=(8,))))
    with safe_open(str(good), framework="pt") as f:
        header = json.loads(f.metadata()["latent_lab"])
    bad = tmp_path / "hostile.safetensors"
    save_file(load_file(str(good)), str(bad), metadata={"latent_lab": HOSTILE_RECORDS[case](header)})
    extra = ["--samples", "2"] if command == "eval" else []
    code, _, err = run_main(capsys, command, bad, *extra)
    assert_one_error_line(code, err)
    assert "hostile.safetensors" in err and len(err) < 800


def test_a_damaged_data_file_is_one_line_naming_it(fake_data_dir, tmp_path, capsys):
    """An IDX header whose dimensions overflow used to end in 'cannot reshape array'."""
    images = fake_data_dir / "mnist" / "train-images-idx3-ubyte.gz"
    import gzip
    raw = bytearray(gzip.decompress(images.read_bytes()))
    raw[4:8] = (2**32 - 1).to_bytes(4, "big")
    images.write_bytes(gzip.compress(bytes(raw)))
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--data-dir", fake_data_dir, "--out", tmp_path / "m")
    assert_one_error_line(code, err)
    assert "train-images-idx3-ubyte.gz" in err and "claims" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_dropout_and_weight_decay_flags_are_recorded_and_rebuilt(fake_data_dir, tmp_path, capsys):
    """--dropout and --weight-decay reach the configs stored in the file; the loaded model has its Dropout layers;
    an out-of-range value is one error line before any work."""
    out = tmp_path / "reg.safetensors"
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--dropout", "0.3", "--weight-decay", "0.05",
                            "--data-dir", fake_data_dir, "--out", out)
    assert code == 0, err
    model, record = load_checkpoint(out)
    assert record.model_config.dropout == 0.3 and record.train_config.weight_decay == 0.05
    assert "--dropout 0.3 --weight-decay 0.05" in record.command
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2  # one hidden layer in each net
    for flag, value in (("--dropout", "1.5"), ("--weight-decay", "-1")):
        code, _, err = run_main(capsys, "train", *TINY_TRAIN, flag, value, "--data-dir", fake_data_dir,
                                "--out", tmp_path / "bad.safetensors")
        assert_one_error_line(code, err)
        assert flag.lstrip("-").replace("-", "_") in err and not (tmp_path / "bad.safetensors").exists()
    from vae_core.__main__ import make_parser
    helps = {a.dest: a.help for a in make_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert "dropout" in helps["dropout"].lower() and "AdamW" in helps["weight_decay"]


def test_ema_decay_flag_is_recorded_and_refused_out_of_range(fake_data_dir, tmp_path, capsys):
    """--ema-decay reaches the train config stored in the file and the run's message; 1 is one error line."""
    out = tmp_path / "ema.safetensors"
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--ema-decay", "0.9", "--data-dir", fake_data_dir,
                            "--out", out)
    assert code == 0, err
    assert "averaged with decay 0.9" in err
    _, record = load_checkpoint(out)
    assert record.train_config.ema_decay == 0.9 and "--ema-decay 0.9" in record.command
    code, _, err = run_main(capsys, "train", *TINY_TRAIN, "--ema-decay", "1", "--data-dir", fake_data_dir,
                            "--out", tmp_path / "bad.safetensors")
    assert_one_error_line(code, err)
    assert "ema_decay" in err and not (tmp_path / "bad.safetensors").exists()


def test_freeze_decoder_flag_keeps_the_decoder_of_the_init_file(trained, fake_data_dir, tmp_path, capsys):
    """--init-from X --freeze-decoder: the written file has X's decoder weights bit for bit, a new encoder, and the
    flag in its stored train config."""
    start, _ = load_checkpoint(trained)
    out = tmp_path / "enc.safetensors"
    code, _, err = run_main(capsys, "train", "--variant", "cvae", "--condition", "label", *TINY_TRAIN,
                            "--init-from", trained, "--freeze-decoder",
                            "--data-dir", fake_data_dir, "--out", out)
    assert code == 0, err
    model, record = load_checkpoint(out)
    assert record.train_config.freeze_decoder is True and "--freeze-decoder" in record.command
    old, new = start.state_dict(), model.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("generation_net"))
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("recognition_net"))


def test_a_reader_that_goes_away_ends_info_quietly(trained):
    """`python -m vae_core info x | head`: the pipe closes before info writes; no `error: broken pipe` line and
    no traceback, exit 141 (128 + SIGPIPE) as a shell reports for `cat` cut off the same way."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "vae_core", "info", str(trained)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)
    proc.stdout.close()  # before the interpreter has even imported torch
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_a_continued_run_records_its_chain_and_info_prints_it(trained, fake_data_dir, tmp_path, capsys):
    """Issue 21 item 7: a checkpoint that continued another carries the parent's command, file hash and history,
    and `info` shows the chain and the commands that rebuild it, oldest first."""
    from vae_core.checkpoints import file_sha256
    parent = read_record(trained)
    parent_sha = file_sha256(trained)
    base = ["train", "--variant", "cvae", "--condition", "label", *TINY_TRAIN, "--data-dir", fake_data_dir]
    second, third = tmp_path / "second.safetensors", tmp_path / "third.safetensors"
    assert run_main(capsys, *base, "--init-from", trained, "--out", second)[0] == 0
    assert run_main(capsys, *base, "--init-from", second, "--out", third)[0] == 0
    record = read_record(third)
    assert [a.command for a in record.lineage] == [parent.command, read_record(second).command]
    assert record.lineage[0].sha256 == parent_sha and record.lineage[1].sha256 == file_sha256(second)
    assert len(record.lineage[0].history.epochs) == 2 and record.lineage[0].reconstructed == ""
    assert record.rebuild_commands[-1] == record.command
    code, out, _ = run_main(capsys, "info", third)
    assert code == 0 and "continued from 2 earlier runs" in out and parent_sha in out
    rebuild = out[out.index("rebuild with"):].splitlines()[1:]
    assert [line.strip() for line in rebuild] == record.rebuild_commands
    assert "metrics (on 100 test images, S = 4)" in out


def test_no_flag_help_is_only_its_own_name():
    """Issue 21 item 9: `--patience` said only 'patience'."""
    import argparse
    from vae_core.__main__ import make_parser
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {action.option_strings[0]}" for name, command in sub.choices.items()
            for action in command._actions if action.option_strings and action.help
            and action.help.split(" (default")[0].strip() == action.option_strings[-1].lstrip("-").replace("-", " ")]
    assert bare == []

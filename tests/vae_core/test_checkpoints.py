"""Checkpoints: exact round trips, extras and meta survive, atomic writes, and every bad file gives a
CheckpointError with a sentence (never a raw library error)."""
import json
import math
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vae_core.atomic as atomic_mod
import vae_core.checkpoints as ckpt_mod
from vae_core import (CheckpointError, CheckpointRecord, ModelConfig, TrainConfig, build_model, list_checkpoints,
                      load_checkpoint, make_batch, read_record, save_checkpoint)
from vae_core.record import FORMAT_VERSION

CONFIGS = [
    ModelConfig(latent_dim=2, hidden_dims=(32,), image_size=8),
    ModelConfig(variant="cvae", condition="label", latent_dim=3, hidden_dims=(32, 16), image_size=8),
    ModelConfig(variant="gsnn", condition="quadrants", quadrants=2, hidden_dims=(32,), image_size=8),
    ModelConfig(variant="hybrid", condition="quadrants", quadrants=0, prior="standard", alpha=0.3,
                hidden_dims=(32,), image_size=8),
    ModelConfig(variant="baseline", condition="label", hidden_dims=(32,), image_size=8),
]
META = {"dataset": "mnist", "train_config": {"epochs": 3, "lr": 0.001}, "metrics": {"neg_elbo": 123.4},
        "history": {"step": [1, 2], "loss": [3.0, 2.5], "recon": [2.0, 2.0], "kl": [1.0, 0.5],
                    "epochs": [{"epoch": 0, "train": {"loss": 2.5}, "eval": None}]},
        "command": "python -m vae_core train --epochs 3", "name": "tiny"}


def record_for(model, **changes) -> CheckpointRecord:
    """The test record (META) for a model."""
    return CheckpointRecord(model_config=model.config, **{**META, **changes})


def outputs(model, tiny_data):
    """Everything a page shows, computed with fixed noise."""
    cfg = model.config
    y, x = make_batch(cfg, tiny_data.images[:8], tiny_data.labels[:8], generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with torch.no_grad():
        out = {"loss": model.loss(y, x)["loss"], "reconstruct": model.reconstruct(y, x)}
        if cfg.has_latent:
            out["encode"] = torch.cat(model.encode(y, x), -1)
            out["decode"] = model.decode(torch.randn(8, cfg.latent_dim), x)
        out["sample"] = model.sample(x, 3)
    return out


@pytest.fixture
def saved(tmp_path):
    model = build_model(CONFIGS[1], seed=1)
    path = save_checkpoint(tmp_path / "model.safetensors", model, record_for(model), extras={"z": torch.randn(5, 2)})
    return model, path


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
def test_round_trip_gives_identical_outputs(config, tmp_path, tiny_data):
    model = build_model(config, seed=5).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, record_for(model))
    loaded, record = load_checkpoint(path)
    assert not loaded.training
    assert record.model_config == config
    a, b = outputs(model, tiny_data), outputs(loaded, tiny_data)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("config", CONFIGS[:3], ids=lambda c: c.describe())
def test_float16_round_trip_is_close(config, tmp_path, tiny_data):
    model = build_model(config, seed=5).eval()
    path16 = save_checkpoint(tmp_path / "half.safetensors", model, record_for(model), dtype=torch.float16)
    path32 = save_checkpoint(tmp_path / "full.safetensors", model, record_for(model))
    assert path16.stat().st_size < 0.7 * path32.stat().st_size
    loaded, record = load_checkpoint(path16)
    assert record.storage_dtype == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    a, b = outputs(model, tiny_data), outputs(loaded, tiny_data)
    for k in ("reconstruct", "sample") + (("decode",) if config.has_latent else ()):
        assert torch.allclose(a[k], b[k], atol=1e-3), (k, float((a[k] - b[k]).abs().max()))


def test_meta_and_extras_survive(saved, tmp_path):
    model, path = saved
    means, labels = torch.randn(100, 3), torch.randint(0, 10, (100,))  # the model has a 3-D latent
    path = save_checkpoint(tmp_path / "x.safetensors", model, record_for(model, extras={"ignored": 1}),
                           extras={"test_latent_means": means, "test_labels": labels})
    loaded, record = load_checkpoint(path)
    assert torch.equal(record.extras["test_latent_means"], means)
    assert torch.equal(record.extras["test_labels"], labels) and record.extras["test_labels"].dtype == torch.int64
    assert set(record.extras) == {"test_latent_means", "test_labels"}
    mu, lab = record.latent_means()
    assert (mu == means.numpy()).all() and (lab == labels.numpy()).all()
    assert record.dataset == META["dataset"] and record.command == META["command"] and record.name == META["name"]
    # a record states the beta used: TrainConfig's default (None) reads as the variant's own (1 for this one)
    assert record.train_config == TrainConfig(epochs=3, lr=0.001, beta=1.0) and record.metrics == META["metrics"]
    assert record.history.to_dict() == {**META["history"], "epochs": [{"epoch": 0, "train": {"loss": 2.5}, "eval": None}]}
    assert record.format_version == FORMAT_VERSION and record.path == str(path)
    assert isinstance(record.model_config, ModelConfig)
    # read_record gives the same record without weights or extras
    light = read_record(path)
    assert light.model_config == model.config and light.extras == {} and light.metrics == META["metrics"]


def test_tensors_and_numpy_in_fit_records_become_json(tmp_path):
    import numpy as np
    from vae_core import FitResult, record_from_fit
    model = build_model(CONFIGS[0])
    result = FitResult("completed", "trained 1 epoch", 1, 1.234, 99.9, None,
                       {"step": [1], "loss": [np.float32(2.0)], "recon": [1.0], "kl": [1.0], "epochs": []})
    record = record_from_fit(model.config, TrainConfig(epochs=1), result,
                             metrics={"a": np.float32(1.5), "b": torch.tensor(2.5)})
    path = save_checkpoint(tmp_path / "m", model, record)
    assert path.name == "m.safetensors"
    back = read_record(path)
    assert back.metrics == {"a": 1.5, "b": 2.5} and back.history.loss == [2.0]
    assert back.train_config.epochs == 1 and back.status == "completed" and back.train_seconds == 1.23


def test_atomic_write_leaves_no_temporary_files(tmp_path, saved, monkeypatch):
    model, path = saved
    folder = path.parent
    save_checkpoint(path, model, record_for(model))            # overwrite in place
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors"]
    good = path.read_bytes()

    def crash(fd):  # the disk fills up while the new file is flushed
        raise OSError("disk full")
    monkeypatch.setattr(atomic_mod.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, build_model(CONFIGS[1], seed=9), record_for(build_model(CONFIGS[1])))
    assert path.read_bytes() == good              # the old checkpoint is untouched
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors"]


def test_list_checkpoints(tmp_path):
    model = build_model(CONFIGS[0])
    for name in ("b", "a", "c"):
        save_checkpoint(tmp_path / name, model)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["a.safetensors", "b.safetensors", "c.safetensors"]
    assert list_checkpoints(tmp_path / "absent") == []


# ----------------------------------------------------------------------------- bad files

def rewrite(path, *, record=None, raw_meta=None, tensors=None):
    """Rewrite a checkpoint with a changed JSON record / header / tensors (as a damaged or foreign file)."""
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    state = load_file(str(path))
    if record is not None:
        header[ckpt_mod.META_KEY] = json.dumps(record)
    if raw_meta is not None:
        header = raw_meta
    save_file(tensors(state) if tensors else state, str(path), metadata=header)


def record_of(path):
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()[ckpt_mod.META_KEY])


def _make_bad(case, path):
    rec = record_of(path)
    if case == "empty file":
        path.write_bytes(b"")
    elif case == "truncated header":
        path.write_bytes(path.read_bytes()[:20])
    elif case == "truncated data":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) - 500])
    elif case == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif case == "text file":
        path.write_text("{'not': 'a checkpoint'}")
    elif case == "no metadata":
        rewrite(path, raw_meta={})
    elif case == "foreign metadata":
        rewrite(path, raw_meta={"format": "pt"})
    elif case == "wrong format name":
        rewrite(path, record={**rec, "format": "someone-elses"})
    elif case == "wrong format_version":
        rewrite(path, record={**rec, "format_version": 99})
    elif case == "bad JSON":
        rewrite(path, raw_meta={ckpt_mod.META_KEY: '{"format": "latent-lab-checkpoint", '})
    elif case == "JSON not an object":
        rewrite(path, raw_meta={ckpt_mod.META_KEY: "[1, 2, 3]"})
    elif case == "invalid config":
        rewrite(path, record={**rec, "model_config": {**rec["model_config"], "latent_dim": 0}})
    elif case == "config not a dict":
        rewrite(path, record={**rec, "model_config": "cvae"})
    elif case == "shape mismatch":
        rewrite(path, record={**rec, "model_config": {**rec["model_config"], "latent_dim": 5}})
    elif case == "missing key":
        rewrite(path, tensors=lambda s: {k: v for k, v in s.items() if k != "generation_net.0.bias"})
    elif case == "extra layer in config":
        rewrite(path, record={**rec, "model_config": {**rec["model_config"], "hidden_dims": [32, 16, 8]}})
    elif case == "unexpected key":
        rewrite(path, tensors=lambda s: {**s, "mystery.weight": torch.zeros(3)})
    elif case == "NaN weights":
        rewrite(path, tensors=lambda s: {k: (v * float("nan") if k == "prior_net.body.0.weight" else v)
                                         for k, v in s.items()})
    elif case == "inf weights":
        rewrite(path, tensors=lambda s: {k: (v + float("inf") if k.endswith("0.bias") else v)
                                         for k, v in s.items()})


BAD = {  # case -> words the message must hold
    "empty file": ["model.safetensors", "not a readable checkpoint"],
    "truncated header": ["not a readable checkpoint"],
    "truncated data": ["model.safetensors"],
    "random bytes": ["not a readable checkpoint"],
    "text file": ["not a readable checkpoint"],
    "no metadata": ["not a Latent Lab checkpoint"],
    "foreign metadata": ["not a Latent Lab checkpoint"],
    "wrong format name": ["not a Latent Lab checkpoint"],
    "wrong format_version": ["version 99", "reads version 1"],
    "bad JSON": ["damaged model record"],
    "JSON not an object": ["not a Latent Lab checkpoint"],
    "invalid config": ["invalid model config", "latent_dim"],
    "config not a dict": ["invalid model config"],
    "shape mismatch": ["shape", "needs"],
    "missing key": ["does not match its own config", "missing generation_net.0.bias"],
    "extra layer in config": ["does not match its own config", "missing"],
    "unexpected key": ["unexpected mystery.weight"],
    "NaN weights": ["NaN or infinite", "prior_net.body.0.weight"],
    "inf weights": ["NaN or infinite"],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_raises_checkpoint_error_with_a_sentence(case, saved):
    _, path = saved
    _make_bad(case, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    for words in BAD[case]:
        assert words in message, (words, message)
    assert "\n" not in message and len(message) < 600
    assert isinstance(err.value, ValueError)  # callers may catch ValueError for every user error


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint file at"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="No checkpoint file at"):
        read_record(tmp_path)  # a folder is not a file


@pytest.mark.parametrize("case", ["empty file", "random bytes", "no metadata", "wrong format_version", "bad JSON",
                                  "invalid config"])
def test_read_record_checks_the_header_too(case, saved):
    _, path = saved
    _make_bad(case, path)
    with pytest.raises(CheckpointError):
        read_record(path)


def test_loading_never_unpickles(saved, monkeypatch):
    """Loading goes through safetensors only: pickle is never touched."""
    import pickle
    _, path = saved

    def forbidden(*a, **k):
        raise AssertionError("pickle was used")
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model, _ = load_checkpoint(path)
    assert math.isfinite(float(next(model.parameters()).detach().sum()))

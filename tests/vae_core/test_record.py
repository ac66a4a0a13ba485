"""The checkpoint record (vae_core/record.py): its schema refuses hostile or damaged headers with one
CheckpointError sentence before anything is built, its accessors read metrics the way every page needs
them, and the config bounds keep a header from deciding how much memory a model takes."""
import dataclasses
import json
import tracemalloc

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vae_core import CheckpointError, CheckpointRecord, ModelConfig, build_model, load_checkpoint, read_record, save_checkpoint
from vae_core.checkpoints import META_KEY
from vae_core.record import parse_record

CONFIG = ModelConfig(variant="cvae", condition="label", latent_dim=2, hidden_dims=(16,), image_size=8)


@pytest.fixture
def saved(tmp_path):
    model = build_model(CONFIG, seed=0)
    record = CheckpointRecord(model_config=CONFIG, name="tiny", metrics={"neg_elbo": 10.0},
                              train_config={"epochs": 2}, dataset="mnist")
    return save_checkpoint(tmp_path / "m.safetensors", model, record,
                           extras={"test_latent_means": torch.randn(20, 2), "test_labels": torch.arange(20) % 10})


def header_of(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()[META_KEY])


def rewrite_header(path, text: str, tensors=None) -> None:
    state = load_file(str(path))
    save_file(tensors(state) if tensors else state, str(path), metadata={META_KEY: text})


def with_changes(path, **changes) -> None:
    rewrite_header(path, json.dumps({**header_of(path), **changes}))


# ----------------------------------------------------------------------------- hostile and damaged headers

HOSTILE = {  # case -> (how to damage the record, words the sentence must hold)
    "nested 100,000 deep": (lambda p: rewrite_header(p, '{"format": "latent-lab-checkpoint", "x": '
                                                     + "[" * 100_000 + "]" * 100_000 + "}"), "nested too deeply"),
    "5,000-digit integer": (lambda p: rewrite_header(p, json.dumps(header_of(p))[:-1] + ', "n": ' + "9" * 5000 + "}"),
                            "damaged model record"),
    "metrics a list": (lambda p: with_changes(p, metrics=[1, 2, 3]), "metrics"),
    "train_config a string": (lambda p: with_changes(p, train_config="fast"), "invalid training config"),
    "history not a mapping": (lambda p: with_changes(p, history=7), "history"),
    "a name of a million characters": (lambda p: with_changes(p, name="x" * 1_000_000), "name"),
    "num_classes 10^12": (lambda p: with_changes(p, model_config={**header_of(p)["model_config"],
                                                                  "num_classes": 10**12}), "num_classes"),
    "image_size 10^6": (lambda p: with_changes(p, model_config={**header_of(p)["model_config"],
                                                                "image_size": 10**6}), "image_size"),
    "unknown data set": (lambda p: with_changes(p, dataset="imagenet"), "dataset"),
    "a curve of 300,000 points": (lambda p: with_changes(p, history={"loss": [1.0] * 300_000}), "history.loss"),
    "labels out of range": (lambda p: rewrite_header(p, json.dumps(header_of(p)), tensors=lambda s: {
        **s, "extra.test_labels": torch.full((20,), 57)}), "stored test labels"),
    "means of the wrong width": (lambda p: rewrite_header(p, json.dumps(header_of(p)), tensors=lambda s: {
        **s, "extra.test_latent_means": torch.zeros(20, 5)}), "do not fit a 2-D latent"),
    "11 snapshots": (lambda p: with_changes(p, snapshots=[{"epoch": 1}] * 11), "snapshots"),
    "snapshot previews of 4,000 px": (lambda p: rewrite_header(p, json.dumps({**header_of(p), "snapshots": [{"epoch": 1}]}),
                                      tensors=lambda s: {**s, "extra.snapshot_previews": torch.zeros(1, 4000, 8, dtype=torch.uint8)}),
                                      "training snapshots"),
    "snapshot previews not matching the record": (lambda p: rewrite_header(p, json.dumps(header_of(p)), tensors=lambda s: {
        **s, "extra.snapshot_previews": torch.zeros(3, 8, 8, dtype=torch.uint8)}), "training snapshots"),
    "snapshot means of 5,000 points": (lambda p: rewrite_header(p, json.dumps({**header_of(p), "snapshots": [{"epoch": 1}]}),
                                       tensors=lambda s: {**s, "extra.snapshot_previews": torch.zeros(1, 8, 8, dtype=torch.uint8),
                                                          "extra.snapshot_means": torch.zeros(1, 5000, 2, dtype=torch.float16),
                                                          "extra.snapshot_labels": torch.zeros(5000, dtype=torch.int64)}),
                                       "training snapshots"),
    # issue 20: where an imported model came from
    "a source of an unknown kind": (lambda p: with_changes(p, source={"kind": "pickle"}), "source.kind"),
    "a source file name of a million characters": (lambda p: with_changes(p, source={"kind": "fc-vae",
                                                                                      "file": "x" * 1_000_000}),
                                                   "source.file"),
    "a source hash that is not one": (lambda p: with_changes(p, source={"kind": "onnx", "sha256": "../../etc"}),
                                      "source.sha256"),
    "an ONNX source over ordinary weights": (lambda p: with_changes(p, source={"kind": "onnx"}),
                                             "says it holds ONNX graphs, but its tensors are"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_headers_are_one_sentence(case, saved):
    damage, words = HOSTILE[case]
    damage(saved)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(saved)
    message = str(err.value)
    assert words in message, message
    assert message.startswith("m.safetensors") and "\n" not in message and len(message) < 600


def test_a_header_larger_than_the_bound_is_refused_before_it_is_read(saved):
    data = bytearray(saved.read_bytes())
    data[:8] = (1 << 40).to_bytes(8, "little")   # claims a 1 TB header
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="header claims"):
        read_record(saved)


def test_image_size_2048_is_refused_without_building_the_model(saved):
    """Before the bounds, image_size 2048 built a 1.6 GB model before any shape was compared."""
    with_changes(saved, model_config={**header_of(saved)["model_config"], "image_size": 128, "hidden_dims": [8192]})
    tracemalloc.start()
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(saved)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50e6, f"refusing the file took {peak / 1e6:.0f} MB"


def test_every_record_field_survives_a_round_trip(saved):
    record = read_record(saved)
    assert record.name == "tiny" and record.train_config.epochs == 2 and record.metrics == {"neg_elbo": 10.0}
    assert parse_record(record.to_json()) == dataclasses.replace(record, path=None)


# ----------------------------------------------------------------------------- accessors

def _record(variant, quadrants, metrics, **kw):
    return CheckpointRecord(model_config=ModelConfig(variant=variant, condition="quadrants", quadrants=quadrants,
                                                     hidden_dims=(8,)), metrics=metrics, **kw)


def test_nll_reads_per_count_blocks_flat_metrics_and_the_exact_baseline():
    both = _record("cvae", 0, {"q1": {"nll_mc": 90.0, "nll_is": 80.0, "samples": 100}, "q2": {"nll_mc": 60.0}})
    assert both.nll("is", 1) == 80.0 and both.nll("is", 2) is None and both.nll("mc", 3) is None
    assert both.samples == 100 and both.mean_metric("nll_mc") == 75.0
    fixed = _record("gsnn", 2, {"nll_mc": 70.0, "nll_is": 69.0})
    assert fixed.nll("mc", 2) == 70.0 and fixed.nll("mc", 1) is None
    baseline = _record("baseline", 0, {"q3": {"nll_mc": 30.0}})
    assert baseline.nll("is", 3) == 30.0          # deterministic: IS falls back to the exact MC figure
    assert _record("cvae", 0, {"q1": {"nll_is": float("nan")}}).nll("is", 1) is None


def test_describe_and_display_name_come_from_the_registry():
    r = CheckpointRecord(model_config=CONFIG)
    assert r.describe() == "CVAE given the digit label, 2-D latent"
    assert r.display_name == "cvae" and r.located("runs/my_model.safetensors").display_name == "my_model"
    assert CheckpointRecord(model_config=CONFIG, description="mine").describe() == "mine"
    assert CheckpointRecord(model_config=CONFIG, train_config={"epochs": 7}).epochs_trained == 7


def test_config_bounds_are_sentences():
    for changes, words in (({"num_classes": 10**12}, "num_classes"), ({"image_size": 4096}, "image_size"),
                           ({"hidden_dims": (8,) * 9}, "hidden_dims"), ({"latent_dim": True}, "latent_dim")):
        with pytest.raises(ValueError, match=words):
            ModelConfig(**changes)


# ----------------------------------------------------------------------------- a run's snapshots (animations)

def test_snapshots_are_bounded_and_survive_a_round_trip(tmp_path):
    import numpy as np

    from vae_core.record import MAX_SNAPSHOT_POINTS, MAX_SNAPSHOTS, snapshot_extras
    rng = np.random.default_rng(0)
    raw = [(e, f"after epoch {e}", rng.integers(0, 256, (30 + e % 2, 30), dtype=np.uint8),
            rng.normal(size=(800, 2)), np.arange(800) % 10) for e in range(15)]
    infos, extras = snapshot_extras(raw)
    assert len(infos) == MAX_SNAPSHOTS and infos[0].epoch == 0 and infos[-1].epoch == 14
    assert extras["snapshot_previews"].shape == (MAX_SNAPSHOTS, 31, 30)
    assert extras["snapshot_means"].shape == (MAX_SNAPSHOTS, MAX_SNAPSHOT_POINTS, 2)
    model = build_model(CONFIG, seed=0)
    record = CheckpointRecord(model_config=CONFIG, snapshots=infos)
    path = save_checkpoint(tmp_path / "s.safetensors", model, record, extras=extras)
    _, loaded = load_checkpoint(path)
    snaps = loaded.training_snapshots()
    assert [s.epoch for s in snaps] == [i.epoch for i in infos] and snaps[3].caption == infos[3].caption
    kept = [r for r in raw if r[0] in {i.epoch for i in infos}]
    assert np.array_equal(snaps[3].preview[:kept[3][2].shape[0]], kept[3][2])
    assert np.allclose(snaps[3].means, kept[3][3][:MAX_SNAPSHOT_POINTS], atol=2e-2)   # float16
    assert np.array_equal(snaps[0].labels, np.arange(MAX_SNAPSHOT_POINTS) % 10)
    assert CheckpointRecord(model_config=CONFIG).training_snapshots() == []


def test_snapshots_too_large_together_are_thinned_to_the_byte_bound():
    import numpy as np

    from vae_core.record import MAX_SNAPSHOT_BYTES, snapshot_extras
    raw = [(e, "", np.zeros((600, 600), np.uint8), None, None) for e in range(10)]
    infos, extras = snapshot_extras(raw)
    assert extras["snapshot_previews"].nbytes <= MAX_SNAPSHOT_BYTES and len(infos) >= 2
    assert infos[0].epoch == 0 and infos[-1].epoch == 9 and "snapshot_means" not in extras

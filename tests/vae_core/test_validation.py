"""One validation system (vae_core/validation.py): configs are strict, bounded pydantic dataclasses, and every
refusal (a config, the checkpoint record, the limits) is one sentence: the setting, its range, the bad value
quoted to at most about a hundred characters."""
import dataclasses
import json
import math
import re

import pytest

import vae_core.models as models
from vae_core import ModelConfig, TrainConfig
from vae_core.config import (MAX_BATCH, MAX_CLASSES, MAX_DROPOUT, MAX_EPOCHS, MAX_HIDDEN_LAYERS, MAX_IMAGE_SIZE,
                             MAX_LATENT_DIM, MAX_LAYER_WIDTH, MAX_SEED, MAX_WEIGHT_DECAY)
from vae_core.record import CheckpointError, CheckpointRecord, parse_record
from vae_core.validation import MAX_QUOTE, SettingError, quote

SENTENCE = re.compile(r"^(?P<key>\w+) \([^)]+\) must .+; got .+\.$")


def refusal(cls, **changes) -> str:
    with pytest.raises(ValueError) as caught:
        cls(**changes)
    assert isinstance(caught.value, SettingError)
    message = str(caught.value)
    assert "\n" not in message and message.endswith("."), message
    return message


# (config class, setting, the bound that is accepted, the value past it)
BOUNDS = [
    (ModelConfig, "latent_dim", MAX_LATENT_DIM, MAX_LATENT_DIM + 1), (ModelConfig, "latent_dim", 1, 0),
    (ModelConfig, "hidden_dims", (MAX_LAYER_WIDTH,), (MAX_LAYER_WIDTH + 1,)),
    (ModelConfig, "hidden_dims", (8,) * MAX_HIDDEN_LAYERS, (8,) * (MAX_HIDDEN_LAYERS + 1)),
    (ModelConfig, "image_size", MAX_IMAGE_SIZE, MAX_IMAGE_SIZE + 2), (ModelConfig, "image_size", 2, 0),
    (ModelConfig, "num_classes", MAX_CLASSES, MAX_CLASSES + 1), (ModelConfig, "num_classes", 2, 1),
    (ModelConfig, "dropout", MAX_DROPOUT, 0.91), (ModelConfig, "alpha", 1.0, 1.01), (ModelConfig, "alpha", 0, -0.01),
    (ModelConfig, "quadrants", 3, 4),
    (TrainConfig, "epochs", MAX_EPOCHS, MAX_EPOCHS + 1), (TrainConfig, "batch_size", MAX_BATCH, MAX_BATCH + 1),
    (TrainConfig, "seed", MAX_SEED, MAX_SEED + 1), (TrainConfig, "seed", 0, -1),
    (TrainConfig, "lr", 1e9, 1.1e9), (TrainConfig, "lr", 1e-12, 0), (TrainConfig, "beta", 1e6, 1.1e6),
    (TrainConfig, "beta", 0, -1e-9), (TrainConfig, "val_fraction", 0.999, 1.0), (TrainConfig, "lr_decay", 1.0, 1.01),
    (TrainConfig, "lr_decay", 1e-9, 0), (TrainConfig, "patience", MAX_EPOCHS, MAX_EPOCHS + 1),
    (TrainConfig, "kl_warmup_epochs", MAX_EPOCHS, MAX_EPOCHS + 1),
    (TrainConfig, "train_limit", 10**9, 10**9 + 1), (TrainConfig, "eval_limit", 10**9, 10**9 + 1),
    (TrainConfig, "weight_decay", MAX_WEIGHT_DECAY, MAX_WEIGHT_DECAY + 0.1), (TrainConfig, "ema_decay", 0.9999, 1.0),
]


@pytest.mark.parametrize("cls, key, ok, bad", BOUNDS, ids=[f"{c.__name__}.{k}={b!r:.12}" for c, k, _, b in BOUNDS])
def test_every_bound_is_accepted_and_one_past_it_is_one_sentence(cls, key, ok, bad):
    assert getattr(cls(**{key: ok}), key) == ok
    message = refusal(cls, **{key: bad})
    match = SENTENCE.match(message)
    assert match and match["key"] == key, message
    assert message.endswith(f"; got {bad!r}."), message


@pytest.mark.parametrize("cls, key, value", [
    (ModelConfig, "latent_dim", True),           # a bool is not a number
    (ModelConfig, "latent_dim", "3"),            # text is not turned into a number
    (ModelConfig, "latent_dim", 2.0),            # a whole number is an int
    (ModelConfig, "alpha", True), (ModelConfig, "alpha", "0.5"),
    (ModelConfig, "alpha", math.nan), (ModelConfig, "dropout", math.inf),
    (ModelConfig, "hidden_dims", [64]),          # a tuple (from_dict turns JSON lists into tuples)
    (ModelConfig, "hidden_dims", (64, True)), (ModelConfig, "hidden_dims", ("64",)),
    (TrainConfig, "lr", math.nan), (TrainConfig, "lr", -math.inf), (TrainConfig, "epochs", True),
    (TrainConfig, "keep_best", 1), (TrainConfig, "keep_best", "yes"), (TrainConfig, "seed", 1.0),
    (TrainConfig, "dataset", 3), (TrainConfig, "device", None),
])
def test_types_are_strict(cls, key, value):
    message = refusal(cls, **{key: value})
    assert message.startswith(f"{key} (") and "; got " in message, message


def test_whole_numbers_are_taken_for_floats_and_dicts_give_tuples():
    assert ModelConfig(variant="hybrid", condition="label", alpha=1).alpha == 1.0
    assert ModelConfig.from_dict({"hidden_dims": [64, 32]}).hidden_dims == (64, 32)
    assert TrainConfig(lr=1).lr == 1.0


def test_a_huge_value_is_quoted_to_a_hundred_characters():
    huge = "x" * 50_000_000
    for cls, key in ((ModelConfig, "variant"), (ModelConfig, "encoder"), (TrainConfig, "device"),
                     (TrainConfig, "dataset")):
        message = refusal(cls, **{key: huge})
        assert len(message) < 300 and "(50,000,000 characters)" in message, message[:400]
    message = refusal(ModelConfig, hidden_dims=(8,) * 1_000_000)
    assert len(message) < 300 and "(1,000,000 items)" in message, message[:400]
    assert quote(10**100_000).startswith("a number of about 100,001 digits")
    assert len(quote(["y" * 10**6] * 10**4)) <= MAX_QUOTE + 30


def test_several_bad_settings_name_the_first_and_count_the_rest():
    message = refusal(ModelConfig, latent_dim=0, alpha=2, dropout=-1)
    assert message.startswith("latent_dim (") and message.endswith(" (and 2 more problems)."), message


def test_settings_that_read_each_other_are_one_sentence():
    assert refusal(ModelConfig, variant="vae", condition="label") == (
        "a vae is unconditional: condition must be 'none' (use cvae for a conditional model); got 'label'.")
    assert "needs a condition" in refusal(ModelConfig, variant="cvae")


def test_unknown_settings_are_named():
    with pytest.raises(SettingError, match=r"^ModelConfig has no setting named 'latent'; its settings are alpha, "):
        ModelConfig.from_dict({"latent": 2})
    with pytest.raises(SettingError, match=r"^TrainConfig has no setting named 'speed'\.$"):
        TrainConfig(speed=2)
    with pytest.raises(SettingError, match="must be given as a mapping of settings; got"):
        TrainConfig.from_dict([1, 2])


def test_configs_stay_frozen_hashable_dataclasses_and_replace_validates():
    m = ModelConfig(variant="cvae", condition="label", hidden_dims=(64,))
    assert dataclasses.is_dataclass(m) and m == ModelConfig.from_dict(m.to_dict()) and hash(m) == hash(m.replace())
    assert {m: 1}[ModelConfig(variant="cvae", condition="label", hidden_dims=(64,))] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.latent_dim = 3
    assert dataclasses.replace(m, latent_dim=3).latent_dim == 3 and m.replace(latent_dim=4).latent_dim == 4
    with pytest.raises(SettingError, match="latent_dim"):
        dataclasses.replace(m, latent_dim=0)
    with pytest.raises(SettingError, match="latent_dim"):
        m.replace(latent_dim=0)
    assert [f.default for f in dataclasses.fields(TrainConfig)][:3] == ["mnist", 10, 128]  # the CLI reads these


def test_the_variant_is_checked_against_the_registry_when_the_config_is_made(monkeypatch):
    monkeypatch.setitem(models.VARIANTS, "beta-vae", dataclasses.replace(models.VARIANTS["vae"], title="β-VAE"))
    assert ModelConfig(variant="beta-vae").variant == "beta-vae"
    assert "beta-vae" in refusal(ModelConfig, variant="vqvae")


def test_the_record_says_its_problems_in_the_same_form():
    good = json.loads(CheckpointRecord(model_config=ModelConfig(hidden_dims=(8,))).to_json())
    cases = {
        "model_config": ({**good["model_config"], "latent_dim": 0}, "m.safetensors has an invalid model config: "
                         "latent_dim (latent dimensions) must be a whole number from 1 to 64; got 0."),
        "train_config": ({"lr": "fast"}, "m.safetensors has an invalid training config: lr (learning rate) must be "
                         "a positive number (at most 1e9); got 'fast'."),
        "name": ("n" * 50_000_000, "m.safetensors has an invalid model record: name must be text of at most 200 "
                 "characters; got 'nnnn"),
        "metrics": ({"nll": "x"}, "m.safetensors has an invalid model record: metrics.nll must be a number or a "
                    "mapping; got 'x'."),
        "history": ({"loss": [1.0] * 300_000}, "m.safetensors has an invalid model record: history.loss must have at "
                    "most 200,000 items; got [1.0, 1.0,"),
    }
    for key, (value, words) in cases.items():
        with pytest.raises(CheckpointError) as caught:
            parse_record(json.dumps({**good, key: value}), "m.safetensors")
        message = str(caught.value)
        assert message.startswith(words) and len(message) < 300, message[:400]
    with pytest.raises(CheckpointError) as caught:  # a hostile key: quoted as the bad value
        parse_record(json.dumps({**good, "metrics": {"k" * 1_000_000: 1.0}}), "m.safetensors")
    message = str(caught.value)
    assert message.startswith("m.safetensors has an invalid model record: a key of metrics must be text of at most "
                              "64 characters; got 'kkk") and len(message) < 300, message[:400]

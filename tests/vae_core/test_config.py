"""Configs validate themselves: a bad setting raises ValueError naming the setting, before any work."""
import pytest
import torch

from vae_core import ImageDataset, ModelConfig, TrainConfig, build_model, fit

TINY = dict(image_size=8, hidden_dims=(32,))


@pytest.mark.parametrize("kwargs, word", [
    (dict(variant="vae", condition="label"), "unconditional"),
    (dict(variant="vae", condition="quadrants"), "unconditional"),
    (dict(variant="cvae", condition="none"), "condition"),
    (dict(variant="gsnn", condition="none"), "condition"),
    (dict(variant="baseline", condition="none"), "condition"),
    (dict(variant="cvae", condition="label", latent_dim=0), "latent_dim"),
    (dict(variant="cvae", condition="label", latent_dim=65), "latent_dim"),
    (dict(variant="hybrid", condition="label", alpha=1.5), "alpha"),
    (dict(variant="hybrid", condition="label", alpha=-0.1), "alpha"),
    (dict(variant="hybrid", condition="label", alpha=float("nan")), "alpha"),
    (dict(variant="cvae", condition="quadrants", quadrants=4), "quadrants"),
    (dict(variant="cvae", condition="label", prior="uniform"), "prior"),
    (dict(variant="vqvae"), "variant"),
    (dict(condition="colour"), "condition"),
    (dict(hidden_dims=()), "hidden_dims"),
    (dict(hidden_dims=(0,)), "hidden_dims"),
    (dict(image_size=7), "image_size"),
])
def test_bad_model_config_raises(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs, word", [
    (dict(lr=0), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("inf")), "lr"),
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=0), "epochs"),
    (dict(beta=-1), "beta"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(dataset="cifar10"), "dataset"),
    (dict(lr_decay=0), "lr_decay"),
    (dict(device="tpu"), "device"),
])
def test_bad_train_config_raises(kwargs, word):
    with pytest.raises(ValueError, match=word):
        TrainConfig(**kwargs)


def test_configs_round_trip_through_dicts():
    m = ModelConfig(variant="hybrid", condition="quadrants", quadrants=2, alpha=0.25, hidden_dims=(64, 32))
    t = TrainConfig(epochs=3, lr=3e-4, keep_best=True)
    assert ModelConfig.from_dict(m.to_dict()) == m
    assert TrainConfig.from_dict(t.to_dict()) == t
    assert m.to_dict()["hidden_dims"] == [64, 32]
    with pytest.raises(ValueError, match="no setting named"):
        ModelConfig.from_dict({"latent": 2})


def test_describe_and_flags():
    assert ModelConfig().describe() == "vae | 2-D latent"
    cfg = ModelConfig(variant="hybrid", condition="quadrants", quadrants=0, alpha=0.5)
    assert cfg.describe() == "hybrid | quadrants 1-3 | 2-D latent | alpha 0.5"
    assert cfg.is_conditional and cfg.has_latent
    base = ModelConfig(variant="baseline", condition="label")
    assert base.is_conditional and not base.has_latent


def test_fit_refuses_labels_beyond_num_classes(tiny_data):
    model = build_model(ModelConfig(variant="cvae", condition="label", num_classes=5, **TINY))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="label"):
        fit(model, tiny_data, TrainConfig(epochs=1, batch_size=32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "fit changed weights"


def test_fit_refuses_image_size_mismatch(tiny_data):
    model = build_model(ModelConfig(image_size=28, hidden_dims=(32,)))
    with pytest.raises(ValueError, match="28x28"):
        fit(model, tiny_data, TrainConfig(epochs=1, batch_size=32))


def test_fit_refuses_an_empty_training_set():
    empty = ImageDataset(torch.zeros(0, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    model = build_model(ModelConfig(**TINY))
    with pytest.raises(ValueError, match="empty"):
        fit(model, empty, TrainConfig(epochs=1))


def test_model_refuses_out_of_range_labels():
    model = build_model(ModelConfig(variant="cvae", condition="label", num_classes=10, **TINY))
    with pytest.raises(ValueError, match="labels"):
        model.sample(torch.tensor([3, 10]), 2)
    with pytest.raises(ValueError, match="pass x"):
        model.loss(torch.rand(4, 64), None)

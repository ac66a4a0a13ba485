"""Polyak / EMA weight averaging (TrainConfig.ema_decay, torch.optim.swa_utils.AveragedModel): the per-epoch
evaluation, keep_best and the weights fit hands back are the averaged ones, not the raw optimiser weights."""
import pytest
import torch

from vae_core import ImageDataset, ModelConfig, TrainConfig, build_model, fit
from vae_core.training import TrainingData, evaluation_terms

TINY = dict(image_size=8, hidden_dims=(16, 16))


class RawWeights:
    """Snapshots the model's raw weights after every step and at every epoch end, and the epoch losses."""

    def __init__(self, model):
        self.model, self.steps, self.epoch_ends, self.eval_losses = model, [], [], []

    def on_step(self, info):
        self.steps.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    def on_epoch(self, info):
        self.epoch_ends.append(self.steps[-1])
        self.eval_losses.append(info.eval["loss"])


def _split(tiny_data):
    train = ImageDataset(tiny_data.images[:192], tiny_data.labels[:192], "mnist", "train")
    val = ImageDataset(tiny_data.images[192:], tiny_data.labels[192:], "mnist", "validation")
    return TrainingData(train, val)


def _close(a, b):
    return all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.9", True, None])
def test_an_ema_decay_out_of_range_is_refused_with_a_sentence(value):
    with pytest.raises(ValueError, match=r"ema_decay \(weight averaging\) must lie in \[0, 1\)"):
        TrainConfig(ema_decay=value)


def test_the_handed_back_weights_are_the_moving_average_not_the_raw_ones(tiny_data):
    decay = 0.9
    data = _split(tiny_data)
    model = build_model(ModelConfig(**TINY), seed=0)
    raw = RawWeights(model)
    result = fit(model, data, TrainConfig(epochs=2, batch_size=32, lr=1e-2, ema_decay=decay), [raw])
    assert result.ok and len(raw.steps) == 12
    ema = {k: v.clone() for k, v in raw.steps[0].items()}  # AveragedModel copies the first step's weights
    for step in raw.steps[1:]:
        for k in ema:
            ema[k] += (1 - decay) * (step[k] - ema[k])
    final = model.state_dict()
    assert _close(final, ema), "fit hands back the averaged weights"
    assert not _close(final, raw.steps[-1]), "not the raw weights of the last step"
    # the per-epoch evaluation looked at the averaged weights too
    assert evaluation_terms(model, data.eval, seed=0)[0]["loss"] == pytest.approx(raw.eval_losses[-1], abs=1e-4)
    assert "averaged with decay 0.9" in result.message


def test_keep_best_keeps_the_best_averaged_weights(tiny_data):
    data = _split(tiny_data)
    model = build_model(ModelConfig(**TINY), seed=0)
    raw = RawWeights(model)
    result = fit(model, data, TrainConfig(epochs=4, batch_size=32, lr=3e-2, keep_best=True, ema_decay=0.8), [raw])
    best = min(range(4), key=raw.eval_losses.__getitem__)
    assert result.best_epoch == best
    assert evaluation_terms(model, data.eval, seed=0)[0]["loss"] == pytest.approx(raw.eval_losses[best], abs=1e-4)
    assert not _close(model.state_dict(), raw.epoch_ends[best]), "the kept weights are the average, not the raw"


def test_ema_decay_zero_trains_exactly_as_before(tiny_data):
    data = _split(tiny_data)
    a, b = build_model(ModelConfig(**TINY), seed=0), build_model(ModelConfig(**TINY), seed=0)
    fit(a, data, TrainConfig(epochs=1, batch_size=32))
    fit(b, data, TrainConfig(epochs=1, batch_size=32, ema_decay=0.0))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())

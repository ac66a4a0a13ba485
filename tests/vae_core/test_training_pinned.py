"""fit()'s outcome pinned: two short seeded runs on the synthetic data give these losses, messages and weights.

Recorded before the training loop was split into named steps (vae_core/training.py), so that any change of
behaviour in a refactor (an extra random draw, a different order of EMA update / evaluation / keep_best, a
reworded message) fails here. The figures were taken on the CPU with one torch thread (threads=1: a different count
can change the last bits of a sum); the tolerance only absorbs float rounding that differs between CPUs, far below
what a changed step would move."""
import pytest
import torch

from vae_core import ModelConfig, TrainConfig, TrainingData, build_model, fit

TOL = dict(rel=1e-5)


def checksum(model) -> float:
    """A weighted sum of every floating-point weight and buffer (position-weighted, so a swap shows)."""
    total = 0.0
    for v in model.state_dict().values():
        if v.is_floating_point():
            flat = v.double().flatten()
            total += float((flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64).remainder(7).add(1)).sum())
    return total


class StopAfter:
    def __init__(self, n):
        self.n, self.steps = n, 0

    def on_step(self, info):
        self.steps += 1

    def should_stop(self):
        return self.steps >= self.n


def split(tiny_data):
    return TrainingData(tiny_data.subset(0, 200), tiny_data.subset(200))


def test_a_completed_run_with_ema_keep_best_dropout_and_warmup_is_pinned(tiny_data):
    model = build_model(ModelConfig(hidden_dims=(32,), image_size=8, dropout=0.1), seed=1)
    result = fit(model, split(tiny_data), TrainConfig(epochs=3, batch_size=64, seed=1, keep_best=True,
                                                      ema_decay=0.9, kl_warmup_epochs=2, lr_decay=0.9), threads=1)
    assert result.status == "completed" and result.epochs_completed == 3 and result.best_epoch == 2
    assert result.message == ("trained 3 epochs; kept the weights of epoch 3, the best on the evaluation set "
                              "(weights averaged with decay 0.9)")
    assert len(result.history["loss"]) == 12 and result.has_good_state and not model.training
    assert result.history["loss"][-1] == pytest.approx(44.03312301635742, **TOL)
    assert [e["eval"]["loss"] for e in result.history["epochs"]] == pytest.approx(
        [44.286533219473704, 44.16921084267752, 44.02042654582432], **TOL)
    assert checksum(model) == pytest.approx(-54.29282904486172, **TOL)


def test_a_stopped_run_that_keeps_its_best_epoch_is_pinned(tiny_data):
    model = build_model(ModelConfig(variant="cvae", condition="label", hidden_dims=(32,), image_size=8), seed=2)
    result = fit(model, split(tiny_data), TrainConfig(epochs=5, batch_size=64, seed=2, keep_best=True),
                 [StopAfter(9)], threads=1)
    assert result.status == "stopped" and result.epochs_completed == 2 and result.best_epoch == 1
    assert result.message == ("stopped by request in epoch 3, after 9 steps; kept the weights of epoch 2, "
                              "the best on the evaluation set")
    assert len(result.history["loss"]) == 9 and result.has_good_state
    assert result.history["loss"][-1] == pytest.approx(44.199195861816406, **TOL)
    assert [e["eval"]["loss"] for e in result.history["epochs"]] == pytest.approx(
        [44.50642033985683, 44.27725669315883], **TOL)
    assert checksum(model) == pytest.approx(-69.06362147201435, **TOL)

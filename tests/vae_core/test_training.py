"""fit(): reproducibility, stopping, divergence, keep_best, KL warm-up, callbacks; prepare_data."""
import math

import pytest
import torch

import vae_core.training as training
from vae_core import (EpochInfo, ModelConfig, StepInfo, TrainConfig, TrainingData, build_model, fit,
                      prepare_data)

TINY = dict(hidden_dims=(32,), image_size=8)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder:
    """Keeps every StepInfo / EpochInfo and a copy of the weights after every epoch."""

    def __init__(self, model=None):
        self.steps, self.epochs, self.snapshots, self.model = [], [], [], model

    def on_step(self, info):
        self.steps.append(info)

    def on_epoch(self, info):
        self.epochs.append(info)
        if self.model is not None:
            self.snapshots.append(state(self.model))


@pytest.mark.parametrize("variant, condition, quadrants", [("vae", "none", 0), ("hybrid", "quadrants", 0),
                                                           ("cvae", "label", 0)])
def test_same_seed_gives_identical_weights(variant, condition, quadrants, tiny_data):
    cfg = ModelConfig(variant=variant, condition=condition, quadrants=quadrants, **TINY)
    tc = TrainConfig(epochs=2, batch_size=50, seed=3)
    a, b, c = build_model(cfg, seed=3), build_model(cfg, seed=3), build_model(cfg, seed=3)
    ra, rb = fit(a, tiny_data, tc), fit(b, tiny_data, tc)
    assert same(state(a), state(b))
    assert ra.history["loss"] == rb.history["loss"]
    fit(c, tiny_data, tc.replace(seed=4))
    assert not same(state(a), state(c))


def test_callbacks_receive_step_and_epoch_info(tiny_data):
    model = build_model(ModelConfig(variant="cvae", condition="label", **TINY))
    rec = Recorder()
    only_epochs = type("OnlyEpochs", (), {"on_epoch": lambda self, info: self.seen.append(info.epoch),
                                          "seen": []})()
    data = TrainingData(tiny_data.subset(0, 200), tiny_data.subset(200))
    result = fit(model, data, TrainConfig(epochs=3, batch_size=64), [rec, only_epochs])

    assert result.status == "completed" and result.epochs_completed == 3
    steps_per_epoch = math.ceil(200 / 64)
    assert len(rec.steps) == 3 * steps_per_epoch
    assert all(isinstance(s, StepInfo) for s in rec.steps)
    assert [s.global_step for s in rec.steps] == list(range(1, 3 * steps_per_epoch + 1))
    assert [s.step for s in rec.steps[:steps_per_epoch]] == list(range(steps_per_epoch))
    assert {s.total_steps for s in rec.steps} == {3 * steps_per_epoch}
    assert {s.steps_per_epoch for s in rec.steps} == {steps_per_epoch}
    for s in rec.steps:
        assert math.isfinite(s.loss) and s.images_per_sec > 0 and s.elapsed > 0 and s.eta >= 0
        assert s.loss == pytest.approx(s.recon + s.kl_weight * s.kl, rel=1e-5)
    assert rec.steps[-1].eta == 0
    assert [s.elapsed for s in rec.steps] == sorted(s.elapsed for s in rec.steps)

    assert [e.epoch for e in rec.epochs] == [0, 1, 2] and only_epochs.seen == [0, 1, 2]
    for e in rec.epochs:
        assert isinstance(e, EpochInfo) and e.epochs == 3
        assert set(e.train) == {"loss", "recon", "kl"} and set(e.eval) == {"loss", "recon", "kl"}
        assert all(math.isfinite(v) for v in e.eval.values())
        # the KL of each latent dimension, recorded every epoch, adds up to the epoch's KL
        assert len(e.kl_per_dim) == model.config.latent_dim
        assert sum(e.kl_per_dim) == pytest.approx(e.eval["kl"], rel=1e-6)
    assert rec.epochs[0].is_best  # the first evaluation is always the best so far

    assert len(result.history["loss"]) == len(result.history["step"]) == 3 * steps_per_epoch
    assert [r["epoch"] for r in result.history["epochs"]] == [0, 1, 2]
    assert [r["kl_per_dim"] for r in result.history["epochs"]] == [e.kl_per_dim for e in rec.epochs]
    assert result.history["epochs"][-1]["eval"] == rec.epochs[-1].eval
    assert result.images_per_sec > 0 and result.elapsed > 0


def test_without_eval_data_epochs_report_no_eval(tiny_data):
    rec = Recorder()
    result = fit(build_model(ModelConfig(**TINY)), tiny_data, TrainConfig(epochs=1, batch_size=128), [rec])
    assert rec.epochs[0].eval is None and result.best_epoch is None


class StopAfter:
    def __init__(self, n):
        self.n, self.steps, self.asked = n, 0, 0

    def on_step(self, info):
        self.steps += 1

    def should_stop(self):
        self.asked += 1
        return self.steps >= self.n


def test_should_stop_stops_within_one_batch(tiny_data):
    model = build_model(ModelConfig(**TINY))
    stopper = StopAfter(5)
    rec = Recorder()
    result = fit(model, tiny_data, TrainConfig(epochs=10, batch_size=16), [stopper, rec])
    assert result.status == "stopped" and result.ok
    assert "stopped" in result.message
    assert len(rec.steps) == 5 and rec.steps[-1].global_step == 5
    assert len(result.history["loss"]) == 5
    assert rec.epochs == []  # stopped in the first epoch (16 steps long)
    assert stopper.asked == 6  # asked before each of the five batches, then once more


def test_should_stop_before_the_first_batch_changes_nothing(tiny_data):
    model = build_model(ModelConfig(**TINY))
    before = state(model)
    result = fit(model, tiny_data, TrainConfig(epochs=1), [StopAfter(0)])
    assert result.status == "stopped" and result.epochs_completed == 0
    assert same(before, state(model))


def test_huge_learning_rate_diverges_and_keeps_initial_weights(tiny_data):
    model = build_model(ModelConfig(variant="cvae", condition="label", **TINY))
    before = state(model)
    result = fit(model, tiny_data, TrainConfig(epochs=3, batch_size=32, lr=1e6))
    assert result.status == "diverged" and not result.ok
    assert "nan" in result.message.lower() or "inf" in result.message.lower()
    assert "learning rate" in result.message
    assert same(before, state(model))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_loss_restores_the_last_good_epoch(tiny_data, monkeypatch):
    model = build_model(ModelConfig(**TINY))
    real_loss = model.loss
    calls = {"n": 0}
    steps_per_epoch = math.ceil(256 / 32)
    nan_at = 2 * steps_per_epoch + 3  # the 4th step of the 3rd epoch

    def flaky_loss(y, x=None, beta=1.0):
        calls["n"] += 1
        terms = real_loss(y, x, beta)
        if calls["n"] >= nan_at:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(model, "loss", flaky_loss)
    rec = Recorder(model)
    result = fit(model, tiny_data, TrainConfig(epochs=5, batch_size=32), [rec])
    assert result.status == "diverged"
    assert result.epochs_completed == 2
    assert "epoch 3" in result.message and "end of epoch 2" in result.message
    assert len(rec.snapshots) == 2
    assert same(state(model), rec.snapshots[-1])
    assert len(result.history["loss"]) == nan_at - 1  # the bad step is not recorded


def test_keep_best_restores_the_best_epoch(tiny_data, monkeypatch):
    scripted = iter([5.0, 3.0, 4.0, 6.0])
    monkeypatch.setattr(training, "evaluation_terms",
                        lambda *a, **k: ({"loss": next(scripted), "recon": 1.0, "kl": 1.0}, None))
    data = TrainingData(tiny_data, tiny_data.subset(0, 10))
    model = build_model(ModelConfig(**TINY))
    rec = Recorder(model)
    result = fit(model, data, TrainConfig(epochs=4, batch_size=64, keep_best=True), [rec])
    assert result.status == "completed" and result.best_epoch == 1
    assert [e.is_best for e in rec.epochs] == [True, True, False, False]
    assert same(state(model), rec.snapshots[1])
    assert not same(state(model), rec.snapshots[-1])
    assert "epoch 2" in result.message


def test_without_keep_best_the_last_weights_stay(tiny_data, monkeypatch):
    scripted = iter([5.0, 3.0, 4.0])
    monkeypatch.setattr(training, "evaluation_terms",
                        lambda *a, **k: ({"loss": next(scripted), "recon": 1.0, "kl": 1.0}, None))
    model = build_model(ModelConfig(**TINY))
    rec = Recorder(model)
    result = fit(model, TrainingData(tiny_data, tiny_data.subset(0, 10)), TrainConfig(epochs=3, batch_size=64),
                 [rec])
    assert result.best_epoch == 1
    assert same(state(model), rec.snapshots[-1])


def test_kl_warmup_schedule(tiny_data):
    rec = Recorder()
    beta, warmup, epochs = 0.5, 2, 3
    fit(build_model(ModelConfig(**TINY)), tiny_data,
        TrainConfig(epochs=epochs, batch_size=64, beta=beta, kl_warmup_epochs=warmup), [rec])
    spe = 4
    weights = [s.kl_weight for s in rec.steps]
    expected = [beta * min(1.0, (e + k / spe) / warmup) for e in range(epochs) for k in range(spe)]
    assert weights == pytest.approx(expected)
    assert weights[0] == 0.0 and weights[-1] == beta
    assert all(a <= b for a, b in zip(weights, weights[1:]))
    no_warmup = TrainConfig(beta=0.7)
    assert no_warmup.kl_weight(0, 0.0) == 0.7


def test_prepare_data_splits(fake_data_dir):
    full = prepare_data(TrainConfig(), root=fake_data_dir)
    assert (len(full.train), len(full.eval)) == (300, 100) and full.eval.split == "test"

    val = prepare_data(TrainConfig(val_fraction=0.2), root=fake_data_dir)
    assert (len(val.train), len(val.eval)) == (240, 60) and val.eval.split == "validation"
    # the held-out images are not in the training set
    train_rows = {bytes(r) for r in val.train.images.reshape(240, -1).numpy()}
    assert sum(bytes(r) in train_rows for r in val.eval.images.reshape(60, -1).numpy()) == 0

    lim = prepare_data(TrainConfig(train_limit=50, eval_limit=20), root=fake_data_dir)
    assert (len(lim.train), len(lim.eval)) == (50, 20)


class BlowUpAtEpochEnd:
    """Sets one weight to inf after the last optimiser step of `epoch` (counting from 0): the loss of every
    step was finite, but the weights at the epoch's end are not (a huge learning rate that explodes late)."""

    def __init__(self, model, epoch: int, value: float = float("inf")):
        self.model, self.epoch, self.value = model, epoch, value

    def on_step(self, info):
        if info.epoch == self.epoch and info.step == info.steps_per_epoch - 1:
            with torch.no_grad():
                next(self.model.parameters()).view(-1)[0] = self.value


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_weights_that_blow_up_at_an_epoch_end_are_not_a_good_state(tiny_data, value):
    model = build_model(ModelConfig(**TINY))
    rec = Recorder(model)
    result = fit(model, tiny_data, TrainConfig(epochs=4, batch_size=64), [rec, BlowUpAtEpochEnd(model, 1, value)])
    assert result.status == "diverged" and not result.ok
    assert "epoch 2" in result.message and "end of epoch 1" in result.message
    assert result.epochs_completed == 1 and result.has_good_state
    assert len(rec.snapshots) == 1 and same(state(model), rec.snapshots[0])   # back to epoch 1's weights
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_run_that_never_had_a_good_state_says_so(tiny_data):
    model = build_model(ModelConfig(**TINY))
    before = state(model)
    result = fit(model, tiny_data, TrainConfig(epochs=3, batch_size=64), [BlowUpAtEpochEnd(model, 0)])
    assert result.status == "diverged" and result.epochs_completed == 0
    assert not result.has_good_state and "initial weights" in result.message
    assert same(before, state(model))


def test_keep_best_never_keeps_a_non_finite_epoch(tiny_data):
    model = build_model(ModelConfig(**TINY))
    data = TrainingData(tiny_data.subset(0, 200), tiny_data.subset(200))
    result = fit(model, data, TrainConfig(epochs=3, batch_size=64, keep_best=True),
                 [BlowUpAtEpochEnd(model, 2)])
    assert result.status == "diverged" and result.has_good_state
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_stop_after_the_weights_blew_up_restores_and_reports_divergence(tiny_data):
    class StopAfterBlowUp(BlowUpAtEpochEnd):
        def on_step(self, info):  # mid-epoch this time: the next thing fit sees is the stop request
            if info.epoch == self.epoch and info.step == 0:
                with torch.no_grad():
                    next(self.model.parameters()).view(-1)[0] = float("inf")

        def should_stop(self):
            return not all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
    model = build_model(ModelConfig(**TINY))
    rec = Recorder(model)
    result = fit(model, tiny_data, TrainConfig(epochs=4, batch_size=64), [rec, StopAfterBlowUp(model, 1)])
    assert result.status == "diverged" and "stopped by request" in result.message
    assert result.has_good_state and same(state(model), rec.snapshots[0])


def test_completed_and_stopped_runs_have_a_good_state_but_an_untouched_model_does_not(tiny_data):
    model = build_model(ModelConfig(**TINY))
    assert fit(model, tiny_data, TrainConfig(epochs=1, batch_size=64)).has_good_state
    assert fit(build_model(ModelConfig(**TINY)), tiny_data, TrainConfig(epochs=3), [StopAfter(2)]).has_good_state
    assert not fit(build_model(ModelConfig(**TINY)), tiny_data, TrainConfig(epochs=3), [StopAfter(0)]).has_good_state

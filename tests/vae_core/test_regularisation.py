"""Dropout (ModelConfig.dropout) and decoupled weight decay (TrainConfig.weight_decay): validated, recorded in a
checkpoint and rebuilt from it; dropout 0 leaves the module layout and state-dict keys of older checkpoints."""
import pytest
import torch
from torch import nn

from vae_core import ImageDataset, ModelConfig, TrainConfig, build_model, fit, load_checkpoint
from vae_core.checkpoints import save_checkpoint
from vae_core.record import parse_record, record_from_fit
from vae_core.training import make_optimizer

TINY = dict(image_size=8, hidden_dims=(16, 16))


def test_dropout_zero_keeps_the_layout_and_keys_of_older_checkpoints():
    model = build_model(ModelConfig(**TINY))
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    # the keys every checkpoint saved before dropout existed holds: Linear at 0, 2, 4 with ReLU between
    assert [k for k in model.state_dict() if k.startswith("generation_net")] == [
        f"generation_net.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]
    assert [k for k in model.state_dict() if k.startswith("recognition_net")] == [
        f"recognition_net.body.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]
    assert ModelConfig.from_dict({k: v for k, v in ModelConfig(**TINY).to_dict().items() if k != "dropout"}
                                 ).dropout == 0.0  # a config written before the field existed


@pytest.mark.parametrize("variant, condition", [("vae", "none"), ("cvae", "label"), ("baseline", "label")])
def test_dropout_follows_every_hidden_relu_and_is_off_in_eval_mode(variant, condition):
    model = build_model(ModelConfig(variant=variant, condition=condition, dropout=0.5, **TINY))
    for net in (model.prior_net and model.prior_net.body, model.recognition_net and model.recognition_net.body,
                model.generation_net, model.baseline_net):
        if net is None:
            continue
        kinds = [type(m).__name__ for m in net]
        assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"], kinds
        assert all(m.p == 0.5 for m in net if isinstance(m, nn.Dropout))
    z = torch.randn(4, 2) if model.config.has_latent else None
    x = torch.tensor([1, 2, 3, 4]) if condition == "label" else None
    model.eval()
    assert torch.equal(model.decode(z, x), model.decode(z, x))
    model.train()
    assert not torch.equal(model.decode(z, x), model.decode(z, x)), "dropout acts while training"


@pytest.mark.parametrize("kwargs, word", [(dict(dropout=-0.1), "dropout"), (dict(dropout=0.95), "dropout"),
                                          (dict(dropout=float("nan")), "dropout"), (dict(dropout="0.1"), "dropout"),
                                          (dict(dropout=True), "dropout")])
def test_bad_dropout_is_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ModelConfig(**TINY, **kwargs)


@pytest.mark.parametrize("value", [-1e-3, 11.0, float("inf"), "0.1", None])
def test_bad_weight_decay_is_refused(value):
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(weight_decay=value)


def test_weight_decay_picks_adamw_and_shrinks_weights_without_gradient():
    model = build_model(ModelConfig(**TINY))
    assert type(make_optimizer(model, 1e-3)) is torch.optim.Adam
    opt = make_optimizer(model, 0.1, weight_decay=0.5)
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 0.5
    w = model.generation_net[0].weight
    before = w.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradient: only the decoupled decay moves the weights, by lr * wd = 5 %
    assert torch.allclose(w.detach(), before * 0.95, atol=1e-6)


def test_a_dropout_model_trained_with_weight_decay_round_trips_through_a_checkpoint(tiny_data, tmp_path):
    cfg = ModelConfig(dropout=0.2, **TINY)
    tcfg = TrainConfig(epochs=2, batch_size=64, weight_decay=0.1, val_fraction=0.0)
    model = build_model(cfg)
    data = ImageDataset(tiny_data.images, tiny_data.labels, "mnist", "train")
    result = fit(model, data, tcfg)
    assert result.ok and not model.training, "fit hands the model back in eval mode"
    record = record_from_fit(cfg, tcfg, result, name="reg")
    again = parse_record(record.to_json())
    assert again.model_config.dropout == 0.2 and again.train_config.weight_decay == 0.1
    path = save_checkpoint(tmp_path / "reg.safetensors", model, record)
    loaded, rec = load_checkpoint(path)
    assert rec.model_config.dropout == 0.2 and not loaded.training
    assert any(isinstance(m, nn.Dropout) for m in loaded.generation_net)
    z = torch.randn(3, 2)
    assert torch.allclose(loaded.decode(z), model.decode(z), atol=1e-6)


def test_a_header_with_an_out_of_range_dropout_is_refused():
    import json
    from vae_core.record import CheckpointError
    cfg = ModelConfig(**TINY)
    header = {"format": "latent-lab-checkpoint", "format_version": 1,
              "model_config": dict(cfg.to_dict(), dropout=2.0)}
    with pytest.raises((CheckpointError, ValueError), match="dropout"):
        parse_record(json.dumps(header))

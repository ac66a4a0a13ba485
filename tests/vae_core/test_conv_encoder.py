"""ModelConfig.encoder = 'conv': a convolutional recognition net, with the generation net still an MLP (the browser
decodes it); recorded in and rebuilt from a checkpoint; the default 'mlp' keeps the old layout."""
import pytest
import torch
from torch import nn

from vae_core import ModelConfig, TrainConfig, build_model, fit, load_checkpoint
from vae_core.checkpoints import save_checkpoint
from vae_core.models import ConvGaussianNet, conv_stack
from vae_core.record import record_from_fit


@pytest.mark.parametrize("size, flat", [(28, 64 * 4 * 4), (8, 64 * 1 * 1), (2, 64)])
def test_conv_stack_halves_the_side_three_times(size, flat):
    stack, n = conv_stack(size)
    assert n == flat
    assert stack(torch.zeros(3, 1, size, size)).shape == (3, flat)


@pytest.mark.parametrize("variant, condition, quadrants", [("vae", "none", 0), ("cvae", "label", 0),
                                                           ("hybrid", "quadrants", 0)])
def test_a_conv_encoder_encodes_trains_and_leaves_the_decoder_an_mlp(variant, condition, quadrants, tiny_data):
    cfg = ModelConfig(variant=variant, condition=condition, quadrants=quadrants, image_size=8, hidden_dims=(16,),
                      encoder="conv")
    model = build_model(cfg)
    assert isinstance(model.recognition_net, ConvGaussianNet)
    assert all(isinstance(m, (nn.Linear, nn.ReLU)) for m in model.generation_net)
    result = fit(model, tiny_data, TrainConfig(epochs=1, batch_size=64))
    assert result.ok and result.has_good_state
    y = tiny_data.images[:5].float() / 255
    x = None if condition == "none" else (tiny_data.labels[:5] if condition == "label" else -torch.ones(5, 64))
    mu, logvar = model.encode(y, x)
    assert mu.shape == logvar.shape == (5, 2) and torch.isfinite(mu).all()


def test_the_condition_reaches_the_conv_encoders_head():
    model = build_model(ModelConfig(variant="cvae", condition="label", image_size=8, hidden_dims=(16,),
                                    encoder="conv"))
    y = torch.rand(2, 64)
    a, _ = model.encode(y, torch.tensor([0, 0]))
    b, _ = model.encode(y, torch.tensor([3, 3]))
    assert not torch.allclose(a, b)


def test_bad_encoder_is_refused_and_mlp_is_the_default():
    with pytest.raises(ValueError, match="encoder"):
        ModelConfig(encoder="transformer")
    assert ModelConfig().encoder == "mlp"
    assert not any(isinstance(m, nn.Conv2d) for m in build_model(ModelConfig(hidden_dims=(8,))).modules())


def test_a_conv_model_round_trips_through_a_checkpoint(tiny_data, tmp_path):
    cfg = ModelConfig(image_size=8, hidden_dims=(16,), encoder="conv", dropout=0.1)
    tcfg = TrainConfig(epochs=1, batch_size=64)
    model = build_model(cfg)
    result = fit(model, tiny_data, tcfg)
    path = save_checkpoint(tmp_path / "conv.safetensors", model, record_from_fit(cfg, tcfg, result, name="c"))
    loaded, record = load_checkpoint(path)
    assert record.model_config.encoder == "conv" and isinstance(loaded.recognition_net, ConvGaussianNet)
    y = torch.rand(4, 64)
    assert torch.allclose(loaded.encode(y)[0], model.encode(y)[0], atol=1e-6)

"""TrainConfig.freeze_decoder: only the recognition net (encoder) trains; the generative model keeps its weights
bit for bit, takes no gradient during the run and is trainable again afterwards."""
import pytest
import torch

from vae_core import ImageDataset, ModelConfig, TrainConfig, build_model, fit

TINY = dict(image_size=8, hidden_dims=(16, 16))


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("variant, condition, encoder", [("vae", "none", "mlp"), ("vae", "none", "conv"),
                                                         ("cvae", "label", "mlp")])
def test_only_the_encoder_moves(tiny_data, variant, condition, encoder):
    model = build_model(ModelConfig(variant=variant, condition=condition, encoder=encoder, **TINY), seed=0)
    frozen_nets = [n for n in (model.generation_net, model.prior_net) if n is not None]
    before = [_state(n) for n in frozen_nets]
    enc_before = _state(model.recognition_net)
    data = ImageDataset(tiny_data.images, tiny_data.labels, "mnist", "train")
    result = fit(model, data, TrainConfig(epochs=1, batch_size=64, lr=1e-2, freeze_decoder=True, ema_decay=0.5))
    assert result.ok
    for net, old in zip(frozen_nets, before):
        assert all(torch.equal(net.state_dict()[k], old[k]) for k in old), "the decoder / prior did not move"
    assert any(not torch.equal(model.recognition_net.state_dict()[k], v) for k, v in enc_before.items())
    assert all(p.requires_grad for p in model.parameters()), "requires_grad is put back after the run"


def test_a_model_without_an_encoder_is_refused(tiny_data):
    model = build_model(ModelConfig(variant="gsnn", condition="label", **TINY))
    data = ImageDataset(tiny_data.images, tiny_data.labels, "mnist", "train")
    with pytest.raises(ValueError, match="freeze_decoder trains only the recognition net.*gsnn model has none"):
        fit(model, data, TrainConfig(epochs=1, freeze_decoder=True))


def test_freeze_decoder_must_be_a_bool():
    with pytest.raises(ValueError, match=r"freeze_decoder \(train only the encoder\) must be true or false; got 'yes'"):
        TrainConfig(freeze_decoder="yes")

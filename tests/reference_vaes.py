"""Reference VAEs written from their published layer sizes, for the importer tests and the pages' tests:
PyTorch's examples/vae (fc1/fc21/fc22/fc3/fc4), timbmg/VAE-CVAE-MNIST, the seed notes' Keras VAE (as torch
layers, written to HDF5 the way Keras lays its files out), and two small models that follow the protocol of
vae_core/external.py (a convolutional VAE and a label CVAE). Each is trained a few steps by its own loss."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper
from safetensors.torch import save as safetensors_bytes
from torch import nn

from vae_core import CheckpointRecord, ModelConfig
from vae_core.external import DECODER_TENSOR, ENCODER_TENSOR
from vae_core.record import ModelSource


def train_a_few_steps(model: nn.Module, loss_of, steps: int = 5, pixels: int = 784, seed: int = 0) -> nn.Module:
    """A few Adam steps on random grey images, so the weights are no longer their initial values."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x = torch.rand(32, pixels)
        loss = loss_of(model, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def elbo(recon_probs, x, mu, logvar):
    """The reference codes' loss: BCE on probabilities plus the closed-form KL."""
    return (F.binary_cross_entropy(recon_probs, x, reduction="sum")
            - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()))


# ----------------------------------------------------------------------------- fc1 / fc21 / fc22 / fc3 / fc4
class FcVAE(nn.Module):
    """The layout of PyTorch's examples/vae/main.py (784-400-20) and of the seed notes' PyTorch VAE (784-512-2)."""

    def __init__(self, hidden: int, latent: int):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))


def fc_loss(model, x):
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return elbo(model.decode(z), x, mu, logvar)


class TimbmgEncoder(nn.Module):
    """timbmg's Encoder: an MLP with a ReLU after every layer on [x, one-hot c], then two linear heads."""

    def __init__(self, layer_sizes, latent_size, conditional, num_labels):
        super().__init__()
        self.conditional, self.num_labels = conditional, num_labels
        sizes = list(layer_sizes)
        if conditional:
            sizes[0] += num_labels
        self.MLP = nn.Sequential()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.MLP.add_module(name=f"L{i}", module=nn.Linear(a, b))
            self.MLP.add_module(name=f"A{i}", module=nn.ReLU())
        self.linear_means = nn.Linear(sizes[-1], latent_size)
        self.linear_log_var = nn.Linear(sizes[-1], latent_size)

    def forward(self, x, c=None):
        if self.conditional:
            x = torch.cat((x, F.one_hot(c, self.num_labels).float()), dim=-1)
        x = self.MLP(x)
        return self.linear_means(x), self.linear_log_var(x)


class TimbmgDecoder(nn.Module):
    """timbmg's Decoder: an MLP on [z, one-hot c], ReLU between layers and a Sigmoid at the end."""

    def __init__(self, layer_sizes, latent_size, conditional, num_labels):
        super().__init__()
        self.conditional, self.num_labels = conditional, num_labels
        input_size = latent_size + num_labels if conditional else latent_size
        self.MLP = nn.Sequential()
        for i, (a, b) in enumerate(zip([input_size] + layer_sizes[:-1], layer_sizes)):
            self.MLP.add_module(name=f"L{i}", module=nn.Linear(a, b))
            if i + 1 < len(layer_sizes):
                self.MLP.add_module(name=f"A{i}", module=nn.ReLU())
            else:
                self.MLP.add_module(name="sigmoid", module=nn.Sigmoid())

    def forward(self, z, c=None):
        if self.conditional:
            z = torch.cat((z, F.one_hot(c, self.num_labels).float()), dim=-1)
        return self.MLP(z)


class TimbmgVAE(nn.Module):
    def __init__(self, encoder_layer_sizes, latent_size, decoder_layer_sizes, conditional=False, num_labels=0):
        super().__init__()
        self.encoder = TimbmgEncoder(encoder_layer_sizes, latent_size, conditional, num_labels)
        self.decoder = TimbmgDecoder(decoder_layer_sizes, latent_size, conditional, num_labels)


def timbmg_loss(model, x):
    c = torch.randint(0, 10, (x.shape[0],))
    means, log_var = model.encoder(x, c)
    z = means + torch.exp(0.5 * log_var) * torch.randn_like(means)
    return elbo(model.decoder(z, c), x, means, log_var)


class SeedKerasVAE(nn.Module):
    """The seed notes' Keras VAE as torch layers (Dense 784 -> 512 relu, mu and log_sigma heads, Dense 512 relu,
    Dense 784 sigmoid), trained here; written to HDF5 below the way Keras lays its files out."""

    def __init__(self, hidden=512, latent=2):
        super().__init__()
        self.h_q, self.mu, self.log_sigma = nn.Linear(784, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder_hidden, self.decoder_out = nn.Linear(latent, hidden), nn.Linear(hidden, 784)

    def encode(self, x):
        h = F.relu(self.h_q(x))
        return self.mu(h), self.log_sigma(h)

    def decode(self, z):
        return torch.sigmoid(self.decoder_out(F.relu(self.decoder_hidden(z))))


def keras_loss(model, x):
    mu, log_sigma = model.encode(x)
    z = mu + torch.exp(log_sigma / 2) * torch.randn_like(mu)   # the seed's sample_z: log_sigma is log sigma^2
    recon = F.binary_cross_entropy(model.decode(z), x, reduction="sum")
    return recon + 0.5 * torch.sum(torch.exp(log_sigma) + mu.pow(2) - 1.0 - log_sigma)


def write_keras_h5(path: Path, model: SeedKerasVAE, *, names=None, keras3=False, with_config=True, swap_heads=False):
    """A Keras functional model file: root attrs model_config (JSON), group model_weights with layer_names, one
    group per layer with weight_names and datasets named after the weights (Keras 2: 'dense_1/kernel:0';
    Keras 3: 'dense_1/kernel'). `names` renames the five Dense layers; `swap_heads` lists log_sigma first."""
    layers = [("h_q", "relu"), ("mu", "linear"), ("log_sigma", "linear"), ("decoder_hidden", "relu"),
              ("decoder_out", "sigmoid")]
    if swap_heads:
        layers[1], layers[2] = layers[2], layers[1]
    names = names or [f"dense_{i + 1}" for i in range(5)]
    with h5py.File(path, "w") as f:
        config = {"class_name": "Functional", "config": {"name": "vae", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "config": {"name": "input_1"}},
            *[{"class_name": "Dense", "name": n, "config": {"name": n, "activation": act, "units": 0}}
              for n, (_, act) in zip(names, layers)],
            {"class_name": "Lambda", "name": "lambda_1", "config": {"name": "lambda_1"}}]}}
        if with_config:
            f.attrs["model_config"] = json.dumps(config).encode("utf8")
            f.attrs["keras_version"] = b"3.0.0" if keras3 else b"2.2.4"
        group = f.create_group("model_weights") if with_config else f
        group.attrs["layer_names"] = [b"input_1", *[n.encode() for n in names], b"lambda_1"]
        for extra in ("input_1", "lambda_1"):
            group.create_group(extra).attrs["weight_names"] = np.array([], dtype="S1")
        for n, (attr, _) in zip(names, layers):
            linear = getattr(model, attr)
            g = group.create_group(n)
            wn = [f"{n}/kernel" if keras3 else f"{n}/kernel:0", f"{n}/bias" if keras3 else f"{n}/bias:0"]
            g.attrs["weight_names"] = [w.encode() for w in wn]
            g.create_dataset(wn[0], data=linear.weight.detach().numpy().T)   # Keras kernels are [in, out]
            g.create_dataset(wn[1], data=linear.bias.detach().numpy())
    return path


def keras_forward(path: Path, x: np.ndarray, z: np.ndarray, order=("dense_1", "dense_2", "dense_3", "dense_4",
                                                                      "dense_5")):
    """The Keras model's computation, in numpy, straight from the file's kernels: (mu, log_sigma, decoded)."""
    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "model_weights" in f else f

        def dense(name):
            ds = [g[name][w.decode() if isinstance(w, bytes) else w] for w in g[name].attrs["weight_names"]]
            return ds[0][()], ds[1][()]
        (k1, b1), (k2, b2), (k3, b3), (k4, b4), (k5, b5) = (dense(n) for n in order)
    h = np.maximum(x @ k1 + b1, 0)
    out = 1 / (1 + np.exp(-(np.maximum(z @ k4 + b4, 0) @ k5 + b5)))
    return h @ k2 + b2, h @ k3 + b3, out


class TinyConvVAE(nn.Module):
    """A small convolutional VAE following the protocol (a conv encoder, a transposed-conv decoder)."""

    latent_dim, image_size, num_classes, condition, likelihood = 2, 28, 10, "none", "bernoulli"

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(8 * 7 * 7, 2 * self.latent_dim))
        self.dec = nn.Sequential(nn.Linear(self.latent_dim, 8 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (8, 7, 7)),
                                 nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, 1, 4, 2, 1))

    def encode(self, images):
        return self.enc(images).chunk(2, dim=-1)

    def decode(self, z):
        return self.dec(z)


class TinyLabelVAE(nn.Module):
    """A label-conditioned protocol model (a CVAE with a N(0, I) prior), labels as int64."""

    latent_dim, image_size, num_classes, condition = 3, 28, 10, "label"

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784 + 10, 32), nn.ReLU(), nn.Linear(32, 6))
        self.dec = nn.Sequential(nn.Linear(3 + 10, 32), nn.ReLU(), nn.Linear(32, 784))

    def encode(self, images, labels):
        return self.enc(torch.cat([images.flatten(1), F.one_hot(labels, 10).float()], 1)).chunk(2, dim=-1)

    def decode(self, z, labels):
        return self.dec(torch.cat([z, F.one_hot(labels, 10).float()], 1))


def trained(model: nn.Module, steps: int = 5) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    label = model.condition == "label"
    for _ in range(steps):
        x = torch.rand(16, 1, 28, 28)
        c = torch.randint(0, 10, (16,))
        mu, logvar = model.encode(x, c) if label else model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = (model.decode(z, c) if label else model.decode(z)).reshape(16, -1)
        loss = F.binary_cross_entropy_with_logits(logits, x.reshape(16, -1), reduction="sum") \
            + 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


# ----------------------------------------------------------------------------- ONNX checkpoints made by hand
CONFIG = ModelConfig(variant="vae", condition="none", latent_dim=2, prior="standard")


def write_onnx_checkpoint(path, encoder: bytes, decoder: bytes, config: ModelConfig = CONFIG):
    """A checkpoint file holding two graph byte strings as given (no checks on the way in)."""
    record = CheckpointRecord(model_config=config, source=ModelSource(kind="onnx", file="x.pt"))
    tensors = {ENCODER_TENSOR: torch.frombuffer(bytearray(encoder), dtype=torch.uint8),
               DECODER_TENSOR: torch.frombuffer(bytearray(decoder), dtype=torch.uint8)}
    path.write_bytes(safetensors_bytes(tensors, metadata={"latent_lab": record.to_json()}))
    return path


def decoder_graph(nodes, initializers=(), inputs=None, opsets=(("", 17),), z_name="z", z_size=2) -> bytes:
    """A decoder graph z [N, 2] -> logits [N, 784] made of the given nodes (the last one writes 'logits')."""
    graph = helper.make_graph(
        nodes, "hostile", inputs or [helper.make_tensor_value_info(z_name, TensorProto.FLOAT, ["N", z_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 784])], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    return model.SerializeToString()

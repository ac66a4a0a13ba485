"""Decoders that only an ONNX graph can bring to the browser, for tests/e2e/test_onnx_pad.py, the AppTests of the
latent pad and bench/browser_decode.py: a small convolutional VAE (its decoder exported with
`torch.onnx.export(..., dynamo=False)`, as importers of foreign models do), and the test app that shows the pad
alone (tests/e2e/pad_app.py) started with the repository's static/ beside it.
"""
from __future__ import annotations

import io
import json
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from harness import ROOT, StreamlitServer


class ConvVAE(nn.Module):
    """A convolutional VAE for 28 x 28 images (a DCGAN-like decoder: a linear map to `width` x 7 x 7, two
    stride-2 transposed convolutions with a 3 x 3 convolution between them, a 3 x 3 convolution to one
    channel). A label model (`classes`) takes the one-hot label as a second decoder input, or concatenated
    before z (`concat=True`). width=280 gives a decoder of about a million weights."""

    def __init__(self, *, latent_dim: int = 2, classes: int = 0, width: int = 32, concat: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.latent_dim, self.classes, self.width, self.concat = latent_dim, classes, width, concat
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(32 * 7 * 7, 2 * latent_dim))
        self.decoder = ConvDecoder(latent_dim=latent_dim, classes=classes, width=width)

    def encode(self, images):
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z, onehot=None):
        """Pixel probabilities [B, 784]."""
        return torch.sigmoid(self.decoder(z, onehot))


class ConvDecoder(nn.Module):
    def __init__(self, *, latent_dim: int, classes: int, width: int):
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(latent_dim + classes, width * 7 * 7), nn.ReLU())
        half, quarter = width // 2, width // 4
        self.up = nn.Sequential(nn.ConvTranspose2d(width, half, 4, 2, 1), nn.ReLU(),
                                nn.Conv2d(half, half, 3, padding=1), nn.ReLU(),
                                nn.ConvTranspose2d(half, quarter, 4, 2, 1), nn.ReLU(),
                                nn.Conv2d(quarter, 1, 3, padding=1))
        with torch.no_grad():   # larger first-layer weights: the picture changes visibly with z, untrained
            self.fc[0].weight.mul_(4)

    def forward(self, z, onehot=None):
        x = z if onehot is None else torch.cat([onehot, z], dim=1)
        return self.up(self.fc(x).view(-1, self.width, 7, 7)).flatten(1)   # logits [B, 784]


class _Probabilities(nn.Module):
    """The decoder with the sigmoid inside the graph: its output is pixel probabilities."""

    def __init__(self, decoder: ConvDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z):
        return torch.sigmoid(self.decoder(z))


class _Concatenated(nn.Module):
    """The decoder with one input: the one-hot label, then z (as LatentModel concatenates them)."""

    def __init__(self, decoder: ConvDecoder, classes: int):
        super().__init__()
        self.decoder, self.classes = decoder, classes

    def forward(self, x):
        return self.decoder(x[:, self.classes:], x[:, :self.classes])


def weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def export_decoder(vae: ConvVAE, probabilities: bool = False) -> tuple[bytes, dict]:
    """The VAE's decoder as an ONNX graph (dynamic batch) and the spec the latent pad reads; its output is
    logits, or probabilities (the sigmoid in the graph) when asked."""
    L, C = vae.latent_dim, vae.classes
    dec = vae.decoder.eval()
    if probabilities:
        assert not C, "a label model's decoder is exported with logits"
        module, args = _Probabilities(dec).eval(), (torch.zeros(1, L),)
        inputs = [{"name": "z", "shape": ["batch", L]}]
    elif C and vae.concat:
        module, args = _Concatenated(dec, C).eval(), (torch.zeros(1, C + L),)
        inputs = [{"name": "label_z", "shape": ["batch", C + L], "role": "label+z"}]
    elif C:
        module, args = dec, (torch.zeros(1, L), torch.zeros(1, C))
        inputs = [{"name": "z", "shape": ["batch", L]}, {"name": "label", "shape": ["batch", C]}]
    else:
        module, args = dec, (torch.zeros(1, L),)
        inputs = [{"name": "z", "shape": ["batch", L]}]
    names = [i["name"] for i in inputs]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the legacy (TorchScript) exporter announces its retirement
        torch.onnx.export(module, args, buf, input_names=names, output_names=["logits"], dynamo=False,
                          dynamic_axes={**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}})
    return buf.getvalue(), {"inputs": inputs, "output": "logits", "latent_dim": L, "label_classes": C,
                            "image_size": 28, "output_is_logits": not probabilities}


def export_mlp(model) -> tuple[bytes, dict]:
    """A LatentModel's MLP decoder (label model: one-hot then z, one input) as ONNX, for the same decoder on
    both engines (bench/browser_decode.py)."""
    L, C = model.config.latent_dim, model.x_dim
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.generation_net.eval(), (torch.zeros(1, C + L),), buf, input_names=["x"],
                          output_names=["logits"], dynamo=False, dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}})
    return buf.getvalue(), {"inputs": [{"name": "x", "shape": ["b", C + L]}], "output": "logits", "latent_dim": L,
                            "label_classes": C, "image_size": model.config.image_size, "output_is_logits": True}


def save_onnx(folder: Path, name: str, onnx: tuple[bytes, dict]) -> None:
    (folder / f"{name}.onnx").write_bytes(onnx[0])
    (folder / f"{name}.json").write_text(json.dumps(onnx[1]))


@contextmanager
def pad_app_server(models: Path, workdir: Path, env: dict[str, str] | None = None):
    """tests/e2e/pad_app.py served by `streamlit run` over the decoders in `models`. Streamlit serves the
    static/ folder beside the main script, so the script is copied into `workdir` beside a link to the
    repository's static/ (the app's own, with ONNX Runtime Web in it)."""
    shutil.copyfile(Path(__file__).with_name("pad_app.py"), workdir / "pad_app.py")
    if not (workdir / "static").exists():
        (workdir / "static").symlink_to(ROOT / "static", target_is_directory=True)
    server = StreamlitServer({**(env or {}), "LATENT_LAB_ROOT": str(ROOT), "LATENT_LAB_PAD_MODELS": str(models)},
                             log=workdir / "streamlit.log", script=workdir / "pad_app.py").start()
    try:
        server.wait_listening()
        yield server
    finally:
        server.stop()

"""A VAE trained by code that is not Latent Lab's: a plain PyTorch loop, then explored in Latent Lab.

A convolutional VAE with a 2-D latent on MNIST (about 0.9 million weights): two stride-2 convolutions and a
dense layer encode, a dense layer and two transposed convolutions decode. Training is an ordinary loop (Adam,
the negative ELBO with a Bernoulli likelihood on grey levels), nothing from vae_core.fit; vae_core is used only
to read the MNIST files ($VAE_DATA_DIR).

    nice -n 10 python examples/train_conv_vae.py --out runs/conv-vae.pt --history runs/conv-vae.history.json
    python -m vae_core import --module examples/train_conv_vae.py:build --weights runs/conv-vae.pt \\
        --history runs/conv-vae.history.json --out checkpoints/mnist-conv-vae-2d.safetensors

The model follows Latent Lab's protocol for models from elsewhere (vae_core/external.py): `encode(images)`
gives (mu, logvar), `decode(z)` gives pixel logits, and it says its latent size, image size, classes,
condition and likelihood. `build()` makes an untrained one; the import loads the weights into it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class ConvVAE(nn.Module):
    latent_dim = 2
    image_size = 28
    num_classes = 10
    condition = "none"
    likelihood = "bernoulli"

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),        # 28 -> 14
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),       # 14 -> 7
            nn.Flatten(), nn.Linear(64 * 7 * 7, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * self.latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(self.latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),   # 7 -> 14
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))               # 14 -> 28, logits

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 1, 28, 28] in [0, 1] -> mean and log-variance of q(z|x), [B, 2] each."""
        mu, logvar = self.encoder(images.reshape(-1, 1, self.image_size, self.image_size)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, 2] -> Bernoulli logits of the pixels, [B, 1, 28, 28]."""
        return self.decoder(z)

    def loss(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, KL) summed over pixels and dimensions, one z per image: [B] each."""
        mu, logvar = self.encode(images)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decode(z).reshape(images.shape[0], -1)
        recon = F.binary_cross_entropy_with_logits(logits, images.reshape(images.shape[0], -1),
                                                   reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        return recon, kl


def build() -> ConvVAE:
    """An untrained ConvVAE: what `python -m vae_core import --module examples/train_conv_vae.py:build` calls."""
    return ConvVAE()


def mnist(split: str) -> torch.Tensor:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for vae_core
    from vae_core import load_dataset  # only to read the IDX files
    images = load_dataset("mnist", split, download=False).images
    return images.float().div_(255).unsqueeze(1)          # [N, 1, 28, 28] in [0, 1]


@torch.no_grad()
def evaluate(model: ConvVAE, images: torch.Tensor, batch: int = 1000) -> dict[str, float]:
    model.eval()
    generator_state = torch.get_rng_state()
    torch.manual_seed(0)
    recon = kl = 0.0
    for start in range(0, len(images), batch):
        r, k = model.loss(images[start:start + batch])
        recon, kl = recon + float(r.sum()), kl + float(k.sum())
    torch.set_rng_state(generator_state)
    model.train()
    n = len(images)
    return {"loss": (recon + kl) / n, "recon": recon / n, "kl": kl / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="weights file to write (torch.save of the state dict)")
    p.add_argument("--history", default="", help="also write the loss curves as JSON (Latent Lab shows them)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-seconds", type=float, default=600, help="stop after the epoch that passes this")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images = mnist("train")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    val, train = images[order[:5000]], images[order[5000:]]          # 5,000 held out to keep the best epoch
    model = build()
    print(f"{sum(p.numel() for p in model.parameters()):,} weights; {len(train):,} training images", file=sys.stderr)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    history: dict[str, list] = {"step": [], "loss": [], "recon": [], "kl": [], "epochs": []}
    best, best_state, step, started = math.inf, None, 0, time.time()
    for epoch in range(args.epochs):
        sums = [0.0, 0.0]
        for batch in train[torch.randperm(len(train))].split(args.batch_size):
            recon, kl = model.loss(batch)
            loss = (recon + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sums[0], sums[1] = sums[0] + recon.sum().item(), sums[1] + kl.sum().item()
            if step % 20 == 0:
                history["step"].append(step)
                history["loss"].append(loss.item())
                history["recon"].append(recon.mean().item())
                history["kl"].append(kl.mean().item())
        n = len(train)
        train_terms = {"loss": sum(sums) / n, "recon": sums[0] / n, "kl": sums[1] / n}
        val_terms = evaluate(model, val)
        history["epochs"].append({"epoch": epoch, "train": train_terms, "eval": val_terms})
        if val_terms["loss"] < best:
            best, best_state = val_terms["loss"], {k: v.clone() for k, v in model.state_dict().items()}
        print(f"epoch {epoch + 1}: train {train_terms['loss']:.2f}, validation {val_terms['loss']:.2f} "
              f"({time.time() - started:.0f} s)", file=sys.stderr)
        if time.time() - started > args.max_seconds:
            break
    model.load_state_dict(best_state)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    if args.history:
        Path(args.history).write_text(json.dumps(history))
    print(f"kept the epoch with validation loss {best:.2f}; saved {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput of vae_core.fit against the usual DataLoader + ToTensor loop and a bare loop.

    python bench/train_throughput.py                      # batch 128, 2 epochs' worth of images per loop
    python bench/train_throughput.py --batch-size 512 --repeats 3

All three loops train the same model (784-512-2 MLP VAE: ModelConfig(hidden_dims=(512,))) with Adam at
the same learning rate and batch size, on the MNIST training images, for the same number of images:

    fit         vae_core.fit: uint8 images held in memory, batches taken by slicing (no callbacks)
    dataloader  the usual program (pytorch/examples' VAE): a torchvision-style Dataset that turns each
                uint8 image into a PIL image and back through ToTensor, batched by DataLoader, and
                torch.optim.Adam with its defaults
    bare        fit's model and optimiser (vae_core.training.make_optimizer) on a preloaded float
                tensor, sliced by hand, no callbacks or bookkeeping: fit's ceiling

Each loop is warmed up first, then timed. Prints images/s per loop and repeat (wall clock, and per
CPU-second of this process), the best of each, fit as a percentage of the bare loop, and ends with
`ratio: X.XX` (fit / dataloader). Figures move when other work shares the CPU: use --repeats and read
the best and the spread; on a busy machine `--threads 1 --clock cpu` gives the steadier comparison.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vae_core import (ImageDataset, ModelConfig, TrainConfig, TrainingData, build_model, fit,  # noqa: E402
                      load_dataset)
from vae_core.training import make_optimizer  # noqa: E402

MODEL = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(512,))
LR = 1e-3  # the same learning rate everywhere


class Clock:
    """Wall-clock and process CPU time of a block. On a CPU shared with other jobs the CPU time of a
    one-thread run is the steadier figure: it leaves out the time spent waiting for a core."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, images: int) -> tuple[float, float]:
        return images / self.wall, images / max(self.cpu, 1e-9)


class PILDigits(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST does per item: uint8 tensor -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms
        self.images, self.labels = images, labels
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image
        img = Image.fromarray(self.images[i].numpy())  # 2-D uint8: mode "L", as torchvision's MNIST
        return self.transform(img), int(self.labels[i])


def time_fit(images, labels, n_images: int, batch_size: int, seed: int = 0):
    """(wall, cpu) images/s of vae_core.fit over n_images (whole epochs of `images`), no callbacks."""
    n = len(images)
    epochs = max(1, round(n_images / n))
    data = TrainingData(ImageDataset(images, labels, name="mnist"), None)
    model = build_model(MODEL, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=LR, seed=seed, device="cpu")
    with Clock() as clock:
        result = fit(model, data, cfg)
    assert result.status == "completed", result.message
    return clock.rates(epochs * n)


def _train_steps(model, opt, batches, n_images: int) -> int:
    """Run optimiser steps on the batches (float [B, 784]) until n_images have been seen."""
    seen = 0
    for y in batches:
        loss = model.loss(y, None)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += y.shape[0]
        if seen >= n_images:
            break
    return seen


def time_dataloader(images, labels, n_images: int, batch_size: int, workers: int, seed: int = 0):
    model = build_model(MODEL, seed=seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)             # as pytorch/examples' VAE
    loader = torch.utils.data.DataLoader(PILDigits(images, labels), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, generator=torch.Generator().manual_seed(seed))

    def batches():
        while True:                      # as many epochs as it takes
            for data, _ in loader:
                yield data.view(-1, 784)

    with Clock() as clock:
        seen = _train_steps(model, opt, batches(), n_images)
    return clock.rates(seen)


def time_bare(images, n_images: int, batch_size: int, seed: int = 0):
    model = build_model(MODEL, seed=seed).train()
    opt = make_optimizer(model, LR)                               # the optimiser fit uses
    flat = images.reshape(len(images), -1).float().div_(255.0)   # preloaded once, outside the timing
    gen = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            perm = torch.randperm(len(flat), generator=gen)
            for i in range(0, len(flat), batch_size):
                yield flat[perm[i:i + batch_size]]

    with Clock() as clock:
        seen = _train_steps(model, opt, batches(), n_images)
    return clock.rates(seen)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=120_000, help="images per timed loop (default: 2 epochs)")
    p.add_argument("--warmup", type=int, default=5_000, help="images per warm-up loop")
    p.add_argument("--repeats", type=int, default=1, help="time each loop this many times (interleaved)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (pytorch/examples: 0 on CPU)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="rank by wall-clock time (default) or by process CPU time (steadier on a shared CPU, "
                        "meaningful with --threads 1 and --workers 0)")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    train = load_dataset("mnist", "train", args.data_dir)
    images, labels = train.images, train.labels
    n_fit = min(len(images), args.images)   # fit runs whole epochs: a subset when fewer images are asked for
    print(f"model {MODEL.describe()}, hidden {MODEL.hidden_dims}, batch {args.batch_size}, "
          f"{args.images:,} images per loop, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)

    # warm-up: first calls allocate, import optimiser internals and fill caches
    time_fit(images[:args.warmup], labels[:args.warmup], args.warmup, args.batch_size)
    time_dataloader(images, labels, min(args.warmup, 2_000), args.batch_size, args.workers)
    time_bare(images[:args.warmup], args.warmup, args.batch_size)

    rates = {"fit": [], "dataloader": [], "bare": []}   # (wall, cpu) images/s per repeat
    for r in range(args.repeats):
        rates["fit"].append(time_fit(images[:n_fit], labels[:n_fit], args.images, args.batch_size))
        rates["dataloader"].append(time_dataloader(images, labels, args.images, args.batch_size, args.workers))
        rates["bare"].append(time_bare(images, args.images, args.batch_size))
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1][0]:,.0f} ({v[-1][1]:,.0f} per CPU-second)"
                                             for k, v in rates.items()) + " images/s", flush=True)

    which = 0 if args.clock == "wall" else 1
    best = {k: max(x[which] for x in v) for k, v in rates.items()}
    print(f"best of {args.repeats}, by {args.clock} clock (images/s):")
    for k, v in rates.items():
        vals = [x[which] for x in v]
        spread = f"   (spread {min(vals):,.0f}-{max(vals):,.0f})" if len(vals) > 1 else ""
        print(f"  {k:10s} {best[k]:>9,.0f}{spread}")
    print(f"fit vs bare loop: {100 * best['fit'] / best['bare']:.1f}%")
    print(f"ratio: {best['fit'] / best['dataloader']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training images/s of the CLI's training on a quiet machine and beside one busy process, old and new thread policy.

    python bench/cpu_threads.py                 # 30,000 MNIST images per run, 2 repeats, idle and busy
    python bench/cpu_threads.py --images 10000 --repeats 1

Each figure is one `fit` in a fresh process (the CLI's model: a 2-D VAE, 256-256, batch 128) on the MNIST
training images, after a warm-up of 20 steps:
    before        torch imported before vae_core (so OpenMP keeps its default spin-then-sleep wait) and torch's
                  own thread count, as the CLI was before vae_core/cpu.py
    threads 1     the same with one thread (`--threads 1`)
    now           vae_core imported first (it leaves OpenMP's wait policy alone) and threads="auto"
                  (vae_core.cpu.AdaptiveThreads), the CLI's default now
"busy" runs one `while True: pass` process beside each run. The load average is printed beside each figure.
Needs VAE_DATA_DIR (MNIST). Run it on an otherwise quiet machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = r"""
import sys, time
FIRST = sys.argv[1]
if FIRST == "torch":
    import torch                      # before vae_core: OpenMP's default wait policy
import vae_core as V
import torch
from vae_core import ModelConfig, TrainConfig, build_model, fit, load_dataset
threads = {"auto": "auto", "none": None, "1": 1}[sys.argv[2]]
n = int(sys.argv[3])
train = load_dataset("mnist", "train").subset(0, n + 20 * 128)
model = build_model(ModelConfig(variant="vae", latent_dim=2))
warm = train.subset(0, 20 * 128)
fit(model, warm, TrainConfig(epochs=1, batch_size=128), threads=threads)
data = train.subset(20 * 128, n + 20 * 128)
t = time.perf_counter()
fit(model, data, TrainConfig(epochs=1, batch_size=128), threads=threads)
print(n / (time.perf_counter() - t))
"""

MODES = {"before": ("torch", "none"), "threads 1": ("torch", "1"), "now": ("vae_core", "auto")}


def one(mode: str, images: int) -> float:
    first, threads = MODES[mode]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", RUN, first, threads, str(images)], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    best: dict[tuple[str, str], float] = {}
    for condition in ("idle", "busy"):
        busy = None
        if condition == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for mode in MODES:
                for r in range(args.repeats):
                    rate = one(mode, args.images)
                    best[condition, mode] = max(best.get((condition, mode), 0.0), rate)
                    print(f"{condition:5s} {mode:10s} repeat {r + 1}: {rate:8,.0f} images/s   "
                          f"(load average {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print("\nbest of each (images/s), and 'now' against the best choice of the three:")
    for condition in ("idle", "busy"):
        top = max(best[condition, m] for m in MODES)
        row = "  ".join(f"{m}: {best[condition, m]:,.0f}" for m in MODES)
        print(f"{condition:5s} {row}   now / best: {best[condition, 'now'] / top:.2f}")


if __name__ == "__main__":
    main()

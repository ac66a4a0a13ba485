"""Animations for slides (vae_core/animation.py): time and size of each kind, as the Decoder makes them.

    python bench/animations.py                                  # the shipped mnist-vae-2d, GIF and MP4
    python bench/animations.py --checkpoint runs/my.safetensors --formats gif

Prints, per animation and format: frames, pixel size, seconds to draw the frames, seconds to encode, file
size in MB (limits: 640 px a side, 5 MB). The training-run animation needs a checkpoint saved from the Train
page (it keeps snapshots); without one, a run of 6 epochs on 1,000 images is made first through the job
worker (jobs/worker.run_job, as the Train page does). The beta sweep uses --sweep (checkpoint files of one
recipe with different beta); without it, three 1-epoch models (beta 0.5, 1, 4) are trained first. Then
`uptime`: figures move with the load.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "app"))

from vae_core import animation as an  # noqa: E402
from vae_core import load_checkpoint  # noqa: E402


def training_checkpoint(folder: Path, data_root: str | None) -> Path:
    from jobs.worker import run_job, settings_to_dict
    from vae_core import ModelConfig, TrainConfig, build_model, save_checkpoint
    from vae_core.record import parse_record
    cfg = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(128,))
    tcfg = TrainConfig(epochs=6, batch_size=100, train_limit=1000, eval_limit=1000, device="cpu")
    sent = []
    run_job(settings_to_dict(cfg, tcfg), data_root, lambda k, p: sent.append((k, p)), lambda: False)
    result = next(p for k, p in sent if k == "result")
    model = build_model(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in result["state"].items()})
    return save_checkpoint(folder / "run.safetensors", model, parse_record(result["record"]),
                           extras={k: torch.as_tensor(v) for k, v in result["extras"].items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "mnist-vae-2d.safetensors"))
    ap.add_argument("--run", help="a checkpoint saved from the Train page (with snapshots)")
    ap.add_argument("--sweep", nargs="*", help="checkpoints of a beta sweep")
    ap.add_argument("--formats", nargs="+", default=["gif", "mp4"] if an.mp4_available() else ["gif"])
    args = ap.parse_args()
    data_root = os.environ.get("VAE_DATA_DIR")
    torch.set_num_threads(1)
    model, record = load_checkpoint(args.checkpoint)
    tmp = Path(tempfile.mkdtemp(prefix="bench_anim_"))
    run = Path(args.run) if args.run else training_checkpoint(tmp, data_root)
    if args.sweep:
        sweep = [Path(p) for p in args.sweep]
    else:
        from apptest_helpers import train_sweep
        sweep = train_sweep(Path(data_root) if data_root else tmp, tmp)
    items = []
    for p in sweep:
        m, r = load_checkpoint(p)
        stored = r.latent_means()
        items.append((f"beta = {r.train_config.beta:g}", m, *(stored if stored else (None, None))))
    kinds = {
        "interpolation walk": lambda: an.walk_frames(model, [-2.0, -1.0], [2.0, 1.5], steps=24),
        "path across the manifold": lambda: an.path_frames(model, steps=48),
        "training run": lambda: an.training_frames(load_checkpoint(run)[1].training_snapshots()),
        "beta sweep": lambda: an.sweep_frames(items),
    }
    fps = {"interpolation walk": 12, "path across the manifold": 12, "training run": 2, "beta sweep": 1}
    print(f"model: {Path(args.checkpoint).name}; run: {run.name}; sweep: {len(sweep)} models")
    print(f"{'animation':26} {'fmt':4} {'frames':>6} {'size px':>10} {'draw s':>7} {'encode s':>8} {'MB':>6}")
    for name, make in kinds.items():
        t0 = time.perf_counter()
        frames = make()
        draw = time.perf_counter() - t0
        for fmt in args.formats:
            t1 = time.perf_counter()
            data = an.encode(frames, fmt, fps[name])
            enc = time.perf_counter() - t1
            print(f"{name:26} {fmt:4} {len(frames):6d} {f'{frames.shape[2]}x{frames.shape[1]}':>10} {draw:7.2f} "
                  f"{enc:8.2f} {len(data) / 1e6:6.2f}")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

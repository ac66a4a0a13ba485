"""Training as jobs, timed: (1) from Start to the first training step with a warm worker, and (2) the in-app
default run's wall time next to the CLI's for the same settings, in one script.

    python bench/jobs_speed.py                 # the Train page's defaults (2-D VAE, all MNIST, 4 epochs)
    python bench/jobs_speed.py --tiny          # 1 epoch on 1,000 images: checks the script runs

(1) goes through jobs.api.JobService as the page does (submit, then poll what the page would draw), with the
spare worker ready (torch imported, MNIST in memory); it does not include the browser's round trip.
(2) runs the same ModelConfig/TrainConfig as a job (submit to "finished", the worker's result file written)
and as `python -m vae_core train ... --eval-samples 0 --threads T` (start to exit). Prints the figures and
the load average; take figures on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def settings(tiny: bool):
    from vae_core import ModelConfig, TrainConfig
    model = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(256, 256))
    train = TrainConfig(epochs=1 if tiny else 4, batch_size=128, lr=1e-3, train_limit=1000 if tiny else 0,
                        eval_limit=2000)
    return model, train


def time_first_step(service, model, train, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        service.backend.spare_ready(timeout=120)
        t0 = time.perf_counter()
        job = service.submit(model, train.replace(epochs=50), "bench")
        service.wait(job, 120, until=lambda s: s.global_step > 0)
        out.append(time.perf_counter() - t0)
        service.stop(job)
        service.wait(job, 60)
    return out


def time_app_run(service, model, train) -> tuple[float, dict]:
    service.backend.spare_ready(timeout=120)
    t0 = time.perf_counter()
    job = service.submit(model, train, "bench")
    snap = service.wait(job, 3600)
    wall = time.perf_counter() - t0
    last = snap.epoch_records[-1]["eval"]["loss"] if snap.epoch_records else float("nan")
    return wall, {"status": snap.status, "train_seconds": snap.elapsed, "test_loss": last}


def time_cli_run(model, train, threads: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "vae_core", "train", "--variant", model.variant, "--latent-dim", str(model.latent_dim),
           "--hidden-dims", *map(str, model.hidden_dims), "--epochs", str(train.epochs),
           "--batch-size", str(train.batch_size), "--lr", str(train.lr), "--train-limit", str(train.train_limit),
           "--eval-limit", str(train.eval_limit), "--eval-samples", "0", "--threads", str(threads), "--quiet",
           "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="1 epoch on 1,000 images (a check that it runs)")
    p.add_argument("--repeats", type=int, default=3, help="Start-to-first-step measurements")
    args = p.parse_args(argv)

    from jobs.api import JobService
    from jobs.limits import read_limits

    limits = read_limits()
    model, train = settings(args.tiny)
    print(f"settings: {model.describe()}, hidden {model.hidden_dims}; {train.epochs} epochs, "
          f"{train.train_limit or 'all'} images, batch {train.batch_size}; worker threads {limits.worker_threads}, "
          f"nice {limits.worker_nice}; load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        service = JobService(Path(tmp) / "runs", limits)
        try:
            t0 = time.perf_counter()
            while service.backend is None and time.perf_counter() - t0 < 30:
                time.sleep(0.05)
            firsts = time_first_step(service, model, train, 1 if args.tiny else args.repeats)
            print("start to first training step (warm worker): " + ", ".join(f"{s:.2f} s" for s in firsts), flush=True)
            app_wall, info = time_app_run(service, model, train)
        finally:
            service.shutdown()
        cli_wall = time_cli_run(model, train, limits.worker_threads, Path(tmp) / "cli.safetensors")
    print(f"in-app run: {app_wall:.1f} s wall ({info['train_seconds']:.1f} s of training steps), "
          f"{info['status']}, test loss {info['test_loss']:.1f} nats")
    print(f"CLI run:    {cli_wall:.1f} s wall")
    print(f"ratio app/CLI: {app_wall / cli_wall:.2f}; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

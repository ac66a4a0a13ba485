"""Limits a teacher can set, read once from environment variables (README: "Training as jobs").

    LATENT_LAB_MAX_RUNS            runs training at once            default: CPU cores - 1, at least 1
    LATENT_LAB_MAX_QUEUED          runs waiting for a free slot     default: 20
    LATENT_LAB_MAX_WEIGHTS         weights per model                default: 20,000,000
    LATENT_LAB_MAX_RUN_SECONDS     wall time of one run (0: none)   default: 3600
    LATENT_LAB_ABANDON_SECONDS     a run whose page has not polled  default: 600 (10 minutes)
                                   this long stops, keeping its weights
    LATENT_LAB_WORKER_THREADS      torch threads per worker         default: (cores - 1) // max runs, at least 1
    LATENT_LAB_WORKER_NICE         CPU priority drop of a worker    default: 10 (0: as the server)
    LATENT_LAB_RUNNER              local (default) or ray
    LATENT_LAB_WARM_WORKER         keep a spare worker ready (torch and MNIST loaded)  default: 1
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

from vae_core import ModelConfig

PREFIX = "LATENT_LAB_"


def cpu_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    max_runs: int
    max_queued: int
    max_weights: int
    max_run_seconds: float
    abandon_seconds: float
    worker_threads: int
    worker_nice: int
    runner: str
    warm_worker: bool = True

    def describe(self) -> str:
        """One line for the Train page."""
        run_time = "no time limit" if not self.max_run_seconds else f"at most {_minutes(self.max_run_seconds)} a run"
        return (f"{self.max_runs} run{'s' * (self.max_runs != 1)} at once, {self.max_queued} waiting at most, "
                f"{self.max_weights:,} weights per model, {run_time}; a run nobody watches for "
                f"{_minutes(self.abandon_seconds)} stops and keeps its weights.")


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} minutes"


def _number(env: Mapping[str, str], name: str, default, cast, low) -> float | int:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ValueError(f"{PREFIX + name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{PREFIX + name} must be at least {low}, got {raw!r}")
    return value


def read_limits(env: Mapping[str, str] | None = None) -> Limits:
    """The limits from `env` (default os.environ); a bad value raises ValueError naming the variable."""
    env = os.environ if env is None else env
    cores = cpu_cores()
    max_runs = int(_number(env, "MAX_RUNS", max(1, cores - 1), int, 1))
    runner = env.get(PREFIX + "RUNNER", "local").strip().lower() or "local"
    if runner not in ("local", "ray"):
        raise ValueError(f"{PREFIX}RUNNER must be 'local' or 'ray', got {runner!r}")
    return Limits(
        max_runs=max_runs,
        max_queued=int(_number(env, "MAX_QUEUED", 20, int, 0)),
        max_weights=int(_number(env, "MAX_WEIGHTS", 20_000_000, int, 1)),
        max_run_seconds=float(_number(env, "MAX_RUN_SECONDS", 3600.0, float, 0)),
        abandon_seconds=float(_number(env, "ABANDON_SECONDS", 600.0, float, 0.1)),
        worker_threads=int(_number(env, "WORKER_THREADS", max(1, (cores - 1) // max_runs), int, 1)),
        worker_nice=int(_number(env, "WORKER_NICE", 10, int, 0)),
        runner=runner,
        warm_worker=env.get(PREFIX + "WARM_WORKER", "1").strip() not in ("0", "false", "no", "off"),
    )


def count_weights(config: ModelConfig) -> int:
    """The number of weights of a model, without allocating them (built on torch's meta device)."""
    import torch

    from vae_core import build_model

    with torch.device("meta"):
        model = build_model(config, seed=None)
    return sum(p.numel() for p in model.parameters())


def weights_problem(config: ModelConfig, limits: Limits) -> str | None:
    """A sentence when the model is larger than the limit, else None."""
    n = count_weights(config)
    if n <= limits.max_weights:
        return None
    return (f"This model has {n:,} weights; the limit here is {limits.max_weights:,}. Use fewer or smaller "
            f"hidden layers (the limit is set by {PREFIX}MAX_WEIGHTS).")

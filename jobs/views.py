"""Heavy Diagnose views as jobs (kind='view'): the same computations the Diagnose page makes, run in a worker
when their estimated cost is above the server's budget (limits: view_budget_cpu_seconds), so no request takes
more than a few CPU-seconds of the server process.

    estimate_cpu_seconds(view, params, weights)   # what computing it would cost the server, in CPU-seconds
    compute(view, model, data, params, progress)  # the numbers (a dict of numpy arrays and plain values)
    run_view(settings, emit, should_stop)         # the worker's body: load, compute, emit ("result", ...)
    write_result(path, result) / read_result(path)   # the .npz file a finished view leaves in <folder>/.jobs/

The views: "collapse_stats" (KL per dimension, posterior moments, one sample of q and of p(z|x) per image),
"per_example" (the per-example table: recon, KL, -ELBO, importance-sampled NLL and the gap, computed
PER_EXAMPLE_CHUNK images at a time with the noise seeded by the chunk's first image, so a job and the page
give the same numbers) and "likelihood_curve" (the IS NLL and ESS against S for the first CURVE_IMAGES images).

The cost model (measured on this project's 2-core machine; bench/view_cost.py measures it again): a view
makes `passes` forward passes of one image (encoder and decoder together), and each costs
SECONDS_PER_PASS_WEIGHT x (weights + the view's overhead) of CPU: the overhead is what a pass costs beside the
weights (the 784-pixel likelihood, sampling, logsumexp), counted as weights. Measured with resource.getrusage
(process CPU, both torch threads) at load 10-11: per-example terms of 500 test images at S = 50 took 0.63-0.66
CPU-s for a 51 k-weight model and 1.13-1.22 CPU-s for a 1.33 M-weight one (26,000 passes each), which fixes
the constants (1.41e-11 CPU-s per pass-weight, overhead 1.75 M weights); the likelihood curve (50 images x
1,000 samples) took 2.0 CPU-s and 2.4-2.9 CPU-s for the same two models (overhead 2.5 M weights: it keeps every
log-weight and takes 14 logsumexps). The issue's 19.2 M-weight model on 10,000 images at S = 100 is estimated
at 300 CPU-s (its measured cost inside the server: 240 CPU-s).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

VIEWS = ("collapse_stats", "per_example", "likelihood_curve")
PER_EXAMPLE_CHUNK = 250      # images per piece of the per-example table (a progress step, and the noise's seed)
CURVE_IMAGES = 50            # images of the NLL-against-S curve
CURVE_MAX_S = 1000
SECONDS_PER_PASS_WEIGHT = 1.41e-11
PASS_OVERHEAD_WEIGHTS = {"collapse_stats": 1.75e6, "per_example": 1.75e6, "likelihood_curve": 2.5e6}
FIXED_SECONDS = 0.1          # loading the model and the first batch

Progress = Callable[[float], None]


def passes(view: str, params: dict) -> float:
    """Forward passes of one image (encoder and decoder) the view makes."""
    images = int(params.get("images", 0))
    if view == "per_example":
        return images * (int(params["samples"]) + 2)    # S importance samples, plus the ELBO's pass and the encoder
    if view == "likelihood_curve":
        return CURVE_IMAGES * CURVE_MAX_S
    if view == "collapse_stats":
        return images * 4.0                              # the loss terms, the encoder, the prior
    raise ValueError(f"unknown view {view!r}; the views are {', '.join(VIEWS)}")


def estimate_cpu_seconds(view: str, params: dict, weights: int) -> float:
    """The CPU-seconds computing `view` would take (on this project's machine; see the module docstring)."""
    return FIXED_SECONDS + SECONDS_PER_PASS_WEIGHT * passes(view, params) * (weights + PASS_OVERHEAD_WEIGHTS[view])


def view_key(view: str, path: str, mtime_ns: int, params: dict) -> str:
    """A name for one view of one checkpoint file (as it is now): the cache key of its result."""
    text = json.dumps({"view": view, "path": str(path), "mtime_ns": int(mtime_ns), "params": params}, sort_keys=True)
    return f"{view}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


# ----------------------------------------------------------------------------- the computations
def compute(view: str, model, data, params: dict, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict:
    """The view's numbers for `model` on the test set `data` (already cut to params['images'] where it applies)."""
    say = progress or (lambda fraction: None)
    quadrants = params.get("quadrants")
    if view == "collapse_stats":
        return _collapse_stats(model, data.subset(0, int(params["images"])), quadrants)
    if view == "per_example":
        return _per_example(model, data, int(params["images"]), int(params["samples"]), quadrants, say,
                            should_stop or (lambda: False))
    if view == "likelihood_curve":
        from vae_core import make_batch
        from vae_core.diagnostics import importance_curve, sample_sizes
        sub = data.subset(0, CURVE_IMAGES)
        y, x = make_batch(model.config, sub.images.to(model.device), sub.labels.to(model.device), quadrants=quadrants)
        return importance_curve(model, y, x, sample_sizes(CURVE_MAX_S))
    raise ValueError(f"unknown view {view!r}; the views are {', '.join(VIEWS)}")


def per_example_chunk(model, data, start: int, stop: int, samples: int, quadrants) -> dict[str, np.ndarray]:
    """One piece of the per-example table: images start..stop, noise seeded by `start`."""
    from vae_core.diagnostics import per_example_terms
    terms = per_example_terms(model, data.subset(start, stop), samples, quadrants, seed=start)
    return {k: v.numpy() for k, v in terms.items() if k != "kl_per_dim"}


def _per_example(model, data, images: int, samples: int, quadrants, say: Progress, should_stop) -> dict:
    parts = []
    for start in range(0, images, PER_EXAMPLE_CHUNK):
        if should_stop():
            raise InterruptedError
        parts.append(per_example_chunk(model, data, start, min(images, start + PER_EXAMPLE_CHUNK), samples, quadrants))
        say(min(1.0, (start + PER_EXAMPLE_CHUNK) / images))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _collapse_stats(model, data, quadrants) -> dict:
    """KL per dimension, posterior moments, one sample of q and of p(z|x) per image, labels."""
    import torch

    from vae_core.data import batches
    from vae_core.diagnostics import active_units, posterior_moments
    from vae_core.training import loss_terms_per_example

    cfg = model.config
    out = {"labels": data.labels.numpy(), "kl_per_dim": None}
    terms = loss_terms_per_example(model, data, quadrants=quadrants)
    if "kl_per_dim" in terms:
        out["kl_per_dim"] = terms["kl_per_dim"].double().mean(0).numpy()
    if not cfg.has_latent:
        return out
    mu, logvar = posterior_moments(model, data, quadrants)
    count, variance = active_units(mu)
    gen = torch.Generator().manual_seed(0)
    out.update(mu=mu.numpy(), logvar=logvar.numpy(), active=count, variance=variance.numpy(),
               sample=(mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)).numpy())
    with torch.no_grad():  # the prior each image was encoded against, and one draw from it
        mus_p, lvs_p = [], []
        for y, x, _ in batches(cfg, data, 1000, model.device, quadrants):
            m, lv = model.prior(model.features(x, y.shape[0]), y.shape[0])
            mus_p.append(m.cpu())
            lvs_p.append(lv.cpu())
        mu_p, lv_p = torch.cat(mus_p), torch.cat(lvs_p)
    out.update(prior_mu=mu_p.numpy(), prior_logvar=lv_p.numpy(),
               prior_sample=(mu_p + torch.exp(0.5 * lv_p) * torch.randn(mu_p.shape, generator=gen)).numpy())
    return out


# ----------------------------------------------------------------------------- the worker's body
def run_view(settings: dict, emit: Callable[[str, dict], None], should_stop: Callable[[], object]) -> None:
    """Compute one view in a worker and report as a training job does ("started", "steps" for the progress
    bar, "result" with the numbers, "end"); never raises (a failure is an "end" message with a sentence)."""
    try:
        _run_view(settings, emit, should_stop)
    except InterruptedError:
        emit("end", {"status": "stopped", "message": "Stopped before the view was computed."})
    except Exception as e:  # noqa: BLE001 - the page shows any failure as a sentence
        text = str(e).strip().rstrip(".") or type(e).__name__
        emit("end", {"status": "failed", "message": f"The view could not be computed: {text}."})


def _run_view(settings: dict, emit, should_stop) -> None:
    from vae_core import load_checkpoint, load_dataset

    view, params, path = settings["view"], settings["params"], settings["path"]
    t0, cpu0 = time.time(), time.process_time()
    if Path(path).stat().st_mtime_ns != int(settings["mtime_ns"]):
        raise ValueError(f"{path} changed after the view was asked for; open the view again")
    model, record = load_checkpoint(path)
    data = load_dataset(record.dataset, "test", settings.get("data_root"), download=False)
    total = 100
    emit("started", {"train_images": 0, "eval_images": int(params.get("images", CURVE_IMAGES)),
                     "class_names": list(data.class_names), "steps_per_epoch": total, "total_steps": total,
                     "timings": {}})

    def progress(fraction: float) -> None:
        emit("steps", {"steps": {"step": [], "loss": [], "recon": [], "kl": []},
                       "progress": {"epoch": 0, "global_step": int(round(total * fraction)), "total_steps": total,
                                    "elapsed": time.time() - t0, "eta": 0.0}})

    result = compute(view, model, data, params, progress, should_stop=lambda: bool(should_stop()))
    progress(1.0)
    emit("result", {"view": result, "cpu_seconds": time.process_time() - cpu0})
    emit("end", {"status": "completed",
                 "message": f"Computed in {time.time() - t0:.1f} s ({time.process_time() - cpu0:.1f} CPU-s)."})


# ----------------------------------------------------------------------------- the result file
def write_result(path: Path, result: dict) -> Path:
    """The view's numbers as an .npz file (atomic); None values and plain numbers travel as well."""
    from vae_core.atomic import write_atomic

    arrays, plain = {}, {}
    for k, v in result.items():
        if isinstance(v, np.ndarray):
            arrays[k] = v
        else:
            plain[k] = v
    buffer = io.BytesIO()
    np.savez(buffer, __plain__=np.frombuffer(json.dumps(plain).encode(), dtype=np.uint8), **arrays)
    write_atomic(path, buffer.getvalue())
    return path


def read_result(path: str | os.PathLike) -> dict:
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files if k != "__plain__"}
        out.update(json.loads(bytes(f["__plain__"]).decode()))
    return out

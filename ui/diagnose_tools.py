"""The Diagnose page's computations (cached per checkpoint file: path and mtime) and figures.

The numbers come from vae_core.diagnostics (through jobs/views.py, which the worker shares); this module caches
them, cuts the slow ones into chunks so the page can show a progress bar the first time, and draws them. The
checkpoint is read through its typed record (vae_core.record.CheckpointRecord).

A view whose estimated cost (jobs.views.estimate_cpu_seconds: images x samples x weights, calibrated on this
project's machine) is above the limits' view_budget_cpu_seconds is not computed in the server: it becomes a
job of kind 'view' (counted in the person's share), the page shows its place in line or a progress bar, and
its result file (runs/.jobs/<id>.npz) is the cache every session reads. Below the budget it is computed here.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from jobs import views
from jobs.api import JobRefused
from jobs.limits import LimitsError, read_limits
from ui.cached_data import test_set
from ui.model_catalogue import load_model
from vae_core import VARIANTS, CheckpointRecord, compared_variants, make_batch, sample_diversity
from vae_core.checkpoints import file_sha256
from vae_core.diagnostics import ACTIVE_THRESHOLD, aggregate_density, conditional_gaussians
from vae_core.formatting import (format_count, format_duration, format_metric, format_nats, metric_label,
                                 metric_name, quadrant_block_name)
from vae_core.verdicts import Measured, Verdict, comparison_note, same_z_verdict

CHUNK = views.PER_EXAMPLE_CHUNK   # images per cached piece of the per-example table (a progress bar step)
CURVE_IMAGES = views.CURVE_IMAGES  # images of the NLL-against-S curve (the mean); the first few drawn one by one
CURVE_SHOWN = 5
CURVE_MAX_S = views.CURVE_MAX_S
VIEW_POLL_SECONDS = 1.0


# ----------------------------------------------------------------------------- the checkpoint record
FACTS = (("status", "status"), ("message", "message"), ("epochs_completed", "epochs completed"),
         ("train_seconds", "train seconds"), ("wall_seconds", "wall seconds"), ("images_per_sec", "images per second"),
         ("storage_dtype", "stored as"))


def view_applies(reason: str | None, no_data: str | None) -> bool:
    """A tab's preamble: says why its view does not apply to this model (an info) or what data it lacks (a
    warning), and returns False then; True when the tab can draw."""
    if reason:
        st.info(reason, icon=":material/info:")
        return False
    if no_data:
        st.warning(no_data, icon=":material/folder_off:")
        return False
    return True


def record_facts(record: CheckpointRecord) -> dict[str, object]:
    """Status, epochs, times: whichever of these the record holds, in display order."""
    return {label: getattr(record, name) for name, label in FACTS if getattr(record, name) not in (None, "")}


def history_dict(record: CheckpointRecord) -> dict:
    """The stored history as ui.plots.loss_curves takes it: per-step lists and per-epoch dicts."""
    return record.history.to_dict()


def mtime_of(path: str) -> int:
    return Path(path).stat().st_mtime_ns


# ----------------------------------------------------------------------------- cached computations
@st.cache_data(show_spinner=False, max_entries=16)
def collapse_stats(path: str, mtime_ns: int, images: int, quadrants: int | None, data_source: str) -> dict:
    """KL per dimension, posterior moments, one sample of q and of p(z|x) per image, labels (no sampling-heavy
    work: about a second for 1,000 images of a small model), computed here (see collapse_view for the gate)."""
    model, record = load_model(path)
    return views.compute("collapse_stats", model, test_set(record.dataset), {"images": images, "quadrants": quadrants})


@st.cache_data(show_spinner=False, max_entries=256)
def _per_example_chunk(path: str, mtime_ns: int, start: int, stop: int, samples: int, quadrants: int | None,
                       data_source: str) -> dict[str, np.ndarray]:
    model, record = load_model(path)
    return views.per_example_chunk(model, test_set(record.dataset), start, stop, samples, quadrants)


_DONE: set[tuple] = set()  # keys whose chunks are all cached in this process: no progress bar needed


def per_example_table(path: str, images: int, samples: int, quadrants: int | None, data_source: str,
                      progress: Callable[[float], None] | None = None) -> pd.DataFrame:
    """One row per test image: image #, label, recon, KL, -ELBO, NLL (IS), gap; computed CHUNK images at a
    time (each piece cached by path and mtime), calling progress(fraction) as it goes."""
    mtime = mtime_of(path)
    key = (path, mtime, images, samples, quadrants, data_source)
    report = progress if key not in _DONE else None
    parts = []
    for start in range(0, images, CHUNK):
        parts.append(_per_example_chunk(path, mtime, start, min(images, start + CHUNK), samples, quadrants,
                                        data_source))
        if report:
            report(min(1.0, (start + CHUNK) / images))
    _DONE.add(key)
    return _table(path, images, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def _table(path: str, images: int, cols: dict) -> pd.DataFrame:
    _, record = load_model(path)
    labels = test_set(record.dataset).labels[:images].numpy()
    return pd.DataFrame({"image": np.arange(images), "label": labels, "recon": cols["recon"], "KL": cols["kl"],
                         "−ELBO": cols["neg_elbo"], "NLL (IS)": cols["nll_is"], "gap": cols["gap"]})


def per_example_done(path: str, images: int, samples: int, quadrants: int | None, data_source: str) -> bool:
    return (path, mtime_of(path), images, samples, quadrants, data_source) in _DONE


@st.cache_data(show_spinner=False, max_entries=16)
def likelihood_curve(path: str, mtime_ns: int, quadrants: int | None, data_source: str) -> dict:
    """The IS NLL and ESS against S (1 to 1,000) for the first CURVE_IMAGES test images."""
    model, record = load_model(path)
    return views.compute("likelihood_curve", model, test_set(record.dataset), {"quadrants": quadrants})


# ----------------------------------------------------------------------------- heavy views: here or as a job
def view_budget() -> float:
    """The limits' view_budget_cpu_seconds (the default when the limits cannot be read: the Train page says why)."""
    try:
        return read_limits().view_budget_cpu_seconds
    except LimitsError:
        from jobs.limits import Limits
        return Limits.view_budget_cpu_seconds


def runs_here(view: str, path: str, params: dict) -> bool:
    """Whether this view is cheap enough to compute in the server (its estimate within the budget)."""
    model, _ = load_model(path)
    return views.estimate_cpu_seconds(view, params, model.num_parameters()) <= view_budget()


@st.cache_data(show_spinner=False, max_entries=32)
def _view_file(result_path: str, mtime_ns: int) -> dict:
    return views.read_result(result_path)


def view_result(view: str, path: str, params: dict, data_root: str, what: str) -> dict | None:
    """The numbers of a heavy view from its job: a finished job's result (cached by file), or None while it is
    computed (its place in line or a progress bar drawn here, in a fragment that reruns the page when it is
    done). The first call submits the job, in the signed-in person's name and share; a job that failed says why, with
    a button to try again."""
    from ui import identity
    from ui.training_job import job_store_sentences, jobs

    with job_store_sentences():
        service = jobs()
        snap = service.view_job(view, path, params)
        if snap is not None and snap.status == "completed" and snap.result_path:
            try:
                return _view_file(snap.result_path, Path(snap.result_path).stat().st_mtime_ns)
            except (OSError, ValueError):   # removed by the retention a moment ago: compute it again
                snap = None
        ended = st.session_state.get(f"_view_ended_{views.view_key(view, path, mtime_of(path), params)}")
        if snap is None and ended:
            st.error(ended, icon=":material/error:")
            if st.button("Compute it again", key=f"diagnose_again_{view}", icon=":material/refresh:"):
                st.session_state.pop(f"_view_ended_{views.view_key(view, path, mtime_of(path), params)}", None)
                st.rerun()
            return None
        if snap is None:
            try:
                who = identity.person()
                job_id = service.submit_view(who.key, view, path, params, data_root, owner_name=who.name)
            except JobRefused as e:
                st.warning(f"This view is computed as a job, and it cannot start now: {e}", icon=":material/block:")
                return None
            snap = service.progress(job_id)
    _view_progress(snap.id, what, views.view_key(view, path, mtime_of(path), params))
    return None


@st.fragment(run_every=VIEW_POLL_SECONDS)
def _view_progress(job_id: str, what: str, key: str) -> None:
    from ui.training_job import job_store_sentences, jobs
    with job_store_sentences():
        service = jobs()
        snap = service.progress(job_id)
    if snap is None or snap.finished:
        if snap is not None and snap.status != "completed":
            st.session_state[f"_view_ended_{key}"] = snap.message
        st.rerun()
        return
    if snap.status == "queued":
        st.info(f"{what} is too much work for the server, so a worker computes it, as it trains a run: it waits in "
                f"line, place {snap.place_in_queue} of {snap.queue_length} ({service.limits.max_runs} jobs at once "
                "here). It starts on its own.", icon=":material/hourglass_top:")
    else:
        st.progress(snap.fraction, text=f"{what}: computed by a worker, {snap.fraction:.0%} done (once per model, "
                                        "then kept for every visitor)…")


def collapse_view(path: str, images: int, quadrants: int | None, data_source: str, data_root: str) -> dict | None:
    """collapse_stats here when cheap, else from a view job (None while it is computed)."""
    params = {"images": images, "quadrants": quadrants}
    if runs_here("collapse_stats", path, params):
        return collapse_stats(path, mtime_of(path), images, quadrants, data_source)
    return view_result("collapse_stats", path, params, data_root, "Encoding the test images")


def _collapse_ready(path: str, mtime_ns: int, images: int, quadrants: int | None, data_source: str) -> dict:
    """collapse_stats as collapse_view has it ready (here, or the view job's result)."""
    params = {"images": images, "quadrants": quadrants}
    if runs_here("collapse_stats", path, params):
        return collapse_stats(path, mtime_ns, images, quadrants, data_source)
    from ui.training_job import jobs
    snap = jobs().view_job("collapse_stats", path, params)
    return _view_file(snap.result_path, Path(snap.result_path).stat().st_mtime_ns)


def per_example_view(path: str, images: int, samples: int, quadrants: int | None, data_source: str,
                     data_root: str) -> pd.DataFrame | None:
    """The per-example table: here (with a progress bar the first time) when cheap, else from a view job."""
    params = {"images": images, "samples": samples, "quadrants": quadrants}
    if runs_here("per_example", path, params):
        if per_example_done(path, images, samples, quadrants, data_source):
            return per_example_table(path, images, samples, quadrants, data_source)
        bar = st.progress(0.0, text=f"Computing the per-example losses ({images:,} images, S = {samples}); "
                                    "once per model, then cached…")
        table = per_example_table(path, images, samples, quadrants, data_source,
                                  progress=lambda f: bar.progress(f, text=f"Per-example losses: {f:.0%} of "
                                                                          f"{images:,} images (once per model)…"))
        bar.empty()
        return table
    cols = view_result("per_example", path, params, data_root,
                       f"The per-example losses ({images:,} images, S = {samples})")
    return None if cols is None else _table(path, images, cols)


def likelihood_view(path: str, quadrants: int | None, data_source: str, data_root: str) -> dict | None:
    """The NLL-against-S curve: here when cheap, else from a view job."""
    params = {"quadrants": quadrants}
    if runs_here("likelihood_curve", path, params):
        with st.spinner("Importance sampling with up to 1,000 samples per image (once per model)…"):
            return likelihood_curve(path, mtime_of(path), quadrants, data_source)
    return view_result("likelihood_curve", path, params, data_root,
                       f"Importance sampling with up to {CURVE_MAX_S:,} samples for {CURVE_IMAGES} images")


@st.cache_data(show_spinner=False, max_entries=16)
def curve_diversity(path: str, mtime_ns: int, quadrants: int | None, data_source: str) -> float | None:
    """The sample diversity on the curve's own images (10 samples per image; cheap): whether the picture
    depends on z at all, which the likelihood verdict needs (vae_core.verdicts.likelihood_verdict)."""
    model, record = load_model(path)
    cfg = model.config
    if not cfg.has_latent:
        return None
    if cfg.condition == "none":
        return sample_diversity(model, None, 10)
    data = test_set(record.dataset).subset(0, CURVE_IMAGES)
    if cfg.condition == "label":
        return sample_diversity(model, data.labels.to(model.device), 10)
    _, x = make_batch(cfg, data.images.to(model.device), data.labels.to(model.device), quadrants=quadrants)
    return sample_diversity(model, x, 10)


@st.cache_data(show_spinner=False, max_entries=64)
def _sha256(path: str, mtime_ns: int) -> str:
    return file_sha256(path)


def kinship(a: CheckpointRecord, b: CheckpointRecord) -> tuple[bool, bool]:
    """(the two files are the same bytes, one continued the other's training or both continued a common file),
    by the files' SHA-256 and the hashes their records keep of each parent file."""
    sha_a, sha_b = (_sha256(r.path, mtime_of(r.path)) if r.path else "" for r in (a, b))
    chain_a = {x.sha256 for x in a.lineage if x.sha256}
    chain_b = {x.sha256 for x in b.lineage if x.sha256}
    return bool(sha_a and sha_a == sha_b), bool(sha_a in chain_b or sha_b in chain_a or chain_a & chain_b)


@torch.no_grad()
def reconstructions(model, images_uint8: torch.Tensor, labels: torch.Tensor, quadrants: int | None) -> np.ndarray:
    """[B, H, W] in [0, 1]: the model's reconstruction; for a quadrant model the visible pixels are the input's
    and the hidden ones the model's prediction (its mean under the recognition mean)."""
    cfg = model.config
    y, x = make_batch(cfg, images_uint8.to(model.device), labels.to(model.device), quadrants=quadrants)
    pred = model.reconstruct(y, x)
    if cfg.condition == "quadrants":
        pred = torch.where(x == -1, pred, y)
    return pred.reshape(-1, cfg.image_size, cfg.image_size).cpu().numpy()


# ----------------------------------------------------------------------------- figures
def _layout(fig: go.Figure, height: int = 320, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white", **kw)
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def kl_bars(kl: np.ndarray, variance: np.ndarray | None) -> go.Figure:
    """KL per latent dimension, largest first; inactive units (posterior-mean variance <= 0.01) in grey."""
    order = np.argsort(-kl, kind="stable")
    names = [f"z{d + 1}" for d in order]
    active = np.ones(len(kl), bool) if variance is None else variance > ACTIVE_THRESHOLD
    colors = ["#4C78A8" if active[d] else "#BAB0AC" for d in order]
    fig = go.Figure(go.Bar(x=names, y=kl[order], marker_color=colors,
                           customdata=np.stack([variance[order] if variance is not None else kl[order] * 0], -1),
                           hovertemplate="%{x}: KL %{y:.3f} nats<br>variance of the mean %{customdata[0]:.3g}"
                                         "<extra></extra>"))
    fig.update_xaxes(type="category", title_text="latent dimension (sorted by KL)")
    fig.update_yaxes(title_text="KL (nats)", rangemode="tozero")
    return _layout(fig)


def kl_over_epochs(record: CheckpointRecord) -> go.Figure | None:
    """KL per dimension at the end of every epoch (from the history), or None when it was not recorded."""
    points = [(e.epoch + 1, list(e.kl_per_dim)) for e in record.history.epochs if e.kl_per_dim]
    if not points:
        return None
    epochs = [p[0] for p in points]
    values = np.asarray([p[1] for p in points], dtype=float)   # [E, D]
    fig = go.Figure()
    for d in np.argsort(-values[-1]):
        fig.add_trace(go.Scatter(x=epochs, y=values[:, d], mode="lines+markers", name=f"z{d + 1}",
                                 hovertemplate=f"z{d + 1}, epoch %{{x}}: %{{y:.3f}} nats<extra></extra>"))
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 20 else None)
    fig.update_yaxes(title_text="KL (nats)", rangemode="tozero")
    return _layout(fig, legend_title_text="dimension")


def _grid(lo: np.ndarray, hi: np.ndarray, n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], -1)


def aggregate_2d(points: np.ndarray, mu: np.ndarray, logvar: np.ndarray, prior_mu: np.ndarray,
                 prior_logvar: np.ndarray, title: str, n: int = 70) -> tuple[go.Figure, int]:
    """Density of `points` (means or samples) against the prior's contours, with holes marked: places where the
    prior has mass (density above its 2-sigma level) but the aggregate posterior q(z) has under a tenth of it.
    The prior is the mixture of the p(z|x) of the images (N(0, I) for a vae). Returns (figure, holes)."""
    both = np.concatenate([points, prior_mu])
    lo = np.minimum(np.percentile(points, 0.5, axis=0), -3.2)
    hi = np.maximum(np.percentile(points, 99.5, axis=0), 3.2)
    lo, hi = np.minimum(lo, both.min(0)), np.maximum(hi, both.max(0))
    lo, hi = np.maximum(lo, -8), np.minimum(hi, 8)
    xs, ys, pts = _grid(lo, hi, n)
    uniq_mu, idx = np.unique(np.round(prior_mu, 5), axis=0, return_index=True)
    p = aggregate_density(torch.from_numpy(prior_mu[idx] if len(uniq_mu) < 64 else prior_mu[:500]),
                          torch.from_numpy(prior_logvar[idx] if len(uniq_mu) < 64 else prior_logvar[:500]),
                          torch.from_numpy(pts)).numpy()
    # q(z) from a finite sample is a sum of narrow bumps with gaps between them; widen each by a kernel
    # density bandwidth (Scott's rule in 2-D) so a hole means "no data around here", not "between two images"
    n_pts = min(len(mu), 2000)
    bandwidth = np.std(mu[:n_pts], axis=0) * n_pts ** (-1 / 6)
    wide = np.log(np.exp(logvar[:n_pts]) + bandwidth ** 2)
    q = aggregate_density(torch.from_numpy(mu[:n_pts]), torch.from_numpy(wide), torch.from_numpy(pts)).numpy()
    level = p.max() * math.exp(-2.0)            # the 2-sigma contour of a single Gaussian
    holes = (p >= level) & (q < 0.1 * p)
    fig = go.Figure()
    fig.add_trace(go.Histogram2dContour(x=points[:, 0], y=points[:, 1], colorscale="Blues", showscale=False,
                                        ncontours=12, contours=dict(coloring="fill", showlines=False),
                                        name="data", hoverinfo="skip"))
    for r in (1, 2, 3):  # where a single Gaussian's density is at r standard deviations
        lv = p.max() * math.exp(-r * r / 2)
        fig.add_trace(go.Contour(x=xs, y=ys, z=p.reshape(n, n), showscale=False, name=f"prior, {r} σ",
                                 contours=dict(coloring="none", start=lv, end=lv, size=1.0),
                                 line=dict(color="#E45756", width=2, dash="solid" if r == 1 else "dot"),
                                 hoverinfo="skip"))
    if holes.any():
        fig.add_trace(go.Scatter(x=pts[holes, 0], y=pts[holes, 1], mode="markers", name="hole",
                                 marker=dict(symbol="x", size=6, color="#E45756"),
                                 hovertemplate="hole: the prior has mass here, the data almost none<extra></extra>"))
    fig.update_layout(title=dict(text=title, x=0.02, font=dict(size=14)))
    fig.update_xaxes(title_text="z₁", range=[lo[0], hi[0]])
    fig.update_yaxes(title_text="z₂", range=[lo[1], hi[1]], scaleanchor="x")
    return _layout(fig, height=440, showlegend=False), int(holes.sum())


@st.cache_data(show_spinner=False, max_entries=64)
def aggregate_figures(path: str, mtime_ns: int, images: int, quadrants: int | None, data_source: str,
                      label: int | None) -> tuple[go.Figure, go.Figure, int] | None:
    """The two maps of a 2-D latent (test means; one sample per image) against the prior, and the number of
    holes, for all images or those of one label; cached (the densities take a few seconds)."""
    s = _collapse_ready(path, mtime_ns, images, quadrants, data_source)
    keep = np.ones(len(s["mu"]), bool) if label is None else s["labels"] == label
    if keep.sum() < 2:
        return None
    args = (s["mu"][keep], s["logvar"][keep], s["prior_mu"][keep], s["prior_logvar"][keep])
    means, holes = aggregate_2d(s["mu"][keep], *args, "test means")
    samples, _ = aggregate_2d(s["sample"][keep], *args, "one sample z ~ q per image")
    return means, samples, holes


def marginal_histograms(sample: np.ndarray, prior_sample: np.ndarray, kl: np.ndarray | None,
                        limit: int = 12) -> go.Figure:
    """For a latent of more than two dimensions: per dimension (the `limit` with the most KL), the histogram of
    one q(z|x,y) sample per image against one p(z|x) sample per image and the N(0, 1) density."""
    from plotly.subplots import make_subplots
    dims = np.argsort(-kl)[:limit] if kl is not None else np.arange(min(limit, sample.shape[1]))
    cols = 4
    rows = math.ceil(len(dims) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"z{d + 1}" for d in dims],
                        vertical_spacing=0.12, horizontal_spacing=0.05)
    t = np.linspace(-4, 4, 101)
    pdf = np.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    for i, d in enumerate(dims):
        r, c = divmod(i, cols)
        first = i == 0
        fig.add_trace(go.Histogram(x=sample[:, d], histnorm="probability density", nbinsx=40, marker_color="#4C78A8",
                                   opacity=0.7, name="q(z|x,y), one sample per image", legendgroup="q",
                                   showlegend=first), row=r + 1, col=c + 1)
        fig.add_trace(go.Histogram(x=prior_sample[:, d], histnorm="probability density", nbinsx=40,
                                   marker_color="#F58518", opacity=0.45, name="p(z|x), one sample per image",
                                   legendgroup="p", showlegend=first), row=r + 1, col=c + 1)
        fig.add_trace(go.Scatter(x=t, y=pdf, mode="lines", line=dict(color="#222", width=1.5, dash="dot"),
                                 name="N(0, 1)", legendgroup="n", showlegend=first, hoverinfo="skip"),
                      row=r + 1, col=c + 1)
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=-0.08))
    return _layout(fig, height=200 * rows + 60)


def likelihood_figure(curve: dict, shown: int = CURVE_SHOWN) -> go.Figure:
    """Left: the IS NLL against S for a few images (thin) and the mean over all (bold), relative to the estimate
    at the largest S so images of different difficulty share an axis. Right: ESS against S, with ESS = S."""
    from plotly.subplots import make_subplots
    s, nll, ess = curve["samples"], curve["nll"], curve["ess"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["NLL(S) − NLL(1,000), nats", "effective sample size of the weights"])
    rel = nll - nll[-1:]
    for i in range(min(shown, nll.shape[1])):
        color = ("#B279A2", "#72B7B2", "#F58518", "#54A24B", "#9D755D")[i % 5]
        fig.add_trace(go.Scatter(x=s, y=rel[:, i], mode="lines", line=dict(width=1, color=color),
                                 name=f"test image #{i}", legendgroup=str(i)), row=1, col=1)
        fig.add_trace(go.Scatter(x=s, y=ess[:, i], mode="lines", line=dict(width=1, color=color),
                                 name=f"test image #{i}", legendgroup=str(i), showlegend=False), row=1, col=2)
    fig.add_trace(go.Scatter(x=s, y=rel.mean(1), mode="lines+markers", line=dict(width=3, color="#4C78A8"),
                             name=f"mean of {nll.shape[1]} images", legendgroup="mean"), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=ess.mean(1), mode="lines+markers", line=dict(width=3, color="#4C78A8"),
                             name="mean", legendgroup="mean", showlegend=False), row=1, col=2)
    fig.add_trace(go.Scatter(x=s, y=s, mode="lines", line=dict(color="#999", dash="dot"), name="ESS = S"),
                  row=1, col=2)
    fig.update_xaxes(type="log", title_text="samples S")
    fig.update_yaxes(type="log", row=1, col=2)
    return _layout(fig, height=360, legend=dict(orientation="h", y=-0.25))


def _ellipse(mu, std, k: float, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n)
    return mu[0] + k * std[0] * np.cos(t), mu[1] + k * std[1] * np.sin(t)


def ellipses_figure(g: dict, dims: tuple[int, int], others: np.ndarray | None = None) -> go.Figure:
    """p(z|x) and q(z|x,y) of one example as 1- and 2-sigma ellipses on two latent dimensions."""
    d = list(dims)
    fig = go.Figure()
    if others is not None and len(others):
        fig.add_trace(go.Scattergl(x=others[:, d[0]], y=others[:, d[1]], mode="markers", name="q means of other images with this x",
                                   marker=dict(size=4, color="#BAB0AC", opacity=0.6), hoverinfo="skip"))
    for key, name, color in (("prior", "p(z|x): the prior given x", "#E45756"), ("q", "q(z|x,y): the posterior", "#4C78A8")):
        mu, std = g[f"{key}_mu"][d], g[f"{key}_std"][d]
        for k, dash in ((1, "solid"), (2, "dot")):
            ex, ey = _ellipse(mu, std, k)
            fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color=color, dash=dash, width=2),
                                     name=f"{name} ({k}σ)", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[mu[0]], y=[mu[1]], mode="markers", marker=dict(color=color, size=10),
                                 name=f"mean of {key if key == 'q' else 'p'}", showlegend=False,
                                 hovertemplate=f"{key}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    fig.update_xaxes(title_text=f"z{d[0] + 1}")
    fig.update_yaxes(title_text=f"z{d[1] + 1}", scaleanchor="x")
    return _layout(fig, height=460, legend=dict(orientation="h", y=-0.2))


# ----------------------------------------------------------------------------- tables
def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (list, tuple)) and v and not isinstance(v[0], (int, float, str)):
            continue
        else:
            out[f"{prefix}{k}"] = v
    return out


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return "" if v is None else str(v)


ONNX_UNUSED = ("hidden_dims", "dropout", "encoder", "alpha", "quadrants")  # Latent Lab's own layers and variants


def config_rows(record: CheckpointRecord) -> pd.DataFrame:
    """Every setting of the model and of its training, one row each (strings, so the column type is one); for a
    model trained elsewhere, where it came from, and for one carried as ONNX graphs only the settings that
    describe it (its layers are the graphs')."""
    settings = record.model_config.to_dict()
    if record.is_onnx:
        settings = {k: v for k, v in settings.items() if k not in ONNX_UNUSED}
    rows = [("model", k, _cell(v)) for k, v in settings.items()]
    if record.source is not None:
        rows += [("source", k, _cell(v)) for k, v in dataclasses.asdict(record.source).items() if v]
    train = record.train_config.to_dict() if record.train_config is not None else {}
    rows += [("training", k, _cell(v)) for k, v in train.items()]
    if "dataset" not in train:
        rows.append(("data", "dataset", record.dataset))
    return pd.DataFrame(rows, columns=["part", "setting", "value"])


def _figure_rows(metrics: dict) -> list[tuple[str, str, object]]:
    """(block, code name, value) of every stored figure; a quadrant model's blocks by their visible count."""
    rows = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            rows += [(k, kk, vv) for kk, vv in v.items() if not isinstance(vv, dict)]
        else:
            rows.append(("", k, v))
    return rows


def _figure_name(block: str, key: str) -> str:
    return (f"{quadrant_block_name(block)} · " if block else "") + metric_label(key)


def metrics_rows(record: CheckpointRecord) -> pd.DataFrame:
    """The stored figures under human names, with units and their own precision (strings: whole counts print
    whole, nats with two decimals)."""
    rows = _figure_rows(record.metrics)
    return pd.DataFrame({"figure": [_figure_name(b, k) for b, k, _ in rows],
                         "value": [format_metric(k, v, unit=False) for _, k, v in rows]})


def measured(record: CheckpointRecord, test1000: bool = False) -> Measured:
    """How a record's figures (or its figures on the first 1,000 test images) were measured."""
    return Measured(record.test_image_count(test1000=test1000), record.samples_of(test1000=test1000), record.dataset)


COUNTS = ("samples", "test_images")   # rows that say how a figure was measured, not what it measured


def compare_rows(a: CheckpointRecord, b: CheckpointRecord) -> tuple[pd.DataFrame, pd.DataFrame, Verdict | None, str]:
    """(figures side by side, settings that differ, a note when the figures were measured differently, where
    the figures come from). Both files' figures on their first 1,000 test images are used when those were
    measured alike and the main ones were not; otherwise the main figures, and B − A is left out when they
    were measured differently. Strings, so counts print whole and nats with two decimals."""
    ma, mb, source = a.metrics, b.metrics, "the figures each file stores"
    note = comparison_note(measured(a), measured(b))
    if note is not None and a.metrics_test1000 and b.metrics_test1000 and \
            comparison_note(measured(a, True), measured(b, True)) is None:
        ma, mb, note = a.metrics_test1000, b.metrics_test1000, None
        source = "both files' figures on the same first 1,000 test images"
    ra = {(blk, k): v for blk, k, v in _figure_rows(ma)}
    rb = {(blk, k): v for blk, k, v in _figure_rows(mb)}
    rows = []
    for key in dict.fromkeys([*ra, *rb]):
        blk, k = key
        va, vb = ra.get(key), rb.get(key)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
        diff = "—"
        if numbers and k not in COUNTS and note is None:
            diff = f"{vb - va:+.2f}" if metric_name(k).kind == "nats" else format_metric(k, vb - va)
        rows.append({"figure": _figure_name(blk, k),
                     "A": "—" if va is None else format_metric(k, va, unit=False),
                     "B": "—" if vb is None else format_metric(k, vb, unit=False), "B − A": diff})
    present = {k for _, k in [*ra, *rb]}
    for k in COUNTS:   # how each side was measured, said even where neither file recorded it
        if k not in present:
            rows.append({"figure": _figure_name("", k), "A": "not recorded", "B": "not recorded", "B − A": "—"})
    metrics = pd.DataFrame(rows, columns=["figure", "A", "B", "B − A"])
    ca = {(r.part, r.setting): r.value for r in config_rows(a).itertuples()}
    cb = {(r.part, r.setting): r.value for r in config_rows(b).itertuples()}
    diff = [{"part": p, "setting": s, "A": ca.get((p, s), "—"), "B": cb.get((p, s), "—")}
            for (p, s) in dict.fromkeys([*ca, *cb]) if ca.get((p, s)) != cb.get((p, s))]
    return metrics, pd.DataFrame(diff, columns=["part", "setting", "A", "B"]), note, source


def same_z_note(a_imgs: np.ndarray, b_imgs: np.ndarray, a: CheckpointRecord, b: CheckpointRecord) -> Verdict:
    """Why the same z decodes alike or not under A and B: relatedness (the chain of runs) and the measured mean
    pixel distance between their pictures (the unit of sample diversity)."""
    distance = float(np.linalg.norm((a_imgs - b_imgs).reshape(len(a_imgs), -1), axis=1).mean())
    identical, related = kinship(a, b)
    return same_z_verdict(related=related, distance=distance, identical=identical)


def lineage_rows(record: CheckpointRecord) -> pd.DataFrame:
    """The runs a model came from, oldest first, then itself: file, hash, epochs, time, figure, how known."""
    rows = []
    for i, link in enumerate([*record.lineage, record], start=1):
        own = link is record
        flat = {k: v for k, v in link.metrics.items() if not isinstance(v, dict)}
        rows.append({
            "run": i,
            "file": f"{Path(record.path).name} (this file)" if own and record.path else (link.file or "—"),
            "SHA-256": "this file" if own else (link.sha256[:12] + "…" if link.sha256 else "not kept"),
            "epochs": "—" if link.epochs_completed is None else format_count(link.epochs_completed),
            "training time": format_duration(link.train_seconds) if link.train_seconds else "—",
            "test −ELBO (nats)": format_nats(flat["neg_elbo"], unit=False) if "neg_elbo" in flat else "—",
            "how it is known": "from the file itself" if own else (link.reconstructed or "from its parent file"),
        })
    return pd.DataFrame(rows)


@torch.no_grad()
def decode_same_z(model_a, model_b, n: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The same latent codes z ~ N(0, I) decoded by both models ([n, H, W] each) and what was given as x:
    label models get the labels 0..n-1 (both the same), unconditional ones nothing."""
    cfg = model_a.config
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, cfg.latent_dim, generator=gen)
    x, given = None, "z ~ N(0, I)"
    if cfg.condition == "label":
        x = torch.arange(n) % cfg.num_classes
        given = "z ~ N(0, I), labels 0, 1, 2, …"
    size = cfg.image_size
    a = model_a.decode(z, x).reshape(n, size, size).cpu().numpy()
    b = model_b.decode(z, x).reshape(n, size, size).cpu().numpy()
    return a, b, given


def same_z_reason(a, b) -> str | None:
    """Why two models cannot decode the same z, or None when they can."""
    if not (a.has_latent and b.has_latent):
        return "A baseline has no latent code, so there is no common z to decode; the metrics and settings are below."
    if a.condition == "quadrants" or b.condition == "quadrants":
        return ("Quadrant models decode z together with a partly hidden image; decoding the same z needs a shared "
                "input, so only the metrics and settings are compared here.")
    if (a.latent_dim, a.condition, a.image_size) != (b.latent_dim, b.condition, b.image_size):
        return (f"The two models do not share a latent space shape (A: {a.describe()}, B: {b.describe()}), so the "
                "same z cannot go into both; the metrics and settings are below.")
    return None


def conditional_view_reason(config) -> str | None:
    if not config.has_latent:
        return "A baseline model has no latent code, so there is no p(z|x) or q(z|x,y) to draw."
    info = VARIANTS[config.variant]
    with_both = " or ".join(VARIANTS[v].title for v in compared_variants(with_latent=True)
                            if not VARIANTS[v].recognition_is_prior)   # the CVAE or hybrid
    if config.condition == "none":
        return (f"A {info.title} has no condition x: its prior is N(0, I) for every image (the aggregate-posterior "
                f"view compares q with it). Pick a {with_both} to see p(z|x) against q(z|x,y).")
    if info.recognition_is_prior:
        return (f"A {info.title}'s recognition net is its prior net: q(z|x,y) = p(z|x), so the two ellipses coincide "
                f"and their KL is zero. Pick a {with_both}.")
    if config.prior == "standard":
        return "This model's prior is N(0, I) whatever x is; the view compares a learned p(z|x) with q(z|x,y)."
    return None


def example_gaussians(model, image_uint8: torch.Tensor, label: int, quadrants: int | None) -> dict:
    cfg = model.config
    y, x = make_batch(cfg, image_uint8.reshape(1, *image_uint8.shape).to(model.device),
                      torch.tensor([label], device=model.device), quadrants=quadrants)
    return conditional_gaussians(model, y, x)


def chain_history_figure(record: CheckpointRecord) -> go.Figure | None:
    """The evaluation loss after each epoch over the whole chain of runs, run after run (a run whose history
    was not kept is a labelled gap); None when the model continued no earlier run."""
    if not record.lineage:
        return None
    fig, start = go.Figure(), 0
    for i, link in enumerate([*record.lineage, record], start=1):
        epochs = [e for e in link.history.epochs if e.eval and "loss" in e.eval]
        span = max(len(epochs), link.epochs_completed or 0, 1)
        if epochs:
            fig.add_trace(go.Scatter(x=[start + e.epoch + 1 for e in epochs], y=[e.eval["loss"] for e in epochs],
                                     mode="lines+markers", marker=dict(size=4), name=f"run {i}",
                                     hovertemplate=f"run {i}, epoch %{{customdata}}: %{{y:.2f}} nats<extra></extra>",
                                     customdata=[e.epoch + 1 for e in epochs]))
        else:
            fig.add_vrect(x0=start + 0.5, x1=start + span + 0.5, fillcolor="#eee", line_width=0,
                          annotation_text=f"run {i}: history not kept", annotation_position="top left")
        if i > 1:
            fig.add_vline(x=start + 0.5, line=dict(color="#999", dash="dot", width=1))
        start += span
    fig.update_xaxes(title_text="epoch, counted over the chain of runs")
    fig.update_yaxes(title_text="evaluation loss (nats per image)")
    return _layout(fig, height=300, legend=dict(orientation="h", y=-0.3))

"""β as a slider: the Latent map and the Decoder move between the models of a β sweep, and a rate-distortion
chart places them (Alemi et al. 2018, "Fixing a Broken ELBO").

A sweep is a group of models whose records differ only in β, the weight of the KL term (vae_core.record:
`sweep_key`, `beta_sweeps`); it is found from the records, never from file names, so the shipped sweep
(checkpoints/beta-sweep/) and two runs of the Train page that differ only in β are sweeps alike.

Moving the slider makes the sweep's model of that β the session's model on every page (ui/model_catalogue.py:
`choose_model`); the page then draws it from its caches (the model, its stored latent means, its pictures),
so a move costs the server little. The chart puts rate (the KL term) against distortion (the reconstruction
term), in nats per image, one point per model of the sweep, the current one ringed, with dashed lines of equal
-ELBO = rate + distortion; this browser's own finished Train runs of the same kind join it as stars, their
figures' test images named beside them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import plotly.graph_objects as go
import streamlit as st

from ui.model_catalogue import available_models, choose_model
from vae_core import CheckpointError, CheckpointRecord, read_record
from vae_core.record import beta_sweeps

SLIDER_KEY = "beta_sweep_beta"
CHART_KEY = "beta_sweep_chart"
SWEEP_COLOR = "#4C78A8"
CURRENT_COLOR = "#E45756"
RUN_COLOR = "#F58518"


@dataclass(frozen=True)
class RunPoint:
    """A model outside the sweep placed on its chart: one of this browser's Train runs."""

    label: str          # e.g. "your run: β = 4, 256-256, 4 epochs"
    beta: float
    rate: float         # KL term, nats per image
    distortion: float   # reconstruction term, nats per image
    test_images: int | None


# ----------------------------------------------------------------------------- finding the sweep
def sweep_of(path: str | None) -> list[CheckpointRecord] | None:
    """The β sweep (records sorted by β) that the model at `path` belongs to, or None."""
    if path is None:
        return None
    records = [e.record for e in available_models() if e.error is None and e.record is not None]
    return next((group for group in beta_sweeps(records) if any(r.path == path for r in group)), None)


def beta_text(beta: float) -> str:
    return f"{beta:g}"


def beta_slider(record: CheckpointRecord, *, on_move: Callable[[str, str], None] | None = None,
                key: str = SLIDER_KEY) -> list[CheckpointRecord] | None:
    """A select slider over the β values of the picked model's sweep, when it belongs to one (else nothing is
    drawn and None returned). Moving it makes the sweep's model of that β the session's model; `on_move(old
    path, new path)` runs first, in the callback, to carry the page's state over (a selection, a latent code)."""
    sweep = sweep_of(record.path)
    if sweep is None:
        return None
    paths = {r.beta: r.path for r in sweep}
    # A browser can send back the slider's old value after the model was changed elsewhere (the presenter's b / B,
    # the picker), which would move the model back (a chromium test caught it once in a CI run): as the model
    # picker does, the slider is a new widget for each model chosen elsewhere, so an old value reaches no
    # callback. A move of the slider itself keeps its widget (move() notes the model it now shows): a new one
    # stood beside the old for the whole script run, shifting the page below it by a slider's height.
    if st.session_state.get(f"_{key}_shows") != record.path:
        st.session_state[f"_{key}_version"] = st.session_state.get(f"_{key}_version", 0) + 1
        st.session_state[f"_{key}_shows"] = record.path
    widget = f"{key}_{st.session_state[f'_{key}_version']}"
    st.session_state[widget] = record.beta       # the slider always shows the model the page shows

    def move() -> None:
        new = paths.get(st.session_state.get(widget))
        if new is None or new == record.path or st.session_state.get(f"_{key}_shows") != record.path:
            return      # (the last: a slider drawn for a model that is no longer the page's, sending late)
        if on_move is not None:
            on_move(record.path, new)
        choose_model(new)
        st.session_state[f"_{key}_shows"] = new

    st.select_slider("β, the weight of the KL term", options=list(paths), key=widget, on_change=move,
                     format_func=beta_text,
                     help="Models trained alike but for β: the loss is reconstruction + β × KL. A small β lets the "
                          "encoder spread the digits apart (more rate, sharper pictures); a large one pulls every "
                          "code towards the prior N(0, I) (less rate, blurrier pictures).")
    return sweep


# ----------------------------------------------------------------------------- this browser's Train runs
@st.cache_data(show_spinner=False, max_entries=256)
def _run_record(path: str, mtime_ns: int) -> CheckpointRecord | None:
    try:
        record = read_record(path)
    except CheckpointError:
        return None
    return record


def comparable(record: CheckpointRecord, reference: CheckpointRecord) -> bool:
    """A model whose rate and distortion mean the same as the reference's: same data set, variant and
    condition (its size, latent size and training may differ: that is what the chart compares)."""
    a, b = record.model_config, reference.model_config
    return (record.dataset == reference.dataset and a.variant == b.variant and a.condition == b.condition
            and record.rate_distortion() is not None and record.beta is not None)


def your_runs(reference: CheckpointRecord) -> list[RunPoint]:
    """The signed-in person's finished Train runs (saved or not) comparable with the reference model, as chart
    points. Only reads: the runs are not marked as watched."""
    from ui.identity import current_person
    from ui.training_job import jobs

    try:
        person = current_person()
        if person is None:
            return []
        snaps = jobs().jobs_of(person.key, touch=False)
    except Exception:  # noqa: BLE001 - the job table is unusable (its own page says why): no points
        return []
    points = []
    for snap in snaps:
        if not snap.finished or not snap.can_save:
            continue
        path = Path(snap.result_path)
        try:
            record = _run_record(str(path), path.stat().st_mtime_ns)
        except OSError:
            continue
        if record is None or not comparable(record, reference):
            continue
        rate, distortion = record.rate_distortion()
        cfg = record.model_config
        size = "-".join(map(str, cfg.hidden_dims))
        epochs = record.epochs_trained
        label = (f"your run: β = {beta_text(record.beta)}, {cfg.latent_dim}-D latent, {size}"
                 + (f", {epochs} epoch{'s' * (epochs != 1)}" if epochs else ""))
        points.append(RunPoint(label, record.beta, rate, distortion, record.test_images))
    return points


# ----------------------------------------------------------------------------- the rate-distortion chart
def images_text(count: int | None) -> str:
    if count is None:
        return "test images not recorded"
    return "all 10,000 test images" if count == 10_000 else f"the first {count:,} test images"


def _counts_text(counts: set) -> str:
    """The test images behind a group of points, for a legend entry."""
    if len(counts) == 1:
        return images_text(next(iter(counts)))
    known = sorted(c for c in counts if c is not None)
    return f"{known[0]:,} to {known[-1]:,} test images" if known else "test images not recorded"


def elbo_levels(totals: list[float], lines: int = 5) -> list[float]:
    """Round values of -ELBO (= rate + distortion) for the dashed lines: a 1, 2 or 5 step that puts about
    `lines` of them across the span of the totals, one step beyond it at each end."""
    lo, hi = min(totals), max(totals)
    raw = max(hi - lo, 1e-6) / max(1, lines - 2)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    start = math.floor(lo / step) * step
    count = int(math.ceil((hi - start) / step)) + 1
    return [round(start + i * step, 10) for i in range(count + 1)]


def rate_distortion_figure(sweep: list[CheckpointRecord], current_path: str | None,
                           runs: list[RunPoint] = (), height: int = 300) -> go.Figure:
    """x: rate (KL, nats), y: distortion (reconstruction, nats); one point per model of the sweep joined by a
    line in β order, the current one ringed; dashed lines of equal -ELBO; runs as stars. Every point's hover
    names its test images: figures on different test sets are never set side by side without saying so."""
    points = [(r, *r.rate_distortion()) for r in sweep if r.rate_distortion() is not None]
    fig = go.Figure()
    if not points:
        return fig
    all_rates = [p[1] for p in points] + [p.rate for p in runs]
    all_dists = [p[2] for p in points] + [p.distortion for p in runs]
    x_hi = max(all_rates) * 1.12 + 0.5
    y_lo, y_hi = min(all_dists), max(all_dists)
    pad = max(1.0, 0.08 * (y_hi - y_lo))
    y_lo, y_hi = y_lo - pad, y_hi + pad
    for level in elbo_levels([a + b for a, b in zip(all_rates, all_dists)]):
        fig.add_trace(go.Scatter(x=[0, x_hi], y=[level, level - x_hi], mode="lines", showlegend=False,
                                 line=dict(color="#bbb", width=1, dash="dash"), hoverinfo="skip"))
        if y_lo <= level - 0.04 * x_hi <= y_hi:   # its value where it enters the plot, on the left
            fig.add_annotation(x=0.04 * x_hi, y=level - 0.04 * x_hi, text=f"−ELBO {level:g}", showarrow=False,
                               font=dict(size=10, color="#888"), xanchor="left", yanchor="bottom")
    sweep_counts = {r.test_images for r, _, _ in points}
    fig.add_trace(go.Scatter(
        x=[p[1] for p in points], y=[p[2] for p in points], mode="lines+markers+text", name=f"β sweep "
        f"({_counts_text(sweep_counts)})", text=[f"β {beta_text(r.beta)}" for r, _, _ in points],
        textposition="top right", textfont=dict(size=10), line=dict(color=SWEEP_COLOR, width=1.5),
        marker=dict(size=8, color=SWEEP_COLOR),
        customdata=[[beta_text(r.beta), a + b, images_text(r.test_images)] for r, a, b in points],
        hovertemplate="β = %{customdata[0]}<br>rate (KL) %{x:.2f} nats<br>distortion (reconstruction) %{y:.2f} nats"
                      "<br>−ELBO %{customdata[1]:.2f} nats<br>on %{customdata[2]}<extra></extra>"))
    current = [p for p in points if p[0].path == current_path]
    if current:
        r, a, b = current[0]
        fig.add_trace(go.Scatter(x=[a], y=[b], mode="markers", name=f"this model (β = {beta_text(r.beta)})",
                                 marker=dict(size=18, symbol="circle-open", color=CURRENT_COLOR, line=dict(width=3)),
                                 hoverinfo="skip"))
    if runs:
        fig.add_trace(go.Scatter(
            x=[p.rate for p in runs], y=[p.distortion for p in runs], mode="markers",
            name=f"your runs ({_counts_text({p.test_images for p in runs})})",
            marker=dict(size=14, symbol="star", color=RUN_COLOR, line=dict(color="#333", width=1)),
            customdata=[[p.label, p.rate + p.distortion, images_text(p.test_images)] for p in runs],
            hovertemplate="%{customdata[0]}<br>rate (KL) %{x:.2f} nats<br>distortion (reconstruction) %{y:.2f} nats"
                          "<br>−ELBO %{customdata[1]:.2f} nats<br>on %{customdata[2]}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, font=dict(size=11)),
                      xaxis_title="rate: KL (nats)", yaxis_title="distortion: reconstruction (nats)",
                      dragmode=False)
    fig.update_xaxes(range=[0, x_hi], showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(range=[y_lo, y_hi], showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


def sweep_caption(sweep: list[CheckpointRecord], record: CheckpointRecord) -> str:
    """What the sweep is, and this model's rate and distortion (or that its file does not store them)."""
    figures = record.rate_distortion()
    this = (f"rate {figures[0]:.1f} nats, distortion {figures[1]:.1f} nats ({images_text(record.test_images)})"
            if figures else "its file stores no test figures, so it has no point on the chart")
    return (f"**{len(sweep)} models that differ only in β** (the loss is reconstruction + β × KL). This one, "
            f"β = {beta_text(record.beta)}: {this}. Small β: the codes spread out and the digits sharpen; large β: "
            "the codes collapse towards N(0, I) and the digits blur.")


def sweep_panel(record: CheckpointRecord, *, on_move: Callable[[str, str], None] | None = None) -> bool:
    """The β slider and, beside it, the rate-distortion chart, when the picked model belongs to a sweep.
    Returns whether it drew them."""
    slider_col, chart_col = st.columns([2, 3], gap="large", vertical_alignment="center")
    with slider_col:
        sweep = beta_slider(record, on_move=on_move)
        if sweep is None:
            return False
        st.caption(sweep_caption(sweep, record))
    runs = your_runs(record)
    with chart_col:
        if not runs and all(r.rate_distortion() is None for r in sweep):
            st.caption("No model of this sweep stores its test figures (rate and distortion), so there is no "
                       "rate-distortion chart to draw.")
            return True
        fig = rate_distortion_figure(sweep, record.path, runs)
        st.plotly_chart(fig, key=CHART_KEY, config={"displayModeBar": False}, width="stretch")
        mixed = bool(runs) and {r.test_images for r in sweep} != {p.test_images for p in runs}
        st.caption("Rate against distortion, nats per image; each dashed line joins models of equal −ELBO (rate + "
                   "distortion), lower lines being better."
                   + (" Your runs' figures come from other test images than the sweep's (the legend and each "
                      "point's hover say which): compare them with care." if mixed else ""))
    return True

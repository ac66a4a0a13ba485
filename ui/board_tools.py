"""The class board's pieces (pages/board.py): a line per run, the runs' loss curves on one chart, the class's
models and people. Everything it reads comes from the job table (jobs.api.JobService.class_runs / curves,
jobs/classroom.py), so the board shows every server's runs on the folder."""
from __future__ import annotations

import hashlib
import time

import plotly.graph_objects as go

from jobs.table import JobRow
from jobs.worker import settings_from_dict
from ui.plots import CLASS_COLORS
from ui.training_job import format_seconds

STATUS_WORDS = {"queued": "waiting", "starting": "starting", "running": "training", "stopping": "stopping",
                "completed": "finished", "stopped": "stopped", "diverged": "diverged", "failed": "failed"}


def model_of(row: JobRow) -> tuple[str, int]:
    """(the run's model in a few words, its epochs)."""
    try:
        model, train = settings_from_dict(row.settings)
    except Exception:  # noqa: BLE001 - a row written by another version: say little rather than fail the board
        return "?", 1
    return f"{model.describe()} · {train.dataset}", train.epochs


def run_line(row: JobRow, place: int, now: float | None = None) -> str:
    """'**Ada** · vae | 2-D latent · mnist · training · epoch 2/4 · loss 163.2 (test 158.0) · 0:12'."""
    now = time.time() if now is None else now
    model, epochs = model_of(row)
    parts = [f"**{row.owner_name or row.owner}**", model, STATUS_WORDS.get(row.status, row.status)]
    if row.status == "queued":
        parts.append(f"place {place} in line")
    elif row.total_steps:
        parts.append(f"epoch {min(row.epoch + 1, epochs)}/{epochs}")
    if row.loss is not None:
        parts.append(f"loss {row.loss:,.1f}" + (f" (test {row.eval_loss:,.1f})" if row.eval_loss is not None else ""))
    if row.started:
        parts.append(format_seconds((row.finished or now) - row.started))
    return " · ".join(parts)


def run_key(job_id: str) -> str:
    return job_id


def curves_figure(rows: list[JobRow], points: dict[str, list], height: int = 360) -> go.Figure:
    """One line per run (its smoothed training loss, thinned: job_points) against epochs, so runs with
    different batch sizes line up; test losses as diamonds. customdata is the run's id: a click opens it."""
    fig = go.Figure()
    for k, row in enumerate(rows):
        curve = points.get(row.id) or []
        if not curve:
            continue
        _, epochs = model_of(row)
        per_epoch = max(1.0, (row.total_steps or 1) / max(1, epochs))
        color = CLASS_COLORS[k % len(CLASS_COLORS)]
        name = f"{row.owner_name or row.owner} · {model_of(row)[0].split(' · ')[0]}"
        xs = [s / per_epoch for s, loss, _ in curve if loss is not None]
        ys = [loss for _, loss, _ in curve if loss is not None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, legendgroup=row.id,
                                 customdata=[row.id] * len(xs), line=dict(color=color, width=2),
                                 marker=dict(size=5, color=color),
                                 hovertemplate=f"{name}<br>epoch %{{x:.2f}}<br>loss %{{y:,.1f}}<extra></extra>"))
        tests = [(s / per_epoch, e) for s, _, e in curve if e is not None]
        if tests:
            fig.add_trace(go.Scatter(x=[t[0] for t in tests], y=[t[1] for t in tests], mode="markers",
                                     name=f"{name} (test)", legendgroup=row.id, showlegend=False,
                                     customdata=[row.id] * len(tests),
                                     marker=dict(symbol="diamond", size=9, color=color),
                                     hovertemplate=f"{name}<br>test loss %{{y:,.1f}} after epoch %{{x:.0f}}"
                                                   "<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      xaxis_title="epochs", yaxis_title="loss (nats per image)", yaxis_type="log",
                      legend=dict(y=0.98, yanchor="top"), dragmode="pan", clickmode="event+select",
                      uirevision="board")
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def curves_digest(rows: list[JobRow], points: dict[str, list]) -> str:
    """Changes when a curve gains a point or a run comes or goes: the figure is rebuilt (and resent) only then."""
    h = hashlib.sha1()
    for row in rows:
        curve = points.get(row.id) or []
        h.update(f"{row.id}:{row.owner_name}:{len(curve)}:{curve[-1] if curve else ''};".encode())
    return h.hexdigest()


def widget_key(prefix: str, text: str) -> str:
    """A stable, short widget key for a path or id."""
    return f"{prefix}_{hashlib.sha1(text.encode()).hexdigest()[:10]}"

"""The class board's pieces (pages/board.py): a line per run, the runs' loss curves on one chart (a click on a
curve opens its run), the class's models and people. Everything it reads comes from the job table
(jobs.api.JobService.class_runs / curves, jobs/classroom.py), so the board shows every server's runs on the folder."""
from __future__ import annotations

import hashlib
import math
import time

import plotly.graph_objects as go
import streamlit as st

from jobs.table import JobRow
from jobs.worker import settings_from_dict
from ui.plots import CLASS_COLORS
from ui.training_job import format_seconds

CLICK_SPACING = 1 / 150   # the click targets along a curve: at most this fraction of the axes apart (~4 px)
CURVES = "board_curves"         # the curves chart's key
CLICKED = "_board_clicked"      # the run a click on a curve picked, noted by the chart's on_select callback
SEEN = "_board_seen_pick"       # the run the chart's selection held when last read (a held selection is no new click)
STATUS_WORDS = {"queued": "waiting", "starting": "starting", "running": "training", "stopping": "stopping",
                "completed": "finished", "stopped": "stopped", "diverged": "diverged", "failed": "failed"}


def model_of(row: JobRow) -> tuple[str, int]:
    """(the run's model in a few words, its epochs); a Diagnose view computed as a job says which view."""
    if row.kind == "view":
        return f"Diagnose view ({str(row.settings.get('view', '?')).replace('_', ' ')})", 1
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
    different batch sizes line up; test losses as diamonds. customdata is the run's id: a click opens it.

    Plotly selects points, never a stretch of line, and a long run's curve is sparse early on (its points are
    1/200 of its steps apart, the axis only as long as the runs so far), so each curve also carries invisible
    points along its line (click_targets): a click anywhere on a curve lands on a point of that run."""
    fig = go.Figure()
    curves = []
    for k, row in enumerate(rows):
        curve = points.get(row.id) or []
        if not curve:
            continue
        _, epochs = model_of(row)
        per_epoch = max(1.0, (row.total_steps or 1) / max(1, epochs))
        xs = [s / per_epoch for s, loss, _ in curve if loss is not None]
        ys = [loss for _, loss, _ in curve if loss is not None]
        tests = [(s / per_epoch, e) for s, _, e in curve if e is not None]
        curves.append((row, CLASS_COLORS[k % len(CLASS_COLORS)], xs, ys, tests))
    every_x = [x for _, _, xs, _, tests in curves for x in xs + [t[0] for t in tests]]
    every_y = [y for _, _, _, ys, tests in curves for y in ys + [t[1] for t in tests] if y > 0]
    spans = (((max(every_x) - min(every_x)) or 1.0) if every_x else 1.0,
             (math.log10(max(every_y) / min(every_y)) or 1.0) if every_y else 1.0)
    for row, color, xs, ys, tests in curves:
        name = f"{row.owner_name or row.owner} · {model_of(row)[0].split(' · ')[0]}"
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, legendgroup=row.id,
                                 customdata=[row.id] * len(xs), line=dict(color=color, width=2),
                                 marker=dict(size=5, color=color),
                                 hovertemplate=f"{name}<br>epoch %{{x:.2f}}<br>loss %{{y:,.1f}}<extra></extra>"))
        between_x, between_y = click_targets(xs, ys, *spans)
        if between_x:
            fig.add_trace(go.Scatter(x=between_x, y=between_y, mode="markers", name=f"{name} (click)",
                                     legendgroup=row.id, showlegend=False, customdata=[row.id] * len(between_x),
                                     marker=dict(size=5, color=color, opacity=0),
                                     hovertemplate=f"{name}<br>click to open<extra></extra>"))
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


def click_targets(xs: list[float], ys: list[float], x_span: float, log_span: float) -> tuple[list, list]:
    """Points on the drawn line between a curve's points (straight in x and log10 y, as the log axis draws it),
    at most CLICK_SPACING of each axis's span apart; the curve's own points are not repeated."""
    out_x, out_y = [], []
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 <= 0 or y1 <= 0:
            continue
        l0, l1 = math.log10(y0), math.log10(y1)
        n = math.ceil(max(abs(x1 - x0) / x_span, abs(l1 - l0) / log_span) / CLICK_SPACING)
        for k in range(1, n):
            f = k / n
            out_x.append(x0 + f * (x1 - x0))
            out_y.append(10 ** (l0 + f * (l1 - l0)))
    return out_x, out_y


def picked_run(selection) -> str | None:
    """The run a click on the curves chart picked: the customdata of the selection's first point (the selection as
    st.plotly_chart returns it or holds it under its key), or None."""
    points = ((selection or {}).get("selection") or {}).get("points") or []
    return next((p["customdata"] for p in points if p.get("customdata")), None)


def curves_chart(figure: go.Figure) -> str | None:
    """Draw the curves chart (curves_figure); the id of the run a new click on a curve picked, else None.

    Streamlit keys a chart's state on its figure: a rerun that draws a figure changed since the browser drew the
    one clicked (a curve gained a point) makes a new chart with no selection, so a click read from
    st.plotly_chart's return value was lost (in chromium: 10 of 16 clicks on a chart redrawn every 2 s). The
    chart's on_select callback runs before the rerun draws anything and notes the click. What it cannot catch is
    a click in the moment between another rerun redrawing the chart and the browser showing the new one (the old
    chart's state is gone by then: 2 of 24 clicks on a chart redrawn every second), so the board redraws its
    curves only every few seconds. A selection the chart still holds on later reruns is no new click (it must
    not undo the Open button)."""
    event = st.plotly_chart(figure, key=CURVES, on_select=_note_click, selection_mode="points",
                            config={"displayModeBar": False})
    clicked, shown = st.session_state.pop(CLICKED, None), picked_run(event)
    if shown != st.session_state.get(SEEN):   # a selection read for the first time (as AppTest sets one)
        st.session_state[SEEN] = shown
        clicked = clicked or shown
    return clicked


def _note_click() -> None:
    st.session_state[CLICKED] = picked_run(st.session_state.get(CURVES))


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

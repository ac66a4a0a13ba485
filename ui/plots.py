"""Plotly figures shared by the pages, with one palette for the ten classes."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vae_core.data import class_names as default_class_names

# Tableau 10: distinct on a white background and for the common colour-vision deficiencies.
CLASS_COLORS = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B",
                "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#79706E")
CURVE_COLORS = {"loss": "#4C78A8", "recon": "#F58518", "kl": "#54A24B"}


def class_color(label: int) -> str:
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


def latent_scatter(points, labels, class_names=None, *, marker_size: int = 4, opacity: float = 0.75,
                   axis_titles: tuple[str, str] = ("z₁", "z₂"), height: int = 600) -> go.Figure:
    """Latent points [N, 2] coloured by label, one Scattergl trace per class (click the legend to hide one).

    Each point carries its row index in the data set as customdata, so a selection maps back to images.
    """
    points = np.asarray(points, dtype=np.float32)
    labels = np.asarray(labels)
    names = class_names or list(default_class_names())
    fig = go.Figure()
    for c in range(len(names)):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        fig.add_trace(go.Scattergl(
            x=points[idx, 0], y=points[idx, 1], mode="markers", name=str(names[c]), customdata=idx,
            marker=dict(size=marker_size, color=class_color(c), opacity=opacity),
            selected=dict(marker=dict(size=marker_size * 2.5, opacity=1.0)),
            unselected=dict(marker=dict(opacity=0.12)),
            hovertemplate=f"{names[c]}<br>z = (%{{x:.2f}}, %{{y:.2f}})<br>test image #%{{customdata}}<extra></extra>",
            # a white label with dark text and the class's colour as its border: readable whatever the dot's
            # colour and opacity (Plotly's default fills the label with the dot's own, faded, colour)
            hoverlabel=dict(bgcolor="white", bordercolor=class_color(c), font=dict(color="#1f1f1f", size=13)),
        ))
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=10, b=10), legend_title_text="class",
        legend=dict(itemsizing="constant", y=0.92, yanchor="top"), xaxis_title=axis_titles[0], yaxis_title=axis_titles[1],
        plot_bgcolor="white", dragmode="pan",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=True, zerolinecolor="#ccc")
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=True, zerolinecolor="#ccc")
    return fig


LOSS_TERMS = {"loss": "total loss", "recon": "reconstruction", "kl": "KL divergence"}


# Points per training curve: a panel is about 400 pixels wide, so more points do not show, but each one costs the
# browser (the live chart is sent and drawn anew every second, issue 10) and the websocket (~25 bytes a point).
CURVE_POINTS = 500


def _curve_data(steps: dict[str, list], epoch_records: list[dict], steps_per_epoch: int, smoothing: float):
    """Per term: (x, raw y, smoothed y, test x, test y), at most CURVE_POINTS points a curve (every k-th step,
    the newest always included)."""

    x = np.asarray(steps.get("step", []), dtype=np.float64) / max(1, steps_per_epoch)
    stride = -(-len(x) // CURVE_POINTS) if len(x) else 1
    out = {}
    for key in LOSS_TERMS:
        y = np.asarray(steps.get(key, []), dtype=np.float64)
        if len(steps.get(key + "_smooth", ())) == y.size:  # smoothed where the steps were collected (jobs/api.py)
            smoothed = np.asarray(steps.get(key + "_smooth", ()), dtype=np.float64)
        else:
            smoothed = np.asarray(smooth(y.tolist(), smoothing)) if y.size else y
        evals = [(r["epoch"] + 1, r["eval"][key]) for r in epoch_records if r.get("eval")]
        ex, ey = (np.asarray(v, dtype=np.float64) for v in zip(*evals)) if evals else (np.empty(0), np.empty(0))
        keep = np.arange(len(x) - 1, -1, -stride)[::-1]   # counted back from the newest step
        out[key] = (x[keep], y[keep], smoothed[keep], ex, ey)
    return out


def loss_curves(steps: dict[str, list], epoch_records: list[dict], steps_per_epoch: int,
                smoothing: float = 0.9, height: int = 300) -> go.Figure:
    """Total loss, reconstruction and KL side by side: the training curve per step (faint raw, bold
    smoothed) and the test curve per epoch (dotted diamonds), against epochs so both share one axis.

    Always three traces per panel, so refresh_loss_curves can swap the data in place (a live chart
    then costs milliseconds per redraw instead of rebuilding the figure)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=list(LOSS_TERMS.values()), horizontal_spacing=0.06)
    data = _curve_data(steps, epoch_records, steps_per_epoch, smoothing)
    for col, key in enumerate(LOSS_TERMS, start=1):
        color = CURVE_COLORS[key]
        x, y, smoothed, ex, ey = data[key]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color, width=1), opacity=0.25,
                                 name="train (per step)", legendgroup="raw", showlegend=col == 1, hoverinfo="skip"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=smoothed, mode="lines", line=dict(color=color, width=2.5),
                                 name="train (smoothed)", legendgroup="smooth", showlegend=col == 1,
                                 hovertemplate="epoch %{x:.2f}: %{y:.2f}<extra>train</extra>"), row=1, col=col)
        fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines+markers", line=dict(color="#222", width=2, dash="dot"),
                                 marker=dict(size=8, symbol="diamond"), name="test (per epoch)",
                                 legendgroup="test", showlegend=col == 1,
                                 hovertemplate="end of epoch %{x}: %{y:.2f}<extra>test</extra>"), row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="top", y=-0.28, x=0.5, xanchor="center"),
                      uirevision="loss")
    fig.update_xaxes(showgrid=True, gridcolor="#eee", rangemode="tozero")
    fig.update_xaxes(title_text="epoch", title_standoff=4, row=1, col=2)
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    # the first steps' loss is several times the final one: a log axis keeps the later progress visible
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    return fig


def refresh_loss_curves(fig: go.Figure, steps: dict[str, list], epoch_records: list[dict], steps_per_epoch: int,
                        smoothing: float = 0.9) -> go.Figure:
    """Put new data into a figure made by loss_curves (same layout, same traces)."""
    data = _curve_data(steps, epoch_records, steps_per_epoch, smoothing)
    with fig.batch_update():
        for i, key in enumerate(LOSS_TERMS):
            x, y, smoothed, ex, ey = data[key]
            raw, smooth_trace, test = fig.data[3 * i: 3 * i + 3]
            raw.x, raw.y = x, y
            smooth_trace.x, smooth_trace.y = x, smoothed
            test.x, test.y = ex, ey
    return fig

def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard's smoothing)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


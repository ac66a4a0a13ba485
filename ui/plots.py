"""Plotly figures shared by the pages, with one palette for the ten classes."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

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
    names = class_names or [str(i) for i in range(10)]
    fig = go.Figure()
    for c in range(len(names)):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        fig.add_trace(go.Scattergl(
            x=points[idx, 0], y=points[idx, 1], mode="markers", name=str(names[c]), customdata=idx,
            marker=dict(size=marker_size, color=class_color(c), opacity=opacity),
            hovertemplate=f"{names[c]}<br>z = (%{{x:.2f}}, %{{y:.2f}})<br>test image #%{{customdata}}<extra></extra>",
        ))
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=10, b=10), legend_title_text="class",
        legend=dict(itemsizing="constant"), xaxis_title=axis_titles[0], yaxis_title=axis_titles[1],
        plot_bgcolor="white", dragmode="pan",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=True, zerolinecolor="#ccc")
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=True, zerolinecolor="#ccc",
                     scaleanchor="x", scaleratio=1)
    return fig

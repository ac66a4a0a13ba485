"""Latent map: where every test digit lands in the latent space, coloured by its class.

Click a point to see the digit, its reconstruction and its posterior mean and spread; lasso or box a
region to see which digits live there. A latent space with more than two dimensions is projected
(PCA, or any two raw dimensions).
"""
import numpy as np
import streamlit as st

from ui.cached_data import missing_data_note, test_set
from ui.images import grid, upscale
from ui.latent_map_tools import (decoded_background, keep_selection, kept_selection, map_unavailable_reason,
                                 no_map_message, pca_axes, point_details, selected_indices, show_selection, test_latents)
from ui import beta_sweep
from ui import latent_pad as lp
from ui import map_layers
from ui.model_catalogue import model_picker
from ui.plots import class_color, latent_scatter
from vae_core.data import class_names as class_names_of
from ui.routing import route_through_app

route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py)

CHART_KEY = "latent_map_chart"
FIGURE_KEY = "_latent_map_figure"   # (the view it shows, the figure): rebuilt only when the view changes
GALLERY_MAX = 60
BACKGROUND_OPACITY = 0.9   # the decoded digits under the dots: nearly opaque, the dots pale over them

st.title(":material/scatter_plot: Latent map")
st.caption("Each dot is one test image, placed at the mean of its latent code q(z|y) and coloured by its class. "
           "Click a dot to inspect it; choose the lasso or box tool in the chart's toolbar to gather a region. "
           "Click a class in the legend to hide it.")

picked = model_picker(where=lambda c: map_unavailable_reason(c) is None, why_not=map_unavailable_reason)
if picked is None:
    st.stop()
model, record = picked
cfg = record.model_config

dataset_name = record.dataset
data = test_set(dataset_name)
table = test_latents(record)
if table is None:
    st.warning(no_map_message(record), icon=":material/folder_off:")
    st.stop()
if table.note:
    st.warning(table.note, icon=":material/warning:")
if data is None:
    st.warning("The map below comes from the means stored in the checkpoint; showing the digits themselves "
               "needs the data set. " + missing_data_note(dataset_name), icon=":material/folder_off:")
if cfg.condition == "label":
    st.info("This model is given the label, so each image is encoded with its true label: the map shows "
            "**style** (slant, width, stroke), not class, and the colours overlap by design.",
            icon=":material/palette:")

class_names = list(class_names_of(dataset_name, cfg.num_classes))

# ---------------------------------------------------------------------------- view options
with st.sidebar:
    st.markdown("**View**")
    axes_titles = ("z₁", "z₂")
    if cfg.latent_dim > 2:
        projection = st.radio("Projection", ["PCA", "Two latent dimensions"], key="latent_projection",
                              help=f"The latent space has {cfg.latent_dim} dimensions; show two at a time.")
        if projection == "PCA":
            scores, ratio = pca_axes(table.mu)
            names = [f"PC{i + 1} ({ratio[i]:.0%})" for i in range(cfg.latent_dim)]
        else:
            scores = table.mu
            names = [f"z{i + 1}" for i in range(cfg.latent_dim)]
        ax_x = st.selectbox("Horizontal axis", range(cfg.latent_dim), index=0, format_func=names.__getitem__,
                            key="latent_axis_x")
        ax_y = st.selectbox("Vertical axis", range(cfg.latent_dim), index=1, format_func=names.__getitem__,
                            key="latent_axis_y")
        points = scores[:, [ax_x, ax_y]]
        axes_titles = (names[ax_x], names[ax_y])
    else:
        points = table.mu
    show_background = show_classifier = show_thumbnails = False
    background_label = thumbnail_count = None
    if cfg.latent_dim == 2:
        show_background = st.toggle("Decoded digits underneath", key="latent_background",
                                    on_change=map_layers.only("decoded"),
                                    help="Decode a grid of latent points and draw the digits under the dots.")
        show_classifier, show_thumbnails, thumbnail_count = map_layers.layer_toggles(record)
        if (show_background or show_classifier) and cfg.condition == "label":
            background_label = st.selectbox("Label for the decoded digits", range(cfg.num_classes),
                                            format_func=class_names.__getitem__, key="latent_background_label")
    marker_size = st.slider("Dot size", 2, 10, 4, key="latent_marker_size")
    in_browser = lp.browser_toggle()

# ---------------------------------------------------------------------------- the map
labels = table.labels
path = record.path
members = [np.flatnonzero(labels == c) for c in range(len(class_names)) if np.any(labels == c)]


def carry_selection(old: str, new: str) -> None:
    """The β slider moves to another model of the sweep: the same test images stay selected on its map."""
    keep_selection(new, kept_selection(old))


if cfg.latent_dim == 2:
    beta_sweep.sweep_panel(record, on_move=carry_selection)


def remember_selection() -> None:
    """A new box, lasso or click on the chart: keep it (the chart itself forgets it when the view changes)."""
    keep_selection(path, selected_indices(st.session_state.get(CHART_KEY), members, first_dots))


kept = [i for i in kept_selection(path) if 0 <= i < len(labels)]
# Dense dots hide the decoded digits: over a picture they turn pale and small, the picture stays dark.
# The figure of thousands of dots (and its layers) is built once per view and kept in this session: a click only
# moves its selection (building it took ~150 ms of the server's one interpreter per click under a class's load).
underneath = show_background or show_classifier or show_thumbnails
view = (path, axes_titles, marker_size, show_background, show_classifier, thumbnail_count if show_thumbnails else None,
        background_label if (show_background or show_classifier) else None,
        None if cfg.latent_dim == 2 else (projection, ax_x, ax_y))
held = st.session_state.get(FIGURE_KEY)
if held is None or held[0] != view:
    fig = latent_scatter(points, labels, class_names,
                         marker_size=marker_size if not underneath else max(2, marker_size - 1),
                         opacity=(0.75 if not underneath else 0.12 if show_thumbnails else 0.3),
                         axis_titles=axes_titles, height=640)
    fig.update_layout(uirevision=path)  # keep the user's zoom when the figure is redrawn
    if show_background:
        lo, hi = np.percentile(points, [0.5, 99.5], axis=0)
        uri = decoded_background(model, (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])),
                                 label=background_label)
        fig.add_layout_image(source=uri, xref="x", yref="y", x=float(lo[0]), y=float(hi[1]),
                             sizex=float(hi[0] - lo[0]), sizey=float(hi[1] - lo[1]), sizing="stretch",
                             opacity=BACKGROUND_OPACITY, layer="below")
    layer_note = None
    if show_classifier or show_thumbnails:
        layer_note = map_layers.draw_layer(fig, record, points, show_classifier=show_classifier,
                                           thumbnail_count=thumbnail_count if show_thumbnails else None,
                                           label=background_label, class_names=class_names)
    held = st.session_state[FIGURE_KEY] = (view, fig, layer_note)
_, fig, layer_note = held
show_selection(fig, kept)

def hover_digits(cfg, class_names: list[str], in_browser: bool) -> None:
    """The digit under the cursor, decoded in the browser as the mouse moves over a 2-D map (ui/latent_pad.py)."""
    if cfg.latent_dim != 2 or not in_browser:
        return
    why_not = lp.unavailable(model)
    if why_not:
        st.caption(f"Hovering the map would show the digit under the cursor, but {why_not}.")
        return
    st.markdown("**Under the cursor**" + (" (decoded as every class)" if cfg.condition == "label" else ""))
    lp.hover_decoder(str(record.path), model, chart_key=CHART_KEY,
                     class_names=class_names if cfg.condition == "label" else None)


first_dots = next((i for i, t in enumerate(fig.data) if t.type == "scattergl"), 0)  # a layer's trace may come first
map_col, detail_col = st.columns([7, 4], gap="large")
with map_col:
    event = st.plotly_chart(fig, key=CHART_KEY, on_select=remember_selection,
                            selection_mode=("points", "box", "lasso"),
                            config={"scrollZoom": True, "displaylogo": False})
    where = "stored in the checkpoint" if table.source == "stored" else "encoded from the test set"
    st.caption(f"{len(labels):,} test images; latent means {where}." + (f" {layer_note}" if layer_note else ""))

fresh = [i for i in selected_indices(event, members, first_dots) if 0 <= i < len(labels)]
if fresh and fresh != kept:  # a selection the callback did not see (set through session state, as AppTest does)
    keep_selection(path, fresh)
chosen = fresh or kept

with detail_col:
    hover_digits(cfg, class_names, in_browser)
    if chosen:
        st.button("Clear selection", icon=":material/deselect:", key="latent_clear_selection",
                  on_click=keep_selection, args=(path, []))
    if not chosen:
        st.markdown("**Nothing selected yet**")
        st.caption("Click a dot to see its digit, its reconstruction and its latent mean and spread; "
                   "or pick the lasso in the chart's toolbar and circle a region.")
    elif len(chosen) == 1:
        i = chosen[0]
        label = int(labels[i])
        st.markdown(f"**Test image #{i}** · class "
                    f"<span style='color:{class_color(label)};font-weight:700'>{class_names[label]}</span>",
                    unsafe_allow_html=True)
        if data is None:
            st.caption("Its image and reconstruction need the data set.")
            st.dataframe({"latent mean": table.mu[i].round(3)}, width="content")
        else:
            info = point_details(model, data.images[i], label)
            left, right = st.columns(2)
            left.image(upscale(data.images[i], 7), output_format="PNG", caption="the test image")
            right.image(upscale(info["recon"], 7), output_format="PNG", caption="its reconstruction")
            st.dataframe({"dimension": [f"z{d + 1}" for d in range(cfg.latent_dim)],
                          "mean μ": info["mu"].round(3), "std σ": info["std"].round(3)},
                         hide_index=True, width="stretch")
            st.caption("μ and σ of q(z|y): where the encoder puts this digit, and how sure it is.")
    else:
        counts = np.bincount(labels[chosen], minlength=len(class_names))
        ranked = sorted(((n, c) for c, n in enumerate(counts) if n), reverse=True)
        st.markdown(f"**{len(chosen):,} digits selected**")
        st.caption(" · ".join(f"{class_names[c]}: {n:,}" for n, c in ranked))
        if data is None:
            st.caption("Showing the digits needs the data set.")
        else:
            shown = np.asarray(chosen)
            if len(shown) > GALLERY_MAX:  # a fair sample of the region, not just the first class listed
                shown = np.random.default_rng(0).choice(shown, GALLERY_MAX, replace=False)
            shown = shown[np.argsort(labels[shown], kind="stable")]
            st.image(upscale(grid(data.images[shown], ncols=10), 2), output_format="PNG")
            if len(chosen) > GALLERY_MAX:
                st.caption(f"A random {GALLERY_MAX} of them, sorted by class.")

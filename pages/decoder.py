"""Decoder: drag the latent code and watch the digit change.

One slider (and an exact number) per latent dimension, a class picker for label-conditioned models,
the decoded digit shown large; for a 2-D latent, the decoded manifold grid with the current z marked
(click a cell to jump there); interpolation as a strip or a GIF; a random sample from the prior; a
canvas to draw a digit and see where the encoder puts it, live under the pen (ui/live_encoder.py); animations
for slides (ui/animations.py); and a presenter view with keys (ui/presenter.py, or ?present=1).

Each section is a fragment: moving a slider reruns only the explorer, not the whole page. The explorer
decodes in the browser (ui/latent_pad.py: the digit follows the mouse, a release commits z here); with
"Decode in the browser" off, or when the component cannot load, Streamlit sliders decode on the server.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ui import animations as ani
from ui import beta_sweep
from ui import decoder_tools as dt
from ui import latent_pad as lp
from ui import live_encoder as le
from ui import presenter as pv
from vae_core.data import class_names as class_names_of
from ui.cached_data import missing_data_note, test_set
from ui.images import grid, png_bytes, png_data_url, upscale
from ui.model_catalogue import model_picker
from ui.plots import class_color, latent_scatter
from ui.routing import route_through_app

route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py)

try:  # a maintained drawing component (pinned in requirements.txt); the page falls back to an upload
    from streamlit_drawable_canvas import st_canvas
except Exception:  # noqa: BLE001 - missing or incompatible: use the PNG upload instead
    st_canvas = None

st.title("Decoder")
st.caption("Pick a point in the latent space and see what the decoder draws there. Quadrant-completion "
           "models need a partly visible image as input, so they live on the Compare page, not here.")

picked = model_picker(where=dt.decodable, why_not=dt.undecodable_reason)
if picked is None:
    st.stop()
model, record = picked
cfg = model.config
path = record.path
dataset_name = record.dataset
class_names = list(class_names_of(dataset_name, cfg.num_classes))
in_browser = lp.browser_toggle()
presenting = pv.presenter_toggle()   # ?present=1 or the sidebar switch: a projector's view with keys
dt.ensure_z(path, model)


def keep_z(old: str, new: str) -> None:
    """The β slider moves to another model of the sweep: the latent code stays where it is (the same z, decoded
    by another decoder), rather than going back to the prior's mean as a newly picked model does."""
    if st.session_state.get(dt.Z_OWNER_KEY) == [old, cfg.latent_dim]:
        st.session_state[dt.Z_OWNER_KEY] = [new, cfg.latent_dim]


beta_sweep.sweep_panel(record, on_move=keep_z)


def class_picker(key: str, label: str = "Class") -> int | None:
    """A horizontal choice of the class for a label-conditioned model (None for a plain VAE)."""
    if cfg.condition != "label":
        return None
    return st.radio(label, range(cfg.num_classes), format_func=lambda c: class_names[c], horizontal=True, key=key)


def random_sample() -> None:
    dt.set_z(dt.prior_sample(model, st.session_state.get("decoder_label")))


def centre() -> None:
    dt.set_z(dt.prior(model, st.session_state.get("decoder_label"))[0])


@st.fragment(key="decoder_explorer")
def explorer() -> None:
    label = class_picker("decoder_label", "Decode as class")
    if presenting:
        pv.bar()
        pv.keys(model=model, path=path, label=label, on_move=keep_z)
    why_not = lp.unavailable(model) if in_browser else None
    if in_browser and why_not is None:
        browser_explorer(label)
        return
    if why_not:
        st.caption(f"The sliders decode on the server here, because {why_not}.")
    server_explorer(label)


def latent_caption(z) -> str:
    return "z = (" + ", ".join(f"{v:.2f}" for v in z[:6]) + (", …" if len(z) > 6 else "") + ")"


def side_controls(label, *, numbers: bool) -> None:
    """Exact numbers (when asked), the range note, Sample / Centre and the prior's caption."""
    if numbers:
        for i in range(cfg.latent_dim):
            st.number_input(f"z{i + 1} exactly", -dt.NUMBER_LIMIT, dt.NUMBER_LIMIT, step=0.1, format="%.3f",
                            key=dt.number_key(i), on_change=dt.on_number, args=(i,))
    note = dt.range_note()
    if note:
        st.caption(note)
    b1, b2 = st.columns(2)
    b1.button("Sample", icon=":material/casino:", on_click=random_sample, width="stretch",
              help="Draw z from the prior p(z|x) (N(0, I) for a plain VAE)")
    b2.button("Centre", icon=":material/center_focus_strong:", on_click=centre, width="stretch",
              help="Go to the prior's mean (the origin for a plain VAE)")
    if cfg.condition == "label" and cfg.prior == "learned":
        mu, std = dt.prior(model, label)
        st.caption("The prior p(z | class " + class_names[label or 0] + ") has mean ("
                   + ", ".join(f"{v:.2f}" for v in mu[:4]) + (", …" if len(mu) > 4 else "") + ") and sd ("
                   + ", ".join(f"{v:.2f}" for v in std[:4]) + (", …" if len(std) > 4 else "") + ").")


def browser_explorer(label) -> None:
    """The digit decoded in the browser on every pointer move; a release commits z here (ui/latent_pad.py)."""
    z = dt.current_z()
    pad_col, side_col = st.columns([2.6, 1], gap="medium")
    with pad_col:
        grid = None
        if cfg.latent_dim == 2:
            png, z1, z2, _ = dt.grid_picture(path, label)
            grid = {"png": png, "z1": z1, "z2": z2}
        lp.decoder_pad(path, model, z=z, rev=st.session_state.get(dt.REV_KEY, 0),
                       echo=st.session_state.get(dt.ECHO_KEY, False), label=label, value_range=dt.slider_range(),
                       on_commit=dt.commit_from_browser, grid=grid)
        if cfg.latent_dim != 2:
            st.caption(f"The manifold pad needs a 2-D latent; this model has {cfg.latent_dim} dimensions.")
    with side_col:
        st.markdown(f"**Latent code z** ({cfg.latent_dim} dimensions)")
        side_controls(label, numbers=True)
        big = png_bytes(upscale(dt.decode(model, z, label), 10))
        st.download_button("PNG", big, file_name="decoded.png", mime="image/png", icon=":material/download:",
                           key="decoder_download", help="The decoded digit at " + latent_caption(z))


def server_explorer(label) -> None:
    """Streamlit sliders: the server decodes, and the picture follows when a slider is released."""
    clicked = dt.clicked_cell(st.session_state.get(f"decoder_grid_{st.session_state.get(dt.GRID_CLICKS_KEY, 0)}"))
    if clicked is not None and cfg.latent_dim == 2:  # a click on the grid: jump there, give the chart a fresh key
        dt.set_z(clicked)
        st.session_state[dt.GRID_CLICKS_KEY] = st.session_state.get(dt.GRID_CLICKS_KEY, 0) + 1

    controls, image_col, grid_col = st.columns([1.1, 1, 1.4] if cfg.latent_dim == 2 else [1.6, 1, 0.01])
    # The image first: its delta reaches the browser before the widgets' (they are redrawn after it).
    z = dt.current_z()
    digit = dt.decode(model, z, label)
    with image_col:
        st.markdown("**Decoded image**")
        big = png_bytes(upscale(digit, 10))
        st.image(png_data_url(big), caption=latent_caption(z))  # inline: no fetch
        st.download_button("PNG", big, file_name="decoded.png", mime="image/png",
                           icon=":material/download:", key="decoder_download")

    with controls:
        st.markdown(f"**Latent code z** ({cfg.latent_dim} dimensions)")
        lo, hi = dt.slider_range()
        for i in range(cfg.latent_dim):
            slider, number = st.columns([3, 1.3], vertical_alignment="bottom")
            slider.slider(f"z{i + 1}", lo, hi, step=0.01, key=dt.slider_key(i),
                          on_change=dt.on_slider, args=(i,))
            number.number_input(f"z{i + 1} exactly", -dt.NUMBER_LIMIT, dt.NUMBER_LIMIT, step=0.1, format="%.3f",
                                key=dt.number_key(i), on_change=dt.on_number, args=(i,), label_visibility="collapsed")
        side_controls(label, numbers=False)

    if cfg.latent_dim == 2:
        with grid_col:
            st.markdown("**Manifold** (click a cell to jump there)")
            png, z1, z2, cell = dt.grid_picture(path, label)
            fig = dt.grid_figure(png, z1, z2, cell, z)
            st.plotly_chart(fig, on_select="rerun", selection_mode="points", width="stretch",
                            key=f"decoder_grid_{st.session_state.get(dt.GRID_CLICKS_KEY, 0)}",
                            config={"displayModeBar": False})
    else:
        st.caption(f"The manifold grid needs a 2-D latent; this model has {cfg.latent_dim} dimensions.")


st.subheader("Explore")
explorer()


INTERP_ENDS_KEY = "interp_ends"   # the interpolation's ends and class, for the animation section below


@st.fragment(key="decoder_interpolation")
def interpolation() -> None:
    st.subheader("Interpolation")
    test = test_set(dataset_name)
    modes = ["Two latent points", "Two test digits"]
    mode = st.radio("Between", modes, horizontal=True, key="interp_mode")
    label = class_picker("interp_label", "Decode as class") if cfg.condition == "label" else None
    if mode == "Two test digits":
        if test is None:
            st.info(missing_data_note(dataset_name) + " Interpolating between test digits needs it; "
                    "two latent points work without it.")
            return
        a, b, _ = st.columns([1, 1, 2])
        i0 = a.number_input("First test digit (#)", 0, len(test) - 1, 0, key="interp_i0")
        i1 = b.number_input("Second test digit (#)", 0, len(test) - 1, 1, key="interp_i1")
        ends = []
        for i in (i0, i1):
            own = int(test.labels[i]) if cfg.condition == "label" else None
            if own is not None and not 0 <= own < cfg.num_classes:  # the data set has more classes than the model
                st.warning(f"Test digit #{i} is of class {own}, which this model (trained on {cfg.num_classes} "
                           "classes) cannot encode: pick another digit.", icon=":material/block:")
                return
            mu, _, _ = dt.encode_digit(model, test.images[i].numpy(), own)
            ends.append(mu)
        z0, z1 = ends
        st.caption(f"From test digit #{i0} (a {class_names[int(test.labels[i0])]}) to #{i1} "
                   f"(a {class_names[int(test.labels[i1])]}), through their latent means"
                   + (f", decoded as class {class_names[label]}." if label is not None else "."))
    else:
        z0 = st.session_state.setdefault("interp_z0", [-1.5] * cfg.latent_dim)
        z1 = st.session_state.setdefault("interp_z1", [1.5] * cfg.latent_dim)
        if len(z0) != cfg.latent_dim or len(z1) != cfg.latent_dim:
            z0 = st.session_state["interp_z0"] = [-1.5] * cfg.latent_dim
            z1 = st.session_state["interp_z1"] = [1.5] * cfg.latent_dim
        c = st.columns(4)
        if c[0].button("Start = sliders", key="interp_set0", width="stretch"):
            z0 = st.session_state["interp_z0"] = list(map(float, dt.current_z()))
        if c[1].button("End = sliders", key="interp_set1", width="stretch"):
            z1 = st.session_state["interp_z1"] = list(map(float, dt.current_z()))
        if c[2].button("Random ends", key="interp_random", width="stretch"):
            rng = np.random.default_rng()
            z0 = st.session_state["interp_z0"] = list(map(float, dt.prior_sample(model, label, rng)))
            z1 = st.session_state["interp_z1"] = list(map(float, dt.prior_sample(model, label, rng)))
        st.caption("From z = (" + ", ".join(f"{v:.2f}" for v in z0[:6]) + ") to z = ("
                   + ", ".join(f"{v:.2f}" for v in z1[:6]) + "). Set the ends from the sliders above.")
    steps = st.slider("Steps", 3, 20, 10, key="interp_steps")
    st.session_state[INTERP_ENDS_KEY] = [list(map(float, z0)), list(map(float, z1)), label]  # the walk's ends
    frames = dt.interpolation_frames(model, z0, z1, steps, label)
    strip = upscale(grid(frames, ncols=steps, pad=2), 3)
    st.image(strip, output_format="PNG")
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("GIF", dt.gif_bytes(frames), file_name="interpolation.gif", mime="image/gif",
                       icon=":material/download:", key="interp_gif", width="stretch")
    d2.download_button("PNG strip", png_bytes(strip), file_name="interpolation.png", mime="image/png",
                       icon=":material/download:", key="interp_png", width="stretch")


interpolation()


def send_to_sliders(mu) -> None:
    """Move the explorer to the drawn digit's latent mean. A full rerun: rerunning only the two fragments
    (st.rerun with their keys, from this callback) redrew the picture but left the number boxes and sliders
    showing the old z in the browser (Streamlit 1.67), and the next key press jumped back."""
    dt.set_z(mu)
    st.rerun()


@st.fragment(key="decoder_drawing")
def drawing() -> None:
    st.subheader("Draw a digit")
    label = class_picker("draw_label", "It is a") if cfg.condition == "label" else None
    why_not = le.unavailable() if in_browser else "“Decode in the browser” is off"
    if why_not is None:  # the encoder follows the pen, in the browser (ui/live_encoder.py)
        le.live_encoder(path, model, record, label=label, on_send=send_to_sliders)
        return
    st.caption(f"The map updates when a stroke ends, because {why_not}.")
    left, mid, right = st.columns([1.1, 1, 1.4])
    with left:
        if st_canvas is not None:
            result = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
                               height=280, width=280, drawing_mode="freedraw", return_image_data=True,
                               key="decoder_canvas")
            raw = result.image_data
            st.caption("Draw in white on the black square; the toolbar clears it.")
        else:
            upload = st.file_uploader("A PNG of a digit (light on dark)", type=["png"], key="decoder_upload",
                                      max_upload_size=dt.UPLOAD_MAX_BYTES // (1024 * 1024))
            raw = None
            if upload is not None:
                raw, problem = dt.read_uploaded_png(upload.getvalue(), upload.name)
                if problem:
                    st.error(problem, icon=":material/broken_image:")
    digit = dt.drawing_to_digit(raw)
    if digit is None:
        mid.info("Draw a digit to see how the model reads it.")
        return
    with mid:
        mu, std, recon = dt.encode_digit(model, digit, label)
        st.image(grid([digit, (recon * 255).astype(np.uint8)], ncols=2, pad=2), output_format="PNG",
                 caption="As the model sees it (28 x 28) | its reconstruction", width="stretch")
        st.markdown("Latent mean " + ", ".join(f"{m:.2f}" for m in mu[:6]) + (" …" if len(mu) > 6 else "")
                    + "  \nStandard deviation " + ", ".join(f"{s:.2f}" for s in std[:6]) + (" …" if len(std) > 6 else ""))
        st.button("Send to the sliders", icon=":material/arrow_upward:", on_click=send_to_sliders, args=(mu,),
                  key="draw_send")
    with right:
        if cfg.latent_dim != 2:
            st.caption("The map needs a 2-D latent.")
            return
        stored = record.latent_means()
        if stored is not None:
            means, labels = stored
            keep = slice(0, 3000)
            fig = latent_scatter(means[keep], labels[keep], class_names, marker_size=3,
                                 opacity=0.45, height=380)
        else:
            fig = go.Figure()
            fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                              xaxis_title="z₁", yaxis_title="z₂")
        fig.add_trace(go.Scatter(x=[mu[0]], y=[mu[1]], mode="markers", name="your digit",
                                 marker=dict(size=18, symbol="star", color="#111",
                                             line=dict(color=class_color(label or 0), width=1.5))))
        st.plotly_chart(fig, width="stretch", key="draw_map", config={"displayModeBar": False})
        st.caption("Your digit (black star) among the test set's latent means"
                   if stored is not None else "Where your digit lands (this checkpoint stores no test-set map).")


drawing()


@st.fragment(key="decoder_animations")
def animations() -> None:
    ends = st.session_state.get(INTERP_ENDS_KEY)
    label = None
    if ends and len(ends[0]) == len(ends[1]) == cfg.latent_dim:
        ends, label = ends[:2], ends[2]
    else:
        ends = None
    ani.animation_section(model, record, path, ends=ends, label=label)


animations()

"""Animations for slides on the Decoder page: pick what to animate and a format, make it on the server with a
progress bar, download it. The frames and the encoding are vae_core/animation.py's; this module finds what
can be animated (the interpolation, a loop across the manifold, the run's snapshots, the beta sweep this
model belongs to) and draws the controls.

The beta sweep is ui/beta_sweep.py's (the models of one data set, model config and training settings but
the KL weight beta, in order of beta).
"""
from __future__ import annotations

import time

import streamlit as st

from ui import beta_sweep
from ui.model_catalogue import load_model
from vae_core import animation as an

RESULT_KEY = "animation_result"   # the last animation made in this session: {"what", "fmt", "bytes", ...}
WALK = "Interpolation walk"
PATH = "Path across the manifold"
TRAINING = "Training run"
SWEEP = "β sweep"
MIME = {"gif": "image/gif", "mp4": "video/mp4"}


def sweep_of(path: str) -> list:
    """The β sweep (records, in order of β) holding the checkpoint at `path`, or [] (ui/beta_sweep.py finds it:
    the models of one data set, model config and training settings but β)."""
    return beta_sweep.sweep_of(str(path)) or []


def beta_of(record) -> float:
    return float(record.beta)


def choices(record, path: str) -> list[str]:
    """What this model can animate."""
    out = [WALK, PATH]
    if record.training_snapshots():
        out.append(TRAINING)
    if sweep_of(path):
        out.append(SWEEP)
    return out


def make_frames(what: str, model, record, path: str, *, ends=None, label=None, progress=None):
    """(frames, frames per second, file stem) of one animation."""
    if what == WALK:
        z0, z1 = ends if ends is not None else ([-1.5] * model.config.latent_dim, [1.5] * model.config.latent_dim)
        return an.walk_frames(model, z0, z1, steps=24, label=label, progress=progress), 12, "interpolation"
    if what == PATH:
        return an.path_frames(model, steps=48, label=label, progress=progress), 12, "manifold-path"
    if what == TRAINING:
        return an.training_frames(record.training_snapshots(), progress=progress), 2, "training-run"
    if what == SWEEP:
        items = []
        sweep = sweep_of(path)
        for k, member in enumerate(sweep):
            other, other_record = load_model(member.path)
            stored = other_record.latent_means()
            means, labels = (stored[0][:2000], stored[1][:2000]) if stored else (None, None)
            items.append((f"beta = {beta_of(member):g} · {member.display_name}", other, means, labels))
            if progress:
                progress(0.5 * (k + 1) / len(sweep))
        frames = an.sweep_frames(items, label=label, progress=(lambda f: progress(0.5 + 0.5 * f)) if progress else None)
        return frames, 1, "beta-sweep"
    raise ValueError(f"nothing called {what!r} to animate")


def animation_section(model, record, path: str, *, ends=None, label=None, key: str = "anim") -> None:
    """The controls: what, format, Make (with a progress bar), then the download button and the file's size."""
    st.subheader("Animations for slides")
    options = choices(record, path)
    mp4 = an.mp4_available()
    a, b, c = st.columns([1.4, 1, 1], vertical_alignment="bottom")
    what = a.selectbox("Animate", options, key=f"{key}_what",
                       help="The interpolation above, a loop across the latent space, this run's snapshots "
                            "(Train-page runs keep them), or the β sweep this model belongs to")
    fmt = b.radio("Format", ["gif", "mp4"] if mp4 else ["gif"], horizontal=True, key=f"{key}_fmt",
                  format_func=str.upper)
    make = c.button("Make the animation", icon=":material/movie:", key=f"{key}_make", width="stretch")
    notes = []
    if not mp4:
        notes.append("MP4 needs the imageio-ffmpeg package on the server; GIF works without it.")
    if TRAINING not in options:
        notes.append("This model keeps no snapshots of its training (runs saved from the Train page do).")
    if SWEEP not in options:
        notes.append("No β sweep holds this model (checkpoints of the same model trained with other β).")
    if notes:
        st.caption(" ".join(notes))
    if make:
        bar = st.progress(0.0, text=f"Making the {what.lower()}…")
        t0 = time.perf_counter()
        try:
            frames, fps, stem = make_frames(what, model, record, path, ends=ends, label=label,
                                            progress=lambda f: bar.progress(0.9 * f, text=f"Drawing frames… {f:.0%}"))
            bar.progress(0.9, text=f"Encoding {len(frames)} frames as {fmt.upper()}…")
            data = an.encode(frames, fmt, fps)
        except ValueError as e:
            bar.empty()
            st.error(f"The animation could not be made: {e}", icon=":material/movie_off:")
            return
        bar.progress(1.0, text="Done")
        st.session_state[RESULT_KEY] = {"what": what, "fmt": fmt, "bytes": data, "frames": len(frames),
                                        "size": [int(frames.shape[2]), int(frames.shape[1])], "name": f"{stem}.{fmt}",
                                        "seconds": time.perf_counter() - t0, "model": path}
    done = st.session_state.get(RESULT_KEY)
    if done and done.get("model") == path:
        w, h = done["size"]
        st.download_button(f"Download {done['name']}", done["bytes"], file_name=done["name"], mime=MIME[done["fmt"]],
                           icon=":material/download:", key=f"{key}_download", on_click="ignore")
        st.caption(f"{done['what']}: {done['frames']} frames, {w} × {h} px, {len(done['bytes']) / 1e6:.2f} MB, "
                   f"made in {done['seconds']:.1f} s.")

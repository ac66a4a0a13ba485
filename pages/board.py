"""Class board: the whole room at a glance, for the teacher (app.py registers it only for a teacher).

Every run in the class, live (who, which model, where it stands, its epoch and loss, its place in line), and
their loss curves on one chart (a click on a curve opens that run); stop any run; the models people saved,
to publish to everyone, take back or remove; the people signed in, whose names can be released; the limits in
force; and "Show to the class", one run's latent map and samples large, for the projector. It reads the job
table, so it shows the runs of every server on the runs folder.
"""
import time

import streamlit as st

from jobs.classroom import Shelf, board_cleared_before, clear_board, on_board, remove_model, stop_run
from jobs.limits import LimitsError
from ui import identity
from ui.board_tools import curves_chart, curves_digest, curves_figure, model_of, run_line, widget_key
from ui.images import latent_map_png, png_bytes, upscale
from ui.model_catalogue import available_models, clear_model_cache, save_dir
from ui.plots import CLASS_COLORS
from ui.routing import route_through_app
from ui.training_job import format_seconds, job_store_sentences, jobs

person = route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py); who is here

REFRESH_SECONDS = 2.0
CURVES_SECONDS = 6.0            # the curves chart takes new points at most this often (the run lines every 2 s)
VIEW = "board_view"             # the id of the run opened on the board
FIGURE = "_board_curves"        # {"digest", "drawn", "at", "figure"}: the curves chart, rebuilt when a curve grows
PROJECTOR_SIZE = (1100, 760)    # pixels of the latent map shown to the class
PICTURE = "_board_latent_png"   # (the map's points, its size, the PNG): redrawn only for a new map

if not person.teacher:
    st.error("The class board is for the class's teachers.", icon=":material/lock:")
    st.stop()
try:
    with job_store_sentences():   # the job table's faults (busy, read-only, disk) are its sentence, not a traceback
        service = jobs()
        shelf = Shelf(service.table, save_dir())
except LimitsError as e:
    st.error(f"Training is off until the limits are fixed: {e}", icon=":material/error:")
    st.stop()

projector = st.sidebar.toggle("Show to the class", key="board_projector",
                              help="The opened run's latent map and samples, large, for the projector.")


# ---------------------------------------------------------------------------- one run, opened
@job_store_sentences()
def draw_run(job_id: str, large: bool) -> None:
    snap = service.progress(job_id, touch=False)
    if snap is None:
        st.info("That run is no longer in the table.")
        return
    row = service.table.get(job_id)
    who = row.owner_name or row.owner
    model, _ = model_of(row)
    st.markdown(f"### {who} · {model}" if large else f"**Opened: {who}** · {model}")
    if snap.status == "queued":
        st.caption(f"Waiting in line: place {snap.place_in_queue} of {snap.queue_length}.")
    elif snap.total_steps:
        epoch = min(snap.epoch + 1, snap.epochs)
        st.progress(snap.fraction, text=f"Epoch {epoch}/{snap.epochs} · step {snap.global_step:,}/{snap.total_steps:,}"
                                        + (f" · {snap.message}" if snap.finished and snap.message else ""))
    samples, latent = st.columns([2, 3] if large else [1, 1], gap="large")
    with samples:
        if snap.preview is not None:
            scale = max(1, min(4 if large else 2, (700 if large else 420) // max(snap.preview.shape)))
            st.image(png_bytes(upscale(snap.preview, scale)), caption=snap.preview_caption.capitalize())
    with latent:
        if snap.latent is not None:
            points, labels = snap.latent
            width, height = PROJECTOR_SIZE if large else (560, 400)
            held = st.session_state.get(PICTURE)
            if held is None or held[0] is not points or held[1] != (width, height):   # drawn once per new map
                held = st.session_state[PICTURE] = (points, (width, height), latent_map_png(
                    points, labels, list(snap.class_names), CLASS_COLORS, width=width, height=height))
            st.image(held[2])
            st.caption(f"Latent means of {len(labels):,} test images, coloured by class.")
    if snap.preview is None and snap.latent is None:
        st.caption("Its pictures show here once it has trained a little (a run another server trains shows them "
                   "when it ends).")
    if not large and snap.active and st.button("Stop this run", icon=":material/stop:", key="board_stop_opened"):
        stop_run(service, person, job_id)
        st.rerun()


@st.fragment(run_every=REFRESH_SECONDS)
def opened_run(job_id: str, large: bool) -> None:
    draw_run(job_id, large)


if projector:
    if st.session_state.get(VIEW):
        opened_run(st.session_state[VIEW], True)
    else:
        st.info("Open a run on the board first (switch this off, then click a run's curve or its Open button).",
                icon=":material/co_present:")
    st.stop()


# ---------------------------------------------------------------------------- the board
st.title(":material/co_present: Class board")
settings = identity.class_settings()
how = identity.mode()
if how == "class":
    st.caption(f"Students sign in with the class code **{settings.code}** and their name. "
               f"Limits in force: {service.limits.describe()}")
else:
    st.caption(f"Limits in force: {service.limits.describe()}")


@st.fragment(run_every=REFRESH_SECONDS)
@job_store_sentences()
def runs_panel() -> None:
    cleared = board_cleared_before(service.table)
    runs = [(r, place) for r, place in service.class_runs() if on_board(r, cleared)]
    training = sum(r.status in ("starting", "running", "stopping") for r, _ in runs)
    waiting = sum(r.status == "queued" for r, _ in runs)
    head, clear_col = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**Runs**: {training} training, {waiting} waiting, {len(runs) - training - waiting} finished")
    if clear_col.button("Clear finished", icon=":material/clear_all:", key="board_clear", width="stretch",
                        help="Finished runs leave the board; their owners keep them."):
        clear_board(service.table)
        st.rerun()
    if not runs:
        st.caption("No runs yet: they show here as soon as someone presses Start training.")
        return

    rows = [r for r, _ in runs]
    points = service.curves([r.id for r in rows])
    held = st.session_state.get(FIGURE)
    digest, drawn = curves_digest(rows, points), [r.id for r in rows if points.get(r.id)]
    # an unchanged figure keeps its chart (and the teacher's zoom); a grown one is redrawn at most every
    # CURVES_SECONDS, as each redraw is a new chart that loses a click made in the moment it takes (curves_chart)
    if held is None or held["drawn"] != drawn or (
            held["digest"] != digest and time.monotonic() - held["at"] >= CURVES_SECONDS):
        held = st.session_state[FIGURE] = {"digest": digest, "drawn": drawn, "at": time.monotonic(),
                                           "figure": curves_figure(rows, points)}
    if drawn:
        clicked = curves_chart(held["figure"])
        if clicked and clicked != st.session_state.get(VIEW):
            st.session_state[VIEW] = clicked
            st.rerun()
        st.caption("Smoothed training loss of each run against epochs; diamonds: its test loss after an epoch. "
                   "Click a curve to open that run.")
    now = time.time()
    for row, place in runs:
        line, open_col, stop_col = st.columns([7, 1, 1], vertical_alignment="center")
        opened = st.session_state.get(VIEW) == row.id
        line.markdown(run_line(row, place, now) + (" · *opened*" if opened else ""))
        if open_col.button("Open", key=f"board_open_{row.id}", disabled=opened, width="stretch"):
            st.session_state[VIEW] = row.id
            st.rerun()
        if stop_col.button("Stop", key=f"board_stop_{row.id}", disabled=not row.active, width="stretch"):
            stop_run(service, person, row.id)
            st.rerun()


runs_panel()
if st.session_state.get(VIEW):
    with st.container(border=True):
        opened_run(st.session_state[VIEW], False)


# ---------------------------------------------------------------------------- models
with job_store_sentences():   # the shelf (published models) and the roster live in the job table's file
    st.subheader("Models", anchor=False)
    owned = [e for e in available_models(person) if e.owner is not None and e.error is None]
    if not owned:
        st.caption("Nobody has saved a model yet. A saved model is its owner's; publish one to put it in every "
                   "student's model picker.")
    else:
        st.caption("Each person sees their own models, the published ones and the shipped ones. Publish a model to "
                   "put it in everyone's picker.")
    for entry in owned:
        line, pub_col, rm_col = st.columns([6, 1.4, 1], vertical_alignment="center")
        whose = entry.owner_name or "yours"
        line.markdown(f"**{entry.title or entry.name}** · {whose} · {entry.config.describe()} · `{entry.file_name}`"
                      + (" · :green-badge[published]" if entry.published else ""))
        if entry.published:
            if pub_col.button("Unpublish", key=widget_key("board_unpublish", entry.path), width="stretch"):
                shelf.unpublish(entry.path)
                clear_model_cache()
                st.rerun()
        elif pub_col.button("Publish", key=widget_key("board_publish", entry.path), type="primary", width="stretch"):
            shelf.publish(entry.path, person)
            clear_model_cache()
            st.rerun()
        with rm_col.popover("Remove", width="stretch"):
            st.caption(f"Delete {entry.file_name} of {whose} for good?")
            if st.button("Delete it", key=widget_key("board_remove", entry.path), type="primary"):
                remove_model(person, entry.path, save_dir(), shelf)
                clear_model_cache()
                st.rerun()


# ---------------------------------------------------------------------------- people
if how == "class":
    with job_store_sentences():
        st.subheader("People", anchor=False)
        people = [p for p in identity.roster().everyone() if p.kind in ("class", "teacher")]
        if not people:
            st.caption("Nobody has signed in yet.")
        now = time.time()
        for p in people:
            line, col = st.columns([7, 2], vertical_alignment="center")
            seen = f"seen {format_seconds(now - p.last_seen)} ago" if p.last_seen else "not seen"
            state = "signed in" if p.holds_secret and not p.released else "name free"
            line.markdown(f"**{p.name}**" + (" · teacher" if p.kind == "teacher" else "") + f" · {state} · {seen}")
            if col.button("Release name", key=widget_key("board_release", p.key), disabled=not p.holds_secret,
                          width="stretch", help="Signs this name's browser out, so its owner can sign in again "
                                                "elsewhere (their runs and models stay theirs)."):
                identity.roster().release(p.key)
                st.rerun()

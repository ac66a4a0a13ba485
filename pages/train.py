"""Train: choose a model and its training settings, start and stop a run, watch it learn live, save it.

A run is a job (jobs/): it trains in a worker process (or on Ray), never in this server, and is listed in
a job table under the signed-in person (ui/identity.py; one person on a laptop needs no sign-in). A refresh on
any page, a new tab or a server restart finds the run again. Each person may have a share of the class's runs
(runs_per_person training, queued_per_person waiting), counted by the table when Start is pressed. While it runs, a fragment redraws its snapshot every
REFRESH_SECONDS; when it ends the charts stay and the Save form sits below them.
"""
import time

import streamlit as st

from jobs.api import JobRefused
from jobs.classroom import save_run, stop_run
from jobs.limits import LimitsError, weights_problem
from ui.cached_data import data_problem, dataset_folder
from ui.images import latent_map_png, png_bytes, upscale
from ui.model_catalogue import choose_model, clear_model_cache, save_dir
from ui.plots import CLASS_COLORS, latent_scatter, loss_curves, refresh_loss_curves
from ui.training_job import format_seconds, jobs, my_models_folder, parse_hidden
from vae_core import DATASETS, VARIANTS, ModelConfig, TrainConfig
from vae_core.config import DEFAULT_HIDDEN_DIMS
from vae_core.validation import one_sentence
from ui.routing import route_through_app

person = route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py); who is here

VIEW = "train_view"           # the id of the job this session looks at
FIGURES = "_train_figures"    # per job: the live loss chart (refreshed in place) and the latent map
REFRESH_SECONDS = 1.0
CURVE_SECONDS = 2.0           # the live loss curves take new data this often (and at each epoch's test loss)
FIRST_STEP_SECONDS = 0.2      # until a started run shows its first step, the page polls this often
LIVE_MAP_SIZE = (600, 420)    # pixels of the live latent map picture
EVAL_IMAGES = 2000            # the per-epoch test curve and the live latent map use this many test images
KEEP = dict(persist_state="session")  # settings survive a switch to another page and back
BETA_MAX = 20.0               # the β field's top; each variant has its own field (key train_beta_<variant>), which
                              # starts at the variant's default_beta and keeps what the person types for that variant
# The classroom default: a 2-D VAE (256-256) on all 60,000 MNIST images for 4 epochs, batch 128, lr 1e-3; the
# clusters form in front of the class. Measured on this project's 2-core machine with `nice -n 19` and one torch
# thread at load 0.7: test loss (2,000 images) 163.5, 157.4, 153.9, 151.6 nats after epochs 1-4, 21.8 s wall
# (20.1 s of steps); 3 epochs (153.9) sit close to the 155 bar, 6 took 33 s. Under a load of 10 the same job
# took 182 s in the app and 192 s with the CLI (bench/jobs_speed.py), and reached the same 151.6 nats.
DEFAULT_EPOCHS = 4
DEFAULT_SECONDS = "25 seconds"

CONDITIONS = {"label": "the label", "quadrants": "some quadrants"}   # short: the box is a third of the width
CONDITION_NOTES = {"label": "x is the class label; y is the whole image.",
                   "quadrants": "x is the image with some quadrants visible; y is the hidden pixels."}
QUADRANTS = {0: "1-3 (random)", 1: "1", 2: "2", 3: "3"}
TRAIN_IMAGES = {1000: "1,000", 5000: "5,000", 10000: "10,000", 20000: "20,000", 0: "all (60,000)"}
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]
STATUS_ICONS = {"queued": ":material/hourglass_top:", "starting": ":material/play_circle:",
                "running": ":material/play_circle:", "stopping": ":material/pending:",
                "completed": ":material/check_circle:", "stopped": ":material/stop_circle:",
                "diverged": ":material/warning:", "failed": ":material/error:"}

st.title(":material/model_training: Train a model")
st.caption("Pick a model and its settings, press Start, and watch the losses fall, the samples sharpen and, "
           "for a 2-D latent, the digit clusters form. Training runs apart from this page: it goes on while you "
           "visit another page, and a refresh or this page's link in a new tab finds it again.")

try:
    service = jobs()
except LimitsError as e:  # a bad .streamlit/latent_lab.toml or LATENT_LAB_* value: the teacher's sentence
    st.error(f"Training is off until the limits are fixed: {e}", icon=":material/error:")
    st.stop()
owner = person.key
mine = service.jobs_of(owner)                      # also tells the scheduler this page is watching them
ids = [j.id for j in mine]
if st.session_state.get(VIEW) not in ids:          # a refresh or a new tab: the newest run of this browser
    st.session_state[VIEW] = ids[0] if ids else None
job = service.progress(st.session_state[VIEW]) if st.session_state[VIEW] else None
busy = job is not None and job.active
others = [j.id for j in mine if j.active and (job is None or j.id != job.id)]  # active, but not shown

# ---------------------------------------------------------------------------- settings
# While a run trains, and after it, the settings fold away so the charts sit near the top.
if job is None:
    settings_box = st.container(border=True)
elif busy:
    settings_box = st.expander(f"Settings of this run: {job.model_config.describe()}", icon=":material/tune:")
else:
    settings_box = st.expander("Settings for a new run", icon=":material/tune:")
with settings_box:
    model_col, optim_col, data_col = st.columns(3, gap="large")
    with model_col:
        st.markdown("**Model**")
        variant = st.selectbox("Variant", list(VARIANTS), format_func=lambda v: VARIANTS[v].title,
                               key="train_variant", disabled=busy, **KEEP,
                               help="; ".join(f"{v.title}: {v.description}" for v in VARIANTS.values()))
        kind = VARIANTS[variant]
        st.caption(kind.description)
        condition, quadrants, prior, latent_dim, alpha = "none", 0, "learned", 2, 0.5
        if kind.conditional:
            condition = st.selectbox("Condition x", list(CONDITIONS), format_func=CONDITIONS.get,
                                     key="train_condition", disabled=busy, **KEEP,
                                     help="What the model is given: the label (y is the whole image) or part of "
                                          "the image (y is the hidden pixels).")
            st.caption(CONDITION_NOTES[condition])
        if condition == "quadrants":
            quadrants = st.selectbox("Visible quadrants", list(QUADRANTS), format_func=QUADRANTS.get,
                                     key="train_quadrants", disabled=busy, **KEEP)
        if kind.has_latent:
            latent_dim = st.number_input("Latent size", min_value=1, max_value=64, value=2, step=1,
                                         key="train_latent", disabled=busy, **KEEP,
                                         help="2 gives a latent map you can look at directly.")
        if kind.conditional and kind.uses_prior:
            prior = st.selectbox("Prior p(z|x)", ["learned", "standard"], key="train_prior", disabled=busy,
                                 format_func={"learned": "learned from x", "standard": "standard N(0, I)"}.get,
                                 help="Learned from x, as in Sohn et al. (2015), or a fixed standard normal.",
                                 **KEEP)
        hidden_text = st.text_input("Hidden layers", value=", ".join(map(str, DEFAULT_HIDDEN_DIMS)),
                                    key="train_hidden", disabled=busy, **KEEP,
                                    help="Units per hidden layer, comma-separated (the decoder mirrors them).")
        if kind.uses_alpha:
            alpha = st.slider("α (weight of the CVAE objective)", 0.0, 1.0, 0.5, 0.05, key="train_alpha",
                              disabled=busy, **KEEP)
    with optim_col:
        st.markdown("**Objective and optimisation**")
        beta = kind.default_beta
        if kind.uses_kl:
            beta = st.number_input("β (weight of the KL term)", min_value=0.0, max_value=BETA_MAX,
                                   value=min(float(kind.default_beta), BETA_MAX), step=0.1,
                                   key=f"train_beta_{variant}", disabled=busy, **KEEP,
                                   help=f"β = 1 is the true ELBO; a {kind.title} starts at {kind.default_beta:g}. "
                                        "The test loss is always scored with β = 1.")
        epochs = st.number_input("Epochs", min_value=1, max_value=200, value=DEFAULT_EPOCHS, step=1, key="train_epochs",
                                 disabled=busy, **KEEP)
        batch_size = st.select_slider("Batch size", [16, 32, 64, 128, 256, 512, 1024], value=128,
                                      key="train_batch", disabled=busy, **KEEP)
        lr = st.select_slider("Learning rate", LEARNING_RATES, value=1e-3, format_func=lambda v: f"{v:g}",
                              key="train_lr", disabled=busy, **KEEP)
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="train_seed",
                               disabled=busy, **KEEP)
    with data_col:
        st.markdown("**Data**")
        dataset = st.selectbox("Data set", DATASETS, key="train_dataset", disabled=busy, **KEEP)
        train_limit = st.select_slider("Training images", list(TRAIN_IMAGES), value=0,
                                       format_func=TRAIN_IMAGES.get, key="train_images", disabled=busy, **KEEP)
        st.caption(f"After each epoch the model is scored on the first {EVAL_IMAGES:,} test images; "
                   "those also make the live latent map.")
        folder = dataset_folder(dataset)
        data_note = data_problem(dataset, "train")
        if data_note is not None:
            st.warning(data_note, icon=":material/folder_off:")

    problem = None
    try:
        model_config = ModelConfig(variant=variant, condition=condition, latent_dim=int(latent_dim),
                                   hidden_dims=parse_hidden(hidden_text), prior=prior, alpha=float(alpha),
                                   quadrants=int(quadrants))
        train_config = TrainConfig(dataset=dataset, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                                   beta=float(beta), seed=int(seed), train_limit=int(train_limit),
                                   eval_limit=EVAL_IMAGES)
    except ValueError as e:
        problem = f"These settings cannot be used: {one_sentence(str(e))}"
    else:
        problem = weights_problem(model_config, service.limits)
    if problem:
        st.error(problem, icon=":material/block:")

start_col, stop_col, note_col = st.columns([1, 1, 4], vertical_alignment="center")
start = start_col.button("Start training", type="primary", icon=":material/play_arrow:", key="train_start",
                         disabled=busy or bool(others) or problem is not None or data_note is not None,
                         width="stretch")
stop = stop_col.button("Stop", icon=":material/stop:", key="train_stop", disabled=not busy, width="stretch")
if busy or others:
    note_col.caption(f"One run at a time on this page (each person may have {service.limits.share()}): stop "
                     "the running one to start another.")
elif problem is None:
    note_col.caption(f"Will train a **{model_config.describe()}** model on {dataset}.")
else:
    note_col.caption("Change the settings above to start.")

if start:
    try:
        st.session_state[VIEW] = service.submit(model_config, train_config, owner, data_root=folder.parent,
                                                owner_name=person.name)
    except JobRefused as e:
        st.error(str(e), icon=":material/block:")
    else:
        st.rerun()
def stop_and_wait(job_id: str, seconds: float = 2.0) -> None:
    """Ask a run to stop and give it a moment: a stop lands within a batch."""
    stop_run(service, person, job_id)  # the person's own runs only (the list and the page show no others)
    end = time.monotonic() + seconds
    while time.monotonic() < end and service.progress(job_id).active:
        time.sleep(0.05)


if stop and job is not None:
    stop_and_wait(job.id)
    st.rerun()


# ---------------------------------------------------------------------------- the owner's runs
def run_line(snap) -> str:
    """One line about a run, for the list."""
    what = f"**{snap.model_config.describe()}**, {snap.epochs} epoch{'s' * (snap.epochs != 1)}"
    if snap.status == "queued":
        return f"{what} · waiting: place {snap.place_in_queue} of {snap.queue_length} in line"
    if snap.active:
        return f"{what} · {snap.status} · {snap.fraction:.0%}"
    return f"{what} · {snap.status} · {snap.message}"


if len(mine) > 1 or (mine and mine[0].id != (job.id if job else None)):
    with st.expander(f"Your runs ({len(mine)})", icon=":material/list:", expanded=any(j.active for j in mine)):
        for snap in mine:
            line, open_col, stop_col = st.columns([6, 1, 1], vertical_alignment="center")
            viewing = job is not None and snap.id == job.id
            line.markdown(f"{STATUS_ICONS.get(snap.status, '')} {run_line(snap)}" + (" · *shown below*" if viewing else ""))
            if open_col.button("Open", key=f"train_open_{snap.id}", disabled=viewing, width="stretch"):
                st.session_state[VIEW] = snap.id
                st.rerun()
            if stop_col.button("Stop run", key=f"train_stoprun_{snap.id}", disabled=not snap.active,
                               width="stretch"):
                stop_and_wait(snap.id)
                st.rerun()


# ---------------------------------------------------------------------------- the run
def cached_figures(job_id: str) -> dict:
    """The figures of a job, kept between redraws (another job starts with none)."""
    store = st.session_state.get(FIGURES)
    if store is None or store.get("job") != job_id:
        store = st.session_state[FIGURES] = {"job": job_id}
    return store


def draw(snap) -> None:
    """Progress, loss curves, samples and the latent map of one snapshot of the job."""
    total_epochs = snap.epochs
    if snap.status == "queued":
        st.info(f"Waiting in line: place {snap.place_in_queue} of {snap.queue_length}. It starts on its own when a "
                f"running job ends ({service.limits.max_runs} at once here).", icon=":material/hourglass_top:")
        return
    if snap.status == "starting" and not snap.total_steps:
        st.progress(0.0, text="Starting a worker and loading the data set…")
    else:
        epoch = min(snap.epoch + 1, total_epochs)
        text = (f"Epoch {epoch}/{total_epochs} · step {snap.global_step:,}/{snap.total_steps:,} · "
                f"{snap.images_per_sec:,.0f} images/s · ")
        text += (f"ETA {format_seconds(snap.eta)}" if not snap.finished
                 else f"took {format_seconds(snap.wall)} ({format_seconds(snap.elapsed)} of training steps)")
        st.progress(snap.fraction, text=text)

    figures = cached_figures(snap.id)
    if snap.steps.get("step"):
        now = time.monotonic()
        if "curves" not in figures:
            figures["curves"] = loss_curves(snap.steps, snap.epoch_records, snap.steps_per_epoch)
            figures["curves_at"] = now
        elif (not snap.active or now - figures["curves_at"] >= CURVE_SECONDS - 0.05
              or len(snap.epoch_records) != figures.get("curves_epochs")):
            # swapping the data in is ~20x cheaper than rebuilding
            refresh_loss_curves(figures["curves"], snap.steps, snap.epoch_records, snap.steps_per_epoch)
            figures["curves_at"] = now
        figures["curves_epochs"] = len(snap.epoch_records)
        # The chart's element id hashes its figure and the browser builds a chart with a new id anew
        # (Plotly.newPlot); an unchanged figure keeps its id and costs the browser nothing.
        st.plotly_chart(figures["curves"], key="train_curves", config={"displayModeBar": False})
        st.caption("Nats per image (total and reconstruction on a log scale). Thin lines: the training loss of "
                   "each batch; bold: smoothed; "
                   f"dotted diamonds: the test loss (first {snap.eval_images:,} test images, β = 1) after each epoch.")

    pictures, latent = st.columns([1, 1], gap="large")
    with pictures:
        if snap.preview is not None:
            st.markdown("**What the model generates**")
            if figures.get("preview_of") is not snap.preview:  # a new grid arrives about once a second
                scale = max(1, min(3, 560 // max(snap.preview.shape)))
                figures["preview"], figures["preview_of"] = png_bytes(upscale(snap.preview, scale)), snap.preview
            # the same bytes make the same media URL, so an unchanged picture is not fetched or decoded again
            st.image(figures["preview"], caption=snap.preview_caption.capitalize())
    with latent:
        if snap.latent is not None:
            st.markdown("**Latent map of test images**")
            points, labels = snap.latent
            if snap.active:
                # while it trains, one picture per new map: a Plotly figure of 2,000 points redrawn every
                # second cost the browser most of a core (issue 10); the finished run gets the Plotly map
                if figures.get("latent_png_of") is not points:
                    figures["latent_png"] = latent_map_png(points, labels, list(snap.class_names), CLASS_COLORS,
                                                           width=LIVE_MAP_SIZE[0], height=LIVE_MAP_SIZE[1])
                    figures["latent_png_of"] = points
                st.image(figures["latent_png"])
                st.caption(f"Latent means of {len(labels):,} test images, coloured by class; redrawn every second "
                           "or so while it trains. When it ends, the map can be zoomed and hovered.")
            else:
                if figures.get("latent_of") is not points:   # build it once per map
                    figures["latent"] = latent_scatter(points, labels, list(snap.class_names), height=420,
                                                       marker_size=5)
                    figures["latent_of"] = points
                st.plotly_chart(figures["latent"], key="train_latent_map", config={"displayModeBar": False})
                st.caption(f"Latent means of {len(labels):,} test images, coloured by class, at the end of the run.")
        elif snap.model_config.has_latent and snap.model_config.latent_dim != 2:
            st.caption(f"The live latent map needs a 2-D latent; this model has {snap.model_config.latent_dim} "
                       "dimensions (the Latent map page can project it).")


@st.fragment(run_every=REFRESH_SECONDS)
def live(job_id: str) -> None:
    """Redraws the running job; when it ends, reruns the whole page once so the polling stops."""
    snap = service.progress(job_id)
    if snap is None:
        return
    draw(snap)
    if not snap.active:
        st.rerun()


@st.fragment(run_every=FIRST_STEP_SECONDS)
def live_until_first_step(job_id: str) -> None:
    """A run just started: poll fast until its first step shows (a worker reaches it in a fraction of a
    second), then rerun the page once, so that `live` polls at its calmer pace from there on."""
    snap = service.progress(job_id)
    if snap is None:
        return
    draw(snap)
    if snap.global_step > 0 or not snap.active:
        st.rerun()


@st.fragment(run_every=5.0)
def keep_watching(job_ids: list[str]) -> None:
    """While a finished run is shown, tell the scheduler this page still watches the owner's active runs,
    and redraw the page (its list of runs) once they have all ended."""
    if not any(j.active for j in service.jobs_of(owner) if j.id in job_ids):
        st.rerun()


def outcome(snap) -> None:
    """The ending in one sentence."""
    if snap.status == "completed":
        st.success(f"Training finished: {len(snap.epoch_records)} epoch{'s' * (len(snap.epoch_records) != 1)} "
                   f"in {format_seconds(snap.wall)}.", icon=":material/check_circle:")
    elif snap.status == "stopped":
        st.info(snap.message, icon=":material/stop_circle:")
    else:
        st.error(snap.message, icon=":material/error:")


def save_form(snap) -> None:
    """Below the charts: name the model and save it into the models folder."""
    saved = st.session_state.get(f"_train_saved_{snap.id}")
    if saved:
        st.success(f"Saved to `{saved}`: it is in the model picker of every page.", icon=":material/save:")
        # Saving does not change the model the other pages show (one choice, the user's); this button does.
        where = (("pages/compare.py", "the Compare page") if snap.model_config.condition == "quadrants"
                 else ("pages/latent_map.py", "the Latent map"))
        if st.button(f"Explore it on {where[1]}", icon=":material/arrow_forward:", key="train_explore_saved"):
            choose_model(saved)
            st.switch_page(where[0])
    if not snap.can_save:
        return
    cfg = snap.model_config
    default = "_".join([cfg.variant] + ([cfg.condition] if cfg.is_conditional else [])
                       + ([f"{cfg.latent_dim}d"] if cfg.has_latent else []))
    with st.form("train_save", border=True):
        st.markdown("**Save this model**")
        name_col, over_col, button_col = st.columns([3, 1, 1], vertical_alignment="bottom")
        name = name_col.text_input("Name", value=default, max_chars=64, key="train_save_name",
                                   help="Letters, digits, - and _ only; it becomes the file name.")
        overwrite = over_col.checkbox("Overwrite", key="train_save_overwrite")
        submitted = button_col.form_submit_button("Save", type="primary", icon=":material/save:", width="stretch")
    if submitted:
        try:
            path = save_run(service, person, snap.id, save_dir(), name.strip(), overwrite=overwrite)
        except ValueError as e:
            st.error(f"Not saved: {e}.", icon=":material/block:")
        else:
            clear_model_cache()
            st.session_state[f"_train_saved_{snap.id}"] = str(path)
            st.rerun()


if job is None:
    who = "" if person.solo else f" by {person.name}"
    st.info(f"Nothing trained yet{who}. The defaults (a VAE with a 2-D latent, {DEFAULT_EPOCHS} epochs "
            f"on all 60,000 MNIST images) take about {DEFAULT_SECONDS} here, long enough to watch the digit "
            "clusters form on the latent map.", icon=":material/lightbulb:")
elif job.active and job.status != "queued" and job.global_step == 0:
    live_until_first_step(job.id)
elif job.active:
    live(job.id)
else:
    outcome(job)
    draw(job)
    save_form(job)
    if others:
        keep_watching(others)
st.caption(f"Limits here: {service.limits.describe()}")

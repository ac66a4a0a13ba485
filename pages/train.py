"""Train: choose a model and its training settings, start and stop a run, watch it learn live, save it.

The run lives in a TrainingJob (ui/training_job.py) kept in st.session_state: it survives a switch to
another page and back. While it runs, a fragment redraws from a snapshot of the job every
REFRESH_SECONDS without rerunning the page.
"""
import streamlit as st

from ui.cached_data import data_problem, dataset_folder
from ui.images import upscale
from ui.model_catalogue import choose_model, clear_model_cache, save_dir
from ui.plots import latent_scatter, loss_curves, refresh_loss_curves
from ui.training_job import TrainingJob, format_seconds, parse_hidden
from vae_core import DATASETS, VARIANTS, ModelConfig, TrainConfig
from ui.routing import route_through_app

route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py)

JOB = "train_job"
FIGURES = "_train_figures"    # per job: the live loss chart (refreshed in place) and the latent map of each epoch
REFRESH_SECONDS = 1.0
EVAL_IMAGES = 2000            # the per-epoch test curve and the live latent map use this many test images
KEEP = dict(persist_state="session")  # settings survive a switch to another page and back

CONDITIONS = {"label": "the label", "quadrants": "some quadrants"}   # short: the box is a third of the width
CONDITION_NOTES = {"label": "x is the class label; y is the whole image.",
                   "quadrants": "x is the image with some quadrants visible; y is the hidden pixels."}
QUADRANTS = {0: "1-3 (random)", 1: "1", 2: "2", 3: "3"}
TRAIN_IMAGES = {1000: "1,000", 5000: "5,000", 10000: "10,000", 20000: "20,000", 0: "all (60,000)"}
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0]

st.title(":material/model_training: Train a model")
st.caption("Pick a model and its settings, press Start, and watch the losses fall, the samples sharpen and, "
           "for a 2-D latent, the digit clusters form. Training keeps going if you visit another page.")

job: TrainingJob | None = st.session_state.get(JOB)
busy = job is not None and job.running

# ---------------------------------------------------------------------------- settings
# While a run trains its settings are fixed: fold them away so the live charts sit near the top.
settings_box = (st.expander(f"Settings of this run: {job.model_config.describe()}", icon=":material/tune:")
                if busy else st.container(border=True))
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
        hidden_text = st.text_input("Hidden layers", value="256, 256", key="train_hidden", disabled=busy, **KEEP,
                                    help="Units per hidden layer, comma-separated (the decoder mirrors them).")
        if kind.uses_alpha:
            alpha = st.slider("α (weight of the CVAE objective)", 0.0, 1.0, 0.5, 0.05, key="train_alpha",
                              disabled=busy, **KEEP)
    with optim_col:
        st.markdown("**Objective and optimisation**")
        beta = 1.0
        if kind.uses_kl:
            beta = st.number_input("β (weight of the KL term)", min_value=0.0, max_value=20.0, value=1.0, step=0.1,
                                   key="train_beta", disabled=busy, **KEEP, help="β = 1 is the true ELBO.")
        epochs = st.number_input("Epochs", min_value=1, max_value=200, value=3, step=1, key="train_epochs",
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
        train_limit = st.select_slider("Training images", list(TRAIN_IMAGES), value=10000,
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
        problem = f"These settings cannot be used: {e}."
        st.error(problem, icon=":material/block:")

start_col, stop_col, note_col = st.columns([1, 1, 4], vertical_alignment="center")
start = start_col.button("Start training", type="primary", icon=":material/play_arrow:", key="train_start",
                         disabled=busy or problem is not None or data_note is not None, width="stretch")
stop = stop_col.button("Stop", icon=":material/stop:", key="train_stop", disabled=not busy, width="stretch")
if problem is None and not busy:
    note_col.caption(f"Will train a **{model_config.describe()}** model on {dataset}.")

if start:
    if job is not None:
        job.stop()
    job = TrainingJob(model_config, train_config, data_root=folder.parent).start()
    st.session_state[JOB] = job
    st.rerun()
if stop and job is not None:
    job.stop()
    job.join(timeout=2.0)
    st.rerun()


# ---------------------------------------------------------------------------- the run
def cached_figures() -> dict:
    """The figures of the current job, kept between redraws (a new job starts with none)."""
    job_id = id(st.session_state.get(JOB))
    store = st.session_state.get(FIGURES)
    if store is None or store.get("job") != job_id:
        store = st.session_state[FIGURES] = {"job": job_id}
    return store


def draw(snap) -> None:
    """Progress, loss curves, samples and the latent map of one snapshot of the job."""
    total_epochs = snap.epochs
    if snap.status == "starting":
        st.progress(0.0, text="Loading the data set…")
    else:
        epoch = min(snap.epoch + 1, total_epochs)
        text = (f"Epoch {epoch}/{total_epochs} · step {snap.global_step:,}/{snap.total_steps:,} · "
                f"{snap.images_per_sec:,.0f} images/s · ")
        text += f"ETA {format_seconds(snap.eta)}" if not snap.finished else f"took {format_seconds(snap.elapsed)}"
        st.progress(snap.fraction, text=text)

    figures = cached_figures()
    if snap.steps.get("step"):
        if "curves" not in figures:
            figures["curves"] = loss_curves(snap.steps, snap.epoch_records, snap.steps_per_epoch)
        else:  # swapping the data in is ~20x cheaper than rebuilding, and leaves the GIL to the worker
            refresh_loss_curves(figures["curves"], snap.steps, snap.epoch_records, snap.steps_per_epoch)
        st.plotly_chart(figures["curves"], key="train_curves", config={"displayModeBar": False})
        st.caption("Nats per image (total and reconstruction on a log scale). Thin lines: the training loss of "
                   "each batch; bold: smoothed; "
                   f"dotted diamonds: the test loss (first {snap.eval_images:,} test images, β = 1) after each epoch.")

    pictures, latent = st.columns([1, 1], gap="large")
    with pictures:
        if snap.preview is not None:
            st.markdown("**What the model generates**")
            scale = max(1, min(3, 560 // max(snap.preview.shape)))
            st.image(upscale(snap.preview, scale), output_format="PNG", caption=snap.preview_caption.capitalize())
    with latent:
        if snap.latent is not None:
            st.markdown("**Latent map of test images**")
            points, labels = snap.latent
            stamp = ("latent", len(snap.epoch_records))  # the map changes once an epoch: build it once an epoch
            if figures.get("latent_stamp") != stamp:
                figures["latent"] = latent_scatter(points, labels, list(snap.class_names), height=420, marker_size=5)
                figures["latent_stamp"] = stamp
            st.plotly_chart(figures["latent"], key="train_latent_map", config={"displayModeBar": False})
            st.caption(f"Latent means of {len(labels):,} test images, coloured by class; redrawn after every epoch.")
        elif snap.model_config.has_latent and snap.model_config.latent_dim != 2:
            st.caption(f"The live latent map needs a 2-D latent; this model has {snap.model_config.latent_dim} "
                       "dimensions (the Latent map page can project it).")


@st.fragment(run_every=REFRESH_SECONDS)
def live() -> None:
    """Redraws the running job; when it ends, reruns the whole page once so the polling stops."""
    current = st.session_state.get(JOB)
    if current is None:
        return
    draw(current.snapshot())
    if not current.running:
        st.rerun()


def outcome(snap) -> None:
    """The ending in one sentence, then the save form."""
    if snap.status == "completed":
        st.success(f"Training finished: {len(snap.epoch_records)} epoch{'s' * (len(snap.epoch_records) != 1)} "
                   f"in {format_seconds(snap.elapsed)}.", icon=":material/check_circle:")
    elif snap.status == "stopped":
        st.info(snap.message, icon=":material/stop_circle:")
    else:
        st.error(snap.message, icon=":material/error:")
    if snap.saved_path:
        st.success(f"Saved to `{snap.saved_path}`: it is in the model picker of every page.",
                   icon=":material/save:")
        # Saving does not change the model the other pages show (one choice, the user's); this button does.
        where = (("pages/compare.py", "the Compare page") if snap.model_config.condition == "quadrants"
                 else ("pages/latent_map.py", "the Latent map"))
        if st.button(f"Explore it on {where[1]}", icon=":material/arrow_forward:", key="train_explore_saved"):
            choose_model(snap.saved_path)
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
            with st.spinner("Measuring the model on 500 test images and saving…"):
                path = st.session_state[JOB].save(save_dir(), name.strip(), overwrite=overwrite, metric_images=500)
        except ValueError as e:
            st.error(f"Not saved: {e}.", icon=":material/block:")
        else:
            clear_model_cache()
            st.rerun()


if job is None:
    st.info("Nothing trained yet in this session. The defaults (a VAE with a 2-D latent, 3 epochs on 10,000 "
            "images) finish in about a minute on a laptop.", icon=":material/lightbulb:")
elif job.running:
    live()
else:
    final = job.snapshot()
    outcome(final)
    draw(final)

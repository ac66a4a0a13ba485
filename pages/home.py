"""Home: what Latent Lab is, how to use it in a class, which models are here, and whether the data set is."""
import streamlit as st

from ui.cached_data import data_problem, dataset_folder, download
from ui.model_catalogue import available_models, model_dirs
from ui.home_tools import models_table
from ui.routing import route_through_app
from vae_core import variant_table

route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py)

# The five steps of a lesson: (page, link text, icon, what to do there)
STEPS = [
    ("pages/train.py", "Train", ":material/model_training:",
     "A small VAE with a 2-D latent for 3 epochs: the loss curves fall and the digit clusters form live."),
    ("pages/latent_map.py", "Latent map", ":material/scatter_plot:",
     "Every test digit is a dot at its latent mean; click one to see it and its reconstruction, or lasso a "
     "region to see which digits live there."),
    ("pages/decoder.py", "Decoder", ":material/tune:",
     "Move the two latent sliders and watch one digit morph into another; walk the manifold grid."),
    ("pages/compare.py", "Compare CVAE vs GSNN", ":material/compare:",
     "Hide part of a digit and see which model proposes varied, plausible completions."),
    ("pages/latent_map.py", "Latent map of a CVAE", ":material/palette:",
     "Pick a CVAE conditioned on the label in the sidebar: the map now shows *style* (slant, thickness), "
     "not class."),
]

st.title(":material/explore: Latent Lab")
st.markdown(
    "An interactive explorer for **variational autoencoders** on handwritten digits. Train a VAE, a "
    "conditional VAE (CVAE) or a GSNN and watch it learn; look at where each digit lands in the latent "
    "space; turn the latent knobs and see the decoded digit change; compare how CVAE and GSNN fill in "
    "a half-hidden digit (Sohn, Lee and Yan, 2015)."
)

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("In class, in five steps")
    for number, (page, title, icon, text) in enumerate(STEPS, start=1):
        st.page_link(page, label=f"{number}. {title}", icon=icon)
        st.caption(text)
    st.caption("Every page opens on the recommended model (★ below); pick another in the sidebar and it stays "
               "picked on every page. A model you train and save appears there at once.")

with right:
    st.subheader("Data")
    for name in ("mnist", "fashion-mnist"):
        folder = dataset_folder(name)
        problem = data_problem(name)
        if problem is None:
            st.success(f"**{name}** found in `{folder}`.", icon=":material/check_circle:")
        elif folder is not None:  # present but damaged: the sentence names the file and the fault
            st.error(problem, icon=":material/error:")
        else:
            st.warning(problem, icon=":material/folder_off:")
            if st.button(f"Download {name}", key=f"download_{name}"):
                with st.spinner(f"Downloading {name}…"):
                    problem = download(name)
                if problem:
                    st.error(problem)
                else:
                    st.rerun()

st.subheader("Models")
entries = available_models()
if not entries:
    folders = ", ".join(f"`{d}`" for d in model_dirs())
    st.info(f"No models yet: train one on the Train page, or put checkpoints in {folders}.")
else:
    overview, details = models_table(entries)  # recommended first
    st.dataframe(overview, hide_index=True, width="stretch", key="home_models")
    with st.expander("Scores, training and files", icon=":material/table_chart:"):
        st.dataframe(
            details, hide_index=True, width="stretch", key="home_model_details",
            column_config={
                "test −ELBO": st.column_config.NumberColumn(format="%.1f", help="negative ELBO on the test set, nats per image (lower is better)"),
                "test NLL": st.column_config.NumberColumn(format="%.1f", help="negative log-likelihood by importance sampling, nats per image (quadrant models: over the hidden pixels, averaged over 1-3 visible quadrants)"),
                "epochs": st.column_config.NumberColumn(format="%d"),
            },
        )
    broken = [e for e in entries if e.error]
    for e in broken:
        st.error(f"`{e.name}` cannot be used: {e.error}", icon=":material/error:")

with st.expander("The variants Latent Lab trains", icon=":material/account_tree:"):
    st.markdown(variant_table())   # the registry's table (vae_core.models.VARIANTS), as in the README
    st.caption("One family of models, differing only in where z comes from while training and which terms the "
               "loss keeps. Pick one on the Train page.")

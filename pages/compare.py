"""Compare CVAE vs GSNN (Sohn, Lee and Yan, 2015).

The same conditions and the same noise through the GSNN, the CVAE and the hybrid: first given a digit
label, then completing a test digit from 1, 2 or 3 visible quadrants (with the deterministic baseline and
each model's sample diversity); last, the table of negative conditional log-likelihoods. Every figure
can be downloaded (PNG; the table as CSV).
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from ui import compare_tools as ct
from ui.cached_data import missing_data_note, test_set
from ui.images import grid, png_bytes, upscale
from ui.model_catalogue import available_models, load_model
from ui.notation import state_notation
from vae_core import CheckpointError, sample_diversity
from vae_core.data import class_names
from ui.routing import route_through_app

route_through_app()  # a deep link on a fresh server goes through app.py (ui/routing.py)

st.title("Compare CVAE vs GSNN")
st.caption("A GSNN trains its decoder on z drawn from the prior p(z|x), so it learns to hedge and its samples "
           "look alike; a CVAE trains on z from the recognition net q(z|x,y) and keeps a different plausible "
           "answer for each z. Same conditions, same noise, side by side.")
state_notation()

entries = available_models()
if ct.unconditional_sentence():
    st.caption(ct.unconditional_sentence())


def pick_models(found: dict, section: str) -> dict:
    """variant -> (entry, model, record): the only model of each variant, or the user's choice when there are several."""
    several = [v for v, es in found.items() if len(es) > 1]
    chooser = st.expander("Which checkpoints", icon=":material/tune:") if several else None
    picked = {}
    for variant, candidates in found.items():
        if not candidates:
            continue
        chosen = candidates[0]
        if variant in several:
            by_path = {e.path: e for e in candidates}
            chosen = by_path[chooser.selectbox(ct.title(variant), list(by_path), key=f"cmp_{section}_{variant}",
                                               format_func=lambda p: by_path[p].label)]
        loaded = load(chosen)
        if loaded is not None:
            picked[variant] = loaded
    return picked


def load(chosen):
    """(entry, model, record), or None after an error sentence."""
    try:
        model, record = load_model(chosen.path)
    except CheckpointError as e:
        st.error(f"{chosen.name} cannot be used: {e}")
        return None
    return chosen, model, record


# ----------------------------------------------------------------------------- label conditioning

@st.fragment
def label_section() -> None:
    st.header("Given a label")
    found = ct.models_by_variant(entries, "label", ct.samplers())
    note = ct.missing_sentence([v for v in found if not found[v]], "label")
    if note:
        st.info(note)
    picked = pick_models(found, "label")
    if not picked:
        return
    dataset = next(iter(picked.values()))[2].dataset
    names = class_names(dataset)
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    classes = c1.multiselect("Classes (rows)", list(range(len(names))), default=list(range(len(names))),
                             format_func=lambda c: names[c], key="cmp_label_classes")
    n = c2.slider("Samples per class", 2, 12, 8, key="cmp_label_n")
    seed = c3.number_input("Noise seed", 0, 10_000, 0, key="cmp_label_seed",
                           help="The same seed gives every model the same noise eps")
    if not classes:
        st.info("Pick at least one class.")
        return
    labels = torch.tensor(sorted(classes))
    dims = {p[1].config.latent_dim for p in picked.values()}
    st.caption(f"Rows: classes {', '.join(names[c] for c in labels.tolist())}; columns: {n} noise draws, the same "
               "for every model" + (" (the latent sizes differ, so the noise is only seeded alike)."
                                    if len(dims) > 1 else "."))
    cols = st.columns(len(picked))
    for col, (variant, (entry, model, record)) in zip(cols, picked.items()):
        samples = ct.same_noise_samples(model, labels, n, int(seed))
        picture = upscale(grid(samples, ncols=n, pad=2), 2)
        diversity = sample_diversity(model, labels, max(n, 2), seed=int(seed))
        with col:
            st.subheader(ct.title(variant))
            st.image(picture, output_format="PNG", caption=f"{entry.name} · diversity {diversity:.2f}")
            st.download_button("PNG", png_bytes(picture), file_name=f"label_samples_{variant}.png", mime="image/png",
                               icon=":material/download:", key=f"cmp_label_png_{variant}")


label_section()


# ----------------------------------------------------------------------------- quadrant completion

@st.fragment
def quadrant_section() -> None:
    st.header("Completing a digit from some quadrants")
    k = st.radio("Visible quadrants", (1, 2, 3), horizontal=True, key="cmp_quadrants",
                 format_func=lambda q: {1: "1 (bottom left)", 2: "2 (left half)", 3: "3 (all but bottom right)"}[q])
    found = ct.models_by_variant(entries, "quadrants", quadrants=k)
    note = ct.missing_sentence([v for v in found if not found[v]], "quadrants")
    if note:
        st.info(note)
    picked = pick_models(found, "quadrants")
    if not picked:
        return
    dataset = next(iter(picked.values()))[2].dataset
    test = test_set(dataset)
    if test is None:
        st.info(missing_data_note(dataset) + " Completing a test digit needs it; the label comparison above does not.")
        return

    c1, c2, c3, c4 = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    if c2.button("Random digit", icon=":material/casino:", key="cmp_random"):
        st.session_state["cmp_index"] = int(np.random.default_rng().integers(len(test)))
    index = c1.number_input("Test digit (#)", 0, len(test) - 1, key="cmp_index")
    n = c3.slider("Samples per model", 3, 16, 10, key="cmp_quadrant_n")
    seed = c4.number_input("Noise seed", 0, 10_000, 0, key="cmp_quadrant_seed")

    truth = test.images[int(index)]
    x = ct.condition(truth, k)
    row = {"Input": ct.masked_rgb(x), "Truth": truth.numpy()}
    predictors = [v for v in ct.predictors() if v in picked]   # deterministic: one prediction each
    for variant in predictors:
        _, predictor, _ = picked[variant]
        with torch.no_grad():
            prediction = predictor.decode(None, x.reshape(1, -1)).cpu().numpy()
        row[ct.title(variant)] = ct.completions(x, prediction)[0]
    tops = st.columns(max(6, len(row)))
    for col, (title, img) in zip(tops, row.items()):
        col.image(ct.upscale_any(img, 4), output_format="PNG", caption=title)

    figure_rows = [(f"{k} visible: input | truth" + "".join(f" | {ct.title(v)}" for v in predictors),
                    ct.strip_rgb(list(row.values())))]
    for variant in (v for v in ct.samplers() if v in picked):
        entry, model, _ = picked[variant]
        samples = ct.same_noise_samples(model, x, n, int(seed))[0]
        filled = ct.completions(x, samples)
        diversity = sample_diversity(model, x, n, seed=int(seed))
        st.markdown(f"**{ct.title(variant)}** · {entry.name} · diversity **{diversity:.2f}**")
        st.image(upscale(grid(filled, ncols=n, pad=2), 3), output_format="PNG")
        figure_rows.append((f"{ct.title(variant)} (div. {diversity:.2f})", filled))
    st.caption("Diversity: the mean distance between two samples over the hidden pixels (0 means every sample "
               "is the same). The visible quadrants are copied from the input; the rest is the model's.")
    figure = ct.labelled_figure(figure_rows, scale=2)
    st.download_button("Figure (PNG)", png_bytes(figure), file_name=f"completion_{index}_q{k}.png", mime="image/png",
                       icon=":material/download:", key="cmp_quadrant_png")


quadrant_section()


# ----------------------------------------------------------------------------- the likelihood table

st.header("Conditional log-likelihood")
quadrant_models = [e for e in entries if e.error is None and e.config.condition == "quadrants"]
if not quadrant_models:
    st.info("No quadrant-completion model was found, so there is no table yet: train "
            f"{', '.join(ct.title(v) for v in ct.table_order())} models with condition 'quadrants' on the Train page.")
else:
    with st.spinner("Estimating the likelihoods that the checkpoints do not store (once; then cached)…"):
        long = ct.nll_table(entries)
    st.markdown(
        "Each cell is −log p(y | x), the negative conditional log-likelihood of the hidden pixels y given the "
        "visible ones x, in nats per image (lower is better), estimated by Monte Carlo (MC, z drawn from the "
        "prior p(z|x)) and by importance sampling (IS, z drawn from q(z|x,y)). In the paper (Table 2) the GSNN "
        "scores about the same as the deterministic baseline, while the CVAE and the hybrid do much better: a "
        "model that keeps several plausible completions gives the true one a higher likelihood than one that "
        "hedges with a single blurry average.")
    sentence = ct.finding(long)
    if sentence:
        st.markdown(sentence)
    wide = ct.wide_table(long)
    st.dataframe(wide, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in wide.columns
                                if "quadrant" in c})
    sources = sorted(set(long["source"]))
    st.caption("Where the figures come from: " + "; ".join(sources) + ".")
    st.download_button("Table (CSV)", long.to_csv(index=False).encode(), file_name="conditional_nll.csv",
                       mime="text/csv", icon=":material/download:", key="cmp_table_csv")

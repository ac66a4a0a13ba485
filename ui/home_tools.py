"""Helpers of the Home page: the tables of the models that are here (no streamlit calls)."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from vae_core.formatting import format_count

OVERVIEW = ["model", "what it is", "data set", "explore on"]          # the few columns a teacher reads
DETAILS = ["model", "variant", "test −ELBO", "test NLL", "measured on", "epochs", "file"]
DATASET_TITLES = {"mnist": "MNIST digits", "fashion-mnist": "Fashion-MNIST clothes"}


def where_to_explore(config, map_shows_codes: bool = True) -> str:
    """The pages that show a model of this kind; the Latent map only where it shows more than one point per
    label (a model whose code ignores the image has nothing to map: ui.latent_map_tools.map_shows_codes)."""
    if config.condition == "quadrants":
        return "Compare"
    if not config.has_latent:
        return "Compare" if config.condition == "label" else "-"
    pages = (["Latent map"] if map_shows_codes else []) + ["Decoder"] + (["Compare"] if config.condition == "label" else [])
    return ", ".join(pages)


def measured_on(record) -> str:
    """How the stored test figures were measured: '10,000 images, S = 1,000' (parts not recorded say so)."""
    images, samples = record.test_image_count(), record.samples
    if images is None and samples is None:
        return "not recorded"
    return (f"{format_count(images)} images" if images is not None else "images not recorded") + \
        (f", S = {format_count(samples)}" if samples is not None else "")


def models_table(entries, map_shows_codes: Callable = lambda entry: True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables of the usable checkpoints, in the order given (available_models: recommended first).

    The overview has the few columns a teacher reads (model, what it is, data set, where to explore it), the
    recommended model marked with a star; the details: variant, test -ELBO, test NLL, epochs, file."""
    rows, details = [], []
    for e in entries:
        if e.error:
            continue
        record = e.record
        nll = record.mean_metric("nll_is")
        rows.append({
            "model": ("★ " if not rows else "") + e.label,
            "what it is": record.describe(),
            "data set": DATASET_TITLES.get(record.dataset, record.dataset),
            "explore on": where_to_explore(record.model_config, map_shows_codes(e)),
        })
        details.append({
            "model": e.label,
            "variant": record.model_config.describe(),
            "test −ELBO": record.mean_metric("neg_elbo"),
            "test NLL": nll if nll is not None else record.mean_metric("nll_mc"),
            "measured on": measured_on(record),
            "epochs": record.epochs_trained,
            "file": e.file_name,
        })
    return pd.DataFrame(rows, columns=OVERVIEW), pd.DataFrame(details, columns=DETAILS)

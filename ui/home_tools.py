"""Helpers of the Home page: the tables of the models that are here (no streamlit calls)."""
from __future__ import annotations

import pandas as pd

OVERVIEW = ["model", "what it is", "data set", "explore on"]          # the few columns a teacher reads
DETAILS = ["model", "variant", "test −ELBO", "test NLL", "epochs", "file"]
DATASET_TITLES = {"mnist": "MNIST digits", "fashion-mnist": "Fashion-MNIST clothes"}


def where_to_explore(config) -> str:
    """The pages that show a model of this kind."""
    if config.condition == "quadrants":
        return "Compare"
    if not config.has_latent:
        return "Compare" if config.condition == "label" else "-"
    return "Latent map, Decoder" + (", Compare" if config.condition == "label" else "")


def models_table(entries) -> tuple[pd.DataFrame, pd.DataFrame]:
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
            "explore on": where_to_explore(record.model_config),
        })
        details.append({
            "model": e.label,
            "variant": record.model_config.describe(),
            "test −ELBO": record.mean_metric("neg_elbo"),
            "test NLL": nll if nll is not None else record.mean_metric("nll_mc"),
            "epochs": record.epochs_trained,
            "file": e.file_name,
        })
    return pd.DataFrame(rows, columns=OVERVIEW), pd.DataFrame(details, columns=DETAILS)

"""Helpers of the Home page: the table of the models that are here (no streamlit calls)."""
from __future__ import annotations

import pandas as pd

COLUMNS = ["name", "description", "model", "data set", "test −ELBO", "test NLL", "epochs"]


def models_table(entries) -> pd.DataFrame:
    """One row per usable checkpoint: name, description, data set, test -ELBO, test NLL, epochs."""
    rows = []
    for e in entries:
        if e.error:
            continue
        record = e.record
        nll = record.mean_metric("nll_is")
        rows.append({
            "name": e.name,
            "description": record.describe(),
            "model": record.model_config.describe(),
            "data set": record.dataset,
            "test −ELBO": record.mean_metric("neg_elbo"),
            "test NLL": nll if nll is not None else record.mean_metric("nll_mc"),
            "epochs": record.epochs_trained,
        })
    return pd.DataFrame(rows, columns=COLUMNS)

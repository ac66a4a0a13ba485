"""Plain summaries of checkpoints for tables (no streamlit calls)."""
from __future__ import annotations

import math

import pandas as pd


def _mean_metric(metrics: dict, key: str) -> float | None:
    """A metric, or its mean over the q1/q2/q3 blocks of a quadrant model trained on 1-3 quadrants."""
    if not metrics:
        return None
    if key in metrics and isinstance(metrics[key], (int, float)):
        return float(metrics[key])
    values = [m[key] for m in metrics.values() if isinstance(m, dict) and isinstance(m.get(key), (int, float))]
    return float(sum(values) / len(values)) if values else None


def describe_entry(meta: dict) -> str:
    """A one-line description of a model for people: its stored description, else one built from its config."""
    text = meta.get("description")
    if text:
        return str(text)
    cfg = meta["model_config"]
    what = {"vae": "VAE", "cvae": "conditional VAE", "gsnn": "GSNN", "hybrid": "CVAE/GSNN hybrid",
            "baseline": "deterministic baseline"}[cfg.variant]
    given = {"none": "", "label": " given the digit label",
             "quadrants": " completing hidden quadrants"}[cfg.condition]
    latent = f", {cfg.latent_dim}-D latent" if cfg.has_latent else ""
    return f"{what}{given}{latent}"


def models_table(entries) -> pd.DataFrame:
    """One row per usable checkpoint: name, description, data set, test -ELBO, test NLL, epochs, file."""
    rows = []
    for e in entries:
        if e.error:
            continue
        meta = e.meta
        metrics = meta.get("metrics") or {}
        nll = _mean_metric(metrics, "nll_is")
        if nll is None:
            nll = _mean_metric(metrics, "nll_mc")
        epochs = meta.get("epochs_completed")
        if epochs is None and meta.get("train_config"):
            epochs = meta["train_config"].get("epochs")
        neg_elbo = _mean_metric(metrics, "neg_elbo")
        rows.append({
            "name": e.name,
            "description": describe_entry(meta),
            "model": meta["model_config"].describe(),
            "data set": meta.get("dataset", "?"),
            "test −ELBO": None if neg_elbo is None or not math.isfinite(neg_elbo) else neg_elbo,
            "test NLL": None if nll is None or not math.isfinite(nll) else nll,
            "epochs": epochs,
        })
    return pd.DataFrame(rows, columns=["name", "description", "model", "data set", "test −ELBO", "test NLL", "epochs"])

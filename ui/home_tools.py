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

    The first has the few columns a teacher reads (model, what it is, data set, where to explore it), the
    recommended model marked with a star; the second the details: variant, test -ELBO, test NLL, epochs, file."""
    rows, details = [], []
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
        star = "★ " if not rows else ""
        rows.append({
            "model": star + e.label,
            "what it is": describe_entry(meta),
            "data set": DATASET_TITLES.get(e.dataset, e.dataset),
            "explore on": where_to_explore(e.config),
        })
        details.append({
            "model": e.label,
            "variant": e.config.describe(),
            "test −ELBO": None if neg_elbo is None or not math.isfinite(neg_elbo) else neg_elbo,
            "test NLL": None if nll is None or not math.isfinite(nll) else nll,
            "epochs": epochs,
            "file": e.file_name,
        })
    return (pd.DataFrame(rows, columns=["model", "what it is", "data set", "explore on"]),
            pd.DataFrame(details, columns=["model", "variant", "test −ELBO", "test NLL", "epochs", "file"]))

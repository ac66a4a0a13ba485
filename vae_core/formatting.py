"""Numbers as a person reads them: human names, units and honest precision, in one place.

The record stores figures under code names (`neg_elbo`, `nll_is`, `samples`); a page, a table or the CLI
shows them through this module: "−ELBO: 134.33 nats per image", "samples S per image: 1,000", "test images:
10,000". Counts are whole numbers with thousands separators (never "1000.000"), nats carry two decimals,
an unknown value is a word ("not recorded"), never "None". Plain Python: no streamlit, no torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MetricName", "METRICS", "metric_name", "metric_label", "format_metric", "format_count",
           "format_nats", "format_number", "format_seconds", "format_duration", "quadrant_block_name",
           "thing_name", "a_thing", "UNKNOWN"]

UNKNOWN = "not recorded"


@dataclass(frozen=True)
class MetricName:
    """How a person reads one stored figure: its name, its unit ('' for a plain count) and its precision."""

    name: str
    unit: str = ""
    kind: str = "nats"        # 'nats' (2 decimals), 'count' (whole, thousands separators), 'plain' (3 significant)
    help: str = ""


PER_IMAGE = "nats per image"
# The record's code names (vae_core/evaluation.py checkpoint_metrics, jobs/worker.py) and their human names
METRICS: dict[str, MetricName] = {
    "neg_elbo": MetricName("−ELBO", PER_IMAGE, help="the negative evidence lower bound: reconstruction + KL"),
    "loss": MetricName("loss", PER_IMAGE, help="the training objective (−ELBO, β-weighted)"),
    "recon": MetricName("reconstruction term", PER_IMAGE, help="−log p(image | z), averaged over z from the encoder"),
    "kl": MetricName("KL term", PER_IMAGE, help="KL(q ‖ p): what the code z costs"),
    "nll_is": MetricName("NLL, importance sampling", PER_IMAGE,
                         help="negative log-likelihood, z drawn from the encoder and reweighted"),
    "nll_mc": MetricName("NLL, Monte Carlo", PER_IMAGE, help="negative log-likelihood, z drawn from the prior"),
    "samples": MetricName("samples S per image", kind="count",
                          help="draws of z per image behind the likelihood estimates"),
    "test_images": MetricName("test images", kind="count", help="how many test images the figures average over"),
    "diversity": MetricName("sample diversity", "mean pixel distance", kind="plain",
                            help="0: every sample is the same image"),
}


def metric_name(key: str) -> MetricName:
    """The human name of a stored figure; an unknown code name is shown with its underscores as spaces."""
    return METRICS.get(key, MetricName(key.replace("_", " "), kind="plain"))


def metric_label(key: str) -> str:
    """'−ELBO (nats per image)', 'samples S per image', ...: a column or row heading."""
    m = metric_name(key)
    return f"{m.name} ({m.unit})" if m.unit else m.name


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_count(value) -> str:
    """A whole number with thousands separators: 10,000 (a float that is whole prints whole too)."""
    if not _finite(value):
        return UNKNOWN
    return f"{int(round(value)):,}"


def format_nats(value, digits: int = 2, unit: bool = True) -> str:
    """'134.33 nats' (two decimals: summation order moves the third)."""
    if not _finite(value):
        return UNKNOWN if value is None else str(value)
    return f"{value:,.{digits}f}" + (" nats" if unit else "")


def format_number(value, significant: int = 3) -> str:
    """A plain figure with a few significant digits: 6.74, 0.00926, 1,234."""
    if not _finite(value):
        return UNKNOWN if value is None else str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if value == 0:
        return "0"
    digits = max(0, significant - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:,.{digits}f}"


def format_metric(key: str, value, unit: bool = True) -> str:
    """One stored figure as text, by its kind: '134.33 nats', '1,000', '6.74'."""
    m = metric_name(key)
    if m.kind == "count":
        return format_count(value)
    if m.kind == "nats":
        return format_nats(value, unit=unit)
    return format_number(value)


def format_seconds(seconds: float) -> str:
    """A clock reading for progress bars: 0:54, 12:03, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_duration(seconds: float) -> str:
    """A duration in words, rounded as a person would say it: '54 seconds', 'about 2 minutes'."""
    if not _finite(seconds):
        return UNKNOWN
    if seconds < 90:
        whole = max(1, int(round(seconds)))
        return f"{whole} second{'s' * (whole != 1)}"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {int(round(minutes))} minutes"
    return f"about {minutes / 60:.1f} hours"


def quadrant_block_name(key: str) -> str:
    """'q2' (a per-quadrant-count block of metrics) -> '2 visible quadrants'."""
    if len(key) == 2 and key[0] == "q" and key[1].isdigit():
        k = int(key[1])
        return f"{k} visible quadrant{'s' * (k != 1)}"
    return key.replace("_", " ")


# What one image of a data set is called in a sentence: a digit, or an item of clothing
THINGS = {"mnist": ("digit", "digits"), "fashion-mnist": ("item of clothing", "items of clothing")}


def a_thing(dataset: str | None) -> str:
    """'a digit', 'an item of clothing', 'an image': the thing with its article."""
    one = thing_name(dataset)
    return ("an " if one[0] in "aeiou" else "a ") + one


def thing_name(dataset: str | None, plural: bool = False) -> str:
    """'digit' / 'digits' for MNIST, 'item of clothing' / 'items of clothing' for Fashion-MNIST, else 'image'."""
    one, many = THINGS.get(dataset or "", ("image", "images"))
    return many if plural else one

"""Words computed from the model: every sentence a page says about a model, chosen by a rule over what was
measured on that model, with the rules and their thresholds here and nowhere else.

A page measures (the latent means, KL per dimension, sample diversity, importance weights, ...), calls one of
these functions and shows the `Verdict` it returns. Each rule has a test where it holds and one where it does
not (tests/vae_core/test_verdicts.py). Pure Python and numpy: no streamlit, no torch.

The sentences use words where they can (the image, its label, the visible quadrants, the encoder); where a
symbol is clearer they follow Sohn et al. (2015), whose notation the pages state once: x is what the model is
given, y the image it explains, z the latent code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .formatting import format_count, format_duration, format_nats, format_number, thing_name

# ----------------------------------------------------------------------------- thresholds (one place)
SAME_POINT_TOLERANCE = 1e-4   # latent means closer than this share of their spread count as one point
POINTS_PER_LABEL = 2          # a label model whose test images land on at most this many points per label
#                               encodes the label alone: its map has no style to show
CLUSTERED_SHARE = 0.6         # class explains at least this share of the spread of the points: clusters
OVERLAP_SHARE = 0.25          # ... under this share: the colours overlap
Z_IGNORED_DIVERSITY = 0.1     # samples closer than this (mean pixel distance) : the decoder ignores z
EVEN_WEIGHTS = 0.5            # ESS / S above this: even importance weights
UNEVEN_WEIGHTS = 0.05         # ESS / S under this: one or two weights carry the estimate
BIAS_STANDARD_ERRORS = 2.0    # a difference NLL(S) - NLL(S_max) within this many standard errors shows no bias
BIAS_SMALL_S = 10             # the "small S" the bias is read at (the nearest S of the curve)
KL_SILENT_SHARE = 0.01        # a latent dimension carrying under this share of the total KL carries ~nothing
BAR_VISIBLE_SHARE = 0.01      # a bar under this share of the tallest is too short to see on a chart
SAME_PICTURE_DISTANCE = 1.0   # two decoders whose outputs for the same z differ by less (mean pixel distance)


@dataclass(frozen=True)
class Verdict:
    """A sentence about a model and the rule that chose it ('rule' names it for tests and readers)."""

    rule: str
    text: str
    tone: str = "info"       # info | success | warning
    facts: dict = field(default_factory=dict)   # the measured quantities behind it


# ----------------------------------------------------------------------------- the latent map
def distinct_points(points, tolerance: float = SAME_POINT_TOLERANCE) -> int:
    """How many different places the latent means occupy: points closer than `tolerance` times the spread
    of all of them (their largest standard deviation over the axes) count as one."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        return 0
    pts = pts.reshape(len(pts), -1)
    spread = float(np.max(np.std(pts, axis=0))) if len(pts) > 1 else 0.0
    scale = max(spread, float(np.max(np.abs(pts))), 1e-12) * tolerance
    return int(len(np.unique(np.round(pts / scale), axis=0)))


def class_share(points, labels) -> float:
    """The share of the spread of the points that the class explains: between-class sum of squares over the
    total (0: the classes are mixed alike everywhere; 1: each class sits on one spot)."""
    pts = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    labels = np.asarray(labels)
    total = float(((pts - pts.mean(0)) ** 2).sum())
    if total <= 0:
        return 1.0
    within = sum(float(((pts[labels == c] - pts[labels == c].mean(0)) ** 2).sum()) for c in np.unique(labels))
    return max(0.0, min(1.0, 1.0 - within / total))


STYLE = {"mnist": "slant, width, stroke thickness", "fashion-mnist": "shape, shade, pattern"}


def latent_map_verdict(*, condition: str, distinct: int, n_points: int, num_classes: int, share: float,
                       dataset: str) -> Verdict:
    """What the Latent map shows for this model, from its latent means: the number of distinct points and
    the share of their spread the class explains."""
    facts = {"distinct": distinct, "points": n_points, "class_share": share}
    things = thing_name(dataset, plural=True)
    style = STYLE.get(dataset, "style")
    if condition == "label" and distinct <= POINTS_PER_LABEL * num_classes:
        return Verdict("one_point_per_label", (
            f"All {format_count(n_points)} test images land on only {distinct} point{'s' * (distinct != 1)}: this "
            "model's latent code depends on the label alone, not on the image, so the map shows where each "
            "label's code sits and nothing about style. Its samples differ only by label; the Decoder and "
            "Compare pages show what it draws."), "warning", facts)
    pct = f"{share:.0%}"
    if condition == "label":
        if share >= CLUSTERED_SHARE:
            return Verdict("label_model_clusters", (
                f"This model is given the label, yet its codes still sort by class: the class explains {pct} of "
                "the spread of the points."), "info", facts)
        overlap = "the colours overlap" if share < OVERLAP_SHARE else "the colours overlap in part"
        return Verdict("label_model_style", (
            f"This model is given the label, so where an image lands need not say its class: the class explains "
            f"{pct} of the spread of the points and {overlap}. What the position encodes is the rest: the "
            f"{thing_name(dataset)}'s style ({style})."), "info", facts)
    if share >= CLUSTERED_SHARE:
        return Verdict("classes_cluster", (
            f"The model never saw a label, yet the {things} of one class gather together: the class explains "
            f"{pct} of the spread of the points."), "info", facts)
    return Verdict("classes_mixed", (
        f"The class explains only {pct} of the spread of the points: {things} of different classes share much "
        "of the map."), "info", facts)


def map_is_informative(condition: str, distinct: int | None, num_classes: int) -> bool:
    """Whether a model's latent map shows more than one point per label (unknown counts: assume it does)."""
    return not (condition == "label" and distinct is not None and distinct <= POINTS_PER_LABEL * num_classes)


# ----------------------------------------------------------------------------- the likelihood estimate
@dataclass(frozen=True)
class Bias:
    """NLL(S_small) - NLL(S_max), its mean over images and standard error, and its sign as measured."""

    s_small: int
    s_max: int
    mean: float
    stderr: float

    @property
    def direction(self) -> str:
        """'above' (NLL falls as S grows), 'below' (it rises) or 'level' (within the noise)."""
        if abs(self.mean) <= BIAS_STANDARD_ERRORS * self.stderr:
            return "level"
        return "above" if self.mean > 0 else "below"


def nll_bias(samples, nll, small: int = BIAS_SMALL_S) -> Bias:
    """The bias at small S as the curve shows it: nll [K, B] at the sizes `samples` [K], read at the size
    nearest `small` (never the largest) against the largest."""
    samples = np.asarray(samples)
    nll = np.asarray(nll, dtype=np.float64).reshape(len(samples), -1)
    k = int(np.argmin(np.abs(np.log(samples[:-1]) - math.log(small)))) if len(samples) > 1 else 0
    delta = nll[k] - nll[-1]
    stderr = float(delta.std(ddof=1) / math.sqrt(len(delta))) if len(delta) > 1 else 0.0
    return Bias(int(samples[k]), int(samples[-1]), float(delta.mean()), stderr)


def _bias_sentence(bias: Bias) -> str:
    s, top = format_count(bias.s_small), format_count(bias.s_max)
    if bias.direction == "above":
        return (f"At S = {s} the estimate lies {format_nats(bias.mean)} above the one at S = {top} (mean over the "
                "images): it overestimates the NLL at small S and falls as S grows, as it should (the average of "
                "a few weights tends to miss the rare large ones).")
    if bias.direction == "below":
        return (f"At S = {s} the estimate lies {format_nats(-bias.mean)} below the one at S = {top}: it rose as S "
                "grew, which the method does not do on average, so a rare sample drawn late moved it; the "
                f"S = {top} figure is itself still uncertain.")
    return (f"At S = {s} the estimate is within {format_nats(BIAS_STANDARD_ERRORS * bias.stderr)} of the one at "
            f"S = {top}: no bias shows at this precision.")


def likelihood_verdict(*, ess_fraction: float, diversity: float | None, bias: Bias) -> Verdict:
    """What the importance-sampling curve says about this model: from ESS / S at the largest S, the sample
    diversity (does the image depend on z at all?) and the measured sign of NLL(S) - NLL(S_max)."""
    facts = {"ess_fraction": ess_fraction, "diversity": diversity, "bias": bias.mean, "direction": bias.direction}
    pct = f"{ess_fraction:.0%}"
    if diversity is not None and diversity < Z_IGNORED_DIVERSITY:
        return Verdict("z_ignored", (
            f"The weights are even (ESS/S = {pct}) because the likelihood barely depends on z: this model's "
            f"samples for one input differ by {format_number(diversity)} (mean pixel distance; 0 means identical), "
            "so every z explains the image about equally well. The estimate settles at once for that reason, "
            "not because q(z|x,y) is close to a posterior: there is hardly anything for z to explain."),
            "info", facts)
    if ess_fraction > EVEN_WEIGHTS:
        head = (f"the weights are even (ESS/S = {pct}): q(z|x,y) is close to the true posterior, so the estimate "
                "settles fast.")
        rule, tone = "even_weights", "success"
    elif ess_fraction > UNEVEN_WEIGHTS:
        head = (f"a few samples carry most of the weight (ESS/S = {pct}): the estimate is noisy; trust it only "
                "where the curve has flattened.")
        rule, tone = "uneven_weights", "info"
    else:
        head = (f"one or two samples carry almost all the weight (ESS/S = {pct}): q(z|x,y) is far from the true "
                "posterior and the estimate should not be trusted, even at the largest S.")
        rule, tone = "degenerate_weights", "warning"
    return Verdict(f"{rule}:{bias.direction}", f"Here {head} {_bias_sentence(bias)}", tone, facts)


# ----------------------------------------------------------------------------- posterior collapse
def _names(dims) -> str:
    names = [f"z{int(d) + 1}" for d in dims]
    return ", ".join(names[:12]) + (", …" if len(names) > 12 else "")


def collapse_verdict(kl_per_dim, variance, threshold: float, *, learned_prior: bool = False) -> Verdict:
    """Which latent dimensions the model uses, from the KL of each and the variance of its posterior mean
    over the data (Burda et al.'s active units); the chart's grey bars are named only where they can be seen."""
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    total, tallest = float(kl.sum()), float(kl.max()) if kl.size else 0.0
    inactive = np.flatnonzero(var <= threshold)
    silent = np.flatnonzero((kl < KL_SILENT_SHARE * max(total, 1e-12)) & (var > threshold))
    facts = {"inactive": inactive.tolist(), "silent": silent.tolist(), "kl_total": total}
    d = len(kl)
    parts = []
    if len(inactive):
        verb = "is" if len(inactive) == 1 else "are"
        worst = float(kl[inactive].max())
        visible = bool((kl[inactive] >= BAR_VISIBLE_SHARE * tallest).any()) if tallest > 0 else False
        bars = ("their bars are grey in the chart" if visible else
                "their bars, greyed in the chart, are too short to see at this scale")
        parts.append(
            f"{len(inactive)} of {d} dimensions {verb} inactive ({_names(inactive)}): their posterior mean hardly "
            f"moves across the data (variance ≤ {threshold:g}), so they carry no information about the image to "
            f"the decoder; their KL is at most {format_nats(worst, 3)} each ({bars}). This is posterior collapse "
            "in those dimensions.")
    if len(silent) and learned_prior:
        parts.append(
            f"{len(silent)} more ({_names(silent)}) vary across the data but carry under {KL_SILENT_SHARE:.0%} of "
            "the KL each: their posterior follows the prior p(z|x), so they tell the decoder nothing beyond what "
            "the input x already says.")
    if parts:
        rule = "inactive" if len(inactive) else "follows_prior"
        return Verdict(rule, " ".join(parts), "warning", facts)
    return Verdict("all_active", f"All {d} dimensions are active: each one's posterior mean varies across the "
                                 "data and each carries KL.", "success", facts)


# ----------------------------------------------------------------------------- two checkpoints
@dataclass(frozen=True)
class Measured:
    """How a checkpoint's stored figures were measured: test images and samples S (None: not recorded)."""

    images: int | None
    samples: int | None
    dataset: str = ""

    def describe(self) -> str:
        images = "an unrecorded number of test images" if self.images is None else \
            f"{format_count(self.images)} test images"
        samples = "S not recorded" if self.samples is None else f"S = {format_count(self.samples)}"
        return f"{images} ({self.dataset}) at {samples}" if self.dataset else f"{images} at {samples}"


def comparison_note(a: Measured, b: Measured) -> Verdict | None:
    """None when A's and B's figures were measured alike (same data set, test images and S); else a warning
    that says how each was measured, since their difference then mixes the models with the measurement."""
    same = (a.images is not None and a.images == b.images and a.samples is not None and a.samples == b.samples
            and a.dataset == b.dataset)
    if same:
        return None
    return Verdict("measured_differently", (
        f"A's figures come from {a.describe()}, B's from {b.describe()}: a difference mixes the two models with "
        "how each was measured, so B − A is left out where the measurement differs."), "warning",
        {"a": (a.images, a.samples), "b": (b.images, b.samples)})


def same_z_verdict(*, related: bool, distance: float, identical: bool = False) -> Verdict:
    """Why the same z gives (un)like pictures under A and B: whether the two files are one and the same,
    whether one model continued the other's training (their latent spaces are the same one) and the measured
    mean pixel distance between their decodings."""
    facts = {"related": related, "distance": distance, "identical": identical}
    d = format_number(distance)
    if identical:
        return Verdict("same_file", "The two files are byte for byte the same model, so the same z gives the same "
                                    f"pictures (mean pixel distance {d}).", "info", facts)
    if related:
        return Verdict("continued", (
            f"One of these models continued the other's training, so they share a latent space: the same z "
            f"should give similar pictures (mean pixel distance {d})."), "info", facts)
    if distance < SAME_PICTURE_DISTANCE:
        return Verdict("separate_but_alike", (
            f"These models were trained separately, yet the same z decodes alike here (mean pixel distance {d})."),
            "info", facts)
    return Verdict("separate", (
        f"These models were trained separately, so the same z need not mean the same thing to both: a latent "
        f"space is only defined up to rotation, reflection and stretching, and each run settles on its own. The "
        f"pictures differ by design (mean pixel distance {d}); compare the figures below, not the pictures."),
        "info", facts)


# ----------------------------------------------------------------------------- promised times
def time_promise(measured_seconds: float | None, *, what: str = "A run with these settings") -> str:
    """A time a page may promise: only one measured here (the last finished run with the same settings),
    else a sentence that promises none and says where the measured time will show."""
    if measured_seconds is None or not math.isfinite(measured_seconds) or measured_seconds <= 0:
        return "Once it starts, the progress bar shows the time it has left, measured as it goes."
    return f"{what} took {format_duration(measured_seconds)} on this server last time."

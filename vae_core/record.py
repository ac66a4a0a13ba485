"""The checkpoint record: what a checkpoint says about its model, built and read here and nowhere else.

A checkpoint file (vae_core/checkpoints.py) holds the weights as tensors and, in its header, this record
as JSON under the key 'latent_lab':

    {"format": "latent-lab-checkpoint", "format_version": 1, "model_config": {...}, "train_config": {...} | null,
     "dataset": "mnist", "name": ..., "metrics": {...}, "history": {"step": [...], "loss": [...], ...,
     "epochs": [{"epoch": 0, "train": {...}, "eval": {...}}, ...]}, "command": ..., ...}

`CheckpointRecord` is the typed form. The CLI and the app build it with `record_from_fit`; every reader
(pages, reports, the CLI) uses its fields and accessors (`metric`, `mean_metric`, `nll`, `latent_means`, ...)
rather than string keys. Reading validates the whole record against a schema with a bound on every field
(pydantic), so a hostile or damaged header becomes one `CheckpointError` sentence before anything is built.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from .config import DATASETS, ModelConfig, TrainConfig, variant_info
from .validation import error_sentence, one_line

FORMAT = "latent-lab-checkpoint"
FORMAT_VERSION = 1
MAX_CURVE_POINTS = 2000        # per-step curves are thinned to this many points when a record is built
MAX_STORED_POINTS = 200_000    # ... and a file may hold at most this many (a bound for hostile headers)
MAX_EPOCH_RECORDS = 100_000


MAX_MESSAGE_CHARS = 600
MAX_SNAPSHOTS = 10             # a run's snapshots for animations: at most this many moments ...
MAX_SNAPSHOT_POINTS = 500      # ... each with the latent means of at most this many evaluation images
MAX_SNAPSHOT_SIDE = 1024       # ... and a preview grid at most this many pixels a side
MAX_SNAPSHOT_BYTES = 1_500_000  # ... and all of it (uint8 previews, float16 means) within this many bytes


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of the wrong format, or does not match its config.

    The message is one line of at most MAX_MESSAGE_CHARS characters: a hostile header cannot make it echo
    a 200,000-character value (or a newline) back to the page or the terminal."""

    def __init__(self, message: str = "") -> None:
        super().__init__(one_line(message, MAX_MESSAGE_CHARS))


# ----------------------------------------------------------------------------- the schema's pieces
# a whole number stays whole (counts such as 'samples'); NaN is allowed (a diverged run's loss)
Number = Annotated[int, Field(ge=-10**15, le=10**15)] | Annotated[float, Field(allow_inf_nan=True)]
Key = Annotated[str, Field(max_length=64)]
ShortText = Annotated[str, Field(max_length=200)]
Text = Annotated[str, Field(max_length=4000)]
Count = Annotated[int, Field(ge=0, le=10**9)]
Seconds = Annotated[float, Field(ge=0, le=1e9)]
Terms = Annotated[dict[Key, Number], Field(max_length=64)]       # {'loss', 'recon', 'kl', ...}
Metrics = Annotated[dict[Key, Number | Terms], Field(max_length=64)]   # flat, or one block per quadrant count
Curve = Annotated[list[Number], Field(max_length=MAX_STORED_POINTS)]
_STRICT = ConfigDict(extra="ignore", arbitrary_types_allowed=True)


@dataclass(frozen=True, config=_STRICT)
class EpochRecord:
    """The averages of one epoch: training terms, evaluation terms (None without an evaluation set), and
    the KL of each latent dimension on the evaluation set when the run recorded it."""

    epoch: Annotated[int, Field(ge=0, le=MAX_EPOCH_RECORDS)]
    train: Terms
    eval: Terms | None = None
    kl_per_dim: Annotated[list[Number], Field(max_length=1024)] | None = None


@dataclass(frozen=True, config=_STRICT)
class History:
    """The loss curves of a run: per optimiser step (thinned) and per epoch."""

    step: Annotated[list[Count], Field(max_length=MAX_STORED_POINTS)] = dataclasses.field(default_factory=list)
    loss: Curve = dataclasses.field(default_factory=list)
    recon: Curve = dataclasses.field(default_factory=list)
    kl: Curve = dataclasses.field(default_factory=list)
    epochs: Annotated[list[EpochRecord], Field(max_length=MAX_EPOCH_RECORDS)] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"step": list(self.step), "loss": list(self.loss), "recon": list(self.recon), "kl": list(self.kl),
                "epochs": [{k: v for k, v in dataclasses.asdict(e).items() if v is not None or k == "eval"}
                           for e in self.epochs]}


SOURCE_KINDS = ("fc-vae", "timbmg", "keras-h5", "onnx")
SOURCE_TITLES = {"fc-vae": "a PyTorch fc1/fc21/fc22/fc3/fc4 VAE", "timbmg": "a timbmg/VAE-CVAE-MNIST model",
                 "keras-h5": "a Keras HDF5 VAE", "onnx": "PyTorch code, as ONNX graphs"}


@dataclass(frozen=True, config=_STRICT)
class ModelSource:
    """Where a model trained by other code came from (vae_core/importers.py): the importer (`kind`: one of
    SOURCE_KINDS; "onnx" for any model carried as ONNX graphs, see vae_core/external.py), the original file's
    name (no folder), its SHA-256, and the code that defined it (e.g. 'my_vae.py:build' or a class name)."""

    kind: Literal[SOURCE_KINDS]  # type: ignore[valid-type]
    file: ShortText = ""
    sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""
    code: ShortText = ""

    def describe(self) -> str:
        """'imported from vae.pt (a PyTorch fc1/fc21/fc22/fc3/fc4 VAE)'."""
        return f"imported from {self.file or 'Python'} ({SOURCE_TITLES[self.kind]})"


@dataclass(frozen=True, config=_STRICT)
class SnapshotInfo:
    """One moment of a run kept for animations (its pictures are the extras snapshot_previews[k] and
    snapshot_means[k]): the epochs completed then (0: after the first step) and a caption."""

    epoch: Annotated[int, Field(ge=0, le=MAX_EPOCH_RECORDS)]
    caption: ShortText = ""


@dataclasses.dataclass(frozen=True)
class TrainingSnapshot:
    """A run at one moment, as training_frames animates it: the sample grid (uint8 [H, W]) and the latent
    means [N, D] (float32) of a fixed set of evaluation images with their labels [N], or None."""

    epoch: int
    caption: str
    preview: np.ndarray
    means: np.ndarray | None
    labels: np.ndarray | None


@dataclass(frozen=True, config=_STRICT)
class CheckpointRecord:
    """Everything a checkpoint says about its model. `path` and `extras` (the extra tensors, e.g. the test
    set's latent means) are filled in when it is read from a file; they are not part of the JSON."""

    model_config: ModelConfig
    dataset: Literal[DATASETS] = "mnist"  # type: ignore[valid-type]
    train_config: TrainConfig | None = None
    name: ShortText = ""
    description: Text = ""
    command: Text = ""
    status: Annotated[str, Field(max_length=32)] = ""
    message: Text = ""
    epochs_completed: Count | None = None
    train_seconds: Seconds | None = None
    wall_seconds: Seconds | None = None
    images_per_sec: Annotated[float, Field(ge=0, le=1e12)] | None = None
    float16_max_abs_diff: Annotated[float, Field(ge=0, le=1)] | None = None
    storage_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    metrics: Metrics = dataclasses.field(default_factory=dict)
    metrics_test1000: Metrics = dataclasses.field(default_factory=dict)
    history: History = dataclasses.field(default_factory=History)
    snapshots: Annotated[list[SnapshotInfo], Field(max_length=MAX_SNAPSHOTS)] = dataclasses.field(default_factory=list)
    source: ModelSource | None = None    # set for a model trained by other code and imported
    format: Literal["latent-lab-checkpoint"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    path: str | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    @field_validator("model_config", mode="before")
    @classmethod
    def _model_config(cls, value):
        return ModelConfig.from_dict(value) if isinstance(value, dict) else value

    @field_validator("train_config", mode="before")
    @classmethod
    def _train_config(cls, value, info):
        """A TrainConfig, with a beta of None (the variant's default) resolved: a record states the beta used."""
        config = TrainConfig.from_dict(value) if isinstance(value, dict) else value
        model = info.data.get("model_config")
        if isinstance(config, TrainConfig) and isinstance(model, ModelConfig):
            config = config.for_variant(model.variant)
        return config

    # ------------------------------------------------------------------ writing
    def to_json(self) -> str:
        """The header text (path and extras are not stored)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("path", "extras")}
        out["model_config"] = self.model_config.to_dict()
        out["train_config"] = None if self.train_config is None else self.train_config.to_dict()
        out["history"] = self.history.to_dict()
        out["snapshots"] = [dataclasses.asdict(sn) for sn in self.snapshots]
        out["source"] = None if self.source is None else dataclasses.asdict(self.source)
        return json.dumps(_plain(out), allow_nan=True)

    def located(self, path: str | Path, extras: dict[str, Any] | None = None) -> "CheckpointRecord":
        """This record as read from `path`, with its extra tensors."""
        return dataclasses.replace(self, path=str(path), extras=dict(extras or {}))

    # ------------------------------------------------------------------ reading
    @property
    def display_name(self) -> str:
        """The name people see: the stored name, else the file's stem."""
        return self.name or (Path(self.path).stem if self.path else self.model_config.variant)

    def describe(self) -> str:
        """One line for people: the stored description, else one built from the variant registry."""
        if self.description:
            return self.description
        cfg = self.model_config
        given = {"none": "", "label": " given the digit label", "quadrants": " completing hidden quadrants"}
        latent = f", {cfg.latent_dim}-D latent" if cfg.has_latent else ""
        return f"{variant_info(cfg.variant).title}{given.get(cfg.condition, '')}{latent}"

    @property
    def is_onnx(self) -> bool:
        """The model travels as ONNX graphs (vae_core/external.py), not as Latent Lab's own networks."""
        return self.source is not None and self.source.kind == "onnx"

    def origin(self) -> str | None:
        """Where an imported model came from, in words (None for a model Latent Lab trained)."""
        return None if self.source is None else self.source.describe()

    @property
    def epochs_trained(self) -> int | None:
        if self.epochs_completed is not None:
            return self.epochs_completed
        return None if self.train_config is None else self.train_config.epochs

    def metric_block(self, quadrants: int | None = None, *, test1000: bool = False) -> dict | None:
        """The metrics of one evaluation: for a quadrant model trained on 1-3 quadrants, the block of
        `quadrants` visible quadrants (None when it was not evaluated there); otherwise the flat metrics."""
        metrics = self.metrics_test1000 if test1000 else self.metrics
        cfg = self.model_config
        if cfg.condition != "quadrants" or quadrants is None:
            return metrics
        if cfg.quadrants == 0:
            block = metrics.get(f"q{quadrants}")
            return block if isinstance(block, dict) else None
        return metrics if cfg.quadrants == quadrants else None

    def metric(self, key: str, quadrants: int | None = None) -> float | None:
        """One finite stored figure, or None."""
        block = self.metric_block(quadrants)
        value = None if block is None else block.get(key)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def mean_metric(self, key: str) -> float | None:
        """A stored figure, or its mean over the q1/q2/q3 blocks of a model evaluated per quadrant count."""
        direct = self.metric(key)
        if direct is not None:
            return direct
        values = [b[key] for b in self.metrics.values()
                  if isinstance(b, dict) and isinstance(b.get(key), (int, float)) and math.isfinite(b[key])]
        return float(sum(values) / len(values)) if values else None

    def nll(self, method: str = "is", quadrants: int | None = None) -> float | None:
        """The stored negative (conditional) log-likelihood by 'is' or 'mc'. A baseline is deterministic:
        both estimators are exact and equal, so 'is' falls back to 'mc'."""
        value = self.metric(f"nll_{method}", quadrants)
        if value is None and not self.model_config.has_latent:
            value = self.metric("nll_mc", quadrants)
        return value

    @property
    def samples(self) -> int | None:
        """S, the samples per example behind the stored likelihoods."""
        for block in [self.metrics, *[v for v in self.metrics.values() if isinstance(v, dict)]]:
            if isinstance(block.get("samples"), (int, float)) and math.isfinite(block["samples"]):
                return int(block["samples"])
        return None

    @property
    def beta(self) -> float | None:
        """β, the weight of the KL term it was trained with (None without a training config)."""
        return None if self.train_config is None else float(self.train_config.beta)

    @property
    def test_images(self) -> int | None:
        """How many test images the stored figures were computed on, when the record says (the CLI and the Train
        page store it as metrics['test_images']); None when it does not."""
        value = self.metrics.get("test_images")
        return int(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else None

    def rate_distortion(self) -> tuple[float, float] | None:
        """(rate, distortion) in nats per image: the stored KL term and reconstruction term of the ELBO (Alemi et
        al. 2018, "Fixing a Broken ELBO"); their sum is the stored -ELBO. None when either is missing."""
        rate, distortion = self.metric("kl"), self.metric("recon")
        return None if rate is None or distortion is None else (rate, distortion)

    def sweep_key(self) -> str | None:
        """What a β sweep's members share: the data set, the whole model config and every training setting but β.
        Two records with the same key differ only in β. None for a model that cannot be in a β sweep (no
        training config, or an objective without a KL term)."""
        if self.train_config is None or not variant_info(self.model_config.variant).uses_kl:
            return None
        settings = {k: v for k, v in self.train_config.to_dict().items() if k != "beta"}
        return json.dumps([self.dataset, self.model_config.to_dict(), settings], sort_keys=True)

    def latent_means(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The test set's stored latent means [N, D] and labels [N], or None when the file has none.
        load_checkpoint has already checked their shapes and label range."""
        mu, labels = self.extras.get("test_latent_means"), self.extras.get("test_labels")
        if mu is None or labels is None:
            return None
        return mu.float().numpy(), labels.long().numpy()


    def training_snapshots(self) -> list[TrainingSnapshot]:
        """The run's stored snapshots in order (empty when the file has none, or when its pictures do not
        match the record's list; load_checkpoint has already bounded their shapes)."""
        previews = self.extras.get("snapshot_previews")
        if previews is None or len(previews) != len(self.snapshots) or not len(self.snapshots):
            return []
        means, labels = self.extras.get("snapshot_means"), self.extras.get("snapshot_labels")
        if means is not None and (len(means) != len(self.snapshots) or labels is None):
            means = None
        return [TrainingSnapshot(sn.epoch, sn.caption, previews[k].numpy().astype(np.uint8),
                                 None if means is None else means[k].float().numpy(),
                                 None if means is None else labels.long().numpy())
                for k, sn in enumerate(self.snapshots)]


def snapshot_extras(snapshots: list[tuple[int, str, np.ndarray, np.ndarray | None, np.ndarray | None]]
                    ) -> tuple[list[SnapshotInfo], dict[str, np.ndarray]]:
    """(record field, extras) for a run's snapshots [(epoch, caption, preview uint8 [H, W], means [N, D] or
    None, labels [N] or None)], bounded: at most MAX_SNAPSHOTS (evenly thinned, the first and last kept), at
    most MAX_SNAPSHOT_POINTS means each (the first ones), previews of one size (padded to the largest) and
    the whole within MAX_SNAPSHOT_BYTES (fewer snapshots kept when it is not)."""
    if not snapshots:
        return [], {}
    keep = snapshots
    while True:
        if len(keep) > MAX_SNAPSHOTS:
            idx = np.unique(np.linspace(0, len(keep) - 1, MAX_SNAPSHOTS).round().astype(int))
            keep = [keep[i] for i in idx]
        h = min(MAX_SNAPSHOT_SIDE, max(p.shape[0] for _, _, p, _, _ in keep))
        w = min(MAX_SNAPSHOT_SIDE, max(p.shape[1] for _, _, p, _, _ in keep))
        has_means = all(m is not None for _, _, _, m, _ in keep)
        n = min(MAX_SNAPSHOT_POINTS, min(len(m) for _, _, _, m, _ in keep)) if has_means else 0
        d = keep[0][3].shape[1] if has_means else 0
        size = len(keep) * (h * w + 2 * n * d)
        if size <= MAX_SNAPSHOT_BYTES or len(keep) <= 2:
            break
        keep = [keep[i] for i in np.unique(np.linspace(0, len(keep) - 1, len(keep) - 1).round().astype(int))]
    previews = np.full((len(keep), h, w), 48, np.uint8)
    for k, (_, _, p, _, _) in enumerate(keep):
        p = np.asarray(p, np.uint8)[:h, :w]
        previews[k, :p.shape[0], :p.shape[1]] = p
    extras = {"snapshot_previews": previews}
    if has_means and n:
        extras["snapshot_means"] = np.stack([np.asarray(m[:n], np.float32) for _, _, _, m, _ in keep]).astype(np.float16)
        extras["snapshot_labels"] = np.asarray(keep[0][4][:n]).astype(np.int64)
    return [SnapshotInfo(int(e), str(c)[:200]) for e, c, _, _, _ in keep], extras


_RECORD = TypeAdapter(CheckpointRecord)


def beta_sweeps(records: list[CheckpointRecord]) -> list[list[CheckpointRecord]]:
    """The β sweeps among some records: groups of two or more that differ only in β (CheckpointRecord.sweep_key),
    each sorted by β with one record per β value (the first one given wins a tie), groups in order of first
    appearance. A sweep is found from what the records say, never from file names."""
    groups: dict[str, dict[float, CheckpointRecord]] = {}
    for record in records:
        key = record.sweep_key()
        if key is not None:
            groups.setdefault(key, {}).setdefault(record.beta, record)
    return [[members[b] for b in sorted(members)] for members in groups.values() if len(members) >= 2]


def parse_record(text: str, source: str = "the checkpoint") -> CheckpointRecord:
    """The record in a header's JSON text, validated; CheckpointError with a sentence otherwise."""
    try:
        raw = json.loads(text)
    except RecursionError:
        raise CheckpointError(f"{source} has a damaged model record: it is nested too deeply.") from None
    except ValueError as e:  # JSONDecodeError, and integers too long to convert
        raise CheckpointError(f"{source} has a damaged model record: {e}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a Latent Lab checkpoint.")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{source} has checkpoint format version {version!r}; this Latent Lab reads "
                              f"version {FORMAT_VERSION}.")
    try:
        return _RECORD.validate_python(raw)
    except ValidationError as e:
        raise CheckpointError(f"{source} has {_first_error(e)}") from None
    except (ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(f"{source} has an invalid model record: {e}") from None


_PARTS = {"model_config": "an invalid model config", "train_config": "an invalid training config"}


def _first_error(error: ValidationError) -> str:
    """'an invalid model config: latent_dim (latent dimensions) must be ...; got 0.' from pydantic's complaints,
    in the one sentence form of vae_core/validation.py."""
    loc = error.errors(include_url=False)[0].get("loc", ())
    what = _PARTS.get(loc[0] if loc else "", "an invalid model record")
    return f"{what}: {error_sentence(error, CheckpointRecord)}"


# ----------------------------------------------------------------------------- building
def thin(values: list, limit: int = MAX_CURVE_POINTS) -> list:
    """At most `limit` evenly spaced items of a list (the first one kept)."""
    values = list(values)
    if len(values) <= limit:
        return values
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def compact_history(history: dict) -> History:
    """A fit history ({'step', 'loss', 'recon', 'kl': per step, 'epochs': per epoch}) as stored: per-step
    curves thinned to MAX_CURVE_POINTS, per-epoch records kept whole."""
    return History(**{k: thin(history.get(k, [])) for k in ("step", "loss", "recon", "kl")},
                   epochs=[EpochRecord(**e) for e in history.get("epochs", [])])


def record_from_fit(model_config: ModelConfig, train_config: TrainConfig, result, *, name: str = "",
                    description: str = "", command: str = "", **fields) -> CheckpointRecord:
    """The record of a model trained by vae_core.fit: configs, data set, outcome, thinned history, and any
    other record field given by keyword (metrics, metrics_test1000, wall_seconds, storage_dtype, ...)."""
    return CheckpointRecord(
        model_config=model_config, train_config=train_config, dataset=train_config.dataset, name=name,
        description=description, command=command, status=result.status, message=result.message,
        epochs_completed=result.epochs_completed, train_seconds=round(result.elapsed, 2),
        images_per_sec=round(result.images_per_sec, 1), history=compact_history(result.history),
        **{k: _plain(v) for k, v in fields.items()})


def _plain(obj: Any) -> Any:
    """Tensors, numpy scalars and tuples as plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist):  # tensors and numpy arrays / scalars
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return obj

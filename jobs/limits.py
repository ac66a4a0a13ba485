"""Limits a teacher can set (README: "Training as jobs"), read from a TOML file and environment variables.

The file is `.streamlit/latent_lab.toml` beside app.py (another path: LATENT_LAB_CONFIG); its `[limits]` table
takes the keys below in lower case without the prefix (`max_runs = 2`). An environment variable wins over the
file; a missing file (at the default path) means the defaults. Every limit has a range. A bad file, an unknown
key or a value out of range is a LimitsError whose text is one sentence naming the file and key (or the
variable), the range and the bad value (quoted to at most about 100 characters), which the Train page shows.

    variable                       what                                range                  default
    LATENT_LAB_MAX_RUNS            runs training at once               1 to 4 × CPU cores     CPU cores - 1, at least 1
    LATENT_LAB_MAX_QUEUED          runs waiting for a free slot        0 to 1,000             20
    LATENT_LAB_MAX_WEIGHTS         weights per model                   1 to 200,000,000       20,000,000
    LATENT_LAB_MAX_RUN_SECONDS     seconds of one run, 0 for no limit  0 to 604,800 (7 days)  3600
    LATENT_LAB_ABANDON_SECONDS     seconds without a poll before a     0.1 to 86,400 (1 day)  600 (10 minutes)
                                   run stops, keeping its weights
    LATENT_LAB_WORKER_THREADS      torch threads per worker            1 to CPU cores         (cores-1)//max runs, >= 1
    LATENT_LAB_WORKER_NICE         CPU priority drop of a worker       0 to 19                10 (0: as the server)
    LATENT_LAB_RUNNER              where runs train                    local or ray           local
    LATENT_LAB_WARM_WORKER         fork workers from a fork server     true or false          true (1)
                                   with torch and MNIST loaded

A limit is one field of `Limits` below, with its range and words; tests/jobs/test_table_and_limits.py checks
this table, the shipped .streamlit/latent_lab.toml and README.md against the fields.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Mapping

from pydantic import Field

from vae_core import ModelConfig
from vae_core.cpu import cpu_cores
from vae_core.validation import Flag, Number, OneOf, SettingError, Whole, build, quote, settings

PREFIX = "LATENT_LAB_"
CONFIG_VAR = PREFIX + "CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "latent_lab.toml"
TABLE = "limits"
MAX_FILE_BYTES = 65_536
RUNNERS = ("local", "ray")
FALSE_WORDS, TRUE_WORDS = ("0", "false", "no", "off"), ("1", "true", "yes", "on")


class LimitsError(SettingError):
    """A bad limits file or value; its text is one sentence for the Train page."""


CORES = cpu_cores()   # the machine's, when the server starts: the ranges of max_runs and worker_threads
DAY = 86_400


@settings(kw_only=True)
class Limits:
    """The limits of this server: one line per limit, its range and words (the file's key is the field's name;
    its variable, PREFIX + the name in capitals)."""

    max_runs: Annotated[int, Whole(1, 4 * CORES, "runs training at once", high_words="4 × CPU cores")] = Field(
        default_factory=lambda: max(1, CORES - 1))
    max_queued: Annotated[int, Whole(0, 1000, "runs waiting for a free slot")] = 20
    max_weights: Annotated[int, Whole(1, 200_000_000, "weights per model")] = 20_000_000
    max_run_seconds: Annotated[float, Number(0, 7 * DAY, "seconds of one run, 0 for no limit",
                                             span="0 to 604,800 (7 days)")] = 3600.0
    abandon_seconds: Annotated[float, Number(0.1, DAY, "seconds without a poll before a run stops",
                                             span="0.1 to 86,400 (1 day)")] = 600.0
    worker_threads: Annotated[int, Whole(1, CORES, "torch threads per worker", high_words="CPU cores")] = Field(
        default_factory=lambda given: max(1, (CORES - 1) // given["max_runs"]))
    worker_nice: Annotated[int, Whole(0, 19, "CPU priority drop of a worker")] = 10
    runner: Annotated[str, OneOf(RUNNERS, "where runs train", rule="be 'local' or 'ray'", fold_case=True)] = "local"
    warm_worker: Annotated[bool, Flag("fork workers from a fork server")] = True

    def describe(self) -> str:
        """One line for the Train page."""
        run_time = "no time limit" if not self.max_run_seconds else f"at most {_minutes(self.max_run_seconds)} a run"
        return (f"{self.max_runs} run{'s' * (self.max_runs != 1)} at once, {self.max_queued} waiting at most, "
                f"{self.max_weights:,} weights per model, {run_time}; a run nobody watches for "
                f"{_minutes(self.abandon_seconds)} stops and keeps its weights.")


# the keys of the file's [limits] table and, upper-cased with PREFIX, the environment variables
KEYS = tuple(Limits.__pydantic_fields__)


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} minutes"


def config_path(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The limits file and whether it was named (LATENT_LAB_CONFIG) rather than the default one."""
    env = os.environ if env is None else env
    named = env.get(CONFIG_VAR, "").strip()
    return (Path(named).expanduser(), True) if named else (DEFAULT_CONFIG, False)


def read_config(path: Path, required: bool = False) -> dict:
    """The [limits] table of a TOML file ({} when the file is missing and not required); LimitsError otherwise."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:  # tomllib would take seconds over a file of megabytes
                raise LimitsError(f"The limits file {path} is {size:,} bytes; a limits file may be at most "
                                  f"{MAX_FILE_BYTES:,}.")
            data = tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise LimitsError(f"The limits file {path} named by {CONFIG_VAR} does not exist.") from None
        return {}
    except tomllib.TOMLDecodeError as e:
        raise LimitsError(f"The limits file {path} is not valid TOML ({e}).") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise LimitsError(f"The limits file {path} could not be read ({reason.lower()}).") from None
    extra = sorted(k for k in data if k != TABLE)
    if extra:
        raise LimitsError(f"The limits file {path} has {_what(extra[0], data)} {quote(extra[0])}; it may hold only "
                          f"a [{TABLE}] table.")
    table = data.get(TABLE, {})
    if not isinstance(table, dict):
        raise LimitsError(f"In the limits file {path}, {TABLE} must be a table ([{TABLE}]), not a single value.")
    unknown = sorted(k for k in table if k not in KEYS)
    if unknown:
        raise LimitsError(f"In the limits file {path}, [{TABLE}] has an unknown key {quote(unknown[0])}; the keys "
                          f"are {', '.join(KEYS)}.")
    return table


def _what(key: str, data: dict) -> str:
    return "a table" if isinstance(data[key], dict) else "a key"


def _from_text(raw: str, key: str):
    """An environment variable's text as the value its limit takes (int, float or bool); text that is not one
    stays text, so that the limit's sentence quotes it."""
    raw = raw.strip()
    kind = Limits.__pydantic_fields__[key].annotation
    if kind is bool:
        word = raw.lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else raw
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:  # not a number (or an int of more than 4,300 digits)
            return raw
    return raw


def read_limits(env: Mapping[str, str] | None = None, config: str | Path | None = None) -> Limits:
    """The limits: the defaults, then the file's [limits] table, then the LATENT_LAB_* variables of `env`
    (default os.environ). `config` is the file (default: LATENT_LAB_CONFIG, else .streamlit/latent_lab.toml,
    which may be missing). A bad file or value raises LimitsError, one sentence naming the file and key."""
    env = os.environ if env is None else env
    if config is None:
        path, required = config_path(env)
    else:
        path, required = Path(config), False
    values = read_config(path, required)
    where = {key: f"In the limits file {path}, [{TABLE}] {key}" for key in values}
    typed: dict[str, str] = {}
    for key in KEYS:
        raw = env.get(PREFIX + key.upper(), "")
        if raw.strip():
            values[key], typed[key], where[key] = _from_text(raw, key), raw.strip(), PREFIX + key.upper()
    return build(Limits, values, given=typed, name=lambda key: where.get(key, key), error=LimitsError)


def count_weights(config: ModelConfig) -> int:
    """The number of weights of a model, without allocating them (built on torch's meta device)."""
    import torch

    from vae_core import build_model

    with torch.device("meta"):
        model = build_model(config, seed=None)
    return sum(p.numel() for p in model.parameters())


def weights_problem(config: ModelConfig, limits: Limits) -> str | None:
    """A sentence when the model is larger than the limit, else None."""
    n = count_weights(config)
    if n <= limits.max_weights:
        return None
    return (f"This model has {n:,} weights; the limit here is {limits.max_weights:,}. Use fewer or smaller "
            f"hidden layers (the limit is set by {PREFIX}MAX_WEIGHTS or max_weights in .streamlit/latent_lab.toml).")

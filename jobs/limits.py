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
    LATENT_LAB_RUNS_PER_PERSON     one person's runs training at once  1 to 100               1
    LATENT_LAB_QUEUED_PER_PERSON   one person's runs waiting           0 to 1,000             1

A limit is one field of `Limits` below, with its range and words; tests/jobs/test_table_and_limits.py checks
this table, the shipped .streamlit/latent_lab.toml and README.md (docs/CLASSROOM.md for a class's limits) against
the fields. runs_per_person and queued_per_person are one person's share inside max_runs and max_queued (Slurm's
per-user limits), counted by the job table in the same transaction as the class's caps.

The same file's `[class]` table (docs/CLASSROOM.md) turns on a class: `code`, the class code a student types with
a name (used when .streamlit/secrets.toml has no `[auth]`); `teacher_code`, typed instead of the class code, signs
a teacher in; `teachers`, the e-mail addresses (or OIDC subjects) of the teachers when people sign in with
`[auth]`. `read_class` reads it; a bad value is a LimitsError too. Without a `[class]` table nothing changes.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
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
CLASS_TABLE = "class"
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
    runs_per_person: Annotated[int, Whole(1, 100, "one person's runs training at once")] = 1
    queued_per_person: Annotated[int, Whole(0, 1000, "one person's runs waiting")] = 1

    def describe(self) -> str:
        """One line for the Train page."""
        run_time = "no time limit" if not self.max_run_seconds else f"at most {_minutes(self.max_run_seconds)} a run"
        return (f"{self.max_runs} run{'s' * (self.max_runs != 1)} at once, {self.max_queued} waiting at most, "
                f"{self.max_weights:,} weights per model, each person {self.runs_per_person} training and "
                f"{self.queued_per_person} waiting, {run_time}; a run nobody watches for "
                f"{_minutes(self.abandon_seconds)} stops and keeps its weights.")

    def share(self) -> str:
        """One person's share, as a sentence's end: '1 run training and 1 waiting'."""
        return (f"{self.runs_per_person} run{'s' * (self.runs_per_person != 1)} training and "
                f"{self.queued_per_person} waiting")


# the keys of the file's [limits] table and, upper-cased with PREFIX, the environment variables
KEYS = tuple(Limits.__pydantic_fields__)
# the [class] table: key -> (kind, (lowest, highest)): a code's length, or how many teachers
CLASS_KEYS = {"code": ("code", (4, 64)), "teacher_code": ("code", (4, 64)), "teachers": ("names", (0, 100))}


@dataclass(frozen=True)
class ClassSettings:
    """The file's [class] table. Empty: no class (one person on a laptop, or [auth] without teachers)."""

    code: str = ""                    # the class code students type with their name (without [auth])
    teacher_code: str = ""            # typed instead of the class code: a teacher (without [auth])
    teachers: tuple[str, ...] = ()    # with [auth]: the teachers' e-mail addresses or subjects, any case

    def is_teacher_email(self, *ids: str | None) -> bool:
        wanted = {t.strip().casefold() for t in self.teachers}
        return any(i and i.strip().casefold() in wanted for i in ids)


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} minutes"


def config_path(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The limits file and whether it was named (LATENT_LAB_CONFIG) rather than the default one."""
    env = os.environ if env is None else env
    named = env.get(CONFIG_VAR, "").strip()
    return (Path(named).expanduser(), True) if named else (DEFAULT_CONFIG, False)


def read_config(path: Path, required: bool = False, table_name: str = TABLE) -> dict:
    """The [limits] (or `table_name`) table of a TOML file ({} when the file is missing and not required);
    LimitsError otherwise."""
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
    extra = sorted(k for k in data if k not in (TABLE, CLASS_TABLE))
    if extra:
        raise LimitsError(f"The limits file {path} has {_what(extra[0], data)} {quote(extra[0])}; it may hold only "
                          f"a [{TABLE}] and a [{CLASS_TABLE}] table.")
    table = data.get(table_name, {})
    if not isinstance(table, dict):
        raise LimitsError(f"In the limits file {path}, {table_name} must be a table ([{table_name}]), not a "
                          "single value.")
    keys = KEYS if table_name == TABLE else tuple(CLASS_KEYS)
    unknown = sorted(k for k in table if k not in keys)
    if unknown:
        raise LimitsError(f"In the limits file {path}, [{table_name}] has an unknown key {quote(unknown[0])}; the "
                          f"keys are {', '.join(keys)}.")
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


def read_class(env: Mapping[str, str] | None = None, config: str | Path | None = None) -> ClassSettings:
    """The [class] table of the limits file (see read_limits for which file); LimitsError with one sentence
    naming the file and key for a bad value. A code is 4-64 characters without spaces at either end; the
    teacher code must differ from the class code; `teachers` is a list of up to 100 addresses."""
    env = os.environ if env is None else env
    path, required = config_path(env) if config is None else (Path(config), False)
    table = read_config(path, required, CLASS_TABLE)
    values = {}
    for key, value in table.items():
        kind, (low, high) = CLASS_KEYS[key]
        where = f"In the limits file {path}, [{CLASS_TABLE}] {key}"
        if kind == "code":
            if not isinstance(value, str) or value != value.strip() or not low <= len(value) <= high:
                raise LimitsError(f"{where} must be text of {low} to {high} characters without spaces at either "
                                  f"end; got {quote(value)}.")
            values[key] = value
        else:
            if (not isinstance(value, list) or len(value) > high
                    or not all(isinstance(v, str) and 0 < len(v.strip()) <= 254 for v in value)):
                raise LimitsError(f"{where} must be a list of at most {high} e-mail addresses or names in quotes, "
                                  f"like [\"teacher@school.org\"]; got {quote(value)}.")
            values[key] = tuple(v.strip() for v in value)
    if values.get("teacher_code") and values.get("teacher_code") == values.get("code"):
        raise LimitsError(f"In the limits file {path}, [{CLASS_TABLE}] teacher_code must differ from code (anyone "
                          "with the class code would be a teacher).")
    if values.get("teacher_code") and not values.get("code"):
        raise LimitsError(f"In the limits file {path}, [{CLASS_TABLE}] has a teacher_code but no code; add the "
                          "class code the students will type.")
    return ClassSettings(**values)


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

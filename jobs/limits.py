"""Limits a teacher can set (README: "Training as jobs"), read from a TOML file and environment variables.

The file is `.streamlit/latent_lab.toml` beside app.py (another path: LATENT_LAB_CONFIG); its `[limits]` table
takes the keys below in lower case without the prefix (`max_runs = 2`). An environment variable wins over the
file; a missing file (at the default path) means the defaults. A bad file, an unknown key or a bad value is a
LimitsError whose text is one sentence naming the file and key (or the variable), which the Train page shows.

    LATENT_LAB_MAX_RUNS            runs training at once            default: CPU cores - 1, at least 1
    LATENT_LAB_MAX_QUEUED          runs waiting for a free slot     default: 20
    LATENT_LAB_MAX_WEIGHTS         weights per model                default: 20,000,000
    LATENT_LAB_MAX_RUN_SECONDS     wall time of one run (0: none)   default: 3600
    LATENT_LAB_ABANDON_SECONDS     a run whose page has not polled  default: 600 (10 minutes)
                                   this long stops, keeping its weights
    LATENT_LAB_WORKER_THREADS      torch threads per worker         default: (cores - 1) // max runs, at least 1
    LATENT_LAB_WORKER_NICE         CPU priority drop of a worker    default: 10 (0: as the server)
    LATENT_LAB_RUNNER              local (default) or ray
    LATENT_LAB_WARM_WORKER         fork workers from a fork server with torch and MNIST loaded  default: 1
    LATENT_LAB_RUNS_PER_PERSON     one person's runs training at once (inside max_runs)      default: 1
    LATENT_LAB_QUEUED_PER_PERSON   one person's runs waiting (inside max_queued)             default: 1

The same file's `[class]` table (docs/CLASSROOM.md) turns on a class: `code`, the class code a student types with
a name (used when .streamlit/secrets.toml has no `[auth]`); `teacher_code`, typed instead of the class code, signs
a teacher in; `teachers`, the e-mail addresses (or OIDC subjects) of the teachers when people sign in with
`[auth]`. `read_class` reads it; a bad value is a LimitsError too. Without a `[class]` table nothing changes.
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from vae_core import ModelConfig

PREFIX = "LATENT_LAB_"
CONFIG_VAR = PREFIX + "CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "latent_lab.toml"
TABLE = "limits"
CLASS_TABLE = "class"
# key -> (kind, lowest value); the keys of the file's [limits] table and, upper-cased with PREFIX, the env vars
KEYS = {"max_runs": ("int", 1), "max_queued": ("int", 0), "max_weights": ("int", 1),
        "max_run_seconds": ("float", 0), "abandon_seconds": ("float", 0.1), "worker_threads": ("int", 1),
        "worker_nice": ("int", 0), "runner": ("runner", None), "warm_worker": ("bool", None),
        "runs_per_person": ("int", 1), "queued_per_person": ("int", 0)}
# the [class] table: key -> (kind, (lowest, highest)): a code's length, or how many teachers
CLASS_KEYS = {"code": ("code", (4, 64)), "teacher_code": ("code", (4, 64)), "teachers": ("names", (0, 100))}
RUNNERS = ("local", "ray")
FALSE_WORDS, TRUE_WORDS = ("0", "false", "no", "off"), ("1", "true", "yes", "on")


class LimitsError(ValueError):
    """A bad limits file or value; its text is one sentence for the Train page."""


def cpu_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    max_runs: int
    max_queued: int
    max_weights: int
    max_run_seconds: float
    abandon_seconds: float
    worker_threads: int
    worker_nice: int
    runner: str
    warm_worker: bool = True
    runs_per_person: int = 1
    queued_per_person: int = 1

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
        raise LimitsError(f"The limits file {path} has {_what(extra[0], data)} {extra[0]!r}; it may hold only a "
                          f"[{TABLE}] and a [{CLASS_TABLE}] table.")
    table = data.get(table_name, {})
    if not isinstance(table, dict):
        raise LimitsError(f"In the limits file {path}, {table_name} must be a table ([{table_name}]), not a "
                          "single value.")
    keys = KEYS if table_name == TABLE else CLASS_KEYS
    unknown = sorted(k for k in table if k not in keys)
    if unknown:
        raise LimitsError(f"In the limits file {path}, [{table_name}] has an unknown key {unknown[0]!r}; the keys "
                          f"are {', '.join(keys)}.")
    return table


def _what(key: str, data: dict) -> str:
    return "a table" if isinstance(data[key], dict) else "a key"


def _from_env(raw: str, key: str, where: str):
    """A string from an environment variable, checked as KEYS[key] says."""
    kind, low = KEYS[key]
    raw = raw.strip()
    if kind == "runner":
        value = raw.lower()
        if value not in RUNNERS:
            raise LimitsError(f"{where} must be 'local' or 'ray', got {value!r}.")
        return value
    if kind == "bool":
        if raw.lower() not in FALSE_WORDS + TRUE_WORDS:
            raise LimitsError(f"{where} must be 1 or 0 (on or off), got {raw!r}.")
        return raw.lower() in TRUE_WORDS
    try:
        value = (int if kind == "int" else float)(raw)
    except ValueError:
        wanted = "a whole number" if kind == "int" else "a number of seconds"
        raise LimitsError(f"{where} must be {wanted}, got {raw!r}.") from None
    return _at_least(value, low, where, repr(raw))


def _from_file(value, key: str, where: str):
    """A TOML value, checked as KEYS[key] says."""
    kind, low = KEYS[key]
    if kind == "runner":
        if not isinstance(value, str) or value.strip().lower() not in RUNNERS:
            raise LimitsError(f"{where} must be \"local\" or \"ray\", got {value!r}.")
        return value.strip().lower()
    if kind == "bool":
        if not isinstance(value, bool):
            raise LimitsError(f"{where} must be true or false, got {value!r}.")
        return value
    ok = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok):
        wanted = "a whole number" if kind == "int" else "a number of seconds"
        raise LimitsError(f"{where} must be {wanted}, got {value!r}.")
    return _at_least(value, low, where, repr(value))


def _at_least(value, low, where: str, shown: str):
    if not math.isfinite(value) or value < low:
        raise LimitsError(f"{where} must be at least {low}, got {shown}.")
    return value


def read_limits(env: Mapping[str, str] | None = None, config: str | Path | None = None) -> Limits:
    """The limits: the defaults, then the file's [limits] table, then the LATENT_LAB_* variables of `env`
    (default os.environ). `config` is the file (default: LATENT_LAB_CONFIG, else .streamlit/latent_lab.toml,
    which may be missing). A bad file or value raises LimitsError, one sentence naming the file and key."""
    env = os.environ if env is None else env
    if config is None:
        path, required = config_path(env)
    else:
        path, required = Path(config), False
    values = {key: _from_file(value, key, f"In the limits file {path}, [{TABLE}] {key}")
              for key, value in read_config(path, required).items()}
    for key in KEYS:
        raw = env.get(PREFIX + key.upper(), "")
        if raw.strip():
            values[key] = _from_env(raw, key, PREFIX + key.upper())
    cores = cpu_cores()
    max_runs = int(values.get("max_runs", max(1, cores - 1)))
    return Limits(
        max_runs=max_runs,
        max_queued=int(values.get("max_queued", 20)),
        max_weights=int(values.get("max_weights", 20_000_000)),
        max_run_seconds=float(values.get("max_run_seconds", 3600.0)),
        abandon_seconds=float(values.get("abandon_seconds", 600.0)),
        worker_threads=int(values.get("worker_threads", max(1, (cores - 1) // max_runs))),
        worker_nice=int(values.get("worker_nice", 10)),
        runner=values.get("runner", "local"),
        warm_worker=bool(values.get("warm_worker", True)),
        runs_per_person=int(values.get("runs_per_person", 1)),
        queued_per_person=int(values.get("queued_per_person", 1)),
    )


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
                                  f"end, got {value!r}.")
            values[key] = value
        else:
            if (not isinstance(value, list) or len(value) > high
                    or not all(isinstance(v, str) and 0 < len(v.strip()) <= 254 for v in value)):
                raise LimitsError(f"{where} must be a list of at most {high} e-mail addresses or names in quotes, "
                                  f"like [\"teacher@school.org\"], got {value!r}.")
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

"""The Train page's side of training jobs (jobs/ runs them): the process's job service for the models folder,
the person's own folder, and small parsers and formatters.

Runs and models belong to the signed-in person (ui/identity.py; jobs/classroom.py), never to a token in a URL.
The page never runs a training step: it submits a job, polls its snapshot from a fragment and draws it.
"""
from __future__ import annotations

import re
from pathlib import Path

from jobs.api import JobService, check_name, job_service  # noqa: F401  (check_name: re-exported for pages)
from jobs.classroom import Person, owner_folder
from ui.model_catalogue import save_dir
from vae_core.validation import SettingError, quote


def jobs() -> JobService:
    """The job service of the folder the Train page saves into (runs/jobs.sqlite beside the models)."""
    return job_service(save_dir())


def my_models_folder(person: Person) -> Path:
    """Where `person` saves: runs/ for one person on a laptop, runs/<their folder>/ in a class."""
    return owner_folder(save_dir(), person)


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 512' -> (512, 512); a sentence in a ValueError otherwise."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        raise SettingError("hidden layers must be whole numbers separated by commas, like 512, 512; "
                           f"got {quote(text)}.")
    return tuple(int(p) for p in parts)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

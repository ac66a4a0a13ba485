"""The Train page's side of training jobs (jobs/ runs them): the process's job service for the models folder,
the person's own folder, and small parsers and formatters.

Runs and models belong to the signed-in person (ui/identity.py; jobs/classroom.py), never to a token in a URL.
The page never runs a training step: it submits a job, polls its snapshot from a fragment and draws it.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import streamlit as st

from jobs.api import JobService, JobStoreError, check_name, job_service  # noqa: F401  (re-exported for pages)
from ui.model_catalogue import save_dir
from vae_core.validation import SettingError, quote
from vae_core.formatting import format_seconds  # noqa: F401  (re-exported for pages)

# The classroom default run, which Home promises and the Train page opens on: a 2-D VAE (256-256) on all 60,000
# MNIST images for DEFAULT_EPOCHS epochs, batch 128, lr 1e-3; the clusters form in front of the class. Measured
# on this project's 2-core machine with `nice -n 19` and one torch thread at load 0.7: test loss (2,000 images)
# 163.5, 157.4, 153.9, 151.6 nats after epochs 1-4, 21.8 s wall; under a load of 10 the same job took 182 s in
# the app (bench/jobs_speed.py). No page promises a time it did not measure (last_run_seconds).
DEFAULT_EPOCHS = 4


def jobs() -> JobService:
    """The job service of the folder the Train page saves into (runs/jobs.sqlite beside the models)."""
    return job_service(save_dir())


@contextmanager
def job_store_sentences():
    """Around a page's use of the job table: a fault of the table (busy, read-only, a disk error) is shown as the
    table's one sentence, and the rest of the page (or fragment) is not drawn; never a traceback."""
    try:
        yield
    except JobStoreError as e:
        st.error(str(e), icon=":material/database:")
        st.stop()


def show_table_notice(service: JobService) -> None:
    """A recent repair of the job table (deleted or damaged, then started anew), said once per page run."""
    note = service.notice()
    if note:
        st.warning(note, icon=":material/database:")


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 512' -> (512, 512); a sentence in a ValueError otherwise."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        raise SettingError("hidden layers must be whole numbers separated by commas, like 512, 512; "
                           f"got {quote(text)}.")
    return tuple(int(p) for p in parts)




def last_run_seconds(service: JobService, model_config, train_config) -> float | None:
    """Seconds (start to end, data loading included) of the newest completed run on this server's job table
    with exactly these settings, or None: the only time a page may promise for such a run."""
    from jobs.worker import settings_to_dict

    want = settings_to_dict(model_config, train_config)
    try:
        rows = service.table.recent(200)
    except JobStoreError:   # the table's fault is said once, where the page uses it; no promise here
        return None
    for row in rows:
        if (row.status == "completed" and row.started and row.finished and row.kind == "train"
                and {k: row.settings.get(k) for k in want} == want):
            return row.finished - row.started
    return None

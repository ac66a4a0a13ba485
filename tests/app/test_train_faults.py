"""The Train page when the job table's file misbehaves (issue 19): held by another program, read-only,
deleted or damaged while the server runs. Each is one sentence on the page, never a traceback, and the page
goes on working where it can."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from apptest_helpers import errors_of, texts_of

VIEW = "train_view"


@pytest.fixture
def runs(tmp_path, model_dir, monkeypatch):
    """A fresh runs folder (its own job table) before the fixture models; workers spawned at the test's priority."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", f"{folder}{os.pathsep}{model_dir}")
    monkeypatch.setenv("LATENT_LAB_WARM_WORKER", "0")
    monkeypatch.setenv("LATENT_LAB_WORKER_NICE", "0")
    yield folder
    from jobs.api import shutdown_all
    shutdown_all()


@pytest.fixture
def train(app, runs):
    app.switch_page("pages/train.py").run()
    assert not errors_of(app)
    assert (runs / "jobs.sqlite").is_file()
    return app


def tiny_settings(at):
    at.text_input(key="train_hidden").set_value("16")
    at.number_input(key="train_epochs").set_value(1)
    at.select_slider(key="train_images").set_value(1000)
    return at.run()


def start_and_stop_a_run(at) -> str:
    """Start a run from the page and stop it again (the page can still use the table); wait until it ended (a
    run still stopping when the table is started anew would be put back: the server still runs it)."""
    from ui.training_job import jobs
    at.button(key="train_start").click().run()
    assert not errors_of(at) and not at.error, [e.value for e in at.error]
    job_id = at.session_state[VIEW]
    assert job_id
    at.button(key="train_stop").click().run()
    assert not errors_of(at)
    end = time.monotonic() + 60
    while not jobs().progress(job_id, touch=False).finished:
        assert time.monotonic() < end, "the stopped run did not end within 60 s"
        time.sleep(0.1)
    return job_id


@contextmanager
def scheduler_paused():
    """Hold the job service's scheduler between two ticks (no connection of its own is open then): a file deleted
    while SQLite is opening it can be recreated by that very opening, with the old contents (its WAL)."""
    from ui.training_job import jobs
    service = jobs()
    gate, parked, real = threading.Event(), threading.Event(), service._tick

    def tick(heartbeat):
        parked.set()
        gate.wait()
        real(heartbeat)
    service._tick = tick
    try:
        assert parked.wait(30), "the scheduler did not come round"
        yield
    finally:
        del service._tick
        gate.set()


def checkpoint_fully(path, timeout: float = 30.0) -> None:
    """Copy the write-ahead log back into the file and empty it (retried while a reader holds it)."""
    end = time.monotonic() + timeout
    with sqlite3.connect(path) as db:
        while db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0:
            assert time.monotonic() < end, "the write-ahead log stayed busy"
            time.sleep(0.05)


def damage(path):
    """Garbage over the SQLite header, once the write-ahead log is copied back into the file (while the log
    holds page 1, SQLite reads that page from the log and would not see the damage until its next checkpoint)."""
    checkpoint_fully(path)
    with open(path, "r+b") as f:
        f.write(b"\x00garbage where the SQLite header was" * 4)


def test_a_table_another_program_holds_waits_five_seconds_then_says_so(train, runs):
    """Before: a 15 s hang, then `database is locked` as a traceback on Start."""
    tiny_settings(train)
    holder = sqlite3.connect(runs / "jobs.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")          # a backup tool or a hung process holding the write lock
    try:
        asked = time.monotonic()
        train.run()                             # the page itself does not wait: its "watching" mark is skipped
        assert not errors_of(train) and not train.error
        assert time.monotonic() - asked < 4
        asked = time.monotonic()
        train.button(key="train_start").click().run()
        waited = time.monotonic() - asked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not errors_of(train)
    [sentence] = [e.value for e in train.error]
    assert sentence.startswith(f"The job table {runs / 'jobs.sqlite'} is busy: another program has held its lock "
                               "for over 5 s"), sentence
    assert "Try again in a moment" in sentence and f"fuser {runs / 'jobs.sqlite'}" in sentence
    assert 4.5 < waited < 12, waited
    train.button(key="train_start").click().run()    # the lock is gone: Start works again
    assert not errors_of(train) and not train.error and train.session_state[VIEW]
    train.button(key="train_stop").click().run()


@pytest.fixture
def read_only(runs):
    """Make the runs folder read-only: a read-only bind mount where this test runs as root (root writes through
    file modes), else chmod."""
    done = []

    def make(folder):
        if os.geteuid() == 0:
            first = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
            second = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
            if first.returncode or second.returncode:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)
                pytest.skip(f"cannot make a read-only bind mount here: {(first.stderr + second.stderr).strip()}")
            done.append(("mount", folder))
        else:
            for path in [folder, *folder.iterdir()]:
                done.append(("mode", path, path.stat().st_mode))
                path.chmod(0o555 if path.is_dir() else 0o444)
    yield make
    for item in reversed(done):
        if item[0] == "mount":
            subprocess.run(["umount", "-l", str(item[1])], capture_output=True)
        else:
            item[1].chmod(item[2])


def test_a_read_only_table_says_where_and_what_to_do(train, runs, read_only):
    """Before: a traceback."""
    read_only(runs)
    train.run()
    assert not errors_of(train)
    [sentence] = [e.value for e in train.error]
    assert sentence.startswith(f"The job table {runs / 'jobs.sqlite'} is read-only ("), sentence
    assert f"Make {runs} and the files in it writable by that user" in sentence and "reload this page" in sentence
    assert not [b for b in train.button if b.key == "train_start"]    # nothing is offered that cannot work


def test_a_deleted_table_is_started_anew_and_the_page_says_so(train, runs):
    """Before: `no such table: jobs` for every visitor until a restart."""
    tiny_settings(train)
    first = start_and_stop_a_run(train)
    with scheduler_paused():
        for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
            (runs / name).unlink(missing_ok=True)
    train.run()
    assert not errors_of(train) and not train.error
    notice = " ".join(w.value for w in train.warning)
    assert f"The job table {runs / 'jobs.sqlite'} had disappeared" in notice and "a new one was started" in notice
    assert train.session_state[VIEW] is None and "Nothing trained yet" in texts_of(train)
    assert start_and_stop_a_run(train) != first        # the new table takes runs


def test_a_damaged_table_is_moved_aside_and_a_new_one_started(train, runs):
    """Before: `file is not a database` for every visitor until a restart."""
    tiny_settings(train)
    with scheduler_paused():
        damage(runs / "jobs.sqlite")
    train.run()
    assert not errors_of(train) and not train.error, [e.value for e in train.error]
    notice = " ".join(w.value for w in train.warning)
    [aside] = [p for p in runs.glob("jobs.sqlite.corrupt-*") if not p.name.endswith("-wal")]
    assert f"The job table {runs / 'jobs.sqlite'} was damaged (file is not a database)" in notice, notice
    assert f"it was moved aside to {aside.name} and a new one was started" in notice
    assert "saved models are untouched" in notice
    start_and_stop_a_run(train)

"""The job table damaged while the server runs (issue 19), as a browser sees it: before, every visitor of the
Train page got `file is not a database` until a restart; now the page says the table was moved aside and a new
one started, shows no exception, and a run can be started and stopped at once."""
from __future__ import annotations

import re
import sqlite3
import time

import pytest

from harness import StreamlitServer, exceptions_on, go_to, open_page, wait_idle

pytestmark = pytest.mark.e2e


def damage(path) -> None:
    """Garbage over the SQLite header, once the write-ahead log is copied back into the file (SQLite reads page 1
    from the log while the log holds it)."""
    end = time.monotonic() + 30
    with sqlite3.connect(path) as db:
        while db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0:
            assert time.monotonic() < end, "the write-ahead log stayed busy"
            time.sleep(0.05)
    with open(path, "r+b") as f:
        f.write(b"\x00garbage where the SQLite header was" * 4)


def test_a_damaged_job_table_is_a_notice_and_training_goes_on(browser, e2e_env, tmp_path):
    runs = tmp_path / "runs"
    env = {**e2e_env, "LATENT_LAB_MODEL_DIRS": str(runs), "LATENT_LAB_WARM_WORKER": "0"}
    server = StreamlitServer(env, log=tmp_path / "streamlit.log").start()
    try:
        server.wait_listening()
        page = browser.new_context().new_page()
        open_page(page, server.url)
        go_to(page, "Train", heading="Train a model")
        wait_idle(page)
        assert (runs / "jobs.sqlite").is_file()
        damage(runs / "jobs.sqlite")
        page.reload(wait_until="domcontentloaded")
        page.get_by_text(re.compile(r"was damaged \(file is not a database\); at [\d:]+ it was moved aside to "
                                    r"jobs\.sqlite\.corrupt-\d{8}-\d{6} and a new one was started")).wait_for(
            timeout=60_000)
        wait_idle(page)
        assert not exceptions_on(page)
        assert [p for p in runs.glob("jobs.sqlite.corrupt-*") if not p.name.endswith("-wal")]
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.get_by_text(re.compile(r"^Epoch \d+/\d+ · step [1-9]")).first.wait_for(timeout=90_000)
        page.get_by_role("button", name=re.compile("^Stop$")).first.click()
        page.get_by_text(re.compile("Stopped by request")).first.wait_for(timeout=60_000)
        wait_idle(page)
        assert not exceptions_on(page)
        with sqlite3.connect(runs / "jobs.sqlite") as db:
            assert db.execute("SELECT status FROM jobs").fetchall() == [("stopped",)]
    finally:
        server.stop()

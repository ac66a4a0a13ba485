"""Stopping the server during a run: its worker stops too, nothing dumps core, and the job table says
what happened (the run keeps its weights)."""
from __future__ import annotations

import re
import signal
import sqlite3

import pytest

from harness import StreamlitServer, go_to, open_page

pytestmark = pytest.mark.e2e


def test_stopping_the_server_mid_run_stops_the_worker_cleanly(browser, e2e_env, tmp_path):
    runs = tmp_path / "runs"
    env = {**e2e_env, "LATENT_LAB_MODEL_DIRS": str(runs), "LATENT_LAB_WARM_WORKER": "0"}
    log = tmp_path / "streamlit.log"
    server = StreamlitServer(env, log=log).start()
    try:
        server.wait_listening()
        context = browser.new_context()
        page = context.new_page()
        open_page(page, server.url)
        go_to(page, "Train")
        epochs = page.get_by_label("Epochs")
        epochs.fill("200")
        epochs.press("Enter")
        page.wait_for_timeout(1000)
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.get_by_text(re.compile(r"^Epoch \d+/200 · step [1-9]")).first.wait_for(timeout=90_000)
        context.close()
        with sqlite3.connect(runs / "jobs.sqlite") as db:
            assert db.execute("SELECT status FROM jobs").fetchone()[0] == "running"
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=30)
    finally:
        server.stop()
    text = log.read_text(errors="replace")
    assert code in (0, -signal.SIGTERM), f"streamlit exited with {code}"
    assert "terminate called" not in text and "core dumped" not in text.lower() and "Traceback" not in text, text[-2000:]
    with sqlite3.connect(runs / "jobs.sqlite") as db:
        status, message, result = db.execute("SELECT status, message, result_path FROM jobs").fetchone()
    assert status == "stopped" and "the server shut down" in message, (status, message)
    assert result and "weights are kept" in message

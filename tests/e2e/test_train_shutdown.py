"""Stopping the server during a run: its worker stops too, nothing dumps core, and the job table says
what happened (the run keeps its weights). A server started again on the same folder shows the run to the same
browser (its own token, kept in a cookie) with its curves, samples and latent map, ready to save."""
from __future__ import annotations

import re
import signal
import sqlite3

import pytest

from harness import StreamlitServer, exceptions_on, go_to, open_page, wait_idle

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
        assert "owner=" not in page.url
        page.close()   # the browser stays (its cookie with it); its tab goes
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

    # the server again, on the same folder: the same browser finds the run with everything it showed
    server = StreamlitServer(env, log=tmp_path / "streamlit_again.log").start()
    try:
        server.wait_listening()
        page = context.new_page()            # the same browser, a new tab on the new server
        open_page(page, server.url, "train")
        page.get_by_text(re.compile(r"the server shut down during this run")).first.wait_for(timeout=60_000)
        open_run = page.locator("[class*='st-key-train_open_']").locator("button:not([disabled])")
        if open_run.count():        # the list offers the run: open it
            open_run.first.click()
        page.get_by_text("64 samples from the prior of the final weights").wait_for(timeout=60_000)
        page.wait_for_function("() => { const g = document.querySelector(\"[class*='st-key-train_latent_map'] "
                               ".js-plotly-plot\"); return g && g._fullData && g._fullData.length > 0; }",
                               timeout=60_000)
        wait_idle(page)
        assert not exceptions_on(page)
        assert page.get_by_role("button", name="Save").count() == 1
    finally:
        server.stop()
        context.close()

"""Heavy Diagnose views as jobs (issue 19), as a browser sees them: with a view budget of 0 CPU-seconds every
view is computed by a worker; the page shows the worker's progress, then the view itself, with no exception,
and the job table holds the view jobs (kind 'view'), completed."""
from __future__ import annotations

import sqlite3

import pytest

from harness import StreamlitServer, exceptions_on, go_to, open_page, wait_idle

pytestmark = pytest.mark.e2e


def test_views_over_the_budget_are_computed_by_a_worker_behind_a_progress_bar(browser, e2e_env, tmp_path):
    runs = tmp_path / "runs"
    env = {**e2e_env, "LATENT_LAB_MODEL_DIRS": f"{runs}:{e2e_env['LATENT_LAB_MODEL_DIRS']}",
           "LATENT_LAB_WARM_WORKER": "0", "LATENT_LAB_VIEW_BUDGET_CPU_SECONDS": "0"}
    server = StreamlitServer(env, log=tmp_path / "streamlit.log").start()
    try:
        server.wait_listening()
        page = browser.new_context().new_page()
        open_page(page, server.url)
        go_to(page, "Diagnose")
        page.get_by_text("Active units").first.wait_for(timeout=120_000)   # the first tab, from a worker
        wait_idle(page, 60_000)
        assert not exceptions_on(page)
        page.get_by_role("tab", name="Per-example losses").click()
        page.get_by_text("computed by a worker").or_(page.get_by_text("waits in line")).first.wait_for(
            timeout=60_000)                                                  # the worker's progress, meanwhile
        page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=180_000)
        page.get_by_text("No row selected yet").wait_for(timeout=60_000)
        wait_idle(page, 60_000)
        assert not exceptions_on(page)
        with sqlite3.connect(runs / "jobs.sqlite") as db:
            views = db.execute("SELECT json_extract(settings, '$.view'), status FROM jobs WHERE kind = 'view' "
                               "ORDER BY seq").fetchall()
        assert views == [("collapse_stats", "completed"), ("per_example", "completed")], views
    finally:
        server.stop()

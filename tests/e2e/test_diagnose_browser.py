"""The Diagnose page in a real browser: open it, go to the per-example table, click a row, and see that
test image (and its place on the 2-D map) with no exception on the page."""
from __future__ import annotations

import re

import pytest

from harness import exceptions_on, go_to, image_srcs, open_page, wait_idle

pytestmark = pytest.mark.e2e

HEADER_AND_ROW = 35  # glide-data-grid's default header and row heights in Streamlit, px


def test_diagnose_opens_and_a_clicked_row_shows_its_image(page, server):
    open_page(page, server.url)
    go_to(page, "Diagnose")
    page.get_by_text("Active units").first.wait_for(timeout=120_000)   # the first tab: posterior collapse
    wait_idle(page, 120_000)
    assert not exceptions_on(page)

    page.get_by_role("tab", name="Per-example losses").click()
    table = page.locator("[data-testid='stDataFrame']").first
    table.wait_for(timeout=180_000)                                     # first visit: computed behind a progress bar
    page.get_by_text("No row selected yet").wait_for(timeout=60_000)
    wait_idle(page, 60_000)
    before = len(image_srcs(page))
    box = table.bounding_box()
    # the selection checkbox of the third row (the grid is a canvas: click where the row is drawn)
    page.mouse.click(box["x"] + 18, box["y"] + HEADER_AND_ROW * 3 + HEADER_AND_ROW / 2)
    page.get_by_text(re.compile(r"^Test image #\d+ · class \d")).wait_for(timeout=60_000)
    page.get_by_text("the selected test image").wait_for(timeout=60_000)
    page.wait_for_function("(n) => document.querySelectorAll(\"[data-testid='stMain'] [data-testid='stImage'] img\")"
                           ".length > n", arg=before, timeout=60_000)
    page.get_by_text("Where its latent mean sits among the test means.").wait_for(timeout=60_000)
    wait_idle(page, 60_000)
    assert not exceptions_on(page)
    assert page.get_by_text("No row selected yet").count() == 0

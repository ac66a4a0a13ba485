"""Exported figures in a real browser: the completion figure's row labels never run into the pictures
(issue 9, fault 6)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness import exceptions_on, go_to, open_page, wait_idle

pytestmark = pytest.mark.e2e


def label_gaps(picture: np.ndarray) -> list[int]:
    """Per row of the figure: white pixels between the end of its label and the start of its pictures.

    A row is a band of non-white lines; its pictures start at the first column that is non-white over
    90% of the band (a strip of images with its grey frame), the label is the non-white pixels left of it."""
    ink = (picture < 235).any(axis=-1)
    lines = ink.any(axis=1)
    gaps, y = [], 0
    while y < len(lines):
        if not lines[y]:
            y += 1
            continue
        end = y
        while end < len(lines) and lines[end]:
            end += 1
        band = ink[y:end]
        full = np.flatnonzero(band.mean(axis=0) > 0.9)
        assert full.size, "a row without pictures"
        start = int(full[0])
        text = np.flatnonzero(band[:, :start].any(axis=0))
        assert text.size, "a row without a label"
        gaps.append(start - int(text[-1]) - 1)
        y = end
    return gaps


def test_completion_figure_labels_leave_room_before_the_pictures(page, server):
    open_page(page, server.url)
    go_to(page, "Compare CVAE vs GSNN")
    button = page.get_by_role("button", name="Figure (PNG)")
    button.wait_for(timeout=60_000)
    wait_idle(page)
    with page.expect_download() as download:
        button.click()
    picture = np.asarray(Image.open(io.BytesIO(open(download.value.path(), "rb").read())).convert("RGB"))
    gaps = label_gaps(picture)
    assert len(gaps) >= 4          # input | truth | baseline, then GSNN, CVAE, Hybrid
    assert min(gaps) >= 8, gaps
    assert not exceptions_on(page)

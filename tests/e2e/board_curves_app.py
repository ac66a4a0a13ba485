"""A test-only Streamlit app: the class board's curves chart (ui/board_tools.py curves_figure + curves_chart) over
three made-up runs, whose figure changes on every script run (Cy's curve gains or loses a point, as a class's
curves do while anyone trains), so that each click's own rerun draws a new chart; for tests/e2e/test_class.py.
Ada's and Ben's curves are far apart and fix the axes' ranges, so a spot on them stays where the test measured
it. Not part of the app."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st  # noqa: E402

from jobs.table import JobRow  # noqa: E402
from ui.board_tools import curves_chart, curves_figure  # noqa: E402


def run(seq: int, name: str) -> JobRow:
    return JobRow(seq=seq, id=f"run-{name.lower()}", owner=f"class:{name.lower()}", settings={}, status="running",
                  message="", backend="local", server="", created=0.0, started=None, finished=None, progress=0.5,
                  step=500, total_steps=1000, epoch=0, heartbeat=None, last_poll=None, stop_reason="",
                  result_path="", error="", hidden=0, owner_name=name)


ROWS = [run(1, "Ada"), run(2, "Ben"), run(3, "Cy")]   # (settings={}: one epoch of 1,000 steps: x = step/1000)
n = st.session_state["runs"] = st.session_state.get("runs", 0) + 1
points = {"run-ada": [(s, 400.0 - 0.25 * s, None) for s in range(0, 1001, 100)],    # 400 -> 150
          "run-ben": [(s, 2400.0 - 1.0 * s, None) for s in range(0, 1001, 250)],   # 2,400 -> 1,400 in 5 points
          "run-cy": [(s, 700.0, None) for s in range(300, 600 + 100 * (n % 2), 100)]}
clicked = curves_chart(curves_figure(ROWS, points))
if clicked:
    st.session_state["opened"] = clicked
st.markdown(f"Opened: {st.session_state.get('opened', 'none')} · run {n}")

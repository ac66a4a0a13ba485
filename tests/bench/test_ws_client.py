"""bench/st_ws_client.py still speaks Streamlit's protocol: one websocket Decoder session against a real
`streamlit run app.py` gets a new decoded image after a slider change (what classroom_load --client ws
times). A Streamlit upgrade that changes the protocol, or a Decoder page that names its widgets otherwise,
fails here instead of silently turning the bench's sessions into errors."""
from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

pytest.importorskip("websockets")

from harness import streamlit_server  # noqa: E402
from st_ws_client import StreamlitWsClient  # noqa: E402


async def decoder_step(url: str):
    async with StreamlitWsClient(url) as client:
        run = await client.open("decoder", timeout=60)
        assert run.finished is not None, f"the Decoder did not finish its first run: {client.closed_reason}"
        toggle = client.widget("checkbox", "Decode in the browser")
        assert toggle is not None, "no 'Decode in the browser' toggle among the widgets drawn"
        client.set_widget(toggle, "bool_value", False)
        run = await client.rerun()
        assert await client.wait(run, 30)
        slider = client.widget("slider", "z1")
        assert slider is not None and slider.fragment_id, "the server's z1 slider (in the explorer fragment) is missing"
        before = [(url, cap) for _, url, cap in run.images if cap.startswith("z = ")]
        assert before, "no decoded image with its z caption after switching the browser decoding off"
        value = list(slider.proto.value)[0] + 1.0
        client.set_widget(slider, "double_array_value", [value])
        run = await client.rerun(fragment_id=slider.fragment_id)
        assert await client.wait(run, 30), "the slider's fragment run did not finish"
        after = [(url, cap) for _, url, cap in run.images if cap.startswith("z = ")]
        return before[-1], after, run, client.all_exceptions


def test_ws_decoder_session_gets_a_new_image(tmp_path):
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(ROOT / "checkpoints"), str(tmp_path / "runs")])}
    with streamlit_server(env, log=tmp_path / "streamlit.log") as server:
        # on a thread of its own: a process that has run the browser tests (one pytest-xdist worker runs them,
        # then other files) keeps playwright's event loop running on its main thread, where asyncio.run refuses
        with ThreadPoolExecutor(1) as thread:
            step = thread.submit(asyncio.run, asyncio.wait_for(decoder_step(server.url), 120))
            before, after, run, exceptions = step.result()
    assert not exceptions
    assert "new_session" in run.kinds and "element:slider" in run.kinds   # a fragment run redrew the explorer
    assert len(after) == 1, f"expected one decoded image in the fragment run, got {len(after)}"
    url, caption = after[0]
    assert url.startswith("data:image/png;base64,") and url != before[0], "the decoded picture did not change"
    assert caption != before[1] and caption.startswith("z = (1.00"), caption

"""Does bench/st_ws_client.py speak as the browser does? One check, before trusting classroom_load --client ws.

    python bench/ws_vs_browser.py

On one server, a chromium tab and a websocket client each do the same: open the Decoder, switch "Decode in
the browser" off, one arrow-key step of the z1 slider; open the Latent map and click a dot. The script
records what the tab's websocket carried (playwright's frame events, parsed as BackMsg / ForwardMsg) and
prints, per action, the rerun_script each side sent (page, fragment, the widgets named) and the kinds of
ForwardMsg and of elements each received, side by side, and whether the decoded image changed.
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import CHROMIUM_FLAGS, VIEWPORT, StreamlitServer, chromium_path  # noqa: E402
from st_ws_client import StreamlitWsClient, selection_json  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402


class Tape:
    """The browser tab's websocket, cut into actions: what was sent, what came back."""

    def __init__(self):
        self.actions: list[dict] = []
        self.cut("start")

    def cut(self, name: str) -> None:
        self.actions.append({"name": name, "sent": [], "kinds": {}, "captions": []})

    def sent(self, payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            msg = BackMsg()
            msg.ParseFromString(bytes(payload))
            self.actions[-1]["sent"].append(msg)

    def received(self, payload) -> None:
        if not isinstance(payload, (bytes, bytearray)):
            return
        msg = ForwardMsg()
        msg.ParseFromString(bytes(payload))
        kinds = self.actions[-1]["kinds"]
        kind = msg.WhichOneof("type")
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            ek = msg.delta.new_element.WhichOneof("type")
            kinds[f"element:{ek}"] = kinds.get(f"element:{ek}", 0) + 1
            if ek == "imgs":
                self.actions[-1]["captions"] += [i.caption for i in msg.delta.new_element.imgs.imgs if i.caption]


def describe_sent(msgs: list) -> str:
    out = []
    for m in msgs:
        if m.WhichOneof("type") != "rerun_script":
            out.append(m.WhichOneof("type"))
            continue
        cs = m.rerun_script
        ids = [w.id.rsplit("-", 1)[-1] + ":" + w.WhichOneof("value") for w in cs.widget_states.widgets]
        out.append(f"rerun_script(page_name={cs.page_name!r}, hash={cs.page_script_hash[:6]!r}, "
                   f"fragment={cs.fragment_id[:6]!r}, widgets={ids})")
    return "; ".join(out) or "-"


def show(name: str, browser: dict, ws_sent: str, ws_kinds: dict, ws_captions: list) -> None:
    print(f"== {name}")
    print(f"  browser sent: {describe_sent(browser['sent'])}")
    print(f"  ws sent:      {ws_sent}")
    keys = sorted(set(browser["kinds"]) | set(ws_kinds))
    for k in keys:
        b, w = browser["kinds"].get(k, 0), ws_kinds.get(k, 0)
        print(f"    {k:32s} browser {b:3d}  ws {w:3d}" + ("" if (b > 0) == (w > 0) else "   <- differs"))
    if browser["captions"] or ws_captions:
        print(f"  decoded-image captions: browser {browser['captions']}, ws {ws_captions}")


async def browser_side(url: str) -> Tape:
    from playwright.async_api import async_playwright

    tape = Tape()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = await browser.new_page(viewport=VIEWPORT)
        page.on("websocket", lambda ws: (ws.on("framesent", tape.sent), ws.on("framereceived", tape.received)))
        idle = "() => !document.querySelector(\"[data-testid='stStatusWidgetRunningIcon']\")"
        tape.cut("open the Decoder")
        await page.goto(f"{url}/decoder")
        await page.locator(".st-key-browser_decode input").first.wait_for(state="attached", timeout=90_000)
        await page.wait_for_timeout(3000)
        tape.cut("switch 'Decode in the browser' off")
        await page.get_by_test_id("stSidebar").get_by_text("Decode in the browser").click()
        await page.get_by_test_id("stSlider").first.wait_for(timeout=60_000)
        await page.wait_for_timeout(2000)
        tape.cut("one arrow key on z1")
        await page.get_by_role("slider").first.focus()
        await page.keyboard.press("ArrowRight")
        await page.wait_for_timeout(2000)
        await page.wait_for_function(idle)
        tape.cut("open the Latent map")
        await page.goto(f"{url}/latent_map")
        await page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                                     " return gd && gd._fullData && gd._fullData.length > 0; }", timeout=90_000)
        await page.wait_for_timeout(2000)
        tape.cut("click a dot")
        from classroom_load import POINT_JS
        point = None
        for _ in range(20):
            point = await page.evaluate(POINT_JS)
            if point:
                break
        await page.mouse.click(*point)
        await page.get_by_text("Test image #").first.wait_for(timeout=20_000)
        await page.wait_for_timeout(1500)
        await browser.close()
    return tape


async def ws_side(url: str) -> list[tuple[str, str, dict, list]]:
    import numpy as np

    out = []

    def sent(c: StreamlitWsClient, fragment: str = "", page: str = "") -> str:
        ids = [wid.rsplit("-", 1)[-1] + ":" + f for wid, (f, _) in c.states.items()]
        return (f"rerun_script(page_name={page!r}, hash={(c.page_script_hash if not page else '')[:6]!r}, "
                f"fragment={fragment[:6]!r}, widgets={ids})")

    async with StreamlitWsClient(url) as c:
        run = await c.open("decoder")
        out.append(("open the Decoder", sent(c, page="decoder"), run.kinds, [x[2] for x in run.images if x[2]]))
        c.set_widget(c.widget("checkbox", "Decode in the browser"), "bool_value", False)
        desc = sent(c)
        run = await c.rerun()
        await c.wait(run, 60)
        out.append(("switch 'Decode in the browser' off", desc, run.kinds, [x[2] for x in run.images if x[2]]))
        s = c.widget("slider", "z1")
        c.set_widget(s, "double_array_value", [round(list(s.proto.value)[0] + 0.01, 2)])
        desc = sent(c, s.fragment_id)
        run = await c.rerun(fragment_id=s.fragment_id)
        await c.wait(run, 60)
        out.append(("one arrow key on z1", desc, run.kinds, [x[2] for x in run.images if x[2]]))
    async with StreamlitWsClient(url) as c:
        run = await c.open("latent_map")
        out.append(("open the Latent map", sent(c, page="latent_map"), run.kinds, []))
        chart = c.widget("plotly_chart", key="latent_map_chart")
        value, row = selection_json(chart.proto.spec, np.random.default_rng(0))
        c.set_widget(chart, "string_value", value)
        desc = sent(c)
        run = await c.rerun()
        await c.wait(run, 60)
        panel = any(f"Test image #{row}**" in m for _, m in run.markdown)
        out.append((f"click a dot (ws: the panel of #{row} came: {panel})", desc, run.kinds, []))
    return out


def main() -> int:
    runs = Path(tempfile.mkdtemp(prefix="latent_lab_wscheck_")) / "runs"
    env = {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(ROOT / "checkpoints"), str(runs)])}
    server = StreamlitServer(env, log=runs.parent / "streamlit.log").start()
    try:
        server.wait_listening()
        tape = asyncio.run(browser_side(server.url))
        ws = asyncio.run(ws_side(server.url))
    finally:
        server.stop()
    browser_actions = {a["name"]: a for a in tape.actions}
    for name, ws_sent, kinds, captions in ws:
        show(name, browser_actions[name.split(" (")[0]], ws_sent, kinds, captions)
    return 0


if __name__ == "__main__":
    sys.exit(main())

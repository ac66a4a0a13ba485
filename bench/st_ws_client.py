"""A Streamlit session without a browser: one websocket speaking Streamlit 1.67's own protobufs.

bench/classroom_load.py (`--client ws`) runs 20 of these so that the server, not 20 Chromium tabs on the same
cores, is what the bench measures. The protocol, as the frontend speaks it (read from the installed
streamlit package: web/server/starlette/starlette_websocket.py, runtime/app_session.py, the PlotlyChart
bundle in static/):

- connect to ws://HOST/_stcore/stream with the subprotocol "streamlit" (and the browser's cookies, which
  st.context.cookies reads: Latent Lab's class-code identity is one) (the second and third subprotocol
  entries would carry an XSRF token and a session id to resume; a fresh session sends neither);
- every frame is a binary protobuf: BackMsg from the client, ForwardMsg from the server;
- a run is asked for with BackMsg.rerun_script, a ClientState: query_string, page_name (the URL path, on the
  first run) or page_script_hash (afterwards, from ForwardMsg.new_session), widget_states (the values of
  the widgets the user set: a slider is a double_array_value, a toggle a bool_value, a plotly chart's
  selection a string_value of JSON), and fragment_id when the widget lives in an st.fragment (the frontend
  takes it from the Delta that drew the widget);
- the server answers with new_session (at the start of each run), navigation (with st.navigation: the page
  that runs, whose page_script_hash the next rerun_script names), deltas (each element of the page,
  with its widget id where it is a widget), and script_finished.

The frontend sends the values of every widget on the page; this client sends those it has set itself, and
the server keeps the others from its session state (keyed widgets, as the pages' are). Like the frontend, it
forgets, after each full run, the widgets that run did not draw: a plotly chart whose figure changed (the
Latent map's, after every click) comes back under a new id, and a value sent for an old id that the page
draws again later would be taken as a click there.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED_OK = {ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY,
               ForwardMsg.ScriptFinishedStatus.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


@dataclass
class Widget:
    id: str
    kind: str          # the Element's oneof: "slider", "checkbox", "plotly_chart", ...
    label: str
    fragment_id: str
    proto: object      # the element's message (slider.value, plotly_chart.spec, ...)


@dataclass
class Run:
    """What one script run (asked for by this client) sent back."""
    t0: float
    images: list[tuple[float, str, str]] = field(default_factory=list)   # (s after t0, url, caption)
    markdown: list[tuple[float, str]] = field(default_factory=list)      # (s after t0, body)
    exceptions: list[str] = field(default_factory=list)
    widget_ids: set[str] = field(default_factory=set)                    # the widgets this run drew
    kinds: dict[str, int] = field(default_factory=dict)                  # ForwardMsg / element kinds seen
    finished: float | None = None
    status: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class StreamlitWsClient:
    """One session. `open(page)` runs a page; `set_widget` + `rerun()` act as a user; `widgets` and `last_run`
    say what the server drew."""

    def __init__(self, url: str, query_string: str = "", cookies: dict[str, str] | None = None):
        self.ws_url = url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/_stcore/stream"
        self.query_string = query_string
        self.cookies = dict(cookies or {})   # sent with the websocket's opening request, as a browser sends them
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.page_script_hash = ""
        self.navigated = False
        self.widgets: dict[str, Widget] = {}           # by widget id
        self.states: dict[str, tuple[str, object]] = {}  # widget id -> (WidgetState field, value) set by us
        self.run: Run | None = None
        self.all_exceptions: list[str] = []
        self.closed_reason: str | None = None

    async def connect(self) -> None:
        import websockets

        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else None
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                           open_timeout=60, ping_interval=None, additional_headers=headers)
        self.reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            try:
                await self.reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ------------------------------------------------------------------ receiving
    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(frame)
                self._handle(msg)
        except Exception as e:  # noqa: BLE001 - the closing is reported through closed_reason
            self.closed_reason = f"{type(e).__name__}: {e}"
        else:
            self.closed_reason = "closed by the server"
        if self.run is not None:
            self.run.done.set()

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        run = self.run
        now = time.perf_counter()
        if run is not None:
            run.kinds[kind] = run.kinds.get(kind, 0) + 1
        if kind == "new_session" and not self.navigated:
            self.page_script_hash = msg.new_session.page_script_hash or self.page_script_hash
        elif kind == "navigation":  # with st.navigation, the page is named here (new_session names app.py)
            self.page_script_hash, self.navigated = msg.navigation.page_script_hash, True
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            ek = el.WhichOneof("type")
            if run is not None:
                run.kinds[f"element:{ek}"] = run.kinds.get(f"element:{ek}", 0) + 1
            body = getattr(el, ek) if ek else None
            wid = getattr(body, "id", "") if body is not None and ek != "imgs" else ""
            if wid:
                self.widgets.pop(wid, None)   # the dict's order is the order last drawn
                self.widgets[wid] = Widget(wid, ek, getattr(body, "label", ""), msg.delta.fragment_id, body)
                if run is not None:
                    run.widget_ids.add(wid)
            if ek == "exception":
                text = f"{el.exception.type}: {el.exception.message}"
                self.all_exceptions.append(text)
                if run is not None:
                    run.exceptions.append(text)
            elif ek == "imgs" and run is not None:
                for img in el.imgs.imgs:
                    run.images.append((now - run.t0, img.url, img.caption))
            elif ek == "markdown" and run is not None:
                run.markdown.append((now - run.t0, el.markdown.body))
        elif kind == "script_finished" and run is not None:
            if msg.script_finished in FINISHED_OK or run.finished is None:
                run.status = msg.script_finished
            if msg.script_finished in FINISHED_OK:
                run.finished = now - run.t0
                if msg.script_finished == ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY:
                    # as the frontend does after a full run: forget the widgets the page no longer draws (a
                    # chart whose figure changed is a new widget; its old id's value must not come back)
                    self.states = {k: v for k, v in self.states.items() if k in run.widget_ids}
                    self.widgets = {k: w for k, w in self.widgets.items() if k in run.widget_ids}
                run.done.set()

    # ------------------------------------------------------------------ sending
    def widget(self, kind: str, label: str | None = None, key: str | None = None) -> Widget | None:
        """The last widget drawn of that kind, by its label or by the end of its id (the user's key)."""
        for w in reversed(list(self.widgets.values())):
            if w.kind == kind and (label is None or w.label == label) and (key is None or w.id.endswith(key)):
                return w
        return None

    def set_widget(self, w: Widget, field_name: str, value) -> None:
        self.states[w.id] = (field_name, value)

    async def rerun(self, page_name: str = "", fragment_id: str = "") -> Run:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query_string
        if self.page_script_hash:
            cs.page_script_hash = self.page_script_hash
        else:
            cs.page_name = page_name
        if fragment_id:
            cs.fragment_id = fragment_id
        for wid, (field_name, value) in self.states.items():
            ws = cs.widget_states.widgets.add()
            ws.id = wid
            if field_name == "double_array_value":
                ws.double_array_value.data.extend(value)
            else:
                setattr(ws, field_name, value)
        cs.context_info.timezone = "UTC"
        cs.context_info.locale = "en-US"
        self.run = Run(time.perf_counter())
        await self.ws.send(msg.SerializeToString())
        return self.run

    async def open(self, page: str, timeout: float = 90.0) -> Run:
        """Run a page (its URL path, "decoder") to the end; one page per client, as one browser tab."""
        if self.ws is None:
            await self.connect()
        run = await self.rerun(page_name=page)
        await self.wait(run, timeout)
        return run

    async def wait(self, run: Run, timeout: float) -> bool:
        """True when the run finished well within `timeout` seconds."""
        try:
            await asyncio.wait_for(run.done.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return run.finished is not None


def selection_json(spec: str, rng) -> tuple[str, int] | None:
    """A click on a random point of a plotly chart's figure (its spec JSON), as the frontend reports it (a
    string_value: {"selection": {"points": [...], "point_indices": [...], "box": [], "lasso": []}}), and the
    point's customdata row; None when the figure has no points."""
    fig = json.loads(spec)
    traces = [(c, t) for c, t in enumerate(fig.get("data", [])) if t.get("x") is not None and len(t.get("x")) > 0]
    if not traces:
        return None
    c, t = traces[rng.integers(len(traces))]
    xs, ys = _values(t["x"]), _values(t["y"])
    i = int(rng.integers(len(xs)))
    point = {"curve_number": c, "point_number": i, "point_index": i, "x": xs[i], "y": ys[i]}
    custom = _values(t["customdata"]) if t.get("customdata") is not None else None
    if custom is not None:
        point["customdata"] = custom[i]
    if t.get("legendgroup"):
        point["legendgroup"] = t["legendgroup"]
    value = {"selection": {"points": [point], "point_indices": [i], "box": [], "lasso": []}}
    return json.dumps(value, separators=(",", ":")), custom[i] if custom is not None else None


def _values(v):
    """A trace's array: a plain list, or plotly's typed-array form {"dtype", "bdata"[, "shape"]}."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            arr = arr.reshape([int(s) for s in str(v["shape"]).split(",")])
        return arr.tolist()
    return v

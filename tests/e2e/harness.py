"""A real browser against `streamlit run app.py`: start the server, launch Debian's chromium through
playwright, open pages and wait on what the page shows (never on network idle: Streamlit keeps a
websocket open). Used by the e2e tests and by bench/app_speed.py.

Never run `playwright install`: we drive the system chromium (apt-get install chromium).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 1000}


def chromium_path() -> str | None:
    """The system chromium, or None."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def missing_browser_reason() -> str | None:
    """Why the browser tests cannot run here (a sentence), or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -r requirements-dev.txt)"
    if chromium_path() is None:
        return "no chromium at /usr/bin/chromium (apt-get install chromium); never run `playwright install`"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` (or another `script`) on 127.0.0.1 in a child process; `url` once it listens.
    It runs in the repository's root, so .streamlit/config.toml there applies."""

    def __init__(self, env: dict[str, str] | None = None, port: int | None = None, log: Path | None = None,
                 script: Path = ROOT / "app.py", args: list[str] | None = None):
        self.script = Path(script)
        self.port = port or free_port()
        self.args = list(args or [])   # more `streamlit run` options, e.g. ["--secrets.files", path]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.log_path = log
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> "StreamlitServer":
        cmd = [sys.executable, "-m", "streamlit", "run", str(self.script), "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(self.port),
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *self.args]
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"streamlit did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.log_path and self._log is not subprocess.DEVNULL:
            self._log.close()


@contextmanager
def streamlit_server(env: dict[str, str] | None = None, log: Path | None = None):
    server = StreamlitServer(env, log=log).start()
    try:
        server.wait_listening()
        yield server
    finally:
        server.stop()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)


# ----------------------------------------------------------------------------- page helpers



def open_page(page, base_url: str, path: str = "", timeout: float = 30_000) -> None:
    """Go to a page of the app and wait until its first heading is drawn."""
    page.goto(f"{base_url}/{path}", wait_until="domcontentloaded", timeout=timeout)
    page.locator("h1").first.wait_for(timeout=timeout)


def go_to(page, link: str, heading: str | None = None, timeout: float = 30_000) -> None:
    """Click a page in the sidebar navigation and wait for its title (h1) to contain `heading` (default: link)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=link, exact=True).click()
    page.locator("h1", has_text=heading or link).first.wait_for(timeout=timeout)


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit's 'running' indicator is gone and no element is marked stale (the script run
    ended and its output replaced the previous run's)."""
    page.wait_for_function("() => !document.querySelector(\"[data-testid='stStatusWidgetRunningIcon']\")"
                           " && !document.querySelector(\"[data-testid='stMain'] [data-stale='true']\")",
                           timeout=timeout)


def watch_most(page, selector: str) -> None:
    """From now on, note the most elements matching `selector` the page showed at once (most_seen): a widget
    rebuilt under a new key stands beside its old self while the script run lasts, shifting what lies below."""
    page.evaluate("""(sel) => {
        window.__mostSeen = document.querySelectorAll(sel).length;
        new MutationObserver(() => {
            window.__mostSeen = Math.max(window.__mostSeen, document.querySelectorAll(sel).length);
        }).observe(document.body, {childList: true, subtree: true}); }""", selector)


def most_seen(page) -> int:
    return page.evaluate("() => window.__mostSeen")


def plot_eval(page, chart_js: str, body: str, arg=None, timeout: float = 30_000):
    """The value of `body`, a JS function of (gd, arg), on the Plotly chart the JS expression `chart_js` finds.

    Streamlit can swap a chart's element for a fresh one after a script run has ended, and Plotly draws the
    fresh one a moment later, so a plain `page.evaluate` can meet a chart with no `_fullData` yet (CI saw
    "Cannot read properties of undefined (reading '_fullData')"). This waits until the chart is drawn and
    tries again when it is swapped in the middle of the call; a body that keeps failing ends in a timeout."""
    handle = page.wait_for_function(
        f"""(arg) => {{ const gd = {chart_js};
            if (!gd || !gd._fullLayout || !gd._fullData || !gd._fullData.length) return false;
            try {{ return {{value: ({body})(gd, arg)}}; }} catch (e) {{ return false; }} }}""",
        arg=arg, timeout=timeout)
    return handle.json_value()["value"]


def plot_settles_on(page, chart_js: str, body: str, want, arg=None, seconds: float = 15):
    """`plot_eval` until it gives `want` or `seconds` pass; returns the last value, for the caller to assert
    (a redraw can show the previous run's chart for a moment, never for long)."""
    deadline = time.monotonic() + seconds
    while True:
        value = plot_eval(page, chart_js, body, arg)
        if value == want or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def exceptions_on(page) -> list[str]:
    """The text of every exception box Streamlit draws in the page."""
    return [e.inner_text() for e in page.locator("[data-testid='stException']").all()]


def image_srcs(page, scope: str = "[data-testid='stMain']") -> list[str]:
    return page.eval_on_selector_all(f"{scope} [data-testid='stImage'] img", "els => els.map(e => e.src)")


# ----------------------------------------------------------------------------- the model picker and select boxes

PICKER = "[data-testid='stSidebar'] [data-testid='stSelectbox'] input[aria-label='Model']"


def picker_value(page, timeout: float = 30_000) -> str:
    """The model the sidebar picker shows (its text)."""
    page.locator(PICKER).first.wait_for(timeout=timeout)
    return page.locator(PICKER).first.input_value()


def wait_picker(page, label: str, timeout: float = 30_000) -> None:
    """Wait until the sidebar picker shows `label`."""
    page.wait_for_function("([sel, want]) => { const i = document.querySelector(sel); return i && i.value === want; }",
                           arg=[PICKER, label], timeout=timeout)


def open_options(page, combobox, tries: int = 3) -> None:
    """Open a select box's list of options (its input is replaced after each choice: try again)."""
    for attempt in range(tries):
        wait_idle(page)
        combobox.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=5_000)
            return
        except Exception:  # noqa: BLE001 - the box was redrawn under the click
            page.keyboard.press("Escape")
            if attempt == tries - 1:
                raise


def select_option(page, combobox, option: str, timeout: float = 30_000, tries: int = 3) -> None:
    """Open a select box (its input) and click one option by its exact text; wait for the script run to end.

    An open list closes when the page scrolls under it (react-aria closes a list whose box moves: a scroll of
    60 px closed the Animations box's list), and a page still laying out (a chart drawn late above the box) can
    move the box or make playwright scroll to reach the option: CI under load saw the option "detached from the
    DOM" for 30 s. As a hand would, open the list again and choose again."""
    for attempt in range(tries):
        open_options(page, combobox)
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except Exception:  # noqa: BLE001 - the list closed before the click
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
    wait_idle(page, timeout)


def choose_in_picker(page, label: str, timeout: float = 30_000) -> None:
    select_option(page, page.locator(PICKER).first, label, timeout)
    wait_picker(page, label, timeout)
    wait_idle(page, timeout)


def option_texts(page, combobox) -> list[str]:
    """The texts of a select box's options (opens it, reads them, closes it with Escape)."""
    open_options(page, combobox)
    texts = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [t.strip() for t in texts]


# How wide `text` would be in a select box's input, against the room the input has (canvas measureText
# with the input's own font): text wider than the room is cut off when it is the chosen value.
TEXT_ROOM_JS = """([input, texts]) => { const cs = getComputedStyle(input);
    const ctx = document.createElement('canvas').getContext('2d'); ctx.font = cs.font;
    const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    return texts.map(t => [t, Math.ceil(ctx.measureText(t).width), Math.floor(room)]); }"""


def cut_off_texts(page, combobox, texts: list[str]) -> list[tuple[str, int, int]]:
    """(text, width, room) of each text that would not fit in a select box's input if it were chosen."""
    measured = page.evaluate(TEXT_ROOM_JS, [combobox.element_handle(), list(texts)])
    return [tuple(m) for m in measured if m[1] > m[2]]


def cut_off_options(page, combobox) -> list[tuple[str, int, int]]:
    """(text, width, room) of each option of a select box that would not fit in its box when chosen."""
    return cut_off_texts(page, combobox, option_texts(page, combobox))

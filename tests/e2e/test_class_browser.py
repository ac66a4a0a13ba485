"""A class on one server, in chromium (issue 18): students A and B and the teacher, each in their own browser
context, signing in with the class code (a wrong code is one sentence); A trains; B cannot see, stop or
overwrite A's run or model; B's refresh on the Decoder keeps B's run; the teacher's board shows both runs, stops
A's and publishes B's model, which then appears in A's picker. And the same class through Streamlit's st.login
against a real local OpenID Connect provider (oidc-provider-mock), through the real redirect. And clicks on the
board's curves chart while its figure changes every second (tests/e2e/board_curves_app.py)."""
from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from pathlib import Path

import pytest

from harness import (PICKER, ROOT, StreamlitServer, exceptions_on, go_to, open_page, option_texts, plot_eval,
                     wait_idle)

pytestmark = pytest.mark.e2e

CODE, TEACHER_CODE = "maple-42", "teach-99"
RUNNING = re.compile(r"^Epoch \d+/200 · step [1-9]")
CURVES = "document.querySelector('.st-key-board_curves .js-plotly-plot')"
# A spot on the line of the run whose legend name starts with `prefix`, between two of its drawn points (where only
# the curve's invisible click targets are), as page coordinates: of the midpoints of its segments (on the line, as
# Plotly draws straight segments in pixels), the one farthest from every other run's points, with that distance.
CURVE_SPOT_JS = """(gd, prefix) => {
    const L = gd._fullLayout, r = gd.getBoundingClientRect();
    const px = (t) => Array.from(t.x).map((x, i) => [r.left + L._size.l + L.xaxis.c2p(x),
                                                      r.top + L._size.t + L.yaxis.c2p(t.y[i])]);
    const own = gd._fullData.find(t => t.name.startsWith(prefix) && t.showlegend !== false);
    const others = gd._fullData.filter(t => t.legendgroup !== own.legendgroup).flatMap(px);
    const line = px(own);
    let best = null;
    for (let i = 1; i < line.length; i++) {
        const m = [(line[i - 1][0] + line[i][0]) / 2, (line[i - 1][1] + line[i][1]) / 2];
        const gap = Math.min(Infinity, ...others.map(p => Math.hypot(p[0] - m[0], p[1] - m[1])));
        if (!best || gap > best[2]) best = [m[0], m[1], gap];
    }
    return best; }"""


SIGNED_IN_OR_TOLD_WHY = """() => { const h = document.querySelector('h1');
    return (h && !h.textContent.includes('Sign in to Latent Lab'))
        || !!document.querySelector("[data-testid='stMain'] [data-testid='stAlert']"); }"""


def spot_on_curve(page, prefix: str, timeout: float = 60.0) -> tuple[float, float, float]:
    """CURVE_SPOT_JS's spot on the curve of `prefix`, once its line has two points: the board redraws its curves
    at most every CURVES_SECONDS (pages/board.py), so a chart drawn at a run's start may show one point for a while.
    (A run's stored curve starts at its first step, jobs/api.py, so a run stopped in its first epoch has two.)"""
    end = time.monotonic() + timeout
    while (spot := plot_eval(page, CURVES, CURVE_SPOT_JS, prefix)) is None:
        assert time.monotonic() < end, f"the curve of {prefix!r} kept fewer than two points for {timeout:.0f} s"
        time.sleep(0.5)
    return spot


def sign_in(page, url: str, name: str, code: str, path: str = "train") -> None:
    open_page(page, url, path)
    page.get_by_text("Sign in to Latent Lab").wait_for()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Class code").fill(code)
    page.get_by_role("button", name="Sign in").click()
    # the answer to the click (another page, or a sentence under the form): wait_idle alone can look before the
    # click's script run has begun and see the form as it was
    page.wait_for_function(SIGNED_IN_OR_TOLD_WHY, timeout=60_000)
    wait_idle(page, 60_000)


def start_long_run(page) -> None:
    epochs = page.get_by_label("Epochs")
    epochs.fill("200")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(RUNNING).first.wait_for(timeout=120_000)


def save_as(page, name: str, overwrite: bool = False) -> None:
    page.get_by_role("button", name="Save").wait_for(timeout=60_000)
    box = page.locator(".st-key-train_save_name input")
    box.fill(name)
    box.press("Tab")
    if overwrite:
        page.locator(".st-key-train_save_overwrite").get_by_text("Overwrite").click()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved to").first.wait_for(timeout=60_000)


def job_of(runs: Path, owner: str) -> str:
    with sqlite3.connect(runs / "jobs.sqlite") as db:
        return db.execute("SELECT id FROM jobs WHERE owner = ? ORDER BY seq DESC", (owner,)).fetchone()[0]


@pytest.fixture
def class_server(e2e_env, tmp_path):
    runs = tmp_path / "runs"
    config = tmp_path / "latent_lab.toml"
    config.write_text(f'[limits]\nmax_runs = 2\n[class]\ncode = "{CODE}"\nteacher_code = "{TEACHER_CODE}"\n')
    models = e2e_env["LATENT_LAB_MODEL_DIRS"].split(":")[0]
    env = {**e2e_env, "LATENT_LAB_MODEL_DIRS": f"{runs}:{models}", "LATENT_LAB_CONFIG": str(config),
           "LATENT_LAB_WARM_WORKER": "0"}
    server = StreamlitServer(env, log=tmp_path / "streamlit.log").start()
    try:
        server.wait_listening()
        yield server, runs
    finally:
        server.stop()


def test_two_students_and_the_teacher(browser, class_server):
    server, runs = class_server
    url = server.url
    a, b, t = (browser.new_context().new_page() for _ in range(3))
    for page in (a, b, t):
        page.set_default_timeout(60_000)

    # A signs in (a wrong class code is one sentence) and trains
    sign_in(a, url, "Ada", "maple-41")
    errors = [e.inner_text() for e in a.get_by_test_id("stAlert").locator("[data-testid='stMarkdownContainer']").all()]
    assert errors == ["That is not this class's code; ask your teacher for it."], errors
    a.get_by_label("Class code").fill(CODE)
    a.get_by_role("button", name="Sign in").click()
    a.locator("h1", has_text="Train a model").wait_for()
    start_long_run(a)
    ada_job = job_of(runs, "class:ada")

    # B cannot take A's name, sees nothing of A's run and cannot stop it
    sign_in(b, url, "ada", CODE)
    assert "already signed in on another browser" in b.get_by_test_id("stAlert").first.inner_text()
    b.get_by_label("Your name").fill("Ben")
    b.get_by_role("button", name="Sign in").click()
    b.get_by_text("Nothing trained yet by Ben").wait_for()
    assert b.locator(".st-key-train_stop button").is_disabled()
    assert not b.locator(f"[class*='st-key-train_open_{ada_job}']").count()
    start_long_run(b)
    ben_job = job_of(runs, "class:ben")

    # B's refresh on the Decoder keeps B's run (a new session; the identity cookie brings Ben back)
    go_to(b, "Decoder")
    b.reload()
    b.locator("h1", has_text="Decoder").wait_for()
    wait_idle(b)
    go_to(b, "Train", "Train a model")
    b.get_by_text(RUNNING).first.wait_for()
    assert not b.locator(".st-key-train_stop button").is_disabled()
    b.locator(".st-key-train_stop button").click()       # Ben stops his own run, to save it
    save_as(b, "vae_2d")
    ben_files = list(runs.glob("ben-*/vae_2d.safetensors"))
    assert len(ben_files) == 1

    # the teacher signs in with the teacher code, sees both runs on the board and stops A's
    sign_in(t, url, "Ms Rivera", TEACHER_CODE, path="")
    go_to(t, "Class board")
    t.get_by_text(re.compile(r"^Ada · ")).first.wait_for()
    t.get_by_text(re.compile(r"^Ben · ")).first.wait_for()
    assert t.get_by_text(re.compile(r"^Ada · .* training · epoch")).count() == 1
    t.locator(f".st-key-board_stop_{ada_job} button").click()
    a.get_by_text("Stopped by the teacher (Ms Rivera)").first.wait_for(timeout=90_000)
    t.get_by_text(re.compile(r"^Ada · .* stopped")).first.wait_for(timeout=60_000)   # the curves hold still
    # the runs' curves on one chart: a click on Ada's curve opens her run (the two runs trained alike, so Ben's
    # curve lies on Ada's: the click goes where Ada's went on alone); Open then shows Ben's run, and Ada's curve,
    # still selected, does not take it back; "Show to the class" shows it large
    t.locator(".st-key-board_curves .js-plotly-plot").wait_for()
    names = plot_eval(t, CURVES, "(gd) => gd._fullData.filter(d => d.showlegend !== false).map(d => d.name)")
    assert any(n.startswith("Ada · ") for n in names) and any(n.startswith("Ben · ") for n in names), names
    x, y, gap = spot_on_curve(t, "Ada · ")
    assert gap > 25, f"no spot on Ada's curve away from Ben's ({gap:.0f} px)"
    t.mouse.click(x, y)
    t.get_by_text(re.compile(r"^Opened: Ada")).first.wait_for()
    t.locator(f".st-key-board_open_{ben_job} button").click()
    t.get_by_text(re.compile(r"^Opened: Ben")).first.wait_for()
    wait_idle(t)
    opened = [t.get_by_text(re.compile(rf"^Opened: {who}")).count() for who in ("Ben", "Ada")]
    assert opened == [1, 0], opened
    t.get_by_test_id("stSidebar").get_by_text("Show to the class").click()
    t.locator("h3", has_text="Ben · ").wait_for()
    t.locator("[data-testid='stMain'] [data-testid='stImage'] img").first.wait_for()
    assert t.locator("h1", has_text="Class board").count() == 0      # only the run, for the projector
    t.get_by_test_id("stSidebar").get_by_text("Show to the class").click()
    t.locator("h1", has_text="Class board").wait_for()
    wait_idle(a)
    save_as(a, "vae_2d")
    ada_files = list(runs.glob("ada-*/vae_2d.safetensors"))
    assert len(ada_files) == 1
    ada_bytes = ada_files[0].read_bytes()

    # B cannot overwrite A's model: B's Overwrite replaces B's own vae_2d, in B's folder
    b.reload()
    b.locator("h1", has_text="Train a model").wait_for()
    save_as(b, "vae_2d", overwrite=True)
    assert ada_files[0].read_bytes() == ada_bytes

    # before publishing, A's picker has no model of B's; the teacher publishes B's; now it has
    go_to(a, "Latent map")
    wait_idle(a)
    assert not [o for o in option_texts(a, a.locator(PICKER).first) if "Ben" in o]
    t.reload()
    t.locator("h1", has_text="Class board").wait_for()
    key = "board_publish_" + hashlib.sha1(str(ben_files[0]).encode()).hexdigest()[:10]
    t.locator(f".st-key-{key} button").click()
    t.get_by_text("published").first.wait_for()
    a.reload()
    a.locator("h1", has_text="Latent map").wait_for()
    wait_idle(a)
    assert "vae_2d · Ben" in option_texts(a, a.locator(PICKER).first)
    for page in (a, b, t):
        assert not exceptions_on(page)
    with sqlite3.connect(runs / "jobs.sqlite") as db:
        states = dict(db.execute("SELECT owner, status FROM jobs").fetchall())
    assert states == {"class:ada": "stopped", "class:ben": "stopped"}, states
    assert ben_job != ada_job


def test_sign_in_through_a_local_openid_connect_provider(browser, e2e_env, tmp_path):
    oidc = pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is in requirements-dev.txt")
    pytest.importorskip("authlib")
    from harness import free_port

    port = free_port()
    with oidc.run_server_in_thread(port=0) as provider:
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            'cookie_secret = "a-long-random-cookie-secret-for-tests"\n'
            'client_id = "latent-lab"\nclient_secret = "not-a-secret"\n'
            f'server_metadata_url = "http://localhost:{provider.server_port}/.well-known/openid-configuration"\n')
        config = tmp_path / "latent_lab.toml"
        config.write_text('[class]\nteachers = ["Teacher@School.org"]\n')
        env = {**e2e_env, "LATENT_LAB_CONFIG": str(config),
               "LATENT_LAB_MODEL_DIRS": f"{tmp_path / 'runs'}:" + e2e_env["LATENT_LAB_MODEL_DIRS"].split(":")[0]}
        server = StreamlitServer(env, port=port, log=tmp_path / "streamlit.log",
                                 args=["--secrets.files", str(secrets)]).start()
        try:
            server.wait_listening()
            base = f"http://localhost:{port}"
            for who, teacher in (("ada@school.org", False), ("teacher@school.org", True)):
                page = browser.new_context().new_page()
                page.set_default_timeout(60_000)
                open_page(page, base, "train")
                page.get_by_text("Sign in to Latent Lab").wait_for()
                page.get_by_role("button", name="Sign in").click()
                page.locator("input[name='sub']").fill(who)         # the provider's own page
                page.get_by_role("button", name="Authorize").click()
                page.locator("h1").first.wait_for()
                page.get_by_test_id("stSidebar").get_by_text(who).wait_for()
                go_to(page, "Train", "Train a model")
                page.get_by_text(f"Nothing trained yet by {who}").wait_for()
                page.reload()                                        # st.user survives a reload
                page.get_by_test_id("stSidebar").get_by_text(who).wait_for()
                nav = page.get_by_test_id("stSidebarNav")
                assert (nav.get_by_role("link", name="Class board").count() == 1) == teacher
                if teacher:
                    go_to(page, "Class board")
                    page.get_by_text("Limits in force").wait_for()
                assert not exceptions_on(page)
                page.context.close()
        finally:
            server.stop()


def test_a_click_on_a_curve_opens_its_run_when_the_chart_is_redrawn(browser, tmp_path):
    """The board's curves chart changes whenever a run's curve gains a point, so the rerun a click starts often
    draws a new chart, which Streamlit gives an empty selection: the click must still open the run. The test app
    (board_curves_app.py) changes its figure on every run; each click goes on a line between two drawn points,
    alternately on Ada's and Ben's curve, and must open that run."""
    server = StreamlitServer(log=tmp_path / "streamlit.log", script=ROOT / "tests" / "e2e" / "board_curves_app.py")
    server.start()
    try:
        server.wait_listening()
        page = browser.new_context().new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url, wait_until="domcontentloaded")
        page.get_by_text("Opened: none").wait_for()
        for click in range(4):
            who = ("Ada", "Ben")[click % 2]
            x, y, gap = plot_eval(page, CURVES, CURVE_SPOT_JS, f"{who} · ")
            assert gap > 25, f"the test app's {who} is too near another curve ({gap:.0f} px)"
            page.mouse.click(x, y)
            page.get_by_text(f"Opened: run-{who.lower()} ·").wait_for()
            wait_idle(page)
        assert not exceptions_on(page)
        page.context.close()
    finally:
        server.stop()

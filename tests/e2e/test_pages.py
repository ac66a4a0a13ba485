"""Every page in a real browser (chromium via playwright) against `streamlit run app.py`.

Selectors are what a user sees: headings, link and button labels, images. Waits are on page content
(an image's src changing, a text appearing), never on network idle.
"""
from __future__ import annotations

import re

import pytest

from harness import exceptions_on, go_to, image_srcs, open_page, plot_eval, wait_idle

pytestmark = pytest.mark.e2e

PAGES = [("Home", "Latent Lab"), ("Train", "Train"), ("Latent map", "Latent map"), ("Decoder", "Decoder"),
         ("Compare CVAE vs GSNN", "Compare CVAE vs GSNN"), ("Diagnose", "Diagnose")]


# points drawn by the Plotly chart under a selector, over all traces (_length: Plotly's decoded count;
# the figure's x arrays travel as base64 typed arrays, so gd.data[i].x has no length)
# A fragment rerun can briefly leave a stale copy of a chart beside the new one: count the fullest.
POINTS_JS = """(scope) => { let best = -1;
    for (const gd of document.querySelectorAll(scope + ' .js-plotly-plot')) {
        if (gd._fullData) best = Math.max(best, gd._fullData.reduce((n, t) => n + (t._length || 0), 0)); }
    return best; }"""


# the Train page's progress line, once it differs from the text given
PROGRESS_MOVED_JS = """(text) => { const lines = [...document.querySelectorAll("[data-testid='stMain'] p")]
    .map(p => p.innerText).filter(t => t.startsWith('Epoch ')); return lines.length > 0 && lines[0] !== text; }"""


def plotly_point_count(page, scope: str) -> int:
    return page.evaluate(POINTS_JS, scope)


def test_home_page_opens(page, server):
    open_page(page, server.url)
    page.locator("h1", has_text="Latent Lab").wait_for()
    wait_idle(page)
    assert not exceptions_on(page)
    nav = page.get_by_test_id("stSidebarNav").inner_text()
    assert [title for title, _ in PAGES] == [t for t in (title for title, _ in PAGES) if t in nav]
    assert "app" not in nav.split()  # no second, automatic menu from pages/


def test_every_page_opens_without_an_exception(page, server):
    open_page(page, server.url)
    for link, heading in PAGES:
        go_to(page, link, heading)
        wait_idle(page)
        assert not exceptions_on(page), link


def test_train_curve_grows_then_stop(page, server):
    open_page(page, server.url)
    go_to(page, "Train")
    # the longest run the widgets allow, so it is still going when we look and when we press Stop: a quiet
    # machine finished 50 epochs of the synthetic data set (1,000 images, used when MNIST is absent) in 4 s
    epochs = page.get_by_label("Epochs")
    epochs.fill("200")
    epochs.press("Enter")
    wait_idle(page)
    page.locator(".st-key-train_batch").get_by_role("slider").press("Home")   # batch size 16: 8x the steps
    page.wait_for_timeout(1500)
    page.get_by_role("button", name=re.compile("Start training")).click()
    curves = ".st-key-train_curves"
    page.locator(f"{curves} .js-plotly-plot").last.wait_for(timeout=60_000)
    first = plotly_point_count(page, curves)
    page.wait_for_function(f"([scope, n]) => ({POINTS_JS})(scope) > n", arg=[curves, first], timeout=90_000)
    assert plotly_point_count(page, curves) > first
    page.get_by_role("button", name=re.compile("^.*Stop$")).click()
    page.get_by_text(re.compile("stopped", re.I)).first.wait_for(timeout=30_000)
    assert not exceptions_on(page)


def test_train_run_survives_a_reload_then_stops_and_saves(page, server):
    """The run lives outside the page: a reload (the browser's own token, kept in a cookie) finds it still training."""
    open_page(page, server.url)
    go_to(page, "Train")
    hidden = page.get_by_label("Hidden layers", exact=True)
    hidden.fill("32")
    hidden.press("Enter")
    epochs = page.get_by_label("Epochs")
    epochs.fill("200")
    epochs.press("Enter")
    wait_idle(page)
    page.locator(".st-key-train_images").get_by_role("slider").press("End")  # all 60,000: it outlasts the test
    page.locator(".st-key-train_batch").get_by_role("slider").press("Home")   # batch size 16
    page.wait_for_timeout(1500)
    page.get_by_role("button", name=re.compile("Start training")).click()
    curves = ".st-key-train_curves"
    page.locator(f"{curves} .js-plotly-plot").last.wait_for(timeout=90_000)
    assert "owner=" not in page.url   # who is who lives in the browser's cookie, not in a shareable URL

    page.reload(wait_until="domcontentloaded")
    page.locator("h1", has_text="Train").first.wait_for(timeout=30_000)
    page.locator(f"{curves} .js-plotly-plot").last.wait_for(timeout=60_000)
    progress = page.get_by_text(re.compile(r"^Epoch \d+/200 · step")).first
    before = progress.inner_text()
    page.wait_for_function(PROGRESS_MOVED_JS, arg=before, timeout=60_000)  # still training after the reload

    page.get_by_role("button", name=re.compile("^.*Stop$")).click()
    page.get_by_text(re.compile("Stopped by request")).first.wait_for(timeout=30_000)
    page.locator(f"{curves} .js-plotly-plot").last.wait_for()  # the charts stay in view after the run
    name = page.get_by_label("Name", exact=True)
    name.fill("e2e_saved")
    page.get_by_role("button", name=re.compile("Save$")).click()
    page.get_by_text(re.compile("Saved to")).first.wait_for(timeout=60_000)
    assert not exceptions_on(page)


def test_train_lists_this_browsers_runs_with_open_and_stop(page, server):
    """Two runs from one browser: the list offers Open on the finished one and Stop on the running one."""
    open_page(page, server.url)
    go_to(page, "Train")
    hidden = page.get_by_label("Hidden layers", exact=True)
    hidden.fill("16")
    hidden.press("Enter")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    wait_idle(page)
    page.locator(".st-key-train_images").get_by_role("slider").press("Home")  # 1,000 images: seconds
    page.wait_for_timeout(1500)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile("Training finished")).first.wait_for(timeout=120_000)

    page.get_by_text("Settings for a new run").click()  # the settings folded away under the charts' run
    epochs.fill("200")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile(r"^Epoch \d+/200 · step")).first.wait_for(timeout=90_000)
    runs = page.get_by_text(re.compile(r"^Your runs \(2\)"))
    runs.wait_for()
    page.locator("[class*='st-key-train_open_']").get_by_role("button", name="Open").and_(
        page.locator("button:not([disabled])")).first.click()
    page.get_by_text(re.compile("Training finished: 1 epoch")).first.wait_for(timeout=30_000)
    page.locator("[class*='st-key-train_stoprun_']").locator("button:not([disabled])").first.click()
    page.get_by_text(re.compile(r"· stopped · Stopped by request")).first.wait_for(timeout=30_000)
    assert not exceptions_on(page)


def test_train_refuses_a_model_over_the_weight_limit(page, server):
    open_page(page, server.url)
    go_to(page, "Train")
    hidden = page.get_by_label("Hidden layers", exact=True)
    hidden.fill("8192, 8192, 8192")
    hidden.press("Enter")
    page.get_by_text(re.compile(r"weights; the limit here is 20,000,000")).first.wait_for(timeout=30_000)
    assert page.get_by_role("button", name=re.compile("Start training")).is_disabled()
    assert not exceptions_on(page)


def test_latent_map_click_shows_the_image(page, server):
    open_page(page, server.url)
    go_to(page, "Latent map")
    plot = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
    plot.wait_for()
    wait_idle(page)
    before = len(image_srcs(page))
    # the screen position of the first point of the first trace, from Plotly's own axes
    x, y = plot_eval(page, "document.querySelector('.js-plotly-plot')", """(gd) => {
        const L = gd._fullLayout, t = gd._fullData[0], r = gd.getBoundingClientRect();
        return [r.left + L._size.l + L.xaxis.l2p(t.x[0]), r.top + L._size.t + L.yaxis.l2p(t.y[0])]; }""")
    page.mouse.click(x, y)
    page.get_by_text(re.compile(r"Test image #\d+")).wait_for(timeout=30_000)
    page.wait_for_function("(n) => document.querySelectorAll(\"[data-testid='stMain'] [data-testid='stImage'] img\")"
                           ".length > n", arg=before)
    assert not exceptions_on(page)


def test_decoder_slider_changes_the_image(page, server):
    """The z1 control (decoded in the browser, ui/latent_pad.py): arrow keys redraw the digit, the release
    commits z to the server's number box. The server-side sliders: tests/e2e/test_browser_decoder.py."""
    open_page(page, server.url)
    go_to(page, "Decoder")
    digit = page.locator("canvas[aria-label='Decoded digit']")
    digit.wait_for()
    page.wait_for_function("() => document.querySelector('.lp-root')?.dataset.frames", timeout=60_000)
    wait_idle(page)
    before = digit.evaluate("c => c.toDataURL()")
    caption = page.get_by_text(re.compile(r"^z = \(")).first.inner_text()
    page.get_by_role("slider", name="z1").focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("(src) => { const c = document.querySelector(\"canvas[aria-label='Decoded digit']\");"
                           " return c !== null && c.toDataURL() !== src; }",
                           arg=before)
    assert page.get_by_text(re.compile(r"^z = \(")).first.inner_text() != caption
    page.wait_for_function("() => document.querySelector(\"input[aria-label='z1 exactly']\")?.value === '1.500'",
                           timeout=30_000)
    wait_idle(page)
    assert not exceptions_on(page)


def test_compare_shows_label_rows_and_quadrant_rows(page, server):
    open_page(page, server.url)
    go_to(page, "Compare CVAE vs GSNN")
    for heading in ("GSNN", "CVAE", "Hybrid"):
        page.get_by_role("heading", name=heading, exact=True).wait_for()
    for row in ("GSNN", "CVAE", "Hybrid"):
        page.get_by_text(re.compile(rf"^{row} · .* · diversity \d+\.\d\d$")).wait_for()
    page.get_by_text("Truth", exact=True).wait_for()
    page.locator("[data-testid='stDataFrame']").wait_for()
    wait_idle(page)
    assert len(image_srcs(page)) >= 3 + 3 + 3  # label grids, input/truth/baseline, three sample rows
    assert not exceptions_on(page)


def test_a_deep_link_on_a_fresh_server_goes_through_app_py(browser, e2e_env, tmp_path):
    """The first request after `streamlit run` opens /latent_map directly: ui/routing.py must send it through
    app.py, so the page has the grouped menu and no automatic one listing "app"."""
    from harness import VIEWPORT, streamlit_server

    with streamlit_server(e2e_env, log=tmp_path / "streamlit.log") as fresh:
        context = browser.new_context(viewport=VIEWPORT)
        try:
            page = context.new_page()
            open_page(page, fresh.url, "latent_map", timeout=60_000)
            page.locator("h1", has_text="Latent map").first.wait_for(timeout=60_000)
            wait_idle(page, timeout=60_000)
            assert not exceptions_on(page)
            nav = page.get_by_test_id("stSidebarNav").inner_text()
            assert "Explore" in nav and "Compare CVAE vs GSNN" in nav
            assert "app" not in nav.split()
        finally:
            context.close()

"""Issue 23 by hand, in chromium: the β slider moved on the Latent map and the Decoder (the map and the manifold
change, the rate-distortion chart follows), a hover over the classifier's layer between the dots (its top three
classes), a click on a dot over that layer (still selects), and the thumbnails view toggled and its density
changed. After each action: no exception box."""
from __future__ import annotations

import re

import pytest

from harness import (choose_in_picker, exceptions_on, go_to, most_seen, open_page, picker_value, plot_eval, wait_idle,
                     wait_picker, watch_most)

pytestmark = pytest.mark.e2e

MAP = ".st-key-latent_map_chart .js-plotly-plot"
RD = ".st-key-beta_sweep_chart .js-plotly-plot"
BETA = "β, the weight of the KL term"
CHART = "document.querySelector(arg[0])"


def chart_ready(page, selector: str) -> None:
    page.wait_for_function("(sel) => { const g = document.querySelector(sel); return g && g._fullLayout && "
                           "g._fullData && g._fullData.length; }", arg=selector, timeout=60_000)
    wait_idle(page)


def on_chart(page, selector: str, body: str, *args):
    """`body`, a JS function of (gd, [selector, ...args]), on the chart `selector` finds once it is drawn."""
    return plot_eval(page, CHART, body, [selector, *args])


def open_on(page, server, title: str, model: str) -> None:
    open_page(page, server.url)
    go_to(page, title)
    if picker_value(page) != model:
        choose_in_picker(page, model)
    wait_idle(page)


def move_beta(page, key: str, want_model: str) -> None:
    """Step the β slider with the keyboard (as a hand on a keyboard, or a drag of one notch) and wait for the page
    to show the sweep's model of that β. The slider stays one widget: a new one stood beside the old while the
    script ran, shifting the page below by a slider's height."""
    watch_most(page, "[class*='st-key-beta_sweep_beta_']")
    slider = page.get_by_role("slider", name=BETA)
    slider.focus()
    page.keyboard.press(key)
    wait_picker(page, want_model, timeout=60_000)
    wait_idle(page)
    assert most_seen(page) == 1, "two β sliders at once"


def first_points(page) -> list[float]:
    return on_chart(page, MAP, "(gd) => Array.from(gd._fullData[0].x.slice(0, 20)).map(Number)")


def ringed(page) -> list[float]:
    """Where the rate-distortion chart rings the current model."""
    return on_chart(page, RD, """(gd) => { const t = gd._fullData.find(d => (d.name || '').startsWith('this model'));
        return t ? [Number(t.x[0]), Number(t.y[0])] : null; }""")


def test_the_beta_slider_moves_the_map_and_the_manifold(page, server):
    open_on(page, server, "Latent map", "vae_2d_beta05")
    chart_ready(page, MAP)
    chart_ready(page, RD)
    before, ring_before = first_points(page), ringed(page)
    assert len(on_chart(page, RD, "(gd) => gd._fullData.find(d => (d.name || '').startsWith('β sweep')).x")) == 3

    move_beta(page, "ArrowRight", "vae_2d_beta2")
    chart_ready(page, MAP)
    assert not exceptions_on(page)
    assert first_points(page) != before, "the map shows the β = 2 model's latent means"
    assert ringed(page) != ring_before, "the ring on the rate-distortion chart moved to β = 2"
    spread_2 = on_chart(page, MAP, "(gd) => { const x = gd._fullData.flatMap(t => Array.from(t.x || []));"
                                   " return Math.max(...x) - Math.min(...x); }")

    move_beta(page, "ArrowRight", "vae_2d_beta8")
    chart_ready(page, MAP)
    assert not exceptions_on(page)
    spread_8 = on_chart(page, MAP, "(gd) => { const x = gd._fullData.flatMap(t => Array.from(t.x || []));"
                                   " return Math.max(...x) - Math.min(...x); }")
    assert spread_8 != spread_2

    # the Decoder shows the same model; a move there redraws the manifold and keeps z
    go_to(page, "Decoder")
    wait_picker(page, "vae_2d_beta8")
    toggle = page.locator(".st-key-browser_decode input")
    if toggle.is_checked():
        page.get_by_test_id("stSidebar").get_by_text("Decode in the browser").click()
        wait_idle(page)
    # the server's explorer is drawn (its sliders and its decoded image with the z it shows): a box typed into
    # while the switch's rerun was still to come was replaced by it, and the typed z was lost (under load)
    page.locator(".st-key-decoder_slider_0").wait_for(timeout=60_000)
    page.locator("[data-testid='stMain'] [data-testid='stImage']", has_text="z = (").first.wait_for(timeout=60_000)
    wait_idle(page)
    grid = "[class*='st-key-decoder_grid_'] .js-plotly-plot"
    page.locator(grid).first.wait_for(timeout=60_000)
    box = page.get_by_label("z1 exactly")
    box.fill("1.5")
    box.press("Enter")
    page.get_by_text(re.compile(r"^z = \(1\.50, ")).first.wait_for(timeout=30_000)
    wait_idle(page)
    manifold = lambda: plot_eval(page, f"document.querySelector(\"{grid}\")",  # noqa: E731
                                 "(gd) => gd._fullLayout.images[0].source")
    sharp = manifold()
    move_beta(page, "ArrowLeft", "vae_2d_beta2")
    page.locator(grid).first.wait_for(timeout=60_000)
    page.wait_for_function("([sel, old]) => { const g = document.querySelector(sel);"
                           " return g && g._fullLayout && g._fullLayout.images.length && "
                           "g._fullLayout.images[0].source !== old; }", arg=[grid, sharp], timeout=60_000)
    assert page.get_by_text(re.compile(r"^z = \(1\.50, ")).first.is_visible(), "the latent code stayed"
    assert not exceptions_on(page)


def empty_spot(page) -> list[float] | None:
    """A point of the classifier's layer at least 25 px from every shown dot (Plotly gives the hover to a dot
    within 20 px, else to the layer),
    in page coordinates."""
    return on_chart(page, MAP, """(gd) => { const L = gd._fullLayout, r = gd.getBoundingClientRect();
        const dots = [];
        gd._fullData.forEach(t => { if (t.type !== 'scattergl' || t.visible !== true) return;
            for (let i = 0; i < t.x.length; i++) dots.push([L.xaxis.l2p(t.x[i]), L.yaxis.l2p(t.y[i])]); });
        const heat = gd._fullData.find(t => t.type === 'heatmap');
        const xs = heat.x, ys = heat.y; let best = null, far = 0;
        for (let i = 2; i < ys.length - 2; i += 3) for (let j = 2; j < xs.length - 2; j += 3) {
            const px = L.xaxis.l2p(xs[j]), py = L.yaxis.l2p(ys[i]);
            if (px < 5 || py < 5 || px > L.xaxis._length - 5 || py > L.yaxis._length - 5) continue;
            let near = Infinity;
            for (const d of dots) { const dd = (d[0] - px) ** 2 + (d[1] - py) ** 2; if (dd < near) near = dd; }
            if (near > far) { far = near; best = [r.left + L.xaxis._offset + px, r.top + L.yaxis._offset + py]; }
        }
        return far > 625 ? best : null; }""")


def test_hovering_the_classifier_layer_shows_its_top_three_and_a_click_still_selects(page, server):
    open_on(page, server, "Latent map", "vae_2d (vae_2d)")
    chart_ready(page, MAP)
    page.get_by_test_id("stSidebar").get_by_text("Classifier's reading underneath").click()
    page.get_by_text(re.compile("what the digit classifier reads")).wait_for(timeout=60_000)
    chart_ready(page, MAP)
    page.wait_for_function("(sel) => { const g = document.querySelector(sel); return g && g._fullData &&"
                           " g._fullData.some(t => t.type === 'heatmap') && g._fullLayout.images.length === 1; }",
                           arg=MAP, timeout=60_000)
    # 10,000 dots leave no room between them: hide all classes but the first from the legend, as a hand would
    # (one click at a time: two within Plotly's double-click delay would isolate a class instead)
    legend = page.locator(f"{MAP} .legend .traces")
    for i in range(legend.count() - 1, 0, -1):
        legend.nth(i).click()
        page.wait_for_function("([sel, n]) => document.querySelector(sel)._fullData.filter(t => t.type === "
                               "'scattergl' && t.visible === true).length === n", arg=[MAP, i], timeout=30_000)
        page.wait_for_timeout(400)   # past Plotly's double-click delay (300 ms), not a wait for the app
    spot = empty_spot(page)
    assert spot is not None, "no spot of the layer 25 px away from every shown dot"
    page.mouse.move(spot[0] - 3, spot[1] - 3)
    page.mouse.move(*spot)
    label = page.locator(f"{MAP} .hoverlayer .hovertext").first
    label.wait_for(timeout=30_000)
    lines = label.evaluate("(el) => [...el.querySelectorAll('tspan.line')].map(t => t.textContent)")
    text = "\n".join(lines)
    assert "the classifier reads" in text
    shares = re.findall(r"^\s*\S+: (\d+)%$", text, flags=re.M)
    assert len(shares) == 3 and sum(map(int, shares)) <= 101, text

    # a click on a dot still selects its test image over the layer
    x, y = on_chart(page, MAP, """(gd) => { const L = gd._fullLayout, r = gd.getBoundingClientRect(),
        t = gd._fullData.find(d => d.type === 'scattergl' && d.visible === true);
        return [r.left + L.xaxis._offset + L.xaxis.l2p(t.x[0]), r.top + L.yaxis._offset + L.yaxis.l2p(t.y[0])]; }""")
    page.mouse.move(x, y)     # a hand comes to rest on the dot (Plotly gives it the hover), then clicks
    page.wait_for_function("(sel) => { const h = document.querySelector(sel)._hoverdata;"
                           " return h && h.length && h[0].fullData.type === 'scattergl'; }", arg=MAP, timeout=30_000)
    page.mouse.click(x, y)
    page.get_by_text(re.compile(r"Test image #\d+")).first.wait_for(timeout=30_000)
    wait_idle(page)
    # and a click between the dots (on the layer) breaks nothing
    page.mouse.click(*spot)
    wait_idle(page)
    assert not exceptions_on(page)


def test_thumbnails_toggled_and_their_density_changed(page, server):
    open_on(page, server, "Latent map", "vae_2d (vae_2d)")
    chart_ready(page, MAP)
    page.get_by_test_id("stSidebar").get_by_text("Test images as thumbnails").click()
    note = page.get_by_text(re.compile(r"Underneath: [\d,]+ of the test images"))
    note.wait_for(timeout=60_000)
    chart_ready(page, MAP)
    source = lambda: on_chart(page, MAP, "(gd) => gd._fullLayout.images.length === 1 ? "  # noqa: E731
                                         "gd._fullLayout.images[0].source : null")
    first_source = source()
    assert first_source and first_source.startswith("data:image/png")
    shown = lambda: int(re.search(r"Underneath: ([\d,]+)", note.inner_text()).group(1).replace(",", ""))  # noqa: E731
    many = shown()

    density = page.get_by_test_id("stSidebar").get_by_role("slider", name="Thumbnails")
    density.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")                      # 1,000 -> 200
    page.wait_for_function("([sel, old]) => { const g = document.querySelector(sel); return g && g._fullLayout"
                           " && g._fullLayout.images.length === 1 && g._fullLayout.images[0].source !== old; }",
                           arg=[MAP, first_source], timeout=60_000)
    wait_idle(page)
    assert not exceptions_on(page)
    assert shown() <= 200 < many or shown() < many

    page.get_by_test_id("stSidebar").get_by_text("Test images as thumbnails").click()   # off again
    page.wait_for_function("(sel) => { const g = document.querySelector(sel); return g && g._fullLayout"
                           " && g._fullLayout.images.length === 0; }", arg=MAP, timeout=60_000)
    wait_idle(page)
    assert not exceptions_on(page)

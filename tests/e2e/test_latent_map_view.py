"""The Latent map in a real browser: a selection survives every view change, and the decoded digits under
the dots stay legible (issue 9, fault 5)."""
from __future__ import annotations

import re

import pytest

from harness import exceptions_on, go_to, open_page, plot_eval, plot_settles_on, wait_idle

pytestmark = pytest.mark.e2e

MAP = "[data-testid='stMain'] [data-testid='stPlotlyChart'] .js-plotly-plot"

# the last drawn map (a rerun can briefly leave the old one beside it)
GD = (f"(() => {{ const all = [...document.querySelectorAll(\"{MAP}\")].filter(g => !g.closest('[data-stale=true]'));"
      " return all[all.length - 1]; })()")


def wait_map(page) -> None:
    page.wait_for_function(f"() => {{ const gd = {GD}; return gd && gd._fullLayout && gd._fullData && "
                           "gd._fullData.length > 0; }")
    wait_idle(page)


def screen_xy(page, trace: int, point: int) -> tuple[float, float]:
    """Where a point of a trace is on the screen, from Plotly's own axes."""
    return plot_eval(page, GD, """(gd, [t, i]) => { const L = gd._fullLayout, d = gd._fullData[t],
        r = gd.getBoundingClientRect();
        return [r.left + L._size.l + L.xaxis.l2p(d.x[i]), r.top + L._size.t + L.yaxis.l2p(d.y[i])]; }""",
                     [trace, point])


# the test-set rows the drawn map marks as selected (each trace's selectedpoints, through customdata)
SELECTED_JS = """(gd) => { const out = [];
    gd._fullData.forEach((t, k) => { const sel = gd.data[k].selectedpoints;
        if (sel && sel.length !== undefined) for (const i of sel) out.push(Number(t.customdata[i])); });
    return out.sort((a, b) => a - b); }"""


def selected_rows(page, want: list[int]) -> list[int]:
    """The rows the map marks, once they are `want` (or after 15 s: then what it marks, for the assert)."""
    return plot_settles_on(page, GD, SELECTED_JS, want)


def shown_image_number(page) -> int:
    text = page.get_by_text(re.compile(r"Test image #\d+")).first.inner_text()
    return int(re.search(r"#(\d+)", text).group(1))


def toggle_background(page) -> None:
    page.get_by_test_id("stSidebar").get_by_text("Decoded digits underneath").click()
    wait_idle(page)
    wait_map(page)


def test_a_clicked_point_stays_selected_through_view_toggles(page, server):
    open_page(page, server.url)
    go_to(page, "Latent map")
    wait_map(page)
    x, y = screen_xy(page, 0, 0)
    page.mouse.click(x, y)
    page.get_by_text(re.compile(r"Test image #\d+")).wait_for()
    row = shown_image_number(page)
    wait_map(page)
    assert selected_rows(page, [row]) == [row]              # the picture marks what the panel shows

    toggle_background(page)                                 # on: decoded digits underneath
    page.get_by_text(f"Test image #{row}").wait_for()
    # the click's rerun may not have begun when toggle_background's wait_idle looked: wait for the new figure
    assert plot_settles_on(page, GD, "(gd) => gd._fullLayout.images.length", 1) == 1
    assert selected_rows(page, [row]) == [row]
    legible = plot_eval(page, GD, """(gd) => [gd._fullLayout.images.length ? gd._fullLayout.images[0].opacity : null,
                                       Math.max(...gd._fullData.map(t => t.marker.opacity))]""")
    assert legible[0] is not None and legible[0] >= 0.8     # the digits nearly opaque ...
    assert legible[1] <= 0.4                                # ... and the dots pale over them

    toggle_background(page)                                 # off again
    page.get_by_text(f"Test image #{row}").wait_for()
    assert selected_rows(page, [row]) == [row]
    dot = page.get_by_test_id("stSidebar").get_by_role("slider", name="Dot size")
    dot.focus()
    page.keyboard.press("ArrowRight")                       # another dot size: another figure
    wait_idle(page)
    wait_map(page)
    page.get_by_text(f"Test image #{row}").wait_for()
    assert selected_rows(page, [row]) == [row]
    assert not exceptions_on(page)

    page.get_by_role("button", name=re.compile("Clear selection")).click()
    page.get_by_text("Nothing selected yet").wait_for()
    wait_map(page)
    assert selected_rows(page, []) == []
    assert not exceptions_on(page)


def test_a_box_selection_survives_the_background_toggle(page, server):
    open_page(page, server.url)
    go_to(page, "Latent map")
    wait_map(page)
    page.locator(f"{MAP} .modebar-btn[data-val='select']").last.click()   # the box tool
    box = plot_eval(page, GD, """(gd) => { const L = gd._fullLayout, r = gd.getBoundingClientRect();
        return [r.left + L._size.l, r.top + L._size.t, L._size.w, L._size.h]; }""")
    left, top, width, height = box
    page.mouse.move(left + width * 0.3, top + height * 0.3)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(left + width * (0.3 + 0.04 * k), top + height * (0.3 + 0.04 * k))
    page.mouse.up()
    summary = page.get_by_text(re.compile(r"^[\d,]+ digits selected$"))
    summary.wait_for()
    count = summary.inner_text()
    toggle_background(page)
    page.get_by_text(count, exact=True).wait_for()
    n = int(count.split()[0].replace(",", ""))
    assert plot_settles_on(page, GD, f"(gd) => ({SELECTED_JS})(gd).length", n) == n
    assert not exceptions_on(page)

"""The pages the way a hand uses them (issue 9): in chromium, on every page, click every clickable thing
(links, buttons, radio options, toggles, legend entries, manifold cells, map points, the picker's
options), drag the sliders with the mouse, type into every number box; after each action no exception
box may show and the controls and the picture must agree.

One test per page, each bounded in time (WALK_SECONDS): the whole e2e folder stays a few minutes. Train's
Start is pressed with tiny settings and stopped.
"""
from __future__ import annotations

import re
import time

import pytest

from vae_core import VARIANTS

from harness import (PICKER, exceptions_on, go_to, open_options, open_page, option_texts, plot_eval, select_option,
                     wait_idle, wait_picker)

pytestmark = pytest.mark.e2e

WALK_SECONDS = 240          # per page, under load; a quiet machine takes a fraction
MAIN = "[data-testid='stMain']"
SIDEBAR = "[data-testid='stSidebar']"
CHARTS = (f"{MAIN} [data-testid='stPlotlyChart'] .js-plotly-plot")
# the charts of the finished run (a rerun leaves the old ones marked stale for a moment)
LIVE_CHARTS = f"[...document.querySelectorAll(\"{CHARTS}\")].filter(g => !g.closest('[data-stale=true]'))"


AGREE_SECONDS = 15          # how long controls and picture may take to agree after an action


def settle(page, start_within_ms: float = 1_500) -> None:
    """Let the script run an action started come and go: wait (briefly) for Streamlit's running
    indicator to show, then for the page to be idle. A run that ended before we looked is fine too."""
    try:
        page.locator("[data-testid='stStatusWidgetRunningIcon']").wait_for(timeout=start_within_ms)
    except Exception:  # noqa: BLE001 - it came and went, or the action started none
        pass
    wait_idle(page, 60_000)


class Hand:
    """Acts on a page and checks it after every action; `agree` is the page's own check of controls
    against picture (a function of the playwright page returning a list of disagreements)."""

    def __init__(self, page, agree=None, seconds: float = WALK_SECONDS):
        self.page, self.agree = page, agree
        self.deadline = time.monotonic() + seconds
        self.actions: list[str] = []

    def after(self, what: str, rerun: bool = True) -> None:
        """Check the page after an action: once its script run (if it starts one) has ended, no exception
        shows, and controls and picture agree (given AGREE_SECONDS to catch up: a run can start late)."""
        self.actions.append(what)
        if rerun:
            settle(self.page)
        wait_idle(self.page, 60_000)
        shown = exceptions_on(self.page)
        assert not shown, f"after {what!r}: {shown[0][:500]}"
        if self.agree is not None:
            give_up = time.monotonic() + AGREE_SECONDS
            while (problems := self.agree(self.page)) and time.monotonic() < give_up:
                self.page.wait_for_timeout(250)
                wait_idle(self.page, 60_000)
            assert not problems, f"after {what!r}: controls and picture disagree: {problems}"
            assert not exceptions_on(self.page), f"after {what!r}: {exceptions_on(self.page)[0][:500]}"
        assert time.monotonic() < self.deadline, f"the walk ran past {WALK_SECONDS} s after {len(self.actions)} actions"

    # ------------------------------------------------------------------ actions
    def click(self, locator, what: str) -> None:
        locator.click()
        self.after(what)

    def drag_slider(self, slider_input, what: str, dx: float = 40) -> None:
        """Drag a Streamlit slider's thumb with the mouse (its range input sits under the thumb)."""
        thumb = slider_input.locator("xpath=..").bounding_box()   # the visible thumb holds the range input
        x, y = thumb["x"] + thumb["width"] / 2, thumb["y"] + thumb["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        for k in range(1, 6):
            self.page.mouse.move(x + dx * k / 5, y)
        self.page.mouse.up()
        self.after(what)

    def type_number(self, box, value, what: str) -> None:
        box.fill(str(value))
        box.press("Enter")
        self.after(what)

    def every_picker_option(self, back_to: str) -> None:
        picker = self.page.locator(PICKER).first
        for option in option_texts(self.page, picker):
            select_option(self.page, picker, option)
            wait_picker(self.page, option, 60_000)
            self.after(f"picker: {option}")
        select_option(self.page, picker, back_to)
        wait_picker(self.page, back_to, 60_000)
        self.after(f"picker back to {back_to}")

    def every_radio_option(self, scope: str) -> None:
        for group in self.page.locator(f"{scope} [data-testid='stRadio']").all():
            for option in group.locator("label").all():
                self.click(option, f"radio {option.inner_text()!r}")

    def every_slider(self, scope: str) -> None:
        for k in range(self.page.locator(f"{scope} [data-testid='stSlider'] input[type=range]").count()):
            slider = self.page.locator(f"{scope} [data-testid='stSlider'] input[type=range]").nth(k)
            self.drag_slider(slider, f"drag slider {slider.get_attribute('aria-label')!r}")

    def every_legend_entry(self) -> None:
        """Click each legend entry of each chart (hides that class), check the trace is hidden, click again."""
        count = self.page.evaluate(f"() => {LIVE_CHARTS}.length")
        for c in range(count):
            entries = self.page.locator(CHARTS).nth(c).locator(".legend .traces")
            for k in range(entries.count()):
                name = entries.nth(k).text_content()
                entries.nth(k).click()
                self.page.wait_for_function(
                    f"([c, name]) => {{ const gd = {LIVE_CHARTS}[c];"
                    " return (gd && gd._fullData || []).some(t => t.name === name && t.visible === 'legendonly'); }",
                    arg=[c, name])
                self.after(f"legend entry {name!r} off", rerun=False)
                entries.nth(k).click()
                self.page.wait_for_function(
                    f"([c, name]) => {{ const gd = {LIVE_CHARTS}[c];"
                    " return (gd && gd._fullData || []).some(t => t.name === name && t.visible === true); }",
                    arg=[c, name])
                self.after(f"legend entry {name!r} on", rerun=False)


def chart_point(page, chart: int, trace: int, point: int) -> tuple[float, float]:
    """Where a point of a chart's trace is on the screen, from Plotly's own axes."""
    return plot_eval(page, f"{LIVE_CHARTS}[arg[0]]", """(gd, [c, t, i]) => {
        const L = gd._fullLayout, d = gd._fullData[t], r = gd.getBoundingClientRect();
        const xa = d.xaxis ? L[d.xaxis.replace('x', 'xaxis')] : L.xaxis, ya = d.yaxis ? L[d.yaxis.replace('y', 'yaxis')] : L.yaxis;
        return [r.left + xa._offset + xa.l2p(d.x[i]), r.top + ya._offset + ya.l2p(d.y[i])]; }""", [chart, trace, point])


# ----------------------------------------------------------------------------- the pages' own agreements

def latent_map_agrees(page) -> list[str]:
    """The panel names the image the map marks as selected; a class hidden in the legend is hidden."""
    problems = []
    if not page.locator(CHARTS).count():        # this model's page draws no map: nothing to compare
        return problems
    marked = plot_eval(page, f"{LIVE_CHARTS}[0]", """(gd) => { const out = [];
        gd._fullData.forEach((t, k) => { const sel = gd.data[k].selectedpoints;
            if (sel && sel.length !== undefined) for (const i of sel) out.push(Number(t.customdata[i])); });
        return out; }""")
    panel = page.get_by_text(re.compile(r"^Test image #\d+")).all_inner_texts()
    if panel and marked is not None:
        row = int(re.search(r"#(\d+)", panel[0]).group(1))
        if marked != [row]:
            problems.append(f"the panel shows test image #{row}, the map marks {marked}")
    return problems


Z_CAPTION = re.compile(r"^z = \(([^)]*)\)")


def decoder_agrees(page) -> list[str]:
    """The caption's z, the sliders (or latent pads) and the number boxes all show the same point."""
    caption = [t for t in page.locator(f"{MAIN} [data-testid='stImage']").all_inner_texts() if Z_CAPTION.match(t.strip())]
    if not caption:
        return []
    shown = [float(v) for v in Z_CAPTION.match(caption[0].strip()).group(1).replace("…", "").split(",") if v.strip()]
    problems = []
    controls = page.evaluate(f"""() => {{ const out = {{}};
        for (const e of document.querySelectorAll("{MAIN} [role=slider][aria-label], {MAIN} input[type=range][aria-label]")) {{
            const name = e.getAttribute('aria-label'); if (!/^z\\d+$/.test(name)) continue;
            out['slider ' + name] = Number(e.getAttribute('aria-valuenow') ?? e.value); }}
        for (const e of document.querySelectorAll("{MAIN} input[type=number][aria-label$=' exactly']")) {{
            out['number ' + e.getAttribute('aria-label')] = Number(e.value); }}
        return out; }}""")
    for name, value in controls.items():
        d = int(re.search(r"z(\d+)", name).group(1)) - 1
        # the caption rounds to 0.01, a number box to 0.001, a slider to its step of 0.01
        if d < len(shown) and abs(value - shown[d]) > (0.011 if name.startswith("slider") else 0.006):
            problems.append(f"{name} = {value} but the picture is decoded at z{d + 1} = {shown[d]}")
    return problems


def compare_agrees(page) -> list[str]:
    """The caption of the label samples names as many noise draws as the slider asks for."""
    slider = page.locator(f"{MAIN} input[type=range][aria-label='Samples per class']")
    caption = page.get_by_text(re.compile(r"columns: \d+ noise draws")).all_inner_texts()
    if slider.count() and caption:
        n = int(re.search(r"columns: (\d+) noise", caption[0]).group(1))
        if n != int(float(slider.first.input_value())):
            return [f"the slider asks for {slider.first.input_value()} samples, the caption says {n}"]
    return []


def train_agrees(page) -> list[str]:
    """'Will train a <model> model on <data set>' names the chosen variant and data set."""
    note = page.get_by_text(re.compile(r"^Will train a")).all_inner_texts()
    variant = page.locator(f"{MAIN} .st-key-train_variant input").input_value() if page.locator(
        f"{MAIN} .st-key-train_variant input").count() else None
    dataset = page.locator(f"{MAIN} .st-key-train_dataset input")
    if not note or variant is None:
        return []
    words = {kind.title: name for name, kind in VARIANTS.items()}   # what the box shows -> what the note says
    problems = []
    if variant in words and not re.search(rf"\b{re.escape(words[variant])}\b", note[0]):
        problems.append(f"variant {variant} but the note says {note[0]!r}")
    if dataset.count() and not note[0].rstrip(".").endswith(dataset.input_value()):
        problems.append(f"data set {dataset.input_value()} but the note says {note[0]!r}")
    return problems


# ----------------------------------------------------------------------------- the walks

def test_walk_home(page, server):
    open_page(page, server.url)
    hand = Hand(page)
    hand.after("open Home")
    for k in range(page.locator(f"{MAIN} [data-testid='stPageLink'] a").count()):
        link = page.locator(f"{MAIN} [data-testid='stPageLink'] a").nth(k)
        text = link.inner_text()
        link.click()
        page.locator("h1", has_text="Latent Lab").wait_for(state="detached")   # another page opened
        page.locator("h1").first.wait_for()
        hand.after(f"step link {text!r}")
        go_to(page, "Home", "Latent Lab")
        hand.after("back to Home")
    hand.click(page.get_by_text("Scores, training and files"), "expander")
    hand.click(page.get_by_text("The variants Latent Lab trains"), "expander")
    for kind in VARIANTS.values():   # the registry's table: a row per variant, readable as a table
        cell = page.locator(f"{MAIN} [data-testid='stMarkdownContainer'] table td",
                            has_text=re.compile(rf"^{re.escape(kind.title)}$"))
        cell.first.wait_for(timeout=10_000)


def test_walk_latent_map(page, server):
    open_page(page, server.url)
    go_to(page, "Latent map")
    hand = Hand(page, latent_map_agrees)
    hand.after("open Latent map")
    default = page.locator(PICKER).first.input_value()
    hand.every_picker_option(back_to=default)
    panel_js = ("() => { const m = document.querySelector(\"[data-testid='stMain']\").innerText.match(/Test image #(\\d+)/);"
                " return m ? m[1] : null; }")
    for trace, point in ((0, 0), (1, 3), (2, 5)):
        before = page.evaluate(panel_js)
        x, y = chart_point(page, 0, trace, point)
        page.mouse.click(x, y)
        page.wait_for_function(f"(before) => {{ const now = ({panel_js})(); return now !== null && now !== before; }}",
                               arg=before)
        hand.after(f"click map point {trace}/{point}")
    for toggle in page.locator(f"{SIDEBAR} [data-testid='stCheckbox'] label").all():
        hand.click(toggle, "toggle on")
        hand.click(toggle, "toggle off")
    hand.every_slider(SIDEBAR)
    hand.every_legend_entry()
    page.get_by_role("button", name=re.compile("Clear selection")).click()
    page.get_by_text("Nothing selected yet").wait_for()
    hand.after("Clear selection")


def test_walk_decoder(page, server):
    open_page(page, server.url)
    go_to(page, "Decoder")
    hand = Hand(page, decoder_agrees)
    hand.after("open Decoder")
    default = page.locator(PICKER).first.input_value()
    hand.every_picker_option(back_to=default)
    hand.every_slider(MAIN)
    for k in range(page.locator(f"{MAIN} input[type=number]").count()):
        box = page.locator(f"{MAIN} input[type=number]").nth(k)
        label = box.get_attribute("aria-label") or f"number {k}"
        value = 1.25 if "exactly" in label else 3
        hand.type_number(box, value, f"type {value} into {label!r}")
    for name in ("Sample", "Centre", "Start = sliders", "End = sliders", "Random ends"):
        button = page.get_by_role("button", name=re.compile(rf"{re.escape(name)}$"))
        if button.count():
            hand.click(button.first, f"button {name}")
    # the manifold: click a few cells (corners and centre) through Plotly's own axes
    cells = page.evaluate(f"() => {LIVE_CHARTS}.findIndex(g => (g._fullData || []).some(t => t.x && t.x.length >= 100))")
    if cells >= 0:
        trace = plot_eval(page, f"{LIVE_CHARTS}[arg]", "(gd) => gd._fullData.findIndex(t => t.x && t.x.length >= 100)",
                          cells)
        n = plot_eval(page, f"{LIVE_CHARTS}[arg[0]]", "(gd, [c, t]) => gd._fullData[t].x.length", [cells, trace])
        for i in (0, n - 1, n // 2):
            cells_now = page.evaluate(f"() => {LIVE_CHARTS}.findIndex(g => (g._fullData || []).some(t => t.x && t.x.length >= 100))")
            x, y = chart_point(page, cells_now, trace, i)
            page.mouse.click(x, y)
            hand.after(f"click manifold cell {i}")
    hand.every_radio_option(MAIN)
    for name in ("Start = sliders", "End = sliders"):
        button = page.get_by_role("button", name=re.compile(rf"{re.escape(name)}$"))
        if button.count():
            hand.click(button.first, f"button {name} (again)")
    for label in ("PNG", "GIF", "PNG strip"):
        button = page.get_by_role("button", name=re.compile(rf"{label}$"))
        if button.count():
            with page.expect_download():
                button.first.click()
            hand.after(f"download {label}")


def test_walk_compare(page, server):
    open_page(page, server.url)
    go_to(page, "Compare CVAE vs GSNN")
    page.get_by_role("button", name="Figure (PNG)").wait_for(timeout=90_000)
    hand = Hand(page, compare_agrees)
    hand.after("open Compare")
    hand.click(page.get_by_role("button", name="Remove 3"), "remove class 3")
    hand.click(page.locator(f"{MAIN} [data-testid='stMultiSelect'] button[aria-label='Clear all']"), "clear all classes")
    page.get_by_text("Pick at least one class.").wait_for()
    classes = page.locator(f"{MAIN} [data-testid='stMultiSelect'] input").first
    open_options(page, classes)
    page.get_by_role("option", name="7", exact=True).click()
    page.keyboard.press("Escape")
    hand.after("add class 7")
    hand.every_slider(MAIN)
    for k in range(page.locator(f"{MAIN} input[type=number]").count()):
        box = page.locator(f"{MAIN} input[type=number]").nth(k)
        hand.type_number(box, 4, f"type 4 into {box.get_attribute('aria-label')!r}")
    hand.every_radio_option(MAIN)
    hand.click(page.get_by_role("button", name=re.compile("Random digit$")), "Random digit")
    for k in range(page.locator(f"{MAIN} [data-testid='stDownloadButton'] button").count()):
        button = page.locator(f"{MAIN} [data-testid='stDownloadButton'] button").nth(k)
        with page.expect_download():
            button.click()
        hand.after(f"download {k}")


def test_walk_train(page, server):
    open_page(page, server.url)
    go_to(page, "Train", "Train a model")
    hand = Hand(page, train_agrees)
    hand.after("open Train")
    variant = page.locator(f"{MAIN} .st-key-train_variant input")
    for option in option_texts(page, variant):
        select_option(page, variant, option)
        hand.after(f"variant {option}")
        if option != "Hybrid":   # the hybrid shows every other select box: their options are walked there
            continue
        for key in ("train_condition", "train_quadrants", "train_prior", "train_dataset"):
            box = page.locator(f"{MAIN} .st-key-{key} input")
            if not box.count():
                continue
            for choice in option_texts(page, box):
                select_option(page, box, choice)
                hand.after(f"{key} {choice}")
    select_option(page, variant, "VAE")
    hand.after("variant VAE")
    select_option(page, page.locator(f"{MAIN} .st-key-train_dataset input"), "mnist")
    hand.after("data set mnist")
    for key, value in (("train_latent", 2), ("train_beta_vae", 0.5), ("train_seed", 7), ("train_epochs", 200)):
        hand.type_number(page.locator(f"{MAIN} .st-key-{key} input"), value, f"type {value} into {key}")
    hidden = page.locator(f"{MAIN} .st-key-train_hidden input")
    hidden.fill("16")
    hidden.press("Enter")
    hand.after("hidden layers 16")
    hand.every_slider(MAIN)
    # a long run at batch 16, started and stopped
    page.locator(".st-key-train_batch").get_by_role("slider").press("Home")
    page.locator(".st-key-train_images").get_by_role("slider").press("Home")
    hand.after("batch 16, 1,000 images")
    hand.click(page.get_by_role("button", name=re.compile("Start training")), "Start training")
    page.get_by_text(re.compile(r"Epoch \d+/200")).wait_for(timeout=90_000)
    page.get_by_role("button", name=re.compile("Stop$")).click()
    page.get_by_text(re.compile("stopped", re.I)).first.wait_for(timeout=60_000)
    hand.after("Stop")

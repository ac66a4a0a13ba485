"""Issue 23, teaching with the models: the β slider and the rate-distortion chart (Latent map and Decoder), the
classifier's borders under the map, and the test images as thumbnails. The browser tests (tests/e2e/
test_teach_browser.py) use them by hand; these check the logic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from apptest_helpers import FIXTURE_BETAS, errors_of, run_a_tiny_job, texts_of

SLIDER = "beta_sweep_beta"   # the β slider's key, and a version for each model it shows (ui/beta_sweep.py)


def beta_of_slider(app):
    """The page's β slider (its key changes with the model it shows)."""
    [slider] = [s for s in app.select_slider if s.key and s.key.startswith(SLIDER + "_")]
    return slider


RD_CHART = "beta_sweep_chart"
MAP = "latent_map_chart"


def open_page(at, page: str, model_name: str):
    at.switch_page(page).run()
    picker = at.sidebar.selectbox[0]
    label = next(o for o in picker.options if o == model_name or o.startswith(model_name + " "))
    picker.select(label).run()
    assert not errors_of(at)
    return at


def chart(at, key: str) -> dict:
    """The Plotly figure of the chart drawn under `key`, as its JSON spec."""
    found = [c for c in at.get("plotly_chart") if key in c.proto.id]
    assert found, f"no chart {key}"
    return json.loads(found[0].proto.spec)


def picked(at) -> str:
    return at.sidebar.selectbox[0].value


def traces_named(fig: dict, start: str) -> list[dict]:
    return [t for t in fig["data"] if str(t.get("name", "")).startswith(start)]


# ----------------------------------------------------------------------------- the β slider
def test_no_beta_slider_for_a_model_outside_a_sweep(app):
    open_page(app, "pages/latent_map.py", "vae_2d")
    assert not [s for s in app.select_slider if s.key and s.key.startswith(SLIDER)]
    assert not [c for c in app.get("plotly_chart") if RD_CHART in c.proto.id]


def test_the_slider_offers_the_sweeps_betas_and_moves_the_map(app):
    open_page(app, "pages/latent_map.py", "vae_2d_beta2")
    slider = beta_of_slider(app)
    assert [float(o) for o in slider.options] == sorted(FIXTURE_BETAS.values())
    assert float(slider.value) == 2.0
    before = chart(app, MAP)["data"][0]["x"]
    beta_of_slider(app).set_value(8.0).run()
    assert not errors_of(app)
    assert picked(app).endswith(".safetensors") and "vae_2d_beta8" in picked(app)
    assert float(beta_of_slider(app).value) == 8.0
    after = chart(app, MAP)["data"][0]["x"]
    assert after != before, "the map shows the other model's latent means"
    # the choice is the session's: the Decoder opens on the same model, with the slider at the same β
    app.switch_page("pages/decoder.py").run()
    assert not errors_of(app)
    assert "vae_2d_beta8" in picked(app) and float(beta_of_slider(app).value) == 8.0


def test_a_selection_survives_a_move_of_the_slider(app):
    open_page(app, "pages/latent_map.py", "vae_2d_beta05")
    app.session_state[MAP] = {"selection": {"points": [{"customdata": 7}], "box": [], "lasso": []}}
    app.run()
    assert "Test image #7" in texts_of(app)
    beta_of_slider(app).set_value(2.0).run()
    assert not errors_of(app) and "vae_2d_beta2" in picked(app)
    assert "Test image #7" in texts_of(app)


def test_the_rate_distortion_chart_places_every_model_and_rings_the_current_one(app):
    open_page(app, "pages/latent_map.py", "vae_2d_beta2")
    fig = chart(app, RD_CHART)
    sweep = traces_named(fig, "β sweep")[0]
    assert len(sweep["x"]) == 3 and sweep["text"] == ["β 0.5", "β 2", "β 8"]
    assert "first 100 test images" in sweep["name"]
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("rate")
    assert fig["layout"]["yaxis"]["title"]["text"].startswith("distortion")
    current = traces_named(fig, "this model")[0]
    i = sweep["text"].index("β 2")
    assert (current["x"][0], current["y"][0]) == (sweep["x"][i], sweep["y"][i])
    # dashed lines of equal -ELBO: rate + distortion is the same at both ends of each
    dashed = [t for t in fig["data"] if t.get("line", {}).get("dash") == "dash"]
    assert len(dashed) >= 2
    for t in dashed:
        assert t["x"][0] + t["y"][0] == pytest.approx(t["x"][1] + t["y"][1])
    # more β, less rate (the KL term's weight grows): the sweep's rates fall along β
    assert sweep["x"][0] > sweep["x"][-1]


def test_the_decoder_slider_keeps_the_latent_code(app):
    open_page(app, "pages/decoder.py", "vae_2d_beta05")
    app.toggle(key="decode_in_browser").set_value(False).run() if any(
        t.key == "decode_in_browser" for t in app.toggle) else None
    app.session_state["decoder_z"] = [1.25, -0.5]
    app.run()
    beta_of_slider(app).set_value(8.0).run()
    assert not errors_of(app) and "vae_2d_beta8" in picked(app)
    assert app.session_state["decoder_z"] == [1.25, -0.5]


def test_your_train_run_joins_the_chart_with_its_test_images_named(app):
    app.switch_page("pages/train.py").run()
    snap = run_a_tiny_job(app)
    assert snap.status == "completed"
    open_page(app, "pages/latent_map.py", "vae_2d_beta2")
    fig = chart(app, RD_CHART)
    runs = traces_named(fig, "your runs")
    assert runs, [t.get("name") for t in fig["data"]]
    assert len(runs[0]["x"]) >= 1 and "first 500 test images" in runs[0]["name"]
    assert "your run: β = 1" in runs[0]["customdata"][0][0]
    assert "other test images than the sweep's" in texts_of(app)


# ----------------------------------------------------------------------------- the classifier's borders
def test_the_classifier_layer_shows_its_top_three_under_the_dots(app):
    open_page(app, "pages/latent_map.py", "vae_2d")
    app.sidebar.toggle(key="latent_background").set_value(True).run()
    app.sidebar.toggle(key="latent_classifier_map").set_value(True).run()
    assert not errors_of(app)
    assert app.sidebar.toggle(key="latent_background").value is False, "one layer at a time"
    fig = chart(app, MAP)
    heat = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(heat) == 1 and len(heat[0]["text"]) == 64 and len(heat[0]["text"][0]) == 64
    top3 = heat[0]["text"][10][20].split("<br>")
    assert len(top3) == 3 and all(part.endswith("%") for part in top3)
    assert sum(int(p.split(": ")[1][:-1]) for p in top3) <= 101
    images = fig["layout"]["images"]
    assert len(images) == 1 and images[0]["source"].startswith("data:image/png") and images[0]["layer"] == "below"
    # the layer's heatmap first, then the dots: Plotly's hover and clicks then go to a dot whenever one is near
    assert fig["data"][0]["type"] == "heatmap" and all(t["type"] == "scattergl" for t in fig["data"][1:])
    assert "what the digit classifier reads" in texts_of(app)


def test_a_label_model_reads_each_label_apart(app):
    open_page(app, "pages/latent_map.py", "cvae_label")
    app.sidebar.toggle(key="latent_classifier_map").set_value(True).run()
    app.sidebar.selectbox(key="latent_background_label").select(7).run()
    assert not errors_of(app)
    assert "decoded as 7" in texts_of(app) and "still reads as 7" in texts_of(app)


def test_no_classifier_layer_for_fashion_mnist(app):
    open_page(app, "pages/latent_map.py", "fashion_vae_2d")
    assert not [t for t in app.sidebar.toggle if t.key == "latent_classifier_map"]
    assert [t for t in app.sidebar.toggle if t.key == "latent_thumbnails"]
    assert "the shipped classifier reads handwritten digits, and this model draws fashion-mnist" in texts_of(app)


def test_a_damaged_classifier_file_is_a_sentence(app, tmp_path, monkeypatch):
    import ui.map_layers as layers
    broken = tmp_path / "mnist-digits.safetensors"
    broken.write_bytes(b"not a classifier" * 8)
    monkeypatch.setattr(layers, "CLASSIFIER_PATH", broken)
    open_page(app, "pages/latent_map.py", "vae_2d")
    app.sidebar.toggle(key="latent_classifier_map").set_value(True).run()
    assert not errors_of(app)
    assert "No classifier layer: the digit classifier could not be read" in texts_of(app)
    assert not [t for t in chart(app, MAP)["data"] if t["type"] == "heatmap"]


def test_a_click_on_a_classifier_cell_selects_nothing_and_breaks_nothing(app):
    from ui.latent_map_tools import selected_indices
    members = [np.array([0, 2]), np.array([1, 3])]
    cell = {"curve_number": 0, "point_index": [4, 5], "x": 0.1, "y": 0.2, "z": 1.2}   # the layer comes first
    assert selected_indices({"selection": {"points": [cell]}}, members, first_curve=1) == []
    dot = {"curve_number": 2, "point_index": 1, "customdata": 3}
    assert selected_indices({"selection": {"points": [cell, dot]}}, members, first_curve=1) == [3]
    bare = {"curve_number": 2, "point_index": 0}                   # no customdata: the class's first member
    assert selected_indices({"selection": {"points": [bare]}}, members, first_curve=1) == [1]
    assert selected_indices({"selection": {"points": [bare]}}, members) == []     # curve 2: no such class


# ----------------------------------------------------------------------------- thumbnails
def test_thumbnails_and_their_density(app):
    open_page(app, "pages/latent_map.py", "vae_2d")
    app.sidebar.toggle(key="latent_thumbnails").set_value(True).run()
    assert not errors_of(app)
    first = chart(app, MAP)["layout"]["images"]
    assert len(first) == 1 and first[0]["source"].startswith("data:image/png")
    shown = lambda: int(next(t for t in texts_of(app).splitlines() if "Underneath:" in t)  # noqa: E731
                        .split("Underneath: ")[1].split(" ")[0].replace(",", ""))
    few = shown()
    assert 0 < few <= 1000
    app.sidebar.select_slider(key="latent_thumbnail_count").set_value(200).run()
    assert not errors_of(app)
    assert shown() <= 200 and chart(app, MAP)["layout"]["images"][0]["source"] != first[0]["source"]
    app.sidebar.select_slider(key="latent_thumbnail_count").set_value(10_000).run()
    assert shown() >= few


def test_thumbnails_without_the_data_set_say_why_in_one_sentence(app, no_data):
    open_page(app, "pages/latent_map.py", "vae_2d")
    app.sidebar.toggle(key="latent_thumbnails").set_value(True).run()
    assert not errors_of(app)
    assert "stores only where each one lands" in texts_of(app)
    assert not chart(app, MAP)["layout"].get("images")


# ----------------------------------------------------------------------------- the pictures' pure parts
def test_spread_subset_keeps_one_point_per_cell_the_nearest_to_its_centre():
    from ui.map_layers import spread_subset
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 100, size=(5000, 2))
    pixels[0] = [15.0, 15.0]                                           # the centre of cell (1, 1) at 10 px
    chosen = spread_subset(pixels, 10_000, 10.0)
    cells = np.floor(pixels[chosen] / 10).astype(int)
    assert len({tuple(c) for c in cells}) == len(chosen) == 100        # every cell once
    assert 0 in chosen
    assert len(spread_subset(pixels, 30, 10.0)) == 30


def test_thumbnail_size_grows_as_fewer_are_asked():
    from ui.map_layers import thumbnail_size
    pixels = np.random.default_rng(1).uniform(0, 1000, size=(10_000, 2))
    sizes = [thumbnail_size(pixels, n, 12, 56) for n in (200, 1000, 5000)]
    assert sizes[0] > sizes[1] > sizes[2] >= 12
    assert thumbnail_size(pixels, 10, 12, 56) == 56


def test_reading_picture_fades_to_white_where_the_classifier_is_unsure():
    from ui.map_layers import reading_picture, top_three_text
    from ui.plots import CLASS_COLORS
    probs = np.full((2, 2, 10), 0.1)
    probs[0, 0] = np.eye(10)[4] * 0.999 + 0.0001
    picture = reading_picture(probs, scale=1)
    assert picture.shape == (2, 2, 3)
    assert tuple(picture[0, 1]) == (255, 255, 255)                     # a uniform guess: white
    want = tuple(int(CLASS_COLORS[4][i:i + 2], 16) for i in (1, 3, 5))
    assert np.abs(picture[0, 0].astype(int) - want).max() <= 3        # sure: the class's colour
    text = top_three_text(probs, [str(i) for i in range(10)])
    assert text[0, 0].startswith("4: 100%") and text.shape == (2, 2)


def test_thumbnails_picture_shows_at_most_what_was_asked():
    import io

    from PIL import Image

    from ui.map_layers import thumbnails
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(2000, 2))
    images = rng.integers(0, 256, size=(2000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=2000)
    png, shown, size = thumbnails(mu, labels, images, 300, (-2.0, 2.0), (-2.0, 2.0), canvas=600)
    assert 0 < shown <= 300 and 12 <= size <= 56
    picture = Image.open(io.BytesIO(png)).convert("RGBA")
    assert picture.size == (600, 600)
    alpha = np.asarray(picture)[..., 3]
    assert alpha.max() == 255 and alpha.min() == 0                     # opaque ink on a transparent canvas


def test_sprite_png_keeps_each_class_colour_and_its_ink():
    import io

    from PIL import Image

    from ui.map_layers import sprite_png
    from ui.plots import CLASS_COLORS
    cls = np.array([[3, 3], [7, 0]], dtype=np.uint8)
    ink = np.array([[255, 100], [255, 0]], dtype=np.uint8)
    rgba = np.asarray(Image.open(io.BytesIO(sprite_png(cls, ink))).convert("RGBA")).astype(int)
    for (r, c), k in (((0, 0), 3), ((1, 0), 7)):
        want = [int(int(CLASS_COLORS[k][i:i + 2], 16) * 0.7) for i in (1, 3, 5)]
        assert list(rgba[r, c, :3]) == want and rgba[r, c, 3] == 255
    assert abs(rgba[0, 1, 3] - 100) <= 255 / 15 and rgba[1, 1, 3] == 0      # 16 levels of ink


def test_a_sweep_without_test_figures_says_so_rather_than_nan(model_dir):
    """A sweep whose files store no test figures (trained without an evaluation, as the browser tests' tiny sweep):
    the sentence says so (it said "rate nan nats, distortion nan nats") and no empty chart is drawn."""
    import dataclasses

    from ui.beta_sweep import sweep_caption, sweep_of
    from vae_core import read_record

    sweep = sweep_of(str(model_dir / "vae_2d_beta2.safetensors"))
    record = next(r for r in sweep if r.beta == 2.0)
    assert "rate " in sweep_caption(sweep, record) and "nan" not in sweep_caption(sweep, record)
    bare = [dataclasses.replace(r, metrics={}) for r in sweep]
    caption = sweep_caption(bare, next(r for r in bare if r.beta == 2.0))
    assert "nan" not in caption and "its file stores no test figures, so it has no point on the chart" in caption
    assert read_record(model_dir / "vae_2d_beta2.safetensors").rate_distortion() is not None

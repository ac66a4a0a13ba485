"""The Decoder page (AppTest from app.py), and its helpers in ui/decoder_tools.py.

Most tests here drive the server-side sliders (the page's fallback, with "Decode in the browser" off): AppTest
runs no JavaScript. The in-browser decoder's data (weights once, then the model key) is checked here too;
its dragging, keys and pixels are checked in chromium (tests/e2e/test_browser_decoder.py).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from apptest_helpers import BROKEN, errors_of, texts_of
from ui import decoder_tools as dt
from ui import latent_pad as lp

PAGE = "pages/decoder.py"


def open_decoder(app, model_dir, model: str, browser: bool = False):
    """The Decoder on a fixture model; `browser=False` switches the in-browser decoder off (server sliders)."""
    app.session_state["model"] = str(model_dir / f"{model}.safetensors")
    app.session_state[lp.TOGGLE_KEY] = browser
    app.switch_page(PAGE).run()
    assert not errors_of(app)
    return app


def pad_data(at) -> dict:
    """The data the page handed the in-browser decoder in the last run."""
    pads = [e for e in at.get("bidi_component") if e.proto.component_name == lp.NAME]
    assert len(pads) == 1, "one in-browser decoder on the page"
    return json.loads(pads[0].proto.json)


def decoded(at) -> tuple[str, str]:
    """(URL, caption) of the decoded image: the first image of the page."""
    img = at.image[0]
    return img.value[0], img.captions[0]


def latent_sliders(at):
    return [s for s in at.slider if s.key and s.key.startswith("decoder_slider_")]


def test_vae_page_shows_one_slider_per_dimension_the_image_and_the_grid(app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    assert at.title[0].value == "Decoder"
    assert len(latent_sliders(at)) == 2
    assert [n.value for n in at.number_input if n.key.startswith("decoder_number_")] == [0.0, 0.0]
    assert decoded(at)[1] == "z = (0.00, 0.00)"
    assert at.get("plotly_chart"), "the manifold grid is drawn for a 2-D latent"
    assert not at.radio(key="interp_mode").value.startswith("Two test")  # starts on latent points


def test_moving_a_slider_changes_the_decoded_image_and_the_number(app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    before = decoded(at)[0]
    at.slider(key=dt.slider_key(0)).set_value(2.0).run()
    assert not errors_of(at)
    url, caption = decoded(at)
    assert url != before
    assert caption == "z = (2.00, 0.00)"
    assert at.number_input(key=dt.number_key(0)).value == pytest.approx(2.0)


def test_an_exact_number_moves_the_slider_and_a_far_one_widens_its_range_with_a_note(app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    at.number_input(key=dt.number_key(1)).set_value(-1.25).run()
    assert at.slider(key=dt.slider_key(1)).value == pytest.approx(-1.25)
    assert decoded(at)[1] == "z = (0.00, -1.25)"
    assert "The sliders now span" not in texts_of(at)
    at.number_input(key=dt.number_key(1)).set_value(7.5).run()
    assert not errors_of(at)
    slider = at.slider(key=dt.slider_key(1))
    assert slider.value == pytest.approx(7.5)            # the slider shows what the picture shows
    assert slider.max >= 7.5 and at.slider(key=dt.slider_key(0)).max == slider.max
    assert decoded(at)[1] == "z = (0.00, 7.50)"
    assert "The sliders now span -3 to 7.5 (usually -3 to 3) to hold z2 = 7.50." in texts_of(at)
    at.number_input(key=dt.number_key(1)).set_value(1.0).run()    # back inside: the usual range again
    assert at.slider(key=dt.slider_key(1)).max == pytest.approx(3.0)
    assert "The sliders now span" not in texts_of(at)


def test_a_click_on_the_grid_jumps_to_that_cell(app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    before = decoded(at)[0]
    at.session_state["decoder_grid_0"] = {"selection": {"points": [{"customdata": [1.2, -0.6], "point_index": 7}],
                                                        "point_indices": [7], "box": [], "lasso": []}}
    at.run()
    assert not errors_of(at)
    assert decoded(at)[1] == "z = (1.20, -0.60)"
    assert decoded(at)[0] != before
    assert [s.value for s in latent_sliders(at)] == [pytest.approx(1.2), pytest.approx(-0.6)]
    # the chart got a fresh key, so the old selection does not pull z back on the next slider move
    at.slider(key=dt.slider_key(0)).set_value(0.5).run()
    assert decoded(at)[1] == "z = (0.50, -0.60)"


def test_a_click_whose_customdata_came_back_as_a_typed_array_still_jumps(app, model_dir):
    """Chromium sent a clicked cell's customdata as {"0": z1, "1": z2} (a serialised typed array): the page
    raised KeyError: 0. The grid now sends lists, and a dict is read too."""
    at = open_decoder(app, model_dir, "vae_2d")
    at.session_state["decoder_grid_0"] = {"selection": {"points": [{"customdata": {"0": -0.4, "1": 0.9}}],
                                                        "point_indices": [3], "box": [], "lasso": []}}
    at.run()
    assert not errors_of(at)
    assert decoded(at)[1] == "z = (-0.40, 0.90)"
    assert [s.value for s in latent_sliders(at)] == [pytest.approx(-0.4), pytest.approx(0.9)]
    assert [n.value for n in at.number_input if n.key.startswith("decoder_number_")] == [-0.4, 0.9]


def test_random_sample_and_centre(app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    next(b for b in at.button if b.label == "Sample").click().run()
    assert decoded(at)[1] != "z = (0.00, 0.00)"
    next(b for b in at.button if b.label == "Centre").click().run()
    assert decoded(at)[1] == "z = (0.00, 0.00)"


def test_label_model_has_a_class_picker_that_changes_the_image(app, model_dir):
    at = open_decoder(app, model_dir, "cvae_label")
    picker = at.radio(key="decoder_label")
    assert picker.options == [str(i) for i in range(10)]
    before = decoded(at)[0]
    picker.set_value(7).run()
    assert not errors_of(at)
    assert decoded(at)[0] != before
    assert "class 7" in texts_of(at)  # the caption about the learned prior p(z | class 7)


def test_three_dimensional_latent_has_three_sliders_and_no_grid(app, model_dir):
    at = open_decoder(app, model_dir, "vae_3d")
    assert len(latent_sliders(at)) == 3
    assert "needs a 2-D latent" in texts_of(at)


def test_interpolation_between_latent_points_and_test_digits(app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    strips = len(at.image)
    at.slider(key="interp_steps").set_value(6).run()
    assert len(at.image) == strips
    next(b for b in at.button if b.label == "Start = sliders").click().run()
    assert "From z = (0.00, 0.00)" in texts_of(at)
    at.radio(key="interp_mode").set_value("Two test digits").run()
    assert not errors_of(at)
    assert "From test digit #0" in texts_of(at)
    assert {b.proto.label for b in at.get("download_button")} >= {"PNG", "GIF", "PNG strip"}


def test_test_digit_interpolation_without_data_says_so_and_the_rest_works(no_data, app, model_dir):
    at = open_decoder(app, model_dir, "vae_2d")
    at.radio(key="interp_mode").set_value("Two test digits").run()
    assert not errors_of(at)
    assert any("was not found" in i.value for i in at.info)
    at.slider(key=dt.slider_key(0)).set_value(-1.0).run()
    assert decoded(at)[1] == "z = (-1.00, 0.00)"


def test_no_suitable_model_is_a_sentence(app, model_dir, tmp_path, monkeypatch):
    only_quadrants = tmp_path / "models"
    only_quadrants.mkdir()
    shutil.copy(model_dir / "cvae_quadrants.safetensors", only_quadrants)
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(only_quadrants))
    app.switch_page(PAGE).run()
    assert not errors_of(app)
    assert any("No model here fits this page" in i.value for i in app.info)
    assert not app.slider


def test_a_corrupt_checkpoint_is_a_sentence(app, model_dir):
    app.session_state["model"] = str(model_dir / BROKEN)
    app.switch_page(PAGE).run()
    assert not errors_of(app)
    assert any("cannot be used" in e.value for e in app.error)


# ----------------------------------------------------------------------------- helpers

def test_drawing_to_digit_centres_and_scales_like_mnist():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[20:120, 200:230] = (255, 255, 255, 255)  # a bar in the top right corner
    digit = dt.drawing_to_digit(canvas)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.nonzero(digit > 30)
    assert rows.max() - rows.min() + 1 == pytest.approx(20, abs=1)  # the long side fits 20 pixels
    mass = digit.astype(float)
    cy, cx = (np.arange(28) @ mass.sum(1)) / mass.sum(), (np.arange(28) @ mass.sum(0)) / mass.sum()
    assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1
    assert dt.drawing_to_digit(np.zeros((280, 280, 4), dtype=np.uint8)) is None
    assert dt.drawing_to_digit(None) is None


def test_grid_position_follows_uneven_cells_both_ways():
    coords = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    assert dt.grid_position(0.0, coords) == pytest.approx(2.0)
    assert dt.grid_position(2.0, coords) == pytest.approx(3.5)
    assert dt.grid_position(5.0, coords) == pytest.approx(5.0)  # extrapolated past the end
    assert dt.grid_position(2.0, coords[::-1]) == pytest.approx(0.5)


def test_gif_is_an_animated_loop():
    from io import BytesIO

    from PIL import Image
    frames = np.stack([np.full((28, 28), v, np.uint8) for v in (0, 100, 200, 255)])
    gif = Image.open(BytesIO(dt.gif_bytes(frames, scale=2)))
    assert gif.format == "GIF" and gif.size == (56, 56)
    assert gif.n_frames == 6  # forth and back: 4 + 2
    assert gif.info.get("loop") == 0


def test_grid_figure_moves_only_the_ring_and_matches_a_fully_checked_figure():
    import plotly.graph_objects as go
    from ui.images import png_bytes

    png = png_bytes(np.zeros((84, 84), np.uint8))
    z1, z2 = np.array([-1.0, 0.0, 1.0]), np.array([1.0, 0.0, -1.0])
    a, b = dt.grid_figure(png, z1, z2, 28, [0.0, 0.0]), dt.grid_figure(png, z1, z2, 28, [1.0, -1.0])
    assert [t.name for t in a.data] == ["cells", "current z"]
    assert (a.data[1].x[0], a.data[1].y[0]) == (42.0, 42.0)   # the middle cell's centre
    assert (b.data[1].x[0], b.data[1].y[0]) == (70.0, 70.0)   # the last column, the last row
    assert a.to_dict()["data"][0] == b.to_dict()["data"][0] and a.layout == b.layout
    assert len(dt.grid_figure(png, z1, z2, 28).data) == 1     # no z, no ring
    # built without validation from validated parts: Plotly's checked copy of it is the same figure
    assert go.Figure(b.to_dict()).to_dict() == b.to_dict()
    assert b.layout.images[0].source.startswith("data:image/png;base64,")

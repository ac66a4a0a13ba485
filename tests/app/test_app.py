"""The router and the Home page."""
from apptest_helpers import BROKEN, FIXTURE_MODELS, errors_of

PAGES = ["pages/home.py", "pages/train.py", "pages/latent_map.py", "pages/decoder.py", "pages/compare.py"]


def test_home_renders_with_models_and_data(app):
    assert not errors_of(app)
    assert "Latent Lab" in app.title[0].value
    table = app.dataframe[0].value
    assert list(table.columns) == ["model", "what it is", "data set", "explore on"]
    assert set(FIXTURE_MODELS) <= {name.lstrip("★ ") for name in table["model"]}
    assert table["model"][0] == "★ vae_2d"          # the recommended model first, marked
    details = app.dataframe[1].value               # in the expander
    assert {"test −ELBO", "test NLL", "epochs", "file"} <= set(details.columns)
    assert [link.label for link in app.get("page_link")][:5] == [
        "1. Train", "2. Latent map", "3. Decoder", "4. Compare CVAE vs GSNN", "5. Latent map of a CVAE"]
    assert any("mnist" in s.value and "found" in s.value for s in app.success)
    # the corrupt file is named, with a sentence, not a traceback
    assert any(BROKEN.split(".")[0] in e.value for e in app.error)


def test_every_page_renders(app):
    for page in PAGES:
        app.switch_page(page).run()
        assert not errors_of(app), page
        assert app.title, page


def test_home_without_data_says_so(no_data, app):
    assert not errors_of(app)
    assert any("was not found" in w.value for w in app.warning)
    assert any(b.label.startswith("Download") for b in app.button)


def test_png_data_url_inlines_the_png_so_the_browser_fetches_nothing():
    import base64

    import numpy as np
    from ui.images import png_bytes, png_data_url

    png = png_bytes(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28))
    url = png_data_url(png)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png
    assert png_data_url(np.zeros((2, 2), np.uint8)).startswith("data:image/png;base64,")  # an array works too


def test_gc_is_frozen_once_per_page():
    import gc

    from ui import gc_tuning

    before = gc.get_freeze_count()
    try:
        kept = [object() for _ in range(100)]   # alive now: frozen with the rest
        assert gc_tuning.freeze_after_first_run("test-page") is True
        assert gc.get_freeze_count() >= before + len(kept)
        assert gc_tuning.freeze_after_first_run("test-page") is False   # the second run of a page does nothing
    finally:
        gc_tuning._done.discard("test-page")

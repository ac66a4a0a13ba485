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
        "1. Train", "2. Latent map", "3. Decoder", "4. Compare CVAE vs GSNN", "6. Diagnose"]
    assert "5. Latent map of a CVAE" in [b.label for b in app.button] + [m.value for m in app.markdown]
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


def test_the_live_latent_map_picture_is_the_same_bytes_for_the_same_map_and_draws_every_class():
    """The Train page's live map (ui.images.latent_map_png): the same map gives the same PNG, hence the same
    media URL (the browser fetches nothing again); each class's colour is on it; the size is as asked."""
    import io

    import numpy as np
    from PIL import Image

    from ui.images import latent_map_png
    from ui.plots import CLASS_COLORS

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    points = rng.normal(size=(300, 2)) + labels[:, None] * 3.0
    names = [str(c) for c in range(10)]
    png = latent_map_png(points, labels, names, CLASS_COLORS, width=500, height=400)
    assert latent_map_png(points.copy(), labels, names, CLASS_COLORS, width=500, height=400) == png
    assert latent_map_png(points + 0.5, labels, names, CLASS_COLORS, width=500, height=400) != png
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (500, 400)
    colours = {c for _, c in img.getcolors(maxcolors=1 << 16)}
    assert all(tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) in colours for h in CLASS_COLORS)


def test_the_loss_curves_keep_at_most_curve_points_and_always_the_newest_step():
    """The live chart is rebuilt by the browser at each update: its size stays bounded, and it ends at the newest step."""
    from ui.plots import CURVE_POINTS, _curve_data

    for n in (1, CURVE_POINTS, CURVE_POINTS + 1, 14_070):
        steps = {"step": list(range(1, n + 1)), **{k: [1.0] * n for k in ("loss", "recon", "kl")}}
        x, y, smoothed, _, _ = _curve_data(steps, [], 100, 0.9)["loss"]
        assert 0 < len(x) <= CURVE_POINTS and len(x) == len(y) == len(smoothed)
        assert x[-1] == n / 100 and x[0] <= (n // CURVE_POINTS + 1) / 100

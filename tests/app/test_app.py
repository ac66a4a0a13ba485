"""The router and the Home page."""
from apptest_helpers import BROKEN, FIXTURE_MODELS, errors_of

PAGES = ["pages/home.py", "pages/train.py", "pages/latent_map.py", "pages/decoder.py", "pages/compare.py"]


def test_home_renders_with_models_and_data(app):
    assert not errors_of(app)
    assert "Latent Lab" in app.title[0].value
    table = app.dataframe[0].value
    assert set(FIXTURE_MODELS) <= set(table["name"])
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

"""The Latent map page: the map, a clicked point, a lasso gallery, projections, and what it refuses."""
import pytest

from apptest_helpers import errors_of, texts_of

CHART = "latent_map_chart"


def open_map(at, model_name=None):
    at.switch_page("pages/latent_map.py").run()
    if model_name is not None:
        picker = at.sidebar.selectbox[0]
        path = next(o for o in picker.options if o == model_name or o.startswith(model_name + " "))
        picker.select(path).run()
    assert not errors_of(at)
    return at


def select(at, *indices):
    at.session_state[CHART] = {"selection": {"points": [{"customdata": i} for i in indices], "box": [], "lasso": []}}
    return at.run()


def test_map_of_a_2d_vae_from_stored_means(app):
    open_map(app, "vae_2d")
    assert "latent means stored in the checkpoint" in texts_of(app)
    assert "Nothing selected yet" in texts_of(app)


def test_clicking_a_point_shows_its_image_reconstruction_mean_and_std(app):
    open_map(app, "vae_2d")
    select(app, 7)
    assert not errors_of(app)
    assert "Test image #7" in texts_of(app)
    captions = [c for im in app.image for c in im.captions]
    assert "the test image" in captions and "its reconstruction" in captions
    table = app.dataframe[0].value
    assert list(table.columns) == ["dimension", "mean μ", "std σ"]
    assert (table["std σ"] > 0).all()


def test_a_lasso_shows_a_gallery_of_the_selected_digits(app):
    open_map(app, "vae_2d")
    select(app, *range(100))
    assert not errors_of(app)
    assert "100 digits selected" in texts_of(app)
    assert "A random 60 of them" in texts_of(app)


def test_label_model_says_the_map_shows_style(app):
    open_map(app, "cvae_label")
    assert "style" in texts_of(app)
    select(app, 3)
    assert "Test image #3" in texts_of(app)


def test_3d_latent_is_projected_with_a_choice_of_axes(app):
    open_map(app, "vae_3d")
    assert "encoded from the test set" in texts_of(app)
    assert app.sidebar.radio(key="latent_projection").value == "PCA"
    app.sidebar.selectbox(key="latent_axis_y").select(2).run()
    app.sidebar.radio(key="latent_projection").set_value("Two latent dimensions").run()
    assert not errors_of(app)


def test_background_of_decoded_digits(app):
    open_map(app, "vae_2d")
    app.sidebar.toggle(key="latent_background").set_value(True).run()
    assert not errors_of(app)


@pytest.mark.parametrize("name, words", [("baseline_quadrants", "no latent space"),
                                         ("cvae_quadrants", "visible quadrants")])
def test_models_without_a_map_say_so(app, name, words):
    open_map(app, name)
    assert words in texts_of(app)


def test_a_corrupt_checkpoint_shows_a_sentence(app):
    open_map(app, "broken")
    assert any("cannot be used" in e.value for e in app.error)


def test_without_data_the_stored_map_still_draws(no_data, app):
    open_map(app, "vae_2d")
    assert "needs the data set" in texts_of(app)
    select(app, 5)
    assert not errors_of(app)
    assert "Test image #5" in texts_of(app)


def test_without_data_and_without_stored_means_it_says_so(no_data, app):
    open_map(app, "vae_3d")
    assert "was not found" in texts_of(app)

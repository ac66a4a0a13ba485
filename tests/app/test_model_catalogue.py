"""The model catalogue: the recommended order (on the shipped checkpoints too), names that clash, the
nearest model a page can show, and class names per data set."""
from __future__ import annotations

import json
import shutil

import pytest

from apptest_helpers import APP, ROOT, errors_of, texts_of
from ui.model_catalogue import available_models, nearest_model
from vae_core.data import class_names

SHIPPED = ROOT / "checkpoints"


@pytest.fixture
def shipped(monkeypatch):
    if not any(SHIPPED.glob("*.safetensors")):
        pytest.skip("no shipped checkpoints in checkpoints/")
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(SHIPPED))


def test_shipped_models_are_listed_mnist_2d_vae_first_then_mnist_then_the_rest(shipped):
    entries = [e for e in available_models() if e.error is None]
    assert entries[0].file_name == "mnist-vae-2d.safetensors"
    datasets = [e.dataset for e in entries]
    assert "fashion-mnist" in datasets                               # the rule is tested, not assumed
    assert datasets == sorted(datasets, key=lambda d: d != "mnist")  # every MNIST model before the rest
    kinds = [e.config.condition for e in entries if e.dataset == "mnist"]
    assert kinds.index("label") < kinds.index("quadrants")


@pytest.mark.parametrize("page", ["pages/latent_map.py", "pages/decoder.py"])
def test_pages_open_on_the_shipped_mnist_2d_vae(shipped, page):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not errors_of(at)
    assert at.sidebar.selectbox[0].value.endswith("mnist-vae-2d.safetensors")


def test_the_recommended_order_on_the_fixture_models():
    entries = [e for e in available_models() if e.error is None]
    assert entries[0].name == "vae_2d"                   # not fashion_vae_2d, whose file sorts first
    assert entries[-1].name == "fashion_vae_2d"
    assert available_models()[-1].error                  # the unreadable file last


def test_two_models_with_one_name_show_their_file_names(tmp_path, model_dir, monkeypatch):
    for stem in ("vae_2d", "cvae_label"):
        shutil.copyfile(model_dir / f"{stem}.safetensors", tmp_path / f"{stem}.safetensors")
    shutil.copyfile(model_dir / "vae_2d.safetensors", tmp_path / "my_vae.safetensors")
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(tmp_path))
    labels = [e.label for e in available_models()]
    assert labels == ["vae_2d (my_vae)", "vae_2d (vae_2d)", "cvae_label"]


def test_the_nearest_model_keeps_the_data_set_then_the_variant():
    entries = [e for e in available_models() if e.error is None]
    by_name = {e.name: e for e in entries}
    fits = [e for e in entries if e.config.condition != "quadrants" and e.config.has_latent]
    assert nearest_model(by_name["cvae_quadrants"], fits).name == "cvae_label"
    assert nearest_model(by_name["hybrid_quadrants"], fits).name == "hybrid_label"
    assert nearest_model(by_name["baseline_quadrants"], fits).name == "vae_2d"


def test_class_names_per_data_set():
    assert class_names("fashion-mnist")[:2] == ("T-shirt/top", "Trouser")
    assert class_names("mnist") == tuple(str(i) for i in range(10))
    assert class_names("fashion-mnist", 3) == ("0", "1", "2")      # a model with another class count


def test_fashion_map_names_its_classes_without_the_data_set(no_data, app):
    app.switch_page("pages/latent_map.py").run()
    picker = app.sidebar.selectbox[0]
    picker.select("fashion_vae_2d").run()
    assert not errors_of(app)
    assert "needs the data set" in texts_of(app)
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    names = [trace["name"] for trace in spec["data"]]
    assert names[:2] == ["T-shirt/top", "Trouser"] and "Ankle boot" in names

"""Fixtures shared by the AppTests of every page (helpers and constants: apptest_helpers.py).

A session-scoped folder of tiny checkpoints trained here by vae_core (hidden_dims=(32,), a few hundred
images, seconds in all; trained once per test run and shared with the browser tests and every pytest-xdist
worker), plus a corrupt file; LATENT_LAB_MODEL_DIRS points at it for every test.
When the real MNIST files are not found, a small synthetic MNIST-shaped data set is written in IDX
format and VAE_DATA_DIR points at it, so the pages and the Train page work offline too.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from apptest_helpers import APP, BROKEN, shared_data_root, trained_fixture_models


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A folder holding mnist/ and fashion-mnist/ (apptest_helpers.fixture_data_root)."""
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, data_root) -> Path:
    """Tiny checkpoints of every kind the pages handle, plus a corrupt file: this session's own copy (a page
    may write beside them, as the Train page does into its save folder)."""
    out = tmp_path_factory.mktemp("models")
    for path in trained_fixture_models(tmp_path_factory, data_root).iterdir():
        shutil.copyfile(path, out / path.name)
    (out / BROKEN).write_bytes(b"\x00\x01 this is not a safetensors file" * 10)
    return out


@pytest.fixture(autouse=True)
def _app_environment(monkeypatch, model_dir, data_root):
    """Every AppTest sees the fixture models and a data set (tests of the missing-data path override it).
    The Diagnose views of the tiny fixture models are computed in the test process, as a view budget of 60
    CPU-s allows (the likelihood curve of even a tiny model is estimated at 1.9 CPU-s, too near the default
    budget of 2 for a test to depend on the side it falls): tests/app/test_diagnose_jobs.py checks the job
    path with the default budget."""
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(model_dir))
    monkeypatch.setenv("VAE_DATA_DIR", str(data_root))
    monkeypatch.setenv("LATENT_LAB_VIEW_BUDGET_CPU_SECONDS", "60")


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No data set anywhere: VAE_DATA_DIR is an empty folder and the working folder has no ./data."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("VAE_DATA_DIR", str(empty))
    monkeypatch.chdir(tmp_path)
    return empty


@pytest.fixture
def app():
    """An AppTest of the whole app (start page: Home), already run once."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at

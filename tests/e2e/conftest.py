"""Fixtures of the browser tests: tiny checkpoints, one `streamlit run app.py` for the session, Debian's
chromium driven by playwright, and a fresh browser tab (a fresh Streamlit session) per test.

The whole folder is skipped, with the reason, when playwright or chromium is missing.
Screenshots go to tests/e2e/screenshots/ (git-ignored).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from harness import ROOT, VIEWPORT, StreamlitServer, launch_chromium, missing_browser_reason

sys.path.insert(0, str(ROOT / "tests" / "app"))
from apptest_helpers import SWEEP_FIXTURES, shared_data_root, trained_fixture_models  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SHIPPED_ENV = "LATENT_LAB_E2E_SHIPPED"  # set (to 1): the app serves checkpoints/ instead of tiny fixture models
# what the pages need: a 2-D VAE (latent map, decoder), the label trio and the quadrant quartet (compare), a tiny β sweep
# (and a Fashion-MNIST VAE whose file sorts first, as in the shipped checkpoints/: the default must not be it)
E2E_MODELS = ("vae_2d", "cvae_label", "gsnn_label", "hybrid_label", "baseline_quadrants", "gsnn_quadrants",
              "cvae_quadrants", "hybrid_quadrants", "fashion_vae_2d", *SWEEP_FIXTURES)
SAME_NAME_COPY = "vae_2d_again.safetensors"   # a second file of the model named "vae_2d": the picker must tell them apart



def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_reason():
    reason = missing_browser_reason()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def e2e_env(browser_reason, tmp_path_factory) -> dict[str, str]:
    """LATENT_LAB_MODEL_DIRS (tiny trained checkpoints) and VAE_DATA_DIR (real MNIST and Fashion-MNIST, else synthetic)."""
    data_root = shared_data_root(tmp_path_factory)
    runs = tmp_path_factory.mktemp("e2e_runs")  # where the Train page would save
    if os.environ.get(SHIPPED_ENV):  # docs/make_screenshots.py: the README's pictures show the shipped models
        return {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(ROOT / "checkpoints"), str(runs)]),
                "VAE_DATA_DIR": str(data_root)}
    models = tmp_path_factory.mktemp("e2e_models")
    trained = trained_fixture_models(tmp_path_factory, data_root)   # the AppTests' models, trained once per run
    for name in E2E_MODELS:
        shutil.copyfile(trained / f"{name}.safetensors", models / f"{name}.safetensors")
    shutil.copyfile(models / "vae_2d.safetensors", models / SAME_NAME_COPY)
    return {"LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(models), str(runs)]), "VAE_DATA_DIR": str(data_root)}


@pytest.fixture(scope="session")
def server(e2e_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    srv = StreamlitServer(e2e_env, log=log).start()
    try:
        srv.wait_listening()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def browser(browser_reason):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, request):
    """A new tab (and so a new Streamlit session); a screenshot of where it ended, named after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        full_screenshot(tab, SCREENSHOTS / f"{request.node.name}.png")
    finally:
        context.close()


def full_screenshot(tab, path: Path, max_height: int = 4000) -> None:
    """The whole page: Streamlit scrolls inside its main area, so grow the viewport to its content first."""
    height = tab.evaluate("() => { const m = document.querySelector(\"[data-testid='stMain']\");"
                          " return m ? m.scrollHeight : document.body.scrollHeight; }")
    tab.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max_height, max(VIEWPORT["height"], height)))})
    tab.wait_for_timeout(300)
    tab.screenshot(path=str(path))
    tab.set_viewport_size(VIEWPORT)

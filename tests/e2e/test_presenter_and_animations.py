"""Presenter view and animations for slides, in chromium, on a server whose model folder holds a tiny beta sweep
(three 2-D VAEs trained with beta 0.5, 1 and 4) and the 2-D VAE fixture.

Presenter view: ?present=1 hides the sidebar; arrow keys and space move z (the pad and the digit follow, the
digit compared with LatentModel.decode); keys typed into a number box do nothing; b / B walk the sweep.
Animations: a GIF and an MP4 are made, downloaded by a click, opened with imageio and their frames counted.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from harness import StreamlitServer, exceptions_on, open_page, picker_value, select_option, wait_idle, wait_picker
from test_browser_decoder import PAD, expected, picture

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "app"))
from apptest_helpers import train_sweep  # noqa: E402
from vae_core import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sweep_server(e2e_env, tmp_path_factory):
    if os.environ.get("LATENT_LAB_E2E_SHIPPED"):
        pytest.skip("these tests use their own tiny sweep")
    folder = tmp_path_factory.mktemp("sweep_models")
    fixtures = Path(e2e_env["LATENT_LAB_MODEL_DIRS"].split(os.pathsep)[0])
    shutil.copyfile(fixtures / "vae_2d.safetensors", folder / "vae_2d.safetensors")
    paths = train_sweep(Path(e2e_env["VAE_DATA_DIR"]), folder)
    save_a_run(Path(e2e_env["VAE_DATA_DIR"]), folder / "zz_run.safetensors")   # sorts last: not the default
    env = {**e2e_env, "LATENT_LAB_MODEL_DIRS": os.pathsep.join([str(folder), str(tmp_path_factory.mktemp("runs"))])}
    srv = StreamlitServer(env, log=tmp_path_factory.mktemp("sweep_log") / "streamlit.log").start()
    try:
        srv.wait_listening()
        srv.sweep = paths
        yield srv
    finally:
        srv.stop()


RUN_EPOCHS = 4


def save_a_run(data_root: Path, path: Path) -> None:
    """A run made as the Train page makes one (jobs/worker.run_job), saved with its snapshots."""
    import torch

    from jobs.worker import run_job, settings_to_dict
    from vae_core import ModelConfig, TrainConfig, build_model, save_checkpoint
    from vae_core.record import parse_record
    cfg = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(16,))
    tcfg = TrainConfig(epochs=RUN_EPOCHS, batch_size=100, train_limit=300, eval_limit=200, device="cpu")
    sent = []
    run_job(settings_to_dict(cfg, tcfg), str(data_root), lambda k, p: sent.append((k, p)), lambda: False,
            redraw_seconds=1e9)
    result = next(p for k, p in sent if k == "result")
    model = build_model(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in result["state"].items()})
    record = parse_record(result["record"])
    record = type(record)(**{**{f: getattr(record, f) for f in ("model_config", "train_config", "dataset",
                                                               "snapshots", "history", "metrics")},
                            "name": "a saved run"})
    save_checkpoint(path, model, record, extras={k: torch.as_tensor(v) for k, v in result["extras"].items()})


def pad_ready(page) -> None:
    page.wait_for_function("(sel) => { const r = document.querySelector(sel); return r && r.dataset.frames; }",
                           arg=PAD, timeout=60_000)
    wait_idle(page)


def wait_z(page, z) -> list[float]:
    page.wait_for_function("""([sel, z]) => { const got = (document.querySelector(sel)?.dataset.z || '').split(',');
        return got.length === z.length && z.every((v, i) => Math.abs(+got[i] - v) < 1e-6); }""", arg=[PAD, z],
                           timeout=30_000)
    wait_idle(page)
    return [float(v) for v in page.get_attribute(PAD, "data-z").split(",")]


def key_on_page(page, key: str) -> None:
    """A key pressed with the page itself focused (not an input, not the pad)."""
    page.locator("h1").first.click()
    page.keyboard.press(key)


# ----------------------------------------------------------------------------- presenter view

def test_presenter_view_keys_move_z_sample_and_walk_the_sweep(page, sweep_server):
    open_page(page, sweep_server.url, "decoder?present=1")
    pad_ready(page)
    page.get_by_test_id("stSidebar").wait_for(state="hidden", timeout=30_000)   # the view's style has arrived
    assert page.locator("canvas[aria-label='Decoded digit']").bounding_box()["width"] >= 400, "the digit is enlarged"
    model = load_checkpoint(sweep_server.sweep[0])[0]          # the first model listed: beta 0.5
    key_on_page(page, "ArrowRight")
    assert wait_z(page, [0.25, 0.0]) == [0.25, 0.0]
    key_on_page(page, "ArrowUp")
    z = wait_z(page, [0.25, 0.25])
    assert np.abs(picture(page) - expected(model, z)).max() <= 1
    page.locator(".pv-root", has_text="z = (0.25, 0.25)").wait_for()

    box = page.get_by_label("z1 exactly")                       # keys in an input stay there (arrows move
    box.focus()                                                 # its caret, b and space type nothing)
    for key in ("ArrowRight", "ArrowLeft", " ", "b"):
        page.keyboard.press(key)
    key_on_page(page, "ArrowLeft")
    wait_z(page, [0.0, 0.25])

    count = int(page.get_attribute(".pv-root", "data-count"))
    key_on_page(page, " ")
    page.wait_for_function("(n) => +document.querySelector('.pv-root')?.dataset.count > n", arg=count)
    page.locator(".pv-root", has_text="A sample: z = (").wait_for()
    wait_idle(page)
    z = [float(v) for v in page.get_attribute(PAD, "data-z").split(",")]
    assert z != [0.0, 0.25]
    assert np.abs(picture(page) - expected(model, z)).max() <= 1

    key_on_page(page, "b")                                      # the next beta of the sweep
    page.locator(".pv-root", has_text="β = 1:").wait_for(timeout=30_000)
    page.get_by_role("heading", name="Decoder").wait_for()
    pad_ready(page)
    assert page.locator(PAD).get_attribute("data-model") is not None
    key_on_page(page, "B")
    page.locator(".pv-root", has_text="β = 0.5:").wait_for(timeout=30_000)
    key_on_page(page, "B")
    page.locator(".pv-root", has_text="is the sweep's smallest; nothing happens").wait_for(timeout=30_000)
    assert not exceptions_on(page)

    page.get_by_role("button", name="Leave presenter view").click()
    page.get_by_test_id("stSidebar").wait_for(state="visible")
    assert "present=1" not in page.url
    wait_picker(page, "sweep beta 0.5")                        # b then B: back at the first beta


def test_b_without_a_sweep_says_nothing_happens(page, sweep_server):
    open_page(page, sweep_server.url, "decoder?present=1")
    pad_ready(page)
    page.get_by_role("button", name="Leave presenter view").click()
    wait_idle(page)
    select_option(page, page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input[aria-label='Model']").first,
                  "vae_2d")
    wait_picker(page, "vae_2d")
    page.get_by_test_id("stSidebar").get_by_text("vae_2d.safetensors").wait_for()   # the server drew the new model
    wait_idle(page)
    page.locator(".st-key-presenter_view").get_by_text("Presenter view").click()   # the sidebar's switch
    page.get_by_test_id("stSidebar").wait_for(state="hidden", timeout=30_000)
    page.locator(".pv-root").wait_for(state="attached", timeout=30_000)
    pad_ready(page)
    key_on_page(page, "b")
    page.locator(".pv-root", has_text="No β sweep holds this model, so b and B do nothing here.").wait_for(timeout=30_000)
    assert not exceptions_on(page)


# ----------------------------------------------------------------------------- animations

def make_and_download(page, what: str, fmt: str, tmp_path) -> np.ndarray:
    page.get_by_role("heading", name="Animations for slides").scroll_into_view_if_needed()
    select_option(page, page.locator(".st-key-anim_what input").first, what)
    page.locator(".st-key-anim_fmt").get_by_text(fmt.upper(), exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name=re.compile("Make the animation")).click()
    download_button = page.get_by_role("button", name=re.compile(r"^Download .*\." + fmt))
    download_button.wait_for(timeout=60_000)
    wait_idle(page)
    with page.expect_download() as info:
        download_button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    if fmt == "gif":
        return iio.imread(path, index=None)
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def test_animations_download_and_open(page, sweep_server, tmp_path):
    open_page(page, sweep_server.url, "decoder")
    pad_ready(page)
    # the tiny sweep's files store no test figures: a sentence, not "rate nan nats" and an empty chart
    page.get_by_text("so there is no rate-distortion chart to draw").wait_for()
    assert "nan nats" not in page.get_by_test_id("stMain").inner_text()
    walk = make_and_download(page, "Interpolation walk", "gif", tmp_path)
    assert walk.shape[0] == 46 and max(walk.shape[1:3]) <= 640
    page.get_by_text(re.compile(r"^Interpolation walk: 46 frames, 336 × 336 px")).wait_for()
    sweep = make_and_download(page, "β sweep", "mp4", tmp_path)
    assert sweep.shape[0] == 3 and max(sweep.shape[1:3]) <= 640 + 15
    assert (tmp_path / "beta-sweep.mp4").stat().st_size <= 5_000_000
    assert not exceptions_on(page)


def test_a_saved_run_animates_its_training(page, sweep_server, tmp_path):
    open_page(page, sweep_server.url, "decoder")
    pad_ready(page)
    select_option(page, page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input[aria-label='Model']").first,
                  "a saved run")
    wait_picker(page, "a saved run")
    pad_ready(page)
    frames = make_and_download(page, "Training run", "gif", tmp_path)
    assert frames.shape[0] == RUN_EPOCHS + 1          # after the first step, then each epoch
    assert max(frames.shape[1:3]) <= 640
    assert not np.array_equal(frames[0], frames[-1]), "the samples and the map changed during the run"
    assert not exceptions_on(page)

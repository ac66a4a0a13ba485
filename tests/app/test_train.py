"""The Train page: settings, refusing bad ones, a live run, stop, save."""
import os
import signal
import time

import pytest

from apptest_helpers import errors_of, service, texts_of, tiny_settings, viewed, wait_until
from vae_core import read_record


VIEW = "train_view"


@pytest.fixture
def runs(tmp_path, model_dir, monkeypatch):
    """A fresh runs folder (its own job table) listed before the fixture models; workers spawned (no fork
    server), at the test's own CPU priority. A worker runs at nice 10 by default (so a server's clicks win),
    and here it competes with this test's polling loop (a Train page run every 0.4 s) and whatever else the
    machine runs: at load 6 on 2 cores a 1-epoch tiny run took 40-46 s at nice 10 and 11-17 s at nice 0,
    against a 90 s deadline (a margin of 2 at load 6)."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", f"{folder}{os.pathsep}{model_dir}")
    monkeypatch.setenv("LATENT_LAB_WARM_WORKER", "0")
    monkeypatch.setenv("LATENT_LAB_WORKER_NICE", "0")
    yield folder
    from jobs.api import shutdown_all
    shutdown_all()  # never leave a worker process behind


@pytest.fixture
def train(app, runs):
    """The Train page, saving into a fresh runs folder."""
    app.switch_page("pages/train.py").run()
    return app


def test_train_page_renders_with_defaults(train):
    assert not errors_of(train)
    assert "Train" in train.title[0].value
    assert not train.button(key="train_start").disabled
    assert train.button(key="train_stop").disabled
    assert "vae | 2-D latent" in texts_of(train)


@pytest.mark.parametrize("hidden, words", [("abc", "hidden layers must be whole numbers"),
                                           ("0", "hidden_dims (hidden layer sizes) must be one or more layer sizes"),
                                           ("9" * 5000, "hidden layers must be whole numbers")])
def test_invalid_settings_are_refused_with_a_sentence(train, hidden, words):
    train.text_input(key="train_hidden").set_value(hidden).run()
    assert not errors_of(train)
    assert any(words in e.value for e in train.error)
    assert train.button(key="train_start").disabled


def test_only_valid_conditions_are_offered(train):
    assert all(s.key != "train_condition" for s in train.selectbox)
    train.selectbox(key="train_variant").set_value("hybrid").run()
    assert set(train.selectbox(key="train_condition").options) == {"the label", "some quadrants"}
    assert "α · CVAE + (1 − α) · GSNN" in texts_of(train)   # the description, under the short name
    assert any(s.key == "train_alpha" for s in train.slider)


def test_a_tiny_run_trains_in_a_worker_and_saves_into_the_picker(train, runs, model_dir):
    chosen = str(model_dir / "cvae_label.safetensors")
    train.session_state["model"] = chosen          # the user's choice, made on another page
    tiny_settings(train)
    train.button(key="train_start").click().run()
    job_id = train.session_state[VIEW]
    wait_until(train, lambda at: viewed(at).finished)
    snap = viewed(train)
    assert snap.status == "completed", snap.message
    assert len(snap.steps["step"]) == snap.total_steps > 0
    assert len(snap.epoch_records) == 1 and snap.epoch_records[0]["eval"] is not None
    assert any("Training finished" in s.value for s in train.success)
    assert snap.preview is not None and snap.latent is not None
    assert service()._handles == {}  # the worker process is gone

    train.text_input(key="train_save_name").set_value("bad name!")
    submit = [b for b in train.button if b.label == "Save"][0]
    submit.click().run()
    assert any("Not saved" in e.value and "letters, digits" in e.value for e in train.error)

    train.text_input(key="train_save_name").set_value("class_demo")
    [b for b in train.button if b.label == "Save"][0].click().run()
    assert not errors_of(train)
    assert any("Saved to" in s.value for s in train.success)
    assert train.session_state[VIEW] == job_id

    train.switch_page("pages/latent_map.py").run()
    picker = train.sidebar.selectbox[0]
    assert any("class_demo" in o for o in picker.options)
    assert picker.value == chosen                    # saving is not choosing: the picker stays put
    train.switch_page("pages/train.py").run()
    train.button(key="train_explore_saved").click().run()   # ... until the user asks for the new model
    assert not errors_of(train)
    assert "Latent map" in train.title[0].value
    assert "class_demo" in train.sidebar.selectbox[0].value

    # the saved history carries the KL of each latent dimension per epoch (the Diagnose page draws it)
    (saved,) = runs.glob("class_demo*.safetensors")
    epochs = read_record(saved).history.epochs
    assert len(epochs) == 1 and len(epochs[0].kl_per_dim) == read_record(saved).model_config.latent_dim
    assert sum(epochs[0].kl_per_dim) == pytest.approx(epochs[0].eval["kl"], rel=1e-6)
    assert len(snap.epoch_records[0]["kl_per_dim"]) == 2  # and so does the live record


def test_stop_ends_a_run_within_a_second(train):
    tiny_settings(train, epochs=100, batch=16)
    train.button(key="train_start").click().run()
    wait_until(train, lambda at: viewed(at).global_step > 0)
    assert not train.button(key="train_stop").disabled
    asked = time.monotonic()
    train.button(key="train_stop").click().run()
    wait_until(train, lambda at: viewed(at).finished, deadline_s=10)
    assert time.monotonic() - asked < 5
    assert viewed(train).status == "stopped"
    assert any("Stopped by request" in i.value for i in train.info)
    assert viewed(train).can_save  # a stopped run keeps its weights


def image_urls(at) -> list[str]:
    return [img.url for element in at.get("image") for img in element.proto.imgs]


def plotly_ids(at) -> list[str]:
    return [element.proto.id for element in at.get("plotly_chart")]


def test_a_live_run_sends_a_picture_again_only_when_it_changed(train):
    """While a run trains, the latent map is one PNG, not a Plotly figure of 2,000 points, and a poll without a
    new map or sample grid sends the same media URLs: the browser fetches and draws nothing again (issue 10).
    When the run ends, the map is the interactive Plotly figure."""
    tiny_settings(train, epochs=100, batch=16)
    train.button(key="train_start").click().run()
    wait_until(train, lambda at: viewed(at).latent is not None and viewed(at).preview is not None)
    worker = service()._handles[train.session_state[VIEW]].process.pid
    os.kill(worker, signal.SIGSTOP)   # no new pictures while we look
    try:
        time.sleep(0.6)               # the scheduler collects what the worker had sent
        first = image_urls(train.run())
        first_charts = plotly_ids(train)
        second = image_urls(train.run())
        assert viewed(train).active
    finally:
        os.kill(worker, signal.SIGCONT)
    assert len(first) == 2 and second == first
    assert len(first_charts) == 1 and "train_curves" in first_charts[0]   # the curves; the map is a picture
    train.button(key="train_stop").click().run()
    wait_until(train, lambda at: viewed(at).finished, deadline_s=30)
    assert any("train_latent_map" in i for i in plotly_ids(train))
    assert len(image_urls(train)) == 1   # the samples


def test_training_survives_a_page_switch(train):
    tiny_settings(train, epochs=100, batch=16)
    train.button(key="train_start").click().run()
    job_id = train.session_state[VIEW]
    train.switch_page("pages/home.py").run()
    assert not errors_of(train)
    train.switch_page("pages/train.py").run()
    assert train.session_state[VIEW] == job_id and viewed(train).active
    assert train.text_input(key="train_hidden").value == "32"  # the settings came back too
    train.button(key="train_stop").click().run()
    wait_until(train, lambda at: viewed(at).finished, deadline_s=90)
    assert viewed(train).status == "stopped"


def test_a_refresh_on_another_page_finds_the_run(runs, monkeypatch):
    """Issue 18, fault 1: start a run on Train, go to the Latent map, refresh there (a fresh session, and no token
    in that page's URL), come back to Train: the run is there (it said "Nothing trained yet from this browser").
    One person on a laptop needs no sign-in: the browser's own token, kept in a cookie (which AppTest cannot
    hold, so it is handed back here as a browser would), makes their runs theirs in every session."""
    import streamlit as st

    from ui import identity
    monkeypatch.setattr(identity, "browser_token_cookie", lambda: st.query_params.get("_test_browser"))
    from streamlit.testing.v1 import AppTest
    from apptest_helpers import APP
    token = "laptop-browser-token-1234"
    train = AppTest.from_file(APP, default_timeout=60)
    train.query_params["_test_browser"] = token
    train.switch_page("pages/train.py").run()
    tiny_settings(train, epochs=100, batch=16)
    train.button(key="train_start").click().run()
    job_id = train.session_state[VIEW]
    train.switch_page("pages/latent_map.py").run()
    assert "owner" not in train.query_params     # nothing about who is who lives in a URL any more
    assert service().table.get(job_id).owner == "browser:" + token

    refreshed = AppTest.from_file(APP, default_timeout=60)
    refreshed.query_params["_test_browser"] = token    # the cookie the first session left in this browser
    refreshed.switch_page("pages/latent_map.py").run()
    refreshed.switch_page("pages/train.py").run()
    assert not errors_of(refreshed)
    assert refreshed.session_state[VIEW] == job_id
    assert not any("Nothing trained yet" in i.value for i in refreshed.info)
    assert not refreshed.button(key="train_stop").disabled  # it can stop the run the first tab started
    refreshed.button(key="train_stop").click().run()
    wait_until(refreshed, lambda at: viewed(at).finished, deadline_s=90)
    stranger = AppTest.from_file(APP, default_timeout=60)   # another browser on the same server: its own person
    stranger.switch_page("pages/train.py").run()
    assert stranger.session_state[VIEW] is None and any("Nothing trained yet" in i.value for i in stranger.info)


def test_a_model_over_the_weight_limit_is_refused_before_start(train):
    train.text_input(key="train_hidden").set_value("8192, 8192, 8192").run()
    assert not errors_of(train)
    sentence = " ".join(e.value for e in train.error)
    assert "weights; the limit here is 20,000,000" in sentence
    assert train.button(key="train_start").disabled


def test_without_data_the_page_says_so_and_cannot_start(no_data, train):
    assert not errors_of(train)
    assert any("was not found" in w.value for w in train.warning)
    assert train.button(key="train_start").disabled


def test_hidden_layers_start_at_the_shared_default(train):
    """The Train page and the CLI start from one model size, vae_core.config.DEFAULT_HIDDEN_DIMS."""
    from vae_core.config import DEFAULT_HIDDEN_DIMS
    from ui.training_job import parse_hidden
    assert parse_hidden(train.text_input(key="train_hidden").value) == DEFAULT_HIDDEN_DIMS


@pytest.mark.parametrize("text, env, words", [
    ("[limits]\nmax_runs = 'two'\n", {}, "[limits] max_runs (runs training at once) must be a whole number from 1 to"),
    ("[limits]\nmax_run = 2\n", {}, "[limits] has an unknown key 'max_run'"),
    ("[limits]\nmax_runs = 2\n", {"LATENT_LAB_MAX_QUEUED": "-1"},
     "LATENT_LAB_MAX_QUEUED (runs waiting for a free slot) must be a whole number from 0 to 1,000; got '-1'."),
    ("[limits]\nmax_runs = 2\n", {"LATENT_LAB_WORKER_THREADS": "1000000"},
     "LATENT_LAB_WORKER_THREADS (torch threads per worker) must be a whole number from 1 to"),
    ("[limits]\nmax_runs = '" + "x" * 60_000 + "'\n", {}, "…' (60,000 characters)."),
], ids=["file type", "file unknown key", "variable range", "threads past the cores", "a 60,000-character value"])
def test_bad_limits_are_a_sentence_on_the_page_not_a_traceback(app, runs, monkeypatch, tmp_path, text, env, words):
    config = tmp_path / "latent_lab.toml"
    config.write_text(text)
    monkeypatch.setenv("LATENT_LAB_CONFIG", str(config))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app.switch_page("pages/train.py").run()
    assert not app.exception, [e.value for e in app.exception]
    [error] = [e.value for e in app.error]
    assert error.startswith("Training is off until the limits are fixed: ") and words in error, error[:500]
    assert len(error) < 400 + len(str(config)) and "\n" not in error   # a long value is quoted, not repeated
    assert (str(config) in error) == (not env)  # a file's sentence names the file; a variable's names the variable
    assert not [b for b in app.button if b.key == "train_start"]  # nothing can be started


def test_limits_from_the_file_reach_the_page(app, runs, monkeypatch, tmp_path):
    config = tmp_path / "latent_lab.toml"
    config.write_text("[limits]\nmax_queued = 7\nmax_weights = 12_345\n")
    monkeypatch.setenv("LATENT_LAB_CONFIG", str(config))
    app.switch_page("pages/train.py").run()
    assert not errors_of(app)
    assert any("7 waiting at most, 12,345 weights per model" in c.value for c in app.caption)

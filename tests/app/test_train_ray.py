"""The Train page on the Ray backend (LATENT_LAB_RUNNER=ray): one local Ray with one CPU, started for this
test and shut down after it, runs a tiny job through the same page code as the local backend."""
import os

import pytest

from apptest_helpers import run_a_tiny_job, save_the_finished_run


ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")


@pytest.fixture
def ray_train(app, tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", f"{tmp_path / 'runs'}{os.pathsep}{model_dir}")
    monkeypatch.setenv("LATENT_LAB_RUNNER", "ray")
    monkeypatch.setenv("LATENT_LAB_MAX_RUNS", "1")  # ray.init(num_cpus=1)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    app.switch_page("pages/train.py").run()
    yield app
    from jobs.api import shutdown_all
    shutdown_all()
    ray.shutdown()


def test_a_tiny_job_runs_on_a_local_ray_through_the_train_page(ray_train):
    at = ray_train
    snap = run_a_tiny_job(at)
    assert snap.status == "completed", snap.message
    from ui.training_job import jobs
    assert jobs().backend.name == "ray" and ray.is_initialized()
    assert snap.backend == "ray" and len(snap.steps["step"]) == snap.total_steps > 0
    assert snap.latent is not None and snap.can_save
    save_the_finished_run(at, "from_ray")

"""The local backend's fork server (jobs/local.py, jobs/preload.py): workers forked from a process that has
torch and the data loaded train exactly like freshly spawned ones, take the server's current settings, and
no process waits beside the running ones."""
import multiprocessing as mp
import sys
import time
from pathlib import Path

import pytest

from vae_core import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "app"))
from apptest_helpers import write_synthetic_mnist  # noqa: E402

pytestmark = pytest.mark.skipif("forkserver" not in mp.get_all_start_methods(), reason="no fork server here")

TINY = ModelConfig(hidden_dims=(16,))
SETTINGS = TrainConfig(epochs=1, batch_size=128, train_limit=1000, eval_limit=200, seed=3)


def workers() -> list:
    return [p for p in mp.active_children() if p.name == "latent-lab-worker"]


def test_a_forked_worker_gives_the_same_steps_as_a_spawned_one_and_says_where_its_start_went(make_service):
    forked, spawned = make_service(warm_worker=1), make_service(warm_worker=0)
    assert forked.backend is not None or forked._thread.is_alive()
    runs = {}
    for name, service in (("forked", forked), ("spawned", spawned)):
        snap = service.wait(service.submit(TINY, SETTINGS, "a"), 120)
        assert snap.status == "completed", snap.message
        runs[name] = snap
    assert runs["forked"].steps["loss"] == runs["spawned"].steps["loss"]   # same data, same batches, same model
    assert runs["forked"].epoch_records[0]["eval"] == runs["spawned"].epoch_records[0]["eval"]
    stamps = runs["forked"].timings
    order = [stamps[k] for k in ("submitted", "received", "data", "model", "first_step")]
    assert order == sorted(order) and order[-1] - order[0] < 60


def test_a_forked_worker_reads_the_data_folder_the_server_has_now(make_service, monkeypatch, tmp_path):
    service = make_service(warm_worker=1)
    assert service.wait(service.submit(TINY, SETTINGS, "a"), 120).train_images == 1000  # the fork server is up
    other = write_synthetic_mnist(tmp_path / "other", n_train=600, datasets=("mnist",))
    monkeypatch.setenv("VAE_DATA_DIR", str(other))   # after the fork server started, with the old value
    snap = service.wait(service.submit(TINY, SETTINGS.replace(train_limit=0), "a"), 120)
    assert snap.status == "completed", snap.message
    assert snap.train_images == 600


def test_no_process_waits_beside_the_running_ones(make_service):
    service = make_service(warm_worker=1, max_runs=1)
    first = service.submit(TINY, SETTINGS.replace(epochs=200, batch_size=16), "a")
    second = service.submit(TINY, SETTINGS, "b")
    service.wait(first, 120, until=lambda s: s.global_step > 0)
    time.sleep(0.5)
    assert service.progress(second).status == "queued"
    assert len(workers()) == 1   # the running job's worker only: no spare while the one slot is busy
    service.stop(first)
    assert service.wait(second, 120).status == "completed"
    deadline = time.monotonic() + 30
    while workers() and time.monotonic() < deadline:   # finished workers are reaped
        time.sleep(0.2)
    assert workers() == []

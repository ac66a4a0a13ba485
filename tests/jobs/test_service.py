"""Jobs in real worker processes: end to end, the cap and the queue, the abandoned run, a killed worker."""
import os
import re
import signal
import time

import numpy as np
import pytest

from jobs.api import JobRefused
from vae_core import ModelConfig, TrainConfig, load_checkpoint, read_record

TINY = ModelConfig(hidden_dims=(16,))


def tiny(epochs=1, batch=128, limit=1000):
    return TrainConfig(epochs=epochs, batch_size=batch, train_limit=limit, eval_limit=200)


def test_a_job_trains_in_a_worker_process_and_its_model_is_saved(make_service, tmp_path):
    service = make_service()
    job = service.submit(TINY, tiny(epochs=2), "alice")
    snap = service.wait(job, 90)
    assert snap.status == "completed", snap.message
    assert len(snap.steps["step"]) == snap.total_steps == 16
    assert [r["epoch"] for r in snap.epoch_records] == [0, 1] and snap.epoch_records[-1]["eval"]["loss"] > 0
    assert snap.preview is not None and snap.latent is not None and snap.latent[0].shape == (200, 2)
    assert snap.can_save and snap.wall > 0
    path = service.save(job, tmp_path / "models", "demo")
    model, record = load_checkpoint(path)
    assert record.name == "demo" and record.model_config == TINY and record.epochs_completed == 2
    assert record.metrics["test_images"] == 500 and len(record.history.epochs) == 2
    assert record.latent_means() is not None and record.command == "Latent Lab Train page"
    with pytest.raises(ValueError, match="already exists"):
        service.save(job, tmp_path / "models", "demo")
    with pytest.raises(ValueError, match="letters, digits"):
        service.save(job, tmp_path / "models", "no spaces")
    assert [s.id for s in service.jobs_of("alice")] == [job] and service.jobs_of("bob") == []


def test_runs_beyond_the_cap_wait_in_line_and_start_on_their_own(make_service):
    service = make_service(max_runs=1, max_queued=1)
    first = service.submit(TINY, tiny(epochs=200, batch=16), "a")
    service.wait(first, 60, until=lambda s: s.status == "running")
    second = service.submit(TINY, tiny(), "b")
    snap = service.progress(second)
    assert snap.status == "queued" and snap.place_in_queue == 1 and snap.queue_length == 1
    with pytest.raises(JobRefused, match="The queue is full"):
        service.submit(TINY, tiny(), "c")
    time.sleep(1.0)
    assert service.progress(second).status == "queued"  # still waiting: only one run at a time
    service.stop(first)
    assert service.wait(second, 90).status == "completed"
    assert service.progress(first).status == "stopped"


def test_a_queued_job_can_leave_the_line(make_service):
    service = make_service(max_runs=1)
    first = service.submit(TINY, tiny(epochs=200, batch=16), "a")
    second = service.submit(TINY, tiny(), "a")
    service.stop(second)
    snap = service.progress(second)
    assert snap.status == "stopped" and "before it started" in snap.message
    service.stop(first)
    service.wait(first, 30)


def test_an_oversized_model_is_refused_with_a_sentence(make_service):
    service = make_service(max_weights=10_000)
    with pytest.raises(JobRefused, match=r"This model has [\d,]+ weights; the limit here is 10,000"):
        service.submit(ModelConfig(hidden_dims=(64,)), tiny(), "a")
    assert service.jobs_of("a") == []


def test_a_run_nobody_watches_stops_and_keeps_its_weights(make_service):
    service = make_service(abandon_seconds=2)
    job = service.submit(TINY, tiny(epochs=200, batch=16), "a")
    service.wait(job, 60, until=lambda s: s.global_step > 0)  # watched (wait polls) until it trains
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        snap = service.progress(job, touch=False)  # looking without telling: nobody is watching
        if snap.finished:
            break
        time.sleep(0.2)
    assert snap.status == "stopped", snap.message
    assert "nobody watched this run" in snap.message and "weights are kept, ready to save" in snap.message
    assert snap.can_save and snap.global_step > 0
    model, record = load_checkpoint(snap.result_path)
    assert record.status == "stopped" and record.epochs_completed is not None
    saved = read_record(service.save(job, snap.result_path.rsplit("/", 1)[0] + "/saved", "kept"))
    # the saved model says why its run stopped, and when
    assert re.fullmatch(r"Stopped: nobody watched this run for 2 s, in epoch \d+, after \d+ steps\.", saved.message)


def test_a_worker_killed_mid_run_marks_its_job_failed_with_a_sentence(make_service):
    service = make_service()
    job = service.submit(TINY, tiny(epochs=200, batch=16), "a")
    service.wait(job, 60, until=lambda s: s.global_step > 20)
    os.kill(service._handles[job].pid, signal.SIGKILL)
    snap = service.wait(job, 30)
    assert snap.status == "failed"
    assert "was killed by SIGKILL during epoch" in snap.message and snap.message.endswith("the run is lost.")
    again = service.submit(TINY, tiny(), "a")  # the service goes on
    assert service.wait(again, 90).status == "completed"


def test_a_new_service_on_the_same_folder_lists_finished_jobs_with_their_curves(make_service, tmp_path):
    folder = tmp_path / "shared"
    first = make_service(folder)
    job = first.submit(TINY, tiny(), "a")
    live = first.wait(job, 90)
    assert live.status == "completed"
    first.shutdown()
    second = make_service(folder)  # as after a server restart
    assert [s.id for s in second.jobs_of("a")] == [job]
    assert not second._history_cache[job].pictures_from_file   # a list of runs draws no pictures ...
    snap = second.progress(job)                                 # ... the run a page shows does
    assert snap.status == "completed" and snap.can_save
    assert len(snap.steps["step"]) == 8 and len(snap.epoch_records) == 1
    # the samples and the latent map come back too: the same noise on the same final weights, and the
    # test-set means the result file carries
    assert snap.preview is not None and np.abs(snap.preview - live.preview).max() < 1e-5
    assert snap.preview_caption.startswith("64 samples from the prior")
    means, labels = snap.latent
    assert means.shape == (500, 2) and labels.shape == (500,) and np.isfinite(means).all()

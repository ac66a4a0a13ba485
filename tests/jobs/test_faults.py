"""The job runner under faults (issue 19): two servers on one folder, a server killed with SIGKILL, a hung
server, a hung (SIGSTOPped) worker, a full disk, a table deleted or damaged while a run trains, and the
retention of results. Each waits on states with generous deadlines, never on a fixed sleep."""
from __future__ import annotations

import errno
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from jobs.table import JobTable
from vae_core import ModelConfig, TrainConfig, read_record

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(hidden_dims=(16,))


def tiny(epochs=1, batch=128):
    return TrainConfig(epochs=epochs, batch_size=batch, train_limit=1000, eval_limit=200)


LONG = tiny(epochs=200, batch=16)


def until(condition, timeout: float, what: str, step: float = 0.1):
    """Wait for condition() to be truthy (returns it), or fail saying what was awaited."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(step)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------- 1. two servers on one folder
def test_two_servers_on_one_folder_share_one_cap_and_never_end_each_others_live_runs(make_service, tmp_path):
    """Before leases, opening the second server marked the first's live run 'failed: The server stopped during
    this run' (it later flipped to 'completed'), and each server applied its own max_runs."""
    folder = tmp_path / "shared"
    first = make_service(folder, max_runs=1)
    a = first.submit(TINY, LONG, "ann")
    first.wait(a, 90, until=lambda s: s.global_step > 0)
    second = make_service(folder, max_runs=1)      # a second server (another port, or a restart beside the old)
    b = second.submit(TINY, tiny(), "bob")
    beat = first.table.get(a).heartbeat
    until(lambda: (first.table.get(a).heartbeat or 0) > beat + 2, 30, "two more heartbeats of the first server")
    assert second.progress(a).status == "running", second.progress(a).message   # not ended by the second
    assert second.progress(b).status == "queued"       # one cap for the class, counted over the table
    assert len(first.table.with_status("starting", "running", "stopping")) == 1
    second.stop(a)                                      # a Stop pressed on a page the second server serves
    snap = second.wait(a, 60)
    assert snap.status == "stopped" and snap.message.startswith("Stopped by request") and snap.can_save, snap.message
    assert second.wait(b, 90).status == "completed"
    assert first.progress(a).status == "stopped" and first.table.get(a).server == first.server_id


def test_a_hung_server_loses_its_lease_and_then_stops_its_worker(make_service, tmp_path, monkeypatch):
    """A server that stops renewing (hung, or SIGSTOPped) has its running row ended by another server once the
    lease expires, with a sentence; when it wakes up, it stops its worker and writes nothing more."""
    folder = tmp_path / "shared"
    first = make_service(folder, lease_seconds=2, stop_grace_seconds=1)
    job = first.submit(TINY, LONG, "ann")
    first.wait(job, 90, until=lambda s: s.global_step > 0)
    pid = until(lambda: first.table.get(job).worker_pid, 10, "the worker's pid in the row")
    assert first.table.get(job).host == first.host
    gate, real_tick = threading.Event(), first._tick
    monkeypatch.setattr(first, "_tick", lambda heartbeat: (gate.wait(), real_tick(heartbeat)))
    second = make_service(folder, lease_seconds=2)
    snap = second.wait(job, 30)
    assert snap.status == "failed", snap.message
    assert re.fullmatch(r"The server running it stopped \(no heartbeat for \d+ s\); the run is lost\.", snap.message)
    assert alive(pid)                       # the hung server's worker still trains ...
    gate.set()
    until(lambda: not alive(pid), 30, "the worker of the server whose lease was taken over to end")
    assert second.progress(job).status == "failed" and second.progress(job).message == snap.message


# ---------------------------------------------------------------------------- 2. a server killed with SIGKILL
SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from jobs.api import JobService
from jobs.limits import read_limits
from vae_core import ModelConfig, TrainConfig
limits = read_limits({{"LATENT_LAB_WARM_WORKER": {warm!r}, "LATENT_LAB_LEASE_SECONDS": "2", "LATENT_LAB_WORKER_NICE": "0"}})
service = JobService({folder!r}, limits)
job = service.submit(ModelConfig(hidden_dims=(16,)), TrainConfig(epochs=200, batch_size=16, train_limit=1000,
                     eval_limit=200), "ann")
service.wait(job, 240, until=lambda s: s.global_step > 0)
print("RUNNING", job, flush=True)
while True:
    service.progress(job)
    time.sleep(0.2)
"""


def marked_processes(marker: str) -> dict[int, str]:
    """Live processes whose environment holds the marker: {pid: command line}."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
        except OSError:
            continue
        if marker.encode() in env and alive(pid):
            found[pid] = cmd
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("warm", ["1", "0"], ids=["fork server", "spawned worker"])
def test_a_server_killed_with_sigkill_leaves_no_worker_fork_server_or_tracker(make_service, tmp_path, job_data,
                                                                               warm):
    """kill -9 of the server mid-run: before, the worker (~590 MB), the fork server and the resource tracker
    stayed alive and the run's weights were lost. Now all three are gone within 10 s, the worker kept its
    weights, and the next server on the folder ends the row with a sentence and offers them to save."""
    folder, marker = tmp_path / "runs", f"latent-lab-test-{uuid.uuid4().hex}"
    env = {**os.environ, "VAE_DATA_DIR": str(job_data), "LATENT_LAB_TEST_MARK": marker}
    script = SERVER.format(root=str(ROOT), folder=str(folder), warm=warm)
    server = subprocess.Popen([sys.executable, "-c", script], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("RUNNING"), server.stderr.read() if server.poll() is not None else line
        job = line.split()[1]
        before = marked_processes(marker)
        kinds = " | ".join(before.values())
        # the server, multiprocessing's resource tracker and the worker (and the fork server it was forked from)
        assert len(before) >= 3 + (warm == "1") and "resource_tracker" in kinds, before
        assert ("forkserver" in kinds) == (warm == "1"), before
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        killed = time.monotonic()
        until(lambda: not marked_processes(marker), 10, f"the server's processes to end: {marked_processes(marker)}",
              step=0.05)
        print(f"every process of the killed server ended {time.monotonic() - killed:.1f} s after the kill")
    finally:
        if server.poll() is None:
            server.kill()
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)
    row = JobTable(folder / "jobs.sqlite").get(job)
    assert row.status == "running"            # nobody has looked yet
    after = make_service(folder, lease_seconds=2)
    snap = after.wait(job, 30)
    assert snap.status == "stopped", snap.message
    assert re.fullmatch(r"The server running it stopped \(no heartbeat for \d+ s\); its worker kept its last "
                        r"weights, ready to save\.", snap.message), snap.message
    assert snap.can_save
    record = read_record(after.save(job, tmp_path / "models", "kept"))
    assert record.message.startswith("Stopped: the server that started this run went away")


# ---------------------------------------------------------------------------- 3. a hung worker
def test_a_hung_worker_is_killed_at_the_time_limit_and_the_next_run_starts(make_service):
    """kill -STOP of a worker: before, the run said 'stopping' forever past max_run_seconds and the queued run
    waited behind it (a stop only set an Event). Now: SIGTERM after the grace, SIGKILL after as long again."""
    import dataclasses
    service = make_service(max_runs=1, stop_grace_seconds=1, worker_nice=0)
    job = service.submit(TINY, LONG, "ann")
    service.wait(job, 90, until=lambda s: s.global_step > 0 or s.finished)
    pid = until(lambda: service.table.get(job).worker_pid, 10, "the worker's pid in the row")
    os.kill(pid, signal.SIGSTOP)
    waiting = service.submit(TINY, tiny(), "bob")
    # the time limit falls due while it hangs (set now: under load, a worker's start can take longer than a
    # short limit, and the run would stop before it could hang)
    started, limits = service.table.get(job).started, service.limits
    service.limits = dataclasses.replace(limits, max_run_seconds=round(time.time() - started) + 1)
    try:
        snap = service.wait(job, 60)
    finally:
        service.limits = limits    # the next run has the usual hour
        if alive(pid):
            os.kill(pid, signal.SIGCONT)
    assert snap.status == "stopped", snap.message
    assert re.fullmatch(r"Stopped at the time limit of \d+ s a run; its process did not stop within \d+ s of being "
                        r"asked, so it was ended with SIGKILL; its weights are lost\.", snap.message), snap.message
    assert not snap.can_save and not alive(pid)
    assert service.wait(waiting, 90).status == "completed"


# ---------------------------------------------------------------------------- 4. a full disk
@pytest.fixture
def full_results_folder(tmp_path, monkeypatch, request):
    """<runs>/.jobs on a 16 kB tmpfs (a result of the tiny model is ~110 kB) when this test may mount one (root,
    Linux); else every result write raises ENOSPC, as the disk would."""
    folder = tmp_path / "runs"
    results = folder / ".jobs"
    results.mkdir(parents=True)
    if request.param == "tmpfs":
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(results)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); the "
                        "ENOSPC-raising write covers the case")
        yield folder
        subprocess.run(["umount", "-l", str(results)], capture_output=True)
        return
    import jobs.api

    def no_space(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(jobs.api, "write_result_file", no_space)
    yield folder


@pytest.mark.parametrize("full_results_folder", ["tmpfs", "ENOSPC raised"], indirect=True)
def test_a_result_that_cannot_be_written_fails_the_run_with_the_folder_and_its_free_space(make_service,
                                                                                            full_results_folder):
    """Before, ENOSPC in the scheduler thread was only logged: the run showed 'completed · Trained 1 epochs'
    with no Save and no reason."""
    service = make_service(full_results_folder)
    snap = service.wait(service.submit(TINY, tiny(), "ann"), 90)
    assert snap.status == "failed", snap.message
    assert re.match(rf"The run ended, but its weights \([\d.]+ kB\) could not be written to "
                    rf"{re.escape(str(full_results_folder / '.jobs'))} \(no space left on device; ", snap.message), \
        snap.message
    assert re.search(r"[\d.]+ (bytes|kB|MB|GB|TB) free of [\d.]+ (bytes|kB|MB|GB|TB) on that disk\), so there is "
                     r"nothing to save\. Free some space there and train again\.$", snap.message), snap.message
    assert not snap.can_save and not snap.result_path
    assert not [p for p in (full_results_folder / ".jobs").iterdir() if p.suffix == ".safetensors"]


# ---------------------------------------------------------------------------- 5. the table deleted or damaged
def remove_table(folder: Path) -> None:
    for name in ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm"):
        (folder / name).unlink(missing_ok=True)


def damage_table(folder: Path) -> None:
    """Garbage over the header, once the write-ahead log is copied back (SQLite reads page 1 from the log while
    the log holds it, and would not see the damage before its next checkpoint)."""
    with sqlite3.connect(folder / "jobs.sqlite") as db:
        until(lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0, 30, "an emptied log")
    with open(folder / "jobs.sqlite", "r+b") as f:
        f.write(b"this is not an SQLite header at all" * 3)


@pytest.mark.parametrize("fault, words", [
    (remove_table, r"had disappeared \(the file was deleted or emptied while the server ran\); at [\d:]+ a new one "
                   r"was started"),
    (damage_table, r"was damaged \(file is not a database\); at [\d:]+ it was moved aside to "
                   r"jobs\.sqlite\.corrupt-\d{8}-\d{6} and a new one was started"),
])
def test_a_table_deleted_or_damaged_mid_run_is_started_anew_and_the_run_carries_on(make_service, tmp_path, fault,
                                                                                     words):
    """Before: 'no such table: jobs' or 'file is not a database' for every visitor until a restart. Now the
    table is started anew (a damaged one kept aside), the running run is put back and finishes, and a notice
    says what happened; saved models in the folder are untouched."""
    folder = tmp_path / "runs"
    service = make_service(folder)
    done = service.wait(service.submit(TINY, tiny(), "ann"), 90)
    saved = service.save(done.id, folder, "kept_model")
    job = service.submit(TINY, tiny(epochs=3, batch=32), "ann")
    service.wait(job, 90, until=lambda s: s.global_step > 0)
    # between two of the scheduler's ticks (no connection of its own open): a file deleted while SQLite opens
    # it can be recreated by that very opening, with its old contents (from the WAL)
    gate, parked, real_tick = threading.Event(), threading.Event(), service._tick
    service._tick = lambda heartbeat: (parked.set(), gate.wait(), real_tick(heartbeat))
    assert parked.wait(30)
    fault(folder)
    del service._tick
    gate.set()
    snap = service.wait(job, 120)              # the scheduler met the fault, repaired it and put the run back
    assert snap.status == "completed", snap.message
    assert [s.id for s in service.jobs_of("ann")] == [job]   # the runs listed before are gone with the old file
    assert re.search(words, service.notice()), service.notice()
    assert "saved models are untouched" in service.notice()
    assert read_record(saved).name == "kept_model"
    aside = [p.name for p in folder.glob("jobs.sqlite.corrupt-*") if not p.name.endswith("-wal")]
    assert len(aside) == (1 if fault is damage_table else 0) and (not aside or aside[0] in service.notice())
    with sqlite3.connect(folder / "jobs.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------------------- 6. retention
def test_old_and_surplus_results_are_removed_and_saved_models_kept(make_service, tmp_path):
    """Before, nothing removed runs/.jobs/ (a 19.2 M-weight result is 77 MB): now a result older than the
    retention, and each person's unsaved results beyond their count, are removed, with a note on the row;
    saved models (in the models folder) are never touched."""
    folder = tmp_path / "runs"
    service = make_service(folder, result_retention_hours=24, results_per_person=2)
    first = service.wait(service.submit(TINY, tiny(), "ann"), 90)
    model = service.save(first.id, folder, "ann_model")
    source = Path(first.result_path).read_bytes()
    table, now = service.table, time.time()
    table.update(first.id, finished=now - 4 * 3600, saved_path="")   # its result: ann's oldest unsaved one

    def finished_run(owner: str, hours_ago: float, saved: str = "") -> str:
        job = table.add(owner, table.get(first.id).settings, status="completed")
        path = folder / ".jobs" / f"{job}.safetensors"
        path.write_bytes(source)
        table.update(job, result_path=str(path), finished=now - hours_ago * 3600, saved_path=saved)
        return job

    old = finished_run("ann", 30)
    old_saved = finished_run("ann", 30, saved=str(model))
    ann_recent = [finished_run("ann", h) for h in (3, 2, 1)]    # with `first` (4 h): four unsaved in the day
    bob = finished_run("bob", 5)
    stray = folder / ".jobs" / "0123456789ab.safetensors"        # a file no row names (a table started anew)
    stray.write_bytes(source)
    os.utime(stray, (now - 48 * 3600, now - 48 * 3600))
    service._clean_results(now)

    def kept(job):
        return Path(table.get(job).result_path).is_file() if table.get(job).result_path else False
    assert not kept(old) and not kept(old_saved) and not stray.exists()
    assert table.get(old).error.startswith("Its weights were removed 24 h after it ended")
    assert [kept(j) for j in ann_recent] == [False, True, True] and not kept(first.id)   # ann's two newest
    assert "each person keeps the results of their 2 newest unsaved runs" in table.get(first.id).error
    assert kept(bob)
    assert read_record(model).name == "ann_model"                # the saved model is untouched
    snap = service.progress(first.id)
    assert not snap.can_save and snap.note == table.get(first.id).error
    with pytest.raises(ValueError, match="^its weights were removed: each person keeps"):
        service.save(first.id, folder, "too_late")

"""The job table's schema versions, caps checked with the insert, claims under a class-wide cap, and leases."""
import sqlite3
import threading
import time

import pytest

from jobs.table import VERSION, Caps, JobTable, Refused


def test_a_version_1_file_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "jobs.sqlite"
    from jobs.table import SCHEMA_V1
    with sqlite3.connect(path) as db:   # a file as the previous release wrote it (no user_version)
        db.executescript(SCHEMA_V1)
        db.execute("INSERT INTO jobs (id, owner, settings, status, created) VALUES ('old', 'me', '{}', 'completed', 1)")
    table = JobTable(path)
    row = table.get("old")
    assert row.status == "completed" and row.kind == "train" and row.lease_expires is None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"jobs", "job_points", "people", "published"} <= names
    JobTable(path)  # a second open of a current file changes nothing
    assert table.get("old").status == "completed"


def test_caps_are_checked_with_the_insert_under_a_burst_of_threads(tmp_path):
    """200 threads submit at once (max_runs 1, max_queued 20): exactly 21 are accepted, none beyond."""
    table = JobTable(tmp_path / "jobs.sqlite")
    caps = Caps(max_runs=1, max_queued=20)
    accepted, refused = [], []
    barrier = threading.Barrier(50)

    def submit(i):
        if i < 50:
            barrier.wait()
        try:
            accepted.append(JobTable(tmp_path / "jobs.sqlite").add(f"person-{i}", {}, caps=caps))
        except Refused as e:
            refused.append(str(e))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 21 and len(refused) == 179
    assert len(table.with_status("queued")) == 21
    assert refused[0].startswith("The queue is full (")


def test_one_person_may_hold_only_their_share(tmp_path):
    table = JobTable(tmp_path / "jobs.sqlite")
    caps = Caps(max_runs=4, max_queued=20, runs_per_person=1, queued_per_person=1)
    table.add("ann", {}, caps=caps)
    table.add("ann", {}, caps=caps)
    with pytest.raises(Refused, match=r"^You already have 2 runs waiting; each person may have 1 training and 1 "):
        table.add("ann", {}, caps=caps)
    table.add("bob", {}, caps=caps)   # another person is not held back


def test_claim_next_respects_the_class_cap_and_each_persons_running_share(tmp_path):
    table = JobTable(tmp_path / "jobs.sqlite")
    a1, a2, b1 = table.add("ann", {}), table.add("ann", {}), table.add("bob", {})
    first = table.claim_next("s1", max_runs=2, lease_seconds=30, runs_per_person=1)
    second = table.claim_next("s2", max_runs=2, lease_seconds=30, runs_per_person=1)
    assert (first.id, second.id) == (a1, b1)        # ann's second run waits: she has one training
    assert table.claim_next("s1", max_runs=3, lease_seconds=30, runs_per_person=1) is None
    assert table.claim_next("s1", max_runs=2, lease_seconds=30) is None      # the class's two slots are taken
    table.update(a1, status="completed")
    assert table.claim_next("s2", max_runs=2, lease_seconds=30, runs_per_person=1).id == a2
    assert table.get(a2).server == "s2" and table.get(a2).lease_expires > time.time()


def test_a_running_row_is_ended_only_once_its_lease_has_expired(tmp_path):
    table = JobTable(tmp_path / "jobs.sqlite")
    job = table.add("ann", {})
    table.claim_next("s1", max_runs=1, lease_seconds=0.3)
    assert table.expired() == []
    assert not table.end_if_expired(job, "failed", "gone")      # s1 still holds it
    assert table.renew("s1", [job], lease_seconds=0.3) == [job]
    time.sleep(0.4)
    assert [r.id for r in table.expired()] == [job]
    assert table.renew("s2", [job], lease_seconds=30) == []     # a lease is renewed only by its holder
    assert table.end_if_expired(job, "failed", "The server running it stopped.")
    assert table.get(job).status == "failed" and table.renew("s1", [job], 30) == []


def test_curve_points_are_shared_through_the_table(tmp_path):
    table = JobTable(tmp_path / "jobs.sqlite")
    job = table.add("ann", {})
    table.add_points(job, [(1, 200.0, None), (2, 180.0, None)])
    table.add_points(job, [(2, 181.0, 175.0)])
    assert JobTable(tmp_path / "jobs.sqlite").points([job]) == {job: [(1, 200.0, None), (2, 181.0, 175.0)]}

"""The job table (order, claims, place in line) and the limits read from the environment."""
import subprocess
import sys

import pytest

from jobs.limits import count_weights, read_limits, weights_problem
from jobs.table import JobTable
from vae_core import ModelConfig, build_model


def test_place_in_queue_follows_submission_and_a_claim_is_taken_once(tmp_path):
    table = JobTable(tmp_path / "jobs.sqlite")
    a, b, c = (table.add("owner", {"n": i}) for i in range(3))
    assert [table.place_in_queue(j) for j in (a, b, c)] == [1, 2, 3]
    assert table.claim(a, "starting", "server-1")
    assert not table.claim(a, "starting", "server-2")  # someone else got it first
    assert [table.place_in_queue(j) for j in (a, b, c)] == [0, 1, 2]
    assert [r.id for r in table.of_owner("owner")] == [c, b, a]  # newest first
    assert table.get(a).status == "starting" and table.get(a).settings == {"n": 0}
    assert JobTable(tmp_path / "jobs.sqlite").get(b).status == "queued"  # a second opener sees the same rows


def test_the_table_file_is_in_wal_mode(tmp_path):
    import sqlite3
    JobTable(tmp_path / "jobs.sqlite")
    with sqlite3.connect(tmp_path / "jobs.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_limits_defaults_and_overrides():
    limits = read_limits({})
    assert limits.max_runs >= 1 and limits.max_weights == 20_000_000 and limits.abandon_seconds == 600
    assert limits.runner == "local"
    custom = read_limits({"LATENT_LAB_MAX_RUNS": "3", "LATENT_LAB_MAX_QUEUED": "0",
                          "LATENT_LAB_ABANDON_SECONDS": "1.5", "LATENT_LAB_RUNNER": "ray"})
    assert (custom.max_runs, custom.max_queued, custom.abandon_seconds, custom.runner) == (3, 0, 1.5, "ray")


@pytest.mark.parametrize("env, words", [({"LATENT_LAB_MAX_RUNS": "lots"}, "LATENT_LAB_MAX_RUNS must be a number"),
                                        ({"LATENT_LAB_MAX_RUNS": "0"}, "must be at least 1"),
                                        ({"LATENT_LAB_RUNNER": "slurm"}, "must be 'local' or 'ray'")])
def test_bad_limits_are_refused_with_a_sentence(env, words):
    with pytest.raises(ValueError, match=words):
        read_limits(env)


def test_weights_are_counted_without_allocating_them():
    config = ModelConfig(hidden_dims=(64, 32))
    assert count_weights(config) == build_model(config).num_parameters()
    huge = ModelConfig(hidden_dims=(8192,) * 8)  # 470 million weights: counted on the meta device
    sentence = weights_problem(huge, read_limits({}))
    assert sentence.startswith("This model has ") and "the limit here is 20,000,000" in sentence
    assert weights_problem(config, read_limits({})) is None


def test_the_jobs_package_does_not_import_streamlit():
    code = ("import sys; import jobs.api, jobs.worker, jobs.local, jobs.preload, jobs.table, jobs.limits, jobs.ray_backend; "
            "assert 'streamlit' not in sys.modules, 'streamlit was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(
        __import__("pathlib").Path(__file__).resolve().parents[2]))
    assert done.returncode == 0, done.stderr

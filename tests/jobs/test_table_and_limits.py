"""The job table (order, claims, place in line) and the limits read from the environment and the limits file."""
import subprocess
import sys

import pytest

from jobs.limits import LimitsError, count_weights, read_limits, weights_problem
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


@pytest.mark.parametrize("env, words", [({"LATENT_LAB_MAX_RUNS": "lots"}, "LATENT_LAB_MAX_RUNS must be a whole number"),
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


# ---------------------------------------------------------------------------- the limits file
def write_limits(tmp_path, text: str):
    path = tmp_path / "latent_lab.toml"
    path.write_text(text)
    return path


def test_the_limits_file_sets_values_and_an_env_var_wins_over_it(tmp_path):
    path = write_limits(tmp_path, '[limits]\nmax_runs = 3\nmax_queued = 0\nabandon_seconds = 1.5\n'
                                  'max_weights = 1_000\nrunner = "ray"\nwarm_worker = false\n')
    from_file = read_limits({"LATENT_LAB_CONFIG": str(path)})
    assert (from_file.max_runs, from_file.max_queued, from_file.abandon_seconds, from_file.max_weights,
            from_file.runner, from_file.warm_worker) == (3, 0, 1.5, 1000, "ray", False)
    both = read_limits({"LATENT_LAB_CONFIG": str(path), "LATENT_LAB_MAX_RUNS": "2", "LATENT_LAB_RUNNER": "local"})
    assert (both.max_runs, both.runner, both.max_queued) == (2, "local", 0)  # the file still gives the rest
    assert read_limits({}, config=path).max_runs == 3  # the file passed directly


def test_a_missing_file_at_the_default_path_means_the_defaults(tmp_path):
    assert read_limits({}, config=tmp_path / "nothing.toml") == read_limits({}, config=tmp_path / "none.toml")
    limits = read_limits({}, config=tmp_path / "nothing.toml")
    assert limits.max_weights == 20_000_000 and limits.max_queued == 20 and limits.runner == "local"


@pytest.mark.parametrize("text, words", [
    ("[limits]\nmax_run = 3\n", "[limits] has an unknown key 'max_run'; the keys are max_runs, "),
    ("[limits]\nmax_runs = 'lots'\n", "[limits] max_runs must be a whole number, got 'lots'."),
    ("[limits]\nmax_runs = 0\n", "[limits] max_runs must be at least 1, got 0."),
    ("[limits]\nmax_runs = 2.5\n", "[limits] max_runs must be a whole number, got 2.5."),
    ("[limits]\nabandon_seconds = true\n", "[limits] abandon_seconds must be a number of seconds, got True."),
    ("[limits]\nrunner = 'slurm'\n", "[limits] runner must be \"local\" or \"ray\", got 'slurm'."),
    ("[limits]\nwarm_worker = 1\n", "[limits] warm_worker must be true or false, got 1."),
    ("[limit]\nmax_runs = 2\n", "has a table 'limit'; it may hold only a [limits] and a [class] table."),
    ("limits = 3\n", "limits must be a table ([limits]), not a single value."),
    ("[limits]\nmax_runs = \n", "is not valid TOML (Invalid value (at line 2, column 12))."),
])
def test_a_bad_limits_file_is_one_sentence_naming_the_file_and_key(tmp_path, text, words):
    path = write_limits(tmp_path, text)
    with pytest.raises(LimitsError) as caught:
        read_limits({"LATENT_LAB_CONFIG": str(path)})
    sentence = str(caught.value)
    assert str(path) in sentence and words in sentence, sentence
    assert sentence.endswith(".") and "\n" not in sentence


def test_a_named_limits_file_that_does_not_exist_is_a_sentence(tmp_path):
    with pytest.raises(LimitsError, match="named by LATENT_LAB_CONFIG does not exist"):
        read_limits({"LATENT_LAB_CONFIG": str(tmp_path / "typo.toml")})


def test_the_shipped_example_file_keeps_the_defaults_and_lists_every_key(tmp_path):
    import re
    import tomllib

    from jobs.limits import CLASS_KEYS, DEFAULT_CONFIG, KEYS, ClassSettings, read_class
    text = DEFAULT_CONFIG.read_text()
    assert read_limits({}, config=DEFAULT_CONFIG) == read_limits({}, config=tmp_path / "absent.toml")
    assert read_class({}, config=DEFAULT_CONFIG) == ClassSettings()   # no class until the teacher asks for one
    uncommented = re.sub(r"^# (\[\w+\]$|\w+ = )", r"\1", text, flags=re.M)  # every key and table switched on
    assert list(tomllib.loads(uncommented)["limits"]) == list(KEYS)
    assert list(tomllib.loads(uncommented)["class"]) == list(CLASS_KEYS)
    assert read_limits({}, config=write_limits(tmp_path, uncommented)).max_weights == 20_000_000  # and valid
    assert read_class({}, config=tmp_path / "latent_lab.toml").code


def test_readme_documents_every_limit_as_variable_and_file_key():
    from pathlib import Path

    from jobs.limits import KEYS
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    docs = readme + (root / "docs" / "CLASSROOM.md").read_text()   # the per-person shares: docs/CLASSROOM.md
    for key in KEYS:
        assert f"| `LATENT_LAB_{key.upper()}` (`{key}`) |" in docs, key
    assert ".streamlit/latent_lab.toml" in readme and "LATENT_LAB_CONFIG" in readme

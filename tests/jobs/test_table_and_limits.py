"""The job table (order, claims, place in line) and the limits read from the environment and the limits file."""
import subprocess
import sys
import time

import pytest

from jobs.limits import CORES, KEYS, Limits, LimitsError, count_weights, read_limits, weights_problem
from jobs.table import JobTable
from vae_core import ModelConfig, build_model
from vae_core.validation import setting_of


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


@pytest.mark.parametrize("env, words", [
    ({"LATENT_LAB_MAX_RUNS": "lots"}, f"LATENT_LAB_MAX_RUNS (runs training at once) must be a whole number from 1 to "
                                      f"{4 * CORES}; got 'lots'."),
    ({"LATENT_LAB_MAX_RUNS": "0"}, f"must be a whole number from 1 to {4 * CORES}; got '0'."),
    ({"LATENT_LAB_RUNNER": "slurm"}, "LATENT_LAB_RUNNER (where runs train) must be 'local' or 'ray'; got 'slurm'."),
    ({"LATENT_LAB_WARM_WORKER": "maybe"}, "must be true or false; got 'maybe'."),
    ({"LATENT_LAB_MAX_RUN_SECONDS": "nan"}, "from 0 to 604,800 (7 days); got 'nan'."),
])
def test_bad_limits_are_refused_with_a_sentence(env, words):
    with pytest.raises(ValueError) as caught:
        read_limits(env)
    assert isinstance(caught.value, LimitsError) and str(caught.value).endswith(words), str(caught.value)


# every limit: (key, lowest, highest, a value below, a value above); None: that side has no number
BOUNDS = [("max_runs", 1, 4 * CORES, 0, 4 * CORES + 1), ("max_queued", 0, 1000, -1, 1001),
          ("max_weights", 1, 200_000_000, 0, 200_000_001), ("max_run_seconds", 0, 604_800, -0.5, 604_800.5),
          ("abandon_seconds", 0.1, 86_400, 0.05, 86_401), ("worker_threads", 1, CORES, 0, CORES + 1),
          ("worker_nice", 0, 19, -1, 20), ("runs_per_person", 1, 100, 0, 101), ("queued_per_person", 0, 1000, -1, 1001)]


def test_every_number_limit_has_a_bound_here():
    numbers = {key for key, field in Limits.__pydantic_fields__.items() if field.annotation in (int, float)}
    assert {b[0] for b in BOUNDS} == numbers and len(numbers) == len(KEYS) - 2   # all but runner and warm_worker


@pytest.mark.parametrize("key, low, high, below, above", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_each_limit_is_accepted_at_its_bounds_and_refused_past_them(tmp_path, key, low, high, below, above):
    variable = "LATENT_LAB_" + key.upper()
    for value in (low, high):
        assert getattr(read_limits({variable: str(value)}), key) == value
        assert getattr(read_limits({}, config=write_limits(tmp_path, f"[limits]\n{key} = {value}\n")), key) == value
    for value in (below, above):
        with pytest.raises(LimitsError) as caught:
            read_limits({variable: str(value)})
        sentence = str(caught.value)
        assert sentence.startswith(f"{variable} (") and sentence.endswith(f"; got {str(value)!r}."), sentence
        path = write_limits(tmp_path, f"[limits]\n{key} = {value}\n")
        with pytest.raises(LimitsError) as caught:
            read_limits({}, config=path)
        sentence = str(caught.value)
        assert sentence.startswith(f"In the limits file {path}, [limits] {key} (") and sentence.count(".") <= 4
        assert sentence.endswith(f"; got {value!r}.") and "\n" not in sentence, sentence


def test_a_huge_value_is_quoted_to_a_hundred_characters(tmp_path):
    for env in ({"LATENT_LAB_MAX_RUNS": "x" * 50_000_000}, {"LATENT_LAB_RUNNER": "x" * 50_000_000},
                {"LATENT_LAB_MAX_RUN_SECONDS": "9" * 50_000_000}):
        with pytest.raises(LimitsError) as caught:
            read_limits(env)
        sentence = str(caught.value)
        assert len(sentence) < 300 and "(50,000,000 characters)." in sentence, sentence[:400]
    path = write_limits(tmp_path, '[limits]\nmax_runs = "' + "x" * 60_000 + '"\n')   # under the file size bound
    with pytest.raises(LimitsError) as caught:
        read_limits({}, config=path)
    assert len(str(caught.value)) < 300 + len(str(path)) and "(60,000 characters)." in str(caught.value)


def test_a_limits_file_of_megabytes_is_refused_before_it_is_parsed(tmp_path):
    path = write_limits(tmp_path, '[limits]\nmax_runs = "' + "x" * 50_000_000 + '"\n')
    t0 = time.perf_counter()
    with pytest.raises(LimitsError) as caught:
        read_limits({"LATENT_LAB_CONFIG": str(path)})
    assert time.perf_counter() - t0 < 1.0   # tomllib takes seconds over 50 MB
    assert str(caught.value) == (f"The limits file {path} is {path.stat().st_size:,} bytes; a limits file may be at "
                                 f"most 65,536.")


def test_the_module_docstring_table_matches_the_fields():
    """jobs/limits.py's table lists every limit once, with the words and the range its field declares."""
    import jobs.limits as limits_mod
    rows = {}
    for line in limits_mod.__doc__.splitlines():
        first = line.split()[0] if line.strip() else ""
        if first.startswith("LATENT_LAB_"):
            rows[first] = line
    assert list(rows) == [f"LATENT_LAB_{key.upper()}" for key in KEYS]
    for key in KEYS:
        setting = setting_of(Limits, key)
        row = rows[f"LATENT_LAB_{key.upper()}"]
        assert setting.span_text() in row, (key, setting.span_text(), row)
        assert " ".join(row.split()[1:]).startswith(setting.words.split(",")[0][:25]), (key, setting.words, row)
        default = Limits.__pydantic_fields__[key].default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            shown = int(default) if float(default).is_integer() else default
            assert f" {shown:,} " in f"{row} " or f" {shown} " in f"{row} ", (key, default, row)


def test_weights_are_counted_without_allocating_them():
    config = ModelConfig(hidden_dims=(64, 32))
    assert count_weights(config) == build_model(config).num_parameters()
    huge = ModelConfig(hidden_dims=(8192,) * 8)  # 470 million weights: counted on the meta device
    sentence = weights_problem(huge, read_limits({}))
    assert sentence.startswith("This model has ") and "the limit here is 20,000,000" in sentence
    assert weights_problem(config, read_limits({})) is None


def test_the_jobs_package_does_not_import_streamlit():
    code = ("import sys; import jobs.api, jobs.worker, jobs.local, jobs.preload, jobs.table, jobs.limits, jobs.ray_backend, jobs.classroom; "
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
    ("[limits]\nmax_runs = 'lots'\n", f"[limits] max_runs (runs training at once) must be a whole number from 1 to "
                                      f"{4 * CORES}; got 'lots'."),
    ("[limits]\nmax_runs = 0\n", f"[limits] max_runs (runs training at once) must be a whole number from 1 to "
                                 f"{4 * CORES}; got 0."),
    ("[limits]\nmax_runs = 2.5\n", "max_runs (runs training at once) must be a whole number from 1 to"),
    ("[limits]\nabandon_seconds = true\n", "[limits] abandon_seconds (seconds without a poll before a run stops) "
                                           "must be a number from 0.1 to 86,400 (1 day); got True."),
    ("[limits]\nrunner = 'slurm'\n", "[limits] runner (where runs train) must be 'local' or 'ray'; got 'slurm'."),
    ("[limits]\nwarm_worker = 1\n", "[limits] warm_worker (fork workers from a fork server) must be true or false; "
                                    "got 1."),
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
        rows = [line for line in docs.splitlines() if line.startswith(f"| `LATENT_LAB_{key.upper()}` (`{key}`) |")]
        assert rows, key
        for row in rows:   # README.md's table, and docs/CLASSROOM.md's for the limits a class meets
            assert f"| {setting_of(Limits, key).span_text()} " in row.replace("`", ""), (key, row)  # the range
    assert ".streamlit/latent_lab.toml" in readme and "LATENT_LAB_CONFIG" in readme

"""Writes (vae_core/atomic.py and every writer that uses it): unique temporary files, normal permissions,
no half-written files, stray temporaries of killed saves cleaned, and a name claimed by exactly one of two
saves that race for it."""
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import vae_core.atomic as atomic_mod
from vae_core import CheckpointError, ModelConfig, build_model, list_checkpoints, load_checkpoint, save_checkpoint
from vae_core.atomic import check_writable_file, clean_stale_temps, write_atomic
from vae_core.checkpoints import CheckpointExists
from vae_core.record import CheckpointRecord
from vae_core.classifier import DigitClassifier, load_classifier, save_classifier

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(hidden_dims=(8,), image_size=8)


def named(name: str) -> CheckpointRecord:
    return CheckpointRecord(model_config=TINY, name=name)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_writer_creates_files_with_normal_permissions(tmp_path, umask_022, monkeypatch):
    ckpt = save_checkpoint(tmp_path / "m", build_model(TINY))
    clf = save_classifier(tmp_path / "clf.safetensors", DigitClassifier())
    text = atomic_mod.write_text_atomic(tmp_path / "notes.md", "hello")
    assert _mode(ckpt) == _mode(clf) == _mode(text) == 0o644          # not mkstemp's 0600
    # the report writes RESULTS.md through the same helper (an empty folder still gives a report)
    from reports.results import write_report
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "no-data"))
    report = write_report(tmp_path / "none", tmp_path / "docs" / "RESULTS.md")
    assert _mode(report) == 0o644 and "Results" in report.read_text()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_temporary_names_are_unique_so_concurrent_writers_never_share_one(tmp_path):
    target = tmp_path / "clf.safetensors"
    seen = []

    def outer(f):
        seen.append(sorted(p.name for p in tmp_path.glob("*.tmp")))
        f.write(b"outer")
        # a second writer of the same file starts while the first is half-way
        write_atomic(target, lambda g: (seen.append(sorted(p.name for p in tmp_path.glob("*.tmp"))),
                                        g.write(b"inner")))
    write_atomic(target, outer)
    assert len(seen[0]) == 1 and len(seen[1]) == 2                     # two different temporary files
    assert target.read_bytes() == b"outer"                             # the last rename wins, whole
    assert not list(tmp_path.glob("*.tmp"))


def test_classifier_save_has_no_fixed_temporary_name(tmp_path):
    path = tmp_path / "c.safetensors"
    (tmp_path / "c.safetensors.tmp").write_bytes(b"someone else's file")   # the old fixed name: not touched
    save_classifier(path, DigitClassifier())
    model, record = load_classifier(path)
    assert record["format"] == "latent-lab-classifier"
    assert (tmp_path / "c.safetensors.tmp").read_bytes() == b"someone else's file"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m", build_model(TINY, seed=1))
    good = path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic_mod.os, "fsync", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(path, build_model(TINY, seed=2))
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


KILLED_SAVE = r"""
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("atomic", sys.argv[1] + "/vae_core/atomic.py")  # no torch import
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
write_atomic = atomic.write_atomic
def half(f):
    f.write(b"half a checkpoint")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
write_atomic(sys.argv[2], half)
"""


def test_a_killed_save_leaves_a_temporary_that_the_next_listing_removes(tmp_path):
    target = tmp_path / "killed.safetensors"
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(ROOT), str(target)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    strays = list(tmp_path.glob("*.tmp"))
    assert len(strays) == 1 and not target.exists()                   # nothing half-written under the name
    assert list_checkpoints(tmp_path) == []                            # the listing cleans it up
    assert not list(tmp_path.glob("*.tmp"))


def test_cleaning_spares_a_live_writer_and_files_that_are_not_ours(tmp_path):
    import fcntl
    live = tmp_path / "m.safetensors.0123456789abcdef.tmp"
    dead = tmp_path / "n.safetensors.fedcba9876543210.tmp"
    other = tmp_path / "user-notes.tmp"
    for p in (live, dead, other):
        p.write_bytes(b"x")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)                                     # a save in progress holds its lock
    try:
        removed = clean_stale_temps(tmp_path)
    finally:
        os.close(fd)
    assert removed == [dead]
    assert live.exists() and other.exists() and not dead.exists()
    save_checkpoint(tmp_path / "z", build_model(TINY))                 # the next save cleans too
    assert not live.exists() and other.exists()


def test_two_saves_of_one_name_at_once_exactly_one_wins(tmp_path, monkeypatch):
    """Both saves pass the 'does it exist?' check and write their files before either claims the name."""
    barrier = threading.Barrier(2, timeout=30)
    real_link = atomic_mod._link_new

    def link_together(tmp, path):
        barrier.wait()
        return real_link(tmp, path)
    monkeypatch.setattr(atomic_mod, "_link_new", link_together)
    models = [build_model(TINY, seed=s) for s in (1, 2)]
    outcome = [None, None]

    def save(i):
        try:
            save_checkpoint(tmp_path / "vae_2d", models[i], named(f"writer {i}"), overwrite=False)
            outcome[i] = "saved"
        except CheckpointExists as e:
            outcome[i] = str(e)
    threads = [threading.Thread(target=save, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o == "saved" for o in outcome) == [False, True], outcome
    loser = outcome.index(next(o for o in outcome if o != "saved"))
    assert "already exists" in outcome[loser]
    _, record = load_checkpoint(tmp_path / "vae_2d.safetensors")
    assert record.name == f"writer {1 - loser}"                       # the winner's model, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae_2d.safetensors"]


def test_save_without_overwrite_never_replaces_and_with_it_does(tmp_path):
    path = save_checkpoint(tmp_path / "m", build_model(TINY, seed=1), named("first"))
    with pytest.raises(CheckpointExists, match="already exists"):
        save_checkpoint(path, build_model(TINY, seed=2), named("second"), overwrite=False)
    assert load_checkpoint(path)[1].name == "first"
    save_checkpoint(path, build_model(TINY, seed=2), named("second"), overwrite=True)
    assert load_checkpoint(path)[1].name == "second"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_weights_that_cannot_load_back_are_never_written(tmp_path, dtype):
    path = save_checkpoint(tmp_path / "m", build_model(TINY, seed=1), named("good"))
    good = path.read_bytes()
    broken = build_model(TINY, seed=2)
    with torch.no_grad():
        next(broken.parameters())[0, 0] = float("inf") if dtype == torch.float32 else 1e6   # 1e6 overflows float16
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        save_checkpoint(path, broken, dtype=dtype)
    assert path.read_bytes() == good


@pytest.mark.parametrize("raw, words", [
    ("", "is empty"),
    ("runs/", "names a folder"),
    (".", "names a folder"),
    ("{folder}", "is a folder"),
    ("{file}/model", "is a file, not a folder"),
    ("/proc/latent-lab-test/model", "cannot be written"),
])
def test_check_writable_file_refuses_with_a_sentence(raw, words, tmp_path):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    raw = raw.format(folder=tmp_path / "a-folder", file=tmp_path / "a-file")
    with pytest.raises(ValueError, match=words) as err:
        check_writable_file(raw, "--out", suffix=".safetensors")
    assert "Errno" not in str(err.value)
    assert not list(tmp_path.rglob(".latent-lab-write-check-*"))


def test_check_writable_file_accepts_a_new_file_in_a_new_folder_and_creates_nothing(tmp_path):
    path = check_writable_file(str(tmp_path / "new" / "deeper" / "model"), suffix=".safetensors")
    assert path == tmp_path / "new" / "deeper" / "model.safetensors"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["/proc/latent-lab/RESULTS.md", "docs/"])
def test_the_results_report_refuses_a_bad_out_in_one_line(out, capsys):
    from reports.results import main
    assert main(["--checkpoints", "no-such-folder", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and len(err.strip().splitlines()) == 1


def test_the_results_report_is_never_half_written(tmp_path, monkeypatch):
    """RESULTS.md is replaced whole or not at all: a write that fails leaves the old report as it was."""
    from reports.results import write_report
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "no-data"))
    out = tmp_path / "docs" / "RESULTS.md"
    out.parent.mkdir()
    out.write_text("the old report")

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic_mod.os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_report(tmp_path / "none", out)
    assert out.read_text() == "the old report" and not list(out.parent.glob("*.tmp"))

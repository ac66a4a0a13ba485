"""The chain of runs behind each shipped checkpoint, from checkpoints/train_all.sh and the files' git history.

    python -m reports.provenance              # print, per shipped file, the chain its record would carry
    python -m reports.provenance --write      # amend the records (headers only: the weights stay byte for byte)
    python -m reports.provenance --commands   # train_all.sh's commands, stage by stage, without running any

A model trained with `--init-from` records its chain itself (vae_core/record.py `lineage`: each parent's
command, file hash and history). The shipped files were made before that, in stages that overwrote one
file; this one-off tool rebuilds their chains WITHOUT retraining. For each stage train_all.sh lists before the
last, it looks for that stage's own file in the git history of the shipped path (a committed version whose
recorded command is the stage's command): found, the link is that file's record and hash; not found (the
file was overwritten before it was ever committed), the link holds the stage's command from train_all.sh and
says in `reconstructed` that its hash, history and figures were not kept. It also records, in `metrics`, the
number of test images behind the stored figures, which the files made before issue 21 did not say.

Reads checkpoints only through vae_core (record.py, checkpoints.py); needs bash and git.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from vae_core import CheckpointError, read_record
from vae_core.checkpoints import file_sha256, rewrite_record
from vae_core.record import Ancestor, CheckpointRecord

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "checkpoints" / "train_all.sh"
TEST_SET_SIZE = {"mnist": 10_000, "fashion-mnist": 10_000}
# What is known of a stage whose file was never committed, and where it is written down
STAGE_NOTES = {
    ("mnist-vae-2d", 1): ("Its validation −ELBO (float16 file, 6,000 held-out training images) was 135.39 nats, "
                          "down from 135.94, as the message of commit de1efd0 reports."),
    ("mnist-vae-2d", 2): ("Its validation −ELBO (float16 file, 6,000 held-out training images) was 135.36 nats, "
                          "as the message of commit de1efd0 reports."),
}


# ----------------------------------------------------------------------------- train_all.sh
SHIM = """#!/bin/sh
# a stand-in for python while reports.provenance reads train_all.sh: print the call, run nothing
printf 'PYCALL'; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\n'
"""


def script_stages(script: Path = SCRIPT, names: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """NAME -> the Latent Lab commands train_all.sh runs for it, in order, exactly as the CLI records them
    (`python -m vae_core ...`, shlex quoting). The script runs with stand-ins for `python` and `python3` first
    in PATH, so nothing is trained or imported, whatever a block of the script calls; a step run by other code
    (a model trained elsewhere, then imported) is that model's `source`, not a command of its chain."""
    with tempfile.TemporaryDirectory() as tmp:
        for exe in ("python", "python3"):
            shim = Path(tmp) / exe
            shim.write_text(SHIM)
            shim.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp}{os.pathsep}{os.environ.get('PATH', '')}"}
        out = subprocess.run(["bash", str(script), *names], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    stages: dict[str, list[str]] = {}
    name = ""
    for line in out.splitlines():
        if line.startswith("=== "):
            name = line.split()[1]
        elif line.startswith("PYCALL") and name:
            args = line.split("\x1f")[1:]
            if args[:2] == ["-m", "vae_core"]:
                stages.setdefault(name, []).append("python " + shlex.join(args))
    return stages


def stages_of(path: Path, stages: dict[str, list[str]]) -> list[str]:
    """The commands of train_all.sh that write `path` (their --out), in the script's order."""
    rel = str(Path(path).resolve().relative_to(ROOT))
    out = []
    for commands in stages.values():
        for command in commands:
            words = shlex.split(command)
            if "--out" in words and words[words.index("--out") + 1] == rel:
                out.append(command)
    return out


def print_commands() -> None:
    """Every stage's command, NAME and command per line, in the script's order."""
    for name, commands in script_stages().items():
        for command in commands:
            print(f"{name}\t{command}")


def same_command(recorded: str, scripted: str) -> bool:
    """Whether a recorded command is the script's: equal, or equal but for the script's `--test-limit 0`,
    which files trained before issue 14 did not need (all 10,000 test images were then the default)."""
    if recorded == scripted:
        return True
    words = shlex.split(scripted)
    for i in range(len(words) - 1):
        if words[i] == "--test-limit" and words[i + 1] == "0":
            shorter = words[:i] + words[i + 2:]
            return "--test-limit" not in shlex.split(recorded) and shlex.split(recorded) == shorter
    return False


def test_images_of(command: str, dataset: str) -> int | None:
    """The test images behind a CLI-trained file's figures, from its command: --test-limit N (0: all), no
    flag: all of them (the default until issue 14; files made since record the count themselves)."""
    words = shlex.split(command)
    size = TEST_SET_SIZE.get(dataset)
    if "--test-limit" in words:
        limit = int(words[words.index("--test-limit") + 1])
        return size if limit == 0 else (min(limit, size) if size else limit)
    return size


# ----------------------------------------------------------------------------- git history
def earlier_versions(path: Path) -> list[tuple[str, CheckpointRecord, str]]:
    """(commit, record, sha256) of every committed version of `path`, newest first."""
    rel = path.resolve().relative_to(ROOT)
    commits = subprocess.run(["git", "log", "--format=%H", "--", str(rel)], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    versions = []
    with tempfile.TemporaryDirectory() as tmp:
        for commit in commits:
            blob = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=ROOT, capture_output=True, check=True).stdout
            copy = Path(tmp) / path.name
            copy.write_bytes(blob)
            try:
                versions.append((commit, read_record(copy), file_sha256(copy)))
            except CheckpointError:
                continue
    return versions


# ----------------------------------------------------------------------------- the chain
def rebuild_chain(path: Path, stages: list[str], versions, today: str) -> list[Ancestor]:
    """The links before the last stage, oldest first: each stage's own committed file when git has it, else
    the stage's command from train_all.sh, marked as rebuilt."""
    record = read_record(path)
    if not same_command(record.command, stages[-1]):
        raise ValueError(f"{path.name}: its recorded command is not train_all.sh's last stage for it:\n"
                         f"  recorded  {record.command}\n  script    {stages[-1]}")
    rel = str(path.resolve().relative_to(ROOT))
    chain = []
    for i, command in enumerate(stages[:-1]):
        found = [(c, r, sha) for c, r, sha in versions if same_command(r.command, command)]
        note = STAGE_NOTES.get((path.stem, i), "")
        if found:
            commit, stage_record, sha = found[0]   # the newest commit holding that stage's file
            chain.append(stage_record.as_ancestor(sha, f"{rel} as committed in {commit[:7]}", reconstructed=(
                f"Added on {today} by reports/provenance.py: this link was read from the file as committed in "
                f"git {commit[:7]} (record, SHA-256 and history are that file's). " + note).strip()))
        else:
            chain.append(Ancestor(command=command, file=rel, name=record.display_name, reconstructed=(
                f"Rebuilt on {today} by reports/provenance.py from checkpoints/train_all.sh: the file this stage "
                "wrote was replaced by the next stage before it was ever committed, so its SHA-256, history and "
                "figures were not kept; only its command is known. " + note).strip()))
    return chain


def with_test_images(metrics: dict, images: int | None) -> dict:
    """The figures with the count of test images beside them, as the CLI now records it (`test_images`, one
    count for the whole file, beside any per-quadrant blocks); kept when already recorded."""
    if images is None or not metrics or "test_images" in metrics:
        return dict(metrics)
    return {**metrics, "test_images": images}


def amended(path: Path, stages: list[str], today: str) -> CheckpointRecord:
    """The record of `path` with its chain and its test-image counts."""
    record = read_record(path)
    chain = rebuild_chain(path, stages, earlier_versions(path) if len(stages) > 1 else [], today)
    images = test_images_of(record.command, record.dataset)
    return dataclasses.replace(record, lineage=chain, metrics=with_test_images(record.metrics, images),
                               metrics_test1000=with_test_images(record.metrics_test1000,
                                                                 1000 if record.metrics_test1000 else None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.provenance", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="amend the shipped files' records (headers only)")
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"), help="folder of the shipped files")
    parser.add_argument("--commands", action="store_true", help="print train_all.sh's commands (nothing runs)")
    args = parser.parse_args(argv)
    if args.commands:
        print_commands()
        return 0
    today = _dt.date.today().isoformat()
    stages = script_stages()
    for path in sorted(Path(args.checkpoints).rglob("*.safetensors")):
        own = stages_of(path, stages)
        try:
            read_record(path)
        except CheckpointError:   # the digit classifier: a file of its own kind, no model record
            print(f"{path.name}: not a model checkpoint; left as it is", file=sys.stderr)
            continue
        if not own:
            print(f"{path.name}: no command of train_all.sh writes it; left as it is", file=sys.stderr)
            continue
        record = amended(path, own, today)
        print(f"{path.name}: {len(record.lineage)} earlier run(s); test images {record.test_image_count()}")
        for a in record.lineage:
            print(f"  - {a.file}: sha256 {a.sha256 or 'unknown'}; {len(a.history.epochs)} epochs of history")
        if args.write and record.to_json() == read_record(path).to_json():
            print("  already so; left as it is")
        elif args.write:
            before = file_sha256(path)
            rewrite_record(path, record)
            print(f"  written (sha256 {before[:12]} -> {file_sha256(path)[:12]}; tensors unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

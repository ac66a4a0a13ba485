"""jobs/openmp.py: the server sleeps its OpenMP threads (PASSIVE); the fork server its workers come from drops
that again, so a lone run's two threads pay (vae_core/cpu.py's table); a policy the person chose is kept."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jobs import openmp

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_chooses_passive_and_its_workers_drop_it(monkeypatch):
    monkeypatch.delenv(openmp.VAR, raising=False)
    monkeypatch.delenv(openmp.CHOSEN_BY_SERVER, raising=False)
    openmp.for_the_server()
    assert openmp.os.environ[openmp.VAR] == "PASSIVE"
    openmp.for_a_worker()
    assert openmp.VAR not in openmp.os.environ and openmp.CHOSEN_BY_SERVER not in openmp.os.environ


def test_a_policy_the_person_chose_is_kept_by_server_and_workers(monkeypatch):
    monkeypatch.setenv(openmp.VAR, "ACTIVE")
    monkeypatch.delenv(openmp.CHOSEN_BY_SERVER, raising=False)
    openmp.for_the_server()
    openmp.for_a_worker()
    assert openmp.os.environ[openmp.VAR] == "ACTIVE"


def test_the_fork_server_loads_torch_without_the_servers_policy():
    """jobs.preload, imported as the fork server imports it, with the environment app.py leaves: the policy is gone
    before torch loads (libgomp reads it then)."""
    code = ("import os; from jobs import openmp; openmp.for_the_server(); import jobs.preload, torch; "
            "print(os.environ.get('OMP_WAIT_POLICY', 'unset'))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in (openmp.VAR, openmp.CHOSEN_BY_SERVER)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "unset", out.stderr

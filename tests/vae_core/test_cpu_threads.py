"""vae_core.cpu: a thread count that follows the machine's free cores, and OpenMP's wait policy left alone."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vae_core import ModelConfig, TrainConfig, build_model, fit
from vae_core import cpu
from vae_core.cpu import AdaptiveThreads, free_cores

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("others, cores, threads", [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.0, 2, 1),
                                                    (3.0, 2, 1), (1.2, 8, 7), (2.7, 8, 5)])
def test_free_cores_leave_a_core_to_each_busy_process(others, cores, threads):
    assert free_cores(others, cores) == threads


class FakeMachine:
    """Machine and process CPU clocks the test moves by hand."""

    def __init__(self, monkeypatch, cores=2):
        self.busy = self.own = self.now = 0.0
        monkeypatch.setattr(cpu, "_machine_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(cpu, "_own_seconds", lambda: self.own)
        monkeypatch.setattr(cpu.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(cpu, "cpu_cores", lambda: cores)

    def run(self, seconds, own_cores, other_cores):
        self.now += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)


def test_adaptive_threads_step_down_beside_a_busy_process_and_back_up_when_it_ends(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        machine = FakeMachine(monkeypatch)
        policy = AdaptiveThreads(interval=2.0, first=0.5)   # (the default first look: cpu.FIRST_CHECK_SECONDS)
        assert policy.threads == 1                       # it starts with torch's count
        machine.run(0.3, own_cores=1, other_cores=0)
        policy.on_step(None)
        assert torch.get_num_threads() == 1              # not looked yet: before its first look
        machine.run(0.3, own_cores=1, other_cores=0)
        policy.on_step(None)
        assert torch.get_num_threads() == 2              # an idle machine: every core
        machine.run(1.0, own_cores=1.2, other_cores=0.8)  # a busy loop arrived: seen only at the next interval
        policy.on_step(None)
        assert torch.get_num_threads() == 2
        machine.run(1.0, own_cores=1.0, other_cores=1.0)
        policy.on_step(None)
        assert torch.get_num_threads() == 1
        machine.run(2.1, own_cores=1.0, other_cores=0.1)
        policy.on_step(None)
        assert torch.get_num_threads() == 2 and [n for _, n in policy.changes] == [2, 1, 2]
    finally:
        torch.set_num_threads(before)


def test_fit_fixes_or_follows_threads_and_puts_torchs_count_back(tiny_data):
    before = torch.get_num_threads()
    seen = []

    class Watch:
        def on_step(self, info):
            seen.append(torch.get_num_threads())

    model = build_model(ModelConfig(image_size=8, hidden_dims=(16,)))
    fit(model, tiny_data, TrainConfig(epochs=1, batch_size=64), [Watch()], threads=1)
    assert set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be 'auto', a positive whole number or None"):
        fit(model, tiny_data, TrainConfig(epochs=1), threads="many")


def test_a_short_auto_run_is_the_run_without_it(tiny_data):
    """Under the first interval nothing changes, so short runs (and the tests) stay bit-identical."""
    runs = []
    for threads in ("auto", None):
        model = build_model(ModelConfig(image_size=8, hidden_dims=(16,)))
        fit(model, tiny_data, TrainConfig(epochs=1, batch_size=64), threads=threads)
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(*runs)


def test_importing_vae_core_leaves_openmps_wait_policy_alone():
    """Sleeping threads (PASSIVE) halve an idle machine's speed at two threads (vae_core/cpu.py's table): the CLI
    and a notebook keep OpenMP's default; the app's server and workers choose PASSIVE for themselves."""
    code = "import os, vae_core; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.stdout.strip() == "unset", out.stderr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE", out.stderr

"""How training uses the CPU's cores, so that a run is fast on an idle machine and stays fast beside other work.

Two measures, both measured on the project's 2-core machine (bench/cpu_threads.py prints the figures):

1. OpenMP threads that sleep while they wait. By default libgomp's threads spin for a while at every barrier; when
   another process holds a core, the spinning thread keeps its partner waiting for a time slice, and a training
   step that took milliseconds takes ten times longer. `OMP_WAIT_POLICY=PASSIVE` makes them sleep instead. libgomp
   reads it once, when torch is first imported, so vae_core sets it (unless the user did) before it imports torch;
   in a notebook that imported torch first it has no effect, and measure 2 still holds.
2. A thread count that follows the machine's free cores (`AdaptiveThreads`, a `fit` callback): every few seconds it
   reads the CPU time of the whole machine (/proc/stat) and of this process, and trains with as many threads as
   there are cores that other processes leave free (at least one, at most `max_threads`). A lone run uses every
   core; beside a busy loop, or beside a class's Streamlit server, it steps down to one thread and never waits for
   a core another process holds. Results are reproducible for a given thread count; a different count can change
   the last bits of a sum.
"""
from __future__ import annotations

import os
import time

WAIT_POLICY_VAR = "OMP_WAIT_POLICY"
CHECK_SECONDS = 2.0        # how often AdaptiveThreads looks at the machine
BUSY_THRESHOLD = 0.5       # another process using more than half a core counts as holding it


def prefer_sleeping_threads() -> None:
    """Ask OpenMP threads to sleep rather than spin while waiting (before torch is imported; the user's own
    setting wins)."""
    os.environ.setdefault(WAIT_POLICY_VAR, "PASSIVE")


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)   # idle + iowait
    busy = sum(ticks[:8]) - idle                              # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def free_cores(others_busy: float, cores: int) -> int:
    """The cores left to this process when other processes keep `others_busy` cores busy (at least one)."""
    held = int(others_busy + (1 - BUSY_THRESHOLD))   # 0.4 of a core: none held; 0.6: one held
    return max(1, cores - held)


class AdaptiveThreads:
    """A fit callback that sets torch's thread count to the free cores, checked every `interval` seconds.

    max_threads: the most threads to use (default: every core); min_threads: the fewest."""

    def __init__(self, max_threads: int | None = None, min_threads: int = 1, interval: float = CHECK_SECONDS):
        import torch

        self._torch = torch
        self.max_threads = max(1, max_threads or cpu_cores())
        self.min_threads = max(1, min(min_threads, self.max_threads))
        self.interval = interval
        # It starts with torch's count (so a run shorter than `interval` is exactly what it was without this
        # callback) and first looks at the machine after `interval` seconds.
        self.threads = torch.get_num_threads()
        self.changes: list[tuple[float, int]] = []    # (time.monotonic(), threads) each time the count changed
        self._last = self._sample()

    def _sample(self) -> tuple[float | None, float, float]:
        return _machine_busy_seconds(), _own_seconds(), time.monotonic()

    def _decide(self) -> int:
        busy0, own0, t0 = self._last
        busy1, own1, t1 = self._last = self._sample()
        if busy0 is None or busy1 is None or t1 <= t0:
            return self.threads
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        return max(self.min_threads, min(self.max_threads, free_cores(others, cpu_cores())))

    def _set(self, n: int) -> None:
        if n != self._torch.get_num_threads():
            self._torch.set_num_threads(n)
            self.changes.append((time.monotonic(), n))
        self.threads = n

    def on_step(self, info) -> None:
        if time.monotonic() - self._last[2] >= self.interval:
            self._set(self._decide())

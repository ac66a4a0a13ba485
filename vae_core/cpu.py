"""How training uses the CPU's cores, so that a run is fast on an idle machine and stays fast beside other work.

Measured on the project's 2-core machine (bench/cpu_threads.py prints the figures; images/s of the CLI's model,
2 threads against 1, on an idle machine and beside one busy process):

                               idle      beside a busy loop
    2 threads, OpenMP default  37,069    10,954
    2 threads, PASSIVE         18,751    16,843
    1 thread                   19,727    20,547

So the thread count is what matters: two threads that share one core with another process wait for each other at
every barrier (spinning or sleeping), and one thread is faster; on an idle machine two threads are nearly twice as
fast, but only with OpenMP's default wait (threads that sleep at every barrier, `OMP_WAIT_POLICY=PASSIVE`, lose
the gain to their wake-ups). vae_core therefore leaves OpenMP's wait policy as it is (the app's server and
workers set PASSIVE for themselves: app.py, jobs/) and `fit` follows the free cores with `AdaptiveThreads`: a
callback that reads the CPU time of the whole machine (/proc/stat) and of this process, first after
`FIRST_CHECK_SECONDS` and then every `CHECK_SECONDS`, and trains with as many threads as there are cores that
other processes leave free (at least one, at most `max_threads`). A lone run uses every core; beside a busy loop,
or beside a class's Streamlit server, it steps down to one thread. Results are reproducible for a given thread
count; a different count can change the last bits of a sum.
"""
from __future__ import annotations

import os
import time

FIRST_CHECK_SECONDS = 0.25  # when AdaptiveThreads first looks at the machine (a shorter run is left as it was)
CHECK_SECONDS = 2.0        # how often it looks after that
BUSY_THRESHOLD = 0.5       # another process using more than half a core counts as holding it


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
    """A fit callback that sets torch's thread count to the free cores, checked first after `first` seconds and
    then every `interval` seconds.

    max_threads: the most threads to use (default: every core); min_threads: the fewest."""

    def __init__(self, max_threads: int | None = None, min_threads: int = 1, interval: float = CHECK_SECONDS,
                 first: float | None = None):
        import torch

        self._torch = torch
        self.max_threads = max(1, max_threads or cpu_cores())
        self.min_threads = max(1, min(min_threads, self.max_threads))
        self.interval = interval
        # It starts with torch's count (so a run shorter than `first` is exactly what it was without this
        # callback) and first looks at the machine after `first` seconds: beside a busy process, two threads
        # run at half the speed of one, so the first look comes early.
        self._wait = FIRST_CHECK_SECONDS if first is None else first
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
        if time.monotonic() - self._last[2] >= self._wait:
            self._set(self._decide())
            self._wait = self.interval

"""What the local backend's fork server imports once, before it forks any worker (jobs/local.py).

Importing this module loads torch, vae_core and jobs.worker, and reads the default data set (MNIST, when
it is on disk) into vae_core's data cache as uint8 tensors. Every worker is then a fork of that process:
it starts with all of it in memory, shared copy-on-write with the fork server and the other workers (one
copy of torch's ~260 MB of private memory and of MNIST's 55 MB for the whole class, not one per run), and
its first training step follows the click within a fraction of a second.

Nothing here may start a thread pool (no torch op that runs in parallel): a fork must not inherit one.
Any failure is swallowed; a worker then loads what it needs itself.

The fork server must not outlive the server that started it: its workers hold the write end of the pipe whose
end-of-file would tell it so, and they hold it as long as they live. One small thread (it holds no lock at a
fork; a forked child does not inherit it) watches the parent: when the server is gone (killed, even with
SIGKILL), it gives the workers CHILD_GRACE_SECONDS to keep their weights and exit (they watch the server too),
kills those left with SIGKILL (a hung or stopped one included), and ends the fork server.
"""
from __future__ import annotations

import gc
import os
import signal
import threading
import time

MARK_VAR = "LATENT_LAB_FORKSERVER"  # set (to the server's main script, or "-") only while the fork server starts

from jobs.openmp import for_a_worker  # noqa: E402  (imports nothing but os)

for_a_worker()  # before torch: the workers forked from here train with OpenMP's default wait (jobs/openmp.py)


def _import_main_script() -> None:
    """Run the server's main script here as `__mp_main__`, once, as every child would otherwise do again on
    its own (multiprocessing re-runs a main *script* in each child; `streamlit run` is one, and it imports
    streamlit: half a second per run)."""
    path = _MAIN
    if not path or not os.path.isfile(path):
        return
    from multiprocessing import spawn
    spawn.import_main_path(path)


def preload() -> None:
    """Import the worker's modules and read the default data set into memory; then freeze the heap."""
    try:
        _import_main_script()
    except Exception:  # noqa: BLE001 - the children will run it themselves
        pass
    for_a_worker()   # again, in case the main script set the server's policy
    try:
        import torch

        import jobs.worker  # noqa: F401  (torch, numpy, vae_core)
        from vae_core.training import make_optimizer
        # The first optimizer imports torch._dynamo and ~900 modules (about a second); a one-weight one does
        # it here. No op here runs in parallel, so no thread pool starts before a fork.
        make_optimizer(torch.nn.Linear(1, 1), 1e-3)
        from vae_core import load_dataset, locate_dataset
        if locate_dataset("mnist") is not None:
            load_dataset("mnist", "train", download=False)
            load_dataset("mnist", "test", download=False)
    except Exception:  # noqa: BLE001 - a preload is a nicety; a job loads what it needs itself
        pass
    gc.collect()
    gc.freeze()  # the collector never walks (and so never writes to) what the children share


CHILD_GRACE_SECONDS = 7.0
WATCH_SECONDS = 0.5


def _children() -> list[int]:
    """This process's children (Linux: /proc/self/task/*/children)."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    deadline = time.monotonic() + CHILD_GRACE_SECONDS
    while _children() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)


def watch_parent() -> None:
    """End this process (and, after a grace, its children) when its parent process is gone."""
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="latent-lab-parent-watch", daemon=True).start()


_MAIN = os.environ.pop(MARK_VAR, None)
if _MAIN is not None:  # imported by the fork server that jobs/local.py starts
    preload()
    watch_parent()

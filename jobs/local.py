"""The local backend: each run is a separate, spawned worker process.

Messages come back through a multiprocessing queue; a stop is an Event the worker checks before every
batch. One spare worker is kept warm (torch imported, MNIST in memory), so a click on Start reaches the
first training step in about a second instead of paying for a fresh interpreter and torch's import.

The worker ignores Ctrl+C (the server decides when it stops), stops on its own when the server that
started it goes away, and on SIGTERM finishes the batch and ends as "stopped".
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time

CTX = mp.get_context("spawn")  # never fork a server that holds threads (Streamlit's, torch's)
SIGNAL_NAMES = {signal.SIGKILL: "SIGKILL", signal.SIGTERM: "SIGTERM", signal.SIGSEGV: "SIGSEGV",
                signal.SIGABRT: "SIGABRT", signal.SIGINT: "SIGINT"}


def _worker_main(inbox, outbox, stop_event, ready, preload: bool) -> None:
    """A worker process: wait for one job, run it, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    parent = os.getppid()
    from jobs.worker import lower_priority, run_job  # imports torch and vae_core

    if preload:
        _preload_default_data()
    ready.set()
    while True:  # a spare waits here; it leaves when the server goes away
        try:
            task = inbox.get(timeout=0.5)
            break
        except queue.Empty:
            if os.getppid() != parent or term.is_set():
                return
    if task is None:
        return
    lower_priority(task["threads"], task["nice"])

    def should_stop():
        if stop_event.is_set():
            return task.get("stop_reason_default") or True
        if term.is_set():
            return "Stopped: the server shut down during this run."
        if os.getppid() != parent:
            return "Stopped: the server that started this run went away."
        return False

    run_job(task["settings"], task["data_root"], lambda kind, payload: outbox.put((kind, payload)), should_stop,
            redraw_seconds=task["redraw_seconds"])
    outbox.close()
    outbox.join_thread()


def _preload_default_data() -> None:
    try:
        from vae_core import load_dataset, locate_dataset
        if locate_dataset("mnist") is not None:
            load_dataset("mnist", "train", download=False)
            load_dataset("mnist", "test", download=False)
    except Exception:  # noqa: BLE001 - a preload is a nicety; the job loads what it needs itself
        pass


class LocalHandle:
    """One worker process, before (spare) and after it was given a job."""

    def __init__(self, preload: bool = True):
        self.inbox, self.outbox, self.stop_event, self.ready = CTX.Queue(), CTX.Queue(), CTX.Event(), CTX.Event()
        self.process = CTX.Process(target=_worker_main,
                                   args=(self.inbox, self.outbox, self.stop_event, self.ready, preload),
                                   name="latent-lab-worker", daemon=True)
        self.process.start()
        self.job_id: str | None = None

    def assign(self, job_id: str, task: dict) -> None:
        self.job_id = job_id
        self.inbox.put(task)

    def messages(self, limit: int = 1000) -> list[tuple[str, dict]]:
        out = []
        while len(out) < limit:
            try:
                out.append(self.outbox.get_nowait())
            except queue.Empty:
                break
            except (EOFError, OSError, ValueError):  # a worker killed while writing
                break
        return out

    def request_stop(self) -> None:
        self.stop_event.set()

    def alive(self) -> bool:
        return self.process.is_alive()

    def death(self) -> str:
        """Why the process ended, as the end of a sentence."""
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code < 0:
            name = SIGNAL_NAMES.get(-code, f"signal {-code}")
            return f"was killed by {name}"
        return f"exited with status {code}"

    def kill(self, grace: float = 3.0) -> None:
        """Stop the process: ask, then SIGTERM, then SIGKILL."""
        if self.process.is_alive():
            self.stop_event.set()
            self.process.join(grace)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)

    @property
    def pid(self) -> int | None:
        return self.process.pid


class LocalBackend:
    name = "local"

    def __init__(self, warm: bool = True):
        self.warm = warm
        self._spare: LocalHandle | None = None
        self._lock = threading.Lock()
        if warm:
            self._refill()

    def _refill(self) -> None:
        def make():
            spare = LocalHandle(preload=True)
            with self._lock:
                old, self._spare = self._spare, spare
            if old is not None:
                old.inbox.put(None)
        threading.Thread(target=make, name="latent-lab-spare", daemon=True).start()

    def start(self, job_id: str, task: dict) -> LocalHandle:
        with self._lock:
            handle, self._spare = self._spare, None
        if handle is None or not handle.alive():
            handle = LocalHandle(preload=False)
        handle.assign(job_id, task)
        if self.warm:
            self._refill()
        return handle

    def spare_ready(self, timeout: float = 0) -> bool:
        """Whether a spare worker has torch imported and the data loaded (waits up to `timeout` s)."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                spare = self._spare
            if spare is not None and spare.ready.wait(max(0.0, min(0.2, end - time.monotonic()))):
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.05)

    def shutdown(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.inbox.put(None)
            spare.process.join(2.0)
            if spare.process.is_alive():
                spare.process.kill()

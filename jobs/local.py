"""The local backend: each run is a separate worker process.

Workers are forked from a fork server (multiprocessing's "forkserver" start method) that imported torch,
vae_core and the worker code and read MNIST once (jobs/preload.py), when the backend was made. A worker
starts with all of that already in memory, shared copy-on-write with the fork server and the other workers,
so a click on Start reaches the first training step in a fraction of a second, and a class's runs share one
copy of torch's memory and of the data set instead of one each. There is no spare process waiting per run:
the fork server is the one warm process. With LATENT_LAB_WARM_WORKER=0 (or where there is no fork server)
each worker is spawned instead: a fresh interpreter that imports torch and reads the data itself (~2 s).

Messages come back through a multiprocessing queue; a stop is an Event the worker checks before every batch.
The worker ignores Ctrl+C (the server decides when it stops), and on SIGTERM finishes the batch and ends as
"stopped"; a worker that does not stop is killed (the server escalates: request, SIGTERM, SIGKILL).

Nothing outlives the server, even one killed with SIGKILL: a worker watches its server (the parent sentinel
multiprocessing gives it) and, when it is gone, stops within a batch, writes its weights to its result file
itself and exits (its own watchdog ends it after ORPHAN_EXIT_SECONDS at the latest); it also asks for SIGTERM
when its parent goes (prctl PR_SET_PDEATHSIG). The fork server watches its parent (the server) and, when it is
gone, waits a moment for its workers and kills those left (jobs/preload.py). multiprocessing's resource tracker
ends by itself once the server and every worker, which hold its pipe, have gone.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path

SIGNAL_NAMES = {signal.SIGKILL: "SIGKILL", signal.SIGTERM: "SIGTERM", signal.SIGSEGV: "SIGSEGV",
                signal.SIGABRT: "SIGABRT", signal.SIGINT: "SIGINT"}
FORKSERVER_MARK = "LATENT_LAB_FORKSERVER"  # jobs/preload.py preloads only when it finds this
ENV_PREFIXES = ("VAE_", "LATENT_LAB_")  # the settings a worker takes from the server when it starts a job


def _worker_main(inbox, outbox, stop_event) -> None:
    """A worker process: wait for one job, run it, exit. When the server goes away (killed, even with SIGKILL)
    the worker notices within WATCH_SECONDS, stops within a batch, writes its weights to the result file
    itself (nobody reads the queue any more) and exits; a worker that cannot finish that in ORPHAN_EXIT_SECONDS
    is ended by its own watchdog, and the fork server kills any it left behind (jobs/preload.py)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    die_with_parent(signal.SIGTERM)  # the fork server (or, when spawned, the server's scheduler thread) went away
    server = mp.parent_process()  # the server, also for a worker forked by the fork server
    orphaned = threading.Event()
    threading.Thread(target=_watch_server, args=(server, orphaned), name="latent-lab-watch", daemon=True).start()
    from jobs.worker import lower_priority, run_job, write_result_file  # torch and vae_core (there when forked)

    while True:
        try:
            task = inbox.get(timeout=0.5)
            break
        except queue.Empty:
            if orphaned.is_set() or term.is_set():
                return
    if task is None:
        return
    task["received"] = time.time()
    _apply_env(task.get("env"))
    lower_priority(task["threads"], task["nice"])

    def gone(grace: float = 0.0) -> bool:
        """Whether the server is gone, asked afresh (not only the watchdog's flag). The parent-death SIGTERM
        comes when the server's thread that started this worker ends, which can be a moment before the server
        process has closed the pipe the sentinel watches: `grace` waits that moment out."""
        if not orphaned.is_set() and server is not None:
            if grace:
                server.join(grace)
            if not server.is_alive():
                orphaned.set()
        return orphaned.is_set()

    def should_stop():
        if gone():
            return "Stopped: the server that started this run went away."
        if stop_event.is_set():
            return task.get("stop_reason_default") or True
        if term.is_set():
            if gone(grace=0.5):
                return "Stopped: the server that started this run went away."
            return "Stopped: the server shut down during this run."
        return False

    def emit(kind, payload):
        if not gone():
            outbox.put((kind, payload))
        elif kind == "result" and task.get("result_path"):  # nobody reads the queue: keep the weights on disk
            try:
                if task.get("kind") == "view":
                    from jobs.views import write_result
                    write_result(Path(task["result_path"]), payload["view"])
                else:
                    write_result_file(task["result_path"], payload, f"job-{task.get('job_id', '')}")
            except Exception:  # noqa: BLE001 - a full disk: the next server says the run is lost
                pass

    if task.get("kind") == "view":
        from jobs.views import run_view
        run_view(task["settings"], emit, should_stop)
    else:
        run_job(task["settings"], task["data_root"], emit, should_stop, redraw_seconds=task["redraw_seconds"],
                timings={"submitted": task.get("submitted"), "received": task["received"]},
                quick=gone)
    if orphaned.is_set():
        os._exit(0)  # the queue's feeder may be blocked on a pipe nobody reads: do not wait for it
    outbox.close()
    outbox.join_thread()


WATCH_SECONDS = 0.2          # how often a worker looks whether its server is still there
ORPHAN_EXIT_SECONDS = 6.0    # a worker whose server went away has this long to save its weights and exit


def _watch_server(server, orphaned: threading.Event) -> None:
    """Set `orphaned` when the server process is gone; end this process ORPHAN_EXIT_SECONDS later at the latest."""
    if server is None:
        return
    while server.is_alive():
        time.sleep(WATCH_SECONDS)
    orphaned.set()
    time.sleep(ORPHAN_EXIT_SECONDS)
    os._exit(3)


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when the thread that started it ends (prctl PR_SET_PDEATHSIG);
    False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _apply_env(env: dict | None) -> None:
    """The server's VAE_* and LATENT_LAB_* variables as they are now (a fork server keeps those of its start)."""
    if env is None:
        return
    for key in [k for k in os.environ if k.startswith(ENV_PREFIXES) and k not in env]:
        del os.environ[key]
    os.environ.update(env)


def _env_now() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


def _nothing() -> None:
    """A process that ends at once: its start proves the fork server has finished preloading."""


_forkserver_lock = threading.Lock()


def start_fork_server(ctx) -> None:
    """Start the process's fork server with jobs.preload (once; later calls return at once), and wait until it
    has preloaded. Runs the server's main script there when it is a script (see jobs/preload.py)."""
    from multiprocessing import forkserver, spawn

    with _forkserver_lock:
        forkserver.set_forkserver_preload(["jobs.preload"])
        main_path = spawn.get_preparation_data("latent-lab").get("init_main_from_path")
        os.environ[FORKSERVER_MARK] = main_path or "-"  # read (and removed) by jobs.preload in the fork server
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(FORKSERVER_MARK, None)
    probe = ctx.Process(target=_nothing, name="latent-lab-probe", daemon=True)
    probe.start()
    probe.join(300)


class LocalHandle:
    """One worker process and its job."""

    def __init__(self, ctx, background: bool = False):
        self.inbox, self.outbox, self.stop_event = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.process = ctx.Process(target=_worker_main, args=(self.inbox, self.outbox, self.stop_event),
                                   name="latent-lab-worker", daemon=True)
        self.job_id: str | None = None
        self.start_error = ""
        self._starter: threading.Thread | None = None
        if background:  # the fork server may still be preloading: the scheduler must not wait for it
            self._starter = threading.Thread(target=self._start, name="latent-lab-worker-start", daemon=True)
            self._starter.start()
        else:
            self.process.start()

    def _start(self) -> None:
        try:
            self.process.start()
        except Exception as e:  # noqa: BLE001 - alive() turns False and death() says why
            self.start_error = str(e) or type(e).__name__

    def _starting(self) -> bool:
        return self._starter is not None and self._starter.is_alive()

    def assign(self, job_id: str, task: dict) -> None:
        self.job_id = job_id
        self.inbox.put(task)  # waits in the pipe until the worker reads it

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

    def terminate(self) -> bool:
        """SIGTERM: the worker finishes its batch and ends as stopped (False while it has no process yet)."""
        if self.process.pid is None or self._starting():
            return False
        if self.process.is_alive():
            self.process.terminate()
        return True

    def force_kill(self) -> bool:
        """SIGKILL: ends even a hung (stopped) worker; its weights since the last result are lost."""
        if self.process.pid is None or self._starting():
            return False
        if self.process.is_alive():
            self.process.kill()
        return True

    def alive(self) -> bool:
        if self._starting():
            return True
        return self.process.is_alive()

    def death(self) -> str:
        """Why the process ended, as the end of a sentence."""
        if self.start_error:
            return f"could not be started ({self.start_error})"
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code < 0:
            name = SIGNAL_NAMES.get(-code, f"signal {-code}")
            return f"was killed by {name}"
        return f"exited with status {code}"

    def kill(self, grace: float = 3.0) -> None:
        """Stop the process: ask, then SIGTERM, then SIGKILL."""
        self.stop_event.set()
        if self._starter is not None:
            self._starter.join(60)
        if self.process.pid is None:  # never started
            return
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
        self.warm = warm and "forkserver" in mp.get_all_start_methods()
        self.ctx = mp.get_context("forkserver" if self.warm else "spawn")  # never fork the server itself
        self._ready = threading.Event()
        self.error = ""
        if self.warm:
            threading.Thread(target=self._warm_up, name="latent-lab-forkserver", daemon=True).start()
        else:
            self._ready.set()

    def _warm_up(self) -> None:
        try:
            start_fork_server(self.ctx)
        except Exception as e:  # noqa: BLE001 - a worker start will try (and report) again
            self.error = str(e)
        finally:
            self._ready.set()

    def start(self, job_id: str, task: dict) -> LocalHandle:
        handle = LocalHandle(self.ctx, background=self.warm)
        handle.assign(job_id, {**task, "job_id": job_id, "env": _env_now(), "submitted": task.get("submitted")})
        return handle

    def spare_ready(self, timeout: float = 0) -> bool:
        """Whether the fork server has torch imported and the data loaded (waits up to `timeout` s)."""
        return self._ready.wait(timeout)

    def shutdown(self) -> None:
        """Nothing to stop: the fork server ends with the server process (and after its last worker)."""

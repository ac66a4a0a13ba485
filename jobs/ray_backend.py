"""The Ray backend (LATENT_LAB_RUNNER=ray): each run is a Ray actor on the cluster.

`RAY_ADDRESS` names a running cluster (every node needs this project and its data: the actor's runtime
environment adds this checkout to PYTHONPATH and passes VAE_DATA_DIR on); without it a local Ray is started
for this server with `ray.init(num_cpus=..., include_dashboard=False)`.

The actor is threaded (max_concurrency=4): `run` trains in one thread while `drain` (the messages so far)
and `stop` answer from others, so the server polls it exactly as it reads the local backend's queue.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_actor_class = None
_init_lock = threading.Lock()


def ensure_ray(num_cpus: int | None = None):
    """Connect to RAY_ADDRESS, or start a local Ray; returns the ray module."""
    import ray

    with _init_lock:
        if not ray.is_initialized():
            env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
                   "OMP_WAIT_POLICY": "PASSIVE"}
            if os.environ.get("VAE_DATA_DIR"):
                env["VAE_DATA_DIR"] = os.environ["VAE_DATA_DIR"]
            kwargs = dict(runtime_env={"env_vars": env}, log_to_driver=False, ignore_reinit_error=True,
                          configure_logging=False)
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    return ray


def _job_actor():
    global _actor_class
    if _actor_class is None:
        import ray

        @ray.remote(num_cpus=1, max_concurrency=4, max_restarts=0)
        class JobActor:
            def __init__(self):
                self._lock = threading.Lock()
                self._buffer: list = []
                self._stop = threading.Event()
                self._reason = ""

            def _emit(self, kind, payload):
                with self._lock:
                    self._buffer.append((kind, payload))

            def run(self, task: dict) -> str:
                from jobs.worker import lower_priority, run_job
                lower_priority(task["threads"], task["nice"])
                run_job(task["settings"], task["data_root"], self._emit,
                        lambda: (self._reason or True) if self._stop.is_set() else False,
                        redraw_seconds=task["redraw_seconds"])
                return "done"

            def drain(self) -> list:
                with self._lock:
                    out, self._buffer = self._buffer, []
                return out

            def stop(self, reason: str = "") -> None:
                self._reason = reason
                self._stop.set()

            def pid(self) -> int:
                return os.getpid()

        _actor_class = JobActor
    return _actor_class


class RayHandle:
    def __init__(self, ray, job_id: str, task: dict):
        self.ray, self.job_id = ray, job_id
        self.actor = _job_actor().options(name=f"latent-lab-{job_id}").remote()
        self.done = self.actor.run.remote(task)
        self._death: str | None = None
        self._pending = None  # the drain call in flight

    def messages(self, limit: int = 1000) -> list:
        ray = self.ray
        if self._pending is None:
            self._pending = self.actor.drain.remote()
        ready, _ = ray.wait([self._pending], timeout=0.2)
        if not ready:
            return []
        ref, self._pending = self._pending, None
        try:
            return ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the actor died: alive() and death() say how
            self._death = self._death or _short(e)
            return []

    def request_stop(self) -> None:
        try:
            self.actor.stop.remote()
        except Exception:  # noqa: BLE001
            pass

    def alive(self) -> bool:
        ready, _ = self.ray.wait([self.done], timeout=0)
        if not ready:
            return True
        try:
            self.ray.get(self.done)
        except Exception as e:  # noqa: BLE001
            self._death = self._death or _short(e)
        return False

    def finished_cleanly(self) -> bool:
        return not self.alive() and self._death is None

    def death(self) -> str:
        return f"was lost on the Ray cluster ({self._death})" if self._death else "ended"

    def kill(self, grace: float = 3.0) -> None:
        self.request_stop()
        try:
            self.ray.wait([self.done], timeout=grace)
            self.ray.kill(self.actor)
        except Exception:  # noqa: BLE001
            pass

    @property
    def pid(self) -> int | None:
        try:
            return self.ray.get(self.actor.pid.remote(), timeout=10)
        except Exception:  # noqa: BLE001
            return None


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


class RayBackend:
    name = "ray"

    def __init__(self, num_cpus: int | None = None):
        self.ray = ensure_ray(num_cpus)

    def start(self, job_id: str, task: dict) -> RayHandle:
        return RayHandle(self.ray, job_id, task)

    def shutdown(self) -> None:
        pass  # the actors are killed one by one by the runner; a Ray we started ends with this process

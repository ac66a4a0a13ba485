"""The Ray backend (LATENT_LAB_RUNNER=ray): each run is a Ray actor on the cluster.

Without RAY_ADDRESS a local Ray is started for this server with `ray.init(num_cpus=..., include_dashboard=False)`;
its actors import this checkout through PYTHONPATH. With RAY_ADDRESS (a running cluster, one machine or many)
nothing has to be at the same path on the nodes, only the Python packages of requirements.txt:

- the code travels in the job's runtime environment: `working_dir` is this checkout with everything but
  vae_core/ and jobs/ excluded (checkpoints, runs, tests, data, .git: a few hundred kB in all);
- the data travels through Ray's object store: the server puts the data set's four IDX files once, and each node
  unpacks them once into `<tmp>/latent-lab-ray-data-<uid>/<content hash>/` (VAE_DATA_DIR is passed on as well);
- the results come back through Ray: the weights (numpy), the record and the pictures are messages the server
  drains from the actor, and the server writes the checkpoint; nothing is read from a node's disk.

The actor is threaded (max_concurrency=4): `run` trains in one thread while `drain` (the messages so far)
and `stop` answer from others, so the server polls it exactly as it reads the local backend's queue.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_PACKAGES = ("vae_core", "jobs")  # all an actor imports from this checkout
DATA_CACHE = "latent-lab-ray-data"
_actor_class = None
_init_lock = threading.Lock()


def cluster_address() -> str:
    """RAY_ADDRESS when it names a cluster to join ('' or 'local': start a Ray of our own)."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    return "" if address.lower() == "local" else address


def runtime_env(remote: bool) -> dict:
    """The actors' runtime environment: this checkout's code (a path for a local Ray, shipped for a cluster)."""
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    if os.environ.get("VAE_DATA_DIR"):
        env["VAE_DATA_DIR"] = os.environ["VAE_DATA_DIR"]
    if not remote:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {"env_vars": env}
    excludes = sorted(f"/{entry.name}" for entry in ROOT.iterdir() if entry.name not in SHIPPED_PACKAGES)
    return {"working_dir": str(ROOT), "excludes": excludes + ["__pycache__", "*.pyc"], "env_vars": env}


def ensure_ray(num_cpus: int | None = None):
    """Connect to RAY_ADDRESS, or start a local Ray; returns the ray module."""
    import ray

    with _init_lock:
        if not ray.is_initialized():
            address = cluster_address()
            kwargs = dict(runtime_env=runtime_env(remote=bool(address)), log_to_driver=False,
                          ignore_reinit_error=True, configure_logging=False)
            if address:
                try:
                    ray.init(address=address, **kwargs)
                except ConnectionError as e:  # most often: the cluster wants a token this server lacks
                    hint = ("" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
                            "; if the cluster uses Ray's token authentication (`ray start` turns it on when "
                            "~/.ray/auth_token exists), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN for this server")
                    raise ConnectionError(f"{e} (RAY_ADDRESS={address}){hint}") from None
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    return ray


def pack_dataset(ray, dataset: str, data_root) -> dict | None:
    """The data set's files in Ray's object store, for nodes that do not share the server's disk; None when
    the server has no such data set (the job then fails on the node with the usual sentence)."""
    from vae_core.data import dataset_files

    folder, files = dataset_files(dataset, data_root)
    if not files:
        return None
    blobs = {f.name: f.read_bytes() for f in files}
    digest = hashlib.sha256()
    for name in sorted(blobs):
        digest.update(name.encode() + b"\0" + hashlib.sha256(blobs[name]).digest())
    return {"folder": folder, "key": digest.hexdigest()[:20], "ref": [ray.put(blobs)]}  # a list: not resolved


def unpack_dataset(ray, shipped: dict) -> str:
    """On a node: a data root holding the shipped data set, fetched from the object store once per node."""
    from vae_core.atomic import write_atomic

    root = Path(tempfile.gettempdir()) / f"{DATA_CACHE}-{os.getuid()}" / shipped["key"]
    done = root / ".complete"
    if not done.is_file():
        folder = root / shipped["folder"]
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in ray.get(shipped["ref"][0]).items():
            write_atomic(folder / name, blob)
        write_atomic(done, b"")
    return str(root)


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
                data_root = task["data_root"]
                if task.get("data"):  # a cluster: the data set came through the object store
                    try:
                        data_root = unpack_dataset(ray, task["data"])
                    except Exception as e:  # noqa: BLE001 - the page shows it as a sentence
                        self._emit("end", {"status": "failed",
                                           "message": f"The data set could not be unpacked on this node: {e}."})
                        return "failed"
                should_stop = lambda: (self._reason or True) if self._stop.is_set() else False  # noqa: E731
                if task.get("kind") == "view":   # a heavy Diagnose view (the checkpoint must be on this node)
                    from jobs.views import run_view
                    run_view(task["settings"], self._emit, should_stop)
                else:
                    run_job(task["settings"], data_root, self._emit, should_stop,
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

            def origin(self) -> dict:
                """Where this actor runs and imports the job code from (a cluster: the shipped working_dir)."""
                import socket

                import jobs.worker
                return {"code": jobs.worker.__file__, "cwd": os.getcwd(), "host": socket.gethostname()}

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

    def terminate(self) -> bool:
        """Ray has no gentler signal than ending the actor: SIGTERM and SIGKILL both end it."""
        try:
            self.ray.kill(self.actor, no_restart=True)
        except Exception:  # noqa: BLE001
            pass
        return True

    force_kill = terminate

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
        self.remote = bool(cluster_address())
        self._shipped: dict[tuple, dict | None] = {}  # (data set, its files' paths, sizes, times) -> packed

    def start(self, job_id: str, task: dict) -> RayHandle:
        if self.remote:
            task = {**task, "data": self._packed(task["settings"]["train_config"]["dataset"], task["data_root"])}
        return RayHandle(self.ray, job_id, task)

    def _packed(self, dataset: str, data_root) -> dict | None:
        from vae_core.data import dataset_files

        _, files = dataset_files(dataset, data_root)
        key = (dataset, tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
        if key not in self._shipped:
            self._shipped[key] = pack_dataset(self.ray, dataset, data_root)
        return self._shipped[key]

    def shutdown(self) -> None:
        pass  # the actors are killed one by one by the runner; a Ray we started ends with this process

"""The small interface the pages call: submit, progress, stop, save, list.

    service = job_service(folder)                 # one per models folder and process (a scheduler thread)
    job_id = service.submit(model_config, train_config, owner, data_root, owner_name="Ada")  # JobRefused(sentence)
    snap = service.progress(job_id)               # a JobSnapshot: status, place in line, curves, pictures
    service.stop(job_id)                          # a queued job leaves the line; a running one stops in a batch
    path = service.save(job_id, folder, name)     # the job's weights as a named checkpoint
    service.jobs_of(owner)                        # the owner's training runs, newest first
    service.class_runs(); service.curves(ids)     # every run with its place in line; their stored loss curves
    job_id = service.submit_view(owner, view, path, params, data_root)   # a heavy Diagnose view as a job
    snap = service.view_job(view, path, params)   # the job computing (or that computed) that view, if any
    service.notice()                              # a sentence when the table was deleted or damaged and started anew

`owner` is a person's identity key (jobs/classroom.py): the caps are the class's (max_runs, max_queued) and each
person's share of them (runs_per_person, queued_per_person), counted over the whole table.

The server only schedules and collects: training runs in a worker process (jobs/local.py) or a Ray actor
(jobs/ray_backend.py). The job table (jobs/table.py) outlives a tab and the server, and every server on the
folder shares it (leases; see JobService); the curves and pictures live in this process's memory (and a
finished job's curves in its result file). A fault of the table's file is a JobStoreError whose text is the
sentence a page shows.
"""
from __future__ import annotations

import atexit
import math
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vae_core import ModelConfig, TrainConfig

from .limits import Limits, read_limits, weights_problem
from .table import (ACTIVE, FINISHED, Caps, JobRow, JobStoreError, JobTable, Refused,  # noqa: F401
                    format_bytes, free_space)
from .worker import REDRAW_SECONDS, pictures_of_result, settings_from_dict, settings_to_dict, write_result_file

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TICK_SECONDS = 0.2
HEARTBEAT_SECONDS = 1.0   # leases renewed and progress written this often
CLEANUP_SECONDS = 60.0    # results past their retention are looked for this often
MAX_CURVE_POINTS = 3000   # per curve kept for the page: a long run keeps every 2nd, 4th, ... step
# how a stopped run's record begins (vae_core.fit's message, as jobs.worker writes it)
WORKER_STOP = "Stopped by request"
KEEP_FINISHED_IN_MEMORY = 100
SMOOTHING = 0.9           # the bold training curve: an exponential moving average with bias correction
BOARD_POINTS = 200        # a run's curve in the table (job_points, for the teacher's board): about this many points


class JobRefused(ValueError):
    """A job that cannot be submitted, with the sentence a page shows."""


@dataclass
class JobSnapshot:
    """A job at one moment (a copy: safe to keep and read)."""

    id: str
    owner: str
    status: str                       # queued | starting | running | stopping | completed | stopped | diverged | failed
    message: str
    model_config: ModelConfig | None    # None for a view job
    train_config: TrainConfig | None
    created: float
    started: float | None = None
    finished_at: float | None = None
    place_in_queue: int = 0           # 1: next to start; 0: not waiting
    queue_length: int = 0
    epoch: int = 0                    # the epoch in progress, from 0
    global_step: int = 0
    total_steps: int = 0
    steps_per_epoch: int = 1
    images_per_sec: float = 0.0
    elapsed: float = 0.0              # training seconds (fit's clock)
    eta: float = 0.0
    wall: float = 0.0                 # seconds since the worker took the job (data loading included)
    train_images: int = 0
    eval_images: int = 0
    steps: dict[str, list] = field(default_factory=dict)     # 'step', 'loss', 'recon', 'kl' (+ '_smooth')
    epoch_records: list[dict] = field(default_factory=list)  # {'epoch', 'train', 'eval'}
    preview: np.ndarray | None = None
    preview_caption: str = ""
    latent: tuple[np.ndarray, np.ndarray] | None = None
    class_names: tuple[str, ...] = tuple(str(i) for i in range(10))
    result_path: str = ""
    backend: str = ""
    timings: dict = field(default_factory=dict)   # wall-clock times of the start-up (time.time()): submitted,
    #   received (by the worker), data, model, first_step; bench/jobs_speed.py prints the gaps
    kind: str = "train"               # train | view
    note: str = ""                    # what happened to it since it ended (its result removed after the retention)

    @property
    def epochs(self) -> int:
        return self.train_config.epochs if self.train_config is not None else 1

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.global_step / self.total_steps) if self.total_steps else 0.0

    @property
    def can_save(self) -> bool:
        return bool(self.result_path) and Path(self.result_path).is_file()


TERMS = ("loss", "recon", "kl")
CURVE_KEYS = ("step", *TERMS, *(k + "_smooth" for k in TERMS))


class LiveJob:
    """What a running job has reported, kept in the server's memory (the scheduler thread writes, pages read)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.steps: dict[str, list] = {k: [] for k in CURVE_KEYS}
        self.epochs: list[dict] = []
        self._seen = 0                     # steps reported so far
        self._stride = 1                   # keep every _stride-th step in self.steps
        self._ema = {k: 0.0 for k in TERMS}
        self.progress: dict = {}
        self.preview = None
        self.preview_caption = ""
        self.latent = None
        self.info: dict = {}
        self.end: dict | None = None
        self.result: dict | None = None
        self.started_wall = time.time()
        self.pictures_from_file = False    # a finished job's pictures, once redrawn from its result file
        self.board_mark: tuple[int, int] = (-1, 0)   # (step, epochs) of the last point written to job_points

    def apply(self, kind: str, payload: dict) -> None:
        with self.lock:
            if kind == "started":
                self.info = dict(payload)
                self.progress.setdefault("steps_per_epoch", payload["steps_per_epoch"])
                self.progress.setdefault("total_steps", payload["total_steps"])
            elif kind == "steps":
                self._add_steps(payload["steps"])
                self.progress.update(payload["progress"])
            elif kind == "epoch":
                self.epochs.append(payload["record"])
                self.progress.update(eta=payload["eta"], elapsed=payload["elapsed"],
                                     images_per_sec=payload["images_per_sec"])
            elif kind == "pictures":
                self.preview, self.preview_caption = payload["preview"], payload["caption"]
                if "latent" in payload:
                    self.latent = payload["latent"]
            elif kind == "end":
                self.end = dict(payload)

    def _add_steps(self, new: dict[str, list]) -> None:
        """Smooth every step as it arrives (so the page never smooths 100,000 points a second) and keep
        at most MAX_CURVE_POINTS per curve, halving the resolution of the whole curve when it fills."""
        for i, step in enumerate(new["step"]):
            self._seen += 1
            correction = 1 - SMOOTHING ** self._seen
            for k in TERMS:
                self._ema[k] = SMOOTHING * self._ema[k] + (1 - SMOOTHING) * new[k][i]
            if (self._seen - 1) % self._stride:
                continue
            self.steps["step"].append(step)
            for k in TERMS:
                self.steps[k].append(new[k][i])
                self.steps[k + "_smooth"].append(self._ema[k] / correction)
            if len(self.steps["step"]) >= MAX_CURVE_POINTS:
                self.steps = {k: v[::2] for k, v in self.steps.items()}
                self._stride *= 2


@dataclass
class _Stop:
    """A stop this server is carrying out: asked at `since` (monotonic), then SIGTERM, then SIGKILL."""

    since: float
    signal: str = ""          # "" (asked) | "SIGTERM" | "SIGKILL"
    at: float = 0.0           # when the signal was sent


class JobService:
    """The jobs of one models folder: the table, the backend, and a scheduler thread.

    Every server on the folder shares the table: a job is started by whichever server claims it first
    (`claim_next`, under the class-wide `max_runs`), and that server holds a lease on its row, renewed every
    HEARTBEAT_SECONDS. A row whose lease expired (its server was killed or hung) is ended by any other server,
    with a sentence; a server that finds its lease taken over stops its worker. A stop is asked (the worker
    stops within a batch), then after `stop_grace_seconds` sent SIGTERM, then as long again SIGKILL."""

    def __init__(self, folder: str | Path, limits: Limits | None = None):
        self.folder = Path(folder)
        self.limits = limits or read_limits()
        self.table = JobTable(self.folder / "jobs.sqlite")   # JobStoreError (a sentence) when it cannot be used
        self.results = self.folder / ".jobs"
        self.host = socket.gethostname()
        self.server_id = f"{self.host}:{os.getpid()}:{secrets.token_hex(3)}"
        self._handles: dict[str, object] = {}
        self._live: dict[str, LiveJob] = {}
        self._held: dict[str, JobRow] = {}          # the rows this server runs, as claimed
        self._history_cache: dict[str, LiveJob] = {}
        self._stop_reasons: dict[str, str] = {}
        self._stopping: dict[str, _Stop] = {}
        self._result_errors: dict[str, str] = {}
        self._pid_written: set[str] = set()
        self._finished_live: list[str] = []
        self._next_cleanup = 0.0
        self._logged: dict[str, float] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self.backend = None          # made by the scheduler thread (see _loop)
        self._backend_error = ""
        self._thread = threading.Thread(target=self._loop, name="latent-lab-jobs", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)

    def _make_backend(self):
        if self.limits.runner == "ray":
            from .ray_backend import RayBackend
            return RayBackend(num_cpus=self.limits.max_runs)
        from .local import LocalBackend
        return LocalBackend(warm=self.limits.warm_worker)

    # ------------------------------------------------------------------ the interface
    def submit(self, model_config: ModelConfig, train_config: TrainConfig, owner: str,
               data_root: str | Path | None = None, *, owner_name: str = "") -> str:
        """Queue a run for `owner` (an identity key; `owner_name` is what the teacher's board shows); it starts
        as soon as a slot is free and the owner's share allows. Raises JobRefused with a sentence (JobStoreError
        when the job table cannot be used)."""
        if not owner:
            raise JobRefused("A job needs an owner.")
        problem = weights_problem(model_config, self.limits)
        if problem:
            raise JobRefused(problem)
        settings = settings_to_dict(model_config, train_config)
        settings["data_root"] = None if data_root is None else str(data_root)
        try:  # the caps are counted and the row inserted in one transaction: no burst, on any server, beats them
            job_id = self.table.add(owner, settings, backend=self.limits.runner, server=self.server_id,
                                    caps=self._caps(), owner_name=owner_name)
        except Refused as e:
            raise JobRefused(str(e)) from None
        self._wake.set()
        return job_id

    def submit_view(self, owner: str, view: str, path: str | Path, params: dict,
                    data_root: str | Path | None = None, *, owner_name: str = "") -> str:
        """Queue a heavy Diagnose view (jobs/views.py) as a job of kind 'view', counted in the person's share; the
        person's earlier job for the same view of the same file (other images or samples chosen since) is stopped
        if it is still computing. JobRefused when a cap is full."""
        from .views import VIEWS, view_key
        if not owner:
            raise JobRefused("A job needs an owner token.")
        if view not in VIEWS:
            raise JobRefused(f"There is no view {view!r}; the views are {', '.join(VIEWS)}.")
        mtime = Path(path).stat().st_mtime_ns
        key = view_key(view, str(path), mtime, params)
        running = self.table.find_view(key)
        if running is not None and running.owner == owner and running.active:
            return running.id
        for row in self.table.of_owner(owner, 50, kind="view"):
            if row.active and row.settings.get("view") == view and row.settings.get("path") == str(path):
                self.stop(row.id, "Stopped: the same view was asked for with other settings")
        settings = {"view": view, "path": str(path), "mtime_ns": mtime, "params": params, "view_key": key,
                    "data_root": None if data_root is None else str(data_root)}
        try:
            job_id = self.table.add(owner, settings, backend=self.limits.runner, server=self.server_id, kind="view",
                                    caps=self._caps(), owner_name=owner_name)
        except Refused as e:
            raise JobRefused(str(e)) from None
        self._wake.set()
        return job_id

    def view_job(self, view: str, path: str | Path, params: dict) -> JobSnapshot | None:
        """The newest job computing this view of the file as it is now (active, or completed with its result)."""
        from .views import view_key
        row = self.table.find_view(view_key(view, str(path), Path(path).stat().st_mtime_ns, params))
        if row is None:
            return None
        self.table.touch([row.id])
        return self._snapshot(row, light=True)

    def _caps(self) -> Caps:
        return Caps(max_runs=self.limits.max_runs, max_queued=self.limits.max_queued,
                    runs_per_person=self.limits.runs_per_person,
                    queued_per_person=self.limits.queued_per_person)

    def progress(self, job_id: str, touch: bool = True) -> JobSnapshot | None:
        """The job now (None for an unknown id); `touch` tells the scheduler a page is watching."""
        if touch:
            self.table.touch([job_id])
        row = self.table.get(job_id)
        return None if row is None else self._snapshot(row)

    def jobs_of(self, owner: str, touch: bool = True, limit: int = 20) -> list[JobSnapshot]:
        """The owner's training runs, newest first; `touch` marks the active ones as watched."""
        rows = self.table.of_owner(owner, limit)
        if touch:
            self.table.touch([r.id for r in rows if r.active])
        return [self._snapshot(r, light=True) for r in rows]

    def notice(self) -> str | None:
        """A recent repair of the job table (deleted or damaged, then started anew), in one sentence."""
        return self.table.notice()

    def stop(self, job_id: str, reason: str = "") -> None:
        """A queued job leaves the line; a running one is asked to stop (within a batch, keeping its weights),
        by whichever server runs it; one that does not stop is sent SIGTERM, then SIGKILL (see _escalate)."""
        row = self.table.get(job_id)
        if row is None or row.status in FINISHED:
            return
        if row.status == "queued" and self.table.leave_queue(job_id, reason or "Taken out of the line before it "
                                                                                "started."):
            return
        if not self.table.request_stop(job_id, reason):
            return
        with self._lock:
            if job_id in self._handles:
                self._begin_stop(job_id, reason)
        self._wake.set()

    def _begin_stop(self, job_id: str, reason: str) -> None:
        with self._lock:
            handle = self._handles.get(job_id)
            if handle is None or job_id in self._stopping:
                return
            if reason:
                self._stop_reasons[job_id] = reason
            self._stopping[job_id] = _Stop(since=time.monotonic())
        handle.request_stop()

    def hide(self, job_id: str) -> None:
        """Leave a finished job out of its owner's list."""
        self.table.update(job_id, hidden=1)

    def wait(self, job_id: str, timeout: float = 60.0, until=None) -> JobSnapshot:
        """Poll until the job has finished (or `until(snapshot)` holds); for scripts and tests."""
        end = time.monotonic() + timeout
        while True:
            snap = self.progress(job_id)
            if snap is not None and (until(snap) if until else snap.finished):
                return snap
            if time.monotonic() > end:
                raise TimeoutError(f"job {job_id} is {snap.status if snap else 'unknown'} after {timeout:g} s")
            time.sleep(0.1)

    def save(self, job_id: str, folder: str | Path, name: str, *, overwrite: bool = False) -> Path:
        """Write the job's model to folder/name.safetensors. ValueError with a sentence when it cannot."""
        import dataclasses

        from vae_core import load_checkpoint, save_checkpoint
        from vae_core.checkpoints import CheckpointExists

        check_name(name)
        row = self.table.get(job_id)
        if row is not None and not row.result_path and row.error:
            raise ValueError(row.error.rstrip(".").lower()[:1] + row.error.rstrip(".")[1:])
        if row is None or not row.result_path or not Path(row.result_path).is_file():
            raise ValueError("there is no trained model to save yet")
        path = Path(folder) / f"{name}.safetensors"
        if path.exists() and not overwrite:
            raise ValueError(f"a model named {name!r} already exists; choose another name or tick 'overwrite'")
        model, record = load_checkpoint(row.result_path)
        try:  # the name is claimed atomically: of two saves of one name at once, only one succeeds
            # a run the server stopped (nobody watching, the time limit) says so, not "Stopped by request"
            message = record.message
            if row.stop_reason and message.startswith(WORKER_STOP):
                message = row.stop_reason.rstrip(".") + "," + message[len(WORKER_STOP):]
            record = dataclasses.replace(record, name=name, message=message)
            saved = save_checkpoint(path, model, record, extras=record.extras, overwrite=overwrite)
        except CheckpointExists:
            raise ValueError(f"a model named {name!r} was saved a moment ago (perhaps from another tab); "
                             "choose another name or tick 'overwrite'") from None
        except OSError as e:
            raise ValueError(f"the file {path} could not be written ({(e.strerror or str(e)).lower()}; "
                             f"{free_space(path.parent)})") from None
        self.table.update(job_id, saved_path=str(saved))
        return saved

    # ------------------------------------------------------------------ the class (the teacher's board)
    def class_runs(self, limit: int = 200) -> list[tuple[JobRow, int]]:
        """Every run on the folder (every server's), active first, then the newest finished; each with its place
        in line (1: next to start; 0: not waiting). Two reads, whatever the size of the class."""
        rows = self.table.recent(limit)
        queued = [r.id for r in self.table.with_status("queued")]
        place = {job_id: k + 1 for k, job_id in enumerate(queued)}
        return [(r, place.get(r.id, 0)) for r in rows]

    def curves(self, job_ids: list[str]) -> dict[str, list[tuple[int, float | None, float | None]]]:
        """The runs' stored loss curves (job_points: step, smoothed training loss, test loss at an epoch's end)."""
        return self.table.points(job_ids)

    # ------------------------------------------------------------------ snapshots
    def _snapshot(self, row: JobRow, light: bool = False) -> JobSnapshot:
        if row.kind == "view":
            model_config, train_config = None, None
        else:
            model_config, train_config = settings_from_dict(row.settings)
        snap = JobSnapshot(id=row.id, owner=row.owner, status=row.status, message=row.message,
                           model_config=model_config, train_config=train_config, created=row.created,
                           started=row.started, finished_at=row.finished, global_step=row.step,
                           total_steps=row.total_steps, epoch=row.epoch, result_path=row.result_path,
                           backend=row.backend, kind=row.kind, note=row.error)
        if row.status == "queued":
            snap.place_in_queue = self.table.place_in_queue(row.id)
            snap.queue_length = len(self.table.with_status("queued"))
        if row.started:
            snap.wall = (row.finished or time.time()) - row.started
        live = self._live.get(row.id) or (None if row.kind == "view" else self._history(row, pictures=not light))
        if live is None:
            return snap
        with live.lock:
            p = live.progress
            snap.epoch = p.get("epoch", snap.epoch)
            snap.global_step = p.get("global_step", snap.global_step)
            snap.total_steps = p.get("total_steps", snap.total_steps)
            snap.steps_per_epoch = p.get("steps_per_epoch", 1)
            snap.images_per_sec = p.get("images_per_sec", 0.0)
            snap.elapsed, snap.eta = p.get("elapsed", 0.0), p.get("eta", 0.0)
            snap.train_images = live.info.get("train_images", 0)
            snap.eval_images = live.info.get("eval_images", 0)
            snap.class_names = tuple(live.info.get("class_names", snap.class_names))
            snap.timings = {**live.info.get("timings", {}),
                            **({"first_step": p["first_step"]} if "first_step" in p else {})}
            if not light:
                snap.steps = {k: list(v) for k, v in live.steps.items()}
                snap.epoch_records = list(live.epochs)
                snap.preview, snap.preview_caption, snap.latent = live.preview, live.preview_caption, live.latent
        return snap

    def _history(self, row: JobRow, pictures: bool = False) -> LiveJob | None:
        """A finished job this server did not watch (a restart, or one that left the memory): its curves from
        the result file, and with `pictures` (the job a page shows, not a list of runs) its samples and latent
        map, drawn once from the weights in that file."""
        if not row.result_path or row.status not in FINISHED:
            return None
        live = self._history_cache.get(row.id) or self._curves_of_result(row)
        if live is not None and pictures and not live.pictures_from_file:
            live.pictures_from_file = True
            try:
                from vae_core import load_checkpoint
                model, record = load_checkpoint(row.result_path)
                drawn = pictures_of_result(model, record)
                with live.lock:
                    live.preview, live.preview_caption, live.latent = drawn
            except Exception:  # noqa: BLE001 - the file went bad since its curves were read: curves only
                pass
        return live

    def _curves_of_result(self, row: JobRow) -> LiveJob | None:
        """A finished job's curves and progress from its result file's record (cached per job)."""
        try:
            from vae_core import read_record
            record = read_record(row.result_path)
        except Exception:  # noqa: BLE001 - the result file is gone or damaged: no curves
            return None
        live = LiveJob()
        history = record.history.to_dict()
        live.steps = {k: list(history.get(k, [])) for k in ("step", "loss", "recon", "kl")}
        live.epochs = list(history.get("epochs", []))
        epochs = record.train_config.epochs if record.train_config else 1
        spe = math.ceil((row.total_steps or 1) / max(1, epochs))
        live.progress = {"steps_per_epoch": spe, "global_step": row.step, "total_steps": row.total_steps,
                         "elapsed": record.train_seconds or 0.0, "images_per_sec": record.images_per_sec or 0.0,
                         "epoch": row.epoch}
        self._history_cache[row.id] = live
        return live

    # ------------------------------------------------------------------ the scheduler
    def _loop(self) -> None:
        # The backend is made here, in this long-lived thread: Ray starts its processes with a "parent died"
        # signal tied to the starting *thread*, and Streamlit runs each script run in a thread that ends.
        try:
            self.backend = self._make_backend()
        except Exception as e:  # noqa: BLE001 - every queued job will say why
            self._backend_error = f"the {self.limits.runner} runner could not be started: {e}"
        last_beat = 0.0
        while not self._closing.is_set():
            try:
                beat = time.monotonic() - last_beat >= HEARTBEAT_SECONDS
                self._tick(beat)
                if beat:
                    last_beat = time.monotonic()
            except Exception as e:  # noqa: BLE001 - the scheduler must outlive any one job's trouble
                self._log(f"scheduler error: {e!r}" if not isinstance(e, JobStoreError) else str(e))
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    def _log(self, text: str) -> None:
        """To the server's log, each distinct line at most once a minute (a broken table fails every tick)."""
        import sys
        now = time.monotonic()
        if now - self._logged.get(text, -1e9) >= 60:
            self._logged[text] = now
            print(f"latent-lab jobs: {text}", file=sys.stderr)

    def _tick(self, heartbeat: bool) -> None:
        now = time.time()
        with self._lock:
            handles = dict(self._handles)
        for job_id, handle in handles.items():
            self._collect(job_id, handle, heartbeat, now)
        if heartbeat:
            self._renew()
            self._end_expired(now)
            if now >= self._next_cleanup:
                self._next_cleanup = now + CLEANUP_SECONDS
                self._clean_results(now)
        rows = self.table.with_status(*ACTIVE)
        limits = self.limits
        for row in rows:
            idle = now - (row.last_poll or row.created)
            what = "view" if row.kind == "view" else "run"
            if row.status == "queued" and idle > limits.abandon_seconds:
                self.table.leave_queue(row.id, f"Taken out of the line: nobody watched it for {_duration(idle)}.")
            elif row.id in self._handles:
                if row.status == "stopping":
                    self._begin_stop(row.id, row.stop_reason)   # asked through the table (any server's page)
                elif idle > limits.abandon_seconds:
                    self.stop(row.id, f"Stopped: nobody watched this {what} for {_duration(idle)}")
                elif limits.max_run_seconds and row.started and now - row.started > limits.max_run_seconds:
                    self.stop(row.id, f"Stopped at the time limit of {_duration(limits.max_run_seconds)} a {what}")
        self._escalate()
        if any(r.status == "queued" for r in rows):
            self._start_queued()

    def _escalate(self) -> None:
        """A stop that did not end its worker: SIGTERM after the grace, SIGKILL after as long again (a hung or
        SIGSTOPped worker included); the row then says why (_finish)."""
        grace = self.limits.stop_grace_seconds
        now = time.monotonic()
        with self._lock:
            stops = [(j, s, self._handles.get(j)) for j, s in self._stopping.items()]
        for job_id, stop, handle in stops:
            if handle is None:
                continue
            if not stop.signal and now - stop.since >= grace:
                if handle.terminate():
                    stop.signal, stop.at = "SIGTERM", now
            elif stop.signal == "SIGTERM" and now - stop.at >= grace:
                if handle.force_kill():
                    stop.signal, stop.at = "SIGKILL", now

    def _renew(self) -> None:
        """Renew this server's lease on the rows it runs; a row taken over by another server (this one was too
        slow) has its worker stopped here; a row that vanished (the table was started anew) is put back."""
        with self._lock:
            ids = list(self._handles)
        if not ids:
            return
        lease = self.limits.lease_seconds
        held = set(self.table.renew(self.server_id, ids, lease))
        lost = [j for j in ids if j not in held]
        vanished = [j for j in lost if j in self._held and self.table.get(j) is None]
        if vanished:
            self.table.restore([self._restorable(j) for j in vanished], lease)
            held = set(self.table.renew(self.server_id, ids, lease))
            lost = [j for j in ids if j not in held]
        for job_id in lost:
            self._let_go(job_id)

    def _restorable(self, job_id: str) -> JobRow:
        import dataclasses
        live = self._live.get(job_id)
        p = live.progress if live is not None else {}
        status = ("stopping" if job_id in self._stopping else "running" if live is not None and live.info
                  else "starting")
        handle = self._handles.get(job_id)
        return dataclasses.replace(self._held[job_id], status=status, server=self.server_id,
                                   step=p.get("global_step", 0), total_steps=p.get("total_steps", 0),
                                   epoch=p.get("epoch", 0), worker_pid=getattr(handle, "pid", None)
                                   if self.limits.runner == "local" else None, host=self.host)

    def _let_go(self, job_id: str) -> None:
        """Another server ended this row after our lease expired: our worker must not train on unseen."""
        with self._lock:
            handle = self._handles.pop(job_id, None)
            self._live.pop(job_id, None)
            self._held.pop(job_id, None)
            self._stopping.pop(job_id, None)
            self._stop_reasons.pop(job_id, None)
        self._log(f"job {job_id}: another server took over its expired lease; its worker is stopped here.")
        if handle is not None:
            threading.Thread(target=handle.kill, kwargs={"grace": self.limits.stop_grace_seconds}, daemon=True).start()

    def _end_expired(self, now: float) -> None:
        """Rows of another server whose lease expired (that server was killed or hung): end them, saying why,
        with the weights its worker kept (a worker whose server went away writes them itself) when there are."""
        for row in self.table.expired(now):
            if row.id in self._handles:
                continue
            silent = _duration(now - (row.heartbeat or row.started or row.created))
            what = "view" if row.kind == "view" else "run"
            result = self.results / (f"{row.id}.npz" if row.kind == "view" else f"{row.id}.safetensors")
            kept = result.is_file() and _readable_result(result, row.kind)
            if kept and row.kind != "view":
                status, message = "stopped", (f"The server running it stopped (no heartbeat for {silent}); its "
                                              "worker kept its last weights, ready to save.")
            else:
                status, message = "failed", (f"The server running it stopped (no heartbeat for {silent}); the "
                                             f"{what} is lost" + (": open the view again." if what == "view" else "."))
                kept = False
            self.table.end_if_expired(row.id, status, message, now, **({"result_path": str(result)} if kept else {}))

    def _start_queued(self) -> None:
        if self.backend is None:
            while self._backend_error and not self._closing.is_set():
                row = self.table.claim_next(self.server_id, self.limits.max_runs, self.limits.lease_seconds,
                                            runs_per_person=self.limits.runs_per_person)
                if row is None:
                    return
                self.table.update_held(row.id, self.server_id, status="failed", finished=time.time(),
                                       message=_sentence(self._backend_error))
            return
        while not self._closing.is_set():
            row = self.table.claim_next(self.server_id, self.limits.max_runs, self.limits.lease_seconds,
                                        runs_per_person=self.limits.runs_per_person)
            if row is None:
                return
            with self._lock:
                self._held[row.id] = row
                self._live[row.id] = LiveJob()
                try:
                    self._handles[row.id] = self.backend.start(row.id, self._task(row))
                except Exception as e:  # noqa: BLE001
                    self._handles.pop(row.id, None)
                    self._held.pop(row.id, None)
                    self.table.update_held(row.id, self.server_id, status="failed", finished=time.time(),
                                           message=f"The training process could not be started: {e}.")

    def _task(self, row: JobRow) -> dict:
        common = {"threads": self.limits.worker_threads, "nice": self.limits.worker_nice,
                  "redraw_seconds": REDRAW_SECONDS, "submitted": row.created, "kind": row.kind}
        try:
            self.results.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # the result cannot be written either: the run will say so when it ends
        if row.kind == "view":
            return {**common, "settings": row.settings, "data_root": row.settings.get("data_root"),
                    "result_path": str(self.results / f"{row.id}.npz")}
        return {**common, "settings": {k: row.settings[k] for k in ("model_config", "train_config")},
                "data_root": row.settings.get("data_root"), "result_path": str(self.results / f"{row.id}.safetensors")}

    def _collect(self, job_id: str, handle, write_progress: bool, now: float) -> None:
        live = self._live[job_id]
        alive = handle.alive()
        for kind, payload in handle.messages():
            if kind == "result":
                self._write_result(job_id, payload)
                continue
            live.apply(kind, payload)
            if kind == "started":
                self.table.mark_running(job_id, self.server_id, payload["total_steps"])
        if live.end is not None:
            self._finish(job_id, handle, live, now)
            return
        if not alive:
            for kind, payload in handle.messages():  # what it wrote before it went
                if kind == "result":
                    self._write_result(job_id, payload)
                else:
                    live.apply(kind, payload)
            if live.end is None:
                p = live.progress
                where = (f"during epoch {p.get('epoch', 0) + 1}, at step {p.get('global_step', 0):,}"
                         if p.get("global_step") else "before its first training step")
                live.end = {"status": "failed", "died": True,
                            "message": f"The training process {handle.death()} {where}; the run is lost."}
            self._finish(job_id, handle, live, now)
            return
        if write_progress:
            p = live.progress
            fields = dict(heartbeat=now, step=p.get("global_step", 0), total_steps=p.get("total_steps", 0),
                          epoch=p.get("epoch", 0),
                          progress=(p.get("global_step", 0) / p["total_steps"]) if p.get("total_steps") else 0.0)
            pid = handle.pid if job_id not in self._pid_written and self.limits.runner == "local" else None
            if pid:
                fields.update(worker_pid=pid, host=self.host)
                self._pid_written.add(job_id)
            self.table.update_held(job_id, self.server_id, **fields)
            self._write_losses(job_id, live)

    def _write_losses(self, job_id: str, live: LiveJob, final: bool = False) -> None:
        try:
            self._write_losses_now(job_id, live, final)
        except Exception as e:  # noqa: BLE001 - the board's figures must never keep a run from ending
            self._log(f"the losses of {job_id} were not written: {e!r}")

    def _write_losses_now(self, job_id: str, live: LiveJob, final: bool) -> None:
        """The newest losses (jobs.loss, eval_loss) and a thinned curve (job_points: about BOARD_POINTS points a
        run from its first step, and one at each epoch's end with its test loss), so that the teacher's board on
        any server can draw them. Called from the collect step, about once a second per running job, and once at
        its end."""
        import bisect

        with live.lock:
            steps, smooth = live.steps["step"], live.steps["loss_smooth"]
            if not steps:
                return
            step, loss = steps[-1], smooth[-1]
            last_step, last_epochs = live.board_mark
            spe = live.progress.get("steps_per_epoch") or 1
            total = live.progress.get("total_steps") or 0
            points = []
            for e, record in enumerate(live.epochs[last_epochs:], start=last_epochs):   # each new epoch's end
                at = min((e + 1) * spe, total or (e + 1) * spe)
                k = bisect.bisect_right(steps, at) - 1
                points.append((int(at), float(smooth[k]) if k >= 0 else None, float(record["eval"]["loss"])))
            eval_loss = live.epochs[-1]["eval"]["loss"] if live.epochs else None
            epochs = len(live.epochs)
        if not self.table.update_held(job_id, self.server_id, loss=float(loss),
                                      eval_loss=None if eval_loss is None else float(eval_loss)):
            return   # another server holds the row now (or it ended): its curve is no longer ours to write
        # the first step seen starts the curve: a run stopped inside its first 1/BOARD_POINTS (an epoch of a
        # 200-epoch run) still draws a line from its start to its end, not a lone dot
        now_due = step != last_step and (final or last_step < 0 or step - last_step >= max(1, total // BOARD_POINTS))
        if now_due:
            points.append((int(step), float(loss), None))   # merged with an epoch's point at the same step
        if points:
            self.table.add_points(job_id, sorted(points, key=lambda point: point[0]))
            live.board_mark = (step if now_due else last_step, epochs)

    def _finish(self, job_id: str, handle, live: LiveJob, now: float) -> None:
        end = live.end
        status, message = end["status"], end.get("message", "")
        with self._lock:
            reason = self._stop_reasons.pop(job_id, "")
            stop = self._stopping.pop(job_id, None)
            row = self._held.get(job_id)
            result_error = self._result_errors.pop(job_id, "")
            self._pid_written.discard(job_id)
        what = "view" if row is not None and row.kind == "view" else "run"
        if stop is not None and end.get("died") and stop.signal:
            waited = _duration(time.monotonic() - stop.since)
            status = "stopped"
            message = (f"{(reason or 'Stopped by request').rstrip('.')}; its process did not stop within {waited} "
                       f"of being asked, so it was ended with {stop.signal}"
                       + ("; its weights are lost." if what == "run" else "."))
        elif status == "stopped" and reason:
            current = self.table.get(job_id)
            kept = current is not None and bool(current.result_path)
            message = reason + ("; its last weights are kept, ready to save." if kept
                                else "; it had not trained yet, so there is nothing to save." if what == "run"
                                else ".")
        if result_error:
            status, message = "failed", result_error
        p = live.progress
        self._write_losses(job_id, live, final=True)
        with self._lock:  # before the table says "finished": whoever sees that sees no worker left
            self._handles.pop(job_id, None)
        self._write_held(job_id, status=status, message=message, finished=now, heartbeat=now,
                         step=p.get("global_step", 0), total_steps=p.get("total_steps", 0), epoch=p.get("epoch", 0),
                         progress=(p.get("global_step", 0) / p["total_steps"]) if p.get("total_steps") else 0.0)
        with self._lock:
            self._held.pop(job_id, None)
            self._finished_live.append(job_id)  # a class's worth of finished runs stays in memory; older ones
            while len(self._finished_live) > KEEP_FINISHED_IN_MEMORY:  # are drawn from their result files
                self._live.pop(self._finished_live.pop(0), None)
        threading.Thread(target=handle.kill, kwargs={"grace": 5.0}, daemon=True).start()  # reap it
        self._wake.set()  # a slot is free

    def _write_result(self, job_id: str, payload: dict) -> None:
        """The worker's result as a file in <folder>/.jobs/ (a checkpoint, what Save copies; a view's numbers as
        .npz). A file that cannot be written fails the job with a sentence naming the folder and its free space."""
        row = self._held.get(job_id)
        view = row is not None and row.kind == "view"
        try:
            self.results.mkdir(parents=True, exist_ok=True)
            if view:
                from .views import write_result
                path = write_result(self.results / f"{job_id}.npz", payload["view"])
            else:
                path = write_result_file(self.results / f"{job_id}.safetensors", payload, f"job-{job_id}")
        except Exception as e:  # noqa: BLE001 - a full disk, a read-only folder, weights that will not load back
            arrays = payload["view"] if view else {**payload.get("state", {}), **payload.get("extras", {})}
            size = format_bytes(sum(np.asarray(v).nbytes for v in arrays.values() if isinstance(v, (np.ndarray, list))))
            what = f"numbers ({size})" if view else f"weights ({size})"
            ended = "The view was computed" if view else "The run ended"
            if isinstance(e, OSError):
                why = f"{(e.strerror or str(e)).lower()}; {free_space(self.results)} on that disk"
            else:
                why = str(e).strip().rstrip(".") or type(e).__name__
            self._result_errors[job_id] = (f"{ended}, but its {what} could not be written to {self.results} ({why}), "
                                           "so there is nothing to save" + (". Free some space there and train again."
                                                                             if isinstance(e, OSError) and not view
                                                                             else "."))
            return
        self._write_held(job_id, result_path=str(path))

    def _write_held(self, job_id: str, **fields) -> bool:
        """Write a row this server holds; a row that vanished with the table (deleted or damaged, and started
        anew between two heartbeats) is put back first. False when another server holds it now."""
        if self.table.update_held(job_id, self.server_id, **fields):
            return True
        if job_id in self._held and self.table.get(job_id) is None:
            self.table.restore([self._restorable(job_id)], self.limits.lease_seconds)
            return self.table.update_held(job_id, self.server_id, **fields)
        return False

    # ------------------------------------------------------------------ retention
    def _clean_results(self, now: float) -> None:
        """Remove results in <folder>/.jobs/ that are older than result_retention_hours, and each person's
        unsaved run results beyond results_per_person (newest kept); the row then says so. Saved models live in
        the models folder and are never touched; files here that no row names are removed by age alone."""
        import re
        retention = self.limits.result_retention_hours * 3600
        per_person = self.limits.results_per_person
        unsaved: dict[str, int] = {}
        named: set[str] = set()
        results = self.results.resolve() if self.results.exists() else None
        if results is None:
            return
        for row in self.table.with_results():          # newest first
            path = Path(row.result_path)
            named.add(path.name)
            if path.parent.resolve() != results:
                continue
            age = now - (row.finished or row.created)
            over = False
            if row.kind != "view" and not row.saved_path:
                unsaved[row.owner] = unsaved.get(row.owner, 0) + 1
                over = unsaved[row.owner] > per_person
            if age > retention:
                note = (f"Its {'numbers were' if row.kind == 'view' else 'weights were'} removed "
                        f"{_hours(retention)} after it ended (finished runs keep them that long"
                        + ("; the saved model is untouched)." if row.saved_path else "; it was not saved)."))
            elif over:
                note = (f"Its weights were removed: each person keeps the results of their {per_person} newest "
                        "unsaved runs; save a run to keep it.")
            else:
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                self._log(f"could not remove {path}: {e}")
                continue
            self.table.update(row.id, result_path="", error=note)
            self._history_cache.pop(row.id, None)
        pattern = re.compile(r"^[0-9a-f]{12}\.(safetensors|npz)$")
        for f in results.iterdir():
            try:
                if f.name not in named and pattern.match(f.name) and now - f.stat().st_mtime > retention:
                    f.unlink()
            except OSError:
                continue

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, grace: float = 5.0) -> None:
        """Stop every run this server started (each keeps its weights when it gets the time) and the scheduler."""
        if self._closing.is_set():
            return
        with self._lock:
            handles = dict(self._handles)
        for job_id in handles:
            try:
                self.stop(job_id, "Stopped: the server shut down during this run")
            except JobStoreError:   # the table is unusable: the workers are still stopped below
                self._begin_stop(job_id, "Stopped: the server shut down during this run")
        end = time.monotonic() + grace
        while handles and time.monotonic() < end:
            self._wake.set()
            time.sleep(0.1)
            with self._lock:
                handles = dict(self._handles)
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=5)
        for job_id, handle in handles.items():  # did not stop in time
            handle.kill(grace=1.0)
            try:
                self.table.update_held(job_id, self.server_id, status="stopped", finished=time.time(),
                                       message="Stopped: the server shut down during this run.")
            except JobStoreError:
                pass
        if self.backend is not None:
            self.backend.shutdown()
        with _services_lock:
            for key, value in list(_services.items()):
                if value is self:
                    del _services[key]


def _readable_result(path: Path, kind: str) -> bool:
    try:
        if kind == "view":
            from .views import read_result
            read_result(path)
        else:
            from vae_core import read_record
            read_record(path)
        return True
    except Exception:  # noqa: BLE001 - a half-written or damaged file is no result
        return False


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{seconds / 60:g} minutes"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} minutes"


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def check_name(name: str) -> str:
    """A model name is 1-64 letters, digits, '-' and '_' (it becomes a file name)."""
    if not NAME_PATTERN.match(name or ""):
        raise ValueError("a model name may use only letters, digits, '-' and '_' (1 to 64 of them), "
                         f"like cvae_label_2d; got {name!r}")
    return name


_services: dict[tuple[str, str], JobService] = {}
_services_lock = threading.Lock()


def job_service(folder: str | Path) -> JobService:
    """The process's JobService for a models folder (created on first use, with limits read then)."""
    limits = read_limits()
    key = (str(Path(folder).resolve()), limits.runner)
    with _services_lock:
        service = _services.get(key)
        if service is None or service._closing.is_set():
            service = _services[key] = JobService(folder, limits)
        return service


def shutdown_all() -> None:
    with _services_lock:
        services = list(_services.values())
    for service in services:
        service.shutdown()

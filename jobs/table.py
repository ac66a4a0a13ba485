"""The job table: one SQLite file (stdlib sqlite3, WAL mode) beside the models folder, e.g. runs/jobs.sqlite.

It is the one truth for every server on the folder: a second port, a restart while the old process lingers,
or several servers behind a proxy all read and write the same rows.

A row per job: who owns it (an identity key, see ui/identity), its settings (JSON), where it stands (status,
progress, the lease of the server that runs it, the last time a page polled) and how it ended (result path,
a sentence). Every call opens its own short transaction. A check and the write it allows (a cap and the
insert, a free slot and the claim) happen in one `BEGIN IMMEDIATE` transaction (`transaction()`), so no
burst of threads or servers can beat a cap. The place in the queue is computed, never stored.

Schema versions (`PRAGMA user_version`), each a step in MIGRATIONS, all due steps applied in one transaction:
    1  the jobs table
    2  leases (lease_expires), the worker's pid and host, when a stop was asked, the owner's display name,
       the kind of job (train | view), the newest losses for a class overview, whether the result was saved;
       job_points (a thinned loss curve per job, readable by every server); people (class identities);
       published (models a teacher shared with the class)
    3  class_settings: a few named values the class's servers share (when the teacher last cleared the
       finished runs off the board)

Faults of the file are sentences, never tracebacks: every public method raises one error type,
`JobStoreError(sentence)`. A lock another program holds is waited on for BUSY_TIMEOUT_MS, then said; a read-only
file or folder says where and what to do; a table that disappeared (the file deleted or emptied while a server
ran) is created again, and a damaged file (not a database, or malformed) is moved aside to
`jobs.sqlite.corrupt-<time>` and a fresh one started; both recoveries are done once, under a lock on the folder
(every server on it agrees), the call that met them is retried, and a notice (`notice(path)`) says what
happened. Nothing else in the folder (saved models, results) is touched.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

ACTIVE = ("queued", "starting", "running", "stopping")
RUNNING = ("starting", "running", "stopping")
FINISHED = ("completed", "stopped", "diverged", "failed")
KINDS = ("train", "view")            # a training run, or a heavy Diagnose view computed as a job
BUSY_TIMEOUT_MS = 5000               # a writer waits this long for another's lock before it gives up
TOUCH_TIMEOUT_MS = 200               # a page's "I am watching" mark waits this long, then is skipped
NOTICE_SECONDS = 3600                # a recovery's notice is shown this long after it happened

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT UNIQUE NOT NULL,
    owner        TEXT NOT NULL,
    settings     TEXT NOT NULL,
    status       TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    backend      TEXT NOT NULL DEFAULT '',
    server       TEXT NOT NULL DEFAULT '',
    created      REAL NOT NULL,
    started      REAL,
    finished     REAL,
    progress     REAL NOT NULL DEFAULT 0,
    step         INTEGER NOT NULL DEFAULT 0,
    total_steps  INTEGER NOT NULL DEFAULT 0,
    epoch        INTEGER NOT NULL DEFAULT 0,
    heartbeat    REAL,
    last_poll    REAL,
    stop_reason  TEXT NOT NULL DEFAULT '',
    result_path  TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    hidden       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""

SCHEMA_V2 = """
ALTER TABLE jobs ADD COLUMN owner_name     TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN kind           TEXT NOT NULL DEFAULT 'train';
ALTER TABLE jobs ADD COLUMN lease_expires  REAL;
ALTER TABLE jobs ADD COLUMN worker_pid     INTEGER;
ALTER TABLE jobs ADD COLUMN host           TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN stop_requested REAL;
ALTER TABLE jobs ADD COLUMN loss           REAL;
ALTER TABLE jobs ADD COLUMN eval_loss      REAL;
ALTER TABLE jobs ADD COLUMN saved_path     TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS job_points (
    job_id     TEXT NOT NULL,
    step       INTEGER NOT NULL,
    loss       REAL,
    eval_loss  REAL,
    PRIMARY KEY (job_id, step)
);
CREATE TABLE IF NOT EXISTS people (
    key          TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL DEFAULT '',
    created      REAL NOT NULL,
    last_seen    REAL,
    released     REAL
);
CREATE TABLE IF NOT EXISTS published (
    path       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    by         TEXT NOT NULL,
    at         REAL NOT NULL
);
"""

SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS class_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""

MIGRATIONS = (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3)   # MIGRATIONS[i] takes the file from version i to version i + 1
VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class JobRow:
    seq: int
    id: str
    owner: str
    settings: dict
    status: str
    message: str
    backend: str
    server: str
    created: float
    started: float | None
    finished: float | None
    progress: float
    step: int
    total_steps: int
    epoch: int
    heartbeat: float | None
    last_poll: float | None
    stop_reason: str
    result_path: str
    error: str
    hidden: int
    owner_name: str = ""
    kind: str = "train"
    lease_expires: float | None = None
    worker_pid: int | None = None
    host: str = ""
    stop_requested: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    saved_path: str = ""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class Caps:
    """What one submission may not exceed, counted over the whole table (every server on the folder).

    max_runs / max_queued: the class's slots training at once and places in the line; runs_per_person /
    queued_per_person: one person's share of each (Slurm's per-user limits). None: no per-person cap."""

    max_runs: int
    max_queued: int
    runs_per_person: int | None = None
    queued_per_person: int | None = None


class Refused(ValueError):
    """A submission over a cap; the text is the sentence a page shows."""


class JobStoreError(RuntimeError):
    """The job table cannot be used now; the text is one sentence for the page (where, why, what to do)."""

    def __init__(self, sentence: str, kind: str = "other", recovered: bool = False):
        super().__init__(sentence)
        self.kind = kind              # busy | readonly | full | io | missing | corrupt | other
        self.recovered = recovered    # the fault was repaired (the table recreated): the call may be retried


# Per table file (resolved path), shared by every JobTable of this process on it: the newest repair's notice
# (time, sentence). A service puts back the running rows a repair lost when it next renews their leases.
_notices: dict[str, tuple[float, str]] = {}
_recovery_lock = threading.Lock()


def notice(path: str | Path, within: float = NOTICE_SECONDS) -> str | None:
    """The sentence of the newest recovery of the table at `path` in this process, if it is recent."""
    when, sentence = _notices.get(str(Path(path).resolve()), (0.0, ""))
    return sentence if sentence and time.time() - when <= within else None


def _guarded(method):
    """A public method of JobTable: SQLite's errors become one JobStoreError sentence; a missing or damaged table
    is repaired once and the call made again."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        for attempt in range(3):
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.Error, OSError, JobStoreError) as e:
                error = self._store_error(e, repair=attempt == 0)
                if attempt == 2 or not (error.recovered or error.kind == "io"):
                    raise error from None
                if error.kind == "io":   # a connection that met the file as it was moved aside: again, a moment later
                    time.sleep(0.05 * (attempt + 1))
    return call


class JobTable:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.key = str(self.path.resolve())
        self.start()

    def notice(self) -> str | None:
        return notice(self.path)

    # ------------------------------------------------------------------ connections and faults
    def _connect(self, timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=timeout_ms / 1000, isolation_level=None)  # autocommit
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={timeout_ms}")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def _db(self, timeout_ms: int = BUSY_TIMEOUT_MS) -> Iterator[sqlite3.Connection]:
        with closing(self._connect(timeout_ms)) as db:
            yield db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: the write lock is taken at the start, so what is read inside
        cannot change before the writes inside it commit (a count and the insert it allows are one step).
        A fault of the file is a JobStoreError (a missing or damaged table is repaired first: call again)."""
        try:
            db = self._connect()
        except (sqlite3.Error, OSError) as e:
            raise self._store_error(e) from None
        with closing(db):
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise self._store_error(e) from None
            try:
                yield db
            except BaseException as e:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(e, (sqlite3.Error, OSError)):
                    raise self._store_error(e) from None
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as e:
                raise self._store_error(e) from None

    def _store_error(self, e: BaseException, repair: bool = True) -> JobStoreError:
        """The sentence for a fault of the table file; a missing or damaged table is repaired here (once, under
        a lock every server on the folder takes), and the error then says `recovered`."""
        if isinstance(e, JobStoreError):
            return e
        kind = self._kind(e)
        if kind in ("missing", "corrupt") and repair:
            try:
                sentence = self._repair(kind, e)
            except (sqlite3.Error, OSError) as again:
                kind2 = self._kind(again)
                if kind2 in ("missing", "corrupt"):   # could not be repaired: say what is wrong
                    return JobStoreError(self._sentence("other", again), "other")
                return JobStoreError(self._sentence(kind2, again), kind2)
            return JobStoreError(sentence, kind, recovered=True)
        return JobStoreError(self._sentence(kind, e), kind)

    def _kind(self, e: BaseException) -> str:
        if isinstance(e, OSError):
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return "readonly"
            return "full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "io"
        code = getattr(e, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(e).lower()
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
            return "busy"
        if primary == sqlite3.SQLITE_READONLY or "readonly" in text:
            return "readonly"
        if primary == sqlite3.SQLITE_FULL:
            return "full"
        if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or "not a database" in text \
                or "malformed" in text:
            return "corrupt"
        if "no such table" in text:
            return "missing"
        if primary == sqlite3.SQLITE_CANTOPEN:
            if not self.path.parent.is_dir():
                return "missing"
            return "readonly" if not self._writable() else "io"
        if primary == sqlite3.SQLITE_IOERR:
            return "readonly" if not self._writable() else "io"
        return "other"

    def _writable(self) -> bool:
        folder = self.path.parent
        try:
            if os.statvfs(folder).f_flag & os.ST_RDONLY:
                return False
        except OSError:
            return False
        paths = [folder] + [p for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()]
        return all(os.access(p, os.W_OK) for p in paths)

    def _sentence(self, kind: str, e: BaseException) -> str:
        path, folder = self.path, self.path.parent
        if kind == "busy":
            return (f"The job table {path} is busy: another program has held its lock for over "
                    f"{BUSY_TIMEOUT_MS / 1000:g} s (a backup or copy of the file, or a hung process), so this could "
                    f"not be done. Try again in a moment; if it stays busy, find that program with `fuser {path}` "
                    "and end it.")
        if kind == "readonly":
            why = ("the file system holding it is mounted read-only" if _read_only_mount(folder) else
                   f"the file or its folder cannot be written by the user running the server (uid {os.getuid()})")
            return (f"The job table {path} is read-only ({why}), so runs cannot be started, followed or saved. "
                    f"Make {folder} and the files in it writable by that user (or move the models folder to a "
                    "writable disk), then reload this page.")
        if kind == "full":
            return (f"The job table {path} cannot be written: the disk holding {folder} is full "
                    f"({free_space(folder)}). Free some space there, then reload this page.")
        if kind == "io":
            return (f"The job table {path} could not be read or written ({_reason(e)}); check the disk holding "
                    f"{folder}, then reload this page.")
        return f"The job table {path} cannot be used ({_reason(e)})."

    def _repair(self, kind: str, cause: BaseException) -> str:
        """Start the table anew: recreate a missing one, move a damaged one aside. Under a lock on the folder,
        and only if the fault is still there (another thread or server may have repaired it meanwhile).
        Returns the notice."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        with _recovery_lock, _folder_lock(folder):
            still = self._fault_now()
            if still is None:      # repaired by someone else meanwhile
                return notice(self.path) or "The job table was repaired a moment ago."
            at = time.strftime("%H:%M:%S")
            if still == "corrupt":
                stamp = time.strftime("%Y%m%d-%H%M%S")
                aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
                n = 1
                while aside.exists():
                    n += 1
                    aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
                os.replace(self.path, aside)
                wal = Path(f"{self.path}-wal")
                if wal.exists():
                    os.replace(wal, Path(f"{aside}-wal"))
                Path(f"{self.path}-shm").unlink(missing_ok=True)
                self._migrate()
                sentence = (f"The job table {self.path} was damaged ({_reason(cause)}); at {at} it was moved aside to "
                            f"{aside.name} and a new one was started. Runs listed before are no longer listed; saved "
                            "models are untouched, and runs training on this server carry on.")
            else:
                self._migrate(reset_if_missing=True)
                sentence = (f"The job table {self.path} had disappeared (the file was deleted or emptied while the "
                            f"server ran); at {at} a new one was started. Runs listed before are no longer listed; "
                            "saved models are untouched, and runs training on this server carry on.")
            _notices[self.key] = (time.time(), sentence)
            return sentence

    def _fault_now(self) -> str | None:
        """'missing' or 'corrupt' when the table is so now, else None (looked at afresh)."""
        if not self.path.exists():
            return "missing"
        try:
            with self._db() as db:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                if not _has_table(db, "jobs"):
                    return "missing"
                db.execute("SELECT COUNT(*) FROM jobs").fetchone()
        except sqlite3.Error as e:
            kind = self._kind(e)
            if kind in ("missing", "corrupt"):
                return kind
            raise
        return None

    def start(self) -> None:
        """Open the table: create the folder and the file, bring the schema to VERSION (faults as sentences)."""
        self._start()

    @_guarded
    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()
        with self._db() as db:   # a damaged page deeper in the file shows here, not in a visitor's page
            db.execute("SELECT COUNT(*) FROM jobs").fetchone()

    def migrate(self) -> None:
        """Bring the file to VERSION, all steps in one transaction (a second server doing the same waits)."""
        self._guarded_migrate()

    @_guarded
    def _guarded_migrate(self) -> None:
        self._migrate()

    def _migrate(self, reset_if_missing: bool = False) -> None:
        """Every step from the file's version to VERSION in one transaction: a reader on another thread or
        server sees the table as it was or as it is after the last step, never between two steps."""
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if reset_if_missing and not _has_table(db, "jobs"):
                    version = 0   # the jobs table was dropped under a current version number: build it again
                if version == 0 and _has_table(db, "jobs") and not _has_column(db, "jobs", "owner_name"):
                    version = 1   # a file made before versions were numbered holds version 1's table
                while version < VERSION:
                    for statement in _statements(MIGRATIONS[version]):
                        db.execute(statement)
                    version += 1
                    db.execute(f"PRAGMA user_version={version}")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple = ()) -> list[JobRow]:
        with self._db() as db:
            return [_row(r) for r in db.execute(sql, args).fetchall()]

    @_guarded
    def use(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """fn(db) on a connection of its own (autocommit), for modules that keep their own tables in this file
        (jobs/classroom.py): its faults are JobStoreError sentences, as every method's (a missing or damaged
        table repaired and fn called again)."""
        with self._db() as db:
            return fn(db)

    # ------------------------------------------------------------------ writes
    @_guarded
    def add(self, owner: str, settings: dict, status: str = "queued", backend: str = "", server: str = "",
            *, owner_name: str = "", kind: str = "train", caps: Caps | None = None) -> str:
        """Insert a job; with `caps`, only if it stays within them (checked and inserted in one transaction;
        Refused with a sentence otherwise)."""
        job_id = secrets.token_hex(6)
        now = time.time()
        with self.transaction() as db:
            if caps is not None:
                _check_caps(db, owner, caps)
            db.execute("INSERT INTO jobs (id, owner, owner_name, kind, settings, status, backend, server, created, "
                       "last_poll) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, owner, owner_name, kind, json.dumps(settings), status, backend, server, now, now))
        return job_id

    @_guarded
    def update(self, job_id: str, **fields) -> None:
        if not fields:
            return
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._db() as db:
            db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    @_guarded
    def update_held(self, job_id: str, server: str, **fields) -> bool:
        """Update a job only while `server` holds it (it is active and its row names that server): a server
        whose lease was taken over writes nothing more. True when the row was written."""
        if not fields:
            return False
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._db() as db:
            cur = db.execute(f"UPDATE jobs SET {names} WHERE id = ? AND server = ? AND status IN "
                             "('starting', 'running', 'stopping')", (*fields.values(), job_id, server))
            return cur.rowcount == 1

    @_guarded
    def leave_queue(self, job_id: str, message: str) -> bool:
        """A queued job leaves the line (stopped, with `message`); False when it was no longer waiting."""
        with self._db() as db:
            cur = db.execute("UPDATE jobs SET status = 'stopped', finished = ?, message = ? WHERE id = ? AND "
                             "status = 'queued'", (time.time(), message, job_id))
            return cur.rowcount == 1

    @_guarded
    def request_stop(self, job_id: str, reason: str = "") -> bool:
        """Ask a running job to stop (status 'stopping', the time of the first request kept, and the reason when
        one is given); the server holding it sees the row and stops its worker. False when it is not running."""
        with self._db() as db:
            cur = db.execute("UPDATE jobs SET status = 'stopping', stop_requested = COALESCE(stop_requested, ?), "
                             "stop_reason = CASE WHEN ? != '' THEN ? ELSE stop_reason END WHERE id = ? AND status IN "
                             "('starting', 'running', 'stopping')", (time.time(), reason, reason, job_id))
            return cur.rowcount == 1

    @_guarded
    def mark_running(self, job_id: str, server: str, total_steps: int) -> bool:
        """The worker has started training: 'starting' becomes 'running' (a stop asked meanwhile stays)."""
        now = time.time()
        with self._db() as db:
            cur = db.execute("UPDATE jobs SET status = CASE WHEN status = 'starting' THEN 'running' ELSE status END, "
                             "total_steps = ?, heartbeat = ? WHERE id = ? AND server = ? AND status IN "
                             "('starting', 'running', 'stopping')", (total_steps, now, job_id, server))
            return cur.rowcount == 1

    @_guarded
    def restore(self, rows: list[JobRow], lease_seconds: float) -> int:
        """Put rows back (as they were, under a fresh lease) into a table that was started anew while their
        runs trained; rows already there are left alone. Returns how many were put back."""
        now = time.time()
        put = 0
        with self.transaction() as db:
            for row in rows:
                values = {**row.__dict__, "settings": json.dumps(row.settings), "lease_expires": now + lease_seconds,
                          "heartbeat": now, "last_poll": now}
                values.pop("seq")
                names = ", ".join(values)
                cur = db.execute(f"INSERT OR IGNORE INTO jobs ({names}) VALUES ({','.join('?' * len(values))})",
                                 tuple(values.values()))
                put += cur.rowcount
        return put

    @_guarded
    def claim(self, job_id: str, status: str, server: str, lease_seconds: float | None = None) -> bool:
        """Move a queued job to `status` for this server; False if someone else got it first (or it was stopped)."""
        now = time.time()
        lease = None if lease_seconds is None else now + lease_seconds
        with self._db() as db:
            cur = db.execute("UPDATE jobs SET status = ?, server = ?, started = ?, lease_expires = ? "
                             "WHERE id = ? AND status = 'queued'", (status, server, now, lease, job_id))
            return cur.rowcount == 1

    @_guarded
    def claim_next(self, server: str, max_runs: int, lease_seconds: float, *,
                   runs_per_person: int | None = None, kinds: tuple[str, ...] = KINDS) -> JobRow | None:
        """The oldest queued job that may start now, moved to 'starting' under this server's lease; None when
        the class's slots are all taken (counted over the whole table) or nobody waiting may start (each
        person's running jobs are at their share). One transaction: two servers never fill one slot twice."""
        now = time.time()
        with self.transaction() as db:
            running = _count(db, "status IN ('starting', 'running', 'stopping')")
            if running >= max_runs:
                return None
            per_owner = dict(db.execute("SELECT owner, COUNT(*) FROM jobs WHERE status IN "
                                        "('starting', 'running', 'stopping') GROUP BY owner").fetchall())
            marks = ",".join("?" * len(kinds))
            for r in db.execute(f"SELECT * FROM jobs WHERE status = 'queued' AND kind IN ({marks}) ORDER BY seq",
                                kinds).fetchall():
                if runs_per_person is not None and per_owner.get(r["owner"], 0) >= runs_per_person:
                    continue
                db.execute("UPDATE jobs SET status = 'starting', server = ?, started = ?, lease_expires = ? "
                           "WHERE id = ?", (server, now, now + lease_seconds, r["id"]))
                return _row(db.execute("SELECT * FROM jobs WHERE id = ?", (r["id"],)).fetchone())
        return None

    @_guarded
    def renew(self, server: str, job_ids: list[str], lease_seconds: float) -> list[str]:
        """Extend this server's lease on its running rows; returns the ids it still holds (a row another
        server took over after this one's lease expired is no longer this server's)."""
        if not job_ids:
            return []
        now = time.time()
        marks = ",".join("?" * len(job_ids))
        with self.transaction() as db:
            db.execute(f"UPDATE jobs SET lease_expires = ?, heartbeat = ? WHERE server = ? AND id IN ({marks}) "
                       "AND status IN ('starting', 'running', 'stopping')", (now + lease_seconds, now, server, *job_ids))
            held = db.execute(f"SELECT id FROM jobs WHERE server = ? AND id IN ({marks}) AND status IN "
                              "('starting', 'running', 'stopping')", (server, *job_ids)).fetchall()
        return [r["id"] for r in held]

    @_guarded
    def expired(self, now: float | None = None) -> list[JobRow]:
        """Running rows whose server's lease has run out (that server is gone or hung): the ones another
        server may end. Rows without a lease (written before leases existed) count as expired."""
        now = time.time() if now is None else now
        return self._rows("SELECT * FROM jobs WHERE status IN ('starting', 'running', 'stopping') AND "
                          "(lease_expires IS NULL OR lease_expires < ?) ORDER BY seq", (now,))

    @_guarded
    def end_if_expired(self, job_id: str, status: str, message: str, now: float | None = None, **fields) -> bool:
        """Finish a row whose lease expired (one transaction: a renewal that came in time wins); `fields` are
        written with it (a result the run's worker left, say)."""
        now = time.time() if now is None else now
        extra = "".join(f", {k} = ?" for k in fields)
        with self._db() as db:
            cur = db.execute(f"UPDATE jobs SET status = ?, message = ?, finished = ?{extra} WHERE id = ? AND status "
                             "IN ('starting', 'running', 'stopping') AND (lease_expires IS NULL OR lease_expires < ?)",
                             (status, message, now, *fields.values(), job_id, now))
            return cur.rowcount == 1

    @_guarded
    def touch(self, job_ids: list[str]) -> None:
        """The page looked at these jobs now (best effort: when another program holds the lock, the mark is
        skipped after TOUCH_TIMEOUT_MS rather than keeping the page waiting; the next poll marks them)."""
        if not job_ids:
            return
        try:
            with self._db(TOUCH_TIMEOUT_MS) as db:
                db.execute(f"UPDATE jobs SET last_poll = ? WHERE id IN ({','.join('?' * len(job_ids))})",
                           (time.time(), *job_ids))
        except sqlite3.OperationalError as e:
            if self._kind(e) != "busy":
                raise

    @_guarded
    def add_points(self, job_id: str, points: list[tuple[int, float | None, float | None]]) -> None:
        """Append (step, loss, eval_loss) points of a job's curve; a step already stored takes the new values
        that are not None (an epoch's test loss and a training loss at the same step make one point)."""
        if not points:
            return
        with self._db() as db:
            db.executemany("INSERT INTO job_points (job_id, step, loss, eval_loss) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT(job_id, step) DO UPDATE SET loss = COALESCE(excluded.loss, loss), "
                           "eval_loss = COALESCE(excluded.eval_loss, eval_loss)", [(job_id, *p) for p in points])

    # ------------------------------------------------------------------ reads
    @_guarded
    def get(self, job_id: str) -> JobRow | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    @_guarded
    def of_owner(self, owner: str, limit: int = 20, kind: str | None = "train") -> list[JobRow]:
        """The owner's jobs of one kind (None: every kind), newest first (hidden ones left out)."""
        if kind is None:
            return self._rows("SELECT * FROM jobs WHERE owner = ? AND hidden = 0 ORDER BY seq DESC LIMIT ?",
                              (owner, limit))
        return self._rows("SELECT * FROM jobs WHERE owner = ? AND hidden = 0 AND kind = ? ORDER BY seq DESC LIMIT ?",
                          (owner, kind, limit))

    @_guarded
    def with_status(self, *statuses: str) -> list[JobRow]:
        """Jobs in any of `statuses`, in the order they were submitted."""
        return self._rows(f"SELECT * FROM jobs WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY seq",
                          statuses)

    @_guarded
    def held_by(self, server: str) -> list[JobRow]:
        """The active rows a server holds."""
        return self._rows("SELECT * FROM jobs WHERE server = ? AND status IN ('starting', 'running', 'stopping') "
                          "ORDER BY seq", (server,))

    @_guarded
    def with_results(self) -> list[JobRow]:
        """Finished jobs that still have a result file, the most recently finished first (what retention reads)."""
        return self._rows("SELECT * FROM jobs WHERE result_path != '' AND status IN "
                          "('completed', 'stopped', 'diverged', 'failed') ORDER BY COALESCE(finished, created) DESC")

    @_guarded
    def find_view(self, key: str) -> JobRow | None:
        """The newest view job computing `key` (settings.view_key) that is active or completed, if any."""
        rows = self._rows("SELECT * FROM jobs WHERE kind = 'view' AND json_extract(settings, '$.view_key') = ? "
                          "AND status IN ('queued', 'starting', 'running', 'stopping', 'completed') "
                          "ORDER BY seq DESC LIMIT 1", (key,))
        return rows[0] if rows else None

    @_guarded
    def recent(self, limit: int = 200) -> list[JobRow]:
        """Every job, active ones first, then the newest finished (a class overview)."""
        return self._rows("SELECT * FROM jobs ORDER BY (status IN ('queued', 'starting', 'running', 'stopping')) "
                          "DESC, seq DESC LIMIT ?", (limit,))

    @_guarded
    def points(self, job_ids: list[str]) -> dict[str, list[tuple[int, float | None, float | None]]]:
        """The stored curve points of these jobs: {job id: [(step, loss, eval_loss), ...]} in step order."""
        out: dict[str, list] = {j: [] for j in job_ids}
        if not job_ids:
            return out
        with self._db() as db:
            for r in db.execute(f"SELECT job_id, step, loss, eval_loss FROM job_points WHERE job_id IN "
                                f"({','.join('?' * len(job_ids))}) ORDER BY job_id, step", job_ids):
                out[r["job_id"]].append((r["step"], r["loss"], r["eval_loss"]))
        return out

    @_guarded
    def place_in_queue(self, job_id: str) -> int:
        """1 for the next job to start, 0 when the job is not waiting."""
        with self._db() as db:
            row = db.execute("SELECT seq, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] != "queued":
                return 0
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq <= ?",
                              (row["seq"],)).fetchone()[0]


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder (flock on the directory itself: no file to create), held by one thread
    of one process on this machine at a time."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def free_space(folder: Path) -> str:
    """'12.3 MB free of 1.0 GB' for the disk holding `folder` (or its nearest existing parent)."""
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return "its free space could not be read"
    return f"{format_bytes(usage.free)} free of {format_bytes(usage.total)}"


def format_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _reason(e: BaseException) -> str:
    text = (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip().splitlines()[0]
    return text[:200].rstrip(".")


def _check_caps(db: sqlite3.Connection, owner: str, caps: Caps) -> None:
    """Refused with a sentence when one more queued job of `owner` would break a cap (inside a transaction)."""
    running = _count(db, "status IN ('starting', 'running', 'stopping')")
    queued = _count(db, "status = 'queued'")
    mine_running = _count(db, "status IN ('starting', 'running', 'stopping') AND owner = ?", (owner,))
    mine_queued = _count(db, "status = 'queued' AND owner = ?", (owner,))
    if caps.runs_per_person is not None and caps.queued_per_person is not None:
        if mine_running + mine_queued >= caps.runs_per_person + caps.queued_per_person:
            have = " and ".join(p for p in (_runs(mine_running, "training"), _runs(mine_queued, "waiting")) if p)
            raise Refused(f"You already have {have}; each person may have {caps.runs_per_person} training and "
                          f"{caps.queued_per_person} waiting. Stop one, or wait for one to finish.")
    free_slots = max(0, caps.max_runs - running)
    if queued - free_slots >= caps.max_queued:
        raise Refused(f"The queue is full ({queued} runs waiting, {running} training); try again when one has "
                      "finished.")


def _runs(n: int, what: str) -> str:
    return f"{n} run{'s' * (n != 1)} {what}" if n else ""


def _count(db: sqlite3.Connection, where: str, args: tuple = ()) -> int:
    return db.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args).fetchone()[0]


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(r["name"] == column for r in db.execute(f"PRAGMA table_info({table})"))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _row(r: sqlite3.Row) -> JobRow:
    values = dict(r)
    values["settings"] = json.loads(values["settings"])
    return JobRow(**values)

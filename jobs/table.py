"""The job table: one SQLite file (stdlib sqlite3, WAL mode) beside the models folder, e.g. runs/jobs.sqlite.

It is the one truth for every server on the folder: a second port, a restart while the old process lingers,
or several servers behind a proxy all read and write the same rows.

A row per job: who owns it (an identity key, see ui/identity), its settings (JSON), where it stands (status,
progress, the lease of the server that runs it, the last time a page polled) and how it ended (result path,
a sentence). Every call opens its own short transaction. A check and the write it allows (a cap and the
insert, a free slot and the claim) happen in one `BEGIN IMMEDIATE` transaction (`transaction()`), so no
burst of threads or servers can beat a cap. The place in the queue is computed, never stored.

Schema versions (`PRAGMA user_version`), each a step in MIGRATIONS applied in one transaction:
    1  the jobs table
    2  leases (lease_expires), the worker's pid and host, when a stop was asked, the owner's display name,
       the kind of job (train | view), the newest losses for a class overview, whether the result was saved;
       job_points (a thinned loss curve per job, readable by every server); people (class identities);
       published (models a teacher shared with the class)
    3  class_settings: a few named values the class's servers share (when the teacher last cleared the
       finished runs off the board)
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ACTIVE = ("queued", "starting", "running", "stopping")
RUNNING = ("starting", "running", "stopping")
FINISHED = ("completed", "stopped", "diverged", "failed")
KINDS = ("train", "view")            # a training run, or a heavy Diagnose view computed as a job
BUSY_TIMEOUT_MS = 5000               # a writer waits this long for another's lock before it gives up

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


class JobTable:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    # ------------------------------------------------------------------ connections and transactions
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)  # autocommit
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: the write lock is taken at the start, so what is read inside
        cannot change before the writes inside it commit (a count and the insert it allows are one step)."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def migrate(self) -> None:
        """Bring the file to VERSION, one step per transaction (a second server doing the same waits)."""
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
        while True:
            with self.transaction() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version == 0 and _has_table(db, "jobs") and not _has_column(db, "jobs", "owner_name"):
                    version = 1   # a file made before versions were numbered holds version 1's table
                if version >= VERSION:
                    return
                for statement in _statements(MIGRATIONS[version]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={version + 1}")

    def _rows(self, sql: str, args: tuple = ()) -> list[JobRow]:
        with closing(self._connect()) as db:
            return [_row(r) for r in db.execute(sql, args).fetchall()]

    # ------------------------------------------------------------------ writes
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

    def update(self, job_id: str, **fields) -> None:
        if not fields:
            return
        names = ", ".join(f"{k} = ?" for k in fields)
        with closing(self._connect()) as db:
            db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def claim(self, job_id: str, status: str, server: str, lease_seconds: float | None = None) -> bool:
        """Move a queued job to `status` for this server; False if someone else got it first (or it was stopped)."""
        now = time.time()
        lease = None if lease_seconds is None else now + lease_seconds
        with closing(self._connect()) as db:
            cur = db.execute("UPDATE jobs SET status = ?, server = ?, started = ?, lease_expires = ? "
                             "WHERE id = ? AND status = 'queued'", (status, server, now, lease, job_id))
            return cur.rowcount == 1

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

    def expired(self, now: float | None = None) -> list[JobRow]:
        """Running rows whose server's lease has run out (that server is gone or hung): the ones another
        server may end. Rows without a lease (written before leases existed) count as expired."""
        now = time.time() if now is None else now
        return self._rows("SELECT * FROM jobs WHERE status IN ('starting', 'running', 'stopping') AND "
                          "(lease_expires IS NULL OR lease_expires < ?) ORDER BY seq", (now,))

    def end_if_expired(self, job_id: str, status: str, message: str, now: float | None = None) -> bool:
        """Finish a row whose lease expired (one transaction: a renewal that came in time wins)."""
        now = time.time() if now is None else now
        with closing(self._connect()) as db:
            cur = db.execute("UPDATE jobs SET status = ?, message = ?, finished = ? WHERE id = ? AND status IN "
                             "('starting', 'running', 'stopping') AND (lease_expires IS NULL OR lease_expires < ?)",
                             (status, message, now, job_id, now))
            return cur.rowcount == 1

    def touch(self, job_ids: list[str]) -> None:
        """The page looked at these jobs now."""
        if not job_ids:
            return
        with closing(self._connect()) as db:
            db.execute(f"UPDATE jobs SET last_poll = ? WHERE id IN ({','.join('?' * len(job_ids))})",
                       (time.time(), *job_ids))

    def add_points(self, job_id: str, points: list[tuple[int, float | None, float | None]]) -> None:
        """Append (step, loss, eval_loss) points of a job's curve; a step already stored takes the new values
        that are not None (an epoch's test loss and a training loss at the same step make one point)."""
        if not points:
            return
        with closing(self._connect()) as db:
            db.executemany("INSERT INTO job_points (job_id, step, loss, eval_loss) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT(job_id, step) DO UPDATE SET loss = COALESCE(excluded.loss, loss), "
                           "eval_loss = COALESCE(excluded.eval_loss, eval_loss)", [(job_id, *p) for p in points])

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> JobRow | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def of_owner(self, owner: str, limit: int = 20) -> list[JobRow]:
        """The owner's jobs, newest first (hidden ones left out)."""
        return self._rows("SELECT * FROM jobs WHERE owner = ? AND hidden = 0 ORDER BY seq DESC LIMIT ?",
                          (owner, limit))

    def with_status(self, *statuses: str) -> list[JobRow]:
        """Jobs in any of `statuses`, in the order they were submitted."""
        return self._rows(f"SELECT * FROM jobs WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY seq",
                          statuses)

    def recent(self, limit: int = 200) -> list[JobRow]:
        """Every job, active ones first, then the newest finished (a class overview)."""
        return self._rows("SELECT * FROM jobs ORDER BY (status IN ('queued', 'starting', 'running', 'stopping')) "
                          "DESC, seq DESC LIMIT ?", (limit,))

    def points(self, job_ids: list[str]) -> dict[str, list[tuple[int, float | None, float | None]]]:
        """The stored curve points of these jobs: {job id: [(step, loss, eval_loss), ...]} in step order."""
        out: dict[str, list] = {j: [] for j in job_ids}
        if not job_ids:
            return out
        with closing(self._connect()) as db:
            for r in db.execute(f"SELECT job_id, step, loss, eval_loss FROM job_points WHERE job_id IN "
                                f"({','.join('?' * len(job_ids))}) ORDER BY job_id, step", job_ids):
                out[r["job_id"]].append((r["step"], r["loss"], r["eval_loss"]))
        return out

    def place_in_queue(self, job_id: str) -> int:
        """1 for the next job to start, 0 when the job is not waiting."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT seq, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] != "queued":
                return 0
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq <= ?",
                              (row["seq"],)).fetchone()[0]


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

"""The job table: one SQLite file (stdlib sqlite3, WAL mode) beside the models folder, e.g. runs/jobs.sqlite.

A row per job: who owns it (a per-browser token), its settings (JSON), where it stands (status, progress,
heartbeat of its worker, the last time its page polled) and how it ended (result path, a sentence).
Every call opens its own short transaction, so the page, the scheduler thread and a second server can
share the file. The place in the queue is computed from the order of submission, never stored.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

ACTIVE = ("queued", "starting", "running", "stopping")
RUNNING = ("starting", "running", "stopping")
FINISHED = ("completed", "stopped", "diverged", "failed")

SCHEMA = """
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

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class JobTable:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=15, isolation_level=None)  # autocommit: one statement, one write
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _rows(self, sql: str, args: tuple = ()) -> list[JobRow]:
        with closing(self._connect()) as db:
            return [_row(r) for r in db.execute(sql, args).fetchall()]

    # ------------------------------------------------------------------ writes
    def add(self, owner: str, settings: dict, status: str = "queued", backend: str = "", server: str = "") -> str:
        job_id = secrets.token_hex(6)
        with closing(self._connect()) as db:
            db.execute("INSERT INTO jobs (id, owner, settings, status, backend, server, created, last_poll) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, owner, json.dumps(settings), status, backend, server, time.time(), time.time()))
        return job_id

    def update(self, job_id: str, **fields) -> None:
        if not fields:
            return
        names = ", ".join(f"{k} = ?" for k in fields)
        with closing(self._connect()) as db:
            db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def claim(self, job_id: str, status: str, server: str) -> bool:
        """Move a queued job to `status` for this server; False if someone else got it first (or it was stopped)."""
        with closing(self._connect()) as db:
            cur = db.execute("UPDATE jobs SET status = ?, server = ?, started = ? WHERE id = ? AND status = 'queued'",
                             (status, server, time.time(), job_id))
            return cur.rowcount == 1

    def touch(self, job_ids: list[str]) -> None:
        """The page looked at these jobs now."""
        if not job_ids:
            return
        with closing(self._connect()) as db:
            db.execute(f"UPDATE jobs SET last_poll = ? WHERE id IN ({','.join('?' * len(job_ids))})",
                       (time.time(), *job_ids))

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

    def place_in_queue(self, job_id: str) -> int:
        """1 for the next job to start, 0 when the job is not waiting."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT seq, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] != "queued":
                return 0
            return db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq <= ?",
                              (row["seq"],)).fetchone()[0]


def _row(r: sqlite3.Row) -> JobRow:
    values = dict(r)
    values["settings"] = json.loads(values["settings"])
    return JobRow(**values)

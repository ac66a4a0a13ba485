"""Who is who in a class, and what belongs to whom: the logic behind sign-in, fair shares and owned models,
without streamlit (ui/identity.py is the page side; docs/CLASSROOM.md the teacher's).

A Person has a key (what owns runs and models), a name to show and a kind:

    solo     nobody signs in (one person on a laptop): each browser is a person, keyed by a random token the
             browser keeps in a cookie ("browser:<token>"); models saved straight into runs/, as before
    oidc     Streamlit's st.login ([auth] in .streamlit/secrets.toml); key "oidc:<subject>"
    class    a class code and a name ([class] code in .streamlit/latent_lab.toml); key "class:<name folded>"

A class-code name is held by one browser: signing in issues a random secret, of which the people table keeps
only a SHA-256 hash, and the browser keeps the secret (a cookie, `cookie_value`). Typing a classmate's name
without their secret is refused with a sentence; the teacher can release a name (its secret stops working, the
next person to sign in with it gets a new one, and with it the name's runs and models).

A saved model lives in its owner's folder, runs/<folder_name(key)>/; `owner_of` reads that back from a path.
Students see their own models, the ones the teacher published and the shipped ones; teachers see all
(`visible`). The published table names the models shared with the class.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .limits import ClassSettings
from .table import FINISHED, JobTable

SOLO_KEY = "solo"
KINDS = ("solo", "oidc", "class", "teacher")   # people.kind: "teacher" is a class-code teacher
NAME_MAX = 40
NAME_PATTERN = re.compile(r"^[\w][\w .'-]*$")  # letters (any script), digits, spaces, . ' - _
COOKIE = "latent_lab_person"            # a class-code person: key and secret
BROWSER_COOKIE = "latent_lab_browser"   # nobody signs in: this browser's own random token
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SEEN_EVERY = 60.0     # s between two writes of a person's last_seen


class SignInError(ValueError):
    """A sign-in that cannot go through; the text is the one sentence the form shows."""


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    kind: str = "solo"
    teacher: bool = False

    @property
    def solo(self) -> bool:
        return self.kind == "solo"

    @property
    def folder_name(self) -> str:
        return folder_name(self.key)


SOLO = Person(SOLO_KEY, "you", "solo")


def browser_person(token: str) -> Person:
    """The person of a browser where nobody signs in."""
    return Person("browser:" + token, "you", "solo")


def new_browser_token() -> str:
    return secrets.token_urlsafe(18)


# ---------------------------------------------------------------------------- names, keys, folders, secrets
def clean_name(raw: str) -> str:
    """The name as it will be shown: NFKC, inner spaces collapsed; SignInError with a sentence when unusable."""
    name = " ".join(unicodedata.normalize("NFKC", raw or "").split())
    if not name:
        raise SignInError("Type your name (as your classmates know it) to sign in.")
    if len(name) > NAME_MAX or not NAME_PATTERN.match(name):
        raise SignInError(f"A name may use letters, digits, spaces, dots, apostrophes and hyphens, at most {NAME_MAX} "
                          f"characters; got {raw.strip()[:60]!r}.")
    return name


def class_key(name: str) -> str:
    """The key of a class-code name: 'Ada  Lovelace' and 'ada lovelace' are one person."""
    return "class:" + clean_name(name).casefold()


def oidc_key(subject: str) -> str:
    return "oidc:" + subject


def folder_name(key: str) -> str:
    """A person's models folder: readable, safe as a file name, and unique (a short hash of the key)."""
    if key == SOLO_KEY or key.startswith("browser:"):
        return ""
    shown = key.split(":", 1)[-1].casefold()
    slug = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", shown).encode("ascii", "ignore").decode())
    return f"{slug.strip('-')[:24] or 'person'}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"


def owner_folder(base: str | Path, person: Person) -> Path:
    """Where `person` saves models: base itself for one person on a laptop, else base/<their folder>."""
    return Path(base) if person.solo else Path(base) / person.folder_name


def owner_of(path: str | Path, base: str | Path) -> str | None:
    """The folder name of the owner of a model file under `base` (None: a shared file, directly in base or
    elsewhere, such as a shipped checkpoint)."""
    path, base = Path(path), Path(base)
    try:
        rel = path.resolve().relative_to(base.resolve())
    except (ValueError, OSError):
        return None
    return rel.parts[0] if len(rel.parts) == 2 and not rel.parts[0].startswith(".") else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def cookie_value(key: str, secret: str) -> str:
    """What the browser keeps: the key (base64, cookie-safe) and the secret."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=") + "." + secret


def parse_cookie(value: str | None) -> tuple[str, str] | None:
    """(key, secret) from a cookie value, or None when it is not one of ours."""
    if not value or "." not in value or len(value) > 600:
        return None
    head, secret = value.rsplit(".", 1)
    try:
        key = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (key, secret) if key.startswith("class:") and secret else None


# ---------------------------------------------------------------------------- the people of a class
@dataclass(frozen=True)
class PersonRow:
    key: str
    name: str
    kind: str
    holds_secret: bool
    created: float
    last_seen: float | None
    released: float | None

    @property
    def folder_name(self) -> str:
        return folder_name(self.key)


class Roster:
    """The people table of one runs folder (jobs.sqlite): class-code sign-in, release, and every person seen."""

    def __init__(self, table: JobTable):
        self.table = table

    def sign_in(self, name: str, code: str, settings: ClassSettings) -> tuple[Person, str]:
        """A class-code sign-in: (the person, the secret for their browser). SignInError with a sentence for
        a wrong code or a name another browser holds. The check and the write are one transaction, so two
        browsers typing one name at once cannot both get it."""
        typed = (code or "").strip()
        if settings.teacher_code and hmac.compare_digest(typed.encode(), settings.teacher_code.encode()):
            kind = "teacher"
        elif settings.code and hmac.compare_digest(typed.encode(), settings.code.encode()):
            kind = "class"
        else:
            raise SignInError("That is not this class's code; ask your teacher for it.")
        shown = clean_name(name)
        key = class_key(shown)
        secret = secrets.token_urlsafe(24)
        now = time.time()
        with self.table.transaction() as db:
            row = db.execute("SELECT * FROM people WHERE key = ?", (key,)).fetchone()
            if row is not None and row["secret_hash"] and row["released"] is None:
                raise SignInError(f"The name {shown!r} is already signed in on another browser. Add a letter of "
                                  "your surname, or ask your teacher to release the name.")
            if row is None:
                db.execute("INSERT INTO people (key, name, kind, secret_hash, created, last_seen) VALUES "
                           "(?, ?, ?, ?, ?, ?)", (key, shown, kind, hash_secret(secret), now, now))
            else:
                db.execute("UPDATE people SET name = ?, kind = ?, secret_hash = ?, last_seen = ?, released = NULL "
                           "WHERE key = ?", (shown, kind, hash_secret(secret), now, key))
        return Person(key, shown, "class", kind == "teacher"), secret

    def check(self, cookie: str | None) -> Person | None:
        """The person a browser's cookie names, when its secret still holds (None: sign in again)."""
        parsed = parse_cookie(cookie)
        if parsed is None:
            return None
        key, secret = parsed
        with closing(self.table._connect()) as db:
            row = db.execute("SELECT * FROM people WHERE key = ?", (key,)).fetchone()
        if (row is None or row["released"] is not None or not row["secret_hash"]
                or not hmac.compare_digest(row["secret_hash"], hash_secret(secret))):
            return None
        return Person(key, row["name"], "class", row["kind"] == "teacher")

    def seen(self, person: Person) -> None:
        """Note that `person` is here (and, for a signed-in OIDC person, their name for the board)."""
        now = time.time()
        with closing(self.table._connect()) as db:
            if person.kind == "class":
                db.execute("UPDATE people SET last_seen = ? WHERE key = ?", (now, person.key))
            else:
                db.execute("INSERT INTO people (key, name, kind, created, last_seen) VALUES (?, ?, ?, ?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET name = excluded.name, last_seen = excluded.last_seen",
                           (person.key, person.name, person.kind, now, now))

    def release(self, key: str) -> None:
        """The teacher frees a name: its browser is signed out, and the next to sign in with it gets it."""
        with closing(self.table._connect()) as db:
            db.execute("UPDATE people SET released = ?, secret_hash = '' WHERE key = ?", (time.time(), key))

    def everyone(self) -> list[PersonRow]:
        with closing(self.table._connect()) as db:
            rows = db.execute("SELECT * FROM people ORDER BY name COLLATE NOCASE").fetchall()
        return [PersonRow(r["key"], r["name"], r["kind"], bool(r["secret_hash"]), r["created"], r["last_seen"],
                          r["released"]) for r in rows]

    def names_by_folder(self) -> dict[str, str]:
        """{folder name: display name} of everyone seen (for labelling models by whose they are)."""
        return {p.folder_name: p.name for p in self.everyone()}


# ---------------------------------------------------------------------------- published models
class Shelf:
    """Models a teacher shared with the class: the published table, paths relative to the runs folder."""

    def __init__(self, table: JobTable, base: str | Path):
        self.table, self.base = table, Path(base)

    def publish(self, path: str | Path, by: Person) -> None:
        owner = owner_of(path, self.base)
        if owner is None:
            raise ValueError("only a model in a person's folder can be published (the others are shared already)")
        with closing(self.table._connect()) as db:
            db.execute("INSERT OR REPLACE INTO published (path, owner, by, at) VALUES (?, ?, ?, ?)",
                       (shelf_path(owner, path), owner, by.key, time.time()))

    def unpublish(self, path: str | Path) -> None:
        owner = owner_of(path, self.base)
        if owner is not None:
            with closing(self.table._connect()) as db:
                db.execute("DELETE FROM published WHERE path = ?", (shelf_path(owner, path),))

    def paths(self) -> set[str]:
        """The published models, as paths relative to the runs folder ('<owner folder>/<file>')."""
        with closing(self.table._connect()) as db:
            rows = db.execute("SELECT path FROM published").fetchall()
        return {r["path"] for r in rows}


def shelf_path(owner: str, path: str | Path) -> str:
    """How the published table names a model in `owner`'s folder."""
    return f"{owner}/{Path(path).name}"


def may_see(person: Person, owner: str | None, path: str | Path, published: set[str]) -> bool:
    """Whether `person` sees a model in a picker (`owner`: its owner's folder, from owner_of): shared files and
    their own always; others' when a teacher published them; a teacher (and one person alone on a laptop)
    sees everyone's."""
    return (owner is None or person.teacher or person.solo or owner == person.folder_name
            or shelf_path(owner, path) in published)


def may_change(person: Person, path: str | Path, base: str | Path) -> bool:
    """Whether `person` may overwrite or remove a model file: their own, or any in a person's folder for a teacher."""
    owner = owner_of(path, base)
    if owner is None:
        return person.solo and Path(path).resolve().parent == Path(base).resolve()
    return person.teacher or owner == person.folder_name


# ---------------------------------------------------------------------------- runs and models of a person
def save_run(service, person: Person, job_id: str, base: str | Path, name: str, *, overwrite: bool = False) -> Path:
    """Save a run's model into its owner's folder (so Overwrite can only ever replace one's own model).
    ValueError with a sentence when the run is not theirs, or as JobService.save says."""
    row = service.table.get(job_id)
    if row is None or row.owner != person.key:
        raise ValueError("this run is not yours, so it cannot be saved from here")
    path = service.save(job_id, owner_folder(base, person), name, overwrite=overwrite)
    service.table.update(job_id, saved_path=str(path))
    return path


def stop_run(service, person: Person, job_id: str) -> None:
    """Stop a run of one's own; a teacher may stop anyone's. ValueError with a sentence otherwise."""
    row = service.table.get(job_id)
    if row is None:
        return
    if row.owner != person.key and not person.teacher:
        raise ValueError("this run is not yours, so it cannot be stopped from here")
    service.stop(job_id, "" if row.owner == person.key else f"Stopped by the teacher ({person.name})")


def remove_model(person: Person, path: str | Path, base: str | Path, shelf: Shelf) -> None:
    """Delete a model file of one's own, or any in a person's folder for a teacher (unpublished first)."""
    if not may_change(person, path, base):
        raise ValueError("this model is not yours, so it cannot be removed")
    shelf.unpublish(path)
    Path(path).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- the board's shared settings
CLEARED = "board_cleared_before"


def board_cleared_before(table: JobTable) -> float:
    with closing(table._connect()) as db:
        row = db.execute("SELECT value FROM class_settings WHERE key = ?", (CLEARED,)).fetchone()
    return float(row["value"]) if row else 0.0


def clear_board(table: JobTable, now: float | None = None) -> None:
    """Runs that finished before now leave the teacher's board (their owners keep them)."""
    with closing(table._connect()) as db:
        db.execute("INSERT OR REPLACE INTO class_settings (key, value) VALUES (?, ?)",
                   (CLEARED, repr(time.time() if now is None else now)))


def on_board(row, cleared_before: float) -> bool:
    return row.status not in FINISHED or (row.finished or row.created) >= cleared_before

"""Atomic file writes, used by every writer in the project (checkpoints, the classifier, reports).

    write_atomic(path, data)                      # replace path, never half-written
    write_atomic(path, data, overwrite=False)     # claim a new name: FileExistsError if it is taken

A write goes to a temporary file with a unique name in the target's folder (created with mode 0644, so the
umask decides as for any new file; not 0600 as `tempfile.mkstemp` would), is flushed to the disk with
fsync, and is then renamed over the target, so a reader sees the old file or the new one, never a mix.
With overwrite=False the new file is linked in under the target name, which fails when that name exists:
of two saves of the same name at once, exactly one wins and the other is told, with nothing replaced.

While it is being written a temporary file holds an exclusive `flock`; a process that is killed mid-write
leaves its temporary file behind, and its lock dies with it. `clean_stale_temps(folder)` removes such
leftovers (the next save and every listing call it) and never touches a file a live writer still holds.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import Callable, BinaryIO

FILE_MODE = 0o644
# <target name>.<16 hex digits>.tmp; the checkpoint writer before this module used mkstemp's 8 characters
_TEMP_NAME = re.compile(r"^(?P<target>.+)\.[0-9a-f]{16}\.tmp$")
_OLD_CHECKPOINT_TEMP = re.compile(r"^(?P<target>.+\.safetensors)\.[a-z0-9_]{8}\.tmp$")


def temp_name_target(name: str) -> str | None:
    """The target file name a temporary file of ours was writing, or None when `name` is not one of ours."""
    m = _TEMP_NAME.match(name) or _OLD_CHECKPOINT_TEMP.match(name)
    return m.group("target") if m else None


def _open_temp(path: Path) -> tuple[int, Path]:
    for _ in range(100):
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a cleaner took it between our create and our lock: try another name
            os.close(fd)
            continue
        if os.fstat(fd).st_nlink == 0:  # a cleaner unlinked it before we locked it
            os.close(fd)
            continue
        return fd, tmp
    raise OSError(errno.EEXIST, f"could not create a temporary file next to {path}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _link_new(tmp: Path, path: Path) -> None:
    """Put tmp under the name path, failing with FileExistsError when path exists (never replacing it)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # a file system without hard links: claim the name with an exclusive create, then fill it by rename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.close(fd)
        os.replace(tmp, path)


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], None], *,
                 overwrite: bool = True) -> Path:
    """Write `data` (bytes, or a function that writes to a binary file) to `path` atomically.

    overwrite=False raises FileExistsError when `path` exists, including when another writer claims the
    same name a moment earlier. Stray temporary files of earlier, killed writes in the folder are removed.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(folder)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "File exists", str(path))
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
        _fsync_dir(folder)
    finally:
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        finally:
            os.close(fd)  # closing drops the lock
    return path


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    return write_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writers left in `folder`; return what was removed.

    A temporary file whose writer is alive holds a lock and is left alone; so is any file whose name is not
    ours. Errors (a read-only folder, a file that vanished) are ignored: cleaning is a courtesy.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".tmp") or temp_name_target(entry.name) is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            os.close(fd)
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def check_writable_file(raw: str | os.PathLike, what: str = "the output file", *, suffix: str = "") -> Path:
    """The path a command will write, checked before any work: a ValueError with a sentence when it is empty,
    names a folder, lies under a file, or lies where nothing can be created (a read-only place, /proc).

    `suffix` is added when the name lacks it (as the checkpoint writer does). Nothing is created: the nearest
    folder that exists is probed with a temporary file that is removed at once.
    """
    text = os.fspath(raw)
    if not text.strip():
        raise ValueError(f"{what} is empty; give a file path such as runs/model{suffix or '.out'}")
    if text.endswith(("/", os.sep)) or text.endswith(("/.", "/..")) or text in (".", ".."):
        raise ValueError(f"{what} {text!r} names a folder; give a file name inside it, such as "
                         f"{text.rstrip('/')}/model{suffix or '.out'}")
    path = Path(text)
    try:
        if path.is_dir():
            raise ValueError(f"{what} {path} is a folder; give a file name inside it, such as "
                             f"{path / ('model' + (suffix or '.out'))}")
    except OSError:
        pass
    if suffix and path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    try:
        if path.is_dir():
            raise ValueError(f"{what} {path} is a folder; give a file name inside it")
        if path.exists() and not path.is_file():
            raise ValueError(f"{what} {path} exists and is not a regular file")
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise ValueError(f"{what} {path} cannot be written: {folder} is a file, not a folder")
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be checked ({(e.strerror or str(e)).lower()})") from None
    probe = folder / f".latent-lab-write-check-{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise ValueError(f"{what} {path} cannot be written: nothing can be created in {folder} ({reason})") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return path

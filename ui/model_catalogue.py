"""Finding, listing and loading checkpoints for the pages, and the sidebar model picker.

Model folders: $LATENT_LAB_MODEL_DIRS (os.pathsep-separated) or, by default, `checkpoints/` (shipped
models) and `runs/` (models saved from the Train page), both relative to the repository root.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st

from vae_core import CheckpointError, CheckpointRecord, LatentModel, ModelConfig, list_checkpoints, load_checkpoint, read_record

ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "LATENT_LAB_MODEL_DIRS"
SHIPPED_DIR = ROOT / "checkpoints"
RUNS_DIR = ROOT / "runs"


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint file: its record when readable, else the sentence saying what is wrong."""

    name: str
    path: str
    record: CheckpointRecord | None = None
    error: str | None = None

    @property
    def config(self) -> ModelConfig | None:
        return None if self.record is None else self.record.model_config

    @property
    def label(self) -> str:
        """What the picker shows, e.g. 'cvae_label · cvae | label | 2-D latent'."""
        if self.error:
            return f"{self.name} · unreadable"
        return f"{self.name} · {self.config.describe()}"


def model_dirs() -> list[Path]:
    """The folders searched for checkpoints, in order."""
    raw = os.environ.get(ENV_VAR, "")
    if raw.strip():
        return [Path(p) if Path(p).is_absolute() else ROOT / p for p in raw.split(os.pathsep) if p.strip()]
    return [SHIPPED_DIR, RUNS_DIR]


def save_dir() -> Path:
    """Where the Train page saves: runs/, or the first model folder that is not the shipped one."""
    for folder in model_dirs():
        if folder.resolve() != SHIPPED_DIR.resolve():
            return folder
    return RUNS_DIR


def _listing() -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every checkpoint file: the cache key of available_models."""
    out = []
    for folder in model_dirs():
        for path in list_checkpoints(folder):
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


@st.cache_data(show_spinner=False, max_entries=8)
def _entries(listing: tuple[tuple[str, int, int], ...]) -> list[ModelEntry]:
    entries = []
    for path, _, _ in listing:
        try:
            record = read_record(path)
        except CheckpointError as e:
            entries.append(ModelEntry(Path(path).stem, path, None, str(e)))
            continue
        entries.append(ModelEntry(record.display_name, path, record, None))
    return _disambiguate(entries)


def _disambiguate(entries: list[ModelEntry]) -> list[ModelEntry]:
    """Two models with the same display name (everyone's default is vae_2d) would look identical in the
    picker: those names get their file (folder/file name) added, so each choice says which file it is."""
    counts = Counter(e.name for e in entries)
    return [dataclasses.replace(e, name=f"{e.name} ({Path(e.path).parent.name}/{Path(e.path).name})")
            if counts[e.name] > 1 else e for e in entries]


def available_models() -> list[ModelEntry]:
    """Every checkpoint in the model folders; a broken file is an entry with `error` set."""
    return _entries(_listing())


def clear_model_cache() -> None:
    """Call after writing a checkpoint (the listing key changes anyway; this also frees memory)."""
    _entries.clear()


@st.cache_resource(show_spinner="Loading the model…", max_entries=24)
def _load(path: str, mtime_ns: int) -> tuple[LatentModel, CheckpointRecord]:
    return load_checkpoint(path)


def load_model(path: str | os.PathLike) -> tuple[LatentModel, CheckpointRecord]:
    """(model in eval mode, record), cached per (path, mtime). Raises CheckpointError with a sentence.

    The model is shared between sessions: do not train it or change it in place.
    """
    path = Path(path)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise CheckpointError(f"No checkpoint file at {path}.") from None
    return _load(str(path), mtime)


def model_picker(*, where: Callable[[ModelConfig], bool] | None = None, label: str = "Model",
                 key: str = "model", help: str | None = None,
                 prefer: Callable[[ModelConfig], bool] | tuple[Callable[[ModelConfig], bool], ...] = ()) -> tuple[LatentModel, CheckpointRecord] | None:
    """A sidebar selectbox over the available models; the choice (a path) is kept in
    st.session_state[key] and shared by every page that uses the same key.

    `where` keeps only the models whose ModelConfig passes; unreadable files stay listed so that a
    user who picks one is told why it cannot be used. `prefer` (a predicate, or several tried in order)
    picks the first choice when the session has none yet (or its choice is not listed here). Returns (model, record), or None after showing
    a sentence (nothing fits, or the chosen file is broken).
    """
    entries = [e for e in available_models() if e.error or where is None or where(e.config)]
    if not any(e.error is None for e in entries):
        folders = ", ".join(str(_short(d)) for d in model_dirs())
        st.info(f"No model here fits this page yet: train one on the Train page, or put a checkpoint in {folders}.")
        return None
    by_path = {e.path: e for e in entries}
    options = list(by_path)
    widget = f"_{key}_picker"
    stored = st.session_state.get(key)
    if stored not in by_path:
        usable = [e for e in entries if e.error is None]
        tests = (prefer,) if callable(prefer) else tuple(prefer)
        stored = next((e.path for test in tests for e in usable if test(e.config)), usable[0].path)
    # Streamlit forgets a widget's state on pages that do not draw it: restore it from the shared key.
    if st.session_state.get(widget) not in by_path or st.session_state.get(widget) != stored:
        st.session_state[widget] = stored
    if key not in st.session_state:
        st.session_state[key] = stored

    def remember() -> None:
        st.session_state[key] = st.session_state[widget]

    choice = st.sidebar.selectbox(label, options, key=widget, on_change=remember,
                                  format_func=lambda p: by_path[p].label if p in by_path else p, help=help)
    entry = by_path[choice]
    if entry.error:
        st.error(f"This checkpoint cannot be used: {entry.error}")
        return None
    try:
        return load_model(entry.path)
    except CheckpointError as e:
        st.error(f"This checkpoint cannot be used: {e}")
        return None


def _short(path: Path) -> Path:
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path

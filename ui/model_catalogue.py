"""Finding, listing and loading checkpoints for the pages, and the sidebar model picker.

Model folders: $LATENT_LAB_MODEL_DIRS (os.pathsep-separated) or, by default, `checkpoints/` (shipped
models), `checkpoints/beta-sweep/` (the shipped β sweep) and `runs/` (models saved from the Train page), all
relative to the repository root.

In a class (docs/CLASSROOM.md) each person saves into their own folder, runs/<their folder>/ (jobs/classroom.py).
A picker lists the shared models (shipped, or directly in a models folder), the person's own, and the ones a
teacher published, marked by whose they are; a teacher's picker lists everyone's. Models are only ever read here:
the Train page saves into the person's own folder, and only the class board removes a model.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import streamlit as st

from jobs.classroom import Person, may_see, owner_of, shelf_path
from vae_core import CheckpointError, CheckpointRecord, LatentModel, ModelConfig, list_checkpoints, load_checkpoint, read_record

ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "LATENT_LAB_MODEL_DIRS"
SHIPPED_DIR = ROOT / "checkpoints"
SHIPPED_SWEEP_DIR = SHIPPED_DIR / "beta-sweep"   # six 2-D VAEs that differ only in β (checkpoints/train_all.sh)
RUNS_DIR = ROOT / "runs"


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint file: its record when readable, else the sentence saying what is wrong.

    `title` is what the picker shows: the model's name, with its file name added when another model has
    the same name (available_models fills it in)."""

    name: str
    path: str
    record: CheckpointRecord | None = None
    error: str | None = None
    title: str = ""
    owner: str | None = None       # the owner's folder name (jobs/classroom.py); None: a shared model
    owner_name: str = ""           # whose it is, when it is someone else's (the picker shows it)
    published: bool = False        # a teacher shared it with the class

    @property
    def config(self) -> ModelConfig | None:
        return None if self.record is None else self.record.model_config

    @property
    def dataset(self) -> str:
        return "mnist" if self.record is None else self.record.dataset

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def label(self) -> str:
        """What the picker shows: short enough for the sidebar, e.g. 'MNIST VAE (2-D)' (the variant and
        latent size are in the caption under the picker)."""
        if self.error:
            return f"{Path(self.path).stem} · unreadable"
        name = self.title or self.name
        name = f"{name} · imported" if self.record.source is not None else name
        return name + (f" · {self.owner_name}" if self.owner_name else "")


def recommended_rank(entry: ModelEntry) -> tuple[int, int, int]:
    """Sort key of the recommended order: MNIST before other data sets (Home speaks of handwritten
    digits), and within a data set the 2-D VAE first (it has the map and the manifold a class starts
    with), then other unconditional models, label models, quadrant models; of each kind, Latent Lab's own
    models before those trained elsewhere and imported; unreadable files last."""
    if entry.error or entry.config is None:
        return (2, 0, 0)
    cfg = entry.config
    if cfg.condition == "none":
        kind = 0 if cfg.has_latent and cfg.latent_dim == 2 else 1
    else:
        kind = {"label": 2, "quadrants": 3}.get(cfg.condition, 4)
    if not cfg.has_latent:
        kind = 5
    return (0 if entry.dataset == "mnist" else 1, kind, int(entry.record.source is not None))


def model_dirs() -> list[Path]:
    """The folders searched for checkpoints, in order."""
    raw = os.environ.get(ENV_VAR, "")
    if raw.strip():
        return [Path(p) if Path(p).is_absolute() else ROOT / p for p in raw.split(os.pathsep) if p.strip()]
    return [SHIPPED_DIR, SHIPPED_SWEEP_DIR, RUNS_DIR]


def save_dir() -> Path:
    """Where the Train page saves: runs/, or the first model folder that is not a shipped one."""
    shipped = {SHIPPED_DIR.resolve(), SHIPPED_SWEEP_DIR.resolve()}
    for folder in model_dirs():
        if folder.resolve() not in shipped:
            return folder
    return RUNS_DIR


def _folders() -> list[Path]:
    """The model folders and, inside the one the Train page saves into, each person's folder."""
    out, base = [], save_dir()
    for folder in model_dirs():
        out.append(folder)
        if folder == base and folder.is_dir():
            try:
                out.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except OSError:
                pass
    return out


_listed: dict[str, tuple] = {}   # the last listing and the folders' modification times it was made at


def _listing() -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every checkpoint file: the cache key of available_models. Listed again only when
    a folder changed (a save, an overwrite or a removal renames or unlinks in its folder, which moves the
    folder's mtime): a class's forty folders cost forty stats per page run, not a scan of every file."""
    folders = _folders()
    stamp = []
    for folder in folders:
        try:
            stamp.append((str(folder), folder.stat().st_mtime_ns))
        except OSError:
            stamp.append((str(folder), None))
    stamp = tuple(stamp)
    held = _listed.get("listing")
    if held is not None and held[0] == stamp:
        return held[1]
    listing = _list_files(folders)
    _listed["listing"] = (stamp, listing)
    return listing


def _list_files(folders: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for folder in folders:
        for path in list_checkpoints(folder):
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


@st.cache_data(show_spinner=False, max_entries=8)
def _entries(listing: tuple[tuple[str, int, int], ...], base: str) -> list[ModelEntry]:
    entries = []
    for path, _, _ in listing:
        owner = owner_of(path, base)
        try:
            record = read_record(path)
        except CheckpointError as e:
            entries.append(ModelEntry(Path(path).stem, path, None, str(e), owner=owner))
            continue
        entries.append(ModelEntry(record.display_name, path, record, None, owner=owner))
    return sorted(entries, key=recommended_rank)  # stable: ties keep the folder order


def _disambiguate(entries: list[ModelEntry]) -> list[ModelEntry]:
    """Two models with the same display name (everyone's default is vae_2d) would look identical in the
    picker: their titles get the file's name added, without '.safetensors' so it fits the sidebar's box (and its
    folder, when the file names clash too). Models of different owners are told apart by the owner's name."""
    names = Counter((e.name, e.owner_name) for e in entries if e.error is None)
    files = Counter(e.file_name for e in entries if e.error is None and names[e.name, e.owner_name] > 1)

    def title(e: ModelEntry) -> str:
        if names[e.name, e.owner_name] < 2:
            return e.name
        stem = Path(e.path).stem
        where = f"{Path(e.path).parent.name}/{stem}" if files[e.file_name] > 1 else stem
        return f"{e.name} ({where})"
    return [replace(e, title=title(e)) for e in entries]


def available_models(person: Person | None = None) -> list[ModelEntry]:
    """Every checkpoint in the model folders that `person` (default: this session's) may see, recommended
    first (recommended_rank); a broken file is an entry with `error` set. Someone else's model carries its
    owner's name (and `published` when a teacher shared it)."""
    from ui import identity   # (identity finds the people table in save_dir)

    base = save_dir()
    listing = _listing()
    held = _listed.get("entries")
    if held is None or held[0] is not listing:   # the same listing: its entries without hashing it again
        held = _listed["entries"] = (listing, _entries(listing, str(base)))
    entries = held[1]
    person = person or identity.person()
    if person.solo or not any(e.owner for e in entries):
        return _disambiguate(entries)
    published, names = _class_view(identity)
    out = []
    for e in entries:
        if may_see(person, e.owner, e.path, published):
            theirs = e.owner is not None and e.owner != person.folder_name
            out.append(replace(e, owner_name=names.get(e.owner, e.owner) if theirs else "",
                               published=e.owner is not None and shelf_path(e.owner, e.path) in published))
    return _disambiguate(out)


CLASS_VIEW_SECONDS = 2.0   # the published models and people's names, read again at most this often
_class_view_cache: dict[str, tuple[float, set[str], dict[str, str]]] = {}


def _class_view(identity) -> tuple[set[str], dict[str, str]]:
    """(published models' paths, {folder: person's name}) of the class, from the people and published tables."""
    import time

    from jobs.classroom import Shelf

    base = str(save_dir())
    held = _class_view_cache.get(base)
    if held is None or time.monotonic() - held[0] > CLASS_VIEW_SECONDS:
        from jobs.table import JobStoreError
        try:
            roster = identity.roster()
            held = _class_view_cache[base] = (time.monotonic(), Shelf(roster.table, base).paths(),
                                              roster.names_by_folder())
        except JobStoreError:   # the job table is unusable (the Train page says why): what was known, or nothing
            held = held or (time.monotonic(), set(), {})
    return held[1], held[2]


def clear_model_cache() -> None:
    """Call after writing, publishing or removing a checkpoint (the listing key changes anyway; this also frees
    memory and reads the class's published models again)."""
    _entries.clear()
    _class_view_cache.clear()
    _listed.clear()


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


CHOICE_KEY = "model"  # st.session_state[CHOICE_KEY]: the path the user chose; one choice for every page


def chosen_path(key: str = CHOICE_KEY) -> str | None:
    """The checkpoint the user chose in this session (None until they choose one)."""
    return st.session_state.get(key)


def choose_model(path: str | os.PathLike, key: str = CHOICE_KEY) -> None:
    """Make `path` the session's model on every page (call it from a callback or before the picker is drawn)."""
    st.session_state[key] = str(path)
    st.session_state[_version_key(key)] = st.session_state.get(_version_key(key), 0) + 1


def _version_key(key: str) -> str:
    return f"_{key}_picker_version"


def nearest_model(entry: ModelEntry, candidates: list[ModelEntry]) -> ModelEntry:
    """The candidate most like `entry`: same data set first, then same variant, condition, latent size;
    ties go to the recommended order (candidates are in it)."""
    def likeness(c: ModelEntry) -> int:
        if entry.config is None:
            return 0
        a, b = entry.config, c.config
        return (8 * (c.dataset == entry.dataset) + 4 * (b.variant == a.variant) + 2 * (b.condition == a.condition)
                + (b.latent_dim == a.latent_dim))
    best = max(likeness(c) for c in candidates)
    return next(c for c in candidates if likeness(c) == best)


def model_picker(*, where: Callable[[ModelConfig], bool] | None = None,
                 why_not: Callable[[ModelConfig], str | None] | None = None, label: str = "Model",
                 key: str = CHOICE_KEY, help: str | None = None,
                 prefer: Callable[[ModelConfig], bool] | tuple[Callable[[ModelConfig], bool], ...] = ()
                 ) -> tuple[LatentModel, CheckpointRecord] | None:
    """The sidebar model picker: one choice (st.session_state[key], a path) for every page, kept until the
    user picks another model; every page lists the same models in the recommended order.

    `where` says which models this page can show. When the user's choice is not one of them, the page says
    why (`why_not`, a sentence, else a generic one), shows the nearest model it can, and offers a button to
    choose that one; the choice itself stays for the other pages. Before the user chooses, a page shows the
    first model it can in the recommended order (or the first one passing a `prefer` test). Returns
    (model, record), or None after showing a sentence (nothing fits, or the chosen file is broken).
    """
    entries = available_models()
    fits = [e for e in entries if e.error is None and (where is None or where(e.config))]
    if not fits:
        folders = ", ".join(str(_short(d)) for d in model_dirs())
        st.info(f"No model here fits this page yet: train one on the Train page, or put a checkpoint in {folders}.")
        return None
    by_path = {e.path: e for e in entries}
    choice = st.session_state.get(key)
    if choice not in by_path:  # nothing chosen yet (or the file went away): this page's first fitting model
        tests = (prefer,) if callable(prefer) else tuple(prefer)
        choice = next((e.path for test in tests for e in fits if test(e.config)), fits[0].path)

    # Streamlit forgets the state of a widget that a page does not draw, and a browser can send back a
    # stale value for a widget id it saw before: so the widget is rebuilt from the choice, under a new key
    # after every change made elsewhere (a key, the β slider, a button; the key never repeats within a
    # session). A pick in the picker itself keeps its widget: a new one stood beside the old (which held the
    # focus) while the script ran, and a click in that time, taking the focus, removed the old one and so
    # moved the sidebar's switches under the pointer (a click on Presenter view was lost).
    version = st.session_state.get(_version_key(key), 0)
    if st.session_state.get(f"_{key}_picker_{version}", choice) != choice:  # the choice was set elsewhere
        version = st.session_state[_version_key(key)] = version + 1
    widget = f"_{key}_picker_{version}"
    options = list(by_path)

    def remember() -> None:
        # a value the browser sends for a picker of an older version (a model chosen since, by a key or the β
        # slider) is stale: it must not take the model back
        if widget == f"_{key}_picker_{st.session_state.get(_version_key(key), 0)}":
            st.session_state[key] = str(st.session_state[widget])

    picked = st.sidebar.selectbox(label, options, index=options.index(choice), key=widget, on_change=remember,
                                  format_func=lambda p: by_path[p].label if p in by_path else p, help=help)
    entry = by_path.get(picked, by_path[choice])
    if entry.error:
        st.error(f"This checkpoint cannot be used: {entry.error}")
        return None
    if entry.path not in {e.path for e in fits}:
        nearest = nearest_model(entry, fits)
        reason = (why_not(entry.config) if why_not else None) or "This page cannot show this kind of model."
        st.info(f"Your model, **{entry.label}**, cannot be shown on this page. {reason} Showing the nearest one "
                f"that can, **{nearest.label}**; the other pages keep your choice.", icon=":material/swap_horiz:")
        st.button(f"Choose {nearest.label} everywhere", key=f"_{key}_take_nearest", on_click=choose_model,
                  args=(nearest.path, key), icon=":material/check:")
        entry = nearest
    st.sidebar.caption(_model_caption(entry))
    try:
        return load_model(entry.path)
    except CheckpointError as e:
        st.error(f"This checkpoint cannot be used: {e}")
        return None


def _model_caption(entry: ModelEntry) -> str:
    """The line under the picker: what the shown model is, in full (the picker shows only its name)."""
    origin = entry.record.origin()
    whose = (f" · {entry.owner_name}'s" + (", shared by the teacher" if entry.published else "")
             if entry.owner_name else "")
    return (f"{entry.config.describe()} · {entry.dataset} · `{entry.file_name}`" + (f" · {origin}" if origin else "")
            + whose)


def _short(path: Path) -> Path:
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path

"""The data sets as the pages see them: cached, never downloaded behind the user's back."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from vae_core import DatasetUnavailable, ImageDataset, load_dataset, locate_dataset
from vae_core.data import ENV_VAR


def dataset_folder(name: str) -> Path | None:
    """The folder holding `name`'s four files ($VAE_DATA_DIR, then ./data), or None."""
    return locate_dataset(name)


@st.cache_resource(show_spinner="Loading the data set…", max_entries=8)
def _load(name: str, split: str, folder: str) -> ImageDataset:
    return load_dataset(name, split, root=folder, download=False)


def _split(name: str, split: str) -> ImageDataset | None:
    folder = dataset_folder(name)
    if folder is None:
        return None
    try:
        return _load(name, split, str(folder.parent))
    except DatasetUnavailable:  # a damaged file: missing_data_note(name) says which and why
        return None


def test_set(name: str) -> ImageDataset | None:
    """The test split of `name` in memory (uint8 images), or None when the files are missing or damaged."""
    return _split(name, "test")


def train_set(name: str) -> ImageDataset | None:
    """The training split of `name`, or None when the files are missing or damaged."""
    return _split(name, "train")


def data_problem(name: str, split: str = "test") -> str | None:
    """Why `name` cannot be used, in one sentence (missing, or which file is damaged and how); None when its
    `split` loads. The check reads nothing twice: a good split comes from the cache the pages share."""
    folder = dataset_folder(name)
    if folder is None:
        return _not_found_note(name)
    try:
        _load(name, split, str(folder.parent))
    except DatasetUnavailable as e:
        return (f"The {name} data set in {folder} cannot be used: {_sentence(str(e))} Replace the damaged file "
                f"with a fresh copy of the original.")
    return None


def missing_data_note(name: str, split: str = "test") -> str:
    """One sentence for a page that needed the data and got None: the real reason (not found, or which file
    is damaged and how)."""
    return data_problem(name, split) or _not_found_note(name)


def _not_found_note(name: str) -> str:
    return (f"The {name} data set was not found: put its four IDX files (train-images-idx3-ubyte.gz and the "
            f"three others) in data/{name}/ next to app.py, or set {ENV_VAR} to a folder that holds {name}/.")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def download(name: str) -> str | None:
    """Try to download `name` into ./data; None on success, else a sentence saying why not."""
    try:
        load_dataset(name, "test", download=True)
    except DatasetUnavailable:
        return (f"The {name} download did not work (this machine may have no internet access). "
                + missing_data_note(name))
    except Exception as e:  # noqa: BLE001 - whatever torchvision raises, the page shows a sentence
        return f"The {name} download failed: {e}."
    _load.clear()
    return None

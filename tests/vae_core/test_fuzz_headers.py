"""Property-based tests: real files with randomly damaged headers either load cleanly or fail with the
layer's one error type and a sentence; never another exception, never much time or memory.

The IDX files are written in the real format (the same bytes as MNIST's, with synthetic pixels); the
mutations overwrite header bytes, set a dimension to any 32-bit value, cut the file or add bytes, gzipped or
not. Settings keep the whole module to a few seconds in CI (max_examples, deadline).
"""
from __future__ import annotations

import gzip
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vae_core.data as data_mod
from vae_core import DatasetUnavailable, ENV_VAR, load_dataset

MEMORY_BOUND = 32_000_000   # bytes of Python-tracked memory while one damaged data set is loaded
TIME_BOUND = 2.0            # seconds for one load

FILES = {  # stem -> (split, header length)
    "train-images-idx3-ubyte": ("train", 16),
    "train-labels-idx1-ubyte": ("train", 8),
    "t10k-images-idx3-ubyte": ("test", 16),
    "t10k-labels-idx1-ubyte": ("test", 8),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)

    def no_download(name):
        raise RuntimeError("the tests never download")
    monkeypatch.setattr(data_mod, "_try_download", no_download)


@pytest.fixture
def clean_files(tmp_path, idx_tools) -> dict[str, bytes]:
    """The raw (uncompressed) bytes of a small, valid MNIST-format data set (the same for every example)."""
    _, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "clean" / "mnist", n_train=20, n_test=6, gz=False)
    return {stem: (folder / stem).read_bytes() for stem in FILES}


mutations = st.fixed_dictionaries({
    "stem": st.sampled_from(sorted(FILES)),
    "edits": st.lists(st.tuples(st.integers(0, 15), st.integers(0, 255)), max_size=4),
    "dim": st.one_of(st.none(), st.tuples(st.integers(0, 2), st.one_of(
        st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 5, 6, 20, 21, 27, 28, 29, 2**31, 2**32 - 1])))),
    "cut": st.one_of(st.none(), st.integers(0, 20_000)),
    "extra": st.binary(max_size=32),
    "gz": st.booleans(),
})


def _mutate(raw: bytes, m: dict) -> bytes:
    data = bytearray(raw)
    for offset, value in m["edits"]:
        if offset < len(data):
            data[offset] = value
    if m["dim"] is not None:
        slot, value = m["dim"]
        start = 4 + 4 * slot
        if start + 4 <= len(data):
            data[start:start + 4] = value.to_bytes(4, "big")
    if m["cut"] is not None:
        data = data[:m["cut"]]
    return bytes(data) + m["extra"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutations)
def test_a_damaged_idx_header_is_a_sentence_or_a_clean_load(clean_files, m):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mnist"
        folder.mkdir()
        suffix = ".gz" if m["gz"] else ""
        for stem, raw in clean_files.items():
            body = _mutate(raw, m) if stem == m["stem"] else raw
            (folder / (stem + suffix)).write_bytes(gzip.compress(body, compresslevel=1) if m["gz"] else body)
        split = FILES[m["stem"]][0]
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            dataset = load_dataset("mnist", split, root=tmp, download=False)
        except DatasetUnavailable as e:
            message = str(e)
            assert message and "\n" not in message and tmp in message, message
        else:  # a mutation that left a valid file (e.g. a byte rewritten to its own value) loads consistently
            n = len(dataset)
            assert dataset.images.shape == (n, 28, 28) and dataset.labels.shape == (n,)
            assert int(dataset.labels.max()) < 10 and int(dataset.labels.min()) >= 0
        finally:
            elapsed = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert elapsed < TIME_BOUND and peak < MEMORY_BOUND, (elapsed, peak)

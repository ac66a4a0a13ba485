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


# ----------------------------------------------------------------------------- checkpoint headers

import json  # noqa: E402
import resource  # noqa: E402
import struct  # noqa: E402

from vae_core import CheckpointError, load_checkpoint  # noqa: E402
from vae_core.checkpoints import META_KEY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "mnist-label-gsnn.safetensors"   # a real header: record, history, metrics, extras
RSS_BOUND_KB = 400_000   # the whole fuzz run may raise the process's peak memory by at most 400 MB

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20) | st.sampled_from([0, -1, 1, 2, 64, 65, 8192, 10**6, 10**12, "", "mnist", "cvae"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)
RAW_VALUES = ["[" * 50_000 + "]" * 50_000, "9" * 5000, "1e999", "-1e999", "NaN", '"' + "x" * 200_000 + '"']


def _split_file(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join_file(header_text: bytes, body: bytes) -> bytes:
    return struct.pack("<Q", len(header_text)) + header_text + body


@pytest.fixture(scope="module")
def shipped_bytes() -> bytes:
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} is not in this checkout")
    return SHIPPED.read_bytes()


def _pick_path(data, node, depth=0):
    """A path (list of keys / indexes) into a JSON value, drawn by hypothesis."""
    if depth > 5 or not isinstance(node, (dict, list)) or not node or data.draw(st.booleans(), label="stop"):
        return []
    key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))), label="key")
    return [key] + _pick_path(data, node[key], depth + 1)


def _set(node, path, value):
    if not path:
        return value
    node[path[0]] = _set(node[path[0]], path[1:], value)
    return node


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_checkpoint_header_is_a_sentence_or_a_clean_load(shipped_bytes, data):
    """Mutate the record (any field set to any JSON value, or to a hostile raw text), the tensor table
    (a shape, dtype or offset changed) or the header's bytes, then load: CheckpointError or a model."""
    header, body = _split_file(shipped_bytes)
    record = json.loads(header["__metadata__"][META_KEY])
    kind = data.draw(st.sampled_from(["record", "record raw", "tensor table", "bytes"]), label="kind")
    if kind == "record":
        record = _set(record, _pick_path(data, record), data.draw(json_values, label="value"))
        header["__metadata__"][META_KEY] = json.dumps(record)
        text = json.dumps(header).encode()
    elif kind == "record raw":
        path = _pick_path(data, record)
        marker = "\u0000MARK\u0000"
        record_text = json.dumps(_set(record, path, marker)).replace(json.dumps(marker),
                                                                      data.draw(st.sampled_from(RAW_VALUES)))
        header["__metadata__"][META_KEY] = record_text
        text = json.dumps(header).encode()
    elif kind == "tensor table":
        name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")), label="tensor")
        field = data.draw(st.sampled_from(["shape", "dtype", "data_offsets"]), label="field")
        header[name][field] = data.draw(st.one_of(
            json_values, st.lists(st.integers(0, 2**40), min_size=1, max_size=3),
            st.sampled_from(["F16", "F64", "I64", "U8", "BOOL", "F8_E4M3"])), label="new")
        text = json.dumps(header).encode()
    else:
        text = bytearray(json.dumps(header).encode())
        for offset, value in data.draw(st.lists(st.tuples(st.integers(0, len(text) - 1), st.integers(0, 255)),
                                                min_size=1, max_size=6), label="edits"):
            text[offset] = value
        text = bytes(text)
    blob = _join_file(text, body)
    if kind == "bytes" and data.draw(st.booleans(), label="bad length"):
        blob = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1), label="length")) + blob[8:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.safetensors"
        path.write_bytes(blob)
        t0 = time.perf_counter()
        try:
            model, loaded = load_checkpoint(path)
        except CheckpointError as e:
            message = str(e)
            assert message and "\n" not in message and len(message) < 2000, message
        else:
            assert loaded.model_config == model.config
            assert all(bool(p.isfinite().all()) for p in model.parameters())
        assert time.perf_counter() - t0 < TIME_BOUND * 2


@pytest.fixture(scope="module", autouse=True)
def memory_bound():
    """The checkpoint fuzz must not allocate what a header promises: the process's peak memory may grow
    by at most RSS_BOUND_KB over the whole module (torch's allocations are not seen by tracemalloc)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < RSS_BOUND_KB, f"peak memory grew by {grown / 1024:.0f} MB"

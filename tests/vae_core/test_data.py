"""Data: IDX parsing (gzipped and plain), both folder layouts, the search order, the missing-data
message, damaged files, the quadrant protocol and make_batch. Every file is written here; no network."""
import gzip

import numpy as np
import pytest
import torch

import vae_core.data as data_mod
from vae_core import (ENV_VAR, DatasetUnavailable, ImageDataset, ModelConfig, load_dataset, locate_dataset,
                      make_batch, quadrant_input, quadrant_mask)

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $VAE_DATA_DIR, an empty working folder, and no download attempts."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)

    def no_download(name):
        raise RuntimeError("the tests never download")
    monkeypatch.setattr(data_mod, "_try_download", no_download)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw"])
def test_reads_both_layouts_gzipped_or_not(gz, layout, tmp_path, idx_tools):
    _, write_fake_mnist, synthetic_images = idx_tools
    write_fake_mnist(tmp_path / "root" / layout, n_train=30, n_test=12, gz=gz)
    train = load_dataset("mnist", "train", root=tmp_path / "root")
    test = load_dataset("mnist", "test", root=tmp_path / "root")
    expected_images, expected_labels = synthetic_images(30, 28, seed=0)
    assert isinstance(train, ImageDataset) and train.images.dtype == torch.uint8
    assert train.images.shape == (30, 28, 28) and test.images.shape == (12, 28, 28)
    assert torch.equal(train.images, expected_images)
    assert torch.equal(train.labels, expected_labels) and train.labels.dtype == torch.int64
    assert (train.name, train.split, test.split) == ("mnist", "train", "test")
    assert train.source == str((tmp_path / "root" / layout).resolve())


def test_fashion_mnist_layouts(tmp_path, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    write_fake_mnist(tmp_path / "a" / "fashion-mnist", n_train=10, n_test=5)
    write_fake_mnist(tmp_path / "b" / "FashionMNIST" / "raw", n_train=11, n_test=5, gz=False)
    assert len(load_dataset("fashion-mnist", "train", root=tmp_path / "a")) == 10
    ds = load_dataset("fashion-mnist", "train", root=tmp_path / "b")
    assert len(ds) == 11 and ds.class_names[0] == "T-shirt/top"
    # a mnist/ folder does not count as fashion-mnist
    assert locate_dataset("fashion-mnist", tmp_path / "nothing") is None


def test_root_may_point_straight_at_the_data_set_folder(tmp_path, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    write_fake_mnist(tmp_path / "mnist", n_train=7, n_test=3)
    assert len(load_dataset("mnist", "train", root=tmp_path / "mnist")) == 7


def test_search_order_root_then_env_then_cwd_data(tmp_path, monkeypatch, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    write_fake_mnist(tmp_path / "root" / "mnist", n_train=11, n_test=3)
    write_fake_mnist(tmp_path / "env" / "mnist", n_train=12, n_test=3)
    write_fake_mnist(tmp_path / "cwd" / "data" / "mnist", n_train=13, n_test=3)   # ./data (cwd is tmp/cwd)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert len(load_dataset("mnist", "train", root=tmp_path / "root")) == 11
    assert len(load_dataset("mnist", "train")) == 12
    assert len(load_dataset("mnist", "train", root=tmp_path / "empty")) == 12   # root without data: next
    monkeypatch.delenv(ENV_VAR)
    assert len(load_dataset("mnist", "train")) == 13
    assert locate_dataset("mnist") == (tmp_path / "cwd" / "data" / "mnist").resolve()


@pytest.mark.parametrize("download", [False, True])
def test_missing_data_set_message_says_what_to_put_where(download, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envdir"))
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist", "train", root=tmp_path / "rootdir", download=download)
    message = str(err.value)
    for stem in STEMS:
        assert stem in message
    assert "'mnist/'" in message and ENV_VAR in message
    assert str(tmp_path / "rootdir") in message and str(tmp_path / "envdir") in message and "data" in message


def test_partial_folder_counts_as_missing(tmp_path, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=5, n_test=5)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert locate_dataset("mnist", tmp_path) is None
    with pytest.raises(DatasetUnavailable):
        load_dataset("mnist", "train", root=tmp_path, download=False)


def _corrupt_case(folder, case, write_idx):
    target = folder / "train-images-idx3-ubyte.gz"
    good = gzip.decompress(target.read_bytes())
    if case == "wrong magic":
        target.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + good[4:]))     # 0x0D: floats, not bytes
    elif case == "truncated data":
        target.write_bytes(gzip.compress(good[:-100]))
    elif case == "too long":
        target.write_bytes(gzip.compress(good + b"\x00" * 10))
    elif case == "truncated gzip":
        target.write_bytes(target.read_bytes()[:-40])
    elif case == "not gzip":
        target.write_bytes(b"this is not a gzip file at all")
    elif case == "tiny":
        target.write_bytes(gzip.compress(b"\x00\x00"))
    elif case == "count mismatch":
        write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))


@pytest.mark.parametrize("case", ["wrong magic", "truncated data", "too long", "truncated gzip", "not gzip",
                                  "tiny", "count mismatch"])
def test_damaged_files_raise_a_clear_error(case, tmp_path, idx_tools):
    write_idx, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5)
    _corrupt_case(folder, case, write_idx)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist", "train", root=tmp_path, download=False)
    assert "train" in str(err.value) and str(tmp_path) in str(err.value)
    # the test split is unharmed
    assert len(load_dataset("mnist", "test", root=tmp_path, download=False)) == 5


def test_bad_names_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="cifar"):
        load_dataset("cifar", "train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", "valid", root=tmp_path)


def test_image_dataset_validates_and_slices():
    images, labels = torch.zeros(6, 4, 4, dtype=torch.uint8), torch.arange(6)
    ds = ImageDataset(images, labels)
    assert len(ds.subset(2, 5)) == 3 and torch.equal(ds.take(torch.tensor([5, 0])).labels, torch.tensor([5, 0]))
    assert ds.image_size == 4
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), labels)
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(images, labels[:5])


# ----------------------------------------------------------------------------- the quadrant protocol

def test_quadrant_masks_follow_the_paper():
    h = 14
    one, two, three = quadrant_mask(1), quadrant_mask(2), quadrant_mask(3)
    # 1 quadrant: only the bottom-left is visible
    assert one[h:, :h].all() and not one[:h, :].any() and not one[:, h:].any()
    # 2 quadrants: the left half
    assert two[:, :h].all() and not two[:, h:].any()
    # 3 quadrants: everything but the bottom-right
    assert not three[h:, h:].any() and three[:h, :].all() and three[:, :h].all()
    assert [int(m.sum()) for m in (one, two, three)] == [196, 392, 588]
    assert quadrant_mask(1, size=8).shape == (8, 8) and int(quadrant_mask(1, size=8).sum()) == 16
    with pytest.raises(ValueError, match="1, 2 or 3"):
        quadrant_mask(4)


def test_quadrant_input_hides_pixels_with_minus_one():
    images = torch.rand(3, 28, 28) * 0.9 + 0.05
    x = quadrant_input(images, torch.tensor([1, 2, 3]))
    assert x.shape == (3, 784)
    for i, k in enumerate((1, 2, 3)):
        visible = quadrant_mask(k).flatten()
        assert torch.equal(x[i][visible], images[i].flatten()[visible])
        assert (x[i][~visible] == -1).all()
    assert torch.equal(quadrant_input(images, 2), quadrant_input(images, torch.tensor([2, 2, 2])))


def test_make_batch_for_each_condition():
    images = torch.randint(0, 256, (50, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (50,))
    y, x = make_batch(ModelConfig(image_size=8), images, labels)
    assert x is None and y.shape == (50, 64) and y.dtype == torch.float32
    assert torch.allclose(y * 255, images.reshape(50, -1).float())
    y, x = make_batch(ModelConfig(variant="cvae", condition="label", image_size=8), images, labels)
    assert torch.equal(x, labels)
    cfg = ModelConfig(variant="cvae", condition="quadrants", quadrants=1, image_size=8)
    y, x = make_batch(cfg, images, labels)
    assert int((x == -1).sum(1).unique()) == 48
    y, x = make_batch(cfg, images, labels, quadrants=3)      # an explicit count overrides the config
    assert int((x == -1).sum(1).unique()) == 16


def test_random_quadrant_counts_are_drawn_per_example_and_seeded():
    cfg = ModelConfig(variant="cvae", condition="quadrants", quadrants=0, image_size=8)
    images = torch.full((300, 8, 8), 200, dtype=torch.uint8)
    labels = torch.zeros(300, dtype=torch.int64)
    _, x1 = make_batch(cfg, images, labels, generator=torch.Generator().manual_seed(1))
    _, x2 = make_batch(cfg, images, labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x1, x2)
    hidden = (x1 == -1).sum(1)
    counts = {int(v): int((hidden == v).sum()) for v in hidden.unique()}
    assert set(counts) == {48, 32, 16}               # 1, 2 and 3 visible quadrants all occur
    assert all(c > 60 for c in counts.values())


# ----------------------------------------------------------------------------- headers checked before reading

def _header(*dims: int, kind: int = 0x08) -> bytes:
    return bytes([0, 0, kind, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


def _peak_bytes(fn) -> tuple[object, int]:
    """(what fn returned or raised, the peak of Python-tracked memory while it ran)."""
    import tracemalloc
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - returned for the caller to check
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dims, words", [
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), "claims"),        # overflows any fixed-width product
    ((2_000_000, 28, 28), "claims"),                          # 1.5 GB promised
    ((20, 28, 29), "square"),
    ((20, 28, 28, 1), "dimensions"),
])
def test_image_headers_that_overflow_or_disagree_are_refused_before_reading(gz, dims, words, tmp_path, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    promised = int(np.prod(dims, dtype=object))
    raw = _header(*dims) + bytes(promised if promised < 100_000 else 20 * 28 * 28)
    (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
    out, peak = _peak_bytes(lambda: load_dataset("mnist", "train", root=tmp_path, download=False))
    assert isinstance(out, DatasetUnavailable), out
    assert words in str(out) and name in str(out)
    assert peak < 5_000_000


def test_a_plain_file_shorter_than_its_header_promises_is_refused_by_its_size(tmp_path, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5, gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes(_header(200_000, 28, 28) + bytes(100))  # 157 MB promised
    out, peak = _peak_bytes(lambda: load_dataset("mnist", "train", root=tmp_path, download=False))
    assert isinstance(out, DatasetUnavailable) and "promises 156,800,000 values" in str(out)
    assert peak < 5_000_000                                     # refused before allocating the promise


def test_a_small_gzip_promising_much_more_than_it_can_hold_is_refused_without_allocating(tmp_path, idx_tools):
    _, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_header(200_000, 28, 28) + bytes(784)))
    out, peak = _peak_bytes(lambda: load_dataset("mnist", "train", root=tmp_path, download=False))
    assert isinstance(out, DatasetUnavailable) and "gzip file can hold" in str(out)
    assert peak < 5_000_000


def test_a_gzip_that_expands_past_its_header_stops_at_the_promised_size(tmp_path, idx_tools):
    """20 images promised; the stream goes on for 1.5 GB of zeros (1,500 gzip members of 1 MB each,
    which gzip reads as one stream). Reading stops just past the promise: little time, little memory."""
    import time
    _, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5)
    member = gzip.compress(bytes(1 << 20))
    with open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(gzip.compress(_header(20, 28, 28) + bytes(20 * 784)))
        for _ in range(1500):
            f.write(member)
    t0 = time.perf_counter()
    out, peak = _peak_bytes(lambda: load_dataset("mnist", "train", root=tmp_path, download=False))
    assert isinstance(out, DatasetUnavailable) and "more than the 15,680 values" in str(out)
    assert peak < 20_000_000 and time.perf_counter() - t0 < 10


@pytest.mark.parametrize("bad_label", [10, 57, 255])
def test_labels_out_of_range_for_the_class_count_are_refused_at_load(bad_label, tmp_path, idx_tools):
    write_idx, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5)
    labels = np.arange(5, dtype=np.uint8) % 10
    labels[3] = bad_label
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DatasetUnavailable, match=f"label {bad_label} .first at row 3. is not one of the 10 classes"):
        load_dataset("mnist", "test", root=tmp_path, download=False)
    assert len(load_dataset("mnist", "train", root=tmp_path, download=False)) == 20


def test_a_label_file_with_image_dimensions_is_refused(tmp_path, idx_tools):
    write_idx, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros((5, 2, 2), dtype=np.uint8))
    with pytest.raises(DatasetUnavailable, match="has 3 dimensions in its header; this file should have 1"):
        load_dataset("mnist", "test", root=tmp_path, download=False)


def test_a_file_replaced_after_loading_is_read_again(tmp_path, idx_tools):
    write_idx, write_fake_mnist, _ = idx_tools
    folder = write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=5)
    assert len(load_dataset("mnist", "test", root=tmp_path, download=False)) == 5
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(5, 99, dtype=np.uint8))
    with pytest.raises(DatasetUnavailable, match="label 99"):
        load_dataset("mnist", "test", root=tmp_path, download=False)

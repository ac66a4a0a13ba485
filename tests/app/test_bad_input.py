"""Bad input in the pages: a damaged data file, damaged stored labels in a checkpoint, a bad PNG upload.
Each is a sentence in the page that says what is wrong, never a traceback, and the rest of the page works."""
from __future__ import annotations

import gzip
import io
import shutil
import struct
import zlib

import numpy as np
import pytest

from apptest_helpers import errors_of, texts_of, write_synthetic_mnist
from ui import decoder_tools as dt
from vae_core import load_checkpoint, save_checkpoint


def _open(at, model_dir, page: str, model: str):
    at.session_state["model"] = str(model_dir / f"{model}.safetensors")
    at.switch_page(page).run()
    assert not errors_of(at)
    return at


@pytest.fixture
def damaged_labels(monkeypatch, tmp_path):
    """A data folder whose test labels include 57 (MNIST has 10 classes); VAE_DATA_DIR points at it."""
    root = write_synthetic_mnist(tmp_path / "data", n_train=200, n_test=100)
    path = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[8 + 5] = 57
    path.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("VAE_DATA_DIR", str(root))
    return path


def test_home_names_the_damaged_file_and_the_fault_instead_of_not_found(damaged_labels, app):
    app.run()
    assert not errors_of(app)
    errors = [e.value for e in app.error]
    assert any("t10k-labels-idx1-ubyte.gz" in e and "label 57" in e for e in errors), errors
    assert "was not found" not in texts_of(app).split("fashion-mnist")[0]


def test_decoder_two_test_digits_with_damaged_labels_is_a_sentence(damaged_labels, app, model_dir):
    at = _open(app, model_dir, "pages/decoder.py", "cvae_label")
    at.radio(key="interp_mode").set_value("Two test digits").run()
    assert not errors_of(at)
    assert any("label 57" in i.value for i in at.info)


def test_latent_map_that_needs_damaged_data_says_why(damaged_labels, app, model_dir):
    at = _open(app, model_dir, "pages/latent_map.py", "vae_3d")   # no stored means: it must encode the test set
    assert any("label 57" in w.value and "cannot be used" in w.value for w in at.warning)


def _copy_with_extras(model_dir, folder, change):
    """A copy of vae_2d in `folder` whose stored latent means and labels are changed by change(mu, labels)."""
    model, record = load_checkpoint(model_dir / "vae_2d.safetensors")
    mu, labels = change(record.extras["test_latent_means"].clone(), record.extras["test_labels"].clone())
    save_checkpoint(folder / "vae_2d.safetensors", model, record,
                    extras={"test_latent_means": mu, "test_labels": labels})
    return folder


@pytest.fixture
def bad_stored_labels(model_dir, tmp_path, monkeypatch):
    """A model folder with a copy of vae_2d whose stored test labels include 57."""
    def label_57(mu, labels):
        labels[7] = 57
        return mu, labels
    folder = _copy_with_extras(model_dir, tmp_path / "models", label_57)
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    return folder


@pytest.mark.parametrize("page", ["pages/latent_map.py", "pages/decoder.py"])
def test_stored_labels_out_of_range_are_a_sentence_not_an_index_error(bad_stored_labels, page, app):
    app.session_state["model"] = str(bad_stored_labels / "vae_2d.safetensors")
    app.switch_page(page).run()
    assert not errors_of(app)
    assert any("stored test labels" in e.value for e in app.error), [e.value for e in app.error]


@pytest.fixture
def fewer_stored_means(model_dir, tmp_path, monkeypatch):
    """A copy of vae_2d that stores the latent means of only the first 50 test images."""
    folder = _copy_with_extras(model_dir, tmp_path / "models", lambda mu, labels: (mu[:50], labels[:50]))
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    return folder


def test_stored_means_of_another_test_set_are_not_used_and_clicks_pick_the_right_image(fewer_stored_means, app):
    at = _open(app, fewer_stored_means, "pages/latent_map.py", "vae_2d")
    assert any("stores latent means of 50 test images" in w.value for w in at.warning)
    assert "encoded from the test set" in texts_of(at)
    at.session_state["latent_map_chart"] = {"selection": {"points": [{"customdata": 70}], "box": [], "lasso": []}}
    at.run()
    assert not errors_of(at)
    assert "Test image #70" in texts_of(at)


# ----------------------------------------------------------------------------- the PNG upload

def _digit(size: int = 56) -> np.ndarray:
    img = np.zeros((size, size), dtype=np.uint8)
    img[size // 5: -size // 5, size // 2 - 3: size // 2 + 3] = 255      # a "1"
    return img


def _png(array: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid PNG header for a huge grey picture, with a tiny compressed body (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(width)
    body = zlib.compress(row * 64, 9)                                   # only 64 rows: enough to be a bomb
    return (dt.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _gif() -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(_digit()).save(buf, format="GIF")
    return buf.getvalue()


BAD_UPLOADS = {
    "not an image": (b"hello, this is a text file\n" * 10, "is not a PNG picture"),
    "truncated": (_png(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))[:20_000],
                  "damaged PNG"),
    "bomb": (_bomb_png(), "too large to open safely"),
    "gif": (_gif(), "is a GIF, not a PNG"),
    "header only": (dt.PNG_SIGNATURE + b"\x00\x00", "damaged PNG"),
    "too many bytes": (dt.PNG_SIGNATURE + bytes(dt.UPLOAD_MAX_BYTES), "MB"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_read_uploaded_png_refuses_with_a_sentence(case):
    data, words = BAD_UPLOADS[case]
    image, problem = dt.read_uploaded_png(data, "upload.png")
    assert image is None and words in problem and problem.startswith("upload.png")


def test_a_bomb_is_refused_from_its_header_before_decoding(monkeypatch):
    from PIL import Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("the picture was opened")
    monkeypatch.setattr(Image, "open", no_decoding)
    image, problem = dt.read_uploaded_png(_bomb_png(), "bomb.png")
    assert image is None and "20,000 x 20,000 pixels" in problem


def test_a_good_png_is_read_as_grey():
    image, problem = dt.read_uploaded_png(_png(_digit()), "digit.png")
    assert problem is None and image.shape == (56, 56) and image.max() == 255


@pytest.fixture
def upload_fallback(monkeypatch):
    """The page as it is where neither drawing component can load: a PNG upload instead of the canvas."""
    import sys

    from ui import live_encoder
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", None)   # the import now raises ImportError
    monkeypatch.setattr(live_encoder, "_COMPONENT", None)                 # the live encoder is not registered
    monkeypatch.setattr(live_encoder, "_REGISTER_ERROR", "not registered in this test")


@pytest.mark.parametrize("case", ["not an image", "truncated", "bomb", "gif"])
def test_a_bad_upload_on_the_decoder_is_a_sentence(case, upload_fallback, app, model_dir):
    at = _open(app, model_dir, "pages/decoder.py", "vae_2d")
    data, words = BAD_UPLOADS[case]
    at.file_uploader(key="decoder_upload").set_value((f"{case}.png", data, "image/png")).run()
    assert not errors_of(at)
    assert any(words in e.value for e in at.error), [e.value for e in at.error]
    assert "Draw a digit" in texts_of(at)                                # the section is still usable
    at.file_uploader(key="decoder_upload").set_value(("digit.png", _png(_digit()), "image/png")).run()
    assert not errors_of(at) and not at.error
    assert any("As the model sees it" in c for im in at.image for c in im.captions)


# ----------------------------------------------------------------------------- two saves of one name

def test_two_saves_of_the_same_name_at_once_do_not_both_report_saved(data_root, tmp_path, monkeypatch):
    """Two tabs save 'vae_2d' at the same moment: both pass the 'does it exist?' check; exactly one file is
    written and the other tab is told, in a sentence, to pick another name. (The runs are jobs: jobs/api.py.)"""
    import threading

    import vae_core.atomic as atomic_mod
    from jobs.api import JobService
    from jobs.limits import read_limits
    from vae_core import ModelConfig, TrainConfig

    cfg = ModelConfig(hidden_dims=(16,))
    tcfg = TrainConfig(epochs=1, batch_size=128, train_limit=256, eval_limit=100, device="cpu")
    service = JobService(tmp_path / "jobs", read_limits({"LATENT_LAB_WARM_WORKER": "0", "LATENT_LAB_MAX_RUNS": "2"}))
    try:
        jobs = [service.submit(cfg, tcfg.replace(seed=s), f"tab{s}", data_root=data_root) for s in (1, 2)]
        for job in jobs:
            snap = service.wait(job, 120)
            assert snap.status == "completed", snap.message
        barrier = threading.Barrier(2, timeout=60)
        real_link = atomic_mod._link_new

        def together(tmp, path):
            barrier.wait()
            return real_link(tmp, path)
        monkeypatch.setattr(atomic_mod, "_link_new", together)
        outcome = {}

        def save(i):
            try:
                outcome[i] = str(service.save(jobs[i], tmp_path / "runs", "vae_2d"))
            except ValueError as e:
                outcome[i] = f"Not saved: {e}"
        threads = [threading.Thread(target=save, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        service.shutdown()
    saved = [o for o in outcome.values() if o.endswith("vae_2d.safetensors")]
    refused = [o for o in outcome.values() if o.startswith("Not saved")]
    assert len(saved) == 1 and len(refused) == 1, outcome
    assert "saved a moment ago" in refused[0] and "overwrite" in refused[0]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["vae_2d.safetensors"]


# ----------------------------------------------------------------------------- hostile checkpoints in a model folder

def _hostile_headers(good_header: dict) -> dict[str, str]:
    import json
    cfg = good_header["model_config"]
    return {
        "nested": '{"format": "latent-lab-checkpoint", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "long_int": json.dumps(good_header)[:-1] + ', "n": ' + "9" * 5000 + "}",
        "metrics_list": json.dumps({**good_header, "metrics": [1, 2, 3]}),
        "train_config_string": json.dumps({**good_header, "train_config": "fast"}),
        "num_classes_huge": json.dumps({**good_header, "model_config": {**cfg, "num_classes": 10**12}}),
        "image_size_2048": json.dumps({**good_header, "model_config": {**cfg, "image_size": 2048}}),
    }


@pytest.fixture
def hostile_folder(model_dir, tmp_path, monkeypatch):
    """A model folder with good models and one hostile checkpoint of each kind the issue found."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    folder = tmp_path / "runs"
    folder.mkdir()
    for name in ("vae_2d", "cvae_label", "cvae_quadrants", "gsnn_quadrants"):
        shutil.copy(model_dir / f"{name}.safetensors", folder)
    src = model_dir / "vae_2d.safetensors"
    with safe_open(str(src), framework="pt") as f:
        header = json.loads(f.metadata()["latent_lab"])
    state = load_file(str(src))
    for name, text in _hostile_headers(header).items():
        save_file(state, str(folder / f"zz_{name}.safetensors"), metadata={"latent_lab": text})
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    return folder


PAGES = ["pages/home.py", "pages/train.py", "pages/latent_map.py", "pages/decoder.py", "pages/compare.py"]


def test_hostile_checkpoints_in_runs_take_down_no_page(hostile_folder, app):
    for page in PAGES:
        app.switch_page(page).run()
        assert not errors_of(app), page
        assert app.title, page
    app.switch_page("pages/home.py").run()
    named = "\n".join(e.value for e in app.error)
    for name in ("nested", "long_int", "metrics_list", "train_config_string", "num_classes_huge", "image_size_2048"):
        assert f"zz_{name}" in named, name                       # each one named, with a sentence


@pytest.mark.parametrize("page", ["pages/latent_map.py", "pages/decoder.py"])
@pytest.mark.parametrize("name", ["nested", "long_int", "metrics_list", "num_classes_huge", "image_size_2048"])
def test_picking_a_hostile_checkpoint_is_a_sentence_on_every_model_page(hostile_folder, name, page, app):
    app.session_state["model"] = str(hostile_folder / f"zz_{name}.safetensors")
    app.switch_page(page).run()
    assert not errors_of(app)
    assert app.error and all("cannot be used" in e.value and "\n" not in e.value for e in app.error)


def test_two_models_with_the_same_display_name_show_their_file_names(model_dir, tmp_path, monkeypatch, app):
    import dataclasses as dc
    model, record = load_checkpoint(model_dir / "vae_2d.safetensors")
    folder = tmp_path / "class"
    for file in ("alice", "bob"):
        save_checkpoint(folder / f"{file}.safetensors", model, dc.replace(record, name="vae_2d"))
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    app.switch_page("pages/decoder.py").run()
    assert not errors_of(app)
    picker = app.sidebar.selectbox[0]
    labels = [picker.format_func(o) if hasattr(picker, "format_func") else o for o in picker.options]
    assert len(set(labels)) == 2, labels
    assert sorted(labels) == ["vae_2d (alice)", "vae_2d (bob)"], labels


@pytest.fixture
def no_stored_means(model_dir, tmp_path, monkeypatch):
    """A copy of vae_2d saved without the test set's latent means (as a CLI run without test data is)."""
    folder = tmp_path / "models"
    folder.mkdir()
    model, record = load_checkpoint(model_dir / "vae_2d.safetensors")
    save_checkpoint(folder / "vae_2d.safetensors", model, record)
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(folder))
    return folder


def test_a_drawn_digit_on_a_2d_model_without_a_stored_map_is_placed_on_an_empty_map(no_stored_means,
                                                                                      upload_fallback, app):
    """The drawing's map caption read `means`, set only when the checkpoint stored them: a NameError."""
    at = _open(app, no_stored_means, "pages/decoder.py", "vae_2d")
    at.file_uploader(key="decoder_upload").set_value(("digit.png", _png(_digit()), "image/png")).run()
    assert not errors_of(at)
    assert "this checkpoint stores no test-set map" in texts_of(at)

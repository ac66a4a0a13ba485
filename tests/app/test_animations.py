"""Animations for slides: the frames and files (vae_core/animation.py) and the Decoder's section that makes them
(ui/animations.py): what can be animated, a beta sweep found in the model folders, the bytes offered."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from apptest_helpers import SWEEP_BETAS, errors_of, texts_of, train_sweep
from ui import animations as ani
from vae_core import animation as an
from vae_core import load_checkpoint


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, data_root, model_dir):
    out = tmp_path_factory.mktemp("sweep")
    train_sweep(data_root, out)
    return out


def frames_of(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "gif":
        return iio.imread(data, extension=".gif", index=None)
    return np.stack(list(iio.imiter(data, extension=".mp4", plugin="FFMPEG")))


# ----------------------------------------------------------------------------- frames and files

def test_walk_and_path_frames_fit_a_slide(model_dir):
    model, _ = load_checkpoint(model_dir / "vae_2d.safetensors")
    seen = []
    walk = an.walk_frames(model, [-2, 0], [2, 1], steps=10, progress=seen.append)
    assert walk.shape == (18, 336, 336) and walk.dtype == np.uint8 and seen[-1] == 1.0
    path = an.path_frames(model, steps=12)
    assert path.shape[0] == 12 and max(path.shape[1:3]) <= an.MAX_SIDE and path.shape[3] == 3
    assert not np.array_equal(path[0], path[6]), "the ring and the digit move along the path"
    model3, _ = load_checkpoint(model_dir / "vae_3d.safetensors")
    assert an.path_frames(model3, steps=8).shape[0] == 8


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_files_open_with_every_frame(model_dir, fmt):
    model, _ = load_checkpoint(model_dir / "vae_2d.safetensors")
    frames = an.path_frames(model, steps=10)
    data = an.encode(frames, fmt, fps=10)
    back = frames_of(data, fmt)
    assert len(back) == 10 and len(data) <= an.MAX_BYTES
    assert back.shape[1] >= frames.shape[1] and back.shape[1] - frames.shape[1] < 16   # mp4 pads to 16
    if fmt == "gif":
        assert np.abs(back[3][..., :3].astype(int) - frames[3]).mean() < 8


def test_a_file_over_the_byte_bound_keeps_fewer_frames():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 200, 200), dtype=np.uint8)    # noise compresses badly
    data = an.encode(frames, "gif", max_bytes=600_000)
    assert len(data) <= 600_000 and 2 <= len(frames_of(data, "gif")) < 40


def test_bad_requests_are_sentences():
    with pytest.raises(ValueError, match="gif or an mp4"):
        an.encode(np.zeros((2, 4, 4), np.uint8), "avi")
    with pytest.raises(ValueError, match="at least two models"):
        an.sweep_frames([])
    with pytest.raises(ValueError, match="no snapshots"):
        an.training_frames([])


# ----------------------------------------------------------------------------- a beta sweep

def test_a_sweep_is_found_in_order_of_beta(sweep_dir, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(sweep_dir))
    sweep = ani.sweep_of(str(sweep_dir / "sweep_beta_1.safetensors"))
    assert [ani.beta_of(r) for r in sweep] == list(SWEEP_BETAS)
    _, record = load_checkpoint(sweep_dir / "sweep_beta_1.safetensors")
    assert ani.SWEEP in ani.choices(record, str(sweep_dir / "sweep_beta_1.safetensors"))
    frames, fps, stem = ani.make_frames(ani.SWEEP, None, record, str(sweep_dir / "sweep_beta_1.safetensors"))
    assert frames.shape[0] == 3 and stem == "beta-sweep" and max(frames.shape[1:3]) <= an.MAX_SIDE


def test_a_model_alone_or_trained_otherwise_has_no_sweep(model_dir, sweep_dir, monkeypatch):
    assert ani.sweep_of(str(model_dir / "vae_2d.safetensors")) == []
    import os
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", os.pathsep.join([str(sweep_dir), str(model_dir)]))
    # vae_2d has the sweep's model config and beta 1, but 2 epochs and another evaluation set: not one of them
    assert ani.sweep_of(str(model_dir / "vae_2d.safetensors")) == []
    assert len(ani.sweep_of(str(sweep_dir / "sweep_beta_4.safetensors"))) == 3


# ----------------------------------------------------------------------------- on the Decoder page

def open_decoder(app, folder, name):
    app.session_state["model"] = str(folder / f"{name}.safetensors")
    app.switch_page("pages/decoder.py").run()
    assert not errors_of(app)
    return app


@pytest.mark.parametrize("what, frames", [(ani.WALK, 46), (ani.PATH, 48)])
def test_the_decoder_makes_and_offers_an_animation(app, model_dir, what, frames):
    at = open_decoder(app, model_dir, "vae_2d")
    assert "No β sweep holds this model" in texts_of(at) and "keeps no snapshots" in texts_of(at)
    at.selectbox(key="anim_what").set_value(what).run()
    at.button(key="anim_make").click().run()
    assert not errors_of(at)
    done = at.session_state[ani.RESULT_KEY]
    assert done["what"] == what and done["frames"] == frames and done["fmt"] == "gif"
    assert len(frames_of(done["bytes"], "gif")) == frames
    assert any(f"{frames} frames" in c for c in [c.value for c in at.caption])


def test_the_sweep_animation_on_the_page(app, sweep_dir, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", str(sweep_dir))
    at = open_decoder(app, sweep_dir, "sweep_beta_0.5")
    at.selectbox(key="anim_what").set_value(ani.SWEEP).run()
    at.radio(key="anim_fmt").set_value("mp4").run()
    at.button(key="anim_make").click().run()
    assert not errors_of(at)
    done = at.session_state[ani.RESULT_KEY]
    assert done["name"] == "beta-sweep.mp4" and len(frames_of(done["bytes"], "mp4")) == 3

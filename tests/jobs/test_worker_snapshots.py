"""A Train-page run keeps a few snapshots of itself (samples and a latent-means subsample) in its record, for
the animation of the run (vae_core/animation.training_frames)."""
from __future__ import annotations

import numpy as np
import torch

from jobs.worker import SNAPSHOT_POINTS, SNAPSHOTS, run_job, settings_to_dict
from vae_core import ModelConfig, TrainConfig, build_model, load_checkpoint, save_checkpoint
from vae_core.animation import encode, training_frames
from vae_core.record import parse_record


def test_a_run_records_bounded_snapshots_that_animate(job_data, tmp_path):
    cfg = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(16,))
    tcfg = TrainConfig(epochs=12, batch_size=200, train_limit=400, eval_limit=300, device="cpu")
    sent = []
    run_job(settings_to_dict(cfg, tcfg), str(job_data), lambda kind, payload: sent.append((kind, payload)),
            lambda: False, redraw_seconds=1e9)
    result = next(p for k, p in sent if k == "result")
    record = parse_record(result["record"])
    epochs = [s.epoch for s in record.snapshots]
    assert epochs[0] == 0 and epochs[-1] == 12 and len(epochs) == SNAPSHOTS and epochs == sorted(set(epochs))
    assert record.snapshots[0].caption == "After its first step" and record.snapshots[-1].caption == "After epoch 12"
    extras = result["extras"]
    assert extras["snapshot_previews"].shape[0] == SNAPSHOTS and extras["snapshot_previews"].dtype == np.uint8
    assert extras["snapshot_means"].shape == (SNAPSHOTS, min(SNAPSHOT_POINTS, 300), 2)
    model = build_model(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in result["state"].items()})
    path = save_checkpoint(tmp_path / "run.safetensors", model, record,
                           extras={k: torch.as_tensor(v) for k, v in extras.items()})
    snaps = load_checkpoint(path)[1].training_snapshots()
    assert len(snaps) == SNAPSHOTS
    assert not np.allclose(snaps[0].means, snaps[-1].means), "the latent map moved during training"
    frames = training_frames(snaps)
    assert frames.shape[0] == SNAPSHOTS and max(frames.shape[1:3]) <= 640
    assert encode(frames, "gif")[:6] == b"GIF89a"

"""Latent Lab's model core: VAE, CVAE, GSNN, hybrid, baseline and β-VAE models on MNIST-like images
(`VARIANTS`, the registry; `python -m vae_core variants` lists them).

A plain library (no UI imports): use it from a notebook, the CLI (`python -m vae_core`) or the app.

    from vae_core import ModelConfig, TrainConfig, build_model, prepare_data, fit, record_from_fit, save_checkpoint
    cfg, tc = ModelConfig(variant="beta-vae", latent_dim=2), TrainConfig(epochs=5)   # beta: the variant's (4)
    model = build_model(cfg)
    result = fit(model, prepare_data(tc), tc)
    save_checkpoint("runs/bvae.safetensors", model, record_from_fit(cfg, tc, result, name="my beta-vae"))

A VAE trained by other code: `explore(model)` (vae_core/importers.py; the protocol is in vae_core/external.py).
"""
from .checkpoints import CheckpointError, list_checkpoints, load_checkpoint, read_record, save_checkpoint
from .config import CONDITIONS, DATASETS, PRIORS, ModelConfig, TrainConfig, variant_names
from .data import (CLASS_NAMES, ENV_VAR, DatasetUnavailable, ImageDataset, load_dataset, locate_dataset,
                   make_batch, quadrant_input, quadrant_mask)
from .evaluation import (conditional_nll, encode_dataset, evaluate, evaluate_loss, evaluation_work, interpolate,
                         log_likelihood, log_likelihood_per_example, manifold_grid, sample_diversity)
from .external import OnnxModel, decoder_onnx, decoder_spec
from .importers import explore
from .models import (VARIANTS, LatentModel, Variant, build_model, compared_variants, plain_variant,
                     unconditional_variants, variant_table)
from .record import CheckpointRecord, History, record_from_fit
from .training import Callback, EpochInfo, FitResult, StepInfo, TrainingData, fit, prepare_data

__version__ = "0.1.0"

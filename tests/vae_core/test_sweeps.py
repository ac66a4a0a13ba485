"""β sweeps found from records (vae_core/record.py: sweep_key, beta_sweeps), the rate-distortion accessors,
and the classifier's reading of a decoded latent grid (vae_core/classifier.py)."""
import pytest
import torch

from vae_core import CheckpointRecord, ModelConfig, TrainConfig, build_model
from vae_core.classifier import DigitClassifier, latent_grid_readings, read_images
from vae_core.record import beta_sweeps

VAE = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(16,))


def record(beta=1.0, path="", model=VAE, **train) -> CheckpointRecord:
    return CheckpointRecord(model_config=model, train_config=TrainConfig(beta=beta, **train), path=path,
                            metrics={"kl": 3.0 / (beta + 1), "recon": 100.0 + beta, "test_images": 1000})


def test_records_that_differ_only_in_beta_form_a_sweep_sorted_by_beta():
    found = beta_sweeps([record(4.0, "a"), record(0.5, "b"), record(1.0, "c"), record(1.0, "other", seed=1)])
    assert [[r.path for r in group] for group in found] == [["b", "c", "a"]]


def test_anything_else_that_differs_splits_the_sweep():
    wider = ModelConfig(variant="vae", condition="none", latent_dim=2, hidden_dims=(32,))
    assert beta_sweeps([record(1.0), record(2.0, model=wider)]) == []
    assert beta_sweeps([record(1.0), record(2.0, epochs=3)]) == []
    fashion = CheckpointRecord(model_config=VAE, train_config=TrainConfig(beta=2.0, dataset="fashion-mnist"),
                               dataset="fashion-mnist")
    assert beta_sweeps([record(1.0), fashion]) == []


def test_one_model_per_beta_and_at_least_two_betas():
    assert beta_sweeps([record(1.0, "a"), record(1.0, "copy")]) == []
    found = beta_sweeps([record(1.0, "a"), record(1.0, "copy"), record(2.0, "b")])
    assert [r.path for r in found[0]] == ["a", "b"]


def test_no_sweep_without_a_training_config_or_a_kl_term():
    assert CheckpointRecord(model_config=VAE).sweep_key() is None
    gsnn = ModelConfig(variant="gsnn", condition="label", latent_dim=2, hidden_dims=(16,))
    assert record(model=gsnn).sweep_key() is None
    assert beta_sweeps([record(1.0, model=gsnn), record(2.0, model=gsnn)]) == []


def test_rate_distortion_and_test_images():
    r = record(1.0)
    assert r.rate_distortion() == (1.5, 101.0) and r.test_images == 1000 and r.beta == 1.0
    bare = CheckpointRecord(model_config=VAE, metrics={"kl": 2.0})
    assert bare.rate_distortion() is None and bare.test_images is None and bare.beta is None


def test_read_images_in_chunks_matches_one_batch():
    torch.manual_seed(0)
    clf = DigitClassifier().eval()
    images = torch.rand(300, 784)
    with torch.no_grad():
        whole = clf(images).softmax(-1)
    probs = read_images(clf, images, chunk=128)
    assert probs.shape == (300, 10)
    assert torch.allclose(probs, whole, atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(300), atol=1e-5)


def test_latent_grid_readings_orientation_and_label():
    """Row 0 is the top (highest z2), column 0 the left (lowest z1): the same image as decoding those points."""
    torch.manual_seed(0)
    clf = DigitClassifier().eval()
    model = build_model(VAE, seed=0)
    probs = latent_grid_readings(model, clf, (-2.0, 2.0), (-1.0, 3.0), n=5)
    assert probs.shape == (5, 5, 10)
    with torch.no_grad():
        corner = read_images(clf, model.decode(torch.tensor([[-2.0, 3.0], [2.0, -1.0]]), None))
    assert torch.allclose(probs[0, 0], corner[0], atol=1e-5) and torch.allclose(probs[4, 4], corner[1], atol=1e-5)
    label_model = build_model(ModelConfig(variant="cvae", condition="label", latent_dim=2, hidden_dims=(16,)), seed=0)
    as_seven = latent_grid_readings(label_model, clf, (-1.0, 1.0), (-1.0, 1.0), n=3, label=7)
    with torch.no_grad():
        direct = read_images(clf, label_model.decode(torch.tensor([[0.0, 0.0]]), torch.tensor([7])))
    assert torch.allclose(as_seven[1, 1], direct[0], atol=1e-5)
    with pytest.raises(ValueError, match="2-D latent"):
        latent_grid_readings(build_model(ModelConfig(variant="vae", latent_dim=3, hidden_dims=(8,)), seed=0), clf,
                             (-1, 1), (-1, 1), n=2)


def test_the_results_report_tables_every_sweep():
    from reports.results import _sweep_section
    models = {"a": (None, record(2.0, "/x/a.safetensors")), "b": (None, record(0.5, "/x/b.safetensors")),
              "alone": (None, record(1.0, "/x/c.safetensors", seed=3))}
    text = "\n".join(_sweep_section(models))
    assert text.count("## β sweep") == 1
    rows = [line for line in text.splitlines() if line.startswith("| 0.5 |") or line.startswith("| 2 |")]
    assert [r.split(" | ")[1] for r in rows] == ["`b`", "`a`"]          # sorted by β, found from the records
    assert "| 2.00 | 100.50 |" in rows[0] and "test images: 1,000" in text

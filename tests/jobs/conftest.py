"""Fixtures of the job tests: a small MNIST-shaped data folder and a JobService on a fresh folder."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "app"))
from apptest_helpers import write_synthetic_mnist  # noqa: E402


@pytest.fixture(scope="session")
def job_data(tmp_path_factory) -> Path:
    """A data root holding mnist/ with 1,000 synthetic training and 500 test images (fast, offline)."""
    return write_synthetic_mnist(tmp_path_factory.mktemp("job_data"))


@pytest.fixture
def make_service(tmp_path, monkeypatch, job_data):
    """make_service(**env) -> a JobService on a fresh folder with LATENT_LAB_* limits from env; shut down after."""
    from jobs.api import JobService
    from jobs.limits import read_limits

    monkeypatch.setenv("VAE_DATA_DIR", str(job_data))
    made = []

    def make(folder: Path | None = None, **env):
        values = {"LATENT_LAB_WARM_WORKER": "0", **{f"LATENT_LAB_{k.upper()}": str(v) for k, v in env.items()}}
        service = JobService(folder or tmp_path / f"runs{len(made)}", read_limits(values))
        made.append(service)
        return service

    yield make
    for service in made:
        service.shutdown()

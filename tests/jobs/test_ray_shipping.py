"""What the Ray backend sends to a cluster it did not start (no Ray processes here: ray's calls are stubbed).
The end-to-end run on a real separate cluster is tests/app/test_train_ray_cluster.py."""
import pytest

from jobs import ray_backend
from vae_core import load_dataset


def test_a_cluster_gets_only_vae_core_and_jobs_as_working_dir_and_the_data_path(monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", "/srv/data")
    remote = ray_backend.runtime_env(remote=True)
    assert remote["working_dir"] == str(ray_backend.ROOT) and "PYTHONPATH" not in remote["env_vars"]
    assert remote["env_vars"]["VAE_DATA_DIR"] == "/srv/data"
    top = {p.name for p in ray_backend.ROOT.iterdir()}
    assert {"checkpoints", "tests", "pages", "ui"} <= top
    assert set(remote["excludes"]) >= {f"/{name}" for name in top - {"vae_core", "jobs"}}
    assert not {"/vae_core", "/jobs"} & set(remote["excludes"])
    local = ray_backend.runtime_env(remote=False)  # a Ray of our own on this machine: a path is enough
    assert "working_dir" not in local and str(ray_backend.ROOT) in local["env_vars"]["PYTHONPATH"]


@pytest.mark.parametrize("address, remote", [("", False), ("local", False), ("10.0.0.5:6379", True)])
def test_ray_address_decides_what_travels(monkeypatch, address, remote):
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert bool(ray_backend.cluster_address()) == remote


class FakeRay:
    """ray.put / ray.get as an in-memory store."""

    def __init__(self):
        self.store, self.gets = {}, 0

    def put(self, value):
        ref = f"ref{len(self.store)}"
        self.store[ref] = value
        return ref

    def get(self, ref):
        self.gets += 1
        return self.store[ref]


def test_the_data_set_travels_through_the_object_store_and_is_unpacked_once_per_node(job_data, tmp_path,
                                                                                       monkeypatch):
    fake = FakeRay()
    shipped = ray_backend.pack_dataset(fake, "mnist", job_data)
    assert shipped["folder"] == "mnist" and len(fake.store["ref0"]) == 4
    monkeypatch.setattr(ray_backend.tempfile, "gettempdir", lambda: str(tmp_path / "node"))
    root = ray_backend.unpack_dataset(fake, shipped)
    assert root.startswith(str(tmp_path / "node")) and fake.gets == 1
    assert ray_backend.unpack_dataset(fake, shipped) == root and fake.gets == 1  # the second job: from disk
    here, there = load_dataset("mnist", "test", job_data), load_dataset("mnist", "test", root, download=False)
    assert (here.images == there.images).all() and (here.labels == there.labels).all()
    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data either
    assert ray_backend.pack_dataset(fake, "mnist", tmp_path / "empty") is None  # not on the server: nothing sent


def test_a_refused_connection_names_the_address_and_the_token_settings(monkeypatch):
    import ray

    def refuse(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ConnectionError, match=r"RAY_ADDRESS=10\.0\.0\.5:6379\); if the cluster uses Ray's token "
                                              r"authentication .* set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN"):
        ray_backend.ensure_ray()

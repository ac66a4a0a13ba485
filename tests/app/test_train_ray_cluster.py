"""The Train page on a Ray cluster it did not start (LATENT_LAB_RUNNER=ray, RAY_ADDRESS): a separate one-CPU
cluster (`ray start --head --block`, in its own process group, killed by this test) runs a tiny job through
the same page code. The code reaches the cluster as the job's working_dir (vae_core/ and jobs/ only), the data
set through the object store into the node's temporary folder, and the weights come back as messages that the
server saves: nothing relies on the node seeing this checkout or the server's data folder."""
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from apptest_helpers import ROOT, run_a_tiny_job, save_the_finished_run


ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_ray_auth() -> None:
    """Ray caches the authentication mode and token per process: read them again from the environment."""
    from ray._raylet import AuthenticationTokenLoader, Config
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture
def ray_cluster(monkeypatch):
    """A one-CPU Ray head started apart from this process, with token authentication (Ray's default for
    `ray start`) and a token of its own, which this process is given as a teacher would give it
    (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN); yields (address, the node's temporary folder, Ray's folder)."""
    base = Path(tempfile.mkdtemp(prefix="llray"))  # short: Ray's socket paths live under it
    node_tmp = base / "node"
    node_tmp.mkdir()
    port = free_port()
    token = secrets.token_hex(32)
    env = {**os.environ, "TMPDIR": str(node_tmp), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": token}
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    log = open(base / "ray_start.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--num-cpus", "1", "--port", str(port), "--include-dashboard=false",
                             "--temp-dir", str(base / "ray"), "--disable-usage-stats"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(base), start_new_session=True)
    try:
        end = time.monotonic() + 60
        while "Ray runtime started" not in (base / "ray_start.log").read_text():
            assert proc.poll() is None and time.monotonic() < end, (base / "ray_start.log").read_text()[-2000:]
            time.sleep(0.3)
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        monkeypatch.setenv("RAY_AUTH_TOKEN", token)
        monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
        reset_ray_auth()
        yield f"127.0.0.1:{port}", node_tmp, base / "ray"
    finally:
        monkeypatch.undo()  # the next test's Ray reads its own settings
        reset_ray_auth()
        proc.terminate()  # `ray start --block` stops what it started on SIGTERM ...
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:  # ... and whatever is left of its process group (only this cluster's processes) is killed
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        log.close()
        subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture
def cluster_train(app, tmp_path, model_dir, monkeypatch, ray_cluster):
    address, node_tmp, ray_tmp = ray_cluster
    monkeypatch.setenv("LATENT_LAB_MODEL_DIRS", f"{tmp_path / 'runs'}{os.pathsep}{model_dir}")
    monkeypatch.setenv("LATENT_LAB_RUNNER", "ray")
    monkeypatch.setenv("LATENT_LAB_MAX_RUNS", "1")
    monkeypatch.setenv("RAY_ADDRESS", address)
    ray.shutdown()  # a Ray left connected by another test would be reused
    app.switch_page("pages/train.py").run()
    yield app, node_tmp, ray_tmp
    from jobs.api import shutdown_all
    shutdown_all()
    ray.shutdown()


def test_a_tiny_job_runs_on_a_separate_ray_cluster_through_the_train_page(cluster_train, tmp_path):
    at, node_tmp, ray_tmp = cluster_train
    snap = run_a_tiny_job(at)
    assert snap.status == "completed", snap.message
    from ui.training_job import jobs
    service = jobs()
    assert service.backend.name == "ray" and service.backend.remote
    assert snap.backend == "ray" and len(snap.steps["step"]) == snap.total_steps > 0
    assert snap.latent is not None and snap.preview is not None and snap.can_save

    # the code came as the job's working_dir (vae_core and jobs only), not from this checkout
    from jobs.ray_backend import _job_actor
    probe = _job_actor().remote()
    origin = ray.get(probe.origin.remote(), timeout=60)
    ray.kill(probe)
    shipped = Path(origin["code"]).resolve()
    assert not shipped.is_relative_to(ROOT) and shipped.is_relative_to(ray_tmp.resolve()), origin
    package = shipped.parents[1]
    assert sorted(p.name for p in package.iterdir()) == ["jobs", "vae_core"], sorted(package.iterdir())
    # the data set came through the object store into the node's temporary folder
    [cache] = list(node_tmp.glob("latent-lab-ray-data-*/*/mnist"))
    assert len([f for f in cache.iterdir() if "idx" in f.name]) == 4

    # the weights came back as messages: the server saves them into its own folder
    save_the_finished_run(at, "from_cluster")
    assert (tmp_path / "runs" / "from_cluster.safetensors").is_file()

"""OpenMP's wait policy for the server and for its training workers. libgomp reads `OMP_WAIT_POLICY` once, when
torch loads, so each process sets it before its first torch import; nothing here imports torch.

The server (app.py) explores: small torch calls between a class's clicks, beside workers that train. Its OpenMP
threads sleep while they wait (PASSIVE), so that they never spin on a core a worker or the browser needs.

A worker trains, and `fit`'s thread count follows the free cores (vae_core/cpu.py): one thread beside other
work, every core on an idle machine. Two threads only pay with OpenMP's default wait: with PASSIVE they are no
faster than one (vae_core/cpu.py's table). So the fork server that every worker is forked from
(jobs/preload.py) drops the server's PASSIVE before it loads torch, but keeps a policy the person who started the
server chose. A worker spawned afresh (`LATENT_LAB_WARM_WORKER=0`) and a Ray actor keep PASSIVE.
"""
from __future__ import annotations

import os

VAR = "OMP_WAIT_POLICY"
CHOSEN_BY_SERVER = "LATENT_LAB_SERVER_WAIT_POLICY"   # set beside VAR when the server chose it, not the person


def for_the_server() -> None:
    """PASSIVE, unless the environment already names a policy (app.py, before torch is imported)."""
    if VAR not in os.environ:
        os.environ[VAR] = "PASSIVE"
        os.environ[CHOSEN_BY_SERVER] = "1"


def for_a_worker() -> None:
    """OpenMP's default, unless the person chose a policy (the fork server, before torch)."""
    if os.environ.pop(CHOSEN_BY_SERVER, None):
        os.environ.pop(VAR, None)

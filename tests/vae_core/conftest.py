"""vae_core tests run tiny models: one torch thread is faster for them than two, and far faster when
the CPU is shared (two threads on a busy 2-core machine spin and wait on each other)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

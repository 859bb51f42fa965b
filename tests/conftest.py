import os

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny products: thread hand-offs would dominate on a busy machine (as in ``compute_threads``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o022)``); the previous one comes back after it."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)

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


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Prepared datasets of the tests (and of the processes they start) go to a folder of this session, never the user's cache."""
    previous = os.environ.get("PIXELRNN_CACHE_DIR")
    os.environ["PIXELRNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("pixelrnn-cache"))
    yield
    if previous is None:
        os.environ.pop("PIXELRNN_CACHE_DIR", None)
    else:
        os.environ["PIXELRNN_CACHE_DIR"] = previous

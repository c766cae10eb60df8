import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module: tiny inputs gain nothing from two, and a busy
    machine loses a lot. Request it (or ``pytestmark = pytest.mark.usefixtures(...)``)
    instead of writing a module-local copy."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

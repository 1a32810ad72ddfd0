"""Fixtures: `backend` runs a test once per kernel backend. A missing 'cpu' build fails the test (the
suite must not silently test the reference against itself); a missing 'cuda' build skips."""
import numpy as np
import pytest

import engine
from engine import backend as backends

BACKENDS = ["ref", "cpu", "cuda"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name == "cuda" and not backends.available("cuda"):
        pytest.skip("cuda: engine._cuda is not built on this machine")
    return backends.get(name)            # raises RuntimeError for a missing 'cpu' build: a failure


@pytest.fixture(params=["ref", "cpu"])
def engine_backend(request):
    """Run the test with engine.set_backend(name) active, then restore the previous backend."""
    with engine.use_backend(request.param):
        yield request.param


@pytest.fixture
def threads():
    """Yields a setter for the thread count and restores the original count afterwards."""
    original = engine.get_num_threads()
    yield engine.set_num_threads
    engine.set_num_threads(original)


@pytest.fixture(autouse=True)
def _seeded():
    np.random.seed(0)

"""Fixtures: `backend` runs a test once per kernel backend, and the cpu kernels once per SIMD path this CPU
has ('cpu' is the path it picks itself; 'cpu-avx2' and 'cpu-portable' the narrower ones, forced with
engine.set_simd). A missing 'cpu' build fails the test (the suite must not silently test the reference
against itself); a missing 'cuda' build skips. `simd_path` runs a test once per SIMD path."""
import numpy as np
import pytest

import engine
from checks import SIMD_PATHS
from engine import backend as backends

BACKENDS = ["ref", "cpu"] + [f"cpu-{path}" for path in SIMD_PATHS[1:]] + ["cuda"]


def _on_path(path):
    """Switch the cpu kernels to `path` for one test, then back to the path they had."""
    cpu = backends.get("cpu")
    before = cpu.simd_path()
    cpu.set_simd(path)
    try:
        yield path
    finally:
        cpu.set_simd(before)


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name == "cuda" and not backends.available("cuda"):
        pytest.skip("cuda: engine._cuda is not built on this machine")
    if name.startswith("cpu-"):
        for _ in _on_path(name[4:]):
            yield backends.get("cpu")
        return
    yield backends.get(name)             # raises RuntimeError for a missing 'cpu' build: a failure


@pytest.fixture(params=SIMD_PATHS)
def simd_path(request):
    """The test runs once per SIMD path this CPU has, with the cpu kernels switched to it."""
    yield from _on_path(request.param)


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

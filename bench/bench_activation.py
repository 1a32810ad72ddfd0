"""Activation benchmarks: every activation's forward and backward at 1e4 and 1e6 elements, and softmax
over the last axis of (4096, 1024), for ref, cpu, the plain NumPy formula and PyTorch (when installed).

Each benchmark validates once against the float64 reference (engine.ref on float64 input), then times.
Rates: extra_info['gelems'] (elements per second, in 1e9) and a nominal extra_info['gbps'] (the bytes
of the kernel's inputs and output, 4 per float32); the summary table shows Gelem/s.

    OMP_NUM_THREADS=2 pytest bench/bench_activation.py --benchmark-only --benchmark-group-by=group
"""
import functools

import numpy as np
import pytest

from _util import IMPLS, backend_or_skip, random_f32, timed
from engine import ref

ACTIVATIONS = ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "silu", "softplus"]
SIZES = [10 ** 4, 10 ** 6]
SOFTMAX_SHAPE = (4096, 1024)
RTOL, ATOL = 2e-5, 2e-6          # float32 results against the float64 reference (a few ulps)


def _label(n):
    return f"1e{len(str(n)) - 1}"


@functools.lru_cache(maxsize=4)
def _data(name, n):
    """x, dy, y = ref forward(x) in float32 (the y every backward gets), and the float64 answers."""
    x, dy = random_f32(n, seed=1, scale=2.0), random_f32(n, seed=2)
    y = getattr(ref, f"{name}_forward")(x)
    x64, dy64, y64 = (v.astype(np.float64) for v in (x, dy, y))
    y_exact = getattr(ref, f"{name}_forward")(x64)
    dx_exact = getattr(ref, f"{name}_backward")(dy64, x64, y64)
    return x, dy, y, y_exact, dx_exact


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n", SIZES, ids=_label)
def test_activation_forward(benchmark, n, name, impl):
    kernels = backend_or_skip(impl)
    fn = kernels.kernel(f"{name}_forward")
    x, _, _, y_exact, _ = _data(name, n)
    (xk,) = kernels.prepare(x)
    out = kernels.to_numpy(fn(xk))
    assert out.dtype == np.float32, f"{impl} {name}_forward returned {out.dtype}"
    np.testing.assert_allclose(out, y_exact, rtol=RTOL, atol=ATOL, err_msg=f"{impl} {name}_forward")
    timed(benchmark, fn, xk, group=f"activation_forward_{_label(n)}", row=name, order=ACTIVATIONS.index(name),
          impl=impl, work=n, unit="Gelem/s", nbytes=2 * 4 * n, row_name="activation")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n", SIZES, ids=_label)
def test_activation_backward(benchmark, n, name, impl):
    kernels = backend_or_skip(impl)
    fn = kernels.kernel(f"{name}_backward")
    x, dy, y, _, dx_exact = _data(name, n)
    args = kernels.prepare(dy, x, y)
    out = kernels.to_numpy(fn(*args))
    assert out.dtype == np.float32, f"{impl} {name}_backward returned {out.dtype}"
    np.testing.assert_allclose(out, dx_exact, rtol=RTOL, atol=ATOL, err_msg=f"{impl} {name}_backward")
    timed(benchmark, fn, *args, group=f"activation_backward_{_label(n)}", row=name, order=ACTIVATIONS.index(name),
          impl=impl, work=n, unit="Gelem/s", nbytes=4 * 4 * n, row_name="activation")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [SOFTMAX_SHAPE], ids=lambda s: "x".join(map(str, s)))
def test_softmax_forward(benchmark, shape, impl):
    kernels = backend_or_skip(impl)
    fn = kernels.kernel("softmax_forward")
    x = random_f32(*shape, seed=1, scale=3.0)
    expected = ref.softmax_forward(x.astype(np.float64), axis=-1)
    (xk,) = kernels.prepare(x)
    out = kernels.to_numpy(fn(xk, -1))
    assert out.dtype == np.float32, f"{impl} softmax_forward returned {out.dtype}"
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=1e-7, err_msg=f"{impl} softmax_forward")
    n = x.size
    timed(benchmark, fn, xk, -1, group="softmax_forward", row="x".join(map(str, shape)), impl=impl,
          work=n, unit="Gelem/s", nbytes=2 * 4 * n, row_name="shape")

"""Layer normalisation benchmarks over the last axis of (4096, 1024), forward and backward (dx, dgamma, dbeta),
for the NumPy reference ('ref'), engine's kernel ('cpu'), the plain NumPy formula ('numpy') and PyTorch's
native_layer_norm and its backward ('torch', when installed). Each validates once against the float64
reference, then times. The summary table gives Gelem/s and the ratios cpu/numpy, cpu/ref, cpu/torch.

    OMP_NUM_THREADS=2 pytest bench/bench_layernorm.py --benchmark-only --benchmark-group-by=group
"""
import functools

import numpy as np
import pytest

from _util import backend_or_skip, random_f32, timed
from engine import ref

SHAPE = (4096, 1024)
EPS = 1e-5
IMPLS = ["ref", "cpu", "numpy", "torch"]


@functools.lru_cache(maxsize=1)
def _data():
    x, dy = random_f32(*SHAPE, seed=1, scale=2.0), random_f32(*SHAPE, seed=2)
    gamma, beta = random_f32(SHAPE[1], seed=3), random_f32(SHAPE[1], seed=4)
    y, mean, rstd = ref.layer_norm_forward(x, gamma, beta, EPS)
    exact = [a.astype(np.float64) for a in (x, gamma, beta, dy)]
    y64, mean64, rstd64 = ref.layer_norm_forward(exact[0], exact[1], exact[2], EPS)
    grads64 = ref.layer_norm_backward(exact[3], exact[0], mean64, rstd64, exact[1])
    return x, dy, gamma, beta, mean, rstd, y64, grads64


def _numpy_forward(x, gamma, beta):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def _numpy_backward(dy, x, mean, rstd, gamma):
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = dy * gamma
    dx = rstd[:, None] * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(0), dy.sum(0)


def _impl(name, direction):
    """(fn, args, to_numpy): the forward (-> y) or the backward (-> dx, dgamma, dbeta) of implementation `name`."""
    x, dy, gamma, beta, mean, rstd, _, _ = _data()
    if name == "torch":
        torch = pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
        t = [torch.from_numpy(a) for a in (x, dy, gamma, beta, mean[:, None].copy(), rstd[:, None].copy())]
        if direction == "forward":
            return (lambda x_, g_, b_: torch.nn.functional.layer_norm(x_, (SHAPE[1],), g_, b_, EPS),
                    (t[0], t[2], t[3]), lambda y: y.numpy())
        return (lambda d, x_, m, r, g_, b_: torch.ops.aten.native_layer_norm_backward(d, x_, (SHAPE[1],), m, r, g_, b_,
                                                                                         [True, True, True]),
                (t[1], t[0], t[4], t[5], t[2], t[3]), lambda out: tuple(o.numpy() for o in out))
    if name == "numpy":
        if direction == "forward":
            return _numpy_forward, (x, gamma, beta), np.asarray
        return _numpy_backward, (dy, x, mean, rstd, gamma), tuple
    kernels = backend_or_skip(name).kernels
    if direction == "forward":
        return (lambda x_, g_, b_: kernels.layer_norm_forward(x_, g_, b_, EPS)[0]), (x, gamma, beta), np.asarray
    return kernels.layer_norm_backward, (dy, x, mean, rstd, gamma), tuple


@pytest.mark.parametrize("impl", IMPLS)
def test_layer_norm_forward(benchmark, impl):
    fn, args, to_numpy = _impl(impl, "forward")
    np.testing.assert_allclose(to_numpy(fn(*args)), _data()[6], rtol=1e-4, atol=1e-4)
    n = SHAPE[0] * SHAPE[1]
    timed(benchmark, fn, *args, group="layer_norm_forward", row="4096x1024", impl=impl, work=n, unit="Gelem/s",
          nbytes=2 * 4 * n, row_name="shape")


@pytest.mark.parametrize("impl", IMPLS)
def test_layer_norm_backward(benchmark, impl):
    fn, args, to_numpy = _impl(impl, "backward")
    for got, want in zip(to_numpy(fn(*args)), _data()[7]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    n = SHAPE[0] * SHAPE[1]
    timed(benchmark, fn, *args, group="layer_norm_backward", row="4096x1024", impl=impl, work=n, unit="Gelem/s",
          nbytes=3 * 4 * n, row_name="shape")


def main(rounds=7):
    """Engine vs PyTorch, interleaved (python bench/bench_layernorm.py [rounds]): forward and backward."""
    from _util import interleaved, print_interleaved
    cases = {}
    for direction in ("forward", "backward"):
        cases[f"layer norm {direction} 4096x1024"] = {impl: (lambda f=_impl(impl, direction): f[0](*f[1]))
                                                     for impl in ("cpu", "torch")}
    print_interleaved("engine vs PyTorch, interleaved medians", interleaved(cases, rounds))


if __name__ == "__main__":
    import sys
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)

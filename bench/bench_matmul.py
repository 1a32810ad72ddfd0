"""Matmul benchmarks: forward at sizes 64..2048, the kernel ladder's rungs, backward, transposed operands.

Each benchmark validates its implementation once against a float64 a @ b (within the float32 bound
c * K * eps * (|A| @ |B|)), then times it; rates (GFLOP/s = 2 n^3 / mean time) go to extra_info['gflops']
and to the summary table that bench/conftest.py prints after pytest-benchmark's own.

    OMP_NUM_THREADS=2 pytest bench/bench_matmul.py --benchmark-only --benchmark-group-by=param:n
"""
import functools

import numpy as np
import pytest

from _util import IMPLS, assert_gemm_close, backend_or_skip, gemm_exact, random_f32, timed

SIZES = [64, 128, 256, 512, 1024, 2048]
LADDER_SIZES = [128, 256]
LADDER = ["v1", "v2", "v3", "v4", "cpu", "numpy"]     # the rungs, then the shipped kernel and NumPy
V1_MAX_N = 256                                         # v1 is the naive triple loop: minutes at 2048
BACKWARD_SIZES = [256, 1024]
TRANS_N = 1024
TRANSPOSES = {"NN": (False, False), "TN": (True, False), "NT": (False, True), "TT": (True, True)}


@functools.lru_cache(maxsize=2)
def _inputs(n):
    """a, b (n, n) and their float64 product and magnitude, shared by every implementation at size n."""
    a, b = random_f32(n, n, seed=1), random_f32(n, n, seed=2)
    return a, b, gemm_exact(a, b)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", SIZES)
def test_matmul_forward(benchmark, n, impl):
    kernels = backend_or_skip(impl)
    a, b, exact = _inputs(n)
    fn = kernels.kernel("matmul_forward")
    x, y = kernels.prepare(a, b)
    assert_gemm_close(kernels.to_numpy(fn(x, y)), a, b, exact=exact)
    timed(benchmark, fn, x, y, group="matmul_forward", row=n, order=n, impl=impl, work=2 * n ** 3)


@pytest.mark.parametrize("impl", LADDER)
@pytest.mark.parametrize("n", LADDER_SIZES)
def test_matmul_ladder(benchmark, n, impl):
    """The rungs v1 (naive) .. v4 side by side, with the shipped matmul_forward and numpy.matmul."""
    if impl == "v1" and n > V1_MAX_N:
        pytest.skip(f"v1 is the naive loop: only timed at n <= {V1_MAX_N}")
    if impl.startswith("v"):
        fn = getattr(backend_or_skip("cpu").kernels.ladder, f"matmul_forward_{impl}")
    else:
        fn = backend_or_skip(impl).kernel("matmul_forward")
    a, b, exact = _inputs(n)
    assert_gemm_close(fn(a, b), a, b, exact=exact)
    timed(benchmark, fn, a, b, group="matmul_ladder", row=n, order=n, impl=impl, work=2 * n ** 3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", BACKWARD_SIZES)
def test_matmul_backward(benchmark, n, impl):
    """da = dc @ b^T and db = a^T @ dc: two GEMMs, 4 n^3 flops."""
    kernels = backend_or_skip(impl)
    fn = kernels.kernel("matmul_backward")
    a, b = random_f32(n, n, seed=1), random_f32(n, n, seed=2)
    dc = random_f32(n, n, seed=3)
    x = kernels.prepare(dc, a, b)
    da, db = kernels.to_numpy(fn(*x))
    assert_gemm_close(da, dc, b.T)
    assert_gemm_close(db, a.T, dc)
    timed(benchmark, fn, *x, group="matmul_backward", row=n, order=n, impl=impl, work=4 * n ** 3)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("trans", list(TRANSPOSES))
@pytest.mark.parametrize("n", [TRANS_N])
def test_matmul_forward_transposed(benchmark, n, trans, impl):
    """op(a) @ op(b) with a and/or b stored transposed (T) or not (N): 'TN' means trans_a=True."""
    kernels = backend_or_skip(impl)
    fn = kernels.kernel("matmul_forward")
    trans_a, trans_b = TRANSPOSES[trans]
    a, b = random_f32(n, n, seed=1), random_f32(n, n, seed=2)
    A, B = (a.T if trans_a else a), (b.T if trans_b else b)
    x, y = kernels.prepare(a, b)
    assert_gemm_close(kernels.to_numpy(fn(x, y, trans_a, trans_b)), A, B)
    timed(benchmark, fn, x, y, trans_a, trans_b, group="matmul_forward_transposed",
          row=f"{n} {trans}", order=list(TRANSPOSES).index(trans), impl=impl, work=2 * n ** 3,
          row_name="n op")


# The shapes the GEMM issue sets targets for, as (label, M, K, N, trans_a, trans_b) with the target: at least
# this fraction of NumPy's speed (0.67 = no more than 1.5x NumPy's time per call, overhead included).
# The digits MLP (64-128-64-10, batch 32): forward x @ W, and backward dx = dz @ W^T, dW = x^T @ dz.
TARGETS = [
    ("1024^3", 1024, 1024, 1024, False, False, 0.90), ("2048^3", 2048, 2048, 2048, False, False, 0.90),
    ("256^3", 256, 256, 256, False, False, 0.80), ("4096x512 @ 512x512", 4096, 512, 512, False, False, 0.80),
    ("64^3", 64, 64, 64, False, False, 0.67),
    ("mlp fwd 32x64 @ 64x128", 32, 64, 128, False, False, 0.67),
    ("mlp fwd 32x128 @ 128x64", 32, 128, 64, False, False, 0.67),
    ("mlp fwd 32x64 @ 64x10", 32, 64, 10, False, False, 0.67),
    ("mlp dx 32x128 @ (64x128)^T", 32, 128, 64, False, True, 0.67),
    ("mlp dW (32x64)^T @ 32x128", 64, 32, 128, True, False, 0.67),
    ("mlp dx 32x10 @ (64x10)^T", 32, 10, 64, False, True, 0.67),
]


@pytest.mark.parametrize("impl", ["cpu", "numpy", "torch"])
@pytest.mark.parametrize("target", TARGETS, ids=[t[0] for t in TARGETS])
def test_matmul_targets(benchmark, target, impl):
    """The GEMM issue's target shapes: the summary's cpu/numpy column is the fraction of NumPy's speed (the
    target for each row is in the benchmark's extra_info['target'])."""
    label, M, K, N, trans_a, trans_b, goal = target
    kernels = backend_or_skip(impl)
    fn = kernels.kernel("matmul_forward")
    a = random_f32(K, M, seed=1) if trans_a else random_f32(M, K, seed=1)
    b = random_f32(N, K, seed=2) if trans_b else random_f32(K, N, seed=2)
    x, y = kernels.prepare(a, b)
    assert_gemm_close(kernels.to_numpy(fn(x, y, trans_a, trans_b)), a.T if trans_a else a, b.T if trans_b else b)
    benchmark.extra_info["target"] = goal
    timed(benchmark, fn, x, y, trans_a, trans_b, group="matmul_targets", row=label, order=TARGETS.index(target),
          impl=impl, work=2 * M * N * K, row_name="shape")

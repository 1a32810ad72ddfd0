"""Helpers shared by the benchmarks: implementations by name, inputs, the validation bound, and the rate
bookkeeping that bench/conftest.py turns into the GFLOP/s (or Gelem/s) summary tables.

Implementations, all called with the engine's kernel names and signatures:
    'ref'    engine.ref, the NumPy reference kernels (argument checks included)
    'cpu'    engine._cpu, the compiled C++/OpenMP kernels
    'cuda'   engine._cuda, where built
    'numpy'  the plain NumPy formula: numpy.matmul, np.maximum(x, 0), 1 / (1 + np.exp(-x)), ...
    'torch'  PyTorch CPU, only when it can be imported (never required)
A kernel an implementation lacks (e.g. exact GELU in plain NumPy, which has no erf) skips its benchmark.
"""
import functools
import os
import sys
import time
import types

import numpy as np
import pytest

import engine
from engine import backend as backends

EPS32 = np.finfo(np.float32).eps
IMPLS = ["ref", "cpu", "numpy", "torch"]


def random_f32(*shape, seed=0, scale=1.0):
    """Standard-normal float32 array of `shape` (times `scale`), the same for the same seed."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------ implementations

class Impl:
    """One implementation under test: `kernels` has the engine's kernel names; `prepare` turns a NumPy
    input into what the kernels take (run before timing, so conversion is never timed); `to_numpy` turns
    an output (or a tuple of outputs) back into NumPy for validation."""

    def __init__(self, name, kernels, prepare=None, to_numpy=None):
        self.name, self.kernels = name, kernels
        self._prepare = prepare or (lambda x: x)
        self._to_numpy = to_numpy or np.asarray

    def kernel(self, fname):
        """The kernel `fname`, or skip the benchmark when this implementation has none."""
        fn = getattr(self.kernels, fname, None)
        if fn is None:
            pytest.skip(f"{self.name}: no {fname} (no such kernel or plain formula)")
        return fn

    def prepare(self, *arrays):
        return tuple(self._prepare(a) for a in arrays)

    def to_numpy(self, out):
        if isinstance(out, (tuple, list)):
            return tuple(self._to_numpy(o) for o in out)
        return self._to_numpy(out)

    def __repr__(self):
        return f"Impl({self.name!r})"


def _swap(x):
    return np.swapaxes(x, -1, -2)


def _numpy_kernels():
    """The plain NumPy formula for each kernel that has one. No argument checks, no overflow guards:
    what someone would write inline."""
    k = types.SimpleNamespace()
    f32 = np.float32

    def matmul_forward(a, b, trans_a=False, trans_b=False):
        return np.matmul(_swap(a) if trans_a else a, _swap(b) if trans_b else b)

    def matmul_backward(dc, a, b, trans_a=False, trans_b=False):
        A, B = (_swap(a) if trans_a else a), (_swap(b) if trans_b else b)
        da, db = dc @ _swap(B), _swap(A) @ dc
        return (_swap(da) if trans_a else da), (_swap(db) if trans_b else db)

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    k.matmul_forward, k.matmul_backward = matmul_forward, matmul_backward
    k.linear_forward = lambda x: x.copy()
    k.linear_backward = lambda dy, x, y: dy.copy()
    k.relu_forward = lambda x: np.maximum(x, 0)
    k.relu_backward = lambda dy, x, y: dy * (x > 0)
    k.leaky_relu_forward = lambda x: np.where(x > 0, x, f32(0.2) * x)
    k.leaky_relu_backward = lambda dy, x, y: np.where(x > 0, dy, f32(0.2) * dy)
    k.sigmoid_forward = sigmoid
    k.sigmoid_backward = lambda dy, x, y: dy * y * (1 - y)
    k.tanh_forward = np.tanh
    k.tanh_backward = lambda dy, x, y: dy * (1 - y * y)
    k.elu_forward = lambda x: np.where(x > 0, x, np.expm1(x))
    k.elu_backward = lambda dy, x, y: np.where(x > 0, dy, dy * (y + 1))
    # gelu: the exact GELU needs erf, which NumPy lacks: no plain formula, so no 'numpy' benchmark.
    k.silu_forward = lambda x: x / (1 + np.exp(-x))
    k.silu_backward = lambda dy, x, y: (lambda s: dy * s * (1 + x * (1 - s)))(sigmoid(x))
    k.softplus_forward = lambda x: np.logaddexp(x, f32(0))
    k.softplus_backward = lambda dy, x, y: dy * sigmoid(x)

    def softmax_forward(x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    k.softmax_forward = softmax_forward
    return k


def _torch_kernels(torch):
    """PyTorch CPU with the engine's signatures. Backward kernels are ATen's own backward ops, so only
    the gradient formula is timed (no autograd graph)."""
    F, aten = torch.nn.functional, torch.ops.aten
    k = types.SimpleNamespace()

    def op(x, t):
        return x.transpose(-1, -2) if t else x

    def matmul_forward(a, b, trans_a=False, trans_b=False):
        return torch.matmul(op(a, trans_a), op(b, trans_b))

    def matmul_backward(dc, a, b, trans_a=False, trans_b=False):
        A, B = op(a, trans_a), op(b, trans_b)
        return op(torch.matmul(dc, B.transpose(-1, -2)), trans_a), op(torch.matmul(A.transpose(-1, -2), dc), trans_b)

    k.matmul_forward, k.matmul_backward = matmul_forward, matmul_backward
    k.linear_forward = lambda x: x.clone()
    k.linear_backward = lambda dy, x, y: dy.clone()
    k.relu_forward = torch.relu
    k.relu_backward = lambda dy, x, y: aten.threshold_backward(dy, x, 0.0)
    k.leaky_relu_forward = lambda x: F.leaky_relu(x, 0.2)
    k.leaky_relu_backward = lambda dy, x, y: aten.leaky_relu_backward(dy, x, 0.2, False)
    k.sigmoid_forward = torch.sigmoid
    k.sigmoid_backward = lambda dy, x, y: aten.sigmoid_backward(dy, y)
    k.tanh_forward = torch.tanh
    k.tanh_backward = lambda dy, x, y: aten.tanh_backward(dy, y)
    k.elu_forward = lambda x: F.elu(x, 1.0)
    k.elu_backward = lambda dy, x, y: aten.elu_backward(dy, 1.0, 1, 1, False, x)
    k.gelu_forward = F.gelu
    k.gelu_backward = lambda dy, x, y: aten.gelu_backward(dy, x)
    k.silu_forward = F.silu
    k.silu_backward = lambda dy, x, y: aten.silu_backward(dy, x)
    k.softplus_forward = F.softplus
    k.softplus_backward = lambda dy, x, y: aten.softplus_backward(dy, x, 1.0, 20.0)
    k.softmax_forward = lambda x, axis=-1: torch.softmax(x, axis)
    return k


@functools.lru_cache(maxsize=None)
def _impl(name):
    if name in ("ref", "cpu", "cuda"):
        return Impl(name, backends.get(name))
    if name == "numpy":
        return Impl("numpy", _numpy_kernels())
    if name == "torch":
        import torch
        return Impl("torch", _torch_kernels(torch), prepare=torch.from_numpy,
                    to_numpy=lambda t: t.detach().cpu().numpy())
    raise ValueError(f"backend_or_skip: expected one of 'ref', 'cpu', 'cuda', 'numpy', 'torch'. Received: {name!r}")


def backend_or_skip(name):
    """The Impl called `name`, or skip the benchmark when it is not built ('cpu', 'cuda') or not
    installed ('torch')."""
    if name in ("ref", "cpu", "cuda") and not backends.available(name):
        pytest.skip(f"{name}: the engine's '{name}' kernels are not built here")
    if name == "torch":
        pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
    return _impl(name)


# ------------------------------------------------------------------------------------------ validation

def assert_gemm_close(c, a, b, c_factor=2.0, exact=None):
    """c must equal a @ b within c_factor * K * eps32 * (|a| @ |b|), the float32 rounding bound of a
    K-term dot product in any summation order (a relative tolerance on c fails on valid kernels where
    terms cancel). `exact` may pass a precomputed (a @ b, |a| @ |b|) pair in float64."""
    c = np.asarray(c, np.float64)
    if exact is None:
        exact = gemm_exact(a, b)
    value, magnitude = exact
    assert c.shape == value.shape, f"shape {c.shape}, expected {value.shape}"
    bound = c_factor * max(a.shape[-1], 1) * EPS32 * magnitude + 1e-30
    worst = float(np.max(np.abs(c - value) / bound)) if c.size else 0.0
    assert worst <= 1.0, f"error {worst:.2f}x the float32 bound c*K*eps*(|A|@|B|) (c={c_factor})"


def gemm_exact(a, b):
    """(a @ b, |a| @ |b|) in float64."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


# -------------------------------------------------------------------------------------- bookkeeping

def thread_info():
    """What decides how many threads each implementation used, for benchmark.extra_info."""
    info = {
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "engine_threads": engine.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if backends.available("cpu"):
        info["simd"] = backends.get("cpu").simd_path()
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info


def settings_line():
    """One line naming what decides the numbers: thread counts, the engine's SIMD path, PyTorch's threads."""
    return "settings: " + ", ".join(f"{k}={v}" for k, v in thread_info().items())


# Another library's thread pool keeps its cores busy for a while after its last call: measured here, the
# cpu matmul at n=256 right after numpy.matmul (OpenBLAS) stalled 4-28 ms per call for ~120 ms, which
# quadrupled its mean time. So each benchmark first runs its function for SETTLE_S (at least once).
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "0.2"))


def settle(fn, *args, seconds=None):
    """Call fn(*args) until `seconds` (default SETTLE_S) have passed, at least once: a warm-up that also
    lets the thread pools of the previous benchmark's library go idle."""
    end = time.perf_counter() + (SETTLE_S if seconds is None else seconds)
    fn(*args)
    while time.perf_counter() < end:
        fn(*args)


def timed(benchmark, fn, *args, group, row, impl, work, unit="GFLOP/s", order=0, nbytes=None, row_name="n"):
    """Time fn(*args) with `benchmark` and record a rate for the summary table.

    group: the benchmark group (one summary table per group); row, impl: the table's row label and column
    (row_name heads the row labels);
    work: floating-point operations (unit 'GFLOP/s') or elements (unit 'Gelem/s') per call; order: sorts
    the rows; nbytes: bytes the call reads and writes, for a nominal GB/s.
    Runs settle() first. Rates use the mean time (extra_info['gflops'] or ['gelems'], plus a *_median twin); with
    --benchmark-disable the function runs once and no rate is recorded."""
    key = {"GFLOP/s": "gflops", "Gelem/s": "gelems"}[unit]
    benchmark.group = group
    info = benchmark.extra_info
    info.update(row=str(row), row_name=row_name, impl=impl, work=work, rate_unit=unit, rate_key=key,
                order=order)
    if nbytes is not None:
        info["bytes"] = nbytes
    if not benchmark.disabled:
        settle(fn, *args)
    result = benchmark(fn, *args)
    if benchmark.stats is not None:                    # None when --benchmark-disable
        s = benchmark.stats.stats
        info[key] = work / s.mean / 1e9
        info[key + "_median"] = work / s.median / 1e9
        if nbytes is not None:
            info["gbps"] = nbytes / s.mean / 1e9
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return result


def timed_rounds(benchmark, fn, setup, *, rounds, group, row, impl, work, unit="GFLOP/s", order=0,
                 row_name="n", warmup_rounds=1):
    """Like timed(), for a call too long to repeat freely (a whole model.fit): `rounds` timed calls of
    fn(*setup()), each on fresh arguments from setup() (not timed), after `warmup_rounds` untimed ones.

    Records the same extra_info as timed(), so the summary table shows the call's rate (work / time) beside
    the other implementations. With --benchmark-disable fn runs once and no rate is recorded."""
    key = {"GFLOP/s": "gflops", "Gelem/s": "gelems"}[unit]
    benchmark.group = group
    info = benchmark.extra_info
    info.update(row=str(row), row_name=row_name, impl=impl, work=work, rate_unit=unit, rate_key=key,
                order=order)
    result = benchmark.pedantic(fn, setup=lambda: (setup(), {}), rounds=rounds, iterations=1,
                                warmup_rounds=0 if benchmark.disabled else warmup_rounds)
    if benchmark.stats is not None:                    # None when --benchmark-disable
        s = benchmark.stats.stats
        info[key] = work / s.mean / 1e9
        info[key + "_median"] = work / s.median / 1e9
        info["seconds_median"] = s.median
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return result


def interleaved(cases, rounds=7, best_of=3):
    """Time several implementations of each case alternately (a, b, c, a, b, c, ...), which is fairer than one
    block per implementation on a shared machine. cases: {row: {impl: fn}}; each round calls every fn once
    untimed, then best_of times, and keeps its fastest call. The untimed call wakes the library's threads,
    asleep after the pause: here that first call took 2x (engine) to 8x (PyTorch) a warm one, a cost of the
    host's idle vCPUs, not of the kernel. Returns {row: {impl: median over rounds, in seconds}}."""
    result = {}
    for row, fns in cases.items():
        for fn in fns.values():
            settle(fn)                                      # warm-up
        times = {impl: [] for impl in fns}
        for _ in range(rounds):
            for impl, fn in fns.items():
                time.sleep(SETTLE_S)                        # let the previous library's threads go idle
                fn()                                        # wake this library's threads (not timed)
                best = float("inf")
                for _ in range(best_of):
                    start = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - start)
                times[impl].append(best)
        result[row] = {impl: float(np.median(t)) for impl, t in times.items()}
    return result


def print_interleaved(title, result, versus="torch", print_fn=print):
    """One line per row: each implementation's median time and cpu's time over `versus`'s (< 1: cpu faster)."""
    print_fn(f"{title} ({settings_line()})")
    for row, medians in result.items():
        cells = ", ".join(f"{impl} {seconds * 1e3:.2f} ms" for impl, seconds in medians.items())
        ratio = f"; time cpu/{versus} {medians['cpu'] / medians[versus]:.2f}" if versus in medians and "cpu" in medians else ""
        print_fn(f"  {row:<34} {cells}{ratio}")

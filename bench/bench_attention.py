"""Attention benchmarks: the fused attention kernel, forward and forward + backward, at (batch 8, heads 8, 256
steps, head size 64) and (8, 8, 1024, 64); beside it the naive rung (the full score matrix per head, 'v1'),
the NumPy reference ('ref', at 256 steps: at 1024 its score matrices alone take 256 MiB) and PyTorch's
scaled_dot_product_attention ('torch', when installed). Also softmax backward over (4096, 1024) (the forward
is in bench_activation.py) and the peak extra memory of the fused forward at 4096 steps.

Work is counted as 4 B N T S H flops for the forward (two products of T x S x H per head) and 3.5 times that
for forward + backward (seven products: two forward, five backward), for every implementation alike. Each
benchmark validates once against the reference (float64 where it is affordable), then times. Engine's forward +
backward runs through autograd (ops.dot_product_attention, then .backward), as PyTorch's does.

    OMP_NUM_THREADS=2 pytest bench/bench_attention.py --benchmark-only --benchmark-group-by=group
    OMP_NUM_THREADS=2 pytest bench/bench_attention.py --benchmark-only -k memory     # prints the memory lines
"""
import functools
import json
import subprocess
import sys

import numpy as np
import pytest

import engine
from _util import backend_or_skip, random_f32, timed
from engine import ladder, ops, ref

SHAPES = [(8, 8, 256, 64), (8, 8, 1024, 64)]        # (B, N, T, H), T = S
IMPLS = ["ref", "v1", "cpu", "torch"]
_label = lambda s: "x".join(map(str, s))            # noqa: E731


@functools.lru_cache(maxsize=2)
def _data(shape):
    B, N, T, H = shape
    q, k, v, do = (random_f32(B, T, N, H, seed=i) for i in range(4))          # engine's (B, T, N, H)
    return q, k, v, do


def _forward(impl, shape):
    """(fn, args, to_numpy) computing o (B, T, N, H) with implementation `impl`."""
    q, k, v, _ = _data(shape)
    if impl == "torch":
        torch = pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
        tq, tk, tv = (torch.from_numpy(a).transpose(1, 2).contiguous() for a in (q, k, v))     # (B, N, T, H)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        return sdpa, (tq, tk, tv), lambda o: o.transpose(1, 2).numpy()
    kernels = backend_or_skip("ref" if impl == "ref" else "cpu").kernels
    fn = kernels.ladder.attention_forward_v1 if impl == "v1" else kernels.attention_forward
    return fn, (q, k, v), lambda out: out[0]


def _forward_backward(impl, shape):
    """(fn, to_numpy): one forward and backward through the framework's autograd; returns (o, dq)."""
    q, k, v, do = _data(shape)
    if impl == "torch":
        torch = pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
        tq, tk, tv = (torch.from_numpy(a).transpose(1, 2).contiguous().requires_grad_() for a in (q, k, v))
        g = torch.from_numpy(do).transpose(1, 2).contiguous()

        def run():
            for t in (tq, tk, tv):
                t.grad = None
            out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
            out.backward(g)
            return out, tq.grad
        return run, lambda r: (r[0].detach().transpose(1, 2).numpy(), r[1].transpose(1, 2).numpy())
    if impl == "ref":
        backend_or_skip("ref")

        def run_ref():
            o, lse, _ = ref.attention_forward(q, k, v)
            return o, ref.attention_backward(do, q, k, v, o, lse)[0]
        return run_ref, lambda r: r
    backend_or_skip("cpu")
    tensors = [engine.tensor(a, requires_grad=True) for a in (q, k, v)]

    def run_engine():
        for t in tensors:
            t.grad = None
        out = ops.dot_product_attention(*tensors)
        out.backward(do)
        return out, tensors[0].grad
    return run_engine, lambda r: (r[0].numpy(), r[1].numpy())


@functools.lru_cache(maxsize=2)
def _expected(shape):
    """o and dq from the reference in float64 (float32 at 1024 steps, to keep its memory in bounds)."""
    q, k, v, do = _data(shape)
    dtype = np.float64 if shape[2] <= 256 else np.float32
    q, k, v, do = (a.astype(dtype) for a in (q, k, v, do))
    o, lse, _ = ref.attention_forward(q, k, v)
    return o, ref.attention_backward(do, q, k, v, o, lse)[0]


def _flops(shape):
    B, N, T, H = shape
    return 4.0 * B * N * T * T * H


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=_label)
def test_attention_forward(benchmark, shape, impl):
    if impl == "ref" and shape[2] > 256:
        pytest.skip("ref: the NumPy reference's score matrices at 1024 steps take 256 MiB; timed at 256 only")
    fn, args, to_numpy = _forward(impl, shape)
    np.testing.assert_allclose(to_numpy(fn(*args)), _expected(shape)[0], rtol=1e-3, atol=1e-4)
    timed(benchmark, fn, *args, group="attention_forward", row=_label(shape), impl=impl, work=_flops(shape),
          order=shape[2], row_name="B x N x T x H")


@pytest.mark.parametrize("impl", ["ref", "cpu", "torch"])
@pytest.mark.parametrize("shape", SHAPES, ids=_label)
def test_attention_forward_backward(benchmark, shape, impl):
    if impl == "ref" and shape[2] > 256:
        pytest.skip("ref: the NumPy reference's score matrices at 1024 steps take 256 MiB; timed at 256 only")
    run, to_numpy = _forward_backward(impl, shape)
    o, dq = to_numpy(run())
    expected_o, expected_dq = _expected(shape)
    np.testing.assert_allclose(o, expected_o, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dq, expected_dq, rtol=1e-3, atol=1e-4)
    timed(benchmark, run, group="attention_forward_backward", row=_label(shape), impl=impl,
          work=3.5 * _flops(shape), order=shape[2], row_name="B x N x T x H")


# ------------------------------------------------------------------------------------------ softmax backward

SOFTMAX_SHAPE = (4096, 1024)


def _softmax_backward(impl):
    x, dy = random_f32(*SOFTMAX_SHAPE, seed=1, scale=3.0), random_f32(*SOFTMAX_SHAPE, seed=2)
    y = ref.softmax_forward(x)
    if impl == "torch":
        torch = pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
        args = (torch.from_numpy(dy), torch.from_numpy(y))
        return lambda d, yy: torch.ops.aten._softmax_backward_data(d, yy, -1, torch.float32), args, np.asarray
    if impl == "numpy":
        return lambda d, yy: yy * (d - (d * yy).sum(axis=-1, keepdims=True)), (dy, y), np.asarray
    kernels = backend_or_skip(impl).kernels
    return kernels.softmax_backward, (dy, y), np.asarray


@pytest.mark.parametrize("impl", ["ref", "cpu", "numpy", "torch"])
def test_softmax_backward(benchmark, impl):
    fn, args, to_numpy = _softmax_backward(impl)
    dy, y = (np.asarray(a) for a in args)
    expected = ref.softmax_backward(dy.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(to_numpy(fn(*args)), expected, rtol=2e-5, atol=2e-6)
    n = dy.size
    timed(benchmark, fn, *args, group="softmax_backward", row=_label(SOFTMAX_SHAPE), impl=impl, work=n,
          unit="Gelem/s", nbytes=3 * 4 * n, row_name="shape")


# ------------------------------------------------------------------------------------------ memory

_TORCH_MEMORY = r"""
import ctypes, json, sys
import numpy as np, torch
n = int(sys.argv[1])
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
sdpa = torch.nn.functional.scaled_dot_product_attention
sdpa(*(torch.zeros(1, 1, 8, 64) for _ in range(3)))
q, k, v = (torch.from_numpy(np.random.default_rng(i).standard_normal((1, 1, n, 64)).astype(np.float32)) for i in range(3))
ctypes.CDLL("libc.so.6").malloc_trim(0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
out = sdpa(q, k, v)
print(json.dumps({"extra": status("VmHWM") - before, "output": out.numel() * 4}))
"""


def _peak(impl, n):
    if impl == "torch":
        pytest.importorskip("torch", reason="torch: PyTorch is not installed (optional comparison)")
        done = subprocess.run([sys.executable, "-c", _TORCH_MEMORY, str(n)], capture_output=True, text=True, check=True)
        return json.loads(done.stdout)
    backend_or_skip("cpu")
    return ladder.peak_memory("attention", {"fused": "v2", "naive": "v1"}[impl], n)


@pytest.mark.parametrize("impl", ["fused", "naive", "torch"])
def test_attention_forward_memory_at_4096_steps(benchmark, impl, capsys):
    """Peak extra memory of one forward of one head at 4096 steps (head size 64), against the size of its
    (T, S) score matrix (64 MiB); measured in a fresh process (engine.ladder.peak_memory). Recorded in
    extra_info and printed; the time is of the whole process."""
    n, mib = 4096, 2.0 ** 20
    result = benchmark.pedantic(_peak, args=(impl, n), rounds=1, iterations=1)
    benchmark.group = "attention_forward_memory"
    benchmark.extra_info.update(peak_extra_mib=result["extra"] / mib, output_mib=result["output"] / mib,
                                score_matrix_mib=n * n * 4 / mib)
    with capsys.disabled():
        print(f"\n  attention forward, one head, T = S = {n}, head size 64: {impl:>5} adds {result['extra'] / mib:6.1f} "
              f"MiB at its peak (the output is {result['output'] / mib:.0f} MiB; one score matrix {n * n * 4 / mib:.0f} MiB)")


def main(rounds=7):
    """Engine vs PyTorch, interleaved (python bench/bench_attention.py [rounds]): attention forward and forward +
    backward at both sizes, softmax forward and backward at (4096, 1024). Prints median times and time ratios."""
    import torch
    from _util import interleaved, print_interleaved
    cases = {}
    for shape in SHAPES:
        fwd = {impl: _forward(impl, shape) for impl in ("cpu", "torch")}
        cases[f"attention forward {_label(shape)}"] = {impl: (lambda f=f: f[0](*f[1])) for impl, f in fwd.items()}
        cases[f"attention fwd+bwd {_label(shape)}"] = {impl: _forward_backward(impl, shape)[0] for impl in ("cpu", "torch")}
    x = random_f32(*SOFTMAX_SHAPE, seed=1, scale=3.0)
    cpu = backend_or_skip("cpu").kernels
    cases["softmax forward 4096x1024"] = {"cpu": lambda: cpu.softmax_forward(x),
                                          "torch": (lambda t=torch.from_numpy(x): torch.softmax(t, -1))}
    cases["softmax backward 4096x1024"] = {impl: (lambda f=_softmax_backward(impl): f[0](*f[1]))
                                           for impl in ("cpu", "torch")}
    print_interleaved("engine vs PyTorch, interleaved medians", interleaved(cases, rounds))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)

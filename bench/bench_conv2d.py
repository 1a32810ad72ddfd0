"""CNN kernel benchmarks: convolution forward + backward at the issue's shapes, the conv2d ladder, max and
average pooling (windows and global) forward + backward, batch normalisation forward + backward; engine 'cpu'
and 'ref' against PyTorch CPU (when installed) doing the same work.

Layouts: engine runs Keras' default, NHWC with a (KH, KW, C, F) kernel ('cpu'), and NCHW ('cpu_nchw',
channels_first: transposed at the edges); PyTorch runs its own default, NCHW (oneDNN picks its layout inside).
A forward + backward is one call each way: engine's conv2d_forward then conv2d_backward (dx, dkernel, dbias);
PyTorch's F.conv2d then aten.convolution_backward (no autograd graph: only the gradient formulas are timed).
Rates: GFLOP/s, counting 2 * N * OH * OW * F * KH * KW * C per GEMM and three GEMMs for forward + backward.

    OMP_NUM_THREADS=2 pytest bench/bench_conv2d.py --benchmark-only --benchmark-group-by=group
    OMP_NUM_THREADS=2 python bench/bench_conv2d.py 15      # interleaved: median and fastest ms per call and
                                                            # cpu/torch time ratios (< 1: engine is faster)
"""
import functools
import statistics
import sys
import time

import numpy as np
import pytest

import engine
from _util import SETTLE_S, backend_or_skip, random_f32, settings_line, timed
from engine import backend as backends
from engine import ref

# name: (N, C, F, H, W, strides, dilation): the targets, 3x3 kernels, padding='same'
CONV = {
    "1->32 28x28": (64, 1, 32, 28, 28, 1, 1),
    "32->64 14x14": (64, 32, 64, 14, 14, 1, 1),
    "3->64 32x32": (64, 3, 64, 32, 32, 1, 1),
    "32->64 14x14 s2": (64, 32, 64, 14, 14, 2, 1),
    "32->64 14x14 d2": (64, 32, 64, 14, 14, 1, 2),
}
POOL_SHAPE = (64, 32, 28, 28)             # N, C, H, W; 2x2 windows, stride 2
BN_SHAPE = (64, 64, 14, 14)
IMPLS = ["ref", "cpu", "cpu_nchw", "torch"]


def conv_flops(name):
    N, C, F, H, W, s, _ = CONV[name]
    OH, OW = -(-H // s), -(-W // s)
    return 2.0 * N * OH * OW * F * 9 * C


@functools.lru_cache(maxsize=None)
def conv_data(name):
    """x (NHWC), kernel (KH, KW, C, F), bias, dy (NHWC) for one case."""
    N, C, F, H, W, s, d = CONV[name]
    x, kernel, bias = random_f32(N, H, W, C, seed=1), random_f32(3, 3, C, F, seed=2, scale=0.2), random_f32(F, seed=3)
    y = backends.get("cpu").conv2d_forward(x, kernel, bias, s, "same", d) if backends.available("cpu") else \
        ref.conv2d_forward(x, kernel, bias, s, "same", d)
    return x, kernel, bias, random_f32(*y.shape, seed=4)


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def conv_step(impl, name):
    """(fn, args): one forward + backward of case `name` on `impl`, arguments ready (conversions not timed)."""
    N, C, F, H, W, s, d = CONV[name]
    x, kernel, bias, dy = conv_data(name)
    if impl == "torch":
        import torch
        import torch.nn.functional as TF
        xt, dyt = torch.from_numpy(_nchw(x)), torch.from_numpy(_nchw(dy))
        wt, bt = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))), torch.from_numpy(bias)
        pad = d if s == 1 else 1                 # 3x3: the same output size as Keras' 'same'

        def torch_step(xt, wt, bt, dyt):
            with torch.no_grad():
                y = TF.conv2d(xt, wt, bt, stride=s, padding=pad, dilation=d)
                grads = torch.ops.aten.convolution_backward(dyt, xt, wt, [F], [s, s], [pad, pad], [d, d], False,
                                                            [0, 0], 1, [True, True, True])
            return y, grads
        return torch_step, (xt, wt, bt, dyt)
    kernels = backend_or_skip("cpu" if impl == "cpu_nchw" else impl).kernels
    fmt = "channels_first" if impl == "cpu_nchw" else "channels_last"
    if fmt == "channels_first":
        x, dy = _nchw(x), _nchw(dy)

    def engine_step(x, kernel, bias, dy):
        y = kernels.conv2d_forward(x, kernel, bias, s, "same", d, fmt)
        return y, kernels.conv2d_backward(dy, x, kernel, s, "same", d, fmt)
    return engine_step, (x, kernel, bias, dy)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(CONV))
def test_conv2d_forward_backward(benchmark, name, impl):
    backend_or_skip("cpu" if impl == "cpu_nchw" else impl)
    fn, args = conv_step(impl, name)
    y, grads = fn(*args)
    to_np = lambda t: np.asarray(t.numpy() if hasattr(t, "numpy") else t)      # noqa: E731
    x, kernel, bias, dy = conv_data(name)
    N, C, F, H, W, s, d = CONV[name]
    pad = d if s == 1 else 1
    padding = ((pad, pad), (pad, pad)) if impl == "torch" else "same"    # PyTorch pads both sides alike
    dkernel = ref.conv2d_backward(dy, x, kernel, s, padding, d)[1]
    got = to_np(grads[1])
    got = got.transpose(2, 3, 1, 0) if impl == "torch" else got
    np.testing.assert_allclose(got, dkernel, rtol=1e-3, atol=1e-3 * np.abs(dkernel).max())
    timed(benchmark, fn, *args, group="conv2d_forward_backward", row=name, order=list(CONV).index(name),
          impl=impl, work=3 * conv_flops(name), row_name="case (N=64, 3x3, same)")


LADDER = ["ref", "v1", "cython", "v2"]


@pytest.mark.parametrize("rung", LADDER)
def test_conv2d_ladder(benchmark, rung):
    """The conv2d ladder's rungs on 8 images of 14x14x32, 64 filters (engine.ladder's problem)."""
    from engine import ladder
    backend_or_skip("cpu")
    entry = next(r for r in ladder.rungs("conv2d") if r.name == rung)
    if entry.unavailable:
        pytest.skip(entry.unavailable)
    args, flops = ladder._conv2d_inputs(8)
    x, kernel, bias, s, p = args
    np.testing.assert_allclose(entry.fn(*args), ref.conv2d_forward(*args), rtol=1e-4, atol=1e-3)
    timed(benchmark, entry.fn, *args, group="conv2d_ladder", row="8x14x14x32 -> 64", impl=rung, work=flops,
          row_name="problem")


@functools.lru_cache(maxsize=None)
def pool_data():
    N, C, H, W = POOL_SHAPE
    return random_f32(N, H, W, C, seed=5), random_f32(N, H // 2, W // 2, C, seed=6)


def pool_step(impl, kind):
    if kind.startswith("global"):
        return global_pool_step(impl, kind)
    x, dy = pool_data()
    if impl == "torch":
        import torch
        import torch.nn.functional as TF
        xt, dyt = torch.from_numpy(_nchw(x)), torch.from_numpy(_nchw(dy))

        def torch_max(xt, dyt):
            y, index = TF.max_pool2d(xt, 2, return_indices=True)
            return y, torch.ops.aten.max_pool2d_with_indices_backward(dyt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                                      index)

        def torch_avg(xt, dyt):
            y = TF.avg_pool2d(xt, 2)
            return y, torch.ops.aten.avg_pool2d_backward(dyt, xt, [2, 2], [2, 2], [0, 0], False, True, None)
        return (torch_max if kind == "max" else torch_avg), (xt, dyt)
    kernels = backend_or_skip("cpu" if impl == "cpu_nchw" else impl).kernels
    fmt = "channels_first" if impl == "cpu_nchw" else "channels_last"
    if fmt == "channels_first":
        x, dy = _nchw(x), _nchw(dy)

    def engine_max(x, dy):
        y, argmax = kernels.maxpool2d_forward(x, 2, None, "valid", fmt)
        return y, kernels.maxpool2d_backward(dy, x, argmax, 2, None, "valid", fmt)

    def engine_avg(x, dy):
        return kernels.avgpool2d_forward(x, 2, None, "valid", fmt), kernels.avgpool2d_backward(dy, x, 2, None,
                                                                                              "valid", fmt)
    return (engine_max if kind == "max" else engine_avg), (x, dy)


def global_pool_step(impl, kind):
    """Global max or average pooling of pool_data()'s x, forward + backward. PyTorch: amax / mean over H and W with
    autograd (it has no separate backward op for them)."""
    x = pool_data()[0]
    N, C, H, W = POOL_SHAPE
    dy = random_f32(N, C, seed=9)
    if impl == "torch":
        import torch
        xt, dyt = torch.from_numpy(_nchw(x)).requires_grad_(), torch.from_numpy(dy)

        def torch_global(xt, dyt):
            y = xt.amax(dim=(2, 3)) if kind == "global_max" else xt.mean(dim=(2, 3))
            return y, torch.autograd.grad(y, xt, dyt)[0]
        return torch_global, (xt, dyt)
    kernels = backend_or_skip("cpu" if impl == "cpu_nchw" else impl).kernels
    fmt = "channels_first" if impl == "cpu_nchw" else "channels_last"
    if fmt == "channels_first":
        x = _nchw(x)
    name = "max" if kind == "global_max" else "avg"

    def engine_global(x, dy):
        y = getattr(kernels, f"global_{name}pool2d_forward")(x, fmt)
        extra = (y,) if name == "max" else ()
        return y, getattr(kernels, f"global_{name}pool2d_backward")(dy, x, *extra, fmt)
    return engine_global, (x, dy)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["max", "average", "global_max", "global_average"])
def test_pool2d_forward_backward(benchmark, kind, impl):
    backend_or_skip("cpu" if impl == "cpu_nchw" else impl)
    fn, args = pool_step(impl, kind)
    y, dx = fn(*args)
    x = np.asarray(pool_data()[0])
    windows = x.reshape(64, 14, 2, 14, 2, 32)
    expected = {"max": windows.max(axis=(2, 4)), "average": windows.mean(axis=(2, 4)),
                "global_max": x.max(axis=(1, 2)), "global_average": x.mean(axis=(1, 2))}[kind]
    got = np.asarray(y.detach().numpy() if hasattr(y, "detach") else y)
    if got.ndim == 4 and impl in ("torch", "cpu_nchw"):
        got = got.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    N, C, H, W = POOL_SHAPE
    window = "" if kind.startswith("global") else " 2x2"
    timed(benchmark, fn, *args, group="pool2d_forward_backward", row=f"{kind}{window} {POOL_SHAPE}", impl=impl,
          work=N * C * H * W * 2, unit="Gelem/s", row_name="pool (N, C, H, W)")


def batchnorm_step(impl):
    N, C, H, W = BN_SHAPE
    x, dy = random_f32(N, H, W, C, seed=7), random_f32(N, H, W, C, seed=8)
    gamma, beta = np.ones(C, np.float32), np.zeros(C, np.float32)
    if impl == "torch":
        import torch
        xt, dyt = torch.from_numpy(_nchw(x)), torch.from_numpy(_nchw(dy))
        g, b, mm, mv = (torch.from_numpy(a.copy()) for a in (gamma, beta, np.zeros(C, np.float32), np.ones(C, np.float32)))

        def torch_bn(xt, dyt):
            y, mean, invstd = torch.ops.aten.native_batch_norm(xt, g, b, mm, mv, True, 0.01, 1e-3)
            return y, torch.ops.aten.native_batch_norm_backward(dyt, xt, g, mm, mv, mean, invstd, True, 1e-3,
                                                                [True, True, True])
        return torch_bn, (xt, dyt)
    kernels = backend_or_skip("cpu" if impl == "cpu_nchw" else impl).kernels
    mm, mv = np.zeros(C, np.float32), np.ones(C, np.float32)
    axis = 1 if impl == "cpu_nchw" else -1
    if axis == 1:
        x, dy = _nchw(x), _nchw(dy)

    def engine_bn(x, dy):
        y, mean, inv_std = kernels.batchnorm_forward(x, gamma, beta, mm, mv, 0.99, 1e-3, True, axis)
        return y, kernels.batchnorm_backward(dy, x, gamma, mean, inv_std, True, axis)
    return engine_bn, (x, dy)


@pytest.mark.parametrize("impl", IMPLS)
def test_batchnorm_forward_backward(benchmark, impl):
    backend_or_skip("cpu" if impl == "cpu_nchw" else impl)
    fn, args = batchnorm_step(impl)
    y, _ = fn(*args)
    y = np.asarray(y.numpy() if hasattr(y, "numpy") else y)
    y = y.transpose(0, 2, 3, 1) if impl in ("torch", "cpu_nchw") else y
    np.testing.assert_allclose(y.reshape(-1, BN_SHAPE[1]).mean(0), 0, atol=1e-4)
    N, C, H, W = BN_SHAPE
    timed(benchmark, fn, *args, group="batchnorm_forward_backward", row=f"{BN_SHAPE} training", impl=impl,
          work=N * C * H * W, unit="Gelem/s", row_name="x (N, C, H, W)")


# ----------------------------------------------------------------------- interleaved, without pytest


def _times_ms(fn, args, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main(reps=15, rounds=3):
    """Every case on cpu, cpu_nchw and torch, interleaved (cpu, torch, cpu, ...) `rounds` times, `reps` calls
    each: the median milliseconds per forward + backward and the time ratios cpu/torch (< 1: engine faster);
    then the fastest call of each and their ratios, which a busy machine disturbs least."""
    try:
        import torch
        torch.set_num_threads(engine.get_num_threads())
    except ImportError:
        torch = None
    impls = ["cpu", "cpu_nchw"] + (["torch"] if torch else [])
    print(settings_line() + ("" if torch else ", no torch"))
    steps = [(f"conv2d f+b {name}", functools.partial(conv_step, name=name)) for name in CONV]
    steps += [(f"{kind}_pool2d f+b 2x2 {POOL_SHAPE}", functools.partial(pool_step, kind=kind))
              for kind in ("max", "average")]
    steps += [(f"{kind}_pool2d f+b {POOL_SHAPE}", functools.partial(pool_step, kind=kind))
              for kind in ("global_max", "global_average")]
    steps += [(f"batchnorm f+b {BN_SHAPE}", batchnorm_step)]
    for label, make in steps:
        runs = {impl: make(impl) for impl in impls}
        times = {impl: [] for impl in impls}
        for fn, args in runs.values():
            fn(*args)                                                   # warm-up
        for _ in range(rounds):
            for impl, (fn, args) in runs.items():
                time.sleep(SETTLE_S)                                    # let the other library's threads idle
                fn(*args)
                times[impl] += _times_ms(fn, args, reps)
        for stat, pick in (("median", statistics.median), ("min", min)):
            value = {impl: pick(t) for impl, t in times.items()}
            ratios = "".join(f", {impl}/torch {value[impl] / value['torch']:.2f}" for impl in impls
                             if impl != "torch" and "torch" in value)
            print(f"{label:<44} {stat:<6} " + ", ".join(f"{impl} {value[impl]:.2f} ms" for impl in impls) + ratios)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)

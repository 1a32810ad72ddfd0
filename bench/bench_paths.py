"""Every lecture kernel on every SIMD path, against PyTorch: the table the speed work is judged by.

One case per row: the GEMM at 512, 1024 and 2048; the transcendental activations on 4M values (forward and
backward); softmax and log-softmax over (4096, 1024); layer norm; LSTM, GRU and SimpleRNN over 32 sequences of 50
steps (64 -> 128), forward and forward + backward through time; fused attention at (8, 8, 256, 64) and
(8, 8, 1024, 64); 2x2 max pooling on channels-last memory (PyTorch on channels-last memory too); the
cross-entropy losses; the optimizer updates on 4M parameters. The engine runs each case once per SIMD path
this CPU has (engine.set_simd), PyTorch once; the ratios are engine time / PyTorch time (< 1: engine faster).

    OMP_NUM_THREADS=2 python bench/bench_paths.py                 # every path (one process each), median ratios
    OMP_NUM_THREADS=2 python bench/bench_paths.py 5 gemm lstm     # 5 rounds, only the cases whose name has 'gemm' or 'lstm'
    ENGINE_SIMD=avx2 OMP_NUM_THREADS=2 python bench/bench_paths.py    # one path only
    OMP_NUM_THREADS=2 pytest bench/bench_paths.py --benchmark-only --benchmark-group-by=group

The GEMM rows also print GFLOP/s for the engine, NumPy and PyTorch, and the FMA peak measured on the same path
(engine.ladder.fma_peak: independent multiply-adds on every thread, nothing loaded).

Each path runs in its own process with the peers held to the same instruction set (PEER_ENV): on the AVX2 path
PyTorch runs its AVX2 kernels and NumPy's OpenBLAS its Haswell ones, as on an AVX2-only CPU. (The pytest form
switches the engine's path in one process; PyTorch there keeps the ISA it chose at import.)
"""
import functools
import os
import sys

import numpy as np
import pytest

import bench_attention
import bench_conv2d
import bench_layernorm
import bench_rnn
from _util import assert_gemm_close, backend_or_skip, interleaved, random_f32, settings_line, timed

import engine
from engine import ladder

GEMM_SIZES = [512, 1024, 2048]
ELEMENTWISE = 4 * 2 ** 20                       # 4M values
ROWS = (4096, 1024)                              # softmax, log-softmax, layer norm, the losses
ACTIVATIONS = ["sigmoid", "tanh", "elu", "gelu", "silu", "softplus"]


def paths():
    """The SIMD paths to measure: ENGINE_SIMD's alone when it is set, else every path this CPU has but portable."""
    if os.environ.get("ENGINE_SIMD"):
        return [engine.info()["simd"]]
    order = ["avx512", "avx2"]
    return order[order.index(engine.info()["simd_detected"]):] if engine.info()["simd_detected"] in order else ["portable"]


# ------------------------------------------------------------------------------------------------ the cases
# Each factory returns {impl: fn} with fn() running one call, for impl 'cpu' and 'torch' (and 'numpy' for the GEMM).

def _gemm(n):
    import torch
    a, b = random_f32(n, n, seed=1), random_f32(n, n, seed=2)
    cpu = backend_or_skip("cpu").kernels
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return {"cpu": lambda: cpu.matmul_forward(a, b), "numpy": lambda: a @ b, "torch": lambda: ta @ tb}


def _activation(name, direction):
    import torch
    F, aten = torch.nn.functional, torch.ops.aten
    cpu = backend_or_skip("cpu").kernels
    x, dy = random_f32(ELEMENTWISE, seed=1, scale=2.0), random_f32(ELEMENTWISE, seed=2)
    y = getattr(cpu, f"{name}_forward")(x)
    tx, tdy, ty = (torch.from_numpy(v) for v in (x, dy, y))
    forward = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "elu": F.elu, "gelu": F.gelu, "silu": F.silu,
               "softplus": F.softplus}[name]
    backward = {"sigmoid": lambda: aten.sigmoid_backward(tdy, ty), "tanh": lambda: aten.tanh_backward(tdy, ty),
                "elu": lambda: aten.elu_backward(tdy, 1.0, 1, 1, False, tx), "gelu": lambda: aten.gelu_backward(tdy, tx),
                "silu": lambda: aten.silu_backward(tdy, tx), "softplus": lambda: aten.softplus_backward(tdy, tx, 1.0, 20.0)}
    if direction == "forward":
        return {"cpu": lambda: getattr(cpu, f"{name}_forward")(x), "torch": lambda: forward(tx)}
    return {"cpu": lambda: getattr(cpu, f"{name}_backward")(dy, x, y), "torch": backward[name]}


def _softmax(log, direction):
    import torch
    cpu = backend_or_skip("cpu").kernels
    x, dy = random_f32(*ROWS, seed=1, scale=3.0), random_f32(*ROWS, seed=2)
    name = "log_softmax" if log else "softmax"
    y = getattr(cpu, f"{name}_forward")(x)
    tx, tdy, ty = (torch.from_numpy(v) for v in (x, dy, y))
    if direction == "forward":
        return {"cpu": lambda: getattr(cpu, f"{name}_forward")(x),
                "torch": lambda: (torch.log_softmax if log else torch.softmax)(tx, -1)}
    aten_backward = torch.ops.aten._log_softmax_backward_data if log else torch.ops.aten._softmax_backward_data
    return {"cpu": lambda: getattr(cpu, f"{name}_backward")(dy, y),
            "torch": lambda: aten_backward(tdy, ty, -1, torch.float32)}


def _layer_norm(direction):
    return {impl: (lambda f=bench_layernorm._impl(impl, direction): f[0](*f[1])) for impl in ("cpu", "torch")}


def _rnn(cell, backward):
    return {"cpu": bench_rnn.make("cpu", cell, backward), "torch": bench_rnn.torch_step(cell, backward)}


def _attention(shape, backward):
    if backward:
        return {impl: bench_attention._forward_backward(impl, shape)[0] for impl in ("cpu", "torch")}
    return {impl: (lambda f=bench_attention._forward(impl, shape): f[0](*f[1])) for impl in ("cpu", "torch")}


def _maxpool(backward):
    """2x2 max pooling of (64, 28, 28, 32) channels-last; PyTorch on the same channels-last memory."""
    import torch
    import torch.nn.functional as TF
    cpu = backend_or_skip("cpu").kernels
    x, dy = bench_conv2d.pool_data()
    y, argmax = cpu.maxpool2d_forward(x, 2, None, "valid", "channels_last")
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)              # NCHW view of NHWC memory: channels_last
    dyt = torch.from_numpy(dy).permute(0, 3, 1, 2)
    _, index = TF.max_pool2d(xt, 2, return_indices=True)
    if not backward:
        return {"cpu": lambda: cpu.maxpool2d_forward(x, 2, None, "valid", "channels_last"),
                "torch": lambda: TF.max_pool2d(xt, 2)}
    return {"cpu": lambda: cpu.maxpool2d_backward(dy, x, argmax, 2, None, "valid", "channels_last"),
            "torch": lambda: torch.ops.aten.max_pool2d_with_indices_backward(dyt, xt, [2, 2], [2, 2], [0, 0], [1, 1],
                                                                             False, index)}


def _loss(name):
    """Forward + backward of a cross-entropy on (4096, 1024) logits (the binary one on 4M logits)."""
    import torch
    import torch.nn.functional as TF
    cpu = backend_or_skip("cpu").kernels
    rng = np.random.default_rng(3)
    if name == "binary_crossentropy":
        logits, targets = random_f32(ELEMENTWISE, seed=1, scale=3.0), rng.random(ELEMENTWISE).astype(np.float32)
        dloss = np.full(ELEMENTWISE, 1.0 / ELEMENTWISE, np.float32)

        def engine_step():
            cpu.sigmoid_cross_entropy_forward(logits, targets)
            return cpu.sigmoid_cross_entropy_backward(dloss, logits, targets)
        tl, tt = torch.from_numpy(logits).requires_grad_(), torch.from_numpy(targets)
        torch_loss = lambda: TF.binary_cross_entropy_with_logits(tl, tt)        # noqa: E731
    else:
        logits = random_f32(*ROWS, seed=1, scale=3.0)
        labels = rng.integers(0, ROWS[1], ROWS[0])
        dloss = np.full(ROWS[0], 1.0 / ROWS[0], np.float32)
        tl = torch.from_numpy(logits).requires_grad_()
        if name == "categorical_crossentropy":
            targets = np.eye(ROWS[1], dtype=np.float32)[labels]

            def engine_step():
                _, probs = cpu.softmax_cross_entropy_forward(logits, targets)
                return cpu.softmax_cross_entropy_backward(dloss, probs, targets)
            tt = torch.from_numpy(targets)
        else:
            def engine_step():
                _, probs = cpu.sparse_softmax_cross_entropy_forward(logits, labels)
                return cpu.sparse_softmax_cross_entropy_backward(dloss, probs, labels)
            tt = torch.from_numpy(labels)
        torch_loss = lambda: TF.cross_entropy(tl, tt)                          # noqa: E731

    def torch_step():
        tl.grad = None
        torch_loss().backward()
        return tl.grad
    return {"cpu": engine_step, "torch": torch_step}


def _optimizer(name):
    """One in-place update of 4M parameters: the engine's kernel, PyTorch's optimizer with its fused CPU kernel
    (foreach for RMSprop, which has no fused form)."""
    import torch
    cpu = backend_or_skip("cpu").kernels
    param, grad = random_f32(ELEMENTWISE, seed=1), random_f32(ELEMENTWISE, seed=2, scale=1e-2)
    slots = [np.zeros(ELEMENTWISE, np.float32) for _ in range(3)]
    step = iter(range(1, 1 << 30))
    # The same options on both sides: SGD with momentum, Adam without AMSGrad, RMSprop neither centered nor with
    # momentum (so no average_grad or momentum slot), Adagrad.
    engine_step = {
        "sgd": lambda: cpu.sgd_update(param, grad, slots[0], 1e-3, 0.9),
        "adam": lambda: cpu.adam_update(param, grad, slots[0], slots[1], None, 1e-3, 0.9, 0.999, 1e-7, next(step)),
        "rmsprop": lambda: cpu.rmsprop_update(param, grad, slots[0], None, None, 1e-3, 0.9, 0.0, 1e-7),
        "adagrad": lambda: cpu.adagrad_update(param, grad, slots[0], 1e-3, 1e-7),
    }[name]
    p = torch.nn.Parameter(torch.from_numpy(param.copy()))
    p.grad = torch.from_numpy(grad)
    opt = {"sgd": lambda: torch.optim.SGD([p], lr=1e-3, momentum=0.9, fused=True),
           "adam": lambda: torch.optim.Adam([p], lr=1e-3, eps=1e-7, fused=True),
           "rmsprop": lambda: torch.optim.RMSprop([p], lr=1e-3, alpha=0.9, eps=1e-7, foreach=True),
           "adagrad": lambda: torch.optim.Adagrad([p], lr=1e-3, eps=1e-7, fused=True)}[name]()
    return {"cpu": engine_step, "torch": opt.step}


def cases():
    """{row name: factory}, in the order of the table."""
    out = {f"gemm {n}^3": functools.partial(_gemm, n) for n in GEMM_SIZES}
    for name in ACTIVATIONS:
        for direction in ("forward", "backward"):
            out[f"{name} 4M {direction}"] = functools.partial(_activation, name, direction)
    for log in (False, True):
        for direction in ("forward", "backward"):
            out[f"{'log_softmax' if log else 'softmax'} 4096x1024 {direction}"] = functools.partial(_softmax, log, direction)
    for direction in ("forward", "backward"):
        out[f"layer_norm 4096x1024 {direction}"] = functools.partial(_layer_norm, direction)
    for cell in ("lstm", "gru", "simple_rnn"):
        for backward in (False, True):
            out[f"{cell} 32x50x64->128 {'f+b' if backward else 'forward'}"] = functools.partial(_rnn, cell, backward)
    for shape in bench_attention.SHAPES:
        for backward in (False, True):
            out[f"attention {'x'.join(map(str, shape))} {'f+b' if backward else 'forward'}"] = functools.partial(
                _attention, shape, backward)
    for backward in (False, True):
        out[f"maxpool 2x2 NHWC {'backward' if backward else 'forward'}"] = functools.partial(_maxpool, backward)
    for name in ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"):
        out[f"{name} f+b"] = functools.partial(_loss, name)
    for name in ("sgd", "adam", "rmsprop", "adagrad"):
        out[f"{name} update 4M"] = functools.partial(_optimizer, name)
    return out


# ------------------------------------------------------------------------------------------------- pytest

CASES = cases()


@pytest.fixture
def simd_path(request):
    """Switch the engine to the path under test for one benchmark, then back."""
    before = engine.info()["simd"]
    engine.set_simd(request.param)
    yield request.param
    engine.set_simd(before)


@pytest.mark.parametrize("simd_path", paths(), indirect=True)
@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize("case", list(CASES))
def test_case(benchmark, case, impl, simd_path):
    pytest.importorskip("torch", reason="torch: PyTorch is not installed (the cases build PyTorch's side too)")
    if impl == "torch" and simd_path != paths()[0]:
        pytest.skip("PyTorch does not depend on the engine's SIMD path: timed once")
    fns = CASES[case]()
    if case.startswith("gemm"):
        n = int(case.split()[1].split("^")[0])
        assert_gemm_close(np.asarray(fns[impl]()), random_f32(n, n, seed=1), random_f32(n, n, seed=2))
    timed(benchmark, fns[impl], group=f"paths_{simd_path if impl == 'cpu' else paths()[0]}", row=case,
          impl=impl, work=1, unit="Gelem/s", order=list(CASES).index(case), row_name="case")


# ------------------------------------------------------------------------------------------ interleaved

# What an AVX2-only CPU runs, for the peers too: the engine's AVX2 path, PyTorch's AVX2 kernels (ATen, MKL,
# oneDNN) and OpenBLAS's Haswell kernels (NumPy). Set before the libraries load, so each path runs in its own
# process. On an AVX-512 machine the AVX2 column then compares like with like: without these, PyTorch and
# NumPy would keep their AVX-512 kernels while the engine ran its AVX2 ones.
PEER_ENV = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                     "OPENBLAS_CORETYPE": "Haswell"},
            "avx512": {}, "portable": {}}


def measure(rounds, only):
    """This process's path (ENGINE_SIMD or the detected one): {case: medians in seconds}, the FMA peak, and
    which ISA PyTorch runs."""
    import torch
    selected = {name: f for name, f in CASES.items() if not only or any(word in name for word in only)}
    peak = ladder.fma_peak()                     # first, while no other library's threads are spinning
    results = {}
    for name, factory in selected.items():
        results[name] = interleaved({name: factory()}, rounds=rounds)[name]
        print(f"  [{engine.info()['simd']}] {name:<44} engine {results[name]['cpu'] * 1e3:8.3f} ms   torch "
              f"{results[name]['torch'] * 1e3:8.3f} ms   engine/torch {results[name]['cpu'] / results[name]['torch']:.2f}",
              file=sys.stderr, flush=True)
    return {"cases": results, "peak": peak, "torch_isa": torch.backends.cpu.get_cpu_capability(),
            "settings": settings_line()}


def main(rounds=5, only=()):
    """Each path in its own process (PEER_ENV), then one table of engine/torch per path and the GEMM figures."""
    import json
    import subprocess
    chosen = paths()
    runs = {}
    for path in chosen:
        env = {**os.environ, "ENGINE_SIMD": path, **PEER_ENV[path]}
        done = subprocess.run([sys.executable, __file__, "--measure", str(rounds), *only], env=env, check=True,
                              stdout=subprocess.PIPE, text=True)
        runs[path] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nengine vs PyTorch, interleaved medians of {rounds} rounds")
    for path, run in runs.items():
        print(f"  {path} path: PyTorch runs its {run['torch_isa']} kernels; {run['settings']}")
    print("\nengine time / PyTorch time (< 1: engine faster)")
    print(f"  {'case':<44} " + " ".join(f"{p:>8}" for p in chosen))
    for name in runs[chosen[0]]["cases"]:
        print(f"  {name:<44} " + " ".join(
            f"{runs[p]['cases'][name]['cpu'] / runs[p]['cases'][name]['torch']:8.2f}" for p in chosen))
    for path, run in runs.items():
        rows = {name: cells for name, cells in run["cases"].items() if name.startswith("gemm")}
        if not rows:
            continue
        print(f"\nGEMM on the {path} path, GFLOP/s (FMA peak measured on this path: {run['peak']:.0f})")
        for name, cells in rows.items():
            n = int(name.split()[1].split("^")[0])
            rate = {impl: 2 * n ** 3 / seconds / 1e9 for impl, seconds in cells.items()}
            print(f"  {n}^3  engine {rate['cpu']:6.1f}  numpy {rate['numpy']:6.1f}  torch {rate['torch']:6.1f}   "
                  f"engine/numpy {rate['cpu'] / rate['numpy']:.2f}  engine/peak {rate['cpu'] / run['peak']:.2f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--measure":
        import json
        print(json.dumps(measure(int(args[1]), tuple(args[2:]))))
    else:
        main(int(args[0]) if args and args[0].isdigit() else 5, tuple(a for a in args if not a.isdigit()))

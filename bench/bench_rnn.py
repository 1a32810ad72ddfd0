"""Recurrent benchmarks: LSTM, GRU and SimpleRNN over a batch of 32 sequences of 50 steps, 64 inputs and 128
units (the issue's size), forward alone and forward + backward, through engine.ops (one fused kernel call
each way, autograd on top) for ref and cpu, and PyTorch's nn.LSTM / nn.GRU / nn.RNN (CPU, autograd) when
installed, holding the same weights (converted from Keras' layout). Each validates once against the
reference, then times. Rates: GFLOP/s of the two matrix products per step (forward 2 N T (D + U) G U flops;
forward + backward counted as 3x that); the summary prints cpu/torch (> 1: engine is faster).

    OMP_NUM_THREADS=2 pytest bench/bench_rnn.py --benchmark-only --benchmark-group-by=group
    OMP_NUM_THREADS=2 python bench/bench_rnn.py 7       # interleaved engine/torch rounds, median ratios
"""
import sys
import time

import numpy as np
import pytest

from _util import backend_or_skip, random_f32, settings_line, settle, timed

import engine
from engine import ops

N, T, D, U = 32, 50, 64, 128
CELLS = {"lstm": 4, "gru": 3, "simple_rnn": 1}
IMPLS = ["ref", "cpu", "torch"]


def weights(cell, seed=0):
    """kernel, recurrent_kernel, bias in Keras' layout, scaled as Keras' initializers scale them."""
    G = CELLS[cell]
    kernel = random_f32(D, G * U, seed=seed, scale=(2 / (D + G * U)) ** 0.5)
    recurrent = random_f32(U, G * U, seed=seed + 1, scale=U ** -0.5)
    bias = random_f32(*((2, G * U) if cell == "gru" else (G * U,)), seed=seed + 2, scale=0.1)
    return kernel, recurrent, bias


def engine_step(cell, backward):
    """A function running the cell through engine.ops on the active backend (forward, or forward + backward)."""
    kernel, recurrent, bias = (engine.tensor(w, requires_grad=backward) for w in weights(cell))
    x = engine.tensor(random_f32(N, T, D, seed=5), requires_grad=backward)
    h0 = engine.tensor(np.zeros((N, U), np.float32))
    run = {"lstm": lambda: ops.lstm(x, h0, h0, kernel, recurrent, bias),
           "gru": lambda: ops.gru(x, h0, kernel, recurrent, bias),
           "simple_rnn": lambda: ops.simple_rnn(x, h0, kernel, recurrent, bias)}[cell]
    dy = random_f32(N, T, U, seed=6)

    def step():
        y = run()[0]
        if backward:
            y.backward(dy)
            for t in (x, kernel, recurrent, bias):
                t.grad = None
        return y.data
    return step


def torch_step(cell, backward):
    """nn.LSTM / nn.GRU / nn.RNN holding the same weights: torch keeps W^T, and orders GRU gates r, z, n."""
    import torch
    kernel, recurrent, bias = weights(cell)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]
    module = cls(D, U, batch_first=True)
    order = np.r_[U:2 * U, 0:U, 2 * U:3 * U] if cell == "gru" else np.arange(CELLS[cell] * U)   # z, r, h -> r, z, n
    b_in, b_rec = (bias[0], bias[1]) if cell == "gru" else (bias, np.zeros_like(bias))
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(kernel[:, order].T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(recurrent[:, order].T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(b_in[order].copy()))
        module.bias_hh_l0.copy_(torch.from_numpy(b_rec[order].copy()))
    x = torch.from_numpy(random_f32(N, T, D, seed=5)).requires_grad_(backward)
    dy = torch.from_numpy(random_f32(N, T, U, seed=6))

    def step():
        if not backward:
            with torch.no_grad():
                return module(x)[0].numpy()
        y = module(x)[0]
        y.backward(dy)
        module.zero_grad(set_to_none=True)
        x.grad = None
        return y.detach().numpy()
    return step


def make(impl, cell, backward):
    """The step function of one implementation ('ref' and 'cpu' through engine.ops, or 'torch')."""
    if impl == "torch":
        return torch_step(cell, backward)
    backend_or_skip(impl)
    inner = engine_step(cell, backward)

    def step():
        with engine.use_backend(impl):
            return inner()
    return step


def flops(cell, backward):
    return 2.0 * N * T * (D + U) * CELLS[cell] * U * (3 if backward else 1)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward_backward"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_rnn(benchmark, cell, backward, impl):
    backend_or_skip(impl)
    step = make(impl, cell, backward)
    with engine.use_backend("ref"):
        expected = engine_step(cell, False)()
    np.testing.assert_allclose(step(), expected, rtol=2e-4, atol=2e-5, err_msg=f"{impl} {cell}")
    name = "forward" if not backward else "forward+backward"
    timed(benchmark, step, group=f"rnn_{name}", row=f"{cell} {N}x{T}x{D}->{U}", impl=impl, work=flops(cell, backward),
          order=list(CELLS).index(cell), row_name="cell")


def interleaved(rounds=7, reps=20):
    """Engine cpu and PyTorch in alternation, `rounds` times, each round the median of `reps` calls after a
    settle (so neither library's spinning thread pool slows the other); prints the median time ratio."""
    import torch  # noqa: F401  (before settings_line, so that it reports PyTorch's threads)
    print(f"{settings_line()}; N={N} T={T} D={D} U={U}")
    for cell in ("lstm", "gru", "simple_rnn"):
        for backward in (False, True):
            fns = {"cpu": make("cpu", cell, backward), "torch": torch_step(cell, backward)}
            times = {k: [] for k in fns}
            for _ in range(rounds):
                for name, fn in fns.items():
                    settle(fn, seconds=0.3)
                    one = []
                    for _ in range(reps):
                        start = time.perf_counter()
                        fn()
                        one.append(time.perf_counter() - start)
                    times[name].append(np.median(one))
            cpu, tor = np.median(times["cpu"]) * 1e3, np.median(times["torch"]) * 1e3
            print(f"{cell:<10} {'forward+backward' if backward else 'forward':<16} engine {cpu:7.2f} ms   "
                  f"torch {tor:7.2f} ms   engine/torch time {cpu / tor:.2f}")


if __name__ == "__main__":
    interleaved(int(sys.argv[1]) if len(sys.argv) > 1 else 7)

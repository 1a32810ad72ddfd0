"""One training epoch of the Lab 9.2 CNN (examples/cnn_digits.py) on 60,000 random MNIST-shaped images, batch
64, for engine 'cpu' and PyTorch CPU (when installed) doing the same work:

    Conv2D(32, 3x3, relu, same) - MaxPooling2D - Conv2D(64, 3x3, relu, same) - MaxPooling2D - Flatten
    - Dense(128, relu) - Dropout(0.5) - Dense(10, softmax);  adam, sparse categorical cross-entropy

The PyTorch model is the same network as PyTorch users write it: nn.Sequential of Conv2d(padding=1), ReLU,
MaxPool2d, Flatten, Linear, Dropout, on NCHW tensors, nn.CrossEntropyLoss on logits (the softmax folded in), Adam
with Keras' defaults (lr 1e-3, eps 1e-7), a new random order every epoch, zero_grad / backward / step and
loss.item() every step. Engine runs model.fit(batch_size=64, epochs=1, shuffle=True, verbose=0) on NHWC arrays.
Model building is outside the timed region. The labels are random, so nothing is learned: this times the work.

    OMP_NUM_THREADS=2 python bench/bench_cnn_training.py 3     # interleaved rounds: median seconds, cpu/torch
    OMP_NUM_THREADS=2 pytest bench/bench_cnn_training.py --benchmark-only
Under --benchmark-disable (CI) each fit runs once on 640 images.
"""
import functools
import runpy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine
from _util import SETTLE_S, backend_or_skip, settings_line, timed_rounds

IMAGES, BATCH_SIZE, QUICK_IMAGES = 60000, 64, 640
LR, EPSILON = 1e-3, 1e-7
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cnn_digits.py"


@functools.lru_cache(maxsize=None)
def data(n):
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def train_flops(n):
    """6 x multiply-adds per image (2 forward, 4 backward) x images."""
    macs = 28 * 28 * 32 * 9 + 14 * 14 * 64 * 9 * 32 + 3136 * 128 + 128 * 10
    return 6 * macs * n


def engine_setup():
    engine.set_seed(0)
    return (runpy.run_path(str(EXAMPLE))["build_model"]((28, 28, 1)),)


def engine_fit(n, model):
    x, y = data(n)
    with engine.use_backend("cpu"):
        return model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, shuffle=True, verbose=0).history["loss"]


def torch_setup():
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    return net, torch.optim.Adam(net.parameters(), lr=LR, eps=EPSILON), nn.CrossEntropyLoss()


def torch_fit(n, net, optimizer, loss_fn):
    import torch
    x, y = data(n)
    X, Y = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(y)
    net.train()
    order, total = torch.randperm(n), 0.0
    for start in range(0, n, BATCH_SIZE):
        index = order[start:start + BATCH_SIZE]
        optimizer.zero_grad()
        loss = loss_fn(net(X[index]), Y[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return [total / n]


def runner(impl, n):
    if impl == "torch":
        return functools.partial(torch_fit, n), torch_setup
    return functools.partial(engine_fit, n), engine_setup


@pytest.mark.parametrize("impl", ["cpu", "torch"])
def test_cnn_epoch(benchmark, impl):
    backend_or_skip(impl)
    n = QUICK_IMAGES if benchmark.disabled else IMAGES
    fit, setup = runner(impl, n)
    losses = timed_rounds(benchmark, fit, setup, rounds=2, group="cnn_training", row=f"Lab 9.2 CNN, {n} images",
                          row_name="one epoch, batch 64", impl=impl, work=train_flops(n), warmup_rounds=0)
    assert np.isfinite(losses[-1]) and losses[-1] < 3.0          # random labels: about ln(10) = 2.30


def main(rounds=3, n=IMAGES):
    """Interleave engine and torch epochs `rounds` times; print the median seconds and the time ratio."""
    impls = ["cpu"]
    try:
        import torch
        torch.set_num_threads(engine.get_num_threads())
        impls.append("torch")
    except ImportError:
        torch = None
    print(settings_line() + ("" if torch else ", no torch"))
    runs = {impl: runner(impl, n) for impl in impls}
    for fit, setup in runs.values():                                    # warm-up on a few batches
        runner_fit = fit.func
        runner_fit(BATCH_SIZE * 4, *setup())
    seconds = {impl: [] for impl in impls}
    cpu_seconds = {impl: [] for impl in impls}     # process CPU time: what the work cost, busy machine or not
    for r in range(rounds):
        for impl, (fit, setup) in runs.items():
            args = setup()
            time.sleep(SETTLE_S)
            start, cpu_start = time.perf_counter(), time.process_time()
            fit(*args)
            seconds[impl].append(time.perf_counter() - start)
            cpu_seconds[impl].append(time.process_time() - cpu_start)
            print(f"  round {r + 1}: {impl} {seconds[impl][-1]:.2f} s (CPU {cpu_seconds[impl][-1]:.2f} s)", flush=True)
    for label, table in (("wall", seconds), ("CPU", cpu_seconds)):
        median = {impl: statistics.median(s) for impl, s in table.items()}
        ratio = f", cpu/torch {median['cpu'] / median['torch']:.2f}" if "torch" in median else ""
        print(f"one epoch, {n} images 28x28x1, batch {BATCH_SIZE}, median {label} time: "
              + ", ".join(f"{impl} {median[impl]:.2f} s" for impl in impls) + ratio)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else IMAGES)

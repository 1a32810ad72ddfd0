"""End-to-end training benchmarks: one round is one whole fit, for engine 'cpu', engine 'ref' and
PyTorch CPU (when installed) doing the same work.

    regression  the lecture's model: 1000 rows x 8 features, Dense(15, relu) - Dense(5, relu) - Dense(1),
                adam, mse, batch 32, 100 epochs (32 steps each, the last of 8 rows)
    digits      the MLP of examples/mlp_digits.py without dropout: 64-128-64-10 (relu, softmax), adam,
                sparse categorical cross-entropy, batch 32, 10 epochs over the 1797 digits (57 steps each;
                random data of the same shape when scikit-learn is missing)

The PyTorch loop is the one a PyTorch user writes: nn.Sequential of the same layers (softmax folded into
nn.CrossEntropyLoss, as PyTorch code does), Adam with Keras' defaults (lr 1e-3, eps 1e-7), a new random
order every epoch, batches by index, zero_grad / backward / step, and loss.item() every step (fit logs the
running loss too). Model building is outside the timed region (pytest-benchmark's setup).

Each benchmark validates once (the loss falls), then times ROUNDS fits after one untimed warm-up fit.
pytest-benchmark's table gives seconds per fit; the summary table after it gives the training rate in
GFLOP/s, counted as 6 x (multiply-adds per sample) x samples, and the ratios cpu/ref and cpu/torch
(speed of a over b: cpu/torch = torch seconds / cpu seconds). With --benchmark-disable each fit runs
once for 2 epochs, as a quick test.

    OMP_NUM_THREADS=2 pytest bench/bench_training.py --benchmark-only --bench-rate-stat=median
    OMP_NUM_THREADS=2 python bench/bench_training.py 5   # 5 interleaved rounds: median seconds, time ratios

(--bench-rate-stat=median: one slow round on a busy machine skews a mean of 3.)

The 'torch' column appears where PyTorch imports (pip install torch==2.13.0 is the CPU build here; or run
another environment's python with PYTHONPATH=<this repository>); without it those benchmarks skip.
BENCH_TRAINING_ROUNDS sets the timed fits per benchmark (default 3).
"""
import functools
import math
import os
import statistics
import sys
import time

import numpy as np
import pytest

import engine
from _util import SETTLE_S, backend_or_skip, settings_line, timed_rounds
from engine import backend as backends
from engine.layers import Dense, Input
from engine.models import Sequential

ROUNDS = int(os.environ.get("BENCH_TRAINING_ROUNDS", "3"))
QUICK_EPOCHS = 2                     # under --benchmark-disable
BATCH_SIZE = 32
LR, EPSILON = 1e-3, 1e-7             # Keras' Adam defaults (PyTorch's eps default is 1e-8)

# name: layer sizes, activation of the last layer, loss, epochs
MODELS = {
    "regression": {"sizes": [8, 15, 5, 1], "out": "linear", "loss": "mse", "epochs": 100},
    "digits": {"sizes": [64, 128, 64, 10], "out": "softmax", "loss": "sparse_categorical_crossentropy", "epochs": 10},
}


@functools.lru_cache(maxsize=None)
def _data(model):
    """(X, y) float32 features and targets: y (N, 1) floats for regression, (N,) int64 class ids for digits."""
    rng = np.random.default_rng(0)
    if model == "regression":
        X = rng.standard_normal((1000, 8)).astype(np.float32)
        y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] + 0.1 * rng.standard_normal(1000)
        return X, y.astype(np.float32).reshape(-1, 1)
    try:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)                     # (1797, 64), (1797,)
        return (X / 16.0).astype(np.float32), y.astype(np.int64)
    except ImportError:
        return rng.random((1797, 64), dtype=np.float32), rng.integers(0, 10, 1797).astype(np.int64)


def train_flops(model, epochs):
    """6 x multiply-adds per sample (2 forward, 4 backward) x samples seen: the usual training estimate."""
    sizes = MODELS[model]["sizes"]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 6 * macs * len(_data(model)[0]) * epochs


# ------------------------------------------------------------------------------------------- engine


def engine_setup(model):
    """A fresh, compiled engine model (seeded): the lecture's Sequential of Dense layers."""
    spec = MODELS[model]
    engine.set_seed(0)
    sizes = spec["sizes"]
    layers = [Input(shape=(sizes[0],))] + [Dense(units, activation="relu") for units in sizes[1:-1]]
    net = Sequential(layers + [Dense(sizes[-1], activation=spec["out"])])
    net.compile(optimizer="adam", loss=spec["loss"])
    return (net,)


def engine_fit(name, model, epochs, net):
    """model.fit on backend `name`; returns the mean training loss of each epoch."""
    X, y = _data(model)
    with engine.use_backend(name):
        history = net.fit(X, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0)
    return history.history["loss"]


# ------------------------------------------------------------------------------------------- torch


def torch_setup(model):
    """The same network in PyTorch, its Adam, its loss and the data as tensors."""
    import torch
    from torch import nn

    spec = MODELS[model]
    torch.manual_seed(0)
    sizes, layers = spec["sizes"], []
    for d_in, d_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))      # logits: CrossEntropyLoss has the softmax
    optimizer = torch.optim.Adam(net.parameters(), lr=LR, eps=EPSILON)
    loss_fn = nn.MSELoss() if spec["loss"] == "mse" else nn.CrossEntropyLoss()
    X, y = _data(model)
    return net, optimizer, loss_fn, torch.from_numpy(X), torch.from_numpy(y)


def torch_fit(epochs, net, optimizer, loss_fn, X, y):
    """The training loop as PyTorch users write it; returns the mean training loss of each epoch."""
    import torch

    n, losses = len(X), []
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n)
        total = 0.0
        for start in range(0, n, BATCH_SIZE):
            index = order[start:start + BATCH_SIZE]
            xb, yb = X[index], y[index]
            optimizer.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        losses.append(total / n)
    return losses


# --------------------------------------------------------------------------------------------- runs


def runner(impl, model, epochs):
    """(fit, setup) for one implementation: fit(*setup()) trains a fresh model and returns epoch losses."""
    if impl == "torch":
        return functools.partial(torch_fit, epochs), functools.partial(torch_setup, model)
    return functools.partial(engine_fit, impl, model, epochs), functools.partial(engine_setup, model)


def check_losses(losses, epochs, label):
    assert len(losses) == epochs and all(math.isfinite(v) for v in losses), f"{label}: losses {losses}"
    assert losses[-1] < losses[0], f"{label}: the loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("impl", ["ref", "cpu", "torch"])
@pytest.mark.parametrize("model", list(MODELS))
def test_fit(benchmark, model, impl):
    backend_or_skip(impl)                                       # skips torch (not installed) or an unbuilt cpu
    epochs = QUICK_EPOCHS if benchmark.disabled else MODELS[model]["epochs"]
    fit, setup = runner(impl, model, epochs)
    if not benchmark.disabled:                                  # validate once, then time
        check_losses(fit(*setup()), epochs, f"{impl} {model}")
    sizes = "-".join(map(str, MODELS[model]["sizes"]))
    benchmark.extra_info.update(epochs=epochs, batch_size=BATCH_SIZE, rows=len(_data(model)[0]))
    losses = timed_rounds(benchmark, fit, setup, rounds=ROUNDS, group="training", row=f"{model} {sizes}",
                          row_name="model (one fit)", impl=impl, work=train_flops(model, epochs),
                          order=list(MODELS).index(model))
    check_losses(losses, epochs, f"{impl} {model}")


# ----------------------------------------------------------------------- interleaved, without pytest


def main(rounds=5):
    """Interleave cpu, ref and torch fits (cpu, ref, torch, cpu, ...), `rounds` times, and print median
    seconds per fit and the time ratios: on a shared machine this is fairer than one block per implementation."""
    impls = [i for i in ("cpu", "ref") if backends.available(i)]
    try:
        import torch
        impls.append("torch")
    except ImportError:
        torch = None
    print(settings_line() + ("" if torch else ", no torch"))
    for model, spec in MODELS.items():
        runs = {impl: runner(impl, model, spec["epochs"]) for impl in impls}
        for fit, setup in runs.values():                        # warm-up
            fit(*setup())
        seconds = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl, (fit, setup) in runs.items():
                args = setup()
                time.sleep(SETTLE_S)                            # let the previous library's threads go idle
                start = time.perf_counter()
                fit(*args)
                seconds[impl].append(time.perf_counter() - start)
        median = {impl: statistics.median(s) for impl, s in seconds.items()}
        ratios = [f"{a}/{b} time {median[a] / median[b]:.2f}" for a, b in [("cpu", "torch"), ("cpu", "ref")]
                  if a in median and b in median]
        print(f"{model} {'-'.join(map(str, spec['sizes']))}, {spec['epochs']} epochs: "
              + ", ".join(f"{impl} {median[impl]:.3f} s" for impl in impls) + "; " + ", ".join(ratios))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

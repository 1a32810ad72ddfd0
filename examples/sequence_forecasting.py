"""Forecasting with recurrent networks: SimpleRNN against LSTM, on a short and on a long dependency.

Part 1, a short memory. Each sequence is a sine wave of random frequency and phase plus noise (sd 0.1);
from the last 40 noisy values, forecast the next value of the clean wave. The last few values already fix
the wave's phase and slope, so both networks learn it, far better than repeating the last value.

Part 2, a long memory. The signal has two channels: noise values in [0, 1], and a marker that is 1 at two
steps (one in the first tenth of the sequence, one in its second half) and 0 elsewhere. Forecast, at the
last step, the sum of the two marked values (Hochreiter and Schmidhuber's "adding problem", 1997). The first
marked value must be kept through up to 60 steps of noise. A SimpleRNN's gradient fades over that distance,
so it never learns more than the mean (its error stays at the variance of the target); the LSTM's cell,
guarded by its input and forget gates, keeps the value, and its error falls close to zero.

    Sequential([LSTM(32), Dense(1)])   or   Sequential([SimpleRNN(32), Dense(1)])
    compile(optimizer=Adam(0.01), loss='mse');  fit(x, y, batch_size=64, epochs=...)

    python examples/sequence_forecasting.py          # about a minute on two cores
"""
import time

import numpy as np

import engine
from engine import layers, optimizers
from engine.models import Sequential


def noisy_sines(n, window=40, noise=0.1, seed=0):
    """x (n, window, 1): noisy sine values; y (n, 1): the clean wave one step after the window."""
    rng = np.random.default_rng(seed)
    freq, phase = rng.uniform(0.1, 0.5, (n, 1)), rng.uniform(0, 2 * np.pi, (n, 1))
    clean = np.sin(freq * np.arange(window + 1) + phase)
    x = clean[:, :window] + noise * rng.standard_normal((n, window))
    return x[:, :, None].astype(np.float32), clean[:, window:].astype(np.float32)


def adding_problem(n, length=60, seed=0):
    """x (n, length, 2): values in [0, 1] and a marker channel with two 1s; y (n, 1): the sum of the two
    marked values (one marker in the first tenth, the other in the second half)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 1, (n, length))
    marker = np.zeros((n, length))
    rows = np.arange(n)
    marker[rows, rng.integers(0, length // 10, n)] = 1
    marker[rows, rng.integers(length // 2, length, n)] = 1
    return np.stack([values, marker], axis=-1).astype(np.float32), (values * marker).sum(1, keepdims=True).astype(np.float32)


def train(cell, x, y, x_test, y_test, units=32, epochs=20, lr=0.01, batch_size=64):
    """Test MSE (and the per-epoch held-out MSE) of Sequential([cell(units), Dense(1)])."""
    engine.set_seed(0)
    model = Sequential([cell(units), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(lr), loss="mse")
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=(x_test, y_test), verbose=0)
    return float(model.evaluate(x_test, y_test, verbose=0)), history.history["val_loss"]


def main(sine_epochs=15, adding_epochs=20, adding_length=60, n_train=4096):
    results = {}
    print("Part 1: forecast the next value of a noisy sine from the last 40 values")
    x, y = noisy_sines(n_train)
    x_test, y_test = noisy_sines(1024, seed=1)
    last_value = float(np.mean((x_test[:, -1] - y_test) ** 2))
    print(f"  repeat the last noisy value: test MSE {last_value:.4f}")
    for cell in (layers.SimpleRNN, layers.LSTM):
        start = time.perf_counter()
        mse, _ = train(cell, x, y, x_test, y_test, epochs=sine_epochs)
        results[("sine", cell.__name__)] = mse
        print(f"  {cell.__name__:<9} test MSE {mse:.4f}   ({time.perf_counter() - start:.1f} s)")
    results[("sine", "last_value")] = last_value

    print(f"\nPart 2: forecast the sum of two marked values, the first up to {adding_length} steps back")
    x, y = adding_problem(n_train, adding_length)
    x_test, y_test = adding_problem(1024, adding_length, seed=1)
    variance = float(y_test.var())
    print(f"  always forecast the mean:    test MSE {variance:.4f}")
    for cell in (layers.SimpleRNN, layers.LSTM):
        start = time.perf_counter()
        mse, curve = train(cell, x, y, x_test, y_test, epochs=adding_epochs)
        results[("adding", cell.__name__)] = mse
        print(f"  {cell.__name__:<9} test MSE {mse:.4f}   ({time.perf_counter() - start:.1f} s)   held-out MSE by "
              f"epoch: {' '.join(f'{v:.3f}' for v in curve)}")
    results[("adding", "mean")] = variance
    return results


if __name__ == "__main__":
    main()

"""Gradient descent on one neuron, by hand and by autograd, side by side.

The model is y_hat = w * x + b and the loss is E = mean((y_hat - y)^2). Each step computes dE/dw and
dE/db twice: with the chain rule written out, and with engine's autograd (loss.backward()); both must
agree, and w' = w - lr * dE/dw moves the line toward the data.

    python examples/gradient_descent.py
"""
import numpy as np

import engine
from engine import ops


def main(steps=150, lr=0.1):
    engine.set_seed(0)
    x = np.linspace(-1, 1, 20).astype(np.float32)
    y = (2.0 * x + 1.0 + 0.1 * engine.random.generator().standard_normal(20)).astype(np.float32)
    w = engine.tensor(0.0, requires_grad=True)
    b = engine.tensor(0.0, requires_grad=True)
    print(f"{'step':>4} {'E':>9} {'dE/dw hand':>11} {'dE/dw auto':>11} {'w':>7} {'b':>7}")
    for step in range(steps):
        loss = ops.mean(ops.square(w * x + b - y))
        loss.backward()
        y_hat = w.item() * x + b.item()
        hand_dw = float(np.mean(2 * (y_hat - y) * x))
        hand_db = float(np.mean(2 * (y_hat - y)))
        assert abs(hand_dw - w.grad.item()) < 1e-4 and abs(hand_db - b.grad.item()) < 1e-4
        if step % 15 == 0 or step == steps - 1:
            print(f"{step:>4} {loss.item():>9.5f} {hand_dw:>11.5f} {w.grad.item():>11.5f} {w.item():>7.3f} {b.item():>7.3f}")
        with engine.no_grad():                   # the update itself is not part of the graph
            w = engine.tensor(w.item() - lr * w.grad.item(), requires_grad=True)
            b = engine.tensor(b.item() - lr * b.grad.item(), requires_grad=True)
    print(f"fitted y = {w.item():.2f} x + {b.item():.2f} (the data came from y = 2 x + 1 plus noise)")
    return w.item(), b.item()


if __name__ == "__main__":
    main()

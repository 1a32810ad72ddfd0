"""python -m engine.tour: a guided run through what the engine can do, printing each step and the kernel
that ran it. `python -m engine.tour --list` lists the sections; `python -m engine.tour loss` runs one.

Sections follow the lecture: a neuron's forward pass, activation functions, the loss, and one step of
gradient descent computed by autograd and checked against the formula.
"""
import sys

import numpy as np

import engine
from engine import ops


def _heading(title):
    print(f"\n=== {title} " + "=" * max(0, 74 - len(title)))


def _kernels(calls):
    """'cpu.matmul_forward, cpu.bias_add_forward' from a trace, each name once, in order."""
    return ", ".join(dict.fromkeys(calls)) or "(none)"


def neuron():
    _heading("1. A neuron: multiply, then add")
    x = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)        # one example, three inputs
    w = np.array([[0.8], [0.2], [-0.5]], dtype=np.float32)    # three weights, one neuron
    b = np.array([0.1], dtype=np.float32)
    by_hand = sum(float(x[0, i] * w[i, 0]) for i in range(3)) + float(b[0])
    print(f"inputs x = {[float(f'{v:g}') for v in x[0]]}, weights w = {[float(f'{v:g}') for v in w[:, 0]]}, "
          f"bias b = {b[0]:g}")
    print("by hand:  z = " + " + ".join(f"({x[0, i]:g})({w[i, 0]:g})" for i in range(3)) + f" + {b[0]:g} = {by_hand:g}")
    with engine.trace() as calls:
        z = ops.bias_add(ops.matmul(x, w), b)
    print(f"engine:   z = bias_add(matmul(x, w), b) = {z.item():g}      kernels: {_kernels(calls)}")

    x4 = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]], dtype=np.float32)
    w2 = np.array([[0.8, -0.3], [0.2, 0.9], [-0.5, 0.4]], dtype=np.float32)
    with engine.trace() as calls:
        hidden = ops.relu(ops.bias_add(ops.matmul(x4, w2), np.zeros(2, np.float32)))
        out = ops.matmul(hidden, np.array([[1.0], [-1.0]], dtype=np.float32))
    print(f"a layer of 2 neurons for 2 examples, then one output neuron:\n  hidden = relu(x @ W + b) = "
          f"{hidden.numpy().tolist()}\n  output = hidden @ v = {out.numpy()[:, 0].tolist()}      "
          f"kernels: {_kernels(calls)}")


def activations():
    _heading("2. Activation functions")
    z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=np.float32)
    print(f"z = {z.tolist()}")
    for name, fn in [("linear", ops.linear), ("relu", ops.relu), ("sigmoid", ops.sigmoid), ("tanh", ops.tanh),
                     ("leaky_relu", ops.leaky_relu), ("elu", ops.elu), ("gelu", ops.gelu), ("silu", ops.silu),
                     ("softplus", ops.softplus), ("softmax", ops.softmax)]:
        with engine.trace() as calls:
            y = fn(z)
        print(f"  {name:<10} {np.array2string(y.numpy(), precision=3, suppress_small=True):<44} "
              f"kernel: {_kernels(calls)}")
    print("softmax turns scores into probabilities: they sum to "
          f"{float(ops.softmax(z).numpy().sum()):.6f}")


# Ten actual values and a model's predictions; the squared errors add up to 5046, so MSE = 504.6.
ACTUAL = [120, 95, 140, 80, 160, 110, 130, 70, 150, 100]
PREDICTED = [111, 73, 122, 106, 172, 74, 126, 103, 180, 94]


def loss():
    _heading("3. The loss: mean squared error, worked example")
    y, y_hat = np.array(ACTUAL, np.float32), np.array(PREDICTED, np.float32)
    print(f"{'actual':>8} {'predicted':>10} {'error':>7} {'error^2':>8}")
    for a, p in zip(ACTUAL, PREDICTED):
        print(f"{a:>8} {p:>10} {a - p:>7} {(a - p) ** 2:>8}")
    with engine.trace() as calls:
        squared = ops.square(ops.subtract(y, y_hat))
        total = ops.sum(squared)
        mse = ops.mean(squared)
    print(f"total squared error = {total.item():g}, MSE = {total.item():g} / {len(ACTUAL)} = {mse.item():g}"
          f"      kernels: {_kernels(calls)} (subtract and square run on NumPy)")


def gradient_descent():
    _heading("4. One step of gradient descent: w' = w - lr * dE/dw")
    x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    y = np.array([3.0, 5.0, 7.0, 9.0], dtype=np.float32)       # the truth is y = 2x + 1
    w = engine.tensor(0.5, requires_grad=True)
    b = engine.tensor(0.0, requires_grad=True)
    lr = 0.05
    print(f"model y_hat = w * x + b on x = {x.tolist()}, y = {y.tolist()}; start w = {w.item()}, b = {b.item()}")
    with engine.trace() as calls:
        error = ops.mean(ops.square(w * x + b - y))             # E = mean((y_hat - y)^2)
        error.backward()                                        # autograd: dE/dw, dE/db
    print(f"E = {error.item():.4f}      kernels: {_kernels(calls)}")
    y_hat = w.item() * x + b.item()
    formula_dw = float(np.mean(2 * (y_hat - y) * x))            # chain rule by hand
    formula_db = float(np.mean(2 * (y_hat - y)))
    print(f"dE/dw: autograd {w.grad.item():.4f}, formula mean(2 (y_hat - y) x) = {formula_dw:.4f}")
    print(f"dE/db: autograd {b.grad.item():.4f}, formula mean(2 (y_hat - y))   = {formula_db:.4f}")
    new_w, new_b = w.item() - lr * w.grad.item(), b.item() - lr * b.grad.item()
    new_error = float(np.mean((new_w * x + new_b - y) ** 2))
    print(f"w' = {w.item()} - {lr} * {w.grad.item():.4f} = {new_w:.4f};  b' = {new_b:.4f};  "
          f"E falls from {error.item():.4f} to {new_error:.4f}")
    assert abs(w.grad.item() - formula_dw) < 1e-4 and new_error < error.item()


SECTIONS = {"neuron": neuron, "activations": activations, "loss": loss, "gradient_descent": gradient_descent}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--list", "-l"):
        print("\n".join(SECTIONS))
        return 0
    unknown = [name for name in argv if name not in SECTIONS]
    if unknown:
        print(f"engine.tour: unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    info = engine.info()
    print(f"engine {info['version']}: backend '{info['backend']}', {info['num_threads']} threads, "
          f"SIMD path '{info['simd']}'")
    for name in argv or SECTIONS:
        SECTIONS[name]()
    print("\nNext: read engine/ref/ (the math), engine/tensor.py and engine/ops.py (autograd), csrc/ (the kernels).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Backpropagation by hand, next to engine's autograd, on the classic 2-2-1 sigmoid network.

    inputs i1, i2 --(w1..w4, b1, b2)--> hidden h1, h2 (sigmoid) --(w5, w6, b3)--> output o (sigmoid)
    E = 1/2 (target - o)^2

The numbers are those of the well-known worked example (Matt Mazur, "A Step by Step Backpropagation
Example", first output only): i = (0.05, 0.10), w1..w4 = 0.15, 0.20, 0.25, 0.30, hidden biases 0.35,
w5, w6 = 0.40, 0.45, output bias 0.60, target 0.01. It prints out_h1 = 0.593269992, o = 0.75136507,
E = 0.274811083 and dE/dw5 = 0.082167041, as the write-up does.

Every gradient is written out with the chain rule, then compared with loss.backward(); both run in
float64 so they agree to ~1e-15. Last, one step of gradient descent, w' = w - lr * dE/dw, lowers E.

    python examples/backprop_by_hand.py
"""
import math

import numpy as np

import engine
from engine import ops

INPUTS = (0.05, 0.10)
TARGET = 0.01
WEIGHTS = {"w1": 0.15, "w2": 0.20, "w3": 0.25, "w4": 0.30, "b1": 0.35, "b2": 0.35,   # input -> hidden
           "w5": 0.40, "w6": 0.45, "b3": 0.60}                                       # hidden -> output
LR = 0.5


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def forward(p, i1, i2):
    """net_h1 = w1 i1 + w2 i2 + b1, net_h2 = w3 i1 + w4 i2 + b2, net_o = w5 h1 + w6 h2 + b3; h, o = sigmoid(net)."""
    h1 = sigmoid(p["w1"] * i1 + p["w2"] * i2 + p["b1"])
    h2 = sigmoid(p["w3"] * i1 + p["w4"] * i2 + p["b2"])
    o = sigmoid(p["w5"] * h1 + p["w6"] * h2 + p["b3"])
    return h1, h2, o


def hand_gradients(p, i1, i2, target, show=True):
    """dE/d(every weight) with the chain rule written out, printing each product."""
    h1, h2, o = forward(p, i1, i2)
    dE_do = o - target                        # E = 1/2 (target - o)^2
    do_dnet = o * (1 - o)                     # sigmoid'(net) = o (1 - o)
    delta_o = dE_do * do_dnet                 # dE/dnet_o, the output's "error signal"
    g = {"w5": delta_o * h1, "w6": delta_o * h2, "b3": delta_o * 1.0}
    # Hidden layer: the error reaches h1 through w5 and h2 through w6.
    delta_h1 = delta_o * p["w5"] * h1 * (1 - h1)          # dE/dnet_h1
    delta_h2 = delta_o * p["w6"] * h2 * (1 - h2)          # dE/dnet_h2
    g.update({"w1": delta_h1 * i1, "w2": delta_h1 * i2, "b1": delta_h1,
              "w3": delta_h2 * i1, "w4": delta_h2 * i2, "b2": delta_h2})
    if show:
        rows = [("chain rule, output layer:", None, None),
                ("dE/do", "o - target", f"{o:.9f} - {target} = {dE_do:.9f}"),
                ("do/dnet_o", "o (1 - o)", f"{do_dnet:.9f}"),
                ("delta_o", "dE/do * do/dnet_o", f"{delta_o:.9f}"),
                ("dE/dw5", "delta_o * h1", f"{delta_o:.9f} * {h1:.9f} = {g['w5']:.9f}"),
                ("dE/dw6", "delta_o * h2", f"{delta_o:.9f} * {h2:.9f} = {g['w6']:.9f}"),
                ("dE/db3", "delta_o * 1", f"{g['b3']:.9f}"),
                ("chain rule, hidden layer:", None, None),
                ("delta_h1", "delta_o * w5 * h1 (1 - h1)",
                 f"{delta_o:.9f} * {p['w5']} * {h1 * (1 - h1):.9f} = {delta_h1:.9f}"),
                ("delta_h2", "delta_o * w6 * h2 (1 - h2)",
                 f"{delta_o:.9f} * {p['w6']} * {h2 * (1 - h2):.9f} = {delta_h2:.9f}"),
                ("dE/dw1", "delta_h1 * i1", f"{delta_h1:.9f} * {i1} = {g['w1']:.9f}"),
                ("dE/dw2", "delta_h1 * i2", f"{delta_h1:.9f} * {i2} = {g['w2']:.9f}"),
                ("dE/dw3", "delta_h2 * i1", f"{delta_h2:.9f} * {i1} = {g['w3']:.9f}"),
                ("dE/dw4", "delta_h2 * i2", f"{delta_h2:.9f} * {i2} = {g['w4']:.9f}"),
                ("dE/db1", "delta_h1 * 1", f"{g['b1']:.9f}"),
                ("dE/db2", "delta_h2 * 1", f"{g['b2']:.9f}")]
        for label, formula, numbers in rows:
            print(label if formula is None else f"  {label:<9} = {formula:<26} = {numbers}")
    return g


def autograd_gradients(p, i1, i2, target):
    """The same network as matrices, x @ W + b, differentiated by engine: (E, {name: dE/dname})."""
    x = np.array([[i1, i2]])                                                          # (1, 2)
    W1 = engine.tensor([[p["w1"], p["w3"]], [p["w2"], p["w4"]]], np.float64, True)    # (2, 2): input -> hidden
    B1 = engine.tensor([p["b1"], p["b2"]], np.float64, True)                          # (2,)
    W2 = engine.tensor([[p["w5"]], [p["w6"]]], np.float64, True)                      # (2, 1): hidden -> output
    B2 = engine.tensor([p["b3"]], np.float64, True)                                   # (1,)
    hidden = ops.sigmoid(ops.bias_add(ops.matmul(engine.tensor(x, np.float64), W1), B1))   # (1, 2)
    out = ops.sigmoid(ops.bias_add(ops.matmul(hidden, W2), B2))                       # (1, 1)
    loss = ops.sum(0.5 * ops.square(target - out))                                    # ()
    loss.backward()
    gw1, gb1, gw2, gb2 = W1.grad.numpy(), B1.grad.numpy(), W2.grad.numpy(), B2.grad.numpy()
    grads = {"w1": gw1[0, 0], "w2": gw1[1, 0], "w3": gw1[0, 1], "w4": gw1[1, 1], "b1": gb1[0], "b2": gb1[1],
             "w5": gw2[0, 0], "w6": gw2[1, 0], "b3": gb2[0]}
    return loss.item(), {k: float(v) for k, v in grads.items()}


def main(lr=LR):
    i1, i2 = INPUTS
    p = dict(WEIGHTS)
    h1, h2, o = forward(p, i1, i2)
    error = 0.5 * (TARGET - o) ** 2
    print(f"forward: out_h1 = {h1:.9f}, out_h2 = {h2:.9f}, o = {o:.8f}, E = 1/2 (target - o)^2 = {error:.9f}\n")
    hand = hand_gradients(p, i1, i2, TARGET)
    auto_error, auto = autograd_gradients(p, i1, i2, TARGET)
    print(f"\nengine autograd (loss.backward()), E = {auto_error:.9f}:")
    print(f"  {'weight':<6} {'value':>6} {'by hand':>14} {'autograd':>14} {'difference':>11}")
    for name in WEIGHTS:
        print(f"  {name:<6} {p[name]:>6} {hand[name]:>14.9f} {auto[name]:>14.9f} {abs(hand[name] - auto[name]):>11.1e}")
    for name in WEIGHTS:
        assert abs(hand[name] - auto[name]) <= 1e-12, f"{name}: hand {hand[name]!r} != autograd {auto[name]!r}"

    updated = {name: p[name] - lr * hand[name] for name in WEIGHTS}      # w' = w - lr * dE/dw
    new_error = 0.5 * (TARGET - forward(updated, i1, i2)[2]) ** 2
    print(f"\none step of gradient descent, lr = {lr}: w5' = {p['w5']} - {lr} * {hand['w5']:.9f} = "
          f"{updated['w5']:.8f}; w1' = {updated['w1']:.9f}")
    print(f"E falls from {error:.9f} to {new_error:.9f}")
    assert new_error < error
    return {"hand": hand, "autograd": auto, "error": error, "new_error": new_error, "updated": updated}


if __name__ == "__main__":
    main()

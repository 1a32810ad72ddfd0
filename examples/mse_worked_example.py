"""The lecture's mean squared error table, computed three ways that must agree.

Ten actual values and a model's predictions. Squared errors add up to 5046, so MSE = 5046 / 10 = 504.6:
    1. by hand, a Python loop over the table;
    2. with engine.ops: mean(square(actual - predicted)), the kernels a training step runs;
    3. with engine.losses.MeanSquaredError, the loss that model.compile(loss='mse') uses.

    python examples/mse_worked_example.py
"""
import numpy as np

import engine
from engine import losses, ops

ACTUAL = [120, 95, 140, 80, 160, 110, 130, 70, 150, 100]
PREDICTED = [111, 73, 122, 106, 172, 74, 126, 103, 180, 94]


def by_hand(actual, predicted):
    """(total squared error, MSE) with a plain loop: MSE = (1/n) * sum_i (y_i - y_hat_i)^2."""
    total = 0
    for a, p in zip(actual, predicted):
        total += (a - p) ** 2
    return total, total / len(actual)


def with_ops(actual, predicted):
    """The same formula on engine tensors: returns (total, MSE) and the kernels that ran."""
    y, y_hat = np.array(actual, np.float32), np.array(predicted, np.float32)     # (10,)
    with engine.trace() as calls:
        squared = ops.square(ops.subtract(y, y_hat))                              # (10,)
        total = ops.sum(squared)                                                  # ()
        mse = ops.mean(squared)                                                   # ()
    return total.item(), mse.item(), list(dict.fromkeys(calls))


def with_loss(actual, predicted):
    """Keras' loss object: ten samples of one output each, so y_true and y_pred have shape (10, 1)."""
    y_true = np.array(actual, np.float32).reshape(-1, 1)                          # (10, 1)
    y_pred = engine.tensor(np.array(predicted, np.float32).reshape(-1, 1))        # (10, 1)
    return losses.MeanSquaredError()(y_true, y_pred).item()


def main():
    print(f"{'i':>2} {'actual':>7} {'predicted':>10} {'error':>6} {'error^2':>8}")
    for i, (a, p) in enumerate(zip(ACTUAL, PREDICTED), start=1):
        print(f"{i:>2} {a:>7} {p:>10} {a - p:>6} {(a - p) ** 2:>8}")
    total, mse = by_hand(ACTUAL, PREDICTED)
    print(f"{'':>2} {'':>7} {'':>10} {'sum':>6} {total:>8}")
    print(f"\n1. by hand:    total = {total}, MSE = {total} / {len(ACTUAL)} = {mse:g}")
    ops_total, ops_mse, kernels = with_ops(ACTUAL, PREDICTED)
    print(f"2. engine.ops: total = {ops_total:g}, MSE = {ops_mse:g}      kernels: {', '.join(kernels)}")
    loss_mse = with_loss(ACTUAL, PREDICTED)
    print(f"3. engine.losses.MeanSquaredError()(y_true, y_pred) = {loss_mse:g}")
    assert total == 5046 and ops_total == 5046 and abs(ops_mse - mse) < 1e-3 and abs(loss_mse - mse) < 1e-3
    return {"total": total, "mse": mse, "ops_total": ops_total, "ops_mse": ops_mse, "loss_mse": loss_mse}


if __name__ == "__main__":
    main()

"""NumPy reference for the loss family: cross-entropy fused with the softmax (or sigmoid) before it.
The spec that csrc/loss.cpp must match. N rows (examples), C classes.

Why fused: softmax, then log, loses everything once a probability underflows to 0 (log 0 = -inf) and
overflows for logits of 1e4. With lse = log(sum_c exp(z_c)) = max + log(sum exp(z - max)),
-sum_c t_c log p_c = sum_c t_c (lse - z_c) never takes the log of a tiny number, and the gradient with
respect to the logits is simply probs - targets. Targets are labels: they get no gradient.
"""
import numpy as np

from ._check import floats, loss_labels, loss_rows, same_shape, shape_str


def _log_sum_exp(z):
    """lse per row (float64) and the softmax probabilities (z's dtype)."""
    z64 = z.astype(np.float64)
    m = z64.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z64 - m).sum(axis=1, keepdims=True))
    return lse, np.exp(z64 - lse).astype(z.dtype)


def softmax_cross_entropy_forward(logits, targets):
    """loss[n] = sum_c targets[n, c] (lse[n] - logits[n, c]);  probs = softmax(logits).
    logits, targets: (N, C) -> loss: (N,), probs: (N, C)"""
    loss_rows("softmax_cross_entropy_forward", logits)
    floats("softmax_cross_entropy_forward", "targets", targets)
    same_shape("softmax_cross_entropy_forward", "targets", targets, "logits", logits)
    lse, probs = _log_sum_exp(logits)
    return (targets * (lse - logits)).sum(axis=1).astype(logits.dtype), probs


def softmax_cross_entropy_backward(dloss, probs, targets):
    """dlogits = dloss[:, None] * (probs * sum_c(targets) - targets)  (= probs - targets for one-hot rows).
    dloss: (N,), probs, targets: (N, C) -> dlogits: (N, C)"""
    for name, a in (("dloss", dloss), ("probs", probs), ("targets", targets)):
        floats("softmax_cross_entropy_backward", name, a)
    same_shape("softmax_cross_entropy_backward", "targets", targets, "probs", probs)
    if dloss.shape != probs.shape[:1]:
        raise ValueError(f"softmax_cross_entropy_backward: expected dloss of shape ({probs.shape[0]},). "
                         f"Received: dloss.shape={shape_str(dloss.shape)}")
    mass = targets.sum(axis=1, keepdims=True, dtype=np.float64).astype(probs.dtype)
    return dloss[:, None] * (probs * mass - targets)


def sparse_softmax_cross_entropy_forward(logits, labels):
    """loss[n] = lse[n] - logits[n, labels[n]];  probs = softmax(logits).
    logits: (N, C), labels: (N,) int64 class ids -> loss: (N,), probs: (N, C)"""
    loss_rows("sparse_softmax_cross_entropy_forward", logits)
    loss_labels("sparse_softmax_cross_entropy_forward", labels, logits)
    lse, probs = _log_sum_exp(logits)
    picked = logits[np.arange(len(labels)), labels]
    return (lse[:, 0] - picked).astype(logits.dtype), probs


def sparse_softmax_cross_entropy_backward(dloss, probs, labels):
    """dlogits = dloss[:, None] * (probs - onehot(labels)).    -> dlogits: (N, C)"""
    floats("sparse_softmax_cross_entropy_backward", "dloss", dloss)
    loss_rows("sparse_softmax_cross_entropy_backward", probs)
    loss_labels("sparse_softmax_cross_entropy_backward", labels, probs)
    if dloss.shape != probs.shape[:1]:
        raise ValueError(f"sparse_softmax_cross_entropy_backward: expected dloss of shape ({probs.shape[0]},). "
                         f"Received: dloss.shape={shape_str(dloss.shape)}")
    grad = probs.copy()
    grad[np.arange(len(labels)), labels] -= 1
    return dloss[:, None] * grad


def sigmoid_cross_entropy_forward(logits, targets):
    """loss = -(t log s + (1 - t) log(1 - s)), s = sigmoid(z), computed as max(z, 0) - z t + log1p(exp(-|z|)),
    which never overflows. logits, targets: any shape (the same) -> loss: that shape"""
    floats("sigmoid_cross_entropy_forward", "logits", logits)
    floats("sigmoid_cross_entropy_forward", "targets", targets)
    same_shape("sigmoid_cross_entropy_forward", "targets", targets, "logits", logits)
    return np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))


def sigmoid_cross_entropy_backward(dloss, logits, targets):
    """dlogits = dloss * (sigmoid(logits) - targets)."""
    for name, a in (("dloss", dloss), ("logits", logits), ("targets", targets)):
        floats("sigmoid_cross_entropy_backward", name, a)
    same_shape("sigmoid_cross_entropy_backward", "targets", targets, "logits", logits)
    same_shape("sigmoid_cross_entropy_backward", "dloss", dloss, "logits", logits)
    e = np.exp(-np.abs(logits))
    s = np.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return (dloss * (s - targets)).astype(logits.dtype)

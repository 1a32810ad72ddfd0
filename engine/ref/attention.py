"""NumPy reference for softmax and log-softmax over one axis (the attention family; attention joins
later). The spec that csrc/attention.cpp must match.

Dimensions: the softmax axis has D entries; x may have any number of other axes.
"""
import numpy as np

from ._check import axis_index, floats, same_shape


def softmax_forward(x, axis=-1):
    """y = exp(x - m) / sum(exp(x - m)) along axis, m = max along axis.    x: any shape -> y: x.shape
    Shifting by the max makes the largest exponent 0: no overflow, even for logits of 1e4."""
    floats("softmax_forward", "x", x)
    axis_index("softmax_forward", axis, x.ndim)
    if x.size == 0:
        return x.copy()
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True, dtype=np.float64), dtype=x.dtype)


def softmax_backward(dy, y, axis=-1):
    """dx = y * (dy - sum(dy * y)) along axis."""
    floats("softmax_backward", "dy", dy)
    floats("softmax_backward", "y", y)
    same_shape("softmax_backward", "dy", dy, "y", y)
    axis_index("softmax_backward", axis, y.ndim)
    dot = (dy * y).sum(axis=axis, keepdims=True, dtype=np.float64)
    return np.asarray(y * (dy - dot), dtype=y.dtype)


def log_softmax_forward(x, axis=-1):
    """y = x - m - log(sum(exp(x - m))) along axis, m = max along axis: log(softmax(x)) without ever
    taking the log of a number that underflowed to 0."""
    floats("log_softmax_forward", "x", x)
    axis_index("log_softmax_forward", axis, x.ndim)
    if x.size == 0:
        return x.copy()
    z = x - x.max(axis=axis, keepdims=True)
    return np.asarray(z - np.log(np.exp(z).sum(axis=axis, keepdims=True, dtype=np.float64)), dtype=x.dtype)


def log_softmax_backward(dy, y, axis=-1):
    """dx = dy - softmax(x) * sum(dy) along axis, with softmax(x) = exp(y)."""
    floats("log_softmax_backward", "dy", dy)
    floats("log_softmax_backward", "y", y)
    same_shape("log_softmax_backward", "dy", dy, "y", y)
    axis_index("log_softmax_backward", axis, y.ndim)
    total = dy.sum(axis=axis, keepdims=True, dtype=np.float64)
    return np.asarray(dy - np.exp(y.astype(np.float64)) * total, dtype=y.dtype)

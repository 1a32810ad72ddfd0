"""NumPy reference for the reduce family: sum, mean and max over axes, and their gradients. The spec
that csrc/reduce.cpp must match. `axis` is None (all axes), an int, or a tuple of ints.
"""
import numpy as np

from ._check import axes_tuple, floats, shape_str


def _reduced_shapes(x, axes):
    """The forward output's shape without and with keepdims."""
    keep = tuple(1 if d in axes else n for d, n in enumerate(x.shape))
    return tuple(n for d, n in enumerate(x.shape) if d not in axes), keep


def _spread(where, dy, x, axis):
    """dy (the reduced shape, with or without keepdims) broadcast back to x.shape."""
    floats(where, "dy", dy)
    floats(where, "x", x)
    axes = axes_tuple(where, axis, x.ndim)
    out, keep = _reduced_shapes(x, axes)
    if dy.shape not in (out, keep):
        raise ValueError(f"{where}: expected dy of shape {shape_str(out)} or {shape_str(keep)} (the forward output). "
                         f"Received: dy.shape={shape_str(dy.shape)}")
    return np.broadcast_to(dy.reshape(keep), x.shape), axes, keep


def sum_forward(x, axis=None, keepdims=False):
    """y = sum of x over the axes (accumulated in float64, returned in x's dtype)."""
    floats("sum_forward", "x", x)
    axes = axes_tuple("sum_forward", axis, x.ndim)
    return np.asarray(x.sum(axis=axes, keepdims=keepdims, dtype=np.float64), dtype=x.dtype)


def sum_backward(dy, x, axis=None, keepdims=False):
    """dx = dy, copied along every reduced axis."""
    return _spread("sum_backward", dy, x, axis)[0].copy()


def mean_forward(x, axis=None, keepdims=False):
    """y = sum / R, R the number of values reduced. The mean of nothing (R = 0) is NaN."""
    floats("mean_forward", "x", x)
    axes = axes_tuple("mean_forward", axis, x.ndim)
    count = int(np.prod([x.shape[d] for d in axes]))
    with np.errstate(invalid="ignore"):
        return np.asarray(sum_forward(x, axes, keepdims) / x.dtype.type(count), dtype=x.dtype)


def mean_backward(dy, x, axis=None, keepdims=False):
    """dx = dy / R along every reduced axis."""
    g, axes, _ = _spread("mean_backward", dy, x, axis)
    count = max(1, int(np.prod([x.shape[d] for d in axes])))
    return g / g.dtype.type(count)


def max_forward(x, axis=None, keepdims=False):
    """y = max of x over the axes. NaN propagates: a NaN among the values gives NaN."""
    floats("max_forward", "x", x)
    axes = axes_tuple("max_forward", axis, x.ndim)
    count = int(np.prod([x.shape[d] for d in axes]))
    out, keep = _reduced_shapes(x, axes)
    if count == 0:
        if int(np.prod(out)) > 0:
            raise ValueError(f"max_forward: cannot take the max over an empty axis: it has no identity. "
                             f"Received: x.shape={shape_str(x.shape)}, axis={axis!r}")
        return np.empty(keep if keepdims else out, dtype=x.dtype)      # nothing in, nothing out
    return np.asarray(x.max(axis=axes, keepdims=keepdims))


def max_backward(dy, x, y, axis=None, keepdims=False):
    """The gradient goes to the entries equal to the max; k tied entries share it, dy / k each
    (as tf.reduce_max and torch.amax). y is the forward output."""
    g, axes, keep = _spread("max_backward", dy, x, axis)
    floats("max_backward", "y", y)
    if y.shape != dy.shape:
        raise ValueError(f"max_backward: expected y of shape {shape_str(dy.shape)} (the forward output). "
                         f"Received: y.shape={shape_str(y.shape)}")
    hit = x == y.reshape(keep)
    ties = hit.sum(axis=axes, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hit, g / np.maximum(ties, 1).astype(g.dtype), 0).astype(g.dtype)

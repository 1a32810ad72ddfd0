"""NumPy reference for the matmul family: matrix multiply (with transposed operands and stacks of
matrices) and the bias add of a dense layer. The spec that csrc/matmul.cpp must match.

Dimensions: M rows of C, N columns of C, K the summed dimension; "..." is a stack of matrices.
op(a) is a, or its transpose a^T when trans_a is set (a is then stored (..., K, M)); the same for b.
A stack may be multiplied by one shared 2-D matrix; general broadcasting is engine.ops.matmul's job.
"""
import numpy as np

from ._check import floats, matmul_shapes, shape_str


def _op(x, transposed):
    return np.swapaxes(x, -1, -2) if transposed else x


def matmul_forward(a, b, trans_a=False, trans_b=False):
    """c[..., m, n] = sum_k op(a)[..., m, k] * op(b)[..., k, n].
    a: (..., M, K) or (..., K, M) if trans_a;  b: (..., K, N) or (..., N, K) if trans_b  ->  c: (..., M, N)"""
    floats("matmul_forward", "a", a)
    floats("matmul_forward", "b", b)
    matmul_shapes("matmul_forward", a, b, trans_a, trans_b)
    return np.matmul(_op(a, trans_a), _op(b, trans_b))


def _unstack(grad, like):
    """A 2-D operand shared by a stack gets the sum of the stack's gradients."""
    return grad.sum(axis=tuple(range(grad.ndim - 2))) if grad.ndim > like.ndim else grad


def matmul_backward(dc, a, b, trans_a=False, trans_b=False):
    """With C = op(A) @ op(B):  d op(A) = dC @ op(B)^T  and  d op(B) = op(A)^T @ dC.
    Each gradient comes back in its operand's stored layout (transposed again when trans_* is set).
    dc: (..., M, N)  ->  da: a.shape, db: b.shape"""
    for name, x in (("dc", dc), ("a", a), ("b", b)):
        floats("matmul_backward", name, x)
    matmul_shapes("matmul_backward", a, b, trans_a, trans_b)
    A, B = _op(a, trans_a), _op(b, trans_b)
    expected = np.broadcast_shapes(A.shape[:-2], B.shape[:-2]) + (A.shape[-2], B.shape[-1])
    if dc.shape != expected:
        raise ValueError(f"matmul_backward: expected dc of shape {shape_str(expected)} (the forward output). "
                         f"Received: dc.shape={shape_str(dc.shape)}")
    dA = np.matmul(dc, np.swapaxes(B, -1, -2))                # (..., M, K)
    dB = np.matmul(np.swapaxes(A, -1, -2), dc)                # (..., K, N)
    return _unstack(_op(dA, trans_a), a), _unstack(_op(dB, trans_b), b)


def bias_add_forward(x, bias):
    """y[..., d] = x[..., d] + bias[d].    x: (..., D), bias: (D,) -> y: (..., D)"""
    floats("bias_add_forward", "x", x)
    floats("bias_add_forward", "bias", bias)
    if x.ndim < 1 or bias.ndim != 1 or bias.shape[0] != x.shape[-1]:
        raise ValueError(f"bias_add_forward: expected bias of shape (D,) for x of shape (..., D). "
                         f"Received: x.shape={shape_str(x.shape)}, bias.shape={shape_str(bias.shape)}")
    return x + bias


def bias_add_backward(dy):
    """dx = dy (the add passes the gradient through); dbias[d] = sum of dy[..., d] over every other axis.
    dy: (..., D) -> dx: (..., D), dbias: (D,)"""
    floats("bias_add_backward", "dy", dy)
    if dy.ndim < 1:
        raise ValueError(f"bias_add_backward: expected dy of shape (..., D). Received: dy.shape={shape_str(dy.shape)}")
    dbias = dy.reshape(-1, dy.shape[-1]).sum(axis=0, dtype=np.float64) if dy.size else np.zeros(dy.shape[-1])
    return dy, dbias.astype(dy.dtype)


# The dense layer as one kernel: the activations it fuses, by name, with their reference functions.
# For the activations not in _NEEDS_INPUT the derivative can be read from the output y (y > 0 exactly
# where z > 0 for relu, leaky_relu with a slope >= 0 and elu with alpha > 0; sigmoid and tanh use y), so
# the forward pass returns y in place of z and keeps no second array.
_NEEDS_INPUT = ("gelu", "gelu_approximate", "silu", "softplus")


def _activation(where, activation, negative_slope, alpha):
    from . import activation as act
    table = {"linear": (act.linear_forward, act.linear_backward, {}),
             "relu": (act.relu_forward, act.relu_backward, {}),
             "leaky_relu": (act.leaky_relu_forward, act.leaky_relu_backward, {"negative_slope": negative_slope}),
             "sigmoid": (act.sigmoid_forward, act.sigmoid_backward, {}),
             "tanh": (act.tanh_forward, act.tanh_backward, {}),
             "elu": (act.elu_forward, act.elu_backward, {"alpha": alpha}),
             "gelu": (act.gelu_forward, act.gelu_backward, {"approximate": False}),
             "gelu_approximate": (act.gelu_forward, act.gelu_backward, {"approximate": True}),
             "silu": (act.silu_forward, act.silu_backward, {}),
             "softplus": (act.softplus_forward, act.softplus_backward, {})}
    if activation not in table:
        raise ValueError(f"{where}: expected activation in {list(table)}. Received: activation={activation!r}")
    needs_input = activation in _NEEDS_INPUT or (activation == "leaky_relu" and negative_slope < 0) or \
        (activation == "elu" and alpha <= 0)
    return table[activation], needs_input


def dense_forward(x, w, bias=None, activation="linear", negative_slope=0.2, alpha=1.0):
    """y = act(x @ w + bias), one dense layer.    x: (..., D), w: (D, U), bias: (U,) or None
    Returns (y, z): z = x @ w + bias when the activation's derivative needs it, else y itself."""
    floats("dense_forward", "x", x)
    floats("dense_forward", "w", w)
    if x.ndim < 1 or w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"dense_forward: expected x of shape (..., D) and w of shape (D, U). "
                         f"Received: x.shape={shape_str(x.shape)}, w.shape={shape_str(w.shape)}")
    (forward, _, params), needs_input = _activation("dense_forward", activation, negative_slope, alpha)
    z = x @ w
    if bias is not None:
        floats("dense_forward", "bias", bias)
        if bias.shape != (w.shape[1],):
            raise ValueError(f"dense_forward: expected bias of shape ({w.shape[1]},). "
                             f"Received: bias.shape={shape_str(bias.shape)}")
        z = z + bias
    y = forward(z, **params)
    return y, (z if needs_input else y)


def dense_backward(dy, x, w, z, y, activation="linear", use_bias=True, negative_slope=0.2, alpha=1.0):
    """dz = dy * act'(z); dbias = sum of dz over every axis but the last; dx = dz @ w^T; dw = x^T @ dz.
    Returns (dx, dw, dbias); dbias is None when use_bias is False."""
    for name, a in (("dy", dy), ("x", x), ("w", w), ("z", z), ("y", y)):
        floats("dense_backward", name, a)
    (_, backward, params), _ = _activation("dense_backward", activation, negative_slope, alpha)
    dz = backward(dy, z, y, **params)
    dz2 = dz.reshape(-1, w.shape[1])
    dbias = dz2.sum(axis=0, dtype=np.float64).astype(dz.dtype) if use_bias else None
    return dz @ w.T, x.reshape(-1, w.shape[0]).T @ dz2, dbias

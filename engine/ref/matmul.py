"""NumPy reference for the matmul family: matrix multiply (with transposed operands and stacks of
matrices) and the bias add of a dense layer. The spec that csrc/matmul.cpp must match.

Dimensions: M rows of C, N columns of C, K the summed dimension; "..." is a stack of matrices.
op(a) is a, or its transpose a^T when trans_a is set (a is then stored (..., K, M)); the same for b.
A stack may be multiplied by one shared 2-D matrix; general broadcasting is engine.ops.matmul's job.
"""
import numpy as np

from ._check import floats, shape_str


def _op(x, transposed):
    return np.swapaxes(x, -1, -2) if transposed else x


def _check_shapes(where, a, b, trans_a, trans_b):
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{where}: expected a and b with at least 2 dimensions (use engine.ops.matmul for vectors). "
                         f"Received: a.shape={shape_str(a.shape)}, b.shape={shape_str(b.shape)}")
    if a.ndim > 2 and b.ndim > 2 and a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"{where}: expected equal batch dimensions, or one operand 2-D. "
                         f"Received: a.shape={shape_str(a.shape)}, b.shape={shape_str(b.shape)}")
    ka = a.shape[-2] if trans_a else a.shape[-1]
    kb = b.shape[-1] if trans_b else b.shape[-2]
    if ka != kb:
        raise ValueError(f"{where}: expected the inner dimensions to match, got K={ka} from a and K={kb} from b. "
                         f"Received: a.shape={shape_str(a.shape)}, b.shape={shape_str(b.shape)}, "
                         f"trans_a={bool(trans_a)}, trans_b={bool(trans_b)}")


def matmul_forward(a, b, trans_a=False, trans_b=False):
    """c[..., m, n] = sum_k op(a)[..., m, k] * op(b)[..., k, n].
    a: (..., M, K) or (..., K, M) if trans_a;  b: (..., K, N) or (..., N, K) if trans_b  ->  c: (..., M, N)"""
    floats("matmul_forward", "a", a)
    floats("matmul_forward", "b", b)
    _check_shapes("matmul_forward", a, b, trans_a, trans_b)
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
    _check_shapes("matmul_backward", a, b, trans_a, trans_b)
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

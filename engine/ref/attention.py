"""NumPy reference for the attention family: softmax and log-softmax over one axis, and scaled dot-product
attention with masks. The spec that csrc/attention.cpp (softmax) and csrc/attention_fused.cpp (attention)
must match; the reference builds the full score matrix, the fused kernel never does.

Dimensions: the softmax axis has D entries; x may have any number of other axes.
"""
import numpy as np

from ._check import attention_args, axis_index, floats, same_shape, shape_str


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


# --------------------------------------------------------------------------------------------- attention
# Dimensions (Keras' letters): B batch, T queries, S keys, N query heads, K key/value heads (N a multiple of
# K: grouped-query attention when K < N), H head size of queries and keys, HV head size of values.
# q: (B, T, N, H), k: (B, S, K, H), v: (B, S, K, HV) -> o: (B, T, N, HV). Query head n reads key head n // (N / K).

MASKED = np.float32(-0.7 * np.finfo(np.float32).max)   # Keras' stand-in for a masked logit: finite, so a row
# whose every key is masked has equal logits and attends uniformly to all S keys (no 0/0, no NaN)


def _logits(q, k, mask, bias, scale, is_causal):
    """x = scale * q k^T + bias with every disallowed entry set to MASKED, and where it is allowed.
    -> x: (B, N, T, S), allowed: (B, N, T, S) bool"""
    T, N, S = q.shape[1], q.shape[2], k.shape[1]
    kk = np.repeat(k, N // k.shape[2], axis=2)                   # (B, S, N, H): each key head serves N/K heads
    x = np.einsum("btnh,bsnh->bnts", q, kk) * q.dtype.type(scale)
    if bias is not None:
        x = x + bias
    allowed = np.ones((1, 1, T, S), bool) if mask is None else mask
    if is_causal:                                               # query t sees keys 0..t (aligned top left)
        allowed = allowed & np.tril(np.ones((T, S), bool))
    allowed = np.broadcast_to(allowed, x.shape)
    return np.where(allowed, x, MASKED).astype(q.dtype), allowed


def attention_forward(q, k, v, mask=None, bias=None, scale=None, is_causal=False, return_weights=False):
    """o = softmax(scale * q k^T + bias, masked) v, per batch and head; the full score matrix, as the spec.
    scale defaults to 1 / sqrt(H); mask (bool, True = attend) and bias broadcast to (B, N, T, S).
    -> o: (B, T, N, HV), lse: (B, N, T) the log of each softmax row's sum (what the backward needs),
       weights: (B, N, T, S) the softmax, or None unless return_weights.
    A row with every key masked attends uniformly to all S keys; its lse is MASKED."""
    _, T, S, N, K, H, _ = attention_args("attention_forward", q, k, v, mask, bias)
    scale = 1 / np.sqrt(H) if scale is None else scale
    x, allowed = _logits(q, k, mask, bias, scale, is_causal)
    m = x.max(axis=-1, keepdims=True)                           # shift by the row max: no overflow
    e = np.exp(x - m)
    total = e.sum(axis=-1, keepdims=True, dtype=np.float64)
    p = (e / total).astype(q.dtype)                             # (B, N, T, S)
    o = np.einsum("bnts,bsnh->btnh", p, np.repeat(v, N // K, axis=2))
    full = ~allowed.any(axis=-1)                                # (B, N, T): rows with nothing to attend to
    lse = np.where(full, MASKED, m[..., 0] + np.log(total[..., 0])).astype(q.dtype)
    return o.astype(q.dtype), lse, (p if return_weights else None)


def attention_backward(do, q, k, v, o, lse, mask=None, bias=None, scale=None, is_causal=False, bias_grad=False):
    """Gradients of o = p v with p = softmax(x), x = scale * q k^T + bias (masked):
        p = exp(x - lse)  (1/S on a fully masked row, whose lse is MASKED)
        dv = p^T do;  dp = do v^T;  ds = p * (dp - rowsum(do * o))  (0 where masked);
        dq = scale * ds k;  dk = scale * ds^T q;  dbias = ds (full (B, N, T, S), when bias_grad).
    A key head serving several query heads gets the sum of their gradients.
    -> dq: q.shape, dk: k.shape, dv: v.shape, dbias: (B, N, T, S) or None"""
    where = "attention_backward"
    B, T, S, N, K, H, HV = attention_args(where, q, k, v, mask, bias)
    for name, a, shape in (("do", do, (B, T, N, HV)), ("o", o, (B, T, N, HV)), ("lse", lse, (B, N, T))):
        floats(where, name, a)
        if a.shape != shape:
            raise ValueError(f"{where}: expected {name} of shape {shape_str(shape)}. "
                             f"Received: {name}.shape={shape_str(a.shape)}")
    scale = 1 / np.sqrt(H) if scale is None else scale
    x, allowed = _logits(q, k, mask, bias, scale, is_causal)
    full = (lse == MASKED)[..., None]                           # (B, N, T, 1)
    p = np.where(full, q.dtype.type(1 / S), np.exp(x - lse[..., None]))
    G = N // K
    dv = np.einsum("bnts,btnh->bsnh", p, do).reshape(B, S, K, G, HV).sum(axis=3)
    dp = np.einsum("btnh,bsnh->bnts", do, np.repeat(v, G, axis=2))
    row = np.einsum("btnh,btnh->bnt", do, o)[..., None]         # rowsum(do * o) = rowsum(p * dp)
    ds = np.where(allowed & ~full, p * (dp - row), 0).astype(q.dtype)
    s = q.dtype.type(scale)
    dq = np.einsum("bnts,bsnh->btnh", ds, np.repeat(k, G, axis=2)) * s
    dk = np.einsum("bnts,btnh->bsnh", ds, q).reshape(B, S, K, G, H).sum(axis=3) * s
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype), (ds if bias_grad else None)

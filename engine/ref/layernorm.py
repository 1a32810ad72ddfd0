"""NumPy reference for the layernorm family: layer normalisation over the last axis, and its gradients.
The spec that csrc/layernorm.cpp must match. N rows, D features (x may have any leading axes).

Numerics: the variance is the mean of squared deviations from the mean (two passes), never
E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std. Sums are taken in float64.
"""
import numpy as np

from ._check import floats, layer_norm_args, shape_str


def layer_norm_forward(x, gamma=None, beta=None, epsilon=1e-3, rms_scaling=False):
    """y = (x - mean) * rstd * gamma + beta along the last axis, rstd = 1 / sqrt(var + epsilon).
    rms_scaling: mean is taken as 0, so y = x / sqrt(mean(x^2) + epsilon) * gamma (beta unused).
    gamma, beta: (D,) or None (1 and 0).    x: (..., D) -> y: x.shape, mean, rstd: x.shape[:-1]"""
    layer_norm_args("layer_norm_forward", x, gamma=gamma, beta=beta)
    x64 = x.astype(np.float64)
    mean = np.zeros(x.shape[:-1]) if rms_scaling else x64.mean(axis=-1)
    var = np.square(x64 - mean[..., None]).mean(axis=-1)
    rstd = 1.0 / np.sqrt(var + epsilon)
    y = (x64 - mean[..., None]) * rstd[..., None]
    if gamma is not None:
        y = y * gamma
    if beta is not None and not rms_scaling:
        y = y + beta
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


def layer_norm_backward(dy, x, mean, rstd, gamma=None, rms_scaling=False):
    """With xhat = (x - mean) * rstd and g = dy * gamma, per row:
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))     (rms_scaling: without the mean(g) term)
        dgamma = sum over rows of dy * xhat;  dbeta = sum over rows of dy.
    -> dx: x.shape, dgamma: (D,), dbeta: (D,)"""
    where = "layer_norm_backward"
    layer_norm_args(where, x, gamma=gamma)
    for name, a, shape in (("dy", dy, x.shape), ("mean", mean, x.shape[:-1]), ("rstd", rstd, x.shape[:-1])):
        floats(where, name, a)
        if a.shape != shape:
            raise ValueError(f"{where}: expected {name} of shape {shape_str(shape)}. "
                             f"Received: {name}.shape={shape_str(a.shape)}")
    dy64, r = dy.astype(np.float64), rstd.astype(np.float64)[..., None]
    xhat = (x.astype(np.float64) - mean[..., None]) * r
    g = dy64 if gamma is None else dy64 * gamma
    inner = g - (g * xhat).mean(axis=-1, keepdims=True) * xhat
    if not rms_scaling:
        inner = inner - g.mean(axis=-1, keepdims=True)
    rows = dy64.reshape(-1, x.shape[-1])
    dgamma = (rows * xhat.reshape(rows.shape)).sum(axis=0)
    return (r * inner).astype(x.dtype), dgamma.astype(x.dtype), rows.sum(axis=0).astype(x.dtype)

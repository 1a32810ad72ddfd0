"""NumPy reference for batch normalisation: the spec that csrc/batchnorm.cpp must match.

Dimensions: C the normalised axis (the features or channels: `axis`, the last one by default); M the number
of values per channel, the product of every other axis (for NHWC images M = N * H * W). x is viewed as
(A, C, B), the axes before `axis` and after it.

Training (batch statistics), with Keras' semantics:
    mean[c] = mean of x[..., c, ...],  var[c] = mean of (x - mean)^2   (the biased variance, as Keras)
    y = gamma * (x - mean) / sqrt(var + epsilon) + beta
    moving_mean = moving_mean * momentum + mean * (1 - momentum)       (updated in place; the same for var)
Inference: the same formula with moving_mean and moving_var, and no update.
Keras' defaults: momentum 0.99, epsilon 1e-3. The forward returns y, the mean it used and
inv_std = 1 / sqrt(var + epsilon), which the backward takes.

Gradients, with xhat = (x - mean) * inv_std (training: mean and var depend on x, so every x[c] feels every dy[c]):
    dbeta = sum dy,  dgamma = sum dy * xhat,
    dx = gamma * inv_std * (dy - dbeta / M - xhat * dgamma / M)      training
    dx = gamma * inv_std * dy                                         inference (the statistics are constants)
"""
import numpy as np

from ._check import batchnorm_channels, batchnorm_view, floats, shape_str


def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, momentum=0.99, epsilon=1e-3, training=True, axis=-1):
    """(y, mean, inv_std). x: any shape with C = x.shape[axis]; gamma, beta, moving_mean, moving_var: (C,).
    training=True normalises with the batch statistics and updates moving_mean and moving_var in place;
    training=False normalises with the moving statistics."""
    where = "batchnorm_forward"
    floats(where, "x", x)
    xv, C = batchnorm_view(where, x, axis)
    batchnorm_channels(where, C, gamma=gamma, beta=beta, moving_mean=moving_mean, moving_var=moving_var)
    if not epsilon > 0:
        raise ValueError(f"{where}: expected epsilon > 0. Received: epsilon={epsilon}")
    if training:
        if xv.shape[0] * xv.shape[2] == 0:
            raise ValueError(f"{where}: training needs at least one value per channel to take statistics from. "
                             f"Received: x.shape={shape_str(x.shape)}")
        mean = xv.mean(axis=(0, 2), dtype=np.float64)
        var = ((xv - mean[:, None].astype(x.dtype)) ** 2).mean(axis=(0, 2), dtype=np.float64)   # two passes: exact
        moving_mean[...] = moving_mean * momentum + mean * (1 - momentum)
        moving_var[...] = moving_var * momentum + var * (1 - momentum)
        mean = mean.astype(x.dtype)
    else:
        mean, var = moving_mean.astype(np.float64), moving_var.astype(np.float64)
    inv_std = (1.0 / np.sqrt(var + epsilon)).astype(x.dtype)
    y = (xv - mean.astype(x.dtype)[:, None]) * (gamma * inv_std)[:, None] + beta[:, None]
    return y.reshape(x.shape).astype(x.dtype), np.array(mean, dtype=x.dtype), inv_std


def batchnorm_backward(dy, x, gamma, mean, inv_std, training=True, axis=-1):
    """(dx, dgamma, dbeta) for batchnorm_forward; mean and inv_std are what it returned.
    dy, x: the same shape -> dx: x.shape, dgamma, dbeta: (C,)"""
    where = "batchnorm_backward"
    floats(where, "dy", dy)
    floats(where, "x", x)
    if dy.shape != x.shape:
        raise ValueError(f"{where}: expected dy to have the shape of x {shape_str(x.shape)}. "
                         f"Received: dy.shape={shape_str(dy.shape)}")
    xv, C = batchnorm_view(where, x, axis)
    batchnorm_channels(where, C, gamma=gamma, mean=mean, inv_std=inv_std)
    g = batchnorm_view(where, dy, axis)[0].astype(np.float64)
    xhat = (xv - mean[:, None]) * inv_std[:, None]
    dbeta = g.sum(axis=(0, 2))
    dgamma = (g * xhat).sum(axis=(0, 2))
    scale = (gamma * inv_std)[:, None]
    if training:
        M = max(xv.shape[0] * xv.shape[2], 1)
        dx = scale * (g - dbeta[:, None] / M - xhat * (dgamma[:, None] / M))
    else:
        dx = scale * g
    return dx.reshape(x.shape).astype(x.dtype), dgamma.astype(x.dtype), dbeta.astype(x.dtype)

"""NumPy reference for the activation family: y = f(x) element by element, and dx = dy * f'(x).
The spec that csrc/activation.cpp must match. Every backward takes (dy, x, y), the forward's input and
output, and uses whichever gives the derivative more cheaply. Computed in the dtype of x.
"""
import math

import numpy as np

from ._check import activation_grads, activation_x

_erfc = np.frompyfunc(math.erfc, 1, 1)   # NumPy has no erf(c); the reference favours exactness over speed


def _normal_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2, in float64: exact in the lower tail too, where 0.5 (1 + erf(x / sqrt 2))
    cancels to nothing (below x = -8 in float64, -5 in float32)."""
    return 0.5 * _erfc(-x.astype(np.float64) / math.sqrt(2)).astype(np.float64)


def _sigmoid(x):
    """1 / (1 + e^-x), written so that exp only sees non-positive numbers: it never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def linear_forward(x):
    """y = x"""
    return activation_x("linear_forward", x).copy()


def linear_backward(dy, x, y):
    """dx = dy"""
    activation_grads("linear_backward", dy, x, y)
    return dy.copy()


def relu_forward(x):
    """y = max(x, 0); NaN stays NaN."""
    activation_x("relu_forward", x)
    return np.where(x < 0, x.dtype.type(0), x)


def relu_backward(dy, x, y):
    """dx = dy where x > 0, else 0 (the kink at 0 gets 0, as in Keras and PyTorch)."""
    activation_grads("relu_backward", dy, x, y)
    return np.where(x > 0, dy, 0).astype(dy.dtype)


def leaky_relu_forward(x, negative_slope=0.2):
    """y = x if x > 0 else negative_slope * x"""
    activation_x("leaky_relu_forward", x)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dy, x, y, negative_slope=0.2):
    """dx = dy if x > 0 else negative_slope * dy"""
    activation_grads("leaky_relu_backward", dy, x, y)
    return np.where(x > 0, dy, dy * dy.dtype.type(negative_slope))


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x))"""
    return _sigmoid(activation_x("sigmoid_forward", x))


def sigmoid_backward(dy, x, y):
    """dx = dy * y * (1 - y)"""
    activation_grads("sigmoid_backward", dy, x, y)
    return dy * (y * (1 - y))


def tanh_forward(x):
    """y = tanh(x)"""
    return np.tanh(activation_x("tanh_forward", x))


def tanh_backward(dy, x, y):
    """dx = dy * (1 - y^2)"""
    activation_grads("tanh_backward", dy, x, y)
    return dy * (1 - y * y)


def elu_forward(x, alpha=1.0):
    """y = x if x > 0 else alpha * (exp(x) - 1); expm1 keeps small x exact."""
    activation_x("elu_forward", x)
    with np.errstate(over="ignore"):                  # expm1 of a large x is computed, then not chosen
        return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(x))


def elu_backward(dy, x, y, alpha=1.0):
    """dx = dy if x > 0 else dy * (y + alpha), since d/dx alpha * (e^x - 1) = alpha * e^x = y + alpha."""
    activation_grads("elu_backward", dy, x, y)
    return np.where(x > 0, dy, dy * (y + y.dtype.type(alpha)))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_CUBIC = 0.044715


def gelu_forward(x, approximate=False):
    """y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2), Phi the standard normal CDF.
    approximate=True: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    activation_x("gelu_forward", x)
    if approximate:
        return (0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _CUBIC * x ** 3)))).astype(x.dtype)
    return (x * _normal_cdf(x)).astype(x.dtype)


def gelu_backward(dy, x, y, approximate=False):
    """exact: dx = dy * (Phi(x) + x * phi(x)), phi the standard normal density.
    approximate: with t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3):
                 dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) du/dx)"""
    activation_grads("gelu_backward", dy, x, y)
    if approximate:
        t = np.tanh(_SQRT_2_OVER_PI * (x + _CUBIC * x ** 3))
        du = _SQRT_2_OVER_PI * (1 + 3 * _CUBIC * x * x)
        return (dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)).astype(dy.dtype)
    cdf = _normal_cdf(x)
    pdf = np.exp(-0.5 * x.astype(np.float64) ** 2) / math.sqrt(2 * math.pi)
    return (dy * (cdf + x * pdf)).astype(dy.dtype)


def silu_forward(x):
    """y = x * sigmoid(x)  (also called swish)"""
    activation_x("silu_forward", x)
    return x * _sigmoid(x)


def silu_backward(dy, x, y):
    """dx = dy * s * (1 + x (1 - s)), s = sigmoid(x)"""
    activation_grads("silu_backward", dy, x, y)
    s = _sigmoid(x)
    return dy * (s * (1 + x * (1 - s)))


def softplus_forward(x):
    """y = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): no overflow for large x."""
    activation_x("softplus_forward", x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def softplus_backward(dy, x, y):
    """dx = dy * sigmoid(x)"""
    activation_grads("softplus_backward", dy, x, y)
    return dy * _sigmoid(x)

"""NumPy reference for the optimizer family: Keras 3's update rules, applied in place to a parameter and
its slot arrays. The spec that csrc/optimizer.cpp must match.

Every update first applies decoupled weight decay, param -= lr * weight_decay * param (what Keras does
for any optimizer given weight_decay; AdamW is Adam with it on), then its own rule. `param` and the
slots are modified in place and must be writeable float arrays of the parameter's shape; a slot that an
option does not use is None.
"""
import numpy as np

from ._check import optimizer_args


def _decay(param, lr, weight_decay):
    if weight_decay:
        param -= param * param.dtype.type(lr * weight_decay)


def sgd_update(param, grad, velocity, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """momentum == 0:  param -= lr * grad   (velocity is None)
    momentum > 0:   velocity = momentum * velocity - lr * grad;  param += velocity
    nesterov:       velocity as above;  param += momentum * velocity - lr * grad"""
    optimizer_args("sgd_update", param, grad, velocity=velocity)
    _decay(param, lr, weight_decay)
    if velocity is None:
        param -= lr * grad
        return
    velocity[...] = momentum * velocity - lr * grad
    param += momentum * velocity - lr * grad if nesterov else velocity


def adam_update(param, grad, m, v, v_hat, lr, beta_1, beta_2, epsilon, step, weight_decay=0.0):
    """m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  with amsgrad v_hat = max(v_hat, v) is used
    param -= alpha * m / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - beta_2^step) / (1 - beta_1^step)
    step counts from 1 (the bias correction of the first update)."""
    optimizer_args("adam_update", param, grad, m=m, v=v, v_hat=v_hat)
    if step < 1:
        raise ValueError(f"adam_update: expected step >= 1 (updates count from 1). Received: step={step}")
    alpha = lr * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    _decay(param, lr, weight_decay)
    m += (grad - m) * (1 - beta_1)
    v += (grad * grad - v) * (1 - beta_2)
    denom = v
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        denom = v_hat
    param -= param.dtype.type(alpha) * m / (np.sqrt(denom) + epsilon)


def rmsprop_update(param, grad, velocity, average_grad, momentum_buf, lr, rho, momentum, epsilon, weight_decay=0.0):
    """velocity = rho velocity + (1 - rho) g^2
    centered (average_grad given): average_grad = rho average_grad + (1 - rho) g,
                                   denominator = velocity - average_grad^2 + epsilon; else velocity + epsilon
    increment = lr g / sqrt(denominator); momentum (momentum_buf given): momentum_buf = momentum momentum_buf
    + increment, param -= momentum_buf; else param -= increment"""
    optimizer_args("rmsprop_update", param, grad, velocity=velocity, average_grad=average_grad, momentum_buf=momentum_buf)
    _decay(param, lr, weight_decay)
    velocity[...] = rho * velocity + (1 - rho) * grad * grad
    denominator = velocity + epsilon
    if average_grad is not None:
        average_grad[...] = rho * average_grad + (1 - rho) * grad
        denominator = velocity - average_grad * average_grad + epsilon
    increment = lr * grad / np.sqrt(denominator)
    if momentum_buf is not None:
        momentum_buf[...] = momentum * momentum_buf + increment
        param -= momentum_buf
    else:
        param -= increment


def adagrad_update(param, grad, accumulator, lr, epsilon, weight_decay=0.0):
    """accumulator += g^2;  param -= lr g / sqrt(accumulator + epsilon)"""
    optimizer_args("adagrad_update", param, grad, accumulator=accumulator)
    _decay(param, lr, weight_decay)
    accumulator += grad * grad
    param -= lr * grad / np.sqrt(accumulator + epsilon)

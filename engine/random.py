"""engine.random: the one random number generator behind every draw the engine makes (weight
initialisation, dropout masks, shuffling, sampling). set_seed(s) makes them all repeatable.

Keras 3's keras.random, for use inside a model (a VAE's sampling layer, a diffusion model's noise):

    z = z_mean + ops.exp(0.5 * z_log_var) * engine.random.normal(ops.shape(z_mean), seed=self.seed_generator)

normal, uniform, truncated_normal, randint, categorical, shuffle and dropout take `seed`, as Keras does:
    None                    the engine's generator (advanced by each draw; set_seed makes it repeatable)
    an int                  a fixed seed: every call with it draws the same numbers
    SeedGenerator(seed)     a generator of its own, advanced by each draw (a layer keeps one)
Float draws are Tensors (float32 unless dtype='float64'); integer draws (randint, categorical) are NumPy
arrays, as engine keeps integers (labels, token ids) in arrays. dropout and shuffle are differentiable.
"""
import numbers
import random as _py_random

import numpy as np

from . import ops
from .tensor import Tensor

_generator = np.random.default_rng()


def set_seed(seed):
    """Seed the engine's generator, NumPy's global one and Python's `random`, as keras.utils.set_random_seed
    does: after set_seed(s), the same program draws the same numbers."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_seed: expected a non-negative int. Received: seed={seed!r}")
    _py_random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _generator = np.random.default_rng(int(seed))


def generator():
    """The engine's numpy.random.Generator (replaced by set_seed, so fetch it each time)."""
    return _generator


def get_state():
    """The generator's state as a JSON-friendly dict (BackupAndRestore saves it with each checkpoint)."""
    return _generator.bit_generator.state


def set_state(state):
    """Continue the draws from a state returned by get_state()."""
    global _generator
    generator = np.random.default_rng()
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"random.set_state: expected a state from engine.random.get_state(). ({err})") from None
    _generator = generator


# --------------------------------------------------------------------------------------------- keras.random


class SeedGenerator:
    """A random generator of its own (keras.random.SeedGenerator): each draw that takes it as `seed`
    advances it. SeedGenerator(1337) repeats from run to run; SeedGenerator() is seeded from the engine's
    generator, so set_seed makes it repeatable too."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"SeedGenerator: expected seed to be None or a non-negative int. Received: seed={seed!r}")
        self.seed = int(_generator.integers(2**63)) if seed is None else int(seed)
        self.generator = np.random.default_rng(self.seed)

    def __repr__(self):
        return f"<SeedGenerator seed={self.seed}>"


def _generator_for(where, seed):
    if seed is None:
        return _generator
    if isinstance(seed, SeedGenerator):
        return seed.generator
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(f"{where}: expected seed to be None, a non-negative int or a SeedGenerator. "
                     f"Received: seed={seed!r}")


def _shape(where, shape):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if shape is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                                for d in shape):
        raise ValueError(f"{where}: expected shape to be a tuple of non-negative ints. Received: shape={shape!r}")
    return tuple(int(d) for d in shape)


def _float_dtype(where, dtype):
    kind = np.dtype(dtype or "float32")
    if kind not in (np.float32, np.float64):
        raise ValueError(f"{where}: expected dtype float32 or float64. Received: dtype={dtype!r}")
    return kind


def _number(where, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{where}: expected {name} to be a finite number. Received: {name}={value!r}")
    return float(value)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws from N(mean, stddev^2), as a Tensor of `shape`."""
    where = "random.normal"
    shape, kind = _shape(where, shape), _float_dtype(where, dtype)
    mean, stddev = _number(where, "mean", mean), _number(where, "stddev", stddev)
    draws = _generator_for(where, seed).standard_normal(shape)
    return Tensor._wrap((draws * stddev + mean).astype(kind))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Draws from the uniform distribution on [minval, maxval), as a Tensor of `shape`."""
    where = "random.uniform"
    shape, kind = _shape(where, shape), _float_dtype(where, dtype)
    low, high = _number(where, "minval", minval), _number(where, "maxval", maxval)
    if not low < high:
        raise ValueError(f"{where}: expected minval < maxval. Received: minval={minval!r}, maxval={maxval!r}")
    return Tensor._wrap(_generator_for(where, seed).uniform(low, high, shape).astype(kind))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws from N(mean, stddev^2) with every value further than 2 stddev from the mean drawn again."""
    where = "random.truncated_normal"
    shape, kind = _shape(where, shape), _float_dtype(where, dtype)
    mean, stddev = _number(where, "mean", mean), _number(where, "stddev", stddev)
    rng = _generator_for(where, seed)
    draws = rng.standard_normal(shape)
    outside = np.abs(draws) > 2
    while outside.any():
        draws[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(draws) > 2
    return Tensor._wrap((draws * stddev + mean).astype(kind))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from [minval, maxval), as a NumPy array of `shape`."""
    where = "random.randint"
    shape = _shape(where, shape)
    kind = np.dtype(dtype)
    if kind.kind not in "iu":
        raise ValueError(f"{where}: expected an integer dtype. Received: dtype={dtype!r}")
    for name, value in (("minval", minval), ("maxval", maxval)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{where}: expected {name} to be an int. Received: {name}={value!r}")
    if not minval < maxval:
        raise ValueError(f"{where}: expected minval < maxval. Received: minval={minval!r}, maxval={maxval!r}")
    return _generator_for(where, seed).integers(minval, maxval, shape).astype(kind)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """For each row of `logits` (batch, classes), num_samples class ids drawn with the probabilities
    softmax(logits): a NumPy array (batch, num_samples)."""
    where = "random.categorical"
    z = np.asarray(ops.to_array(logits), dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"{where}: expected logits of shape (batch, classes), classes >= 1. "
                         f"Received: logits.shape={z.shape}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
        raise ValueError(f"{where}: expected num_samples to be an int >= 0. Received: num_samples={num_samples!r}")
    if np.isnan(z).any():
        raise ValueError(f"{where}: expected logits without NaN. Received: NaN in logits")
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cumulative = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = _generator_for(where, seed).random((z.shape[0], int(num_samples)))
    ids = np.array([np.searchsorted(c, row, side="right") for c, row in zip(cumulative, u)]).reshape(u.shape)
    return np.minimum(ids, z.shape[1] - 1).astype(dtype)


def shuffle(x, axis=0, seed=None):
    """x with its entries along `axis` in a random order (the gradient goes back to where each came from)."""
    where = "random.shuffle"
    x = ops.convert_to_tensor(x)
    if x.ndim == 0:
        raise ValueError(f"{where}: expected an array of at least one dimension. Received: shape=()")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{where}: expected axis in [{-x.ndim}, {x.ndim}). Received: axis={axis!r}")
    order = _generator_for(where, seed).permutation(x.shape[axis])
    return ops.take_index(x, (slice(None),) * (int(axis) % x.ndim) + (order,))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """inputs with each entry set to 0 with probability `rate` and the others scaled by 1 / (1 - rate), so the
    expected value is unchanged (Keras' inverted dropout). noise_shape broadcasts one draw over axes of size 1."""
    where = "random.dropout"
    x = ops.convert_to_tensor(inputs)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"{where}: expected rate in [0, 1). Received: rate={rate!r}")
    shape = x.shape if noise_shape is None else tuple(x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
    if len(shape) != x.ndim or any(d not in (1, n) for d, n in zip(shape, x.shape)):
        raise ValueError(f"{where}: expected noise_shape to broadcast to the input {x.shape} (each size 1 or the "
                         f"input's). Received: noise_shape={noise_shape!r}")
    if rate == 0:
        return x
    keep = _generator_for(where, seed).random(shape) >= rate
    return ops.multiply(x, (keep / (1.0 - rate)).astype(x.dtype))

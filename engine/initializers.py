"""engine.initializers: Keras' weight initializers, by name or as classes. Every draw comes from the
engine's generator (engine.random), so engine.set_seed(s) repeats them; pass seed= for a fixed draw.

    Dense(4, kernel_initializer='he_normal');  initializers.GlorotUniform(seed=1)((3, 4)) -> ndarray
"""
import math

import numpy as np

from . import random as _random
from .serialization import Registered, lookup

# Keras truncates normals at two standard deviations; the spread of what is left is this fraction of
# the original, so truncated draws are scaled up by its inverse to keep the requested variance.
_TRUNCATED_STDDEV = 0.87962566103423978


def compute_fans(shape):
    """(fan_in, fan_out) as Keras computes them: Dense kernels (in, out); conv kernels (..., in, out)
    multiply both by the receptive field (the product of the leading dimensions)."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer(Registered):
    """Callable: initializer(shape, dtype='float32') -> a new NumPy array."""

    registry_kind = "initializer"

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"{type(self).__name__}: expected seed to be None or a non-negative int. "
                             f"Received: seed={seed!r}")
        self.seed = seed

    def _rng(self):
        return np.random.default_rng(self.seed) if self.seed is not None else _random.generator()

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self.sample(tuple(shape)), dtype=dtype)

    def sample(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _truncated_normal(rng, shape, mean, stddev):
    """Normal draws, each redrawn until it lies within two standard deviations of the mean."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


class Zeros(Initializer):
    def __init__(self):
        super().__init__(None)

    def sample(self, shape):
        return np.zeros(shape)

    def get_config(self):
        return {}


class Ones(Zeros):
    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__(None)
        self.value = float(value)

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape):
        return self._rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    def sample(self, shape):
        return _truncated_normal(self._rng(), shape, self.mean, self.stddev)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Draws with variance scale / n, n = fan_in, fan_out or their average (mode), from a truncated normal,
    an untruncated normal or a uniform distribution."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"VarianceScaling: expected scale > 0. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: expected mode 'fan_in', 'fan_out' or 'fan_avg'. Received: mode={mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling: expected distribution 'truncated_normal', 'untruncated_normal' or "
                             f"'uniform'. Received: distribution={distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        return _truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNCATED_STDDEV)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _variance_scaling(name, scale, mode, distribution, doc):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}
    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform",
                                  "Uniform in [-l, l], l = sqrt(6 / (fan_in + fan_out)). Keras' default for kernels.")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                                 "Truncated normal, stddev sqrt(2 / (fan_in + fan_out)).")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal",
                             "Truncated normal, stddev sqrt(2 / fan_in): for ReLU layers.")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform", "Uniform in [-l, l], l = sqrt(6 / fan_in).")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal",
                                "Truncated normal, stddev sqrt(1 / fan_in): for SELU.")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform", "Uniform in [-l, l], l = sqrt(3 / fan_in).")


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times gain, from the QR decomposition of a normal draw (the kernel
    flattened to (prod(shape[:-1]), shape[-1]))."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: expected a shape with at least 2 dimensions. Received: shape={shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))                 # make the decomposition unique
        if rows < cols:
            q = q.T
        return self.gain * q[:rows, :cols].reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """gain * the identity matrix (2-D shapes only)."""

    def __init__(self, gain=1.0):
        super().__init__(None)
        self.gain = float(gain)

    def sample(self, shape):
        if len(shape) != 2:
            raise ValueError(f"Identity: expected a 2-D shape. Received: shape={shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


_BY_NAME = {"zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
            "truncated_normal": TruncatedNormal, "random_uniform": RandomUniform, "variance_scaling": VarianceScaling,
            "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal,
            "he_uniform": HeUniform, "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
            "orthogonal": Orthogonal, "identity": Identity}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier):
    """A Keras name ('glorot_uniform'), class name ('GlorotUniform'), config dict, Initializer or callable."""
    if isinstance(identifier, Initializer) or (callable(identifier) and not isinstance(identifier, type)):
        return identifier
    found = lookup("initializers.get", identifier, "initializer", "an Initializer, a config dict or a callable",
                   _BY_NAME, _BY_CLASS)
    return found() if isinstance(found, type) else found


def serialize(initializer):
    """{'class_name': ..., 'config': ...} for a built-in initializer."""
    if type(initializer).__name__ not in _BY_CLASS:
        raise ValueError(f"initializers.serialize: {initializer!r} is not a built-in initializer")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}

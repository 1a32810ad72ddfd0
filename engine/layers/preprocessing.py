"""Preprocessing layers: Rescaling (x * scale + offset: pixels 0..255 to 0..1, or to -1..1) and Normalization
(feature-wise (x - mean) / sqrt(variance), with the statistics given or learned by adapt(data)), with Keras 3's
arguments. Both are plain ops, so the gradient flows through them to earlier layers."""
import numbers

import numpy as np

from .. import ops
from .base import Layer

_EPSILON = 1e-7                       # Keras' backend.epsilon(): the smallest standard deviation divided by


def _number_or_array(where, name, value):
    if isinstance(value, bool) or (not isinstance(value, numbers.Real) and not isinstance(value, (list, tuple,
                                                                                               np.ndarray))):
        raise ValueError(f"{where}: expected `{name}` to be a number (or a list of numbers, one per channel). "
                         f"Received: {name}={value!r}")
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: expected `{name}` to be finite. Received: {name}={value!r}")
    return float(array) if array.ndim == 0 else array.tolist()


class Rescaling(Layer):
    """y = x * scale + offset: Rescaling(1 / 255) maps pixels to [0, 1], Rescaling(1 / 127.5, offset=-1) to
    [-1, 1]. scale and offset are numbers or lists with one value per channel (the last axis)."""

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _number_or_array("Rescaling", "scale", scale)
        self.offset = _number_or_array("Rescaling", "offset", offset)

    def call(self, inputs):
        scale, offset = (np.asarray(v, dtype=inputs.dtype) for v in (self.scale, self.offset))
        return inputs * scale + offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Normalization(Layer):
    """Feature-wise standardisation, y = (x - mean) / sqrt(variance), along `axis` (default -1: one mean and
    variance per feature of the last axis; a tuple of axes, or None for one scalar mean). Give mean and
    variance, or call adapt(data) before training to compute them from the data. invert=True maps back,
    y = x * sqrt(variance) + mean. The statistics are non-trainable weights, so they are saved with the model."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axes = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axes = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                                     for a in axis):
            axes = tuple(int(a) for a in axis)
        else:
            raise ValueError(f"Normalization: expected `axis` to be an int, a tuple of ints or None. "
                             f"Received: axis={axis!r}")
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization: expected both `mean` and `variance`, or neither (then call adapt). "
                             f"Received: mean={mean!r}, variance={variance!r}")
        if variance is not None and (np.asarray(variance) < 0).any():
            raise ValueError(f"Normalization: expected `variance` >= 0. Received: variance={variance!r}")
        self.axis, self.invert = axes, bool(invert)
        self.input_mean = None if mean is None else _number_or_array("Normalization", "mean", mean)
        self.input_variance = None if variance is None else _number_or_array("Normalization", "variance", variance)
        self.adapted = mean is not None

    def _kept(self, ndim):
        """The axes with their own statistic, as non-negative indices (never the batch axis)."""
        kept = tuple(a % ndim for a in self.axis)
        if any(not 0 < a < ndim for a in kept):
            raise ValueError(f"Normalization '{self.name}': expected axis={self.axis} to name axes of the input other "
                             f"than the batch axis. Received: an input of rank {ndim}")
        return kept

    def _stat_shape(self, input_shape):
        kept = self._kept(len(input_shape))
        shape = tuple(input_shape[a] if a in kept else 1 for a in range(len(input_shape)))
        if any(d is None for d in shape):
            raise ValueError(f"Normalization '{self.name}': expected known sizes on axis={self.axis}. "
                             f"Received: input_shape={tuple(input_shape)}")
        return (1,) + shape[1:]

    def build(self, input_shape):
        shape = self._stat_shape(input_shape)
        self.mean = self.add_weight(shape, initializer="zeros", trainable=False, name="mean")
        self.variance = self.add_weight(shape, initializer="ones", trainable=False, name="variance")
        if self.input_mean is not None:
            for weight, value in ((self.mean, self.input_mean), (self.variance, self.input_variance)):
                try:
                    weight.data[...] = np.broadcast_to(np.asarray(value, np.float32), shape)
                except ValueError:
                    raise ValueError(f"Normalization '{self.name}': expected mean and variance to broadcast to "
                                     f"{shape}. Received: shape {np.shape(value)}") from None
        self.built = True

    def adapt(self, data, batch_size=None, steps=None):
        """Compute the mean and variance of `data` (an array of samples, or an iterable of batches) over every
        axis except `axis`, and keep them for call."""
        batches = [data] if isinstance(data, np.ndarray) or hasattr(data, "shape") else list(data)
        arrays = [np.asarray(ops.to_array(b), dtype=np.float64) for b in batches]
        if not arrays or arrays[0].ndim < 1 or sum(len(a) for a in arrays) == 0:
            raise ValueError(f"Normalization '{self.name}': adapt expected data with at least one sample")
        full = np.concatenate(arrays, axis=0)
        if not np.isfinite(full).all():
            raise ValueError(f"Normalization '{self.name}': adapt expected finite data. Received: NaN or infinity")
        if not self.built:
            self._maybe_build((None,) + full.shape[1:])
        shape = self.mean.shape
        if full.ndim != len(shape) or any(full.shape[a] != shape[a] for a in self._kept(full.ndim)):
            raise ValueError(f"Normalization '{self.name}': adapt expected samples that match the statistics "
                             f"{shape} on axis={self.axis}. Received: data of shape {full.shape}")
        reduce = tuple(a for a in range(full.ndim) if a not in self._kept(full.ndim))
        self.mean.data[...] = full.mean(axis=reduce).reshape(shape)
        self.variance.data[...] = full.var(axis=reduce).reshape(shape)
        self.adapted = True

    def call(self, inputs):
        if inputs.ndim != len(self.mean.shape):
            raise ValueError(f"Normalization '{self.name}': expected an input of rank {len(self.mean.shape)}. "
                             f"Received: input.shape={inputs.shape}")
        std = np.maximum(np.sqrt(self.variance.data), _EPSILON).astype(inputs.dtype)
        mean = self.mean.data.astype(inputs.dtype)
        if self.invert:
            return inputs * std + mean
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis) if len(self.axis) != 1 else self.axis[0],
                "mean": self.input_mean, "variance": self.input_variance, "invert": self.invert}

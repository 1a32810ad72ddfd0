"""Reshaping layers: ZeroPadding2D (rows and columns of zeros around an image), Cropping2D (its inverse),
UpSampling2D (a larger image, on the resize kernels: engine/ref/resize.py, csrc/resize.cpp), Reshape and
RepeatVector, with Keras 3's arguments. All are plain ops (ops.pad, slicing, ops.reshape,
ops.broadcast_to): the gradient of a pad is the unpadded part, of a crop the cropped part padded with zeros,
of a reshape the same values in the old shape, of a repeat the sum over the copies."""
import numpy as np

from .. import ops
from ._args import check_rank, data_format_arg, int_tuple, join_shape, positive_int, split_shape
from .base import Layer


def _padding_pairs(padding, where="ZeroPadding2D", name="padding"):
    """Keras' forms: an int (all four sides), (rows, columns), or ((top, bottom), (left, right))."""
    def count(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
    if count(padding):
        return ((int(padding),) * 2,) * 2
    try:
        first, second = padding
    except (TypeError, ValueError):
        first = second = None
    if count(first) and count(second):
        return ((int(first),) * 2, (int(second),) * 2)
    try:
        pairs = tuple(tuple(int(v) for v in p) for p in (first, second) if all(count(v) for v in p) and len(p) == 2)
    except TypeError:
        pairs = ()
    if len(pairs) == 2:
        return pairs
    raise ValueError(f"{where}: expected {name} to be a non-negative int, a tuple of 2 (rows, columns) or "
                     f"((top, bottom), (left, right)). Received: {name}={padding!r}")


class ZeroPadding2D(Layer):
    """Add rows of zeros above and below and columns left and right: (N, H, W, C) -> (N, H + top + bottom,
    W + left + right, C). padding: an int, (rows, columns) or ((top, bottom), (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _padding_pairs(padding)
        self.data_format = data_format_arg("ZeroPadding2D", data_format)

    def _widths(self):
        (t, b), (l, r) = self.padding
        if self.data_format == "channels_last":
            return ((0, 0), (t, b), (l, r), (0, 0))
        return ((0, 0), (0, 0), (t, b), (l, r))

    def call(self, inputs):
        if inputs.ndim != 4:
            check_rank(self, inputs.shape, 2, self.data_format)
        return ops.pad(inputs, self._widths())

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 2, self.data_format)
        batch, (H, W), C = split_shape(input_shape, self.data_format)
        (t, b), (l, r) = self.padding
        return join_shape(batch, (None if H is None else H + t + b, None if W is None else W + l + r), C,
                          self.data_format)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": self.data_format}


class Reshape(Layer):
    """Give each sample a new shape: (N, ...) -> (N, *target_shape); one entry of target_shape may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            shape = tuple(target_shape)
        except TypeError:
            shape = None
        if shape is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and (d > 0 or d == -1)
                                    for d in shape) or list(shape).count(-1) > 1:
            raise ValueError(f"Reshape: expected target_shape to be a tuple of positive ints, at most one of them -1. "
                             f"Received: target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in shape)

    def _resolve(self, input_shape):
        """target_shape with -1 filled in for one sample of input_shape (None when a size is unknown)."""
        sizes = input_shape[1:]
        if any(d is None for d in sizes):
            return tuple(None if d == -1 else d for d in self.target_shape)
        total, known = int(np.prod(sizes)), int(np.prod([d for d in self.target_shape if d != -1]))
        fits = total % known == 0 if -1 in self.target_shape else total == known
        if not fits:
            raise ValueError(f"Reshape '{self.name}': expected target_shape={self.target_shape} to hold the {total} "
                             f"values of one sample. Received: input_shape={tuple(input_shape)}")
        return tuple(total // known if d == -1 else d for d in self.target_shape)

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0],) + self._resolve(inputs.shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(tuple(input_shape))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Cropping2D(Layer):
    """Remove rows from the top and bottom and columns from the left and right: (N, H, W, C) -> (N, H - top -
    bottom, W - left - right, C). cropping: an int, (rows, columns) or ((top, bottom), (left, right))."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _padding_pairs(cropping, "Cropping2D", "cropping")
        self.data_format = data_format_arg("Cropping2D", data_format)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 2, self.data_format)
        batch, spatial, C = split_shape(input_shape, self.data_format)
        out = []
        for size, (before, after) in zip(spatial, self.cropping):
            if size is not None and before + after >= size:
                raise ValueError(f"Cropping2D '{self.name}': expected cropping={self.cropping} to leave at least one "
                                 f"row and column of the input. Received: input_shape={tuple(input_shape)}")
            out.append(None if size is None else size - before - after)
        return join_shape(batch, out, C, self.data_format)

    def call(self, inputs):
        self.compute_output_shape(inputs.shape)
        (t, b), (l, r) = self.cropping
        rows, cols = slice(t, inputs.shape[-3 if self.data_format == "channels_last" else -2] - b), \
            slice(l, inputs.shape[-2 if self.data_format == "channels_last" else -1] - r)
        index = (slice(None), rows, cols) if self.data_format == "channels_last" else (slice(None), slice(None), rows, cols)
        return inputs[index]

    def get_config(self):
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping], "data_format": self.data_format}


class RepeatVector(Layer):
    """Repeat each sample n times along a new time axis: (N, D) -> (N, n, D) (a seq2seq decoder's input)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = positive_int("RepeatVector", "n", n)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector '{self.name}': expected an input of rank 2 (batch, features). "
                             f"Received: input_shape={tuple(input_shape)}")
        return (input_shape[0], self.n, input_shape[1])

    def call(self, inputs):
        self.compute_output_shape(inputs.shape)
        return ops.broadcast_to(ops.expand_dims(inputs, 1), (inputs.shape[0], self.n, inputs.shape[1]))

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class UpSampling2D(Layer):
    """Enlarge an image by whole factors: (N, H, W, C) -> (N, H * size[0], W * size[1], C). interpolation
    'nearest' repeats every pixel; 'bilinear' blends the four nearest input pixels (half-pixel centres, as
    Keras' ops.image.resize and PyTorch's align_corners=False)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = int_tuple("UpSampling2D", "size", size, 2)
        self.data_format = data_format_arg("UpSampling2D", data_format)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D: expected interpolation to be one of 'nearest', 'bilinear'. "
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 2, self.data_format)
        batch, spatial, C = split_shape(input_shape, self.data_format)
        return join_shape(batch, [None if d is None else d * s for d, s in zip(spatial, self.size)], C,
                          self.data_format)

    def call(self, inputs):
        _, (H, W), _ = split_shape(self.compute_output_shape(inputs.shape), self.data_format)
        return ops.resize(inputs, (H, W), interpolation=self.interpolation, data_format=self.data_format)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}

"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate. Each takes a list of
tensors, the way a functional model joins branches; `Add()([x, f(x)])` is a residual connection.
Shapes: every input (N, ...) with the same shape, or shapes that broadcast (Concatenate: equal except along
`axis`). A mask on the inputs (Embedding(mask_zero=True)) passes on: True where every input's mask is."""
import numpy as np

from .. import ops
from ..tensor import Tensor
from .base import Layer, get_mask, set_mask


class Merge(Layer):
    """Base class: checks the list of inputs in build, combines them in _merge."""

    _list_input = True
    _exactly = None                       # the number of inputs, when the operation fixes it

    def build(self, input_shape):
        shapes = input_shape if isinstance(input_shape, (list, tuple)) and input_shape and \
            isinstance(input_shape[0], (list, tuple)) else None
        count = "exactly 2" if self._exactly else "at least 2"
        if shapes is None or len(shapes) < 2 or (self._exactly and len(shapes) != self._exactly):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected a list of {count} inputs. "
                             f"Received: input_shape={input_shape}")
        self._check_shapes([tuple(s) for s in shapes])
        self.built = True

    def _check_shapes(self, shapes):
        try:
            np.broadcast_shapes(*[tuple(1 if d is None else d for d in s[1:]) for s in shapes])
        except ValueError:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs of one shape (or shapes that "
                             f"broadcast). Received: shapes={shapes}") from None

    def __call__(self, inputs, *args, **kwargs):
        out = super().__call__(inputs, *args, **kwargs)
        if isinstance(inputs, (list, tuple)) and isinstance(out, Tensor):
            masks = [get_mask(t) for t in inputs]
            if any(m is not None for m in masks):
                set_mask(out, np.logical_and.reduce([m for m in masks if m is not None]))
        return out

    def _merge(self, xs):
        """xs[0] op xs[1] op ..., left to right."""
        out = xs[0]
        for x in xs[1:]:
            out = self._op(out, x)
        return out

    def call(self, inputs):
        count = self._exactly or 2
        if not isinstance(inputs, (list, tuple)) or len(inputs) < count or (self._exactly and len(inputs) != count):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected a list of "
                             f"{'exactly' if self._exactly else 'at least'} {count} inputs. "
                             f"Received: {type(inputs).__name__} of length {len(inputs) if hasattr(inputs, '__len__') else 1}")
        return self._merge(list(inputs))

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        rank = max(len(s) for s in shapes)
        padded = [(1,) * (rank - len(s)) + s for s in shapes]
        out = []
        for dims in zip(*padded):
            known = [d for d in dims if d is not None and d != 1]
            out.append(None if any(d is None for d in dims) and not known else (known[0] if known else 1))
        return (None,) + tuple(out[1:])


class Add(Merge):
    """x1 + x2 + ... (element-wise)."""

    _op = staticmethod(ops.add)


class Subtract(Merge):
    """x1 - x2 (exactly two inputs)."""

    _exactly = 2
    _op = staticmethod(ops.subtract)


class Multiply(Merge):
    """x1 * x2 * ... (element-wise)."""

    _op = staticmethod(ops.multiply)


class Average(Merge):
    """(x1 + x2 + ...) / n."""

    _op = staticmethod(ops.add)

    def _merge(self, xs):
        return ops.divide(super()._merge(xs), float(len(xs)))


class Maximum(Merge):
    """The element-wise maximum of the inputs."""

    _op = staticmethod(ops.maximum)


class Minimum(Merge):
    """The element-wise minimum of the inputs."""

    _op = staticmethod(ops.minimum)


class Concatenate(Merge):
    """The inputs joined along `axis` (the last by default); every other axis must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate: expected axis to be an int. Received: axis={axis!r}")
        self.axis = int(axis)

    def _check_shapes(self, shapes):
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"Concatenate '{self.name}': expected inputs of one rank and an axis other than the "
                             f"batch axis. Received: shapes={shapes}, axis={self.axis}")
        ax = self.axis % rank
        for d in range(1, rank):
            sizes = {s[d] for s in shapes if s[d] is not None}
            if d != ax and len(sizes) > 1:
                raise ValueError(f"Concatenate '{self.name}': expected inputs whose shapes match except along "
                                 f"axis={self.axis}. Received: shapes={shapes}")

    def _merge(self, xs):
        return ops.concatenate(xs, axis=self.axis)

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        ax = self.axis % len(shapes[0])
        sizes = [s[ax] for s in shapes]
        out = list(shapes[0])
        out[ax] = None if any(d is None for d in sizes) else sum(sizes)
        return (None,) + tuple(out[1:])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Functional interface to Add: add([x1, x2])."""
    return Add(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Functional interface to Concatenate: concatenate([x1, x2], axis=-1)."""
    return Concatenate(axis=axis, **kwargs)(inputs)

"""engine.regularizers: weight penalties added to the loss during training (the lecture's "kernel
regularisation"). Dense(4, kernel_regularizer='l2') or regularizers.L2(0.01).

    L1(l1):      l1 * sum(|w|)              pushes weights to exactly zero (sparse)
    L2(l2):      l2 * sum(w^2)              shrinks every weight a little (weight decay)
    L1L2(l1, l2): both
"""
from . import ops
from .serialization import Registered, lookup


def _factor(cls, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{cls}: expected {name} to be a non-negative number. Received: {name}={value!r}")
    return float(value)


class Regularizer(Registered):
    """Callable: regularizer(weight) -> a scalar Tensor penalty."""

    registry_kind = "regularizer"

    def __call__(self, x):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(type(self).__name__, "l1", l1)
        self.l2 = _factor(type(self).__name__, "l2", l2)

    def __call__(self, x):
        penalty = 0.0
        if self.l1:
            penalty = penalty + self.l1 * ops.sum(ops.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * ops.sum(ops.square(x))
        return ops.convert_to_tensor(penalty)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2}
_BY_CLASS = {cls.__name__: cls for cls in (L1, L2, L1L2)}


def get(identifier):
    """None, 'l1', 'l2', 'l1_l2', a config dict, or a Regularizer."""
    if identifier is None or isinstance(identifier, Regularizer) or callable(identifier):
        return identifier
    found = lookup("regularizers.get", identifier, "regularizer", "a Regularizer, a config dict or None",
                   _BY_NAME, _BY_CLASS)
    return found() if isinstance(found, type) else found


def serialize(regularizer):
    if regularizer is None:
        return None
    if type(regularizer).__name__ not in _BY_CLASS:
        raise ValueError(f"regularizers.serialize: {regularizer!r} is not a built-in regularizer")
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}

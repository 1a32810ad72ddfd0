"""engine.regularizers: weight penalties added to the loss during training (the lecture's "kernel
regularisation"). Dense(4, kernel_regularizer='l2') or regularizers.L2(0.01).

    L1(l1):      l1 * sum(|w|)              pushes weights to exactly zero (sparse)
    L2(l2):      l2 * sum(w^2)              shrinks every weight a little (weight decay)
    L1L2(l1, l2): both
"""
from . import ops


def _factor(cls, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{cls}: expected {name} to be a non-negative number. Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Callable: regularizer(weight) -> a scalar Tensor penalty."""

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


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """None, 'l1', 'l2', 'l1_l2', a config dict, or a Regularizer."""
    if identifier is None or isinstance(identifier, Regularizer) or callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"regularizers.get: expected one of 'l1', 'l2', 'l1_l2', a Regularizer or None. "
                     f"Received: regularizer={identifier!r}")


def serialize(regularizer):
    if regularizer is None:
        return None
    if type(regularizer).__name__ not in _BY_NAME:
        raise ValueError(f"regularizers.serialize: {regularizer!r} is not a built-in regularizer")
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}

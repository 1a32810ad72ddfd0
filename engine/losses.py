"""engine.losses: Keras 3's losses, by name ('mse', 'categorical_crossentropy', ...) or as classes.

A loss object is called as loss(y_true, y_pred, sample_weight=None): y_true a NumPy array (the labels),
y_pred a Tensor (the model's output). It computes one value per sample (the mean over the last axis),
then reduces them with `reduction`: 'sum_over_batch_size' (the default: sum(values * weights) / count),
'sum', or 'none' (the per-sample values). The result is a Tensor, so loss.backward() trains the model.

Cross-entropies run on fused kernels (engine.ops.categorical_crossentropy and friends): from logits
(from_logits=True), and also from a softmax output, whose logits the engine remembers.
"""
import numpy as np

from . import ops
from .serialization import Registered, lookup, snake_case

_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


def match_rank(y_true, y_pred, where):
    """y_true reshaped to y_pred's rank when they differ by a trailing 1 (labels (N,) vs outputs (N, 1))."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{where}: expected y_true and y_pred of one shape. Received: y_true.shape={y_true.shape}, "
                         f"y_pred.shape={y_pred.shape}")
    return np.asarray(y_true, dtype=y_pred.dtype)


def weights_like(sample_weight, shape, dtype):
    """Sample weights shaped to multiply per-sample values of `shape`: trailing size-1 axes dropped ((N, 1) ->
    (N,)), then trailing axes added to broadcast ((N,) against (N, T))."""
    w = np.asarray(ops.to_array(sample_weight), dtype=dtype)
    while w.ndim > len(shape) and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim > len(shape) or w.shape != tuple(shape[:w.ndim]):
        raise ValueError(f"losses: expected sample_weight of shape {tuple(shape[:1])} (one weight per sample). "
                         f"Received: sample_weight.shape={np.shape(sample_weight)}")
    return w.reshape(w.shape + (1,) * (len(shape) - w.ndim))


# ---- per-sample functions (Keras names): y_true array, y_pred Tensor -> Tensor of shape y_pred.shape[:-1]

def mean_squared_error(y_true, y_pred):
    """mean((y_pred - y_true)^2) over the last axis."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = match_rank(np.asarray(ops.to_array(y_true)), y_pred, "mean_squared_error")
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_pred - y_true|) over the last axis."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = match_rank(np.asarray(ops.to_array(y_true)), y_pred, "mean_absolute_error")
    return ops.mean(ops.abs(y_pred - y_true), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta); mean over the last axis (e = y_pred - y_true)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = match_rank(np.asarray(ops.to_array(y_true)), y_pred, "huber")
    error = ops.abs(y_pred - y_true)
    quadratic = ops.minimum(error, float(delta))
    linear = error - quadratic
    return ops.mean(0.5 * ops.square(quadratic) + float(delta) * linear, axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """-(t log p + (1 - t) log(1 - p)), mean over the last axis."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = match_rank(np.asarray(ops.to_array(y_true)), y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """-sum(t log softmax) over the classes (the last axis); y_true one-hot (or probabilities)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = np.asarray(ops.to_array(y_true), dtype=y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    return ops.categorical_crossentropy(y_true, y_pred, from_logits=from_logits)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """-log softmax[class], y_true holding class ids (shape (N,) or (N, 1))."""
    return ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits)


# ---- classes

class Loss(Registered):
    """Base class: subclass and override call(y_true, y_pred) -> per-sample Tensor for a custom loss."""

    registry_kind = "loss"

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: expected reduction in {_REDUCTIONS}. Received: reduction={reduction!r}")
        self.name = name or snake_case(type(self).__name__)
        self.reduction = reduction

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.call(y_true, ops.convert_to_tensor(y_pred))           # (N,) or (N, T, ...)
        if sample_weight is not None:
            values = values * weights_like(sample_weight, values.shape, values.dtype)
        if self.reduction in ("none", None):
            return values
        total = ops.sum(values)
        if self.reduction == "sum":
            return total
        return total / float(max(values.size, 1))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MeanSquaredError(Loss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(name, reduction)

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)


class MeanAbsoluteError(Loss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(name, reduction)

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)


class Huber(Loss):
    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(name, reduction)
        if delta <= 0:
            raise ValueError(f"Huber: expected delta > 0. Received: delta={delta}")
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        return huber(y_true, y_pred, self.delta)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class _CrossEntropy(Loss):
    def __init__(self, from_logits, label_smoothing, reduction, name):
        super().__init__(name, reduction)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"{type(self).__name__}: expected label_smoothing in [0, 1]. "
                             f"Received: label_smoothing={label_smoothing}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class BinaryCrossentropy(_CrossEntropy):
    def __init__(self, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size",
                 name="binary_crossentropy"):
        super().__init__(from_logits, label_smoothing, reduction, name)

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)


class CategoricalCrossentropy(_CrossEntropy):
    def __init__(self, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size",
                 name="categorical_crossentropy"):
        super().__init__(from_logits, label_smoothing, reduction, name)

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)


class SparseCategoricalCrossentropy(Loss):
    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name="sparse_categorical_crossentropy"):
        super().__init__(name, reduction)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class LossFunctionWrapper(Loss):
    """A per-sample loss function used as a Loss."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None):
        super().__init__(name or fn.__name__, reduction)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


_CLASSES = {cls.__name__: cls for cls in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
                                          CategoricalCrossentropy, SparseCategoricalCrossentropy)}
_BY_NAME = {"mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError,
            "mae": MeanAbsoluteError, "huber": Huber, "huber_loss": Huber, "binary_crossentropy": BinaryCrossentropy,
            "categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}
_FUNCTIONS = {"mean_squared_error": mean_squared_error, "mean_absolute_error": mean_absolute_error, "huber": huber,
              "binary_crossentropy": binary_crossentropy, "categorical_crossentropy": categorical_crossentropy,
              "sparse_categorical_crossentropy": sparse_categorical_crossentropy}
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


def get(identifier):
    """A Keras name ('mse', 'binary_crossentropy'...), a class name, a config dict, a Loss, or a function
    f(y_true, y_pred) -> per-sample Tensor."""
    if isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)
    found = lookup("losses.get", identifier, "loss", "a Loss, a config dict or a function", _BY_NAME, _CLASSES)
    return found() if isinstance(found, type) else found


def serialize(loss):
    """{'class_name', 'config'} for a built-in loss (a custom function is stored by name, for information)."""
    if type(loss).__name__ in _CLASSES:
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    return {"class_name": "LossFunctionWrapper", "config": {"name": loss.name}}


def deserialize(config):
    return get(config)

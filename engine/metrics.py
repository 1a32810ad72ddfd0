"""engine.metrics: Keras 3's metrics. A metric accumulates over the batches of an epoch
(update_state(y_true, y_pred, sample_weight)), reports its running value (result()) and starts over
(reset_state()). Metrics compute on NumPy arrays: they are measured, never differentiated.

Names in compile(metrics=[...]) become the History keys as written: 'mse' -> history['mse'] and
history['val_mse']. 'accuracy' (or 'acc') is resolved as Keras does, from the loss and the shapes:
binary for one output column or binary_crossentropy, sparse categorical for class-id labels, categorical
for one-hot labels.
"""
import numpy as np

from .losses import match_rank, weights_like
from .serialization import Registered, lookup


class Metric(Registered):
    """Base class. Subclasses implement update_state and result; the running state is a weighted sum."""

    registry_kind = "metric"

    def __init__(self, name=None, dtype=None):
        self.name = name or type(self).__name__.lower()
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def result(self):
        return float(self.total / self.count) if self.count else 0.0

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name} result={self.result():.4f}>"


class Mean(Metric):
    """The weighted mean of the values passed to update_state."""

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += values.size
        else:
            w = np.broadcast_to(weights_like(sample_weight, values.shape, np.float64), values.shape)
            self.total += float((values * w).sum())
            self.count += float(w.sum())


def _match(y_true, y_pred):
    """Both as float64 arrays of one shape (labels (N,) against outputs (N, 1) are reshaped, as in losses)."""
    y_pred = np.asarray(y_pred)
    y_true = match_rank(np.asarray(y_true), y_pred, "metrics")
    return y_true.astype(np.float64), y_pred.astype(np.float64)


# ---- per-sample NumPy functions: one value per sample (the last axis reduced)

def mean_squared_error(y_true, y_pred):
    t, p = _match(y_true, y_pred)
    return np.mean((p - t) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred):
    t, p = _match(y_true, y_pred)
    return np.mean(np.abs(p - t), axis=-1)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    t, p = _match(y_true, y_pred)
    return np.mean((p > threshold) == (t > 0.5), axis=-1)


def categorical_accuracy(y_true, y_pred):
    t, p = _match(y_true, y_pred)
    return (np.argmax(t, axis=-1) == np.argmax(p, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    labels, p = np.asarray(y_true), np.asarray(y_pred)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.shape != p.shape[:-1]:
        raise ValueError(f"sparse_categorical_accuracy: expected y_true of shape {p.shape[:-1]} (class ids). "
                         f"Received: y_true.shape={np.shape(y_true)}")
    return (np.argmax(p, axis=-1) == labels.astype(np.int64)).astype(np.float64)


def _clipped(p):
    return np.clip(p, 1e-7, 1 - 1e-7)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    t, p = _match(y_true, y_pred)
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:                                  # max(z, 0) - z t + log(1 + e^-|z|): no overflow
        return np.mean(np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p))), axis=-1)
    p = _clipped(p)
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p), axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    t, p = _match(y_true, y_pred)
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    log_p = _log_softmax(p) if from_logits else np.log(_clipped(p / p.sum(axis=-1, keepdims=True)))
    return -np.sum(t * log_p, axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    labels, p = np.asarray(y_true), np.asarray(y_pred, dtype=np.float64)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    log_p = _log_softmax(p) if from_logits else np.log(_clipped(p))
    return -np.take_along_axis(log_p, labels.astype(np.int64)[..., None], axis=-1)[..., 0]


class MeanMetricWrapper(Mean):
    """The running mean of a per-sample function fn(y_true, y_pred)."""

    def __init__(self, fn, name=None, **fn_kwargs):
        self.fn, self.fn_kwargs = fn, fn_kwargs
        super().__init__(name=name or fn.__name__)

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(y_true, y_pred, **self.fn_kwargs)
        super().update_state(values, sample_weight)


def _wrapper(class_name, fn, default_name, doc):
    def __init__(self, name=default_name, dtype=None):
        MeanMetricWrapper.__init__(self, fn, name=name)
    return type(class_name, (MeanMetricWrapper,), {"__init__": __init__, "__doc__": doc})


MeanSquaredError = _wrapper("MeanSquaredError", mean_squared_error, "mean_squared_error", "Mean of (y_pred - y_true)^2.")
MeanAbsoluteError = _wrapper("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error", "Mean of |y_pred - y_true|.")
CategoricalAccuracy = _wrapper("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy",
                               "How often argmax(y_pred) equals argmax(y_true) (one-hot labels).")
SparseCategoricalAccuracy = _wrapper("SparseCategoricalAccuracy", sparse_categorical_accuracy,
                                     "sparse_categorical_accuracy", "How often argmax(y_pred) equals the class id.")


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy (from probabilities, or logits with from_logits=True)."""

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0.0):
        super().__init__(binary_crossentropy, name=name, from_logits=from_logits, label_smoothing=label_smoothing)

    def get_config(self):
        return {"name": self.name, **self.fn_kwargs}


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy of one-hot labels (from probabilities, or logits)."""

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0.0):
        super().__init__(categorical_crossentropy, name=name, from_logits=from_logits, label_smoothing=label_smoothing)

    def get_config(self):
        return {"name": self.name, **self.fn_kwargs}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy of class-id labels (from probabilities, or logits)."""

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False):
        super().__init__(sparse_categorical_crossentropy, name=name, from_logits=from_logits)

    def get_config(self):
        return {"name": self.name, **self.fn_kwargs}


class BinaryAccuracy(MeanMetricWrapper):
    """How often (y_pred > threshold) matches the 0/1 label."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class RootMeanSquaredError(Mean):
    """sqrt of the mean squared error over everything seen."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(mean_squared_error(y_true, y_pred), sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


_CLASSES = {cls.__name__: cls for cls in (MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError, BinaryAccuracy,
                                          CategoricalAccuracy, SparseCategoricalAccuracy, BinaryCrossentropy,
                                          CategoricalCrossentropy, SparseCategoricalCrossentropy)}
_BY_NAME = {"mse": MeanSquaredError, "mean_squared_error": MeanSquaredError, "mae": MeanAbsoluteError,
            "mean_absolute_error": MeanAbsoluteError, "rmse": RootMeanSquaredError,
            "root_mean_squared_error": RootMeanSquaredError, "binary_accuracy": BinaryAccuracy,
            "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
            "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}
_ACCURACY = ("accuracy", "acc")


def check(identifier):
    """Raise now if `identifier` can never become a metric (compile calls this)."""
    if isinstance(identifier, Metric) or (callable(identifier) and not isinstance(identifier, type)):
        return
    names = {**_BY_NAME, **dict.fromkeys(_ACCURACY)}          # 'accuracy' is resolved later, against the data
    lookup("metrics.get", identifier, "metric", "a Metric or a function f(y_true, y_pred)", names,
           _CLASSES if isinstance(identifier, str) else None)


def _accuracy_for(loss, y_true, y_pred):
    """Which accuracy 'accuracy' means, decided as Keras decides it."""
    loss_name = getattr(loss, "name", "")
    if loss_name == "binary_crossentropy" or y_pred.shape[-1] == 1:
        return binary_accuracy
    if loss_name == "sparse_categorical_crossentropy" or y_true.ndim < y_pred.ndim or \
            (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def get(identifier, loss=None, y_true=None, y_pred=None):
    """A Metric for `identifier`, named as written. 'accuracy' needs the loss and a batch of
    (y_true, y_pred) to know which accuracy is meant."""
    check(identifier)
    if isinstance(identifier, Metric):
        return identifier
    if identifier in _ACCURACY:
        return MeanMetricWrapper(_accuracy_for(loss, np.asarray(y_true), np.asarray(y_pred)), name=identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _CLASSES[identifier]
        return cls(name=identifier) if identifier in _BY_NAME else cls()
    return MeanMetricWrapper(identifier)


def deserialize(config):
    """A metric from a name or from {'class_name', 'config'} (what serialize_id writes)."""
    if isinstance(config, dict):
        cls = _CLASSES.get(config.get("class_name"))
        if cls is None:
            raise ValueError(f"metrics.deserialize: unknown metric class {config.get('class_name')!r}")
        return cls(**config.get("config", {}))
    check(config)
    return config                                # a name: compile() resolves it against the data


def serialize_id(identifier):
    """What compile() stores for a metric in a saved model: the name, or a class config."""
    if isinstance(identifier, str):
        return identifier
    if isinstance(identifier, Metric) and type(identifier).__name__ in _CLASSES:
        return {"class_name": type(identifier).__name__, "config": identifier.get_config()}
    return getattr(identifier, "__name__", getattr(identifier, "name", repr(identifier)))

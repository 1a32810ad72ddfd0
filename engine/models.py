"""engine.models: Sequential, Model (subclass it and write call), and the Keras training workflow:
compile, fit, evaluate, predict, train_on_batch, test_on_batch, summary, save and load.

    model = Sequential([Input(shape=(8,)), Dense(15, activation='relu'), Dense(1)])
    model.compile(optimizer='adam', loss='mse', metrics=['mse'])
    history = model.fit(X, y, validation_split=0.25, epochs=100)

One training step (Model.train_step): forward pass with training=True, loss plus regularization
penalties, loss.backward() (autograd fills every weight's .grad), the optimizer's fused in-place update,
then the gradients are cleared and the metrics updated.

One file on purpose (past the ~600 lines a file in engine/ usually stays under): Model is Keras' training
contract (compile, the three steps, fit / evaluate / predict and the metric trackers they share), and
reading one loop from its data checks to its callbacks should not mean jumping between files. Sequential
sits below it; the functional model, with its graph, is engine/functional.py.
"""
import inspect
import math
import numbers
import time

import numpy as np

from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import ops, random, serialization
from .callbacks.base import progress_line
from .layers.base import Layer, set_mask
from .layers.core import InputLayer
from .saving import load_model  # noqa: F401  (engine.models.load_model, as keras.models.load_model)
from .tensor import Tensor, no_grad

_VERBOSE = (0, 1, 2, "auto")


# --------------------------------------------------------------------------------------------- data checks


def _as_array(where, name, data, float32=True):
    """Inputs as NumPy arrays: floats become float32; integer labels stay integers."""
    if isinstance(data, Tensor):
        data = data.data
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where}: expected {name} to be a NumPy array or nested lists of numbers. "
                        f"Received: {type(data).__name__} ({err})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{where}: expected {name} to hold numbers. Received: {name}.dtype={arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{where}: expected {name} with a batch dimension. Received: {name}.shape=()")
    if arr.dtype.kind == "f" or (float32 and arr.dtype.kind in "ub"):
        arr = arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        first = int(np.argwhere(~np.isfinite(arr.reshape(len(arr), -1)))[0][0])
        raise ValueError(f"{where}: expected finite values in {name}. Received: NaN or infinity in {name}, "
                         f"first at sample {first}")
    return arr


def _check_int(where, name, value, low, allow_none=False):
    if allow_none and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{where}: expected `{name}` to be an int >= {low}. Received: {name}={value!r}")
    return int(value)


def _xy(where, x, y, sample_weight=None, y_required=True, inputs=None):
    """x (float32), y and sample weights as arrays of one length, checked before anything changes.
    inputs(where, x) converts x instead of _as_array (a functional model with several inputs takes a list)."""
    if x is None:
        raise ValueError(f"{where}: expected `x`, the inputs. Received: x=None")
    x = _as_array(where, "x", x) if inputs is None else inputs(where, x)
    if y is None:
        if y_required:
            raise ValueError(f"{where}: expected `y`, the targets, for a compiled loss. Received: y=None")
    else:
        y = _as_array(where, "y", y, float32=False)
        if len(y) != len(x):
            raise ValueError(f"{where}: expected x and y with the same number of samples. "
                             f"Received: len(x)={len(x)}, len(y)={len(y)}")
    if sample_weight is not None:
        sample_weight = _as_array(where, "sample_weight", sample_weight)
        if sample_weight.shape != (len(x),):
            raise ValueError(f"{where}: expected sample_weight of shape ({len(x)},), one weight per sample. "
                             f"Received: sample_weight.shape={sample_weight.shape}")
    return x, y, sample_weight


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) from one batch as train_step receives it: x alone, (x,), (x, y) or (x, y, sw)
    (missing parts are None), as keras.utils.unpack_x_y_sample_weight."""
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            raise ValueError(f"unpack_x_y_sample_weight: expected x, (x, y) or (x, y, sample_weight). "
                             f"Received: a tuple of {len(data)}")
        return tuple(data) + (None,) * (3 - len(data))
    return data, None, None


def _log_value(value):
    """A metric value for the logs: a Python float for numbers, one-element arrays and Tensors."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())
    if isinstance(value, (numbers.Real, np.number, np.ndarray)) and np.ndim(value) == 0:
        return float(value)
    return value


_STEP_STYLES = {}                 # (class, step name) -> whether its step takes (x, y, sample_weight)


def _takes_x_y(cls, name):
    """Whether cls's train_step / test_step is engine 0.1's step(x, y, sample_weight) (else Keras 3's step(data))."""
    key = (cls, name)
    if key not in _STEP_STYLES:
        params = [p.name for p in inspect.signature(getattr(cls, name)).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
        _STEP_STYLES[key] = params[:2] == ["x", "y"]
    return _STEP_STYLES[key]


def _take(array, index):
    """array[index], or None for a missing y or sample_weight."""
    return None if array is None else array[index]


def _batches(n, batch_size, order=None):
    """Index arrays (or slices, in order) of consecutive batches covering n samples."""
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield slice(start, stop) if order is None else order[start:stop]


# --------------------------------------------------------------------------------------------- Model


class Model(Layer):
    """A layer that can be trained. Subclass it, create layers in __init__ and use them in call:

        class TwoLayer(Model):
            def __init__(self):
                super().__init__()
                self.hidden = Dense(16, activation='relu')
                self.out = Dense(1)
            def call(self, x, training=None):
                return self.out(self.hidden(x))
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional         # Model(inputs, outputs): a functional model, as in Keras
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compile_config = None
        self._loss_tracker = None
        self._metrics = None
        self._metric_ids = []
        self._weighted_ids = []

    # ---- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Choose the optimizer, the loss and the metrics: names ('adam', 'mse', ['accuracy']) or objects.
        `metrics` ignore sample weights; `weighted_metrics` use them (as in Keras). Everything is checked
        before anything changes, so a failed compile leaves the model as it was."""
        if loss_weights is not None:
            raise ValueError("compile: loss_weights apply to models with several outputs, which engine does not "
                             f"have yet. Received: loss_weights={loss_weights!r}")
        for name, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise TypeError(f"compile: expected `{name}` to be a list. Received: {name}={value!r}")
        metric_ids, weighted_ids = list(metrics or []), list(weighted_metrics or [])
        for identifier in metric_ids + weighted_ids:     # unknown names fail now, not in the first step
            metrics_module.check(identifier)
        new_optimizer = optimizers_module.get(optimizer)
        new_loss = None if loss is None else losses_module.get(loss)
        compile_config = {"optimizer": optimizers_module.serialize(new_optimizer),
                          "loss": None if new_loss is None else losses_module.serialize(new_loss),
                          "metrics": [metrics_module.serialize_id(m) for m in metric_ids],
                          "weighted_metrics": [metrics_module.serialize_id(m) for m in weighted_ids]}
        self.optimizer, self.loss = new_optimizer, new_loss
        self._metric_ids, self._weighted_ids = metric_ids, weighted_ids
        self._metrics = None                          # resolved on the first batch ('accuracy' needs shapes)
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True
        self._compile_config = compile_config

    def _input_arrays(self, where, x):
        """The model's inputs x as it takes them: one float32 array here (a functional model with several
        inputs overrides this to take a list)."""
        return _as_array(where, "x", x)

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"{where}: the model must be compiled first: call model.compile(optimizer, loss)")
        if self.loss is None and not self._steps_overridden():
            if not self._adds_losses:
                raise ValueError(f"{where}: expected a loss. Call model.compile(..., loss='mse') (or another loss), "
                                 f"add one in call with self.add_loss(...), or override train_step")

    def _steps_overridden(self):
        """Whether a subclass writes its own train_step (then y and the compiled loss are up to it)."""
        return type(self).train_step is not Model.train_step

    @property
    def _adds_losses(self):
        """Whether some call may add a loss: a custom call (subclassed model or layer) may, so the check that
        a loss exists waits for compute_loss."""
        return any(type(layer).call is not Layer.call and type(layer).__module__.split(".")[0] != "engine"
                   for layer in [self] + self._all_sublayers())

    def _all_sublayers(self):
        found, todo = [], list(self._sublayers)
        while todo:
            layer = todo.pop()
            if all(layer is not f for f in found):
                found.append(layer)
                todo.extend(layer._sublayers)
        return found

    def _resolve_metrics(self, y, y_pred):
        if self._metrics is None and y is not None:
            resolve = lambda ids: [metrics_module.get(m, loss=self.loss, y_true=y, y_pred=y_pred) for m in ids]  # noqa
            unweighted, weighted = resolve(self._metric_ids), resolve(self._weighted_ids)
            self._metrics = unweighted + weighted
            self._metric_weighted = [False] * len(unweighted) + [True] * len(weighted)

    @property
    def metrics(self):
        """The metric trackers fit resets at the start of every epoch (and evaluate at its start): the
        compiled loss tracker and metrics, then every Metric kept as an attribute of the model (a custom
        train_step's trackers, as in Keras 3). Override it to choose them yourself."""
        found = [] if self._loss_tracker is None else [self._loss_tracker]
        found += list(self._metrics or [])
        for value in vars(self).values():
            if isinstance(value, metrics_module.Metric) and all(value is not m for m in found):
                found.append(value)
        return found

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        """reset_state() of every tracker in self.metrics."""
        for m in self.metrics:
            m.reset_state()

    def get_metrics_result(self):
        """{name: result()} of self.metrics: what the default train_step and test_step return."""
        return {m.name: m.result() for m in self.metrics}

    # ---- one step (Keras 3's contract: override train_step(self, data) to write your own)
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss (when there is one) plus every loss the layers added in the forward pass (add_loss,
        activity regularization) and the weight regularization penalties, as one scalar Tensor."""
        terms = []
        if self.loss is not None:
            if y is None:
                raise ValueError("compute_loss: the compiled loss compares y_pred with y, and y is None. Pass y to "
                                 "fit (or compile without a loss and add one with self.add_loss)")
            terms.append(self.loss(y, y_pred, sample_weight))
        terms += self.losses
        if not terms:
            raise ValueError("compute_loss: expected a loss. Call model.compile(..., loss='mse') (or another loss), "
                             "or add one in call with self.add_loss(...)")
        self._resolve_metrics(y, None if y_pred is None else ops.to_array(y_pred))
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def train_step(self, data):
        """One training step on one batch, `data` = x, (x, y) or (x, y, sample_weight) as fit passes it: forward
        with training=True, compute_loss, loss.backward(), the optimizer's update, then the metrics. Returns
        {name: value} for the progress bar and the callbacks. Override it (Keras 3's signature) to train in
        your own way: self.zero_grad(), loss.backward(), self.optimizer.apply(grads, self.trainable_weights)."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        loss.backward()
        variables = self.trainable_weights
        self.optimizer.apply([None if v.grad is None else v.grad.data for v in variables], variables)
        for v in variables:
            v.grad = None
        self._update_metrics(y, y_pred, loss.item(), len(x), sample_weight)
        return self.get_metrics_result()

    def test_step(self, data):
        """One evaluation step (run under no_grad): forward with training=False, compute_loss, the metrics."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        self._update_metrics(y, y_pred, loss.item(), len(x), sample_weight)
        return self.get_metrics_result()

    def predict_step(self, data):
        """The model's output for one batch (run under no_grad)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def _update_metrics(self, y, y_pred, loss, count, sample_weight):
        y_pred = ops.to_array(y_pred)
        self._resolve_metrics(y, y_pred)
        self._loss_tracker.update_state(loss, sample_weight=count)
        for m, weighted in zip(self._metrics or [], self._metric_weighted if self._metrics else []):
            m.update_state(y, y_pred, sample_weight if weighted else None)

    def _run_step(self, where, step, x, y, sample_weight):
        """step (train_step or test_step) on one batch, as Keras 3 calls it: data = x, (x, y) or (x, y, sw); an
        engine 0.1 subclass's train_step(x, y, sample_weight) still works. Returns the logs, checked."""
        data = x if y is None and sample_weight is None else (x, y) if sample_weight is None else (x, y, sample_weight)
        if _takes_x_y(type(self), step.__name__):
            logs = step(x, y, sample_weight)
            logs = self.get_metrics_result() if logs is None else logs
        else:
            logs = step(data)
        if not isinstance(logs, dict):
            raise TypeError(f"{where}: expected {step.__name__} to return a dict of metric values, such as "
                            f"{{m.name: m.result() for m in self.metrics}}. Received: {type(logs).__name__}")
        return {name: _log_value(value) for name, value in logs.items()}

    # ---- fit / evaluate / predict
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for `epochs` passes over (x, y) in batches of `batch_size` (32 by default); returns a History
        whose .history maps 'loss', each metric and their 'val_' twins to one value per epoch.

        validation_split=f holds out the *last* fraction f of the samples, taken before any shuffling (as
        Keras does), and evaluates on them after every epoch. shuffle=True reorders the training samples
        every epoch, with the engine's generator (engine.set_seed makes runs repeat exactly)."""
        where = "fit"
        self._require_compiled(where)
        x, y, sample_weight = _xy(where, x, y, sample_weight, y_required=self.loss is not None,
                                  inputs=self._input_arrays)
        batch_size = _check_int(where, "batch_size", 32 if batch_size is None else batch_size, 1)
        epochs = _check_int(where, "epochs", epochs, 0)
        initial_epoch = _check_int(where, "initial_epoch", initial_epoch, 0)
        steps_per_epoch = _check_int(where, "steps_per_epoch", steps_per_epoch, 1, allow_none=True)
        validation_freq = _check_int(where, "validation_freq", validation_freq, 1)
        if verbose not in _VERBOSE:
            raise ValueError(f"{where}: expected verbose in {_VERBOSE}. Received: verbose={verbose!r}")
        if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
            raise ValueError(f"{where}: expected validation_split in [0, 1). Received: validation_split={validation_split!r}")
        if class_weight is not None:
            sample_weight = self._class_weights(where, class_weight, y, sample_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(f"{where}: expected validation_data=(x_val, y_val) or (x_val, y_val, "
                                 f"sample_weight_val). Received: {type(validation_data).__name__}")
            val = _xy(f"{where} (validation_data)", *validation_data, y_required=self.loss is not None,
                      inputs=self._input_arrays)
            for name, train, held_out in (("x", x, val[0]), ("y", y, val[1])):
                if getattr(held_out, "shape", None) is not None and held_out.shape[1:] != train.shape[1:]:
                    raise ValueError(f"{where}: expected validation_data's {name} with the sample shape of {name}, "
                                     f"{train.shape[1:]}. Received: {held_out.shape[1:]}")
        elif validation_split > 0:
            split_at = int(math.floor(len(x) * (1.0 - validation_split)))  # the last samples, before shuffling
            if split_at == 0 or split_at == len(x):
                raise ValueError(f"{where}: validation_split={validation_split} leaves no samples for "
                                 f"{'training' if split_at == 0 else 'validation'} out of {len(x)}")
            val = (x[split_at:], _take(y, slice(split_at, None)), _take(sample_weight, slice(split_at, None)))
            x, y = x[:split_at], _take(y, slice(None, split_at))
            sample_weight = None if sample_weight is None else sample_weight[:split_at]
        if self._input_shape_arg is None and not self.built:
            self._input_shape_arg = tuple(x.shape[1:])

        n = len(x)
        steps = math.ceil(n / batch_size) if steps_per_epoch is None else min(steps_per_epoch, math.ceil(n / batch_size))
        verbose = 1 if verbose == "auto" else verbose
        history = callbacks_module.History()
        extra = [callbacks_module.ProgbarLogger(verbose)] if verbose else []
        cbs = callbacks_module.CallbackList(list(callbacks or []) + extra + [history], self,
                                            {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        self.history = history
        self._initial_epoch = initial_epoch            # BackupAndRestore moves it forward when it resumes
        cbs.on_train_begin({})
        epoch_logs = {}
        for epoch in range(self._initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch, {})
            order = random.generator().permutation(n) if shuffle else None
            logs = {}
            for step, index in enumerate(_batches(n, batch_size, order)):
                if step >= steps:
                    break
                cbs.on_train_batch_begin(step, {})
                logs = self._run_step(where, self.train_step, x[index], _take(y, index), _take(sample_weight, index))
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs) if logs else {"loss": float("nan")}
            if val is not None and (epoch + 1) % validation_freq == 0:
                cbs.on_test_begin({})
                val_logs = self._evaluate_arrays(*val, validation_batch_size or batch_size, validation_steps, cbs)
                cbs.on_test_end(val_logs)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(epoch_logs)
        return history

    def _class_weights(self, where, class_weight, y, sample_weight):
        if not isinstance(class_weight, dict):
            raise TypeError(f"{where}: expected class_weight to be a dict {{class id: weight}}. "
                            f"Received: {type(class_weight).__name__}")
        labels = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0].astype(np.int64)
        missing = sorted(set(np.unique(labels).tolist()) - set(class_weight))
        if missing:
            raise ValueError(f"{where}: expected a class_weight entry for every class in y. Missing: {missing}")
        weights = np.array([class_weight[int(c)] for c in labels], dtype=np.float32)
        return weights if sample_weight is None else weights * sample_weight

    def _evaluate_arrays(self, x, y, sample_weight, batch_size, steps=None, callbacks=None):
        self.reset_metrics()
        logs = None
        for step, index in enumerate(_batches(len(x), batch_size)):
            if steps is not None and step >= steps:
                break
            if callbacks is not None:
                callbacks.on_test_batch_begin(step, {})
            with no_grad():
                logs = self._run_step("evaluate", self.test_step, x[index], _take(y, index), _take(sample_weight, index))
            if callbacks is not None:
                callbacks.on_test_batch_end(step, logs)
        if logs is None:                              # no samples at all
            names = ["loss"] + [str(m) for m in self._metric_ids + self._weighted_ids]
            return {name: float("nan") for name in (names if not self._steps_overridden() else self.metrics_names)}
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics) over (x, y): the loss alone, or [loss, *metrics] as Keras returns them,
        or a dict with return_dict=True."""
        where = "evaluate"
        self._require_compiled(where)
        x, y, sample_weight = _xy(where, x, y, sample_weight, y_required=self.loss is not None,
                                  inputs=self._input_arrays)
        batch_size = _check_int(where, "batch_size", 32 if batch_size is None else batch_size, 1)
        if verbose not in _VERBOSE:
            raise ValueError(f"{where}: expected verbose in {_VERBOSE}. Received: verbose={verbose!r}")
        cbs = callbacks_module.CallbackList(list(callbacks or []), self, {"steps": math.ceil(len(x) / batch_size)})
        start = time.perf_counter()
        cbs.on_test_begin({})
        logs = self._evaluate_arrays(x, y, sample_weight, batch_size, steps, cbs)
        cbs.on_test_end(logs)
        if verbose:
            steps_run = math.ceil(len(x) / batch_size)
            print(progress_line(steps_run, steps_run, time.perf_counter() - start, logs, 2 if verbose == 2 else 1))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x, as a NumPy array, computed in batches without recording gradients."""
        where = "predict"
        x = self._input_arrays(where, x)
        batch_size = _check_int(where, "batch_size", 32 if batch_size is None else batch_size, 1)
        if verbose not in _VERBOSE:
            raise ValueError(f"{where}: expected verbose in {_VERBOSE}. Received: verbose={verbose!r}")
        start = time.perf_counter()
        cbs = callbacks_module.CallbackList(list(callbacks or []), self, {"steps": math.ceil(len(x) / batch_size)})
        cbs.on_predict_begin({})
        outputs = []
        with no_grad():
            if len(x) == 0:
                outputs.append(ops.to_array(self.predict_step(x)))
            for step, index in enumerate(_batches(len(x), batch_size)):
                if steps is not None and step >= steps:
                    break
                cbs.on_predict_batch_begin(step, {})
                outputs.append(ops.to_array(self.predict_step(x[index])))
                cbs.on_predict_batch_end(step, {"outputs": outputs[-1]})
        cbs.on_predict_end({})
        if verbose:
            print(progress_line(len(outputs), len(outputs), time.perf_counter() - start, {}, 2 if verbose == 2 else 1))
        return np.concatenate(outputs, axis=0)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on exactly this batch; returns the loss (and metrics) of the batch."""
        where = "train_on_batch"
        self._require_compiled(where)
        x, y, sample_weight = _xy(where, x, y, sample_weight, y_required=self.loss is not None,
                                  inputs=self._input_arrays)
        if class_weight is not None:
            sample_weight = self._class_weights(where, class_weight, y, sample_weight)
        self.reset_metrics()
        return self._batch_result(self._run_step(where, self.train_step, x, y, sample_weight), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) on this batch, without training."""
        where = "test_on_batch"
        self._require_compiled(where)
        x, y, sample_weight = _xy(where, x, y, sample_weight, y_required=self.loss is not None,
                                  inputs=self._input_arrays)
        self.reset_metrics()
        with no_grad():
            return self._batch_result(self._run_step(where, self.test_step, x, y, sample_weight), return_dict)

    def predict_on_batch(self, x):
        with no_grad():
            return ops.to_array(self.predict_step(self._input_arrays("predict_on_batch", x)))

    def _batch_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ---- inspection
    @property
    def layers(self):
        """The layers this model holds (for a subclassed model: those kept as its attributes, in order)."""
        return list(self._sublayers)

    def get_layer(self, name=None, index=None):
        """The layer called `name`, or the one at position `index` of self.layers."""
        layers = self.layers
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -len(layers) <= index < len(layers):
                raise ValueError(f"{self.name}.get_layer: expected index in [{-len(layers)}, {len(layers)}). "
                                 f"Received: index={index!r}")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}. Layers: {[layer.name for layer in layers]}")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print a Keras-style table: each layer, its output shape and its parameter count; then totals."""
        from ._summary import summary_lines
        lines = summary_lines(self, line_length or 78, show_trainable)
        for line in lines:
            (print_fn or print)(line)

    # ---- saving (engine/saving.py holds the file format)
    def build_from_config(self, config):
        """Create the weights from the saved input shape: one call on a zero batch of that shape (a subclassed
        model makes its weights in call)."""
        shape = config.get("input_shape")
        if shape is None:
            return
        shape = tuple(shape)
        with no_grad():
            self(np.zeros(tuple(1 if d is None else d for d in shape), dtype=np.float32), training=False)
        self._build_shape = shape

    def save(self, filepath, overwrite=True):
        """Save architecture, weights, optimizer state and compile settings to one file (a zip of JSON and
        raw arrays; never pickle). Load it with engine.models.load_model(filepath)."""
        from . import saving
        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights alone (model.load_weights restores them into the same architecture)."""
        from . import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        from . import saving
        saving.load_weights(self, filepath)


# --------------------------------------------------------------------------------------------- Sequential


class Sequential(Model):
    """A stack of layers, each feeding the next: Sequential([Dense(15, activation='relu', input_shape=(8,)),
    Dense(1)]) or model.add(layer) one at a time."""

    def __init__(self, layers=None, trainable=True, name=None, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._layers = []
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        """The layers, without the InputLayer (as in Keras)."""
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def add(self, layer):
        """Append a layer to the stack."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a Layer instance. Received: {type(layer).__name__}")
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError("Sequential.add: an InputLayer can only be the first layer")
        if self._input_shape_arg is None and layer._input_shape_arg is not None and not self.layers:
            self._input_shape_arg = layer._input_shape_arg
        self._layers.append(layer)
        self._sublayers.append(layer)
        self.built = False
        if self._input_shape_arg is not None:        # as Keras: with a known input shape, weights exist now
            self.build()

    def pop(self):
        """Remove the last layer and return it."""
        if not self.layers:
            raise ValueError("Sequential.pop: the model has no layers to remove")
        layer = self._layers.pop()
        self._sublayers.remove(layer)
        return layer

    def build(self, input_shape=None):
        shape = tuple(input_shape) if input_shape is not None else (None,) + tuple(self._input_shape_arg or ())
        if input_shape is None and self._input_shape_arg is None:
            raise ValueError("Sequential.build: the input shape is unknown. Give the first layer input_shape=..., "
                             "start with Input(shape=...), or call the model on data")
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
                layer.built = True
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None, mask=None):
        x = inputs
        if mask is not None:                         # an explicit mask goes to the first layer
            set_mask(x, mask)
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def __call__(self, inputs, training=None, **kwargs):
        if not self.layers:
            raise ValueError("Sequential: the model has no layers. Add some with model.add(Dense(...))")
        return super().__call__(inputs, training=training, **kwargs)

    def build_from_config(self, config):
        shape = config.get("input_shape")
        if shape is not None:
            self.build(tuple(shape))
            self._build_shape = tuple(shape)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild from get_config(): each layer entry {'class_name', 'config'} becomes a layer again."""
        config = dict(config)
        layers = [layer if isinstance(layer, Layer) else serialization.deserialize(layer, custom_objects)
                  for layer in config.pop("layers", [])]
        input_shape = config.pop("input_shape", None)
        model = cls(layers=layers, **config)
        if input_shape is not None and model._input_shape_arg is None:
            model._input_shape_arg = tuple(input_shape)
        return model

    def get_config(self):
        layers = [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self._layers]
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "input_shape": None if self._input_shape_arg is None else list(self._input_shape_arg)}

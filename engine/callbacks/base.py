"""Callback base class, the list that dispatches to callbacks, History and the progress bar.

fit() calls, in order: on_train_begin; per epoch on_epoch_begin, per batch on_train_batch_begin and
on_train_batch_end, then (with validation data) on_test_begin/end around evaluation, then on_epoch_end
with the epoch's logs ({'loss': ..., 'mse': ..., 'val_loss': ...}); finally on_train_end. A callback
can stop training by setting `self.model.stop_training = True`.
"""
import sys
import time


class Callback:
    """Override any of the hooks; `self.model` is the model being trained, `self.params` the run's
    settings ({'epochs', 'steps', 'verbose'})."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Calls each hook on every callback, in order. Batch hooks are skipped entirely when no callback
    overrides them, which keeps the per-step cost of fit() low."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback instances. Received: {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)
        for hook in _HOOKS:
            active = [getattr(cb, hook) for cb in self.callbacks
                      if getattr(type(cb), hook) is not getattr(Callback, hook) or hook in vars(cb)]
            setattr(self, hook, self._dispatch(active))

    @staticmethod
    def _dispatch(methods):
        if not methods:
            return lambda *args, **kwargs: None

        def call(*args, **kwargs):
            for method in methods:
                method(*args, **kwargs)
        return call


class History(Callback):
    """Records the logs of every epoch: history.history['loss'] is the list of epoch losses."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


def _format_logs(logs):
    return "".join(f" - {key}: {value:.4f}" for key, value in logs.items() if isinstance(value, (int, float)))


def _format_time(seconds):
    """Keras' units for the time per step: 2s, 35ms, 250us."""
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


class ProgbarLogger(Callback):
    """Keras' progress output. verbose=1: a live bar per epoch
    (`32/32 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - loss: 0.1234`), redrawn in place on a terminal and
    printed once per epoch elsewhere; verbose=2: one line per epoch."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream

    def _out(self):
        return self.stream or sys.stdout

    def _live(self):
        out = self._out()
        return self.verbose == 1 and hasattr(out, "isatty") and out.isatty()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._steps_seen = 0
        epochs = self.params.get("epochs")
        if epochs and epochs > 1:                # as Keras: no header for a single epoch
            print(f"Epoch {epoch + 1}/{epochs}", file=self._out(), flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._steps_seen = batch + 1
        now = time.perf_counter()
        if self._live() and now - self._last_draw > 0.05:
            self._last_draw = now
            self._draw(batch + 1, logs or {}, final=False)

    def on_epoch_end(self, epoch, logs=None):
        self._draw(self.params.get("steps") or self._steps_seen, logs or {}, final=True)

    def _draw(self, step, logs, final):
        steps = self.params.get("steps") or step
        line = progress_line(step, steps, time.perf_counter() - self._start, logs, self.verbose, self._live())
        out = self._out()
        if self._live():
            out.write("\r" + line + ("\n" if final else ""))
            out.flush()
        elif final:
            print(line, file=out, flush=True)


def progress_line(step, steps, elapsed, logs, verbose=1, color=False, width=20):
    """Keras' progress text: verbose=1 '32/32 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - loss: 0.1234',
    verbose=2 '32/32 - 0s - 3ms/step - loss: 0.1234'."""
    per_step = _format_time(elapsed / max(step, 1)) + "/step"
    if verbose == 2:
        return f"{steps}/{steps} - {elapsed:.0f}s - {per_step}{_format_logs(logs)}"
    done = int(width * step / max(steps, 1))             # on a terminal the done part is green
    bar = "\x1b[32m" + "━" * done + "\x1b[0m" + "━" * (width - done) if color else "━" * width
    return f"{step}/{steps} {bar} {elapsed:.0f}s {per_step}{_format_logs(logs)}"

"""LambdaCallback: a callback made of plain functions."""
from .base import Callback, _HOOKS

_INDEXED = {"on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
            "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"}


def _wrap(fn, indexed):
    """Call fn with Keras' positional arguments: (epoch or batch, logs) or (logs); logs may be None."""
    if indexed:
        return lambda index, logs=None: fn(index, logs)
    return lambda logs=None: fn(logs)


class LambdaCallback(Callback):
    """Build a callback from functions with Keras' signatures:

        on_epoch_begin(epoch, logs), on_epoch_end(epoch, logs), on_train_begin(logs), on_train_end(logs),
        on_train_batch_begin(batch, logs), on_train_batch_end(batch, logs)

    Other hooks (on_test_begin=..., on_predict_batch_end=...) may be passed as keyword arguments too;
    any other keyword argument becomes an attribute, as in Keras.

        LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs['loss']))
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end}
        for key, value in kwargs.items():
            if key in _HOOKS:
                hooks[key] = value
            else:
                setattr(self, key, value)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback: expected `{name}` to be a function or None. "
                                f"Received: {name}={fn!r}")
            setattr(self, name, _wrap(fn, name in _INDEXED))

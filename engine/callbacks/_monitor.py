"""Shared by the callbacks that watch one value of the epoch logs (EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau): argument checks, the direction of improvement, and the warning for a missing key."""
import numbers
import warnings

_MODES = ("auto", "min", "max")


def check_mode(where, mode):
    if mode not in _MODES:
        raise ValueError(f"{where}: expected mode in {_MODES}. Received: mode={mode!r}")
    return mode


def check_monitor(where, monitor):
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"{where}: expected `monitor` to be the name of a logged value, such as 'val_loss'. "
                         f"Received: monitor={monitor!r}")
    return monitor


def check_int(where, name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{where}: expected `{name}` to be an int >= {low}. Received: {name}={value!r}")
    return int(value)


def check_number(where, name, value, low=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{where}: expected `{name}` to be a number{bound}. Received: {name}={value!r}")
    return float(value)


def check_save_freq(where, save_freq, allow_false=False):
    """'epoch' or a positive number of batches (False: never, where allowed)."""
    if save_freq == "epoch" or (allow_false and save_freq is False):
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, numbers.Integral) or save_freq < 1:
        expected = "'epoch', a positive int (a number of batches)" + (" or False" if allow_false else "")
        raise ValueError(f"{where}: expected save_freq to be {expected}. Received: save_freq={save_freq!r}")
    return int(save_freq)


def maximize(monitor, mode):
    """True when larger is better. mode='auto' decides from the name as Keras does: accuracies and AUC
    ('acc', 'accuracy', 'val_auc', ...) are maximized, everything else (losses, errors) minimized."""
    if mode != "auto":
        return mode == "max"
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "acc" in name or "auc" in name or name.startswith("fmeasure")


def monitor_value(what, monitor, logs):
    """logs[monitor] as a float, or None after a warning that lists the keys that are there."""
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        warnings.warn(f"{what} is conditioned on metric `{monitor}` which is not available. "
                      f"Available metrics are: {','.join(logs)}", stacklevel=3)
        return None
    return float(value)


class BatchCounter:
    """Counts the batches run since the last save, across epochs (the batch index restarts at 0 every
    epoch), for callbacks that save every `save_freq` batches."""

    def __init__(self, every):
        self.every = every
        self.since_save = 0
        self.last_batch = -1

    def due(self, batch):
        """Record that `batch` ran; True (and the count restarts) when a save is due."""
        self.since_save += batch + 1 if batch <= self.last_batch else batch - self.last_batch
        self.last_batch = batch
        if self.since_save >= self.every:
            self.since_save = 0
            return True
        return False

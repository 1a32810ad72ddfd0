"""ModelCheckpoint: save the model (or its weights) during training, every epoch or only on improvement."""
import os

import numpy as np

from . import _monitor
from .base import Callback


class ModelCheckpoint(Callback):
    """Save the model at the end of every epoch (or every `save_freq` batches).

    filepath may hold format fields filled from the epoch number (1-based, as Keras) and the logs:
    'ckpt/model-{epoch:02d}-{val_loss:.2f}.keras'. A full model needs a '.keras' name (engine's own zip
    format, see engine.saving); save_weights_only=True needs '.weights.npz'. save_best_only=True writes
    only when `monitor` beats the best value so far (and `initial_value_threshold`, when given).
    Missing directories are created.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        where = "ModelCheckpoint"
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"{where}: expected `filepath` to be a str or path. Received: filepath={filepath!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = _monitor.check_monitor(where, monitor)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _monitor.check_mode(where, mode)
        self.save_freq = _monitor.check_save_freq(where, save_freq)
        if initial_value_threshold is not None:
            initial_value_threshold = _monitor.check_number(where, "initial_value_threshold", initial_value_threshold)
        self._maximize = _monitor.maximize(self.monitor, self.mode)
        self.best = initial_value_threshold if initial_value_threshold is not None else (
            -np.inf if self._maximize else np.inf)
        if self.save_weights_only and not self.filepath.endswith(".weights.npz"):
            hint = (" engine writes weights as a zip of .npy arrays, not HDF5: use the suffix '.weights.npz'"
                    if self.filepath.endswith(".h5") else "")
            raise ValueError(f"{where}: with save_weights_only=True, expected a filepath ending in '.weights.npz'."
                             f"{hint} Received: filepath={self.filepath!r}")
        if not self.save_weights_only and not self.filepath.endswith(".keras"):
            raise ValueError(f"{where}: expected a filepath ending in '.keras' (or save_weights_only=True and "
                             f"'.weights.npz'). Received: filepath={self.filepath!r}")
        self._current_epoch = 0
        self._batches = _monitor.BatchCounter(self.save_freq)

    def _improved(self, current):
        return current > self.best if self._maximize else current < self.best

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        if self._batches.due(batch):
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in fields:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as err:
            raise KeyError(f"ModelCheckpoint: failed to format the filepath {self.filepath!r} with the epoch "
                           f"and the logs (available: {sorted(fields)}). Reason: {err!r}") from None

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise IsADirectoryError(f"ModelCheckpoint: expected a file path, not a directory. "
                                    f"Received: filepath={filepath!r}")
        if self.save_best_only:
            current = _monitor.monitor_value("Saving the best model (skipped)", self.monitor, logs)
            if current is None:
                return
            if not self._improved(current):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {filepath}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)

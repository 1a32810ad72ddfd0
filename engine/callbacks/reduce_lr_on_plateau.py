"""ReduceLROnPlateau: multiply the learning rate by `factor` when a monitored value stops improving."""
import numpy as np

from . import _monitor
from .base import Callback


class ReduceLROnPlateau(Callback):
    """After `patience` epochs without an improvement of more than `min_delta` in `monitor`, set
    model.optimizer.learning_rate to max(learning_rate * factor, min_lr), then wait `cooldown` epochs
    before counting again. Like Keras, it adds the current rate to the epoch logs as 'learning_rate'.

        ReduceLROnPlateau(monitor='val_loss', factor=0.5, patience=2, min_lr=1e-4)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        where = "ReduceLROnPlateau"
        self.monitor = _monitor.check_monitor(where, monitor)
        factor = _monitor.check_number(where, "factor", factor)
        if not 0 < factor < 1:
            raise ValueError(f"{where}: expected 0 < factor < 1 (the rate is multiplied by it; a factor >= 1 "
                             f"would not reduce it). Received: factor={factor}")
        self.factor = factor
        self.patience = _monitor.check_int(where, "patience", patience)
        self.verbose = verbose
        self.mode = _monitor.check_mode(where, mode)
        self.min_delta = _monitor.check_number(where, "min_delta", min_delta)
        self.cooldown = _monitor.check_int(where, "cooldown", cooldown)
        self.min_lr = _monitor.check_number(where, "min_lr", min_lr, low=0)
        self._reset()

    def _reset(self):
        self._maximize = _monitor.maximize(self.monitor, self.mode)
        self.best = -np.inf if self._maximize else np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def _improved(self, current):
        if self._maximize:
            return current > self.best + self.min_delta
        return current < self.best - self.min_delta

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = _monitor.monitor_value("Learning rate reduction", self.monitor, logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

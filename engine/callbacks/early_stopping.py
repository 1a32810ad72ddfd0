"""EarlyStopping: stop training when a monitored value has stopped improving (Keras 3's rules)."""
from . import _monitor
from .base import Callback


class EarlyStopping(Callback):
    """Stop fit() once `monitor` has not improved by more than `min_delta` for `patience` epochs.

    An epoch improves when its value beats the best so far by more than min_delta (lower is better for
    losses, higher for accuracies; see `mode`). With a `baseline`, training also stops if the value
    never gets past the baseline within `patience` epochs. Epochs before `start_from_epoch` are ignored
    (a warm-up). restore_best_weights=True puts back the weights of the best epoch when training ends
    (as Keras 3 does, also when patience never ran out).

        EarlyStopping(monitor='val_loss', patience=3, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        where = "EarlyStopping"
        self.monitor = _monitor.check_monitor(where, monitor)
        self.min_delta = abs(_monitor.check_number(where, "min_delta", min_delta))
        self.patience = _monitor.check_int(where, "patience", patience)
        self.verbose = verbose
        self.mode = _monitor.check_mode(where, mode)
        self.baseline = None if baseline is None else _monitor.check_number(where, "baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _monitor.check_int(where, "start_from_epoch", start_from_epoch)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if _monitor.maximize(self.monitor, self.mode):
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = _monitor.monitor_value("Early stopping", self.monitor, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()       # so there is always something to restore
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

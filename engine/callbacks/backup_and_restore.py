"""BackupAndRestore: resume an interrupted fit() where it stopped, bit for bit."""
import os

from .. import random, saving
from . import _monitor
from .base import Callback

BACKUP_FORMAT = "engine.backup"
CHECKPOINT_NAME = "latest.backup.zip"


class BackupAndRestore(Callback):
    """Keep one checkpoint of the training state in `backup_dir`, so a fit() that dies (an exception,
    a killed process) can be started again with the same call and continue from the last checkpoint.

    The checkpoint (backup_dir/latest.backup.zip, engine's zip of JSON and .npy arrays, written
    atomically) holds the weights, the optimizer state (iterations and slots), the index of the last
    finished epoch and the state of the engine's random generator. On on_train_begin an existing
    checkpoint is restored and fit() starts at the epoch after it; as the generator drives shuffling and
    dropout, the resumed run ends with exactly the weights of a run that was never interrupted.
    (Dropout layers built with their own `seed` keep their own generator, which is not saved.)

    save_freq: 'epoch' (exact resume), a number of batches (the checkpoint then holds mid-epoch weights;
        the interrupted epoch is run again from its start, as in Keras, so the resume is not exact), or
        False (never save; only restore).
    delete_checkpoint: remove the checkpoint when fit() ends normally (an exception keeps it).

        backup = BackupAndRestore('/tmp/backup')
        model.fit(x, y, epochs=10, callbacks=[backup])    # interrupted in epoch 6 ...
        model.fit(x, y, epochs=10, callbacks=[backup])    # ... continues with epoch 6 (from 0)
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        where = "BackupAndRestore"
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ValueError(f"{where}: expected `backup_dir`, a directory for the checkpoint. "
                             f"Received: backup_dir={backup_dir!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = _monitor.check_save_freq(where, save_freq, allow_false=True)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._checkpoint_path = os.path.join(self.backup_dir, CHECKPOINT_NAME)
        self._current_epoch = 0
        self._batches = _monitor.BatchCounter(self.save_freq)

    # ---- restoring
    def on_train_begin(self, logs=None):
        self._current_epoch = getattr(self.model, "_initial_epoch", 0)
        if os.path.exists(self._checkpoint_path):
            self._restore()

    def _restore(self):
        where = "BackupAndRestore"
        model = self.model
        state = saving.read_state(where, self._checkpoint_path, (BACKUP_FORMAT,))
        meta = state.metadata
        for key in ("epoch", "rng_state", "optimizer", "optimizer_arrays"):
            if key not in meta:
                state.fail(f"metadata.json has no {key!r}")
        if isinstance(meta["epoch"], bool) or not isinstance(meta["epoch"], int) or meta["epoch"] < -1:
            state.fail(f"metadata.json has epoch={meta['epoch']!r}; expected an int >= -1")
        previous = random.get_state()
        try:
            if not model.built:
                saving.build_from_shape(model, meta.get("build_shape"))
            state.check_weights(model)
            random.set_state(meta["rng_state"])              # ValueError for a bad state
            state.restore_optimizer(model)                   # checks everything before it changes anything
        except BaseException:
            random.set_state(previous)                       # a failed restore leaves the draws alone
            raise
        model.set_weights(state.weights)                     # shapes were checked: this cannot fail
        model._initial_epoch = int(meta["epoch"]) + 1

    # ---- saving
    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq in ("epoch", False):
            return
        if self._batches.due(batch):
            self._save(self._current_epoch - 1)             # the epoch in progress is run again on resume

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch)

    def _save(self, finished_epoch):
        os.makedirs(self.backup_dir, exist_ok=True)
        metadata = {"epoch": int(finished_epoch), "rng_state": random.get_state(),
                    "build_shape": saving.build_shape(self.model)}
        saving.write_state("BackupAndRestore", self._checkpoint_path, self.model, BACKUP_FORMAT, metadata=metadata)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        if os.path.exists(self._checkpoint_path):
            os.remove(self._checkpoint_path)
        try:
            os.rmdir(self.backup_dir)                        # only when nothing else is in it
        except OSError:
            pass

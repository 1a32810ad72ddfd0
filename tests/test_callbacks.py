"""engine.callbacks: Keras 3's callbacks, on small seeded regressions.

Monitored values are either real (a fit with validation data) or injected: a callback placed before
the one under test overwrites logs['val_loss'] with a fixed sequence, so the epoch at which a callback
acts is known exactly."""
import csv
import os
import warnings

import numpy as np
import pytest

import engine
from engine import saving
from engine.callbacks import (BackupAndRestore, Callback, CSVLogger, EarlyStopping, LambdaCallback, ModelCheckpoint,
                              ReduceLROnPlateau, TerminateOnNaN)
from engine.callbacks import _monitor
from engine.layers import Dense, Dropout, Input
from engine.models import Sequential
from engine.optimizers import SGD


def _data(n=64, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y


def _model(optimizer="adam", dropout=0.0, seed=0):
    engine.set_seed(seed)
    stack = [Input(shape=(4,)), Dense(8, activation="relu")]
    stack += [Dropout(dropout)] if dropout else []
    model = Sequential(stack + [Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


class Inject(Callback):
    """Overwrites logs[key] with values[epoch] at each epoch end (place it before the callback tested)."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key = list(values), key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    """The weights at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


class RaiseAt(Callback):
    """Raises at the end of epoch `epoch`: a crash in the middle of training."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"interrupted after epoch {epoch}")


def _fit(model, callbacks, epochs=10, **kwargs):
    x, y = _data()
    kwargs.setdefault("batch_size", 16)
    return model.fit(x, y, epochs=epochs, verbose=0, callbacks=callbacks, **kwargs)


def _same(a, b):
    return len(a) == len(b) and all(u.dtype == v.dtype and np.array_equal(u, v) for u, v in zip(a, b))


# --------------------------------------------------------------------------------------------- the hooks


def test_hook_order_for_one_fit():
    calls = []

    class Recorder(Callback):
        pass

    recorder = Recorder()
    for hook in ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
                 "on_train_batch_end", "on_test_begin", "on_test_end"]:
        setattr(recorder, hook, (lambda name: lambda *args, logs=None: calls.append((name,) + args))(hook))
    x, y = _data(n=40)
    _model().fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x[:8], y[:8]), callbacks=[recorder])
    per_epoch = lambda e: ([("on_epoch_begin", e)] + [c for b in range(3) for c in [("on_train_batch_begin", b),
                           ("on_train_batch_end", b)]] + [("on_test_begin",), ("on_test_end",), ("on_epoch_end", e)])
    stripped = [c[:2] if c[0].startswith(("on_epoch", "on_train_batch")) else c[:1] for c in calls]
    assert stripped == [("on_train_begin",)] + per_epoch(0) + per_epoch(1) + [("on_train_end",)]


def test_lambda_callback_gets_keras_arguments():
    seen = {"begin": [], "end": [], "batches": [], "train": []}
    callback = LambdaCallback(on_epoch_begin=lambda epoch, logs: seen["begin"].append(epoch),
                              on_epoch_end=lambda epoch, logs: seen["end"].append((epoch, sorted(logs))),
                              on_train_batch_end=lambda batch, logs: seen["batches"].append(batch),
                              on_train_begin=lambda logs: seen["train"].append("begin"),
                              on_train_end=lambda logs: seen["train"].append("end"),
                              on_test_begin=lambda logs: seen.setdefault("test", []).append(1),
                              note="an attribute")
    x, y = _data(n=32)
    _model().fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0, callbacks=[callback],
                 validation_split=0.25)
    assert seen["begin"] == [2, 3]
    assert seen["end"] == [(2, ["loss", "mae", "val_loss", "val_mae"]), (3, ["loss", "mae", "val_loss", "val_mae"])]
    assert seen["batches"] == [0, 1, 0, 1]                      # 24 training rows in batches of 16
    assert seen["train"] == ["begin", "end"] and seen["test"] == [1, 1]
    assert callback.note == "an attribute"
    with pytest.raises(TypeError, match="on_epoch_end"):
        LambdaCallback(on_epoch_end="not a function")


# --------------------------------------------------------------------------------------------- EarlyStopping


def test_early_stopping_stops_after_patience_epochs():
    stop = EarlyStopping(patience=2)
    history = _fit(_model(), [Inject([1.0, 0.8, 0.9, 0.85, 0.1, 0.1]), stop])
    assert history.epoch == [0, 1, 2, 3]                     # best at 1; 2 and 3 do not improve
    assert stop.stopped_epoch == 3 and stop.best == 0.8


def test_early_stopping_patience_zero_and_min_delta():
    history = _fit(_model(), [Inject([1.0, 0.95, 0.5]), EarlyStopping(patience=0)], epochs=3)
    assert history.epoch == [0, 1, 2]                        # every epoch improves; no stop before the end
    history = _fit(_model(), [Inject([1.0, 0.95, 0.5, 0.4]), EarlyStopping(min_delta=0.1, patience=1)])
    assert history.epoch == [0, 1]                           # 0.95 is not 0.1 better than 1.0


def test_early_stopping_mode_max_baseline_and_start_from_epoch():
    stop = EarlyStopping(monitor="val_accuracy", patience=1)          # 'auto' -> max
    history = _fit(_model(), [Inject([0.5, 0.6, 0.55, 0.9], key="val_accuracy"), stop])
    assert history.epoch == [0, 1, 2]
    history = _fit(_model(), [Inject([1.0, 1.1, 1.2, 1.3]), EarlyStopping(patience=2, baseline=0.5)])
    assert history.epoch == [0, 1]                            # never better than the baseline
    history = _fit(_model(), [Inject([5, 6, 7, 1.0, 2.0, 3.0]), EarlyStopping(patience=0, start_from_epoch=3)])
    assert history.epoch == [0, 1, 2, 3, 4]                   # epochs 0-2 ignored


def test_early_stopping_restores_the_best_weights_exactly():
    x, y = _data()
    model, snapshots = _model(), Snapshots()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=4, batch_size=16, verbose=0,
                        callbacks=[Inject([3.0, 1.0, 2.0, 2.5, 0.1]), snapshots, stop])
    assert history.epoch == [0, 1, 2, 3] and stop.best_epoch == 1
    assert _same(model.get_weights(), snapshots.weights[1])
    assert not _same(model.get_weights(), snapshots.weights[3])


def test_early_stopping_restores_real_best_epoch_without_stopping():
    x, y = _data()
    model, snapshots = _model(optimizer=SGD(learning_rate=0.15)), Snapshots()  # fast: val_loss goes back up
    stop = EarlyStopping(patience=100, restore_best_weights=True)
    history = model.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=6, batch_size=8, verbose=0,
                        callbacks=[snapshots, stop])
    best = int(np.argmin(history.history["val_loss"]))
    assert np.isfinite(history.history["val_loss"]).all() and best < 5
    assert stop.best_epoch == best
    assert _same(model.get_weights(), snapshots.weights[best])


def test_missing_monitor_warns_and_lists_the_keys(tmp_path):
    stop = EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="`val_loss` which is not available. Available metrics are: loss,mae"):
        history = _fit(_model(), [stop], epochs=3)
    assert history.epoch == [0, 1, 2]
    with pytest.warns(UserWarning, match="not available"):
        _fit(_model(), [ReduceLROnPlateau(patience=0)], epochs=1)
    with pytest.warns(UserWarning, match="not available"):
        _fit(_model(), [ModelCheckpoint(str(tmp_path / "unused.keras"), save_best_only=True)], epochs=1)
    assert os.listdir(tmp_path) == []


def test_monitor_direction_from_the_name():
    assert _monitor.maximize("val_accuracy", "auto") and _monitor.maximize("acc", "auto")
    assert _monitor.maximize("val_auc", "auto") and _monitor.maximize("categorical_accuracy", "auto")
    assert not _monitor.maximize("val_loss", "auto") and not _monitor.maximize("mae", "auto")
    assert _monitor.maximize("val_loss", "max") and not _monitor.maximize("val_accuracy", "min")


@pytest.mark.parametrize("make, match", [
    (lambda: EarlyStopping(mode="maximum"), r"expected mode in \('auto', 'min', 'max'\). Received: mode='maximum'"),
    (lambda: EarlyStopping(patience=-1), r"patience.*Received: patience=-1"),
    (lambda: EarlyStopping(monitor=""), "monitor"),
    (lambda: EarlyStopping(start_from_epoch=1.5), "start_from_epoch"),
    (lambda: ReduceLROnPlateau(factor=1.0), r"factor < 1.*Received: factor=1.0"),
    (lambda: ReduceLROnPlateau(factor=0), "factor"),
    (lambda: ReduceLROnPlateau(min_lr=-1), "min_lr"),
    (lambda: ReduceLROnPlateau(mode="up"), "mode"),
    (lambda: ModelCheckpoint("m.h5"), r"'\.keras'.*Received: filepath='m.h5'"),
    (lambda: ModelCheckpoint("m.weights.h5", save_weights_only=True), "not HDF5"),
    (lambda: ModelCheckpoint("m.keras", save_weights_only=True), r"'\.weights\.npz'"),
    (lambda: ModelCheckpoint("m.keras", save_freq="batch"), "save_freq"),
    (lambda: ModelCheckpoint("m.keras", mode="best"), "mode"),
    (lambda: CSVLogger("log.csv", separator=";;"), "separator"),
    (lambda: BackupAndRestore(""), "backup_dir"),
    (lambda: BackupAndRestore("/tmp/x", save_freq=0), "save_freq"),
])
def test_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --------------------------------------------------------------------------------------------- ModelCheckpoint


def test_checkpoint_save_best_only_writes_on_improvement(tmp_path):
    snapshots = Snapshots()
    values = [3.0, 2.0, 2.5, 1.0, 1.5]
    pattern = str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.keras")
    best = str(tmp_path / "best.keras")
    model = _model()
    _fit(model, [Inject(values), snapshots, ModelCheckpoint(pattern, save_best_only=True),
                 ModelCheckpoint(best, save_best_only=True)], epochs=5)
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "m-01-3.00.keras", "m-02-2.00.keras", "m-04-1.00.keras"]
    assert _same(saving.load_model(best).get_weights(), snapshots.weights[3])
    assert _same(saving.load_model(tmp_path / "m-02-2.00.keras").get_weights(), snapshots.weights[1])


def test_checkpoint_every_epoch_and_initial_threshold(tmp_path):
    _fit(_model(), [ModelCheckpoint(str(tmp_path / "all" / "e{epoch}.keras"))], epochs=3)
    assert sorted(os.listdir(tmp_path / "all")) == ["e1.keras", "e2.keras", "e3.keras"]    # directory created
    checkpoint = ModelCheckpoint(str(tmp_path / "t{epoch}.keras"), save_best_only=True, initial_value_threshold=1.2)
    _fit(_model(), [Inject([3.0, 2.0, 1.0, 1.1]), checkpoint], epochs=4)
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("t")) == ["t3.keras"]
    acc = ModelCheckpoint(str(tmp_path / "a{epoch}.keras"), monitor="val_accuracy", save_best_only=True)
    _fit(_model(), [Inject([0.5, 0.4, 0.7], key="val_accuracy"), acc], epochs=3)
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("a") and p != "all") == ["a1.keras", "a3.keras"]


def test_checkpoint_weights_only(tmp_path):
    model, snapshots = _model(), Snapshots()
    path = str(tmp_path / "w{epoch}.weights.npz")
    _fit(model, [snapshots, ModelCheckpoint(path, save_weights_only=True, monitor="loss")], epochs=2)
    assert sorted(os.listdir(tmp_path)) == ["w1.weights.npz", "w2.weights.npz"]
    other = _model(seed=5)
    other.build()
    other.load_weights(tmp_path / "w1.weights.npz")
    assert _same(other.get_weights(), snapshots.weights[0])


def test_checkpoint_save_freq_in_batches(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.keras"), save_freq=3)
    _fit(_model(), [checkpoint], epochs=2)                    # 4 batches per epoch: saves after 3, 6
    assert sorted(os.listdir(tmp_path)) == ["e1-b3.keras", "e2-b2.keras"]


def test_checkpoint_bad_format_field(tmp_path):
    with pytest.raises(KeyError, match="failed to format"):
        _fit(_model(), [ModelCheckpoint(str(tmp_path / "{val_acc:.2f}.keras"))], epochs=1)


# --------------------------------------------------------------------------------------------- TerminateOnNaN


def test_terminate_on_nan_stops_a_diverging_run(capsys):
    batches = []
    model = _model(optimizer=SGD(learning_rate=1e12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                  # overflow in NumPy
        history = _fit(model, [LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(logs["loss"])),
                               TerminateOnNaN()], epochs=5)
    assert history.epoch == [0]
    assert not np.isfinite(batches[-1]) and np.isfinite(batches[:-1]).all()
    assert "Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_leaves_a_healthy_run_alone():
    assert _fit(_model(), [TerminateOnNaN()], epochs=3).epoch == [0, 1, 2]


# --------------------------------------------------------------------------------------------- ReduceLROnPlateau


def test_reduce_lr_on_plateau_after_patience_down_to_min_lr():
    model = _model(optimizer=SGD(learning_rate=0.1))
    reduce = ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02, min_delta=0.0)
    history = _fit(model, [Inject([1.0] * 9), reduce], epochs=9)
    # best at epoch 0; after 2 more flat epochs the rate halves: 0.1 -> 0.05 -> 0.025 -> 0.02 (min_lr)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02])
    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_reduce_lr_cooldown_and_improvement():
    model = _model(optimizer=SGD(learning_rate=0.01))
    reduce = ReduceLROnPlateau(factor=0.1, patience=1, cooldown=2, min_delta=0.0)
    history = _fit(model, [Inject([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6]), reduce], epochs=7)
    # Keras' counting: cut at the end of epoch 1 (cooldown 2); epoch 2 spends the cooldown down to 1, epoch 3
    # to 0 and counts again: cut; epochs 4 (cooldown) and 5 (improves) keep the rate; epoch 6 cuts again.
    # The logged rate is the one the epoch trained with.
    assert history.history["learning_rate"] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4])
    assert model.optimizer.learning_rate == pytest.approx(1e-5)


# --------------------------------------------------------------------------------------------- CSVLogger


def test_csv_logger_writes_a_header_and_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    x, y = _data()
    history = _model().fit(x, y, epochs=3, batch_size=16, verbose=0, validation_split=0.25,
                           callbacks=[CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    assert [float(row[1]) for row in rows[1:]] == history.history["loss"]
    assert [float(row[3]) for row in rows[1:]] == history.history["val_loss"]

    _model().fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25,
                 callbacks=[CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 3 + 2 and rows.count(rows[0]) == 1
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path)])          # append=False: start over
    assert len(path.read_text().splitlines()) == 2


def test_csv_logger_separator_and_missing_validation(tmp_path):
    path = tmp_path / "log.csv"
    _fit(_model(), [CSVLogger(path, separator=";")], epochs=2)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch;loss;mae;val_loss;val_mae"                   # as Keras: val_ columns, 'NA'
    assert lines[1].startswith("0;") and lines[1].endswith(";NA;NA") and len(lines) == 3


# --------------------------------------------------------------------------------------------- BackupAndRestore


def _backup_run(backup_dir, interrupt_at=None, seed=11, epochs=6, model=None):
    """A seeded fit (shuffle, dropout, Adam) with BackupAndRestore; optionally interrupted."""
    x, y = _data(n=80)
    model = model or _model(dropout=0.3, seed=seed)
    callbacks = [BackupAndRestore(backup_dir)] + ([RaiseAt(interrupt_at)] if interrupt_at is not None else [])
    history = model.fit(x, y, epochs=epochs, batch_size=16, shuffle=True, verbose=0, callbacks=callbacks,
                        validation_split=0.2)
    return model, history


def test_backup_and_restore_resumes_bitwise(tmp_path):
    reference = _model(dropout=0.3, seed=11)
    x, y = _data(n=80)
    reference.fit(x, y, epochs=6, batch_size=16, shuffle=True, verbose=0, validation_split=0.2)   # no callbacks

    backup_dir = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        _backup_run(backup_dir, interrupt_at=2)
    assert os.listdir(backup_dir) == ["latest.backup.zip"]

    engine.set_seed(12345)                       # a new process: another seed, a fresh unbuilt model
    fresh = Sequential([Dense(8, activation="relu"), Dropout(0.3), Dense(1)])
    fresh.compile(optimizer="adam", loss="mse", metrics=["mae"])
    assert not fresh.built                       # the checkpoint's input shape builds it
    resumed, history = _backup_run(backup_dir, model=fresh)
    assert history.epoch == [3, 4, 5]
    assert _same(resumed.get_weights(), reference.get_weights())
    assert resumed.optimizer.iterations == reference.optimizer.iterations
    assert not os.path.exists(backup_dir)       # deleted after a normal end


def test_backup_and_restore_twice_interrupted_and_same_model(tmp_path):
    reference, _ = _backup_run(str(tmp_path / "ref"))
    backup_dir = str(tmp_path / "backup")
    model = _model(dropout=0.3, seed=11)
    for stop in (0, 3):
        with pytest.raises(KeyboardInterrupt):
            _backup_run(backup_dir, interrupt_at=stop, model=model)
    resumed, history = _backup_run(backup_dir, model=model)
    assert history.epoch == [4, 5]
    assert _same(resumed.get_weights(), reference.get_weights())


def test_backup_keeps_the_checkpoint_when_asked(tmp_path):
    backup_dir = tmp_path / "backup"
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[BackupAndRestore(backup_dir, delete_checkpoint=False)])
    assert os.listdir(backup_dir) == ["latest.backup.zip"]
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup_dir)])
    assert history.epoch == [2]                  # continues after the saved epoch 1
    assert not backup_dir.exists()


def test_backup_with_batch_save_freq_and_a_damaged_checkpoint(tmp_path):
    backup_dir = tmp_path / "backup"
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        _fit(model, [BackupAndRestore(backup_dir, save_freq=2), RaiseAt(1)], epochs=4)
    history = _fit(model, [BackupAndRestore(backup_dir, save_freq=2)], epochs=4)
    assert history.epoch == [1, 2, 3]            # the interrupted epoch 1 runs again
    backup_dir.mkdir()
    (backup_dir / "latest.backup.zip").write_bytes(b"not a zip")
    before = model.get_weights()
    with pytest.raises(ValueError, match="is not an engine backup file"):
        _fit(model, [BackupAndRestore(backup_dir)], epochs=4)
    assert _same(model.get_weights(), before)

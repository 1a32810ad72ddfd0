"""Files saved by engine 0.1.0, before the class registry moved to engine/serialization.py, still load and give
the same numbers. The files in tests/data were written by that version (a Sequential and a functional model,
compiled and trained a little; a weights file; a BackupAndRestore checkpoint)."""
import os
import shutil

import numpy as np
import pytest

from engine import callbacks, layers, models, saving

DATA = os.path.join(os.path.dirname(__file__), "data")


def _data(name):
    return os.path.join(DATA, name)


def test_sequential_saved_by_0_1_0_loads_with_its_optimizer():
    model = saving.load_model(_data("sequential_v0_1_0.keras"))
    x = np.random.default_rng(0).standard_normal((32, 5)).astype("f4")
    np.testing.assert_array_equal(model.predict(x[:4], verbose=0), np.load(_data("sequential_v0_1_0_predict.npy")))
    assert model.compiled and type(model.optimizer).__name__ == "Adam"
    assert int(model.optimizer.iterations) == 8                    # 2 epochs of 4 batches, restored


def test_functional_saved_by_0_1_0_loads():
    model = saving.load_model(_data("functional_v0_1_0.keras"))
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "LSTM", "Dense", "Add", "Flatten",
                                                                 "LayerNormalization", "Dense"]
    xs = np.random.default_rng(1).standard_normal((8, 6, 3)).astype("f4")
    np.testing.assert_array_equal(model.predict(xs[:2], verbose=0), np.load(_data("functional_v0_1_0_predict.npy")))


def test_weights_saved_by_0_1_0_load_into_the_same_architecture():
    model = saving.load_model(_data("functional_v0_1_0.keras"))
    expected = model.get_weights()
    model.set_weights([np.zeros_like(w) for w in expected])
    model.load_weights(_data("functional_v0_1_0.weights.npz"))
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(got, want)


def test_backup_written_by_0_1_0_resumes_training(tmp_path):
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    shutil.copy(_data("backup_v0_1_0.backup.zip"), backup_dir / "latest.backup.zip")
    model = models.Sequential([layers.Input(shape=(5,)), layers.Dense(3, activation="tanh"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((32, 5)).astype("f4")
    history = model.fit(x, x[:, :1] * 0.5, epochs=4, batch_size=8, verbose=0,
                        callbacks=[callbacks.BackupAndRestore(str(backup_dir))])
    assert len(history.history["loss"]) == 2                       # epochs 2 and 3: 0 and 1 were in the file
    weights = np.concatenate([w.ravel() for w in model.get_weights()])
    np.testing.assert_array_equal(weights, np.load(_data("backup_v0_1_0_weights_after_4_epochs.npy")))


def test_a_damaged_old_file_is_still_rejected_by_name(tmp_path):
    with open(_data("sequential_v0_1_0.keras"), "rb") as f:
        data = f.read()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.keras.*is not an engine model file"):
        saving.load_model(path)

"""engine.saving: '.keras' model files and '.weights.npz' weight files (zip of JSON + .npy, no pickle).

Round trips must be exact (predict output, weights, optimizer state: continued training is bitwise
the same as without saving), writes atomic, and damaged files a ValueError that leaves the model alone."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import engine
from engine import initializers, layers, metrics, random, regularizers, saving
from engine.layers import Dense, Dropout, Input, Layer
from engine.models import Model, Sequential
from engine.optimizers import SGD, Adam


def _data(n=96, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y


def _model(d=4, hidden=8, dropout=0.2, compile=True, optimizer="adam"):
    model = Sequential([Input(shape=(d,)), Dense(hidden, activation="relu"), Dropout(dropout), Dense(1)])
    if compile:
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


def _trained(epochs=2, seed=3, **kwargs):
    engine.set_seed(seed)
    x, y = _data()
    model = _model(**kwargs)
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model, x, y


def _assert_weights_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        assert u.dtype == v.dtype and np.array_equal(u, v)


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


# --------------------------------------------------------------------------------------------- round trips


def test_model_round_trip_gives_identical_predictions(tmp_path):
    model, x, _ = _trained()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = saving.load_model(path)
    assert type(loaded) is Sequential and loaded is not model
    assert [type(layer).__name__ for layer in loaded.layers] == ["Dense", "Dropout", "Dense"]
    assert loaded.get_config() == model.get_config()
    _assert_weights_equal(loaded, model)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_file_is_a_zip_of_json_and_npy_without_pickle(tmp_path):
    model, _, _ = _trained()
    path = tmp_path / "model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert {"metadata.json", "config.json"} <= set(names)
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zf.infolist())
        metadata = json.loads(zf.read("metadata.json"))
        config = json.loads(zf.read("config.json"))
        weights = [np.load(io.BytesIO(zf.read(f"weights/{i:05d}.npy")), allow_pickle=False)
                   for i in range(len(model.weights))]
    assert metadata["format"] == "engine.model" and metadata["format_version"] == 1
    assert metadata["engine_version"] == engine.__version__
    assert config["class_name"] == "Sequential" and config["build_shape"] == [None, 4]
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    for w, a in zip(model.weights, weights):
        assert np.array_equal(w.data, a)
    assert not any(name.endswith((".pkl", ".pickle")) for name in names)


def test_same_model_gives_the_same_bytes(tmp_path):
    model, _, _ = _trained()
    model.save(tmp_path / "a.keras")
    model.save(tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()


def test_continued_training_after_load_is_bitwise_identical(tmp_path):
    model, x, y = _trained(epochs=3)
    path = tmp_path / "model.keras"
    model.save(path)
    state = random.get_state()
    history_a = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history       # shuffle + dropout draw

    random.set_state(state)
    loaded = saving.load_model(path)
    assert random.get_state() == state, "load_model must not consume the engine's random draws"
    history_b = loaded.fit(x, y, epochs=2, batch_size=16, verbose=0).history
    _assert_weights_equal(loaded, model)
    assert history_a == history_b
    assert loaded.optimizer.iterations == model.optimizer.iterations


def test_compile_config_is_restored(tmp_path):
    engine.set_seed(0)
    x, y = _data()
    model = _model(compile=False)
    model.compile(optimizer=SGD(learning_rate=0.0123, momentum=0.5), loss="mae",
                  metrics=["mse", "mae", metrics.RootMeanSquaredError(name="rmse")])
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, validation_split=0.25)
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras")
    assert loaded.compiled
    assert type(loaded.optimizer) is SGD
    assert loaded.optimizer.learning_rate == pytest.approx(0.0123)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.loss.name == model.loss.name == "mean_absolute_error"
    history = loaded.fit(x, y, epochs=1, batch_size=32, verbose=0, validation_split=0.25).history
    assert sorted(history) == sorted(model.history.history) == ["loss", "mae", "mse", "rmse", "val_loss", "val_mae",
                                                                 "val_mse", "val_rmse"]


def test_compile_false_and_uncompiled_models(tmp_path):
    model, x, _ = _trained()
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras", compile=False)
    assert not loaded.compiled and loaded.optimizer is None
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    plain = _model(compile=False)
    plain.build()
    plain.save(tmp_path / "plain.keras")
    again = saving.load_model(tmp_path / "plain.keras")
    assert not again.compiled
    _assert_weights_equal(again, plain)


def test_models_load_model_is_the_same_function():
    from engine import models
    if not hasattr(models, "load_model"):
        pytest.skip("engine.models.load_model is not exported yet (add `from .saving import load_model`)")
    assert models.load_model is saving.load_model


def test_save_weights_and_load_weights_round_trip(tmp_path):
    model, x, _ = _trained()
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    engine.set_seed(99)
    other = _model()
    other.build()
    assert not np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.load_weights(path)
    _assert_weights_equal(other, model)
    assert np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    with np.load(path, allow_pickle=False) as npz:            # also readable as an .npz archive
        assert np.array_equal(npz["weights/00000"], model.weights[0].data)


def test_load_weights_from_a_model_file(tmp_path):
    model, _, _ = _trained()
    model.save(tmp_path / "m.keras")
    other = _model()
    other.build()
    other.load_weights(tmp_path / "m.keras")
    _assert_weights_equal(other, model)


def test_load_weights_needs_a_built_model(tmp_path):
    model, _, _ = _trained()
    model.save_weights(tmp_path / "w.weights.npz")
    unbuilt = Sequential([Dense(8, activation="relu"), Dropout(0.2), Dense(1)])     # no input shape yet
    assert not unbuilt.built
    with pytest.raises(ValueError, match="not built"):
        unbuilt.load_weights(tmp_path / "w.weights.npz")


# --------------------------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("kind", ["model", "weights"])
def test_failed_save_leaves_the_old_file_untouched(tmp_path, monkeypatch, kind):
    model, _, _ = _trained()
    path = tmp_path / ("m.keras" if kind == "model" else "m.weights.npz")
    save = model.save if kind == "model" else model.save_weights
    save(path)
    before = path.read_bytes()
    for w in model.weights:
        w.data += 1.0
    real_save, calls = np.save, []

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full (simulated)")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        save(path)
    monkeypatch.undo()
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name], "the temporary file must be removed"


def test_failed_first_save_creates_no_file(tmp_path, monkeypatch):
    model, _, _ = _trained()
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("simulated")))
    with pytest.raises(OSError):
        model.save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    model, _, _ = _trained()
    model.save(tmp_path / "m.keras")
    before = (tmp_path / "m.keras").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(tmp_path / "m.keras", overwrite=False)
    model.save_weights(tmp_path / "m.weights.npz")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save_weights(tmp_path / "m.weights.npz", overwrite=False)
    assert (tmp_path / "m.keras").read_bytes() == before
    model.save(tmp_path / "new.keras", overwrite=False)          # a new name is fine


def test_save_into_a_missing_directory(tmp_path):
    model, _, _ = _trained()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "nowhere" / "m.keras")


# --------------------------------------------------------------------------------------------- bad names and files


def test_wrong_suffixes(tmp_path):
    model, _, _ = _trained()
    with pytest.raises(ValueError, match=r"expected a model file ending in '\.keras'"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="not HDF5"):
        model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match=r"'\.weights\.npz'"):
        model.save_weights(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="is a weights file"):
        saving.load_model(tmp_path / "m.weights.npz")
    with pytest.raises(ValueError, match=r"Received: filepath="):
        model.load_weights(tmp_path / "m.txt")
    with pytest.raises(TypeError, match="filepath"):
        model.save(42)
    assert os.listdir(tmp_path) == []


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        saving.load_model(tmp_path / "missing.keras")
    model = _model()
    model.build()
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "missing.weights.npz")


def _damaged_files(tmp_path, good):
    """name -> (bytes or members, the message expected)."""
    data = good.read_bytes()
    good_meta = json.loads(zipfile.ZipFile(good).read("metadata.json"))
    with zipfile.ZipFile(good) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    yield "truncated", data[: len(data) // 2], "not a zip archive"
    yield "random", np.random.default_rng(0).bytes(2000), "not a zip archive"
    yield "empty", b"", "not a zip archive"
    yield "no_metadata", {"config.json": b"{}"}, "'metadata.json' is missing"
    yield "bad_json", {"metadata.json": b"{not json"}, "not valid JSON"
    yield "other_format", {"metadata.json": json.dumps({"format": "keras", "format_version": 1})}, "format='keras'"
    yield "newer_version", {"metadata.json": json.dumps({**good_meta, "format_version": 99})}, "format_version=99"
    without_weight = {k: v for k, v in members.items() if k != "weights/00001.npy"}
    yield "missing_weight", without_weight, "'weights/00001.npy' is missing"
    garbage = dict(members, **{"weights/00000.npy": b"\x93NUMPY garbage"})
    yield "bad_array", garbage, "not a readable .npy array"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    pickled = dict(members, **{"weights/00000.npy": buffer.getvalue()})
    yield "pickled_array", pickled, "not a readable .npy array"


@pytest.mark.parametrize("loader", ["load_model", "load_weights"])
def test_damaged_files_raise_value_error_and_change_nothing(tmp_path, loader):
    model, x, _ = _trained()
    good = tmp_path / "good.keras"
    model.save(good)
    target = _model()
    target.build()
    before = target.get_weights()
    for name, content, message in _damaged_files(tmp_path, good):
        path = tmp_path / f"{name}.keras"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            _write_zip(path, content)
        with pytest.raises(ValueError, match="is not an engine model") as info:
            saving.load_model(path) if loader == "load_model" else target.load_weights(path)
        assert message in str(info.value), (name, str(info.value))
        for a, b in zip(before, target.get_weights()):
            assert np.array_equal(a, b), f"{name}: the model changed"


def test_weights_of_another_architecture(tmp_path):
    model, _, _ = _trained()                               # Dense(8) hidden: 4 weights
    model.save_weights(tmp_path / "w.weights.npz")
    wider = _model(hidden=5)
    wider.build()
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r"shape \(4, 8\) for weight .*has shape \(4, 5\)"):
        wider.load_weights(tmp_path / "w.weights.npz")
    deeper = Sequential([Input(shape=(4,)), Dense(8), Dense(8), Dense(1)])
    deeper.build()
    with pytest.raises(ValueError, match="was saved from a model with 4 weights; this model has 6"):
        deeper.load_weights(tmp_path / "w.weights.npz")
    for a, b in zip(before, wider.get_weights()):
        assert np.array_equal(a, b)


def test_model_file_with_weights_of_the_wrong_shape(tmp_path):
    model, _, _ = _trained()
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 3), np.float32))
    members["weights/00000.npy"] = buffer.getvalue()
    _write_zip(tmp_path / "bad.keras", members)
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        saving.load_model(tmp_path / "bad.keras")


# --------------------------------------------------------------------------------------------- custom classes


class Scale(Layer):
    """y = x * alpha, with a trainable alpha per feature."""

    def __init__(self, init=2.0, **kwargs):
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, input_shape):
        self.alpha = self.add_weight((input_shape[-1],), initializers.Constant(self.init), name="alpha")

    def call(self, inputs):
        return inputs * self.alpha

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "init": self.init}


@saving.register_serializable(name="RegisteredShift")
class Shift(Layer):
    def __init__(self, offset=1.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = float(offset)

    def call(self, inputs):
        return inputs + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


class TwoLayer(Model):
    """A subclassed model."""

    def __init__(self, units=6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = Dense(units, activation="tanh")
        self.out = Dense(1)

    def call(self, x, training=None):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_custom_layer_via_custom_objects(tmp_path):
    engine.set_seed(0)
    x, y = _data()
    model = Sequential([Input(shape=(4,)), Scale(1.5), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"unknown class 'Scale'.*custom_objects"):
        saving.load_model(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras", custom_objects={"Scale": Scale})
    assert isinstance(loaded.layers[0], Scale) and loaded.layers[0].init == 1.5
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_custom_layer_via_register_serializable(tmp_path):
    engine.set_seed(0)
    x, _ = _data()
    model = Sequential([Input(shape=(4,)), Shift(0.25), Dense(2)])
    model.build()
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is Shift and loaded.layers[0].offset == 0.25
    assert saving.get_registered_object("RegisteredShift") is Shift
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_subclassed_model_round_trip(tmp_path):
    engine.set_seed(0)
    x, y = _data()
    model = TwoLayer(units=5)
    model.compile(optimizer=Adam(learning_rate=0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"unknown class 'TwoLayer'.*custom_objects"):
        saving.load_model(tmp_path / "m.keras")
    state = random.get_state()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    random.set_state(state)
    loaded = saving.load_model(tmp_path / "m.keras", custom_objects={"TwoLayer": TwoLayer})
    assert type(loaded) is TwoLayer and loaded.units == 5
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    _assert_weights_equal(loaded, model)


def test_custom_loss_function_needs_custom_objects(tmp_path):
    def my_loss(y_true, y_pred):
        return engine.ops.mean((y_pred - y_true) ** 2, axis=-1)

    engine.set_seed(0)
    x, y = _data()
    model = _model(compile=False)
    model.compile(optimizer="sgd", loss=my_loss)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="custom loss 'my_loss'.*custom_objects"):
        saving.load_model(tmp_path / "m.keras")
    assert not saving.load_model(tmp_path / "m.keras", compile=False).compiled
    loaded = saving.load_model(tmp_path / "m.keras", custom_objects={"my_loss": my_loss})
    assert loaded.loss.fn is my_loss


def test_register_serializable_arguments():
    with pytest.raises(ValueError, match="name"):
        saving.register_serializable(name="")
    with pytest.raises(TypeError, match="custom_objects"):
        saving.load_model("m.keras", custom_objects=[Scale])


# --------------------------------------------------------------------------------------------- configs


LAYERS = [
    (Dense, dict(units=3, activation="relu", kernel_initializer="he_normal", bias_initializer="ones",
                 kernel_regularizer=regularizers.L2(0.01), bias_regularizer="l1", activity_regularizer="l1_l2")),
    (Dense, dict(units=2, use_bias=False, kernel_initializer=initializers.RandomNormal(0.0, 0.1, seed=4))),
    (layers.Activation, dict(activation="tanh")),
    (layers.ReLU, dict(max_value=6.0, negative_slope=0.1, threshold=0.5)),
    (layers.LeakyReLU, dict(negative_slope=0.2)),
    (layers.Softmax, dict(axis=-1)),
    (Dropout, dict(rate=0.3, noise_shape=[None, 1], seed=7)),
    (layers.Flatten, dict()),
    (layers.InputLayer, dict(shape=(4,))),
]


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=[f"{c.__name__}{i}" for i, (c, _) in enumerate(LAYERS)])
def test_layer_config_round_trips_through_json(cls, kwargs):
    layer = cls(**kwargs)
    config = json.loads(json.dumps(layer.get_config()))
    again = cls.from_config(config)
    assert type(again) is cls
    assert json.loads(json.dumps(again.get_config())) == config


def test_regularizers_and_initializers_survive_a_save(tmp_path):
    engine.set_seed(0)
    x, y = _data()
    model = Sequential([Input(shape=(4,)), Dense(3, kernel_initializer="he_normal", kernel_regularizer="l2",
                                                 activity_regularizer=regularizers.L1(0.02)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras")
    dense = loaded.layers[0]
    assert type(dense.kernel_regularizer) is regularizers.L2
    assert type(dense.activity_regularizer) is regularizers.L1 and dense.activity_regularizer.l1 == \
        pytest.approx(0.02)
    assert type(dense.kernel_initializer) is initializers.HeNormal
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)    # penalties included

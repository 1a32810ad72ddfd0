"""engine.serialization: the registry filled as classes are defined, custom_object_scope, build configs, and
the one lookup every by-name option uses (so their errors read the same)."""
import numpy as np
import pytest

from engine import (activations, initializers, layers, losses, metrics, models, optimizers, regularizers, saving,
                    serialization)


def test_every_public_layer_class_is_registered_by_its_definition():
    registered = serialization.builtin_classes("layer")
    for name in layers.__all__:
        obj = getattr(layers, name)
        if isinstance(obj, type):
            assert registered.get(name) is obj, name
    assert registered["Sequential"] is models.Sequential and registered["Model"] is models.Model
    assert "Functional" in registered
    assert not any(name.startswith("_") for name in registered)             # private bases stay out


def test_a_user_class_is_not_builtin_and_needs_custom_objects_or_a_scope(tmp_path):
    class Twice(layers.Layer):
        def call(self, x):
            return x * 2.0

    assert "Twice" not in serialization.builtin_classes("layer")
    model = models.Sequential([layers.Input(shape=(3,)), Twice(), layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"load_model: unknown class 'Twice'.*custom_objects"):
        saving.load_model(tmp_path / "m.keras")
    with saving.custom_object_scope({"Twice": Twice}):
        loaded = saving.load_model(tmp_path / "m.keras")            # found inside the Sequential, by the scope
    x = np.ones((2, 3), "f4")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="unknown class 'Twice'"):
        saving.load_model(tmp_path / "m.keras")                     # the scope ended with its block


def test_custom_object_scope_nests_and_rejects_a_non_dict():
    inner, outer = object(), object()
    with serialization.custom_object_scope({"a": outer, "b": outer}):
        with serialization.custom_object_scope({"a": inner}):
            assert serialization.get_registered_object("a") is inner
            assert serialization.get_registered_object("b") is outer
        assert serialization.get_registered_object("a") is outer
    assert serialization.get_registered_object("a") is None
    with pytest.raises(TypeError, match="custom_object_scope: expected a dict"):
        with serialization.custom_object_scope([inner]):
            pass


def test_an_alias_in_a_config_finds_its_class():
    layer = serialization.deserialize({"class_name": "MaxPool2D", "config": {"pool_size": 2}})
    assert type(layer) is layers.MaxPooling2D


def test_build_config_round_trip():
    model = models.Sequential([layers.Dense(4), layers.Dense(1)])
    assert model.get_build_config() == {"input_shape": None}
    model.build((None, 5))
    again = models.Sequential.from_config(model.get_config())
    again.build_from_config({"input_shape": (None, 5)})
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    dense = layers.Dense(3)
    dense.build_from_config({"input_shape": (None, 7)})
    assert dense.kernel.shape == (7, 3)


def test_snake_case_is_keras_rule():
    assert [serialization.snake_case(n) for n in ("Dense", "ReLU", "BatchNormalization", "GRU", "LSTMCell")] == \
        ["dense", "re_lu", "batch_normalization", "gru", "lstm_cell"]


@pytest.mark.parametrize("get, argument", [
    (activations.get, "activation"), (initializers.get, "initializer"), (regularizers.get, "regularizer"),
    (losses.get, "loss"), (metrics.get, "metric"), (optimizers.get, "identifier")],
    ids=["activations", "initializers", "regularizers", "losses", "metrics", "optimizers"])
def test_every_option_library_words_an_unknown_name_the_same_way(get, argument):
    library = get.__module__.split(".")[1]
    with pytest.raises(ValueError, match=rf"^{library}\.get: expected one of \[.+\](?: \(any case\))?, .+\. "
                                         rf"Received: {argument}='nope'$"):
        get("nope")


def test_a_config_dict_names_a_class_in_each_library_that_has_classes():
    assert type(initializers.get({"class_name": "Constant", "config": {"value": 2.0}})) is initializers.Constant
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.5}}).l2 == 0.5
    assert type(losses.get({"class_name": "Huber", "config": {"delta": 2.0}})) is losses.Huber
    assert type(optimizers.get({"class_name": "adam", "config": {}})) is optimizers.Adam

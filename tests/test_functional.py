"""The functional API and the merge layers: Input and KerasTensor shapes, residual connections with Add and
`+`, several inputs and outputs, shared and nested layers; fit / evaluate / predict / summary / save / load on
a functional model; Sequential's Input still works; merge layers vs NumPy; bad graphs and bad input."""
import re

import numpy as np
import pytest

import engine
from engine import layers
from engine.functional import Functional, KerasTensor
from engine.layers import (Add, Average, Concatenate, Dense, Dropout, Embedding, Input, InputLayer, LayerNormalization,
                           Maximum, Minimum, Multiply, Subtract)
from engine.models import Model, Sequential, load_model

from checks import random_f32


def residual_model(d=6, seed=0):
    engine.set_seed(seed)
    inputs = Input(shape=(d,), name="features")
    h = Dense(d, activation="relu")(inputs)
    x = Add()([inputs, h])                                        # the residual connection
    x = LayerNormalization()(x)
    return Model(inputs, Dense(1)(x), name="residual")


# ------------------------------------------------------------------------------------------ symbolic tensors

def test_input_is_an_input_layer_with_a_symbolic_output():
    inputs = Input(shape=(None, 4), dtype="int32", name="tokens")
    assert isinstance(inputs, InputLayer) and inputs.shape == (None, 4)            # Sequential keeps using it
    out = inputs.output
    assert isinstance(out, KerasTensor) and out.shape == (None, None, 4) and out.dtype == "int32"
    assert "tokens" in repr(out)
    with pytest.raises(TypeError, match="a symbolic tensor has no values"):
        np.asarray(out)


def test_layer_calls_record_shapes_with_unknown_sizes():
    tokens = Input(shape=(None,), dtype="int64")
    x = Embedding(10, 4)(tokens)
    assert x.shape == (None, None, 4)                             # the sequence length stays unknown
    y = Dense(3)(x)
    assert y.shape == (None, None, 3) and y.node.layer.units == 3
    z = layers.Flatten()(Input(shape=(2, 3)))
    assert z.shape == (None, 6)
    with pytest.raises(ValueError, match="Dense 'dense.*': expected an input of shape .* with a known feature size"):
        Dense(2)(Input(shape=(3, None)))


def test_plus_minus_times_become_merge_layers():
    a, b = Input(shape=(3,)), Input(shape=(3,))
    for out, cls in ((a + b, Add), (a - b, Subtract), (a * b, Multiply), (Dense(3)(a) + b, Add)):
        assert isinstance(out.node.layer, cls)
    with pytest.raises(TypeError, match=re.escape("`+` joins two symbolic tensors")):
        a.output + 1.0


# ------------------------------------------------------------------------------------------ a residual model

def test_residual_model_trains_and_round_trips_through_save(tmp_path):
    model = residual_model()
    assert isinstance(model, Functional) and type(model).__name__ == "Functional"
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Add", "LayerNormalization",
                                                               "Dense"]
    x = random_f32(128, 6, seed=1)
    y = (x[:, :1] * 2 + np.abs(x[:, 1:2])).astype(np.float32)
    model.compile(optimizer=engine.optimizers.Adam(learning_rate=1e-2), loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=40, batch_size=16, validation_split=0.25, verbose=0).history
    assert history["loss"][-1] < 0.1 * history["loss"][0] and "val_mae" in history
    assert model.evaluate(x, y, verbose=0)[0] < 0.3 * history["loss"][0]
    path = tmp_path / "residual.keras"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded).__name__ == "Functional" and loaded.name == "residual"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)               # optimizer state came along
    for a, b, c in zip(model.get_weights(), loaded.get_weights(), before):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_summary_lists_the_graph(capsys):
    residual_model().summary()
    out = capsys.readouterr().out
    assert 'Model: "residual"' in out and "features (InputLayer)" in out and "add" in out
    assert "│ (LayerNormalization)" in out                           # a long type goes on its own line
    assert "Total params: 61" in out                              # 6*6+6 + 2*6 + 6+1


def test_config_round_trip_rebuilds_the_same_graph():
    model = residual_model()
    config = model.get_config()
    clone = Functional.from_config(config)
    assert clone.get_config()["nodes"] == config["nodes"]
    clone.set_weights(model.get_weights())
    x = random_f32(5, 6)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


# ------------------------------------------------------------------------------------------ graphs

def test_two_inputs_two_branches_shared_layer_and_nested_sequential():
    engine.set_seed(3)
    left, right = Input(shape=(4,), name="left"), Input(shape=(5,), name="right")
    shared = Dense(3, name="shared")
    tower = Sequential([Dense(4, activation="tanh"), Dense(4)], name="tower")
    a = shared(Dense(6)(left))
    b = shared(Dense(6)(right))                                   # the same weights on both branches
    merged = Concatenate()([a, b, tower(left)])
    model = Model([left, right], Dense(1)(merged))
    assert merged.shape == (None, 10)
    assert sum(layer is shared for layer in model.layers) == 1
    xl, xr = random_f32(64, 4, seed=1), random_f32(64, 5, seed=2)
    y = (xl.sum(1, keepdims=True) - xr[:, :1]).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit([xl, xr], y, epochs=30, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.3 * history[0]
    assert model.predict([xl, xr], verbose=0).shape == (64, 1)
    assert model.predict_on_batch([xl[:3], xr[:3]]).shape == (3, 1)
    assert np.isfinite(model.train_on_batch([xl[:8], xr[:8]], y[:8]))
    clone = Functional.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict([xl, xr], verbose=0), model.predict([xl, xr], verbose=0), rtol=1e-6)


def test_a_functional_model_is_a_layer_of_another():
    inner = residual_model(d=3)
    outer_in = Input(shape=(3,))
    model = Model(outer_in, Dense(2)(inner(outer_in)))
    assert model.predict(random_f32(4, 3), verbose=0).shape == (4, 2)
    assert len(model.weights) == len(inner.weights) + 2


def test_several_outputs_and_dropout_follow_training():
    engine.set_seed(1)
    inputs = Input(shape=(8,))
    d = Dropout(0.5)(inputs)
    model = Model(inputs, [Dense(2)(d), Dense(3)(inputs)])
    x = random_f32(4, 8)
    first, second = model(x)
    assert first.shape == (4, 2) and second.shape == (4, 3)
    np.testing.assert_array_equal(model(x, training=False)[0].numpy(), model(x, training=False)[0].numpy())
    assert not np.array_equal(model(x, training=True)[0].numpy(), model(x, training=False)[0].numpy())
    assert model.compute_output_shape((None, 8)) == [(None, 2), (None, 3)]
    predicted = model.predict(x, verbose=0)
    assert [p.shape for p in predicted] == [(4, 2), (4, 3)]
    np.testing.assert_allclose(predicted[1], model(x)[1].numpy(), rtol=1e-6)
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="fit: training needs one loss per output"):
        model.fit(x, [np.zeros((4, 2)), np.zeros((4, 3))], verbose=0)


def test_embedding_masks_flow_through_a_functional_graph():
    tokens = Input(shape=(None,), dtype="int64")
    x = Embedding(9, 4, mask_zero=True)(tokens)
    y = Add()([x, x])
    model = Model(tokens, y)
    out = model(np.array([[1, 2, 0]]))
    np.testing.assert_array_equal(layers.base.get_mask(out), [[True, True, False]])


# ------------------------------------------------------------------------------------------ bad graphs and input

def test_an_output_that_needs_an_input_not_given_is_refused():
    a, b = Input(shape=(3,), name="a"), Input(shape=(3,), name="b_input")
    with pytest.raises(ValueError, match="outputs that need Input 'b_input', which is not"):
        Model(a, Add()([a, b]))
    with pytest.raises(TypeError, match="expected `inputs` made by engine.layers.Input"):
        Model(Dense(2), Dense(2)(a))
    with pytest.raises(TypeError, match="expected `outputs` to be KerasTensors"):
        Model(a, np.zeros(3))


def test_calling_a_functional_model_with_the_wrong_inputs():
    model = residual_model()
    with pytest.raises(ValueError, match=re.escape("residual: expected input 'features' of shape (None, 6). "
                                                   "Received: shape=(2, 5)")):
        model(random_f32(2, 5))
    left, right = Input(shape=(2,)), Input(shape=(2,))
    two = Model([left, right], Add()([left, right]))
    with pytest.raises(ValueError, match=re.escape("predict: expected x to be a list of 2 arrays, one per input")):
        two.predict(random_f32(3, 2), verbose=0)
    with pytest.raises(ValueError, match="expected every input array to hold the same number of samples"):
        two.predict([random_f32(3, 2), random_f32(4, 2)], verbose=0)


def test_sequential_with_input_still_builds_at_once():
    model = Sequential([Input(shape=(3,)), Dense(2)])
    assert model.built and [w.shape for w in model.weights] == [(3, 2), (2,)]
    with pytest.raises(ValueError, match="InputLayer: expected a float, integer or bool dtype"):
        Input(shape=(3,), dtype="str")


# ------------------------------------------------------------------------------------------ merge layers

@pytest.mark.parametrize("cls, fn", [
    (Add, lambda xs: xs[0] + xs[1] + xs[2]), (Multiply, lambda xs: xs[0] * xs[1] * xs[2]),
    (Average, lambda xs: (xs[0] + xs[1] + xs[2]) / 3), (Maximum, lambda xs: np.maximum(np.maximum(*xs[:2]), xs[2])),
    (Minimum, lambda xs: np.minimum(np.minimum(*xs[:2]), xs[2])),
])
def test_merge_layers_match_numpy_and_pass_gradients(cls, fn):
    xs = [engine.tensor(random_f32(4, 5, seed=i), requires_grad=True) for i in range(3)]
    layer = cls()
    y = layer(xs)
    np.testing.assert_allclose(y.numpy(), fn([x.numpy() for x in xs]), rtol=1e-6)
    y.sum().backward()
    assert all(x.grad is not None and x.grad.shape == (4, 5) for x in xs)
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()
    assert layer.compute_output_shape([(None, 5)] * 3) == (None, 5)


def test_subtract_concatenate_and_broadcasting():
    a, b = random_f32(2, 3, 4, seed=1), random_f32(2, 3, 4, seed=2)
    np.testing.assert_array_equal(Subtract()([a, b]).numpy(), a - b)
    np.testing.assert_array_equal(Concatenate(axis=1)([a, b]).numpy(), np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(Add()([a, b[:, :1]]).numpy(), a + b[:, :1])      # (2, 1, 4) broadcasts
    assert Concatenate()([Input(shape=(3, 4)), Input(shape=(3, 2))]).shape == (None, 3, 6)
    assert layers.concatenate([a, b], axis=-1).shape == (2, 3, 8) and layers.add([a, b]).shape == (2, 3, 4)


@pytest.mark.parametrize("make, match", [
    (lambda: Add(name="join")([random_f32(2, 3), random_f32(2, 4)]),
     "Add 'join': expected inputs of one shape (or shapes that broadcast). Received: shapes=[(2, 3), (2, 4)]"),
    (lambda: Add()([random_f32(2, 3)]), "expected a list of at least 2 inputs"),
    (lambda: Subtract()([random_f32(2, 3)] * 3), "expected a list of exactly 2 inputs"),
    (lambda: Concatenate(axis=1, name="cat")([random_f32(2, 3, 4), random_f32(2, 3, 5)]),
     "Concatenate 'cat': expected inputs whose shapes match except along axis=1"),
    (lambda: Concatenate(axis=0)([random_f32(2, 3), random_f32(2, 3)]), "an axis other than the batch axis"),
], ids=["add_shapes", "add_one", "subtract_three", "concatenate", "concatenate_batch"])
def test_merge_layers_bad_input(make, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make()

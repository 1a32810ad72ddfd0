"""embedding family: kernels vs engine.ref (gather forward, scatter-add backward) on edge shapes, repeated
ids, thread-count determinism, the reference backward vs finite differences, bad input; the Embedding layer
(Keras layout and config, mask_zero, errors that name the layer, training, saving)."""
import json

import numpy as np
import pytest

import engine
from engine import layers, models, ref
from engine import backend as backends
from engine.layers.base import get_mask

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")

# (ids shape, V, D): one id, one row, odd sizes, 3-D ids, an empty batch, a wide table.
SHAPES = [((), 1, 1), ((1,), 3, 1), ((7,), 5, 3), ((3, 5), 11, 17), ((2, 3, 4), 6, 33), ((0, 4), 5, 3),
          ((64, 50), 1000, 128)]


def _ids(shape, V, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=shape)


@pytest.mark.parametrize("shape, V, D", SHAPES, ids=str)
def test_embedding_forward_matches_ref(backend, shape, V, D):
    ids, table = _ids(shape, V), random_f32(V, D, seed=1)
    y = backend.embedding_forward(ids, table)
    assert y.shape == shape + (D,) and y.dtype == np.float32
    np.testing.assert_array_equal(y, table[ids])


@pytest.mark.parametrize("shape, V, D", SHAPES, ids=str)
def test_embedding_backward_matches_ref(backend, shape, V, D):
    ids, dy = _ids(shape, V), random_f32(*shape, D, seed=2)
    dtable = backend.embedding_backward(dy, ids, V)
    assert dtable.shape == (V, D) and dtable.dtype == np.float32
    expected = np.zeros((V, D), np.float64)
    np.add.at(expected, ids.reshape(-1), dy.reshape(-1, D).astype(np.float64))
    np.testing.assert_allclose(dtable, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dtable, ref.embedding_backward(dy, ids, V), rtol=1e-6, atol=1e-6)


def test_repeated_ids_accumulate_and_unused_rows_are_zero(backend):
    ids = np.array([[2, 2, 0], [2, 4, 0]])
    dy = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    dtable = backend.embedding_backward(dy, ids, 6)
    np.testing.assert_array_equal(dtable[2], dy[0, 0] + dy[0, 1] + dy[1, 0])
    np.testing.assert_array_equal(dtable[0], dy[0, 2] + dy[1, 2])
    np.testing.assert_array_equal(dtable[4], dy[1, 1])
    np.testing.assert_array_equal(dtable[[1, 3, 5]], np.zeros((3, 3)))


def test_embedding_takes_any_integer_dtype_and_non_contiguous_input(backend):
    table = random_f32(9, 8, seed=3)[:, ::2]                       # non-contiguous table (9, 4)
    ids = np.array([[1, 8, 3, 3], [0, 2, 7, 5]], dtype=np.int32)[:, ::2]
    for dtype in (np.int8, np.int32, np.uint16, np.int64):
        np.testing.assert_array_equal(backend.embedding_forward(ids.astype(dtype), table), table[ids])
    dy = random_f32(2, 4, 8, seed=4)[:, ::2, ::2]
    np.testing.assert_allclose(backend.embedding_backward(dy, ids.astype(np.uint8), 9),
                               ref.embedding_backward(np.ascontiguousarray(dy), ids, 9), rtol=1e-6)


def test_embedding_reference_backward_is_the_gradient():
    ids = np.array([[0, 2, 2], [1, 0, 2]])
    table = np.random.default_rng(5).standard_normal((4, 3))
    check_grad(lambda t: ref.embedding_forward(ids, t), lambda r, t: [ref.embedding_backward(r, ids, 4)], [table])


def test_embedding_backward_bits_do_not_depend_on_threads(threads, simd_path):
    ids, dy = _ids((128, 64), 50, seed=6), random_f32(128, 64, 96, seed=7)    # many repeats of each id
    threads(1)
    one = cpu.embedding_backward(dy, ids, 50)
    threads(2)
    two = cpu.embedding_backward(dy, ids, 50)
    assert bits_equal(one, two)


@pytest.mark.parametrize("call, error, message", [
    (lambda k: k.embedding_forward(np.array([0, 5]), random_f32(5, 2)), ValueError,
     r"embedding_forward: expected token ids in \[0, 5\). Received: a token id of 5"),
    (lambda k: k.embedding_forward(np.array([-1]), random_f32(5, 2)), ValueError,
     r"embedding_forward: expected token ids in \[0, 5\). Received: a token id of -1"),
    (lambda k: k.embedding_forward(np.array([0.0]), random_f32(5, 2)), TypeError,
     r"embedding_forward: expected ids to be an integer numpy array. Received: ids.dtype=float64"),
    (lambda k: k.embedding_forward(np.array([0]), random_f32(5)), ValueError,
     r"embedding_forward: expected table of shape \(V, D\). Received: table.shape=\(5,\)"),
    (lambda k: k.embedding_forward(np.array([0]), random_f32(5, 2).astype(np.float16)), TypeError,
     r"embedding_forward: expected table to be a float32 array"),
    (lambda k: k.embedding_backward(random_f32(3, 2), np.array([0, 1]), 5), ValueError,
     r"embedding_backward: expected dy of shape ids.shape \+ \(D,\). Received: dy.shape=\(3, 2\), ids.shape=\(2,\)"),
    (lambda k: k.embedding_backward(random_f32(2, 2), np.array([0, 7]), 5), ValueError,
     r"embedding_backward: expected token ids in \[0, 5\). Received: a token id of 7"),
    (lambda k: k.embedding_backward(random_f32(2, 2), np.array([0, 1]), -1), ValueError,
     r"embedding_backward: expected num_rows to be an int >= 0. Received: num_rows=-1"),
])
def test_embedding_bad_input_gets_the_same_error_everywhere(backend, call, error, message):
    with pytest.raises(error, match=message):
        call(backend)


# ------------------------------------------------------------------------------------------ the layer


def test_embedding_layer_looks_rows_up_in_keras_layout(engine_backend):
    layer = layers.Embedding(10, 4)
    ids = np.array([[1, 2, 9], [0, 0, 3]])
    y = layer(ids)
    assert y.shape == (2, 3, 4) and y.dtype == np.float32
    (table,) = layer.get_weights()
    assert table.shape == (10, 4) and layer.embeddings.name.endswith("/embeddings")
    np.testing.assert_array_equal(y.numpy(), table[ids])
    assert np.all(np.abs(table) <= 0.05) and table.std() > 0.01          # Keras' 'uniform': U(-0.05, 0.05)
    assert layer.compute_output_shape((None, 3)) == (None, 3, 4)
    np.testing.assert_array_equal(layer(ids.astype(np.float32)).numpy(), y.numpy())  # whole floats are ids too


def test_embedding_layer_gradient_lands_on_the_looked_up_rows():
    layer = layers.Embedding(6, 3, embeddings_initializer="ones")
    ids = np.array([[1, 1, 4]])
    layer(ids).sum().backward()
    expected = np.zeros((6, 3), np.float32)
    expected[1], expected[4] = 2.0, 1.0
    np.testing.assert_array_equal(layer.embeddings.grad.numpy(), expected)


def test_embedding_config_round_trip_and_options():
    layer = layers.Embedding(7, 2, embeddings_initializer="he_normal", embeddings_regularizer="l2", mask_zero=True,
                             name="tokens")
    layer(np.array([[1, 0]]))
    config = layer.get_config()
    json.dumps(config)
    clone = layers.Embedding.from_config(config)
    assert clone.get_config() == config and clone.mask_zero and clone.name == "tokens"
    assert len(layer.losses) == 1 and layer.losses[0].item() > 0           # the l2 penalty on the table
    weights = [np.arange(14, dtype=np.float32).reshape(7, 2)]
    preset = layers.Embedding(7, 2, weights=weights)
    np.testing.assert_array_equal(preset(np.array([[3]])).numpy()[0, 0], [6.0, 7.0])
    with pytest.warns(UserWarning, match="input_length"):
        layers.Embedding(7, 2, input_length=5)


def test_mask_zero_attaches_a_mask_that_passes_through_sequential():
    emb = layers.Embedding(5, 3, mask_zero=True)
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    y = emb(ids)
    np.testing.assert_array_equal(get_mask(y), ids != 0)
    assert get_mask(layers.Embedding(5, 3)(ids)) is None                  # mask_zero=False: no mask
    model = models.Sequential([layers.Embedding(5, 3, mask_zero=True), layers.Dense(2)])
    np.testing.assert_array_equal(get_mask(model(ids)), ids != 0)         # Dense passes the mask on
    flat = models.Sequential([layers.Embedding(5, 3, mask_zero=True), layers.Flatten()])
    assert get_mask(flat(ids)) is None                                    # Flatten drops it, as in Keras


@pytest.mark.parametrize("kwargs, message", [
    ({"input_dim": 0, "output_dim": 2}, r"Embedding: `input_dim` must be a positive int. Received: input_dim=0"),
    ({"input_dim": 3, "output_dim": 2.5}, r"Embedding: `output_dim` must be a positive int. Received: output_dim=2.5"),
    ({"input_dim": 3, "output_dim": 2, "embeddings_initializer": "nope"}, r"initializers.get"),
])
def test_embedding_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.Embedding(**kwargs)


def test_embedding_layer_errors_name_the_layer_and_the_id():
    layer = layers.Embedding(10, 4, name="tok")
    with pytest.raises(ValueError, match=r"Embedding 'tok': expected token ids in \[0, 10\) \(input_dim=10\). "
                                         r"Received: a token id of 12"):
        layer(np.array([[1, 12]]))
    with pytest.raises(ValueError, match=r"Embedding 'tok': expected token ids in \[0, 10\).*token id of -3"):
        layer(np.array([[-3]]))
    with pytest.raises(ValueError, match=r"Embedding 'tok': expected integer token ids. Received: a token id of 1.5"):
        layer(np.array([[1.5]], np.float32))


def test_embedding_model_learns_and_saves(tmp_path):
    """Which of two 'topic' tokens does a 6-token sentence contain? Needs the embedding to learn."""
    engine.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(3, 20, size=(512, 6))
    y = rng.integers(0, 2, size=512)
    x[np.arange(512), rng.integers(0, 6, size=512)] = 1 + y               # token 1 or token 2
    model = models.Sequential([layers.Embedding(20, 8), layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y.astype(np.float32), epochs=15, batch_size=32, verbose=0).history
    assert history["accuracy"][-1] >= 0.97
    path = tmp_path / "emb.keras"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))

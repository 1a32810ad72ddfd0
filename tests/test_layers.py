"""Layers: the Layer contract through a generic check_layer (shapes, compute_output_shape, get_config ->
from_config round trip) on every core layer, each layer vs a NumPy formula, Dense's weight layout and
set_weights, a hand-written training loop against NumPy gradients, a custom Layer subclass trained by fit,
activations, initializers, regularizers, and bad input."""
import json
import math
import re

import numpy as np
import pytest

import engine
from engine import activations, initializers, layers, models, ops, optimizers, regularizers

from checks import check_layer, np_sigmoid, np_softmax, random_f32

# ------------------------------------------------------------------------------------------ NumPy references


_erf = np.vectorize(math.erf)

NP_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),               # Keras' activations.leaky_relu: 0.2
    "sigmoid": np_sigmoid,
    "tanh": np.tanh,
    "softmax": np_softmax,
    "log_softmax": lambda x: np.log(np_softmax(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),             # Keras' default: the exact erf form
    "silu": lambda x: x * np_sigmoid(x),
    "swish": lambda x: x * np_sigmoid(x),
    "softplus": lambda x: np.log1p(np.exp(x)),
}


def np_relu(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras' ReLU: max_value for x >= max_value, x for threshold <= x < max_value, else
    negative_slope * (x - threshold)."""
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.minimum(y, max_value)


# ------------------------------------------------------------------------------------------ check_layer on every layer

DENSE_OPTIONS = {
    "default": {"units": 3},
    "no_bias": {"units": 3, "use_bias": False},
    "he_normal_ones": {"units": 5, "kernel_initializer": "he_normal", "bias_initializer": "ones"},
    "seeded_init": {"units": 2, "kernel_initializer": initializers.GlorotNormal(seed=3),
                    "bias_initializer": initializers.Constant(0.5)},
    "regularized": {"units": 4, "kernel_regularizer": "l2", "bias_regularizer": regularizers.L1(0.1),
                    "activity_regularizer": regularizers.L1L2(0.01, 0.02)},
    "named": {"units": 1, "name": "out", "trainable": False},
    **{f"activation_{name}": {"units": 3, "activation": name} for name in NP_ACTIVATIONS},
}


@pytest.mark.parametrize("option", DENSE_OPTIONS)
def test_dense_contract_and_formula(option):
    kwargs = DENSE_OPTIONS[option]
    layer, x, y = check_layer(layers.Dense, kwargs, (6, 4), (6, kwargs["units"]))
    weights = layer.get_weights()
    use_bias = kwargs.get("use_bias", True)
    assert len(weights) == (2 if use_bias else 1)
    z = x.astype(np.float64) @ weights[0] + (weights[1] if use_bias else 0.0)
    expect = NP_ACTIVATIONS[kwargs.get("activation", "linear")](z)
    np.testing.assert_allclose(y.numpy(), expect, rtol=2e-5, atol=2e-6)


def test_dense_on_rank_3_input():
    layer, x, y = check_layer(layers.Dense, {"units": 3}, (2, 5, 4), (2, 5, 3))
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(y.numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_dense_initializers_are_used():
    layer = layers.Dense(3, kernel_initializer="ones", bias_initializer=initializers.Constant(0.25))
    layer(np.zeros((1, 2), np.float32))
    np.testing.assert_array_equal(layer.kernel.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(layer.bias.numpy(), np.full(3, 0.25))
    default = layers.Dense(3)
    default(np.zeros((1, 2), np.float32))
    np.testing.assert_array_equal(default.bias.numpy(), np.zeros(3))                # Keras: bias 'zeros'
    limit = math.sqrt(6 / (2 + 3))                                                  # kernel 'glorot_uniform'
    assert np.all(np.abs(default.kernel.numpy()) <= limit)


RELU_OPTIONS = [{}, {"max_value": 6.0}, {"negative_slope": 0.1}, {"threshold": 0.5},
                {"max_value": 1.0, "negative_slope": 0.2, "threshold": 0.3}, {"max_value": 0.0}]


@pytest.mark.parametrize("kwargs", RELU_OPTIONS, ids=str)
def test_relu_layer_matches_keras_formula(kwargs):
    layer, x, y = check_layer(layers.ReLU, kwargs, (4, 7), (4, 7))
    x4 = random_f32(5, 9, seed=2, scale=4.0)                    # wide enough to pass max_value and the threshold
    np.testing.assert_allclose(layer(x4).numpy(), np_relu(x4.astype(np.float64), **kwargs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs,slope", [({}, 0.3), ({"negative_slope": 0.1}, 0.1)], ids=["default", "0.1"])
def test_leaky_relu_layer(kwargs, slope):
    layer, x, y = check_layer(layers.LeakyReLU, kwargs, (3, 5), (3, 5))
    assert layer.negative_slope == pytest.approx(slope)              # Keras' LeakyReLU layer defaults to 0.3
    np.testing.assert_allclose(y.numpy(), np.where(x > 0, x, slope * x), rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_softmax_layer_axis(axis):
    layer, x, y = check_layer(layers.Softmax, {"axis": axis}, (2, 3, 4), (2, 3, 4))
    np.testing.assert_allclose(y.numpy(), np_softmax(x.astype(np.float64), axis=axis), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y.numpy().sum(axis=axis), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", NP_ACTIVATIONS)
def test_activation_layer(name):
    layer, x, y = check_layer(layers.Activation, {"activation": name}, (3, 6), (3, 6))
    np.testing.assert_allclose(y.numpy(), NP_ACTIVATIONS[name](x.astype(np.float64)), rtol=2e-5, atol=2e-6)


def test_flatten_4d():
    layer, x, y = check_layer(layers.Flatten, {}, (2, 3, 4, 5), (2, 60))
    np.testing.assert_array_equal(y.numpy(), x.reshape(2, -1))
    check_layer(layers.Flatten, {}, (3, 7), (3, 7))
    assert layer.compute_output_shape((None, 3, None)) == (None, None)


def test_input_layer():
    layer = layers.Input(shape=(3,))
    assert isinstance(layer, layers.InputLayer) and layer.shape == (3,)
    x = random_f32(2, 3)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    clone = layers.InputLayer.from_config(layer.get_config())
    assert clone.shape == (3,) and clone.get_config() == layer.get_config()


# ------------------------------------------------------------------------------------------ Dropout


@pytest.mark.parametrize("kwargs", [{"rate": 0.5}, {"rate": 0.2, "seed": 7}, {"rate": 0.0},
                                    {"rate": 0.3, "noise_shape": [None, 1]}], ids=str)
def test_dropout_contract_and_identity_at_inference(kwargs):
    layer, x, y = check_layer(layers.Dropout, kwargs, (4, 6), (4, 6))
    np.testing.assert_array_equal(y.numpy(), x)
    np.testing.assert_array_equal(layer(x).numpy(), x)                          # training=None is inference


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_training_zeroes_rate_and_scales(rate):
    engine.set_seed(0)
    x = np.ones((200, 500), np.float32)
    y = layers.Dropout(rate)(x, training=True).numpy()
    dropped = np.mean(y == 0)
    assert abs(dropped - rate) < 0.01, dropped
    kept = y[y != 0]
    np.testing.assert_allclose(kept, np.float32(1) / np.float32(1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03                                          # the expectation is unchanged


def test_dropout_noise_shape_shares_the_mask():
    engine.set_seed(1)
    y = layers.Dropout(0.5, noise_shape=(None, 1))(np.ones((50, 8), np.float32), training=True).numpy()
    assert np.all((y == 0).all(axis=1) | (y == 2).all(axis=1))


def test_dropout_is_repeatable():
    x = random_f32(20, 30)
    engine.set_seed(11)
    a = layers.Dropout(0.4)(x, training=True).numpy()
    engine.set_seed(11)
    b = layers.Dropout(0.4)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    c = layers.Dropout(0.4, seed=5)(x, training=True).numpy()
    d = layers.Dropout(0.4, seed=5)(x, training=True).numpy()
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)


def test_dropout_gradient_flows_through_kept_entries():
    x = engine.tensor(random_f32(4, 5), requires_grad=True)
    engine.set_seed(2)
    y = layers.Dropout(0.5)(x, training=True)
    ops.sum(y).backward()
    mask = y.numpy() / x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-6)


# ------------------------------------------------------------------------------------------ names


def test_automatic_names_follow_keras():
    """Keras names layers with naming.to_snake_case(class name) and a counter: 'dense', 'dense_1', ...;
    ReLU -> 're_lu', LeakyReLU -> 'leaky_re_lu'."""
    layers.clear_session()
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    assert layers.Flatten().name == "flatten"
    assert layers.InputLayer(shape=(2,)).name == "input_layer"
    assert layers.ReLU().name == "re_lu"
    assert layers.LeakyReLU().name == "leaky_re_lu"
    layers.clear_session()


# ------------------------------------------------------------------------------------------ weight layout


def test_dense_weight_layout_and_set_weights_in_place():
    layer = layers.Dense(3, name="d")
    layer(random_f32(2, 4))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    assert kernel.dtype == np.float32 and bias.dtype == np.float32
    assert layer.weights[0] is layer.kernel and layer.weights[1] is layer.bias
    assert layer.trainable_weights == layer.weights and layer.non_trainable_weights == []
    assert layer.count_params() == 15

    kernel[:] = 99.0                                          # get_weights returns copies
    assert not np.any(layer.kernel.numpy() == 99.0)

    arrays = [w.data for w in layer.weights]
    new = [np.arange(12, dtype=np.float64).reshape(4, 3), np.array([1.0, 2.0, 3.0])]
    layer.set_weights(new)
    assert all(w.data is a for w, a in zip(layer.weights, arrays))          # written in place
    assert all(w.dtype == np.float32 for w in layer.weights)
    np.testing.assert_array_equal(layer.kernel.numpy(), new[0])
    np.testing.assert_array_equal(layer.bias.numpy(), new[1])
    x = random_f32(2, 4)
    np.testing.assert_allclose(layer(x).numpy(), x @ new[0] + new[1], rtol=1e-6)


@pytest.mark.parametrize("bad", [
    [np.zeros((4, 3))],                                    # too few
    [np.zeros((4, 3)), np.zeros(3), np.zeros(3)],          # too many
    [np.zeros((3, 4)), np.zeros(3)],                       # transposed kernel
    [np.ones((4, 3)), np.zeros(4)],                        # good kernel, bad bias: nothing may be written
], ids=["few", "many", "transposed", "bad_bias"])
def test_set_weights_checks_shapes_and_leaves_weights_alone(bad):
    layer = layers.Dense(3)
    layer(random_f32(2, 4))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"set_weights"):
        layer.set_weights(bad)
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dense_without_bias_has_one_weight():
    layer = layers.Dense(2, use_bias=False)
    layer(random_f32(3, 5))
    assert [w.shape for w in layer.get_weights()] == [(5, 2)]
    assert layer.bias is None


# ------------------------------------------------------------------------------------------ hand-written loop


def test_hand_written_loop_gradients_match_numpy():
    """Two Dense layers called on NumPy arrays, an MSE written with engine.ops, loss.backward(): every weight's
    .grad equals the NumPy backpropagation; one SGD step by hand lowers the loss."""
    engine.set_seed(0)
    hidden, out = layers.Dense(5, activation="tanh"), layers.Dense(2)
    x, t = random_f32(8, 3, seed=1), random_f32(8, 2, seed=2)

    def forward():
        return ops.mean(ops.square(out(hidden(x)) - t))

    loss = forward()
    loss.backward()
    w1, b1, w2, b2 = (w.numpy().astype(np.float64) for w in hidden.weights + out.weights)
    h = np.tanh(x @ w1 + b1)
    y = h @ w2 + b2
    dy = 2 * (y - t) / y.size
    dh = dy @ w2.T * (1 - h ** 2)
    expected = [x.T @ dh, dh.sum(0), h.T @ dy, dy.sum(0)]
    np.testing.assert_allclose(loss.item(), np.mean((y - t) ** 2), rtol=1e-5)
    for weight, grad in zip(hidden.weights + out.weights, expected):
        assert weight.grad is not None, weight.name
        assert weight.grad.shape == weight.shape
        np.testing.assert_allclose(weight.grad.numpy(), grad, rtol=1e-4, atol=1e-6, err_msg=weight.name)

    with engine.no_grad():
        for weight in hidden.weights + out.weights:
            weight.data -= 0.1 * weight.grad.data
            weight.grad = None
    assert forward().item() < loss.item()


# ------------------------------------------------------------------------------------------ custom layers


class Linear(layers.Layer):
    """y = x @ w + b, with a non-trainable counter weight that training must not touch."""

    def __init__(self, units=1, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="zeros", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")
        self.frozen = self.add_weight(shape=(self.units,), initializer="ones", trainable=False, name="frozen")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_custom_layer_contract():
    layer, x, y = check_layer(Linear, {"units": 2}, (3, 4), (3, 2))
    assert [w.name for w in layer.weights] == [f"{layer.name}/w", f"{layer.name}/b", f"{layer.name}/frozen"]
    assert layer.trainable_weights == [layer.w, layer.b]
    assert layer.non_trainable_weights == [layer.frozen]
    assert layer.frozen.requires_grad is False


def test_custom_layer_is_trained_by_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x @ np.array([[2.0], [-3.0]]) + 1.0).astype(np.float32)
    engine.set_seed(0)
    layer = Linear(1)
    model = models.Sequential([layers.Input(shape=(2,)), layer])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 1e-3
    np.testing.assert_allclose(layer.w.numpy()[:, 0], [2.0, -3.0], atol=0.02)
    np.testing.assert_allclose(layer.b.numpy(), [1.0], atol=0.02)
    np.testing.assert_array_equal(layer.frozen.numpy(), [1.0])


def test_layer_subclass_must_implement_call():
    class Nothing(layers.Layer):
        pass
    with pytest.raises(NotImplementedError):
        Nothing()(np.zeros((1, 2), np.float32))


def test_frozen_layer_has_no_trainable_weights():
    layer = layers.Dense(2, kernel_regularizer="l2")
    layer(random_f32(1, 3))
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert layer.losses == []


# ------------------------------------------------------------------------------------------ regularizers


def test_regularizer_values():
    w = random_f32(4, 3, seed=5).astype(np.float64)
    cases = [(regularizers.L1(0.3), 0.3 * np.abs(w).sum()), (regularizers.L2(0.2), 0.2 * (w ** 2).sum()),
             (regularizers.L1L2(l1=0.1, l2=0.05), 0.1 * np.abs(w).sum() + 0.05 * (w ** 2).sum()),
             (regularizers.get("l1"), 0.01 * np.abs(w).sum()), (regularizers.get("l2"), 0.01 * (w ** 2).sum()),
             (regularizers.L1(), 0.01 * np.abs(w).sum()), (regularizers.L2(), 0.01 * (w ** 2).sum()),
             (regularizers.L1L2(), 0.0)]
    for reg, expect in cases:
        value = reg(engine.tensor(w))
        assert isinstance(value, engine.Tensor) and value.shape == ()
        np.testing.assert_allclose(value.item(), expect, rtol=1e-5, atol=1e-12, err_msg=repr(reg))
        clone = type(reg).from_config(reg.get_config())
        np.testing.assert_allclose(clone(engine.tensor(w)).item(), expect, rtol=1e-5, atol=1e-12)
    assert isinstance(regularizers.get("l1_l2"), regularizers.L1L2)
    assert regularizers.get(None) is None


def test_layer_losses_hold_weight_penalties():
    layer = layers.Dense(3, kernel_regularizer=regularizers.L2(0.1), bias_regularizer="l1",
                         bias_initializer="ones")
    layer(random_f32(2, 4))
    penalties = [p.item() for p in layer.losses]
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(penalties, [0.1 * (kernel.astype(np.float64) ** 2).sum(), 0.01 * np.abs(bias).sum()],
                               rtol=1e-5)


def test_regularizer_gradient_reaches_the_weight():
    layer = layers.Dense(2, kernel_regularizer=regularizers.L2(0.5), use_bias=False)
    layer(random_f32(1, 3))
    layer.losses[0].backward()
    np.testing.assert_allclose(layer.kernel.grad.numpy(), 2 * 0.5 * layer.kernel.numpy(), rtol=1e-6)


def test_activity_regularizer_is_not_divided_by_the_batch():
    """Keras 3's Layer.__call__ adds activity_regularizer(output) for each output as it is (no division by the
    batch size, unlike tf.keras 2)."""
    layer = layers.Dense(2, kernel_initializer="ones", activity_regularizer=regularizers.L1(0.1))
    y = layer(np.ones((4, 3), np.float32))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0].item(), 0.1 * np.abs(y.numpy()).sum(), rtol=1e-6)


def test_penalties_are_added_to_the_model_loss():
    engine.set_seed(0)
    model = models.Sequential([layers.Input(shape=(3,)), layers.Dense(2, kernel_regularizer=regularizers.L2(0.3))])
    model.compile(optimizer="sgd", loss="mse")
    x, y = random_f32(5, 3), random_f32(5, 2, seed=1)
    kernel, bias = model.get_weights()
    mse = np.mean((x @ kernel + bias - y) ** 2)
    np.testing.assert_allclose(model.test_on_batch(x, y), mse + 0.3 * (kernel.astype(np.float64) ** 2).sum(),
                               rtol=1e-5)


# ------------------------------------------------------------------------------------------ initializers

INITIALIZER_NAMES = ["zeros", "ones", "constant", "random_normal", "truncated_normal", "random_uniform",
                     "variance_scaling", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
                     "lecun_normal", "lecun_uniform", "orthogonal", "identity"]


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
def test_initializer_shapes_and_config(name):
    init = initializers.get(name)
    for shape in [(3, 4), (5, 2)]:
        value = init(shape)
        assert isinstance(value, np.ndarray) and value.shape == shape and value.dtype == np.float32
        assert np.isfinite(value).all()
    if name not in ("orthogonal", "identity"):
        assert init((7,)).shape == (7,) and init((2, 3, 4, 5)).shape == (2, 3, 4, 5)
    config = initializers.serialize(init)
    json.dumps(config)
    assert type(initializers.get(config)) is type(init)
    assert initializers.get(config).get_config() == init.get_config()


def test_constant_like_initializers():
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.Ones()((2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(initializers.Constant(0.5)((4,)), np.full(4, 0.5))
    np.testing.assert_array_equal(initializers.Identity(gain=3.0)((3, 4)), 3.0 * np.eye(3, 4))


BIG = (400, 600)                                             # fan_in 400, fan_out 600


@pytest.mark.parametrize("name,limit", [("glorot_uniform", math.sqrt(6 / 1000)), ("he_uniform", math.sqrt(6 / 400)),
                                        ("lecun_uniform", math.sqrt(3 / 400))])
def test_uniform_initializer_bounds(name, limit):
    w = initializers.get(name)(BIG).astype(np.float64)
    assert np.abs(w).max() <= limit * (1 + 1e-6)
    assert np.abs(w).max() > 0.99 * limit
    assert abs(w.std() - limit / math.sqrt(3)) < 0.01 * limit
    assert abs(w.mean()) < 0.01 * limit


@pytest.mark.parametrize("name,std", [("he_normal", math.sqrt(2 / 400)), ("glorot_normal", math.sqrt(2 / 1000)),
                                      ("lecun_normal", math.sqrt(1 / 400))])
def test_truncated_normal_initializer_std(name, std):
    """Keras draws a truncated normal (two standard deviations) scaled so that the draws have the requested std."""
    w = initializers.get(name)(BIG).astype(np.float64)
    assert abs(w.std() - std) < 0.01 * std
    assert abs(w.mean()) < 0.01 * std
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)


def test_random_initializer_parameters():
    w = initializers.RandomNormal(mean=1.0, stddev=0.5)((500, 400)).astype(np.float64)
    assert abs(w.mean() - 1.0) < 0.005 and abs(w.std() - 0.5) < 0.005
    u = initializers.RandomUniform(minval=-2.0, maxval=3.0)((500, 400))
    assert u.min() >= -2.0 and u.max() <= 3.0 and abs(u.mean() - 0.5) < 0.02
    t = initializers.TruncatedNormal(mean=0.0, stddev=0.1)((500, 400))
    assert np.abs(t).max() <= 0.2 + 1e-7
    defaults = initializers.RandomNormal()
    assert (defaults.mean, defaults.stddev) == (0.0, 0.05)


def test_initializers_are_repeatable():
    engine.set_seed(42)
    a = initializers.GlorotUniform()((5, 6))
    engine.set_seed(42)
    b = initializers.GlorotUniform()((5, 6))
    np.testing.assert_array_equal(a, b)
    c = initializers.HeNormal(seed=3)((5, 6))
    np.testing.assert_array_equal(c, initializers.HeNormal(seed=3)((5, 6)))
    seeded = initializers.RandomNormal(seed=9)
    np.testing.assert_array_equal(seeded((4, 4)), seeded((4, 4)))      # Keras: a seeded initializer repeats
    assert not np.array_equal(c, initializers.HeNormal(seed=4)((5, 6)))
    engine.set_seed(7)
    first = layers.Dense(4)
    first(np.zeros((1, 3), np.float32))
    engine.set_seed(7)
    second = layers.Dense(4)
    second(np.zeros((1, 3), np.float32))
    np.testing.assert_array_equal(first.kernel.numpy(), second.kernel.numpy())


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (2, 3, 4)])
def test_orthogonal_is_orthogonal(shape):
    q = initializers.Orthogonal(gain=2.0, seed=1)(shape).astype(np.float64)
    m = q.reshape(-1, shape[-1])
    small = min(m.shape)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-5)


def test_compute_fans():
    assert initializers.compute_fans((3, 4)) == (3, 4)
    assert initializers.compute_fans((3, 3, 2, 8)) == (18, 72)


# ------------------------------------------------------------------------------------------ activations


@pytest.mark.parametrize("name", NP_ACTIVATIONS)
def test_activation_by_name_and_function(name):
    x = random_f32(4, 5, scale=3.0)
    fn = activations.get(name)
    assert callable(fn)
    expect = NP_ACTIVATIONS[name](x.astype(np.float64))
    np.testing.assert_allclose(fn(x).numpy(), expect, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(getattr(activations, name)(engine.tensor(x)).numpy(), expect, rtol=2e-5, atol=2e-6)
    assert activations.get(activations.serialize(fn)) in (fn, activations.silu)


def test_activation_parameters_and_defaults():
    x = random_f32(3, 4, scale=3.0).astype(np.float64)
    np.testing.assert_allclose(activations.leaky_relu(x, negative_slope=0.5).numpy(), np.where(x > 0, x, 0.5 * x),
                               rtol=1e-6)
    np.testing.assert_allclose(activations.elu(x, alpha=2.0).numpy(), np.where(x > 0, x, 2.0 * np.expm1(x)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(activations.softmax(x, axis=0).numpy(), np_softmax(x, axis=0), rtol=1e-5)
    approx = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(activations.gelu(x, approximate=True).numpy(), approx, rtol=1e-5, atol=1e-6)
    assert activations.get(None) is activations.linear
    custom = lambda t: ops.relu(t) * 2.0            # noqa: E731
    assert activations.get(custom) is custom


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("units", [0, -1, 2.5, "3", None, True])
def test_dense_bad_units(units):
    with pytest.raises((ValueError, TypeError), match="units"):
        layers.Dense(units)


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "relux"}, "activation"),
    ({"kernel_initializer": "glorot"}, "initializer"),
    ({"bias_initializer": 3}, "initializer"),
    ({"kernel_regularizer": "l3"}, "regularizer"),
    ({"activity_regularizer": "l3"}, "regularizer"),
    ({"unknown_argument": 1}, "unknown_argument"),
], ids=["activation", "kernel_init", "bias_init", "kernel_reg", "activity_reg", "kwarg"])
def test_dense_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        layers.Dense(2, **kwargs)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Dropout(1.5), "rate"),
    (lambda: layers.Dropout(-0.1), "rate"),
    (lambda: layers.Dropout("half"), "rate"),
    (lambda: layers.ReLU(max_value=-1.0), "max_value"),
    (lambda: layers.ReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.ReLU(threshold=-1.0), "threshold"),
    (lambda: layers.LeakyReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.Activation("nope"), "activation"),
    (lambda: layers.InputLayer(), "shape"),
    (lambda: layers.Input(shape=(0,)), "shape"),
    (lambda: regularizers.L1(-0.1), "l1"),
    (lambda: regularizers.get("nope"), "regularizer"),
    (lambda: initializers.get("nope"), "initializer"),
    (lambda: initializers.Orthogonal()((5,)), "shape"),
    (lambda: activations.get("nope"), "activation"),
], ids=["dropout_1.5", "dropout_neg", "dropout_str", "relu_max", "relu_slope", "relu_threshold", "leaky_slope",
        "activation", "input_no_shape", "input_zero", "l1_neg", "regularizer", "initializer", "orthogonal_1d",
        "activation_get"])
def test_bad_layer_arguments(make, match):
    """Keras 3's ReLU also rejects a negative threshold ('threshold of a ReLU layer cannot be a negative value')."""
    with pytest.raises(ValueError, match=match):
        make()


def test_dense_wrong_input_size_after_build():
    layer = layers.Dense(3, name="hidden")
    layer(random_f32(2, 7))
    before = layer.get_weights()
    with pytest.raises(ValueError) as info:
        layer(random_f32(2, 11))
    message = str(info.value)
    assert "hidden" in message
    assert re.search(r"\b7\b", message) and re.search(r"\b11\b", message), message
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dense_needs_a_feature_axis():
    with pytest.raises(ValueError, match="Dense"):
        layers.Dense(2)(np.zeros(3, np.float32))

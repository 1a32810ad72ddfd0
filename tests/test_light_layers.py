"""The light layers written on ops (no kernel of their own): Lambda, GaussianNoise, RepeatVector, Cropping2D,
Rescaling and Normalization. Each: values against NumPy, the gradient against float64 finite differences,
a functional model, a save/load round trip, and bad arguments."""
import numpy as np
import pytest

import engine
from engine import layers, models, ops, saving
from checks import check_grad


def _grad_through(layer, x):
    """d(sum(layer(x) * r))/dx by autograd, and the function for finite differences, in float64."""
    def forward(a):
        return layer(engine.tensor(a, dtype="float64")).data

    def backward(r, a):
        t = engine.tensor(a, dtype="float64", requires_grad=True)
        (layer(t) * engine.tensor(r, dtype="float64")).sum().backward()
        return [t.grad.data]
    check_grad(forward, backward, [x])


def double(x):
    return x * 2.0


CASES = [
    (lambda: layers.Lambda(double), (2, 3), lambda x: 2 * x),
    (lambda: layers.RepeatVector(3), (2, 4), lambda x: np.repeat(x[:, None, :], 3, axis=1)),
    (lambda: layers.Cropping2D(((1, 0), (2, 1))), (2, 4, 6, 3), lambda x: x[:, 1:, 2:-1, :]),
    (lambda: layers.Cropping2D(1, data_format="channels_first"), (1, 2, 4, 5), lambda x: x[:, :, 1:-1, 1:-1]),
    (lambda: layers.Rescaling(1 / 127.5, offset=-1.0), (2, 3), lambda x: x / 127.5 - 1),
    (lambda: layers.Rescaling([1.0, 2.0, 3.0]), (2, 3), lambda x: x * np.array([1.0, 2.0, 3.0])),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 0.25]), (3, 2),
     lambda x: (x - np.array([1.0, 2.0])) / np.array([2.0, 0.5])),
    (lambda: layers.Normalization(mean=1.0, variance=4.0, invert=True, axis=None), (3, 2), lambda x: x * 2.0 + 1.0),
    (lambda: layers.GaussianNoise(0.3), (2, 3), lambda x: x),                         # inference: unchanged
]
IDS = ["lambda", "repeat", "crop", "crop_first", "rescale", "rescale_channels", "normalize", "denormalize", "noise"]


@pytest.mark.parametrize("make, shape, expected", CASES, ids=IDS)
def test_values_and_gradient(make, shape, expected):
    x = np.random.default_rng(0).standard_normal(shape)
    layer = make()
    np.testing.assert_allclose(layer(x.astype("f4")).data, expected(x), rtol=1e-5, atol=1e-5)
    _grad_through(layer, x)


@pytest.mark.parametrize("make, shape, expected", CASES, ids=IDS)
def test_in_a_functional_model_saved_and_loaded(make, shape, expected, tmp_path):
    inp = layers.Input(shape=shape[1:])
    layer = make()
    model = models.Model(inp, layer(inp))
    x = np.random.default_rng(1).standard_normal((4,) + shape[1:]).astype("f4")
    y = model.predict(x, verbose=0)
    assert tuple(model.outputs[0].shape[1:]) == y.shape[1:]
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras", custom_objects={"double": double})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), y, rtol=1e-6)


def test_gaussian_noise_adds_noise_only_in_training():
    layer = layers.GaussianNoise(0.5, seed=3)
    noisy = layer(np.zeros((200, 100), "f4"), training=True).data
    assert abs(noisy.std() - 0.5) < 0.01 and abs(noisy.mean()) < 0.01
    again = layers.GaussianNoise(0.5, seed=3)(np.zeros((200, 100), "f4"), training=True).data
    np.testing.assert_array_equal(noisy, again)
    np.testing.assert_array_equal(layer(np.ones((2, 2), "f4")).data, np.ones((2, 2)))


def test_normalization_adapt_learns_the_statistics_per_feature():
    data = np.random.default_rng(0).standard_normal((500, 3)) * [1.0, 10.0, 0.1] + [5.0, -2.0, 0.0]
    layer = layers.Normalization()
    layer.adapt(data)
    out = layer(data.astype("f4")).data
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    images = np.random.default_rng(1).random((8, 4, 4, 3))
    per_channel = layers.Normalization(axis=-1)
    per_channel.adapt([images[:4], images[4:]])                  # batches are accepted too
    np.testing.assert_allclose(per_channel.mean.data.ravel(), images.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_lambda_takes_lists_arguments_and_training():
    def scaled_sum(inputs, factor, training=None):
        a, b = inputs
        return (a + b) * (factor if training else 1.0)
    layer = layers.Lambda(scaled_sum, arguments={"factor": 3.0})
    x = engine.tensor(np.ones((2, 2)), requires_grad=True)
    out = layer([x, np.ones((2, 2), "f4")], training=True)
    np.testing.assert_array_equal(out.data, np.full((2, 2), 6.0))
    out.sum().backward()                                          # the list input stays in the gradient graph
    np.testing.assert_array_equal(x.grad.data, np.full((2, 2), 3.0))


def test_a_lambda_without_a_name_cannot_be_saved_and_an_unknown_name_cannot_be_loaded(tmp_path):
    model = models.Sequential([layers.Input(shape=(2,)), layers.Lambda(lambda x: x + 1.0)])
    with pytest.raises(ValueError, match="a lambda cannot be saved"):
        model.save(tmp_path / "m.keras")
    named = models.Sequential([layers.Input(shape=(2,)), layers.Lambda(double)])
    named.save(tmp_path / "n.keras")
    with pytest.raises(ValueError, match=r"Lambda: the function 'double' is not known\. Pass custom_objects"):
        saving.load_model(tmp_path / "n.keras")


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.Lambda(3), TypeError, r"Lambda: expected `function` to be callable"),
    (lambda: layers.Lambda(double, arguments=[1]), TypeError, r"expected `arguments` to be a dict"),
    (lambda: layers.GaussianNoise(-1.0), ValueError, r"GaussianNoise: expected `stddev` >= 0 and finite"),
    (lambda: layers.RepeatVector(0), ValueError, r"RepeatVector: `n` must be a positive int. Received: n=0"),
    (lambda: layers.RepeatVector(2)(np.ones((2, 3, 4), "f4")), ValueError, r"expected an input of rank 2"),
    (lambda: layers.Cropping2D(-1), ValueError, r"Cropping2D: expected cropping to be a non-negative int"),
    (lambda: layers.Cropping2D(2)(np.ones((1, 4, 4, 1), "f4")), ValueError, r"to leave at least one row and column"),
    (lambda: layers.Rescaling("big"), ValueError, r"Rescaling: expected `scale` to be a number"),
    (lambda: layers.Rescaling(float("inf")), ValueError, r"expected `scale` to be finite"),
    (lambda: layers.Normalization(mean=1.0), ValueError, r"expected both `mean` and `variance`"),
    (lambda: layers.Normalization(mean=0.0, variance=-1.0), ValueError, r"expected `variance` >= 0"),
    (lambda: layers.Normalization(axis="x"), ValueError, r"expected `axis` to be an int"),
    (lambda: layers.Normalization(axis=0)(np.ones((2, 3), "f4")), ValueError, r"other than the batch axis"),
    (lambda: layers.Normalization().adapt(np.array([[np.nan]])), ValueError, r"adapt expected finite data"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_normalization_adapt_rejects_other_features():
    layer = layers.Normalization()
    layer.adapt(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"adapt expected samples that match the statistics \(1, 3\)"):
        layer.adapt(np.ones((4, 5)))
    assert ops.convert_to_tensor(layer(np.ones((1, 3), "f4"))).shape == (1, 3)

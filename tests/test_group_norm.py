"""GroupNormalization: layer normalisation over groups of channels, on the layernorm kernels. Values against a
NumPy formula (and PyTorch's group_norm where installed), the gradient against float64 finite differences,
groups=1 and groups=C, channels first, weights in Keras' order, a save/load round trip, bad arguments."""
import numpy as np
import pytest

import engine
from engine import layers, models, saving
from checks import check_layer_grad, random_f32


def np_group_norm(x, groups, gamma, beta, eps, axis=-1):
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    g = x.reshape(x.shape[:-1] + (groups, x.shape[-1] // groups))
    over = tuple(range(1, g.ndim - 2)) + (g.ndim - 1,)
    mean, var = g.mean(axis=over, keepdims=True), g.var(axis=over, keepdims=True)
    y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape) * gamma + beta
    return np.moveaxis(y, -1, axis)


@pytest.mark.parametrize("shape, groups", [((2, 5, 6, 8), 4), ((3, 7, 4), 1), ((2, 3, 3, 6), 6), ((1, 1, 1, 2), 2),
                                           ((0, 4, 4, 4), 2), ((4, 16), 4)], ids=str)
def test_matches_the_formula(shape, groups):
    x = random_f32(*shape, seed=1) * 3 + 2
    layer = layers.GroupNormalization(groups=groups, epsilon=1e-3)
    layer.build(shape)
    gamma, beta = random_f32(shape[-1], seed=2), random_f32(shape[-1], seed=3)
    layer.set_weights([gamma, beta])
    np.testing.assert_allclose(layer(x).data, np_group_norm(x, groups, gamma, beta, 1e-3), rtol=1e-4, atol=1e-4)


def test_channels_first_and_pytorch():
    x = random_f32(2, 8, 5, 6, seed=4)
    layer = layers.GroupNormalization(groups=4, axis=1, epsilon=1e-5)
    y = layer(x).data
    np.testing.assert_allclose(y, np_group_norm(x, 4, 1.0, 0.0, 1e-5, axis=1)
                               .reshape(y.shape), rtol=1e-4, atol=1e-5)
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is optional)")
    np.testing.assert_allclose(y, torch.nn.functional.group_norm(torch.tensor(x), 4, eps=1e-5).numpy(), atol=2e-6)


def test_gradient_against_finite_differences():
    layer = layers.GroupNormalization(groups=2)
    x = np.random.default_rng(5).standard_normal((2, 3, 4))
    layer.build(x.shape)
    layer.set_weights([np.array([1.5, -0.5, 2.0, 1.0], "f4"), np.array([0.1, 0.2, 0.3, 0.4], "f4")])
    check_layer_grad(layer, x, tol=1e-5)


def test_weights_training_and_saving(tmp_path):
    engine.set_seed(0)
    model = models.Sequential([layers.Input(shape=(6, 6, 4)), layers.GroupNormalization(groups=2),
                               layers.Flatten(), layers.Dense(1)])
    assert [w.name.split("/")[-1] for w in model.layers[0].weights] == ["gamma", "beta"]
    x, y = random_f32(32, 6, 6, 4, seed=6), random_f32(32, 1, seed=7)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    assert not np.array_equal(model.layers[0].gamma.data, np.ones(4))
    model.save(tmp_path / "g.keras")
    np.testing.assert_array_equal(saving.load_model(tmp_path / "g.keras").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


@pytest.mark.parametrize("make, match", [
    (lambda: layers.GroupNormalization(groups=0), r"GroupNormalization: `groups` must be a positive int"),
    (lambda: layers.GroupNormalization(epsilon=0), r"expected epsilon > 0"),
    (lambda: layers.GroupNormalization(gamma_constraint="non_neg"), r"no weight constraints"),
    (lambda: layers.GroupNormalization(groups=3)(np.ones((1, 2, 2, 4), "f4")), r"expected groups=3 to divide the 4"),
    (lambda: layers.GroupNormalization(axis=0)(np.ones((2, 4), "f4")), r"to name a channel axis"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()

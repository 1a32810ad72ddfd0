"""engine.random's Keras 3 API: seeds (None, int, SeedGenerator), the distributions, and the two
differentiable draws (dropout, shuffle)."""
import numpy as np
import pytest

import engine
from engine import random


def test_an_int_seed_repeats_and_a_seed_generator_advances():
    np.testing.assert_array_equal(random.normal((3, 4), seed=7).data, random.normal((3, 4), seed=7).data)
    gen = random.SeedGenerator(7)
    first, second = random.normal((3, 4), seed=gen).data, random.normal((3, 4), seed=gen).data
    assert not np.array_equal(first, second)
    again = random.SeedGenerator(7)
    np.testing.assert_array_equal(random.normal((3, 4), seed=again).data, first)


def test_the_default_seed_follows_set_seed():
    engine.set_seed(3)
    a = random.uniform((5,)).data
    gen_a = random.SeedGenerator()
    engine.set_seed(3)
    np.testing.assert_array_equal(random.uniform((5,)).data, a)
    assert random.SeedGenerator().seed == gen_a.seed


@pytest.mark.parametrize("dtype", [None, "float64"])
def test_normal_uniform_truncated_have_their_moments(dtype):
    n = (200_000,)
    x = random.normal(n, mean=2.0, stddev=3.0, dtype=dtype, seed=0).data
    assert x.dtype == np.dtype(dtype or "float32")
    assert abs(x.mean() - 2.0) < 0.03 and abs(x.std() - 3.0) < 0.03
    u = random.uniform(n, minval=-1.0, maxval=3.0, seed=0).data
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.02
    t = random.truncated_normal(n, mean=1.0, stddev=0.5, seed=0).data
    assert t.min() >= 0.0 and t.max() <= 2.0
    assert abs(t.std() - 0.5 * 0.8796) < 0.01               # the std of N(0, 1) cut at +-2


def test_randint_and_categorical():
    ids = random.randint((10_000,), 3, 7, seed=0)
    assert ids.dtype == np.int32 and set(np.unique(ids)) == {3, 4, 5, 6}
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.0001, 0.0001, 0.9998]]))
    draws = random.categorical(logits, 20_000, seed=0)
    assert draws.shape == (2, 20_000)
    np.testing.assert_allclose(np.bincount(draws[0], minlength=3) / 20_000, [0.7, 0.2, 0.1], atol=0.015)
    assert (draws[1] == 2).mean() > 0.999


def test_shuffle_permutes_and_sends_the_gradient_back():
    x = engine.tensor(np.arange(12.0).reshape(6, 2), requires_grad=True)
    y = random.shuffle(x, seed=0)
    assert sorted(y.data[:, 0]) == sorted(x.data[:, 0]) and not np.array_equal(y.data, x.data)
    weights = np.arange(12.0).reshape(6, 2)
    (y * weights).sum().backward()
    order = (y.data[:, 0] / 2).astype(int)                    # where each row of y came from
    np.testing.assert_array_equal(x.grad.data[order], weights)
    cols = random.shuffle(np.arange(8.0).reshape(2, 4), axis=1, seed=1).data
    assert sorted(cols[0]) == [0, 1, 2, 3] and np.array_equal(cols[1] - cols[0], np.full(4, 4.0))


def test_dropout_keeps_the_expectation_and_its_gradient_is_the_mask():
    x = engine.tensor(np.ones((400, 500)), requires_grad=True)
    y = random.dropout(x, 0.3, seed=0)
    kept = y.data != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data, rtol=1e-6)
    shared = random.dropout(np.ones((4, 6)), 0.5, noise_shape=(None, 1), seed=2).data
    assert all(len(set(row)) == 1 for row in shared)                    # one draw per row
    assert random.dropout(x, 0.0) is x


@pytest.mark.parametrize("call, match", [
    (lambda: random.normal((2, -1)), r"random.normal: expected shape to be a tuple of non-negative ints"),
    (lambda: random.normal((2,), seed=-1), r"random.normal: expected seed to be None, a non-negative int or a "
                                           r"SeedGenerator. Received: seed=-1"),
    (lambda: random.normal((2,), dtype="int32"), r"expected dtype float32 or float64"),
    (lambda: random.normal((2,), stddev=float("nan")), r"expected stddev to be a finite number"),
    (lambda: random.uniform((2,), minval=1.0, maxval=1.0), r"expected minval < maxval"),
    (lambda: random.randint((2,), 0, 5, dtype="float32"), r"expected an integer dtype"),
    (lambda: random.randint((2,), 0.5, 5), r"expected minval to be an int"),
    (lambda: random.categorical(np.zeros(3), 2), r"expected logits of shape \(batch, classes\)"),
    (lambda: random.categorical(np.full((1, 2), np.nan), 2), r"without NaN"),
    (lambda: random.shuffle(np.ones(3), axis=1), r"expected axis in \[-1, 1\)"),
    (lambda: random.dropout(np.ones(3), 1.0), r"expected rate in \[0, 1\)"),
    (lambda: random.dropout(np.ones((2, 3)), 0.5, noise_shape=(2, 2)), r"expected noise_shape to broadcast"),
    (lambda: random.SeedGenerator("a"), r"SeedGenerator: expected seed to be None or a non-negative int"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()

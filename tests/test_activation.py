"""Activation family: every backend vs engine.ref, reference gradients, thread determinism, NaN, bad input."""
import re

import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, raises_same, random_f32

cpu = backends.get("cpu")
_id = lambda v: str(v).replace(" ", "")   # noqa: E731  test ids like (3,4) and (0,2)

# (name, extra positional arguments after x, or after (dy, x, y) in the backward)
ACTIVATIONS = [("linear", ()), ("relu", ()), ("leaky_relu", ()), ("leaky_relu", (0.01,)), ("sigmoid", ()),
               ("tanh", ()), ("elu", ()), ("elu", (0.5,)), ("gelu", ()), ("gelu", (True,)), ("silu", ()),
               ("softplus", ())]
IDS = [name + "".join(f"-{p}" for p in params) for name, params in ACTIVATIONS]
# One value, sizes that are not multiples of a vector width, zero rows, high rank.
SHAPES = [(1,), (1, 1), (3,), (7,), (13, 17), (33, 127), (0, 5), (2, 3, 4, 5)]
# float32 exp/tanh/erf from two libraries differ by a few ulps. The backward's atol is larger: the tanh
# form of gelu' cancels (1 + t with t near -1) for x < -5, where float32 keeps ~1e-6 of absolute error.
RTOL, ATOL, ATOL_BACKWARD = 1e-5, 2e-6, 5e-6


def _fns(module, name):
    return getattr(module, f"{name}_forward"), getattr(module, f"{name}_backward")


def _check_against_ref(backend, name, params, x, dy):
    forward, backward = _fns(backend, name)
    ref_forward, ref_backward = _fns(ref, name)
    y = forward(x, *params)
    assert y.shape == x.shape and y.dtype == np.float32
    expected = ref_forward(x, *params)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL, err_msg=f"{name}_forward")
    dx = backward(dy, x, expected, *params)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, ref_backward(dy, x, expected, *params), rtol=RTOL, atol=ATOL_BACKWARD,
                               err_msg=f"{name}_backward")


# ------------------------------------------------------------------------------------------ oracle

@pytest.mark.parametrize("shape", SHAPES, ids=_id)
@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_activation_matches_ref(backend, name, params, shape):
    _check_against_ref(backend, name, params, random_f32(*shape, seed=1, scale=3.0), random_f32(*shape, seed=2))


@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_activation_reads_strided_and_transposed_views(backend, name, params):
    x = random_f32(7, 26, seed=1, scale=3.0)[:, ::2]           # stride 2
    dy = random_f32(13, 7, seed=2).T                           # transposed
    assert not x.flags.c_contiguous and not dy.flags.c_contiguous
    _check_against_ref(backend, name, params, x, dy)
    _check_against_ref(backend, name, params, x.T, dy.T)


SPECIAL = np.array([-100, -20, -1, -1e-30, -0.0, 0.0, 1e-30, 1e-3, 1, 20, 100], np.float32)


@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_activation_matches_ref_on_special_values(backend, name, params):
    """Exact zeros (the kink of relu, leaky_relu and elu), tiny values and large ones."""
    _check_against_ref(backend, name, params, SPECIAL, random_f32(SPECIAL.size, seed=2))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu"])
def test_kink_at_zero_takes_the_left_branch(backend, name):
    """relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha (the x > 0 test fails at 0), as in Keras."""
    x = np.zeros(3, np.float32)
    dy = np.array([1.0, 2.0, -4.0], np.float32)
    _, backward = _fns(backend, name)
    slope = {"relu": 0.0, "leaky_relu": 0.2, "elu": 1.0}[name]
    np.testing.assert_allclose(backward(dy, x, _fns(ref, name)[0](x)), dy * np.float32(slope), rtol=1e-7)


def test_linear_forward_returns_a_new_array(backend):
    x = random_f32(3, 4)
    y = backend.linear_forward(x)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)


# ------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_activation_backward_is_the_gradient(name, params):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 3.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))    # |x| >= 0.1: away from every kink
    forward, backward = _fns(ref, name)
    check_grad(lambda x: forward(x, *params), lambda r, x: [backward(r, x, forward(x, *params), *params)], [x])


# ------------------------------------------------------------------------------------------ threads

X_BIG = random_f32(1000, 1001, seed=5, scale=3.0)
DY_BIG = random_f32(1000, 1001, seed=6)


@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_activation_is_bitwise_deterministic_across_threads(threads, simd_path, name, params):
    forward, backward = _fns(cpu, name)
    threads(1)
    y1 = forward(X_BIG, *params)
    dx1 = backward(DY_BIG, X_BIG, y1, *params)
    threads(2)
    y2 = forward(X_BIG, *params)
    dx2 = backward(DY_BIG, X_BIG, y1, *params)
    assert bits_equal(y1, y2), f"{name}_forward differs between 1 and 2 threads"
    assert bits_equal(dx1, dx2), f"{name}_backward differs between 1 and 2 threads"


# ------------------------------------------------------------------------------------------ numerics

@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_nan_propagates_through_forward(backend, name, params):
    x = np.array([1.0, np.nan, -1.0, np.nan, 0.0], np.float32)
    y = _fns(backend, name)[0](x, *params)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


def test_relu_keeps_nan(backend):
    y = backend.relu_forward(np.array([[np.nan, -1.0], [2.0, np.nan]], np.float32))
    assert np.isnan(y[0, 0]) and np.isnan(y[1, 1]) and y[0, 1] == 0 and y[1, 0] == 2


def test_sigmoid_of_large_inputs_is_finite_and_correct(backend):
    x = np.array([-100.0, -30.0, 30.0, 100.0], np.float32)
    y = backend.sigmoid_forward(x)
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-30)
    dx = backend.sigmoid_backward(np.ones_like(x), x, y)
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx, [0, 9.357623e-14, 0, 0], atol=1e-13)


@pytest.mark.parametrize("name", ["silu", "softplus", "gelu", "elu", "tanh"])
def test_large_inputs_stay_finite(backend, name):
    x = np.array([-100.0, -88.5, 88.5, 100.0], np.float32)     # exp(88.5) overflows float32
    forward, backward = _fns(backend, name)
    y = forward(x)
    dx = backward(np.ones_like(x), x, y)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), f"{name}: y={y}, dx={dx}"
    np.testing.assert_allclose(y, _fns(ref, name)[0](x), rtol=1e-6, atol=1e-30)


def test_gelu_keeps_its_relative_accuracy_in_both_tails(backend):
    # x Phi(x) written as 0.5 x (1 + erf(x / sqrt 2)) loses every digit below x = -5 in float32 (1 + erf
    # cancels); both backends use erfc, so the tiny lower-tail values keep their relative accuracy.
    import math
    x = np.concatenate([np.linspace(-13, 8, 4001), [-8.0, -0.75, 0.0, 1e-30]]).astype(np.float32)
    exact = np.array([float(v) * 0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in x])
    y = backend.gelu_forward(x).astype(np.float64)
    big = np.abs(exact) > 1e-35
    np.testing.assert_allclose(y[big], exact[big], rtol=1e-6)
    assert y[x == -8][0] < 0 and y[x == 0][0] == 0


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_int_input_raises_type_error_naming_the_dtype(backend, name, params):
    forward, backward = _fns(backend, name)
    with pytest.raises(TypeError, match=re.escape(f"{name}_forward: expected x to be a float32 array. "
                                                  "Received: x.dtype=int64")):
        forward(np.ones((2, 3), np.int64), *params)
    x = random_f32(2, 3)
    with pytest.raises(TypeError, match=re.escape(f"{name}_backward: expected y to be a float32 array. "
                                                  "Received: y.dtype=int64")):
        backward(x, x, np.ones((2, 3), np.int64), *params)


@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_cpu_rejects_float64_naming_the_dtype(name, params):
    forward, backward = _fns(cpu, name)
    with pytest.raises(TypeError, match=re.escape(f"{name}_forward: expected x to be a float32 array. "
                                                  "Received: x.dtype=float64")):
        forward(np.ones((2, 3)), *params)
    with pytest.raises(TypeError, match=r"Received: dy\.dtype=float64"):
        backward(np.ones((2, 3)), random_f32(2, 3), random_f32(2, 3), *params)


@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_list_input_raises_type_error(backend, name, params):
    with pytest.raises(TypeError, match=re.escape(f"{name}_forward: expected x to be a float32 numpy array. "
                                                  "Received: type(x)=list")):
        _fns(backend, name)[0]([1.0, -2.0], *params)


@pytest.mark.parametrize("name, params", ACTIVATIONS, ids=IDS)
def test_backward_rejects_mismatched_shapes(backend, name, params):
    backward = _fns(backend, name)[1]
    x = random_f32(2, 3)
    with pytest.raises(ValueError, match=re.escape(f"{name}_backward: expected dy to have the shape of x (2, 3). "
                                                   "Received: dy.shape=(3, 2)")):
        backward(random_f32(3, 2), x, x, *params)
    with pytest.raises(ValueError, match=re.escape(f"{name}_backward: expected y to have the shape of x (2, 3). "
                                                   "Received: y.shape=(6,)")):
        backward(x, x, random_f32(6), *params)


@pytest.mark.parametrize("call, error", [
    (lambda m: m.relu_forward(np.ones(3, np.int32)), TypeError),
    (lambda m: m.gelu_forward((1.0, 2.0)), TypeError),
    (lambda m: m.tanh_backward(random_f32(2, 3), random_f32(3, 2), random_f32(2, 3)), ValueError),
    (lambda m: m.elu_backward(random_f32(2, 3), random_f32(2, 3), random_f32(1, 3), 0.5), ValueError),
    (lambda m: m.sigmoid_backward(random_f32(2), np.ones(2, np.float16), random_f32(2)), TypeError),
], ids=["int32", "tuple", "dy-shape", "y-shape", "float16"])
def test_ref_and_cpu_give_the_same_error(call, error):
    raises_same(call, error)


# The largest error, in units in the last place of the float32 result, over a sweep of float32 inputs in
# [-100, 100] (every 499th bit pattern, both signs), against float64: what csrc/vector_math.h promises.
# Results below 1e-30 are left out: there the kernels round the subnormal range to 0 by design.
ULP_BOUNDS = {"sigmoid": 3, "tanh": 2, "elu": 2, "softplus": 3, "silu": 4, "gelu": 16}


@pytest.mark.parametrize("name", list(ULP_BOUNDS))
def test_transcendental_activations_stay_within_their_ulp_bounds(simd_path, name):
    magnitudes = np.arange(0, 0x7f800000, 499, dtype=np.int64).astype(np.uint32).view(np.float32)
    magnitudes = magnitudes[magnitudes <= 100]
    x = np.concatenate([-magnitudes[::-1], magnitudes])
    y = getattr(cpu, f"{name}_forward")(x).astype(np.float64)
    want = getattr(ref, f"{name}_forward")(x.astype(np.float64))
    judged = np.abs(want) >= 1e-30
    ulps = np.abs(y - want)[judged] / np.spacing(np.abs(want[judged]).astype(np.float32)).astype(np.float64)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= ULP_BOUNDS[name], f"{name} on {simd_path}: {ulps[worst]:.2f} ulp at x={x[judged][worst]!r}"
    assert np.all(np.abs(y - want)[~judged] <= 2e-36)       # a few ulps of 1e-30, or x times a flushed subnormal

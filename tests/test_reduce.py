"""sum, mean and max reductions: every backend vs engine.ref on every axis, gradients, threads, NaN, ties, bad input."""
import re

import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, raises_same, random_f32

cpu = backends.get("cpu")
_id = lambda v: str(v).replace(" ", "")   # noqa: E731  test ids like (3,4) and (0,2)
KINDS = ["sum", "mean", "max"]
# (shape, axis): one element, odd sizes, every int axis (positive and negative), adjacent and non-adjacent
# tuples (unsorted too), the empty tuple, None, high rank, R above one 4096-row chunk, zero-size arrays.
CASES = ([((1, 1), a) for a in (None, 0, 1, (0, 1))]
         + [((7,), a) for a in (None, 0, -1)]
         + [((13, 17), a) for a in (0, 1, -1, -2, None, (0, 1), (1, 0))]
         + [((3, 4, 5), a) for a in (0, 1, 2, (0, 2), (2, 0), (1, 2), (0, 1), (-1, 0), None, ())]
         + [((2, 3, 4, 5), a) for a in (2, (0, 2), (1, 3), (0, 3), (0, 1, 3), (-1, -3), (0, 1, 2, 3))]
         + [((5000, 3), 0), ((3, 5000), None), ((127, 33), 0), ((2, 3, 1, 4, 5), (1, 3))]
         + [((0, 5), 1), ((4, 0, 3), 0), ((4, 0, 3), (0, 2))])
EMPTY_REDUCTION = [((0, 5), 0), ((0, 5), None), ((3, 0), 1), ((4, 0, 3), (1, 2))]   # R = 0: max raises


def _fns(module, kind):
    return getattr(module, f"{kind}_forward"), getattr(module, f"{kind}_backward")


def _dy(shape, seed=2):
    """A random upstream gradient; an array even for shape () (random_f32 gives a scalar there)."""
    return np.asarray(random_f32(*shape, seed=seed))


def _input(kind, shape, seed=1):
    """Small integers for max, so that ties are common; normal values for sum and mean."""
    if kind == "max":
        return np.random.default_rng(seed).integers(0, 3, shape).astype(np.float32)
    return random_f32(*shape, seed=seed)


def _backward(backend, kind, dy, x, y, axis, keepdims):
    backward = _fns(backend, kind)[1]
    if kind == "max":
        return backward(dy, x, y, axis, keepdims)
    return backward(dy, x, axis, keepdims)


def _check_against_ref(backend, kind, x, axis, keepdims, dy_seed=2):
    forward = _fns(backend, kind)[0]
    y = forward(x, axis, keepdims)
    expected = _fns(ref, kind)[0](x, axis, keepdims)
    assert y.shape == expected.shape and y.dtype == np.float32, f"{y.shape} {y.dtype} vs {expected.shape}"
    if kind == "max":
        np.testing.assert_array_equal(y, expected)
    else:
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    dy = _dy(expected.shape, dy_seed)
    dx = _backward(backend, kind, dy, x, expected, axis, keepdims)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, _backward(ref, kind, dy, x, expected, axis, keepdims), rtol=1e-6, atol=0)


# ------------------------------------------------------------------------------------------ oracle

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape, axis", CASES, ids=_id)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_ref(backend, kind, shape, axis, keepdims):
    _check_against_ref(backend, kind, _input(kind, shape), axis, keepdims)


@pytest.mark.parametrize("shape, axis", EMPTY_REDUCTION, ids=_id)
@pytest.mark.parametrize("kind", ["sum", "mean"])
def test_sum_and_mean_over_nothing(backend, kind, shape, axis):
    """The sum of nothing is 0; the mean of nothing is NaN (0 / 0)."""
    x = np.zeros(shape, np.float32)
    y = _fns(backend, kind)[0](x, axis)
    assert y.shape == ref.sum_forward(x, axis).shape and y.dtype == np.float32
    if kind == "sum":
        np.testing.assert_array_equal(y, np.zeros_like(y))
    else:
        assert np.all(np.isnan(y)), y
    dx = _fns(backend, kind)[1](np.ones_like(y), x, axis)
    assert dx.shape == shape


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [0, 1, (0, 1), None], ids=_id)
def test_reads_strided_and_transposed_views(backend, kind, axis):
    x = _input(kind, (9, 26))[:, ::2]                           # (9, 13), stride 2
    assert not x.flags.c_contiguous
    _check_against_ref(backend, kind, x, axis, False)
    _check_against_ref(backend, kind, x.T, axis, True)
    x3 = _input(kind, (4, 5, 6)).transpose(2, 0, 1)             # (6, 4, 5)
    _check_against_ref(backend, kind, x3, (0, 2) if axis == (0, 1) else axis, False)


def test_backward_takes_dy_with_or_without_keepdims(backend):
    x = random_f32(3, 4, 5)
    for kind in KINDS:
        y = _fns(ref, kind)[0](x, (0, 2))                       # (4,)
        dy = random_f32(4, seed=3)
        plain = _backward(backend, kind, dy, x, y, (0, 2), False)
        kept = _backward(backend, kind, dy.reshape(1, 4, 1), x, y.reshape(1, 4, 1), (0, 2), True)
        np.testing.assert_array_equal(plain, kept)


def test_max_ties_share_the_gradient(backend):
    x = np.array([[1, 3, 3], [2, 2, 2], [5, -1, 0]], np.float32)
    y = backend.max_forward(x, 1)
    np.testing.assert_array_equal(y, [3, 2, 5])
    dx = backend.max_backward(np.array([1.0, 3.0, 2.0], np.float32), x, y, 1)
    np.testing.assert_allclose(dx, [[0, 0.5, 0.5], [1, 1, 1], [2, 0, 0]], rtol=1e-7)
    dx = backend.max_backward(np.array(6.0, np.float32), x, backend.max_forward(x), None)
    np.testing.assert_allclose(dx, [[0, 0, 0], [0, 0, 0], [6, 0, 0]], rtol=1e-7)


def test_mean_divides_by_the_reduced_count(backend):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(backend.mean_forward(x, (0, 2)), [7.5, 11.5, 15.5], rtol=1e-7)
    np.testing.assert_allclose(backend.mean_backward(np.ones(3, np.float32), x, (0, 2)), np.full(x.shape, 1 / 8),
                               rtol=1e-7)


# ------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("axis", [1, -1, (0, 2), None], ids=_id)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_is_the_gradient(kind, axis):
    x = np.random.default_rng(3).standard_normal((2, 3, 4))      # continuous values: no ties for max
    forward, _ = _fns(ref, kind)
    check_grad(lambda x: forward(x, axis), lambda r, x: [_backward(ref, kind, r, x, forward(x, axis), axis, False)],
               [x])


# ------------------------------------------------------------------------------------------ threads

@pytest.mark.parametrize("kind, shape, axis", [
    ("sum", (5000, 300), 0), ("sum", (3000, 1000), None), ("mean", (5000, 300), 0), ("mean", (3000, 1000), None),
    ("sum", (200, 50, 100), (0, 2)), ("sum", (1000, 1000), 1), ("max", (1000, 1000), 1),
    ("max", (200, 50, 100), (0, 2)),
])
def test_bitwise_deterministic_across_threads(threads, simd_path, kind, shape, axis):
    x = _input(kind, shape) if kind == "max" else random_f32(*shape, seed=1, scale=10.0)
    forward = _fns(cpu, kind)[0]
    outputs = []
    for n in (1, 2):
        threads(n)
        y = forward(x, axis)
        dy = _dy(y.shape)
        outputs.append((y, _backward(cpu, kind, dy, x, y, axis, False)))
    (y1, dx1), (y2, dx2) = outputs
    assert bits_equal(y1, y2), f"{kind}_forward differs between 1 and 2 threads"
    assert bits_equal(dx1, dx2), f"{kind}_backward differs between 1 and 2 threads"


# ------------------------------------------------------------------------------------------ numerics

@pytest.mark.parametrize("position", [0, 3, 6])
def test_max_propagates_nan(backend, position):
    x = random_f32(7, 4, seed=1)
    x[position, 2] = np.nan
    y = backend.max_forward(x, 0)
    assert np.isnan(y[2]) and np.all(np.isfinite(np.delete(y, 2))), y
    np.testing.assert_array_equal(np.delete(y, 2), np.delete(x, 2, axis=1).max(axis=0))
    assert np.isnan(backend.max_forward(x))
    assert np.isnan(backend.max_forward(x.T, (1, 0)))
    dx = backend.max_backward(np.ones(4, np.float32), x, y, 0)
    np.testing.assert_array_equal(dx, ref.max_backward(np.ones(4, np.float32), x, y, 0))


def test_sum_accumulates_in_double(backend):
    """1 + 2^24 ones: a float32 running sum would stop at 2^24."""
    x = np.ones(2 ** 24 + 1, np.float32)
    assert backend.sum_forward(x) == np.float32(2 ** 24)        # 2^24 + 1 rounds to 2^24 in float32...
    x[0] = 2 ** 24
    assert backend.sum_forward(x) == np.float32(2 ** 25)        # ...but 2^24 + 2^24 ones must not stop there


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [2, -3, (0, 5), (-3, 1)], ids=_id)
def test_axis_out_of_range_raises(backend, kind, axis):
    x = random_f32(3, 4)
    msg = f"expected axis in [-2, 2) for an array of 2 dimensions. Received: axis={axis!r}"
    forward, _ = _fns(backend, kind)
    with pytest.raises(ValueError, match=re.escape(f"{kind}_forward: {msg}")):
        forward(x, axis)
    with pytest.raises(ValueError, match=re.escape(f"{kind}_backward: {msg}")):
        _backward(backend, kind, random_f32(3), x, random_f32(3), axis, False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [(0, 0), (2, -1), (0, 2, 0)], ids=_id)
def test_repeated_axis_raises(backend, kind, axis):
    x = random_f32(3, 4, 5)
    msg = f"{kind}_forward: expected each axis once. Received: axis={axis!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        _fns(backend, kind)[0](x, axis)
    with pytest.raises(ValueError, match=re.escape(f"{kind}_backward: expected each axis once")):
        _backward(backend, kind, random_f32(4), x, random_f32(4), axis, False)


@pytest.mark.parametrize("shape, axis", EMPTY_REDUCTION, ids=_id)
def test_max_over_an_empty_axis_raises(backend, shape, axis):
    msg = (f"max_forward: cannot take the max over an empty axis: it has no identity. "
           f"Received: x.shape={tuple(shape)}, axis={axis!r}")
    with pytest.raises(ValueError, match=re.escape(msg)):
        backend.max_forward(np.zeros(shape, np.float32), axis)


@pytest.mark.parametrize("shape, axis, out_shape",
                         [((0, 0), 0, (0,)), ((0, 3, 0), 2, (0, 3)), ((4, 0, 0), (0, 1), (0,))], ids=_id)
def test_max_over_an_empty_axis_with_an_empty_output_is_empty(backend, shape, axis, out_shape):
    """Nothing to compute, so nothing to refuse: max_forward only raises when some output has no values."""
    y = backend.max_forward(np.zeros(shape, np.float32), axis)
    assert y.shape == out_shape and y.dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
def test_dy_of_wrong_shape_raises(backend, kind):
    x = random_f32(3, 4)
    y = _fns(ref, kind)[0](x, 1)
    msg = f"{kind}_backward: expected dy of shape (3,) or (3, 1) (the forward output). Received: dy.shape=(4,)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        _backward(backend, kind, random_f32(4), x, y, 1, False)
    with pytest.raises(ValueError, match=r"Received: dy\.shape=\(1, 4\)"):
        _backward(backend, kind, random_f32(1, 4), x, y, 1, True)


def test_max_backward_names_y_when_y_has_the_wrong_shape(backend):
    x = random_f32(3, 4)
    with pytest.raises(ValueError, match=re.escape("max_backward: expected y of shape (3,) (the forward output). "
                                                   "Received: y.shape=(4,)")):
        backend.max_backward(random_f32(3), x, random_f32(4), 1)


@pytest.mark.parametrize("kind", KINDS)
def test_int_input_raises_type_error_naming_the_dtype(backend, kind):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected x to be a float32 array. "
                                                  "Received: x.dtype=int64")):
        _fns(backend, kind)[0](np.ones((2, 3), np.int64), 0)
    with pytest.raises(TypeError, match=r"Received: x\.dtype=int64"):
        _backward(backend, kind, random_f32(3), np.ones((2, 3), np.int64), random_f32(3), 0, False)


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_rejects_float64_naming_the_dtype(kind):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected x to be a float32 array. "
                                                  "Received: x.dtype=float64")):
        _fns(cpu, kind)[0](np.ones((2, 3)), 0)
    with pytest.raises(TypeError, match=r"Received: dy\.dtype=float64"):
        _backward(cpu, kind, np.ones(3), random_f32(2, 3), random_f32(3), 0, False)


@pytest.mark.parametrize("kind", KINDS)
def test_list_input_raises_type_error(backend, kind):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected x to be a float32 numpy array. "
                                                  "Received: type(x)=list")):
        _fns(backend, kind)[0]([[1.0, 2.0]], 0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", ["0", 1.0, (0, 1.0), True, (True,)], ids=["str", "float", "tuple-float", "bool",
                                                                       "tuple-bool"])
def test_non_int_axis_raises_type_error(backend, kind, axis):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected axis to be None, an int or a tuple "
                                                  f"of ints. Received: axis={axis!r}")):
        _fns(backend, kind)[0](random_f32(3, 4), axis)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [np.int64(1), (np.int32(0), 1), [0]], ids=["np.int64", "tuple-np.int32", "list"])
def test_numpy_integer_and_list_axes_work(backend, kind, axis):
    """An axis computed with NumPy (np.argmax, arr.ndim - 1) is an np.integer; the reference takes it."""
    x = _input(kind, (3, 4))
    expected_axes = tuple(int(a) for a in np.atleast_1d(axis))
    y = _fns(backend, kind)[0](x, axis)
    np.testing.assert_allclose(y, _fns(ref, kind)[0](x, expected_axes), rtol=1e-6)


@pytest.mark.parametrize("call, error", [
    (lambda m: m.sum_forward(random_f32(3, 4), 2), ValueError),
    (lambda m: m.mean_forward(random_f32(3, 4), (0, -2)), ValueError),
    (lambda m: m.max_forward(random_f32(0, 4), 0), ValueError),
    (lambda m: m.sum_backward(random_f32(4), random_f32(3, 4), 1), ValueError),
    (lambda m: m.max_backward(random_f32(3), random_f32(3, 4), random_f32(4), 1), ValueError),
    (lambda m: m.mean_forward(np.ones(3, np.int32)), TypeError),
    (lambda m: m.max_forward((1.0, 2.0)), TypeError),
    (lambda m: m.sum_forward(random_f32(3), "all"), TypeError),
], ids=["axis", "repeated", "empty-max", "dy-shape", "y-shape", "int32", "tuple", "str-axis"])
def test_ref_and_cpu_give_the_same_error(call, error):
    raises_same(call, error)


def test_max_over_an_empty_axis_of_an_empty_output_keeps_dims(backend):
    x = np.ones((0, 0, 2), np.float32)
    assert backend.max_forward(x, 1, True).shape == (0, 1, 2)
    assert backend.max_forward(x, 1, False).shape == (0, 2)

"""softmax and log_softmax: every backend vs engine.ref on every axis, gradients, threads, ±1e4 logits, bad input."""
import re

import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, raises_same, random_f32

cpu = backends.get("cpu")
_id = lambda v: str(v).replace(" ", "")   # noqa: E731  test ids like (3,4) and (0,2)
KINDS = ["softmax", "log_softmax"]
# (shape, axis): one element, one row, odd sizes, wide rows, zero rows, an empty axis, then every axis
# (positive and negative) of a rank-4 array, and a rank-5 one.
CASES = ([((1, 1), -1), ((1, 7), -1), ((3, 5), -1), ((13, 17), 0), ((64, 1000), 1), ((0, 5), -1), ((5, 0), 1),
          ((5, 0), 0), ((7,), 0), ((127, 3), 0)]
         + [((2, 3, 4, 5), axis) for axis in range(-4, 4)]
         + [((3, 1, 4, 2, 5), axis) for axis in range(5)])
RTOL, ATOL = 1e-5, 1e-6


def _fns(module, kind):
    return getattr(module, f"{kind}_forward"), getattr(module, f"{kind}_backward")


def _check_against_ref(backend, kind, x, dy, axis):
    forward, backward = _fns(backend, kind)
    ref_forward, ref_backward = _fns(ref, kind)
    y = forward(x, axis)
    assert y.shape == x.shape and y.dtype == np.float32
    expected = ref_forward(x, axis)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL, err_msg=f"{kind}_forward")
    dx = backward(dy, expected, axis)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, ref_backward(dy, expected, axis), rtol=RTOL, atol=ATOL, err_msg=f"{kind}_backward")
    return y


# ------------------------------------------------------------------------------------------ oracle

@pytest.mark.parametrize("shape, axis", CASES, ids=_id)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_ref(backend, kind, shape, axis):
    x = random_f32(*shape, seed=1, scale=3.0)
    y = _check_against_ref(backend, kind, x, random_f32(*shape, seed=2), axis)
    if kind == "softmax" and x.size:
        np.testing.assert_allclose(y.sum(axis=axis, dtype=np.float64), 1.0, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [0, 1, -1], ids=_id)
def test_reads_strided_and_transposed_views(backend, kind, axis):
    x = random_f32(9, 26, seed=1, scale=3.0)[:, ::2]            # (9, 13), stride 2
    dy = random_f32(13, 9, seed=2).T                            # transposed
    assert not x.flags.c_contiguous and not dy.flags.c_contiguous
    _check_against_ref(backend, kind, x, dy, axis)
    _check_against_ref(backend, kind, x.T, dy.T, axis)
    x3 = random_f32(4, 5, 6, seed=3).transpose(2, 0, 1)         # (6, 4, 5), no axis contiguous in order
    _check_against_ref(backend, kind, x3, random_f32(6, 4, 5, seed=4), axis)


def test_default_axis_is_the_last(backend):
    x = random_f32(3, 4, 5, seed=1)
    np.testing.assert_allclose(backend.softmax_forward(x), ref.softmax_forward(x, axis=2), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(backend.log_softmax_forward(x), ref.log_softmax_forward(x, axis=2), rtol=RTOL,
                               atol=ATOL)


@pytest.mark.parametrize("kind, value", [("softmax", 1.0), ("log_softmax", 0.0)])
def test_zero_dimensional_input_with_the_default_axis(backend, kind, value):
    """A 0-d x is one value along its only (implicit) axis: axis 0 or -1. The output is an array, so it can
    be passed back to the backward."""
    x = np.array(2.5, np.float32)
    forward, backward = _fns(backend, kind)
    y = forward(x)
    assert isinstance(y, np.ndarray) and y.shape == () and y == value, repr(y)
    dx = backward(np.array(3.0, np.float32), y)
    assert isinstance(dx, np.ndarray) and dx.shape == () and dx == 0, repr(dx)


# ------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("shape, axis", [((2, 3, 4), 1), ((2, 3, 4), -2), ((3, 5), -1), ((4, 3), 0)], ids=_id)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_is_the_gradient(kind, shape, axis):
    x = np.random.default_rng(1).standard_normal(shape)
    forward, backward = _fns(ref, kind)
    check_grad(lambda x: forward(x, axis), lambda r, x: [backward(r, forward(x, axis), axis)], [x])


# ------------------------------------------------------------------------------------------ threads

@pytest.mark.parametrize("shape, axis", [((1000, 1001), -1), ((250, 401, 10), 1), ((1001, 1000), 0)], ids=_id)
@pytest.mark.parametrize("kind", KINDS)
def test_bitwise_deterministic_across_threads(threads, simd_path, kind, shape, axis):
    x, dy = random_f32(*shape, seed=1, scale=3.0), random_f32(*shape, seed=2)
    forward, backward = _fns(cpu, kind)
    threads(1)
    y1 = forward(x, axis)
    dx1 = backward(dy, y1, axis)
    threads(2)
    y2 = forward(x, axis)
    dx2 = backward(dy, y1, axis)
    assert bits_equal(y1, y2), f"{kind}_forward differs between 1 and 2 threads"
    assert bits_equal(dx1, dx2), f"{kind}_backward differs between 1 and 2 threads"


# ------------------------------------------------------------------------------------------ numerics

HUGE = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4 - 1], [-1e4, 1e4, -1e4]], np.float32)


@pytest.mark.parametrize("axis", [0, 1], ids=_id)
def test_softmax_of_huge_logits_is_finite(backend, axis):
    y = backend.softmax_forward(HUGE, axis)
    assert np.all(np.isfinite(y)), y
    np.testing.assert_allclose(y, ref.softmax_forward(HUGE, axis), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-6)
    if axis == 1:
        np.testing.assert_allclose(y[0], [1, 0, 0], atol=1e-30)
        np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    dx = backend.softmax_backward(np.ones_like(HUGE), y, axis)
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize("axis", [0, 1], ids=_id)
def test_log_softmax_of_huge_logits_is_finite(backend, axis):
    y = backend.log_softmax_forward(HUGE, axis)
    assert np.all(np.isfinite(y)), y
    np.testing.assert_allclose(y, ref.log_softmax_forward(HUGE, axis), rtol=RTOL, atol=ATOL)
    if axis == 1:
        np.testing.assert_allclose(y[0], [0, -2e4, -1e4], rtol=1e-6)
    dx = backend.log_softmax_backward(random_f32(*HUGE.shape), y, axis)
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("position", [0, 2])
def test_nan_makes_its_slice_nan(backend, kind, position):
    """A NaN anywhere along the axis (first or later) makes that whole slice NaN; the others stay finite."""
    x = random_f32(3, 4, seed=1)
    x[1, position] = np.nan
    y = _fns(backend, kind)[0](x, -1)
    assert np.all(np.isnan(y[1])), y[1]
    assert np.all(np.isfinite(np.delete(y, 1, axis=0)))
    y0 = _fns(backend, kind)[0](x, 0)                 # along axis 0: only column `position` is NaN
    assert np.all(np.isnan(y0[:, position])), y0[:, position]
    assert np.all(np.isfinite(np.delete(y0, position, axis=1)))


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ndim, axis", [(2, 2), (2, -3), (3, 5), (1, 1)])
def test_axis_out_of_range_raises(backend, kind, ndim, axis):
    x = random_f32(*[3] * ndim)
    forward, backward = _fns(backend, kind)
    msg = f"expected axis in [{-ndim}, {ndim}) for an array of {ndim} dimensions. Received: axis={axis}"
    with pytest.raises(ValueError, match=re.escape(f"{kind}_forward: {msg}")):
        forward(x, axis)
    with pytest.raises(ValueError, match=re.escape(f"{kind}_backward: {msg}")):
        backward(x, x, axis)


@pytest.mark.parametrize("kind", KINDS)
def test_bool_axis_raises_type_error(backend, kind):
    """True is an int to Python, but never a meaningful axis: the reference refuses it."""
    with pytest.raises(TypeError, match=r"axis"):
        _fns(backend, kind)[0](random_f32(3, 4), True)


@pytest.mark.parametrize("kind", KINDS)
def test_dy_of_wrong_shape_raises(backend, kind):
    y = random_f32(3, 4)
    with pytest.raises(ValueError, match=re.escape(f"{kind}_backward: expected dy to have the shape of y (3, 4). "
                                                   "Received: dy.shape=(4, 3)")):
        _fns(backend, kind)[1](random_f32(4, 3), y, -1)


@pytest.mark.parametrize("kind", KINDS)
def test_int_input_raises_type_error_naming_the_dtype(backend, kind):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected x to be a float32 array. "
                                                  "Received: x.dtype=int64")):
        _fns(backend, kind)[0](np.ones((2, 3), np.int64), -1)
    with pytest.raises(TypeError, match=r"Received: y\.dtype=int64"):
        _fns(backend, kind)[1](random_f32(2, 3), np.ones((2, 3), np.int64), -1)


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_rejects_float64_naming_the_dtype(kind):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected x to be a float32 array. "
                                                  "Received: x.dtype=float64")):
        _fns(cpu, kind)[0](np.ones((2, 3)), -1)
    with pytest.raises(TypeError, match=r"Received: dy\.dtype=float64"):
        _fns(cpu, kind)[1](np.ones((2, 3)), random_f32(2, 3), -1)


@pytest.mark.parametrize("kind", KINDS)
def test_list_input_raises_type_error(backend, kind):
    with pytest.raises(TypeError, match=re.escape(f"{kind}_forward: expected x to be a float32 numpy array. "
                                                  "Received: type(x)=list")):
        _fns(backend, kind)[0]([[1.0, 2.0]], -1)


@pytest.mark.parametrize("call, error", [
    (lambda m: m.softmax_forward(random_f32(2, 3), 2), ValueError),
    (lambda m: m.log_softmax_backward(random_f32(2, 3), random_f32(2, 3), -3), ValueError),
    (lambda m: m.softmax_backward(random_f32(3), random_f32(2, 3), 0), ValueError),
    (lambda m: m.log_softmax_forward(np.ones(3, np.int32), 0), TypeError),
    (lambda m: m.softmax_forward((1.0, 2.0), 0), TypeError),
], ids=["axis", "negative-axis", "dy-shape", "int32", "tuple"])
def test_ref_and_cpu_give_the_same_error(call, error):
    raises_same(call, error)

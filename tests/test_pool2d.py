"""pool2d family: max and average pooling on every backend vs engine.ref over a grid of pool size x strides x
padding x odd sizes x both layouts; the first-maximum tie rule and NaN; gradients (reference vs finite
differences, compiled vs reference); edge shapes; thread-count determinism; bad input."""
import itertools
import re

import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")
FORMATS = ["channels_last", "channels_first"]
POOLS = [1, 2, 3, (2, 3)]
STRIDES = [None, 1, 2, (1, 3)]
PADDINGS = ["valid", "same"]
SIZES = [(7, 9), (4, 4), (3, 1)]
GRID = [c for c in itertools.product(SIZES, POOLS, STRIDES, PADDINGS, FORMATS)
        if c[3] == "same" or all(s >= p for s, p in zip(c[0], (c[1], c[1]) if isinstance(c[1], int) else c[1]))]
_id = lambda v: str(v).replace(" ", "")   # noqa: E731


def _x(size, data_format, N=2, C=3, seed=0):
    H, W = size
    return random_f32(*((N, H, W, C) if data_format == "channels_last" else (N, C, H, W)), seed=seed)


@pytest.mark.parametrize("size, pool, strides, padding, data_format", GRID, ids=_id)
def test_pooling_matches_ref(backend, size, pool, strides, padding, data_format):
    x = _x(size, data_format)
    args = (pool, strides, padding, data_format)
    y, argmax = backend.maxpool2d_forward(x, *args)
    y_ref, argmax_ref = ref.maxpool2d_forward(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert argmax.dtype == np.int32
    dy = random_f32(*y.shape, seed=3)
    np.testing.assert_allclose(backend.maxpool2d_backward(dy, x, argmax, *args),
                               ref.maxpool2d_backward(dy, x, argmax_ref, *args), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(backend.avgpool2d_forward(x, *args), ref.avgpool2d_forward(x, *args), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(backend.avgpool2d_backward(dy, x, *args), ref.avgpool2d_backward(dy, x, *args),
                               rtol=1e-6, atol=1e-6)


def test_max_pool_ties_go_to_the_first_maximum(backend):
    x = np.array([[1, 5, 5], [5, 0, 5], [2, 5, 1]], np.float32).reshape(1, 3, 3, 1)
    y, argmax = backend.maxpool2d_forward(x, 2, 1, "valid")
    np.testing.assert_array_equal(y[0, :, :, 0], [[5, 5], [5, 5]])
    np.testing.assert_array_equal(argmax[0, :, :, 0], [[1, 1], [3, 5]])   # row-major: the first 5 in each window
    dx = backend.maxpool2d_backward(np.ones_like(y), x, argmax, 2, 1, "valid")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 2, 0], [1, 0, 1], [0, 0, 0]])


def test_max_pool_nan_wins_and_all_minus_infinity_windows_stay_inside(backend):
    x = np.array([[1, np.nan, 3, -np.inf], [np.nan, 2, -np.inf, -np.inf]], np.float32).reshape(1, 2, 4, 1)
    y, argmax = backend.maxpool2d_forward(x, 2, 2, "valid")
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1            # the first NaN
    assert y[0, 0, 1, 0] == 3 and argmax[0, 0, 1, 0] == 2
    y, argmax = backend.maxpool2d_forward(np.full((1, 1, 3, 1), -np.inf, np.float32), 2, 2, "same")
    np.testing.assert_array_equal(argmax[0, 0, :, 0], [0, 2])               # padding is never picked


def test_average_pool_same_padding_does_not_count_the_padding(backend):
    x = np.ones((1, 3, 3, 1), np.float32)
    np.testing.assert_array_equal(backend.avgpool2d_forward(x, 2, 2, "same"), np.ones((1, 2, 2, 1), np.float32))


@pytest.mark.parametrize("pool, strides, padding", [(2, None, "valid"), (3, 2, "same"), ((2, 3), 1, "valid"),
                                                    (2, 1, "same")])
@pytest.mark.parametrize("data_format", FORMATS)
def test_ref_backward_is_the_gradient(pool, strides, padding, data_format):
    rng = np.random.default_rng(2)
    shape = (2, 5, 6, 2) if data_format == "channels_last" else (2, 2, 5, 6)
    x = rng.permutation(np.prod(shape)).reshape(shape) / 7.0 + rng.random(shape) * 0.01   # distinct: no ties
    args = (pool, strides, padding, data_format)
    check_grad(lambda x: ref.avgpool2d_forward(x, *args), lambda r, x: [ref.avgpool2d_backward(r, x, *args)], [x])
    check_grad(lambda x: ref.maxpool2d_forward(x, *args)[0],
               lambda r, x: [ref.maxpool2d_backward(r, x, ref.maxpool2d_forward(x, *args)[1], *args)], [x])


def test_edge_shapes(backend):
    for x in (random_f32(0, 4, 4, 3), random_f32(1, 1, 1, 1), random_f32(3, 28, 28, 32)[:, ::2, :, :]):
        for pool, padding in ((2, "same"), (1, "valid")):
            y, a = backend.maxpool2d_forward(x, pool, None, padding)
            y_ref, a_ref = ref.maxpool2d_forward(np.ascontiguousarray(x), pool, None, padding)
            np.testing.assert_array_equal(y, y_ref)
            dx = backend.maxpool2d_backward(y, x, a, pool, None, padding)
            np.testing.assert_array_equal(dx, ref.maxpool2d_backward(y_ref, x, a_ref, pool, None, padding))
            assert dx.shape == x.shape


def test_results_do_not_depend_on_the_thread_count(threads, simd_path):
    x = random_f32(16, 28, 28, 32, seed=1)
    outs = []
    for n in (1, 2):
        threads(n)
        y, a = cpu.maxpool2d_forward(x, 3, 2, "same")
        outs.append([y, cpu.maxpool2d_backward(y, x, a, 3, 2, "same"), cpu.avgpool2d_forward(x, 3, 1, "same"),
                     cpu.avgpool2d_backward(y, x, 3, 2, "same")])
    assert all(bits_equal(a, b) for a, b in zip(*outs))


BAD = [
    (dict(x=random_f32(2, 5, 5)), ValueError,
     "maxpool2d_forward: expected x of shape (N, H, W, C) for data_format='channels_last'. Received: x.shape=(2, 5, 5)"),
    (dict(pool_size=0), ValueError,
     "maxpool2d_forward: expected pool_size to be a positive int or a pair of positive ints. Received: pool_size=0"),
    (dict(strides=(2, 0)), ValueError,
     "maxpool2d_forward: expected strides to be a positive int or a pair of positive ints. Received: strides=(2, 0)"),
    (dict(padding="full"), ValueError,
     "maxpool2d_forward: expected padding to be 'valid' or 'same'. Received: padding='full'"),
    (dict(pool_size=6), ValueError,
     "maxpool2d_forward: the pool window (6, 6) (dilation included) is larger than the padded input (5, 5). "
     "Received: x.shape=(2, 5, 5, 3), pool_size=(6, 6), padding='valid', dilation_rate=(1, 1)"),
    (dict(data_format="NCHW"), ValueError,
     "maxpool2d_forward: expected data_format to be 'channels_last' or 'channels_first'. Received: data_format='NCHW'"),
]


@pytest.mark.parametrize("change, error, message", BAD, ids=[m.split(": ")[1][:40] for _, _, m in BAD])
def test_bad_input_is_rejected_with_the_same_message(backend, change, error, message):
    args = dict(x=random_f32(2, 5, 5, 3), pool_size=2, strides=None, padding="valid", data_format="channels_last")
    args.update(change)
    with pytest.raises(error, match=re.escape(message) + "$"):
        backend.maxpool2d_forward(**args)


def test_backward_checks_argmax(backend):
    x = random_f32(2, 4, 4, 3)
    y, argmax = backend.maxpool2d_forward(x, 2)
    with pytest.raises(TypeError, match=re.escape("maxpool2d_backward: expected argmax to be the int32 array from "
                                                  "maxpool2d_forward. Received: argmax.dtype=int64")):
        backend.maxpool2d_backward(y, x, argmax.astype(np.int64), 2)
    with pytest.raises(ValueError, match=re.escape("maxpool2d_backward: expected argmax of shape (2, 2, 2, 3) (the "
                                                   "forward output). Received: argmax.shape=(2, 2, 3)")):
        backend.maxpool2d_backward(y, x, argmax[0], 2)
    # Each argmax must be a position inside its own window: off the image (16 = H * W), or on the image but in
    # another window (0 for the output at flat index 3 = (0, 0, 1, 0), whose window starts at column 2).
    outside = "expected each argmax value to be a position h * W + w inside its output's pooling window, as " \
              "maxpool2d_forward returns it. Received: "
    with pytest.raises(ValueError, match=re.escape(outside + "24 value(s) outside, the first 16 at flat index 0")):
        backend.maxpool2d_backward(y, x, np.full_like(argmax, 16), 2)
    moved = argmax.copy()
    moved[0, 0, 1, 0] = 0
    with pytest.raises(ValueError, match=re.escape(outside + "1 value(s) outside, the first 0 at flat index 3")):
        backend.maxpool2d_backward(y, x, moved, 2)
    with pytest.raises(ValueError, match=re.escape(outside + "1 value(s) outside, the first -1 at flat index 3")):
        moved[0, 0, 1, 0] = -1
        backend.maxpool2d_backward(y, x, moved, 2)


# ------------------------------------------------------------------------------------------ global pooling


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("size", [(7, 9), (1, 1), (3, 1)], ids=_id)
def test_global_pooling_matches_ref(backend, size, data_format, keepdims):
    x = _x(size, data_format, N=3, C=5)
    x[0, 0, 0, 0] = x[0, 1 % x.shape[1], 0, 0] = 9.0                    # a tie (when the image has 2 rows)
    for kind in ("avg", "max"):
        forward = getattr(backend, f"global_{kind}pool2d_forward")
        y = forward(x, data_format, keepdims)
        y_ref = getattr(ref, f"global_{kind}pool2d_forward")(x, data_format, keepdims)
        assert y.shape == y_ref.shape == ((3, 1, 1, 5) if data_format == "channels_last" else (3, 5, 1, 1)) \
            if keepdims else (3, 5)
        np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-7)
        dy = random_f32(*y.shape, seed=4)
        extra = (y,) if kind == "max" else ()
        np.testing.assert_allclose(getattr(backend, f"global_{kind}pool2d_backward")(dy, x, *extra, data_format, keepdims),
                                   getattr(ref, f"global_{kind}pool2d_backward")(dy, x, *extra, data_format, keepdims),
                                   rtol=1e-6, atol=1e-7)


def test_global_max_pool_ties_share_the_gradient_as_keras(backend):
    x = np.array([[3, 1], [3, 2]], np.float32).reshape(1, 2, 2, 1)
    y = backend.global_maxpool2d_forward(x)
    np.testing.assert_array_equal(backend.global_maxpool2d_backward(np.ones_like(y), x, y)[0, :, :, 0],
                                  [[0.5, 0], [0.5, 0]])


@pytest.mark.parametrize("data_format", FORMATS)
def test_global_pooling_ref_backward_is_the_gradient(data_format):
    x = np.random.default_rng(5).permutation(2 * 3 * 4 * 2).reshape((2, 3, 4, 2) if data_format == "channels_last"
                                                                    else (2, 2, 3, 4)) / 5.0
    for kind in ("avg", "max"):
        fwd = getattr(ref, f"global_{kind}pool2d_forward")
        bwd = getattr(ref, f"global_{kind}pool2d_backward")
        extra = (lambda x: (fwd(x, data_format),)) if kind == "max" else (lambda x: ())
        check_grad(lambda x: fwd(x, data_format), lambda r, x: [bwd(r, x, *extra(x), data_format)], [x])


def test_global_pooling_bad_input(backend):
    with pytest.raises(ValueError, match=re.escape("global_maxpool2d_forward: expected images of at least one pixel "
                                                   "(the max of nothing is undefined). Received: x.shape=(2, 0, 3, 4)")):
        backend.global_maxpool2d_forward(random_f32(2, 0, 3, 4))
    assert backend.global_maxpool2d_forward(random_f32(0, 3, 3, 4)).shape == (0, 4)
    with pytest.raises(ValueError, match=re.escape("global_avgpool2d_forward: expected x of shape (N, C, H, W) for "
                                                   "data_format='channels_first'. Received: x.shape=(2, 3)")):
        backend.global_avgpool2d_forward(random_f32(2, 3), "channels_first")
    with pytest.raises(ValueError, match=re.escape("global_avgpool2d_backward: expected dy of shape (2, 4) (the forward "
                                                   "output). Received: dy.shape=(2, 3)")):
        backend.global_avgpool2d_backward(random_f32(2, 3), random_f32(2, 3, 3, 4))

"""conv2d family: every backend and ladder rung vs engine.ref over a grid of padding x strides x dilation x
kernel size x odd input sizes x both layouts; gradients (reference vs finite differences, compiled vs
reference); edge shapes; thread-count determinism; bad input."""
import itertools
import re
import sys

import numpy as np
import pytest

import engine
from engine import backend as backends
from engine import ladder, ref
from engine.ref.conv2d import geometry

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")

PADDINGS = ["valid", "same", ((1, 0), (2, 1))]
STRIDES = [1, 2, (2, 1)]
DILATIONS = [1, 2, (1, 3)]
KERNELS = [(1, 1), (3, 3), (2, 3)]
SIZES = [(7, 9), (5, 5), (1, 6)]
FORMATS = ["channels_last", "channels_first"]


def _fits(size, kernel, padding, dilation):
    try:
        geometry("t", (1,) + size + (1,), kernel, 1, padding, dilation, "channels_last")
        return True
    except ValueError:
        return False


GRID = [case for case in itertools.product(SIZES, KERNELS, PADDINGS, STRIDES, DILATIONS, FORMATS)
        if _fits(case[0], case[1], case[2], case[4])]
_id = lambda v: str(v).replace(" ", "")   # noqa: E731


def _inputs(size, kernel, data_format, N=2, C=3, F=4, seed=0):
    H, W = size
    x = random_f32(*((N, H, W, C) if data_format == "channels_last" else (N, C, H, W)), seed=seed)
    return x, random_f32(*kernel, C, F, seed=seed + 1), random_f32(F, seed=seed + 2)


def _close(actual, expected, scale=1.0):
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-5 * scale)


def test_grid_covers_every_option():
    assert len(GRID) > 300
    for options in (PADDINGS, STRIDES, DILATIONS, KERNELS, SIZES, FORMATS):
        for value in options:
            assert any(value in case for case in GRID), value


@pytest.mark.parametrize("size, kernel, padding, strides, dilation, data_format", GRID, ids=_id)
def test_conv2d_forward_and_backward_match_ref(size, kernel, padding, strides, dilation, data_format):
    x, w, b = _inputs(size, kernel, data_format)
    args = (strides, padding, dilation, data_format)
    expected = ref.conv2d_forward(x, w, b, *args)
    _close(cpu.conv2d_forward(x, w, b, *args), expected)
    _close(cpu.conv2d_forward(x, w, None, *args), ref.conv2d_forward(x, w, None, *args))
    _close(cpu.ladder.conv2d_forward_v1(x, w, b, *args), expected)
    dy = random_f32(*expected.shape, seed=5)
    for got, want in zip(cpu.conv2d_backward(dy, x, w, *args), ref.conv2d_backward(dy, x, w, *args)):
        assert got.shape == want.shape and got.dtype == np.float32
        _close(got, want, scale=4)


@pytest.mark.parametrize("size, kernel, padding, strides, dilation, data_format", GRID[::7], ids=_id)
def test_ladder_rungs_match_ref(size, kernel, padding, strides, dilation, data_format):
    x, w, b = _inputs(size, kernel, data_format)
    args = (strides, padding, dilation, data_format)
    expected = ref.conv2d_forward(x, w, b, *args)
    rungs = ladder.rungs("conv2d")
    assert [r.name for r in rungs] == ["ref", "v1", "cython", "v2", "v3"]
    for rung in rungs[:-1]:                       # v3 (Winograd) takes only some shapes: tested below
        _close(rung.fn(x, w, b, *args), expected)


def test_ladder_table_times_every_rung():
    rows = ladder.table("conv2d", n=2, min_time=0.0)
    assert [r["name"] for r in rows] == ["ref", "v1", "cython", "v2", "v3"]
    assert all(r["seconds"] > 0 and r["gflops"] > 0 for r in rows)


# (N, H, W, C, F, kernel, strides, padding, dilation): every float64 gradient against finite differences
FD_CASES = [(2, 5, 6, 2, 3, (3, 3), 1, "same", 1), (1, 7, 5, 2, 2, (2, 3), 2, "valid", 1),
            (2, 6, 6, 1, 2, (3, 2), (1, 2), "same", 2), (1, 4, 5, 3, 2, (1, 1), 1, "valid", 1),
            (1, 5, 5, 2, 2, (3, 3), 2, ((2, 0), (1, 1)), (2, 1))]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("N, H, W, C, F, kernel, strides, padding, dilation", FD_CASES, ids=_id)
def test_ref_backward_is_the_gradient(N, H, W, C, F, kernel, strides, padding, dilation, data_format):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, H, W, C) if data_format == "channels_last" else (N, C, H, W))
    w, b = rng.standard_normal(kernel + (C, F)), rng.standard_normal(F)
    args = (strides, padding, dilation, data_format)
    check_grad(lambda x, w, b: ref.conv2d_forward(x, w, b, *args),
               lambda r, x, w, b: ref.conv2d_backward(r, x, w, *args), [x, w, b])


# ------------------------------------------------------------------------------------------ edge shapes


@pytest.mark.parametrize("data_format", FORMATS)
def test_zero_size_batch(backend, data_format):
    x, w, b = _inputs((5, 5), (3, 3), data_format, N=0)
    y = backend.conv2d_forward(x, w, b, 1, "same", 1, data_format)
    assert y.shape == ((0, 5, 5, 4) if data_format == "channels_last" else (0, 4, 5, 5))
    dx, dw, db = backend.conv2d_backward(y, x, w, 1, "same", 1, data_format)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.zeros_like(b))


def test_edge_shapes_match_ref():
    cases = [((1, 1, 1, 1), (1, 1, 1, 1), 1, "valid", 1),            # one pixel, one channel
             ((2, 5, 7, 3), (5, 7, 3, 2), 1, "valid", 1),            # kernel equal to the input: one output
             ((1, 64, 64, 16), (3, 3, 16, 8), 1, "same", 1),         # several im2col blocks per image
             ((3, 9, 9, 5), (1, 1, 5, 7), 1, "valid", 1),            # 1x1: the input is the cols matrix
             ((2, 9, 9, 5), (1, 1, 5, 7), 2, "valid", 1),            # 1x1 with a stride: not pointwise
             ((70, 6, 6, 2), (3, 3, 2, 33), 1, "same", 1),           # more images than threads, odd F
             ((2, 11, 13, 17), (4, 4, 17, 3), 3, "same", 2)]         # stride and dilation, odd everything
    for x_shape, w_shape, s, p, d in cases:
        x, w, b = random_f32(*x_shape, seed=1), random_f32(*w_shape, seed=2), random_f32(w_shape[-1], seed=3)
        expected = ref.conv2d_forward(x, w, b, s, p, d)
        _close(cpu.conv2d_forward(x, w, b, s, p, d), expected, scale=4)
        dy = random_f32(*expected.shape, seed=4)
        for got, want in zip(cpu.conv2d_backward(dy, x, w, s, p, d), ref.conv2d_backward(dy, x, w, s, p, d)):
            _close(got, want, scale=40)


def test_non_contiguous_and_float64_inputs(backend):
    x = random_f32(2, 8, 14, 3, seed=1)[:, :, ::2, :]                # strided view (2, 8, 7, 3)
    w = np.asfortranarray(random_f32(3, 3, 3, 4, seed=2))
    assert not x.flags.c_contiguous
    _close(backend.conv2d_forward(x, w, None, 1, "same"), ref.conv2d_forward(np.ascontiguousarray(x), w, None, 1, "same"))
    if backend is cpu:
        with pytest.raises(TypeError, match=r"conv2d_forward: expected x to be a float32 array. Received: x.dtype=float64"):
            cpu.conv2d_forward(x.astype(np.float64), w)


def test_same_padding_puts_the_smaller_half_first():
    """Keras' 'same': 4 wide, kernel 4, stride 1 -> 3 padded columns, 1 on the left and 2 on the right."""
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 4, 1) + 1          # 1 2 3 4
    w = np.zeros((1, 4, 1, 1), np.float32)
    w[0, 0] = 1.0                                                      # picks the window's first column
    for k in (ref, cpu):
        np.testing.assert_array_equal(k.conv2d_forward(x, w, None, 1, "same")[0, 0, :, 0], [0, 1, 2, 3])


# Winograd F(2x2, 3x3) (csrc/conv2d_winograd.cpp) is what conv2d_forward and conv2d_backward run for 3x3
# kernels, strides 1 and at least 8 channels and filters (dilated: one undilated convolution per phase).
# (N, H, W, C, F, padding, dilation): odd sizes (edge tiles with one output row or column), 2x2 outputs,
# asymmetric padding larger than the kernel's reach, dilations that leave some phases without outputs.
WINOGRAD = [(2, 7, 9, 8, 8, "same", 1), (1, 5, 6, 9, 11, "valid", 1), (3, 4, 4, 16, 8, "same", 1),
            (1, 2, 2, 8, 12, "same", 1), (2, 7, 5, 8, 9, ((2, 0), (1, 3)), 1), (1, 6, 3, 12, 8, ((0, 3), (2, 0)), 1),
            (1, 14, 14, 32, 64, "same", 1), (2, 9, 8, 8, 8, "same", 2), (1, 11, 7, 8, 10, "valid", (2, 1)),
            (1, 10, 9, 9, 8, ((1, 4), (3, 0)), (3, 2)), (1, 5, 5, 8, 8, "same", 4)]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("N, H, W, C, F, padding, dilation", WINOGRAD, ids=_id)
def test_winograd_matches_ref_forward_and_backward(N, H, W, C, F, padding, dilation, data_format):
    x, w, b = _inputs((H, W), (3, 3), data_format, N=N, C=C, F=F, seed=7)
    args = (1, padding, dilation, data_format)
    expected = ref.conv2d_forward(x, w, b, *args)
    scale = np.sqrt(C / 3)                        # sums over more channels: more rounding than the grid's C = 3
    _close(cpu.ladder.conv2d_forward_v3(x, w, b, *args), expected, scale)
    _close(cpu.conv2d_forward(x, w, b, *args), expected, scale)
    _close(cpu.ladder.conv2d_forward_v2(x, w, b, *args), expected, scale)
    dy = random_f32(*expected.shape, seed=8)
    for got, want in zip(cpu.conv2d_backward(dy, x, w, *args), ref.conv2d_backward(dy, x, w, *args)):
        assert got.shape == want.shape and got.dtype == np.float32
        _close(got, want, scale=4 * scale * max(1, N * H * W / 64))     # dkernel sums over every pixel


def test_winograd_rung_names_the_shapes_it_takes():
    x, w = random_f32(1, 6, 6, 8), random_f32(3, 3, 8, 8)
    with pytest.raises(ValueError, match=r"conv2d_forward_v3: expected a 3x3 kernel, strides 1, "
                                         r"at least 8 input channels and filters .*Received: kernel 3x3, strides \(2, 2\)"):
        cpu.ladder.conv2d_forward_v3(x, w, None, 2, "same")
    with pytest.raises(ValueError, match=r"Received: kernel 3x3, strides \(1, 1\), 4 channels"):
        cpu.ladder.conv2d_forward_v3(random_f32(1, 6, 6, 4), random_f32(3, 3, 4, 8), None, 1, "same")
    y = cpu.ladder.conv2d_forward_v3(random_f32(0, 6, 6, 8), w, None, 1, "same")      # zero-size batch
    assert y.shape == (0, 6, 6, 8)


# (x, kernel, strides, dilation): the im2col path (stride 2), and Winograd (3x3, stride 1, 16 channels, 24
# filters), undilated and dilated
THREAD_CASES = [((9, 15, 13, 6), (3, 3, 6, 10), 2, 1), ((9, 15, 13, 16), (3, 3, 16, 24), 1, 1),
                ((9, 15, 13, 16), (3, 3, 16, 24), 1, 2)]


@pytest.mark.parametrize("x_shape, w_shape, strides, dilation", THREAD_CASES, ids=["im2col", "winograd", "dilated"])
def test_results_do_not_depend_on_the_thread_count(threads, simd_path, x_shape, w_shape, strides, dilation):
    x, w, b = random_f32(*x_shape, seed=1), random_f32(*w_shape, seed=2), random_f32(w_shape[-1], seed=3)
    args = (strides, "same", dilation)
    y = cpu.conv2d_forward(x, w, b, *args)
    dy = random_f32(*y.shape, seed=4)
    outs = []
    for n in (1, 2, 3):
        threads(n)
        outs.append([cpu.conv2d_forward(x, w, b, *args)] + list(cpu.conv2d_backward(dy, x, w, *args)))
    for other in outs[1:]:
        assert all(bits_equal(a, b) for a, b in zip(outs[0], other))


# ------------------------------------------------------------------------------------------ bad input

BAD = [
    (dict(x=random_f32(2, 5, 5)), ValueError,
     "conv2d_forward: expected x of shape (N, H, W, C) for data_format='channels_last'. Received: x.shape=(2, 5, 5)"),
    (dict(data_format="NHWC"), ValueError,
     "conv2d_forward: expected data_format to be 'channels_last' or 'channels_first'. Received: data_format='NHWC'"),
    (dict(kernel=random_f32(3, 3, 3)), ValueError,
     "conv2d_forward: expected kernel of shape (KH, KW, C, F). Received: kernel.shape=(3, 3, 3)"),
    (dict(kernel=random_f32(3, 3, 2, 4)), ValueError,
     "conv2d_forward: expected kernel.shape[2] to equal the 3 input channels of x. Received: kernel.shape=(3, 3, 2, 4), "
     "x.shape=(2, 5, 5, 3)"),
    (dict(strides=0), ValueError,
     "conv2d_forward: expected strides to be a positive int or a pair of positive ints. Received: strides=0"),
    (dict(strides=(1, -2)), ValueError,
     "conv2d_forward: expected strides to be a positive int or a pair of positive ints. Received: strides=(1, -2)"),
    (dict(dilation_rate=(1, 2, 3)), ValueError,
     "conv2d_forward: expected dilation_rate to be a positive int or a pair of positive ints. Received: "
     "dilation_rate=(1, 2, 3)"),
    (dict(padding="full"), ValueError,
     "conv2d_forward: expected padding to be 'valid', 'same' or ((top, bottom), (left, right)) of non-negative ints. "
     "Received: padding='full'"),
    (dict(kernel=random_f32(6, 2, 3, 4)), ValueError,
     "conv2d_forward: the kernel window (6, 2) (dilation included) is larger than the padded input (5, 5). Received: "
     "x.shape=(2, 5, 5, 3), kernel_size=(6, 2), padding='valid', dilation_rate=(1, 1)"),
    (dict(dilation_rate=3), ValueError,
     "conv2d_forward: the kernel window (7, 7) (dilation included) is larger than the padded input (5, 5). Received: "
     "x.shape=(2, 5, 5, 3), kernel_size=(3, 3), padding='valid', dilation_rate=3"),
    (dict(bias=random_f32(3)), ValueError,
     "conv2d_forward: expected bias of shape (4,), one value per filter. Received: bias.shape=(3,)"),
    (dict(x=[[1.0]]), TypeError, "conv2d_forward: expected x to be a float32 numpy array. Received: type(x)=list"),
]


@pytest.mark.parametrize("change, error, message", BAD, ids=[m.split(": ")[1][:40] for _, _, m in BAD])
def test_bad_input_is_rejected_with_the_same_message(backend, change, error, message):
    args = dict(x=random_f32(2, 5, 5, 3), kernel=random_f32(3, 3, 3, 4), bias=None, strides=1, padding="valid",
                dilation_rate=(1, 1), data_format="channels_last")
    args.update(change)
    with pytest.raises(error, match=re.escape(message) + "$"):
        backend.conv2d_forward(**args)


def test_backward_rejects_a_dy_of_the_wrong_shape(backend):
    x, w = random_f32(2, 5, 5, 3), random_f32(3, 3, 3, 4)
    with pytest.raises(ValueError, match=re.escape("conv2d_backward: expected dy of shape (2, 3, 3, 4) (the forward "
                                                   "output). Received: dy.shape=(2, 5, 5, 4)")):
        backend.conv2d_backward(random_f32(2, 5, 5, 4), x, w)


def test_ops_conv_records_the_kernels_and_gradients_flow():
    x = engine.tensor(random_f32(2, 6, 6, 3), requires_grad=True)
    w = engine.tensor(random_f32(3, 3, 3, 4), requires_grad=True)
    b = engine.tensor(random_f32(4), requires_grad=True)
    with engine.trace() as calls:
        y = engine.ops.conv(x, w, strides=2, padding="same", bias=b)
        engine.ops.sum(y).backward()
    assert "cpu.conv2d_forward" in calls and "cpu.conv2d_backward" in calls
    dx, dw, db = ref.conv2d_backward(np.ones(y.shape, np.float32), x.data, w.data, 2, "same")
    _close(x.grad.numpy(), dx, 4)
    _close(w.grad.numpy(), dw, 40)
    _close(b.grad.numpy(), db, 40)


def test_input_grad_false_skips_dx(backend):
    x, w, _ = _inputs((7, 6), (3, 3), "channels_last")
    dy = random_f32(2, 4, 3, 4, seed=6)
    full = backend.conv2d_backward(dy, x, w, 2, "same")
    dx, dw, db = backend.conv2d_backward(dy, x, w, 2, "same", 1, "channels_last", False)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])


def test_ladder_lists_the_cython_rung_as_unavailable_without_the_extension(monkeypatch):
    monkeypatch.setitem(sys.modules, "engine._im2col_cython", None)       # as if Cython had been absent
    monkeypatch.delattr(engine, "_im2col_cython", raising=False)
    rung = next(r for r in ladder.rungs("conv2d") if r.name == "cython")
    assert "engine._im2col_cython was not built" in rung.unavailable and "pip install Cython" in rung.unavailable
    lines = []
    rows = ladder.print_table("conv2d", n=1, min_time=0.0, print_fn=lines.append)
    assert [r["name"] for r in rows] == ["ref", "v1", "v2", "v3"]
    assert any(line.split()[:3] == ["cython", "-", "unavailable:"] for line in lines)

"""resize family (UpSampling2D): kernels vs engine.ref on edge shapes (size 1, odd sizes, factors that are not
integers, downsizing, an empty batch, one channel), non-contiguous input, thread-count determinism on each SIMD
path, the reference against PyTorch's interpolate where it is installed, and the reference backward against
float64 finite differences; then the UpSampling2D layer."""
import numpy as np
import pytest

import engine
from engine import layers, models, ref, saving
from engine import backend as backends

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")
MODES = ["nearest", "bilinear"]
# (x shape, output size)
SHAPES = [((1, 1, 1, 1), (1, 1)), ((1, 1, 1, 3), (2, 2)), ((2, 3, 5, 4), (6, 10)), ((1, 4, 3, 1), (8, 6)),
          ((3, 5, 7, 17), (7, 9)), ((2, 6, 6, 8), (3, 4)), ((0, 4, 4, 2), (8, 8)), ((2, 16, 16, 32), (32, 32))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, size", SHAPES, ids=str)
def test_forward_and_backward_match_ref(backend, mode, shape, size):
    x = random_f32(*shape, seed=1)
    y = backend.resize_forward(x, size, mode)
    assert y.shape == (shape[0],) + size + (shape[3],) and y.dtype == np.float32
    np.testing.assert_allclose(y, ref.resize_forward(x, size, mode), rtol=1e-5, atol=1e-6)
    dy = random_f32(*y.shape, seed=2)
    dx = backend.resize_backward(dy, shape, mode)
    assert dx.shape == shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, ref.resize_backward(dy, shape, mode), rtol=1e-5, atol=1e-5)


def test_nearest_by_an_integer_factor_repeats_every_pixel_exactly(backend):
    x = random_f32(2, 3, 4, 5, seed=3)
    np.testing.assert_array_equal(backend.resize_forward(x, (6, 12), "nearest"), x.repeat(2, axis=1).repeat(3, axis=2))
    dy = random_f32(2, 6, 12, 5, seed=4)
    np.testing.assert_allclose(backend.resize_backward(dy, x.shape, "nearest"),
                               dy.astype(np.float64).reshape(2, 3, 2, 4, 3, 5).sum(axis=(2, 4)), rtol=1e-5, atol=1e-6)


def test_reads_non_contiguous_input(backend):
    x = random_f32(2, 5, 6, 8, seed=5)[:, :, ::2, 1::2]
    np.testing.assert_allclose(backend.resize_forward(x, (10, 6), "bilinear"),
                               ref.resize_forward(np.ascontiguousarray(x), (10, 6), "bilinear"), rtol=1e-5, atol=1e-6)
    dy = random_f32(2, 10, 12, 4, seed=6)[:, :, ::2]
    np.testing.assert_allclose(backend.resize_backward(dy, x.shape, "bilinear"),
                               ref.resize_backward(np.ascontiguousarray(dy), x.shape, "bilinear"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_bits_do_not_depend_on_threads(threads, simd_path, mode):
    x = random_f32(4, 24, 24, 16, seed=7)
    dy = random_f32(4, 48, 48, 16, seed=8)
    threads(1)
    one = cpu.resize_forward(x, (48, 48), mode), cpu.resize_backward(dy, x.shape, mode)
    threads(2)
    two = cpu.resize_forward(x, (48, 48), mode), cpu.resize_backward(dy, x.shape, mode)
    assert bits_equal(one[0], two[0]) and bits_equal(one[1], two[1])


@pytest.mark.parametrize("mode", MODES)
def test_reference_matches_pytorch_interpolate(mode):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is optional)")
    x = random_f32(2, 5, 7, 3, seed=9)
    for size in ((10, 14), (7, 9), (3, 4)):
        options = {} if mode == "nearest" else {"align_corners": False}
        expected = torch.nn.functional.interpolate(torch.tensor(x).permute(0, 3, 1, 2), size=size, mode=mode,
                                                   **options).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(ref.resize_forward(x, size, mode), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_reference_backward_is_the_gradient(mode):
    x = np.random.default_rng(10).standard_normal((1, 3, 4, 2))
    check_grad(lambda a: ref.resize_forward(a, (5, 8), mode), lambda r, a: [ref.resize_backward(r, a.shape, mode)],
               [x])


@pytest.mark.parametrize("call, error, match", [
    (lambda k: k.resize_forward(np.ones((2, 3, 4), "f4"), (4, 4)), ValueError, r"expected x of shape \(N, H, W, C\)"),
    (lambda k: k.resize_forward(np.ones((1, 2, 2, 1), "f4"), (4, 4), "cubic"), ValueError,
     r"expected interpolation to be one of \('nearest', 'bilinear'\). Received: interpolation='cubic'"),
    (lambda k: k.resize_forward(np.ones((1, 2, 2, 1), "f4"), (0, 4)), ValueError, r"expected size \(OH, OW\)"),
    (lambda k: k.resize_forward(np.ones((1, 2, 2, 1), "i4"), (4, 4)), TypeError, r"expected x to be a float32"),
    (lambda k: k.resize_backward(np.ones((1, 4, 4, 2), "f4"), (1, 2, 2, 3)), ValueError,
     r"expected dy of shape \(N, OH, OW, C\) for x of shape \(1, 2, 2, 3\)"),
])
def test_bad_input_is_rejected_with_the_same_message(backend, call, error, match):
    with pytest.raises(error, match=match):
        call(backend)


# --------------------------------------------------------------------------------------------- UpSampling2D


@pytest.mark.parametrize("interpolation", MODES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsampling2d_layer(interpolation, data_format, tmp_path):
    layer = layers.UpSampling2D(size=(2, 3), data_format=data_format, interpolation=interpolation)
    x = random_f32(2, 4, 5, 3, seed=11)
    image = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    y = layer(image).data
    expected = ref.resize_forward(x, (8, 15), interpolation)
    np.testing.assert_allclose(y if data_format == "channels_last" else y.transpose(0, 2, 3, 1), expected,
                               rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None,) + image.shape[1:]) == (None,) + y.shape[1:]
    t = engine.tensor(image, requires_grad=True)
    (layer(t) * y).sum().backward()
    assert t.grad.shape == image.shape and np.abs(t.grad.data).sum() > 0
    model = models.Sequential([layers.Input(shape=image.shape[1:]), layer])
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(saving.load_model(tmp_path / "m.keras").predict(image, verbose=0), y)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.UpSampling2D(size=0), r"UpSampling2D: expected size to be a positive int or a tuple of 2"),
    (lambda: layers.UpSampling2D(interpolation="area"), r"UpSampling2D: expected interpolation to be one of"),
    (lambda: layers.UpSampling2D(data_format="nhwc"), r"expected data_format to be 'channels_last'"),
    (lambda: layers.UpSampling2D()(np.ones((2, 3, 4), "f4")), r"expected an input of rank 4"),
])
def test_upsampling2d_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()

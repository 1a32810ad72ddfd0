"""NumPy reference for the resize family: UpSampling2D's 'nearest' and 'bilinear' resizing of images, and its
gradient. The spec that csrc/resize.cpp must match. Layout NHWC: N batch, H/W input height/width, C channels,
OH/OW output height/width (H * SH and W * SW for an upsampling by (SH, SW)).

Resizing is linear and separable: along each axis an output index o reads the input at a few indices i with
weights A[o, i] (a sparse (out, in) matrix), and

    y[n, o, p, c] = sum over i, j of  A_h[o, i] * A_w[p, j] * x[n, i, j, c]      (y = A_h x A_w^T per channel)
    dx[n, i, j, c] = sum over o, p of A_h[o, i] * A_w[p, j] * dy[n, o, p, c]     (dx = A_h^T dy A_w: the transpose)

'nearest'   A[o, floor(o * in / out)] = 1: each output pixel copies one input pixel (for an integer factor s,
            the pixel o // s), so upsampling repeats every pixel s times.
'bilinear'  with half-pixel centres (Keras' ops.image.resize, PyTorch's align_corners=False): the output pixel
            o sits at input coordinate t = (o + 0.5) * in / out - 0.5, clamped to [0, in - 1]; it reads
            i0 = floor(t) with weight 1 - (t - i0) and i1 = min(i0 + 1, in - 1) with weight t - i0.
"""
import numpy as np

from ._check import floats, resize_args, shape_str


def axis_taps(size_in, size_out, interpolation):
    """The rows of A along one axis: (index, weight) arrays of shape (size_out, 2) (nearest: the second tap has
    weight 0). Shared by the reference and the C++ kernel's binding, which passes them to the kernel."""
    o = np.arange(size_out, dtype=np.float64)
    if interpolation == "nearest":
        first = np.minimum(np.floor(o * size_in / size_out), size_in - 1).astype(np.int64)
        return np.stack([first, first], axis=1), np.stack([np.ones(size_out), np.zeros(size_out)], axis=1)
    t = np.clip((o + 0.5) * size_in / size_out - 0.5, 0.0, size_in - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, size_in - 1)
    frac = t - i0
    return np.stack([i0, i1], axis=1), np.stack([1.0 - frac, frac], axis=1)


def axis_matrix(size_in, size_out, interpolation):
    """A as a dense (size_out, size_in) matrix (for reading, and for the reference's products)."""
    index, weight = axis_taps(size_in, size_out, interpolation)
    a = np.zeros((size_out, size_in))
    np.add.at(a, (np.repeat(np.arange(size_out), 2), index.reshape(-1)), weight.reshape(-1))
    return a


def resize_forward(x, size, interpolation="nearest"):
    """x (N, H, W, C) -> y (N, OH, OW, C) with size = (OH, OW)."""
    resize_args("resize_forward", x, size, interpolation)
    if x.shape[1] == 0 or x.shape[2] == 0:
        return np.zeros((x.shape[0],) + tuple(size) + (x.shape[3],), x.dtype)
    a_h, a_w = axis_matrix(x.shape[1], size[0], interpolation), axis_matrix(x.shape[2], size[1], interpolation)
    return np.einsum("oh,nhwc,pw->nopc", a_h, x.astype(np.float64), a_w).astype(x.dtype)


def resize_backward(dy, x_shape, interpolation="nearest"):
    """dy (N, OH, OW, C) -> dx of x_shape (N, H, W, C): dx = A_h^T dy A_w."""
    where = "resize_backward"
    floats(where, "dy", dy)
    if dy.ndim != 4 or len(x_shape) != 4 or dy.shape[0] != x_shape[0] or dy.shape[3] != x_shape[3]:
        raise ValueError(f"{where}: expected dy of shape (N, OH, OW, C) for x of shape {shape_str(x_shape)}. "
                         f"Received: dy.shape={shape_str(dy.shape)}")
    resize_args(where, np.zeros((0,) + tuple(x_shape[1:]), dy.dtype), tuple(int(d) for d in dy.shape[1:3]),
                interpolation)
    if x_shape[1] == 0 or x_shape[2] == 0:
        return np.zeros(tuple(x_shape), dy.dtype)
    a_h, a_w = axis_matrix(x_shape[1], dy.shape[1], interpolation), axis_matrix(x_shape[2], dy.shape[2], interpolation)
    return np.einsum("oh,nopc,pw->nhwc", a_h, dy.astype(np.float64), a_w).astype(dy.dtype)

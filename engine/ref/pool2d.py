"""NumPy reference for the pool2d family: max and average pooling over windows of pool_size, and their
gradients. The spec that csrc/pool2d.cpp must match.

Dimensions: N batch, H/W input height/width, C channels, PH/PW pool size, SH/SW strides, OH/OW output
height/width. x is NHWC (data_format='channels_last') or NCHW ('channels_first'); the output has the same
layout. strides=None means strides = pool_size (windows side by side). The geometry is the convolution's
(engine/ref/conv2d.py) with the window in place of the kernel and no dilation:
    padding='valid'   OH = floor((H - PH) / SH) + 1
    padding='same'    OH = ceil(H / SH), the missing rows added around the input, the smaller half on top
Padded positions never count: max pooling ignores them, and average pooling divides by the number of real
input pixels in the window (Keras' and TensorFlow's rule; PyTorch's count_include_pad=False).

Ties: a max-pool window whose maximum appears several times sends the whole gradient to the FIRST of them,
in row-major order of the window (top row first, left to right). A NaN in the window is its maximum (the
first NaN, if several), so NaN propagates. argmax[n, oh, ow, c] holds h * W + w, the input position the
output came from, as int32, in the output's layout.
"""
import numpy as np

from ._check import check_output, floats, global_pool_args, global_pool_dy, int_pair, shape_str
from .conv2d import from_nhwc, geometry, to_nhwc


def _setup(where, x, pool_size, strides, padding, data_format):
    """(NHWC x, pool pair, strides pair, (OH, OW), pads) after checking every argument."""
    floats(where, "x", x)
    pool = int_pair(where, "pool_size", pool_size)
    strides = pool if strides is None else int_pair(where, "strides", strides)
    if padding not in ("valid", "same"):
        raise ValueError(f"{where}: expected padding to be 'valid' or 'same'. Received: padding={padding!r}")
    _, _, _, _, out_hw, pads = geometry(where, x.shape, pool, strides, padding, (1, 1), data_format, what="pool")
    return to_nhwc(x, data_format), pool, strides, out_hw, pads


def _windows(x, pool, strides, out_hw, pads, fill):
    """vals (N, OH, OW, PH * PW, C): every window, padded with `fill`; real (OH, OW, PH * PW, 1): False where
    the window position lies in the padding; pos (OH, OW, PH * PW): its input position h * W + w."""
    N, H, W, C = x.shape
    (OH, OW), (PH, PW), (SH, SW) = out_hw, pool, strides
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    inside = np.pad(np.ones((H, W), bool), ((top, bottom), (left, right)))
    flat = np.pad(np.arange(H * W, dtype=np.int64).reshape(H, W), ((top, bottom), (left, right)))
    vals = np.empty((N, OH, OW, PH * PW, C), dtype=x.dtype)
    real = np.empty((OH, OW, PH * PW, 1), dtype=bool)
    pos = np.empty((OH, OW, PH * PW), dtype=np.int64)
    for ph in range(PH):
        for pw in range(PW):
            rows = slice(ph, ph + (OH - 1) * SH + 1, SH)
            cols = slice(pw, pw + (OW - 1) * SW + 1, SW)
            vals[:, :, :, ph * PW + pw, :] = xp[:, rows, cols, :]
            real[:, :, ph * PW + pw, 0] = inside[rows, cols]
            pos[:, :, ph * PW + pw] = flat[rows, cols]
    return vals, real, pos


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"):
    """y[n, oh, ow, c] = max of x over the window of output pixel (oh, ow), in channel c.
    x: (N, H, W, C) or (N, C, H, W) -> y: (N, OH, OW, C) or (N, C, OH, OW), argmax: y.shape, int32"""
    xs, pool, strides, out_hw, pads = _setup("maxpool2d_forward", x, pool_size, strides, padding, data_format)
    vals, real, pos = _windows(xs, pool, strides, out_hw, pads, fill=-np.inf)
    nan = np.isnan(vals) & real
    top = np.where(real & ~nan, vals, -np.inf).max(axis=3, keepdims=True)       # the largest real number
    hit = np.where(nan.any(axis=3, keepdims=True), nan, real & (vals == top))  # NaN beats every number
    first = hit.argmax(axis=3)                                                  # argmax of booleans: the first True
    y = np.take_along_axis(vals, first[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    OH, OW = out_hw
    argmax = pos[np.arange(OH)[:, None, None], np.arange(OW)[None, :, None], first].astype(np.int32)
    return from_nhwc(y, data_format), from_nhwc(argmax, data_format)


def maxpool2d_backward(dy, x, argmax, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"):
    """dx[n, h, w, c] = sum of dy[n, oh, ow, c] over the outputs whose argmax is (h, w): each output's gradient
    goes to the one input it came from. dy, argmax: the forward output's shape -> dx: x.shape"""
    where = "maxpool2d_backward"
    xs, pool, strides, (OH, OW), pads = _setup(where, x, pool_size, strides, padding, data_format)
    floats(where, "dy", dy)
    N, H, W, C = xs.shape
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int32:
        raise TypeError(f"{where}: expected argmax to be the int32 array from maxpool2d_forward. "
                        f"Received: argmax.dtype={getattr(argmax, 'dtype', type(argmax).__name__)}")
    check_output(where, "dy", dy, (N, OH, OW, C), data_format)
    check_output(where, "argmax", argmax, (N, OH, OW, C), data_format)
    g, index = to_nhwc(dy, data_format), to_nhwc(argmax, data_format).astype(np.int64)
    _, real, pos = _windows(xs[:0], pool, strides, (OH, OW), pads, fill=0)
    inside = ((pos[None, :, :, :, None] == index[:, :, :, None, :]) & real[None]).any(axis=3)
    if not inside.all():                                  # an argmax off its window: not from maxpool2d_forward
        outside = from_nhwc(~inside, data_format).ravel()
        first = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{where}: expected each argmax value to be a position h * W + w inside its output's "
                         f"pooling window, as maxpool2d_forward returns it. Received: {int(outside.sum())} value(s) "
                         f"outside, the first {int(argmax.ravel()[first])} at flat index {first}")
    dx = np.zeros((N, H * W, C), dtype=dy.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(dx, (n, index, c), g)                       # overlapping windows may pick one input twice: add
    return from_nhwc(dx.reshape(N, H, W, C), data_format)


def avgpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"):
    """y[n, oh, ow, c] = mean of x over the real (unpadded) pixels of the window of (oh, ow).
    x: (N, H, W, C) or (N, C, H, W) -> y: (N, OH, OW, C) or (N, C, OH, OW)"""
    xs, pool, strides, out_hw, pads = _setup("avgpool2d_forward", x, pool_size, strides, padding, data_format)
    vals, real, _ = _windows(xs, pool, strides, out_hw, pads, fill=0)
    count = real.sum(axis=2)                                                    # (OH, OW, 1)
    return from_nhwc((vals.sum(axis=3) / count).astype(x.dtype), data_format)


def avgpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"):
    """dx[n, h, w, c] = sum over the windows that contain (h, w) of dy[n, oh, ow, c] / count(oh, ow).
    dy: the forward output's shape -> dx: x.shape"""
    where = "avgpool2d_backward"
    xs, pool, strides, (OH, OW), pads = _setup(where, x, pool_size, strides, padding, data_format)
    floats(where, "dy", dy)
    N, H, W, C = xs.shape
    check_output(where, "dy", dy, (N, OH, OW, C), data_format)
    _, real, pos = _windows(xs[:0], pool, strides, (OH, OW), pads, fill=0)
    share = to_nhwc(dy, data_format) / real.sum(axis=2)                       # (N, OH, OW, C)
    dx = np.zeros((N, H * W, C), dtype=dy.dtype)
    for p in range(pool[0] * pool[1]):
        ok = real[:, :, p, 0]                                                   # (OH, OW)
        np.add.at(dx, (slice(None), pos[:, :, p][ok]), share[:, ok, :])
    return from_nhwc(dx.reshape(N, H, W, C), data_format)


# --------------------------------------------------------------------------------------------- global pooling
# The mean or max over all of H and W: y (N, C) (or (N, 1, 1, C) / (N, C, 1, 1) with keepdims). These are the
# reduce family's mean and max (engine/ref/reduce.py) over the image axes, so the compiled backend runs its
# reduce kernels, with x seen as (N, H * W, C) (or (N * C, H * W, 1) for channels_first). Global max pooling
# follows Keras (a reduce_max): tied maxima share the gradient equally, unlike the window max above.


def global_avgpool2d_forward(x, data_format="channels_last", keepdims=False):
    """y[n, c] = mean of x[n, :, :, c] over the H * W pixels (summed in float64)."""
    axes = global_pool_args("global_avgpool2d_forward", x, data_format)
    return x.mean(axis=axes, keepdims=keepdims, dtype=np.float64).astype(x.dtype)


def global_avgpool2d_backward(dy, x, data_format="channels_last", keepdims=False):
    """dx[n, h, w, c] = dy[n, c] / (H * W)."""
    where = "global_avgpool2d_backward"
    axes = global_pool_args(where, x, data_format)
    g = global_pool_dy(where, dy, x, axes, keepdims)
    return np.broadcast_to(g / g.dtype.type(max(1, x.shape[axes[0]] * x.shape[axes[1]])), x.shape).copy()


def global_maxpool2d_forward(x, data_format="channels_last", keepdims=False):
    """y[n, c] = max of x[n, :, :, c] over the pixels; NaN propagates. An image of no pixels has no max."""
    where = "global_maxpool2d_forward"
    axes = global_pool_args(where, x, data_format)
    if x.shape[axes[0]] * x.shape[axes[1]] == 0:
        channels = x.shape[3] if axes == (1, 2) else x.shape[1]
        if x.shape[0] * channels > 0:
            raise ValueError(f"{where}: expected images of at least one pixel (the max of nothing is undefined). "
                             f"Received: x.shape={shape_str(x.shape)}")
        shape = [1 if d in axes else n for d, n in enumerate(x.shape)]
        return np.empty(shape if keepdims else [n for d, n in enumerate(shape) if d not in axes], x.dtype)
    return np.asarray(x.max(axis=axes, keepdims=keepdims))


def global_maxpool2d_backward(dy, x, y, data_format="channels_last", keepdims=False):
    """The gradient of each (n, c) goes to the pixels equal to its max; k tied pixels get dy / k each."""
    where = "global_maxpool2d_backward"
    axes = global_pool_args(where, x, data_format)
    g = global_pool_dy(where, dy, x, axes, keepdims)
    hit = x == np.asarray(y).reshape(g.shape)
    ties = np.maximum(hit.sum(axis=axes, keepdims=True), 1).astype(g.dtype)
    return np.where(hit, g / ties, 0).astype(g.dtype)

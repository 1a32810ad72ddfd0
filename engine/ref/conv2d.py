"""NumPy reference for the conv2d family: 2-D convolution by im2col + one matrix product, and col2im for the
input gradient. The spec that csrc/conv2d.cpp must match.

Dimensions: N batch, H/W input height/width, C input channels, F filters, KH/KW kernel height/width,
SH/SW strides, DH/DW dilation, OH/OW output height/width. Layout: x is NHWC (data_format='channels_last',
Keras' default) or NCHW ('channels_first'); the kernel is Keras' (KH, KW, C, F) either way, so weights
move between Keras and engine unchanged. The work is done in NHWC: an NCHW input is transposed on the
way in and the output on the way out.

Geometry (one axis; the same for the other). The dilated kernel spans KHe = (KH - 1) * DH + 1 rows.
    padding='valid'   no padding:  OH = floor((H - KHe) / SH) + 1
    padding='same'    OH = ceil(H / SH); the rows missing for that, max((OH - 1) * SH + KHe - H, 0),
                      are added as zeros, the smaller half on top (Keras' and TensorFlow's rule)
    explicit          ((top, bottom), (left, right)) zero rows/columns: OH = floor((H + top + bottom - KHe) / SH) + 1
Output pixel (oh, ow) reads input rows oh * SH - top + kh * DH for kh < KH (and the same for columns).

im2col lays every receptive field out as one row: cols (N * OH * OW, KH * KW * C), column index
(kh * KW + kw) * C + c. Then y = cols @ kernel.reshape(KH * KW * C, F) + bias: convolution is a GEMM.
"""
import numpy as np

from ._check import check_input, check_output, explicit_padding, floats, int_pair, shape_str


# --------------------------------------------------------------------------------------------- geometry


def axis_geometry(size, k, stride, dilation, padding):
    """(out, pad_before, pad_after) along one axis; padding is 'valid', 'same' or (before, after)."""
    span = (k - 1) * dilation + 1
    if padding == "same":
        out = -(-size // stride)                                     # ceil(size / stride)
        total = max((out - 1) * stride + span - size, 0)
        return out, total // 2, total - total // 2
    before, after = (0, 0) if padding == "valid" else padding
    return (size + before + after - span) // stride + 1, before, after


def geometry(where, x_shape, kernel_hw, strides, padding, dilation_rate, data_format, what="kernel"):
    """Check the convolution (or pooling window) arguments against an input shape and return
    (N, H, W, C, (OH, OW), (top, bottom, left, right)). x_shape is in data_format's layout."""
    check_input(where, x_shape, data_format)
    SH, SW = int_pair(where, "strides", strides)
    DH, DW = int_pair(where, "dilation_rate", dilation_rate)
    if isinstance(padding, str) and padding in ("valid", "same"):
        pads_h = pads_w = padding
    else:
        explicit = None if isinstance(padding, str) else explicit_padding(padding)
        if explicit is None:
            raise ValueError(f"{where}: expected padding to be 'valid', 'same' or ((top, bottom), (left, right)) "
                             f"of non-negative ints. Received: padding={padding!r}")
        pads_h, pads_w = explicit[:2], explicit[2:]
    if data_format == "channels_last":
        N, H, W, C = x_shape
    else:
        N, C, H, W = x_shape
    KH, KW = kernel_hw
    OH, top, bottom = axis_geometry(H, KH, SH, DH, pads_h)
    OW, left, right = axis_geometry(W, KW, SW, DW, pads_w)
    span_h, span_w = (KH - 1) * DH + 1, (KW - 1) * DW + 1
    if span_h > H + top + bottom or span_w > W + left + right:
        raise ValueError(f"{where}: the {what} window ({span_h}, {span_w}) (dilation included) is larger than the "
                         f"padded input ({H + top + bottom}, {W + left + right}). Received: "
                         f"x.shape={shape_str(x_shape)}, {what}_size=({KH}, {KW}), padding={padding!r}, "
                         f"dilation_rate={dilation_rate!r}")
    return N, H, W, C, (OH, OW), (top, bottom, left, right)


def to_nhwc(a, data_format):
    return a if data_format == "channels_last" else np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def from_nhwc(a, data_format):
    return a if data_format == "channels_last" else np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _setup(where, x, kernel, strides, padding, dilation_rate, data_format):
    """Check x and kernel; return geometry()'s tuple."""
    floats(where, "x", x)
    floats(where, "kernel", kernel)
    check_input(where, x.shape, data_format)
    if kernel.ndim != 4:
        raise ValueError(f"{where}: expected kernel of shape (KH, KW, C, F). Received: kernel.shape={shape_str(kernel.shape)}")
    C = x.shape[3] if data_format == "channels_last" else x.shape[1]
    if kernel.shape[2] != C:
        raise ValueError(f"{where}: expected kernel.shape[2] to equal the {C} input channels of x. "
                         f"Received: kernel.shape={shape_str(kernel.shape)}, x.shape={shape_str(x.shape)}")
    return geometry(where, x.shape, kernel.shape[:2], strides, padding, dilation_rate, data_format)


# --------------------------------------------------------------------------------------------- im2col


def _windows(OH, OW, KH, KW, strides, dilation_rate):
    """For each kernel offset (kh, kw): the slices of the padded input that it reads for every output pixel."""
    (SH, SW), (DH, DW) = strides, dilation_rate
    for kh in range(KH):
        for kw in range(KW):
            yield kh, kw, (slice(kh * DH, kh * DH + (OH - 1) * SH + 1, SH),
                           slice(kw * DW, kw * DW + (OW - 1) * SW + 1, SW))


def im2col(x, kernel_hw, strides, pads, dilation_rate, out_hw):
    """x (N, H, W, C) NHWC -> cols (N, OH, OW, KH, KW, C): cols[n, oh, ow, kh, kw, c] is the input value that
    kernel tap (kh, kw, c) meets at output pixel (oh, ow); 0 where the tap lies in the padding."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    (OH, OW), (KH, KW) = out_hw, kernel_hw
    cols = np.empty((x.shape[0], OH, OW, KH, KW, x.shape[3]), dtype=x.dtype)
    for kh, kw, (rows, columns) in _windows(OH, OW, KH, KW, strides, dilation_rate):
        cols[:, :, :, kh, kw, :] = xp[:, rows, columns, :]
    return cols


def col2im(dcols, x_shape, strides, pads, dilation_rate):
    """The adjoint of im2col: every entry of dcols (N, OH, OW, KH, KW, C) is added back onto the input pixel
    it was copied from (pixels read by several windows get the sum); the padding is cut off. -> (N, H, W, C)"""
    N, H, W, C = x_shape
    top, bottom, left, right = pads
    _, OH, OW, KH, KW, _ = dcols.shape
    dxp = np.zeros((N, H + top + bottom, W + left + right, C), dtype=dcols.dtype)
    for kh, kw, (rows, columns) in _windows(OH, OW, KH, KW, strides, dilation_rate):
        dxp[:, rows, columns, :] += dcols[:, :, :, kh, kw, :]
    return dxp[:, top:top + H, left:left + W, :]


# --------------------------------------------------------------------------------------------- the kernels


def conv2d_forward(x, kernel, bias=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                   data_format="channels_last"):
    """y[n, oh, ow, f] = bias[f] + sum over kh, kw, c of x[n, oh*SH - top + kh*DH, ow*SW - left + kw*DW, c] *
    kernel[kh, kw, c, f] (zero outside the input).
    x: (N, H, W, C) or (N, C, H, W); kernel: (KH, KW, C, F); bias: (F,) or None -> y: (N, OH, OW, F) or (N, F, OH, OW)"""
    where = "conv2d_forward"
    N, H, W, C, (OH, OW), pads = _setup(where, x, kernel, strides, padding, dilation_rate, data_format)
    KH, KW, _, F = kernel.shape
    if bias is not None:
        floats(where, "bias", bias)
        if bias.shape != (F,):
            raise ValueError(f"{where}: expected bias of shape ({F},), one value per filter. "
                             f"Received: bias.shape={shape_str(bias.shape)}")
    cols = im2col(to_nhwc(x, data_format), (KH, KW), int_pair(where, "strides", strides), pads,
                  int_pair(where, "dilation_rate", dilation_rate), (OH, OW))
    y = cols.reshape(N * OH * OW, KH * KW * C) @ kernel.reshape(KH * KW * C, F)          # the GEMM
    if bias is not None:
        y += bias
    return from_nhwc(y.reshape(N, OH, OW, F), data_format)


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                    data_format="channels_last", input_grad=True):
    """With Y = cols @ K + b (cols = im2col(x), K the kernel as (KH*KW*C, F)):
        dK = cols^T @ dY,   dcols = dY @ K^T,   dx = col2im(dcols),   dbias = sum of dY over n, oh, ow.
    dy: the forward output's shape -> dx: x.shape (None when input_grad is False: a network's first layer
    needs no gradient for its input), dkernel: kernel.shape, dbias: (F,)"""
    where = "conv2d_backward"
    N, H, W, C, (OH, OW), pads = _setup(where, x, kernel, strides, padding, dilation_rate, data_format)
    floats(where, "dy", dy)
    KH, KW, _, F = kernel.shape
    check_output(where, "dy", dy, (N, OH, OW, F), data_format)
    strides, dilation_rate = int_pair(where, "strides", strides), int_pair(where, "dilation_rate", dilation_rate)
    xs = to_nhwc(x, data_format)
    dy2 = to_nhwc(dy, data_format).reshape(N * OH * OW, F)                               # (M, F)
    cols = im2col(xs, (KH, KW), strides, pads, dilation_rate, (OH, OW)).reshape(N * OH * OW, KH * KW * C)
    dkernel = (cols.T @ dy2).reshape(kernel.shape)
    dbias = dy2.sum(axis=0, dtype=np.float64).astype(dy.dtype)
    if not input_grad:
        return None, dkernel, dbias
    dcols = (dy2 @ kernel.reshape(KH * KW * C, F).T).reshape(N, OH, OW, KH, KW, C)
    dx = col2im(dcols, xs.shape, strides, pads, dilation_rate)
    return from_nhwc(dx, data_format), dkernel, dbias


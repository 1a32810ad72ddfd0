"""Argument checks shared by the reference kernels. They raise the same errors, with the same words, as
csrc/bind_cpu/ (args.h), so a test can pin one message for every backend. The references also accept float64
(for gradient checks against finite differences); the compiled kernels take float32 only."""
import numpy as np

_FLOATS = (np.float32, np.float64)


def floats(where, name, a):
    """a must be a float32 (or, in the reference, float64) NumPy array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{where}: expected {name} to be a float32 numpy array. "
                        f"Received: type({name})={type(a).__name__}")
    if a.dtype not in _FLOATS:
        raise TypeError(f"{where}: expected {name} to be a float32 array. Received: {name}.dtype={a.dtype}")
    return a


def shape_str(shape):
    return str(tuple(int(d) for d in shape))


def same_shape(where, name, a, other, b):
    if a.shape != b.shape:
        raise ValueError(f"{where}: expected {name} to have the shape of {other} {shape_str(b.shape)}. "
                         f"Received: {name}.shape={shape_str(a.shape)}")


def axis_index(where, axis, ndim):
    """One axis, negative allowed, as a non-negative index."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{where}: expected axis to be an int. Received: axis={axis!r}")
    if ndim == 0 and axis in (0, -1):
        return 0
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: expected axis in [{-ndim}, {ndim}) for an array of {ndim} dimensions. "
                         f"Received: axis={axis}")
    return axis % ndim


def axes_tuple(where, axis, ndim):
    """None, an int or a sequence of ints, as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = [axis] if isinstance(axis, (int, np.integer)) else axis
    if isinstance(axis, (str, bytes)) or not hasattr(items, "__iter__") or \
            not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in items):
        raise TypeError(f"{where}: expected axis to be None, an int or a tuple of ints. Received: axis={axis!r}")
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            raise ValueError(f"{where}: expected axis in [{-ndim}, {ndim}) for an array of {ndim} dimensions. "
                             f"Received: axis={axis!r}")
        if a % ndim in out:
            raise ValueError(f"{where}: expected each axis once. Received: axis={axis!r}")
        out.append(a % ndim)
    return tuple(sorted(out))


# ---- the arguments of engine/ref/activation.py


def activation_x(where, x):
    return floats(where, "x", x)


def activation_grads(where, dy, x, y):
    for name, a in (("dy", dy), ("x", x), ("y", y)):
        floats(where, name, a)
    same_shape(where, "dy", dy, "x", x)
    same_shape(where, "y", y, "x", x)


# ---- the arguments of engine/ref/attention.py


def attention_extent(where, name, a, full):
    """a 4-D mask or bias whose first three axes are 1 or the full size (broadcast) and whose last is S."""
    ok = a.ndim == 4 and a.shape[3] == full[3] and all(d in (1, f) for d, f in zip(a.shape[:3], full[:3]))
    if not ok:
        raise ValueError(f"{where}: expected {name} of shape (1|B, 1|N, 1|T, S) = (1|{full[0]}, 1|{full[1]}, "
                         f"1|{full[2]}, {full[3]}). Received: {name}.shape={shape_str(a.shape)}")


def attention_args(where, q, k, v, mask, bias):
    """(B, T, S, N, K, H, HV) after checking every array."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        floats(where, name, a)
        if a.ndim != 4:
            raise ValueError(f"{where}: expected {name} of rank 4, (B, T or S, heads, head size). "
                             f"Received: {name}.shape={shape_str(a.shape)}")
    (B, T, N, H), (_, S, K, _), HV = q.shape, k.shape, v.shape[3]
    if k.shape[0] != B or k.shape[3] != H or v.shape[:3] != k.shape[:3] or K == 0 or N % K or S == 0 or H == 0:
        raise ValueError(f"{where}: expected k (B, S, K, H) and v (B, S, K, HV) for q (B, T, N, H), with S >= 1, "
                         f"H >= 1 and N a multiple of K. Received: q.shape={shape_str(q.shape)}, "
                         f"k.shape={shape_str(k.shape)}, v.shape={shape_str(v.shape)}")
    if mask is not None:
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise TypeError(f"{where}: expected mask to be a bool numpy array. Received: mask.dtype="
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        attention_extent(where, "mask", mask, (B, N, T, S))
    if bias is not None:
        floats(where, "bias", bias)
        attention_extent(where, "bias", bias, (B, N, T, S))
    return B, T, S, N, K, H, HV


# ---- the arguments of engine/ref/batchnorm.py


def batchnorm_view(where, x, axis):
    """x as (A, C, B) around axis, and the shape (1, C, 1) for broadcasting per-channel values."""
    if x.ndim < 1:
        raise ValueError(f"{where}: expected x with at least 1 dimension. Received: x.shape=()")
    ax = axis_index(where, axis, x.ndim)
    A, C = int(np.prod(x.shape[:ax])), x.shape[ax]
    return x.reshape(A, C, int(np.prod(x.shape[ax + 1:]))), C


def batchnorm_channels(where, C, **arrays):
    for name, a in arrays.items():
        floats(where, name, a)
        if a.shape != (C,):
            raise ValueError(f"{where}: expected {name} of shape ({C},), one value per channel of the normalised "
                             f"axis. Received: {name}.shape={shape_str(a.shape)}")


# ---- the arguments of engine/ref/conv2d.py

FORMATS = ("channels_last", "channels_first")


def int_pair(where, name, value):
    """A positive int or a pair of positive ints, as a pair (strides, dilation_rate, pool_size)."""
    items = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                  for v in items):
        raise ValueError(f"{where}: expected {name} to be a positive int or a pair of positive ints. "
                         f"Received: {name}={value!r}")
    return int(items[0]), int(items[1])


def check_format(where, data_format):
    if data_format not in FORMATS:
        raise ValueError(f"{where}: expected data_format to be 'channels_last' or 'channels_first'. "
                         f"Received: data_format={data_format!r}")
    return data_format


def explicit_padding(padding):
    """((top, bottom), (left, right)) of non-negative ints, or None when padding is not of that form."""
    try:
        (t, b), (l, r) = padding
    except (TypeError, ValueError):
        return None
    values = (t, b, l, r)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values):
        return None
    return tuple(int(v) for v in values)


def check_input(where, x_shape, data_format):
    """data_format is known and x has rank 4."""
    check_format(where, data_format)
    if len(x_shape) != 4:
        layout = "(N, H, W, C)" if data_format == "channels_last" else "(N, C, H, W)"
        raise ValueError(f"{where}: expected x of shape {layout} for data_format='{data_format}'. "
                         f"Received: x.shape={shape_str(x_shape)}")


def check_output(where, name, a, nhwc_shape, data_format):
    """a (dy, or max pooling's argmax) must have the forward output's shape, given as NHWC."""
    N, OH, OW, F = nhwc_shape
    expected = (N, OH, OW, F) if data_format == "channels_last" else (N, F, OH, OW)
    if a.shape != expected:
        raise ValueError(f"{where}: expected {name} of shape {shape_str(expected)} (the forward output). "
                         f"Received: {name}.shape={shape_str(a.shape)}")


# ---- the arguments of engine/ref/embedding.py


def embedding_ids(where, ids, num_rows):
    """ids as an int64 array, every one in [0, num_rows)."""
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected ids to be an integer numpy array. Received: ids.dtype="
                        f"{getattr(ids, 'dtype', type(ids).__name__)}")
    bad = (ids < 0) | (ids >= num_rows)
    if bad.any():
        raise ValueError(f"{where}: expected token ids in [0, {num_rows}). Received: a token id of {ids[bad][0]}")
    return ids.astype(np.int64, copy=False)


# ---- the arguments of engine/ref/layernorm.py


def layer_norm_args(where, x, **params):
    floats(where, "x", x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"{where}: expected x of shape (..., D) with D >= 1. Received: x.shape={shape_str(x.shape)}")
    for name, a in params.items():
        if a is None:
            continue
        floats(where, name, a)
        if a.shape != x.shape[-1:]:
            raise ValueError(f"{where}: expected {name} of shape ({x.shape[-1]},) for x of shape (..., "
                             f"{x.shape[-1]}). Received: {name}.shape={shape_str(a.shape)}")


# ---- the arguments of engine/ref/loss.py


def loss_rows(where, logits):
    floats(where, "logits", logits)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"{where}: expected logits of shape (N, C) with C >= 1. "
                         f"Received: logits.shape={shape_str(logits.shape)}")


def loss_labels(where, labels, logits):
    if not isinstance(labels, np.ndarray) or labels.dtype != np.int64:
        raise TypeError(f"{where}: expected labels to be an int64 numpy array. Received: labels.dtype="
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"{where}: expected labels of shape ({logits.shape[0]},), one class id per row. "
                         f"Received: labels.shape={shape_str(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        bad = labels[(labels < 0) | (labels >= logits.shape[1])][0]
        raise ValueError(f"{where}: expected class ids in [0, {logits.shape[1]}). Received: a label of {bad}")


# ---- the arguments of engine/ref/matmul.py


def matmul_shapes(where, a, b, trans_a, trans_b):
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{where}: expected a and b with at least 2 dimensions (use engine.ops.matmul for vectors). "
                         f"Received: a.shape={shape_str(a.shape)}, b.shape={shape_str(b.shape)}")
    if a.ndim > 2 and b.ndim > 2 and a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"{where}: expected equal batch dimensions, or one operand 2-D. "
                         f"Received: a.shape={shape_str(a.shape)}, b.shape={shape_str(b.shape)}")
    ka = a.shape[-2] if trans_a else a.shape[-1]
    kb = b.shape[-1] if trans_b else b.shape[-2]
    if ka != kb:
        raise ValueError(f"{where}: expected the inner dimensions to match, got K={ka} from a and K={kb} from b. "
                         f"Received: a.shape={shape_str(a.shape)}, b.shape={shape_str(b.shape)}, "
                         f"trans_a={bool(trans_a)}, trans_b={bool(trans_b)}")


# ---- the arguments of engine/ref/optimizer.py


def optimizer_args(where, param, grad, **slots):
    for name, a in (("param", param), ("grad", grad), *slots.items()):
        if a is None:
            continue
        floats(where, name, a)
        if a is not grad and not a.flags.writeable:
            raise TypeError(f"{where}: expected {name} to be writeable (it is updated in place)")
        if a.shape != param.shape:
            raise ValueError(f"{where}: expected {name} of the parameter's shape {shape_str(param.shape)}. "
                             f"Received: {name}.shape={shape_str(a.shape)}")
        if a is not grad and a.dtype != param.dtype:
            raise TypeError(f"{where}: expected {name} with the parameter's dtype {param.dtype}. "
                            f"Received: {name}.dtype={a.dtype}")


# ---- the arguments of engine/ref/pool2d.py


def global_pool_args(where, x, data_format):
    """The image axes of x, after checking x."""
    floats(where, "x", x)
    check_input(where, x.shape, data_format)
    return (1, 2) if data_format == "channels_last" else (2, 3)


def global_pool_dy(where, dy, x, axes, keepdims):
    floats(where, "dy", dy)
    keep = tuple(1 if d in axes else n for d, n in enumerate(x.shape))
    out = tuple(n for d, n in enumerate(x.shape) if d not in axes)
    if dy.shape not in (out, keep):
        raise ValueError(f"{where}: expected dy of shape {shape_str(keep if keepdims else out)} (the forward output). "
                         f"Received: dy.shape={shape_str(dy.shape)}")
    return dy.reshape(keep)


# ---- the arguments of engine/ref/resize.py

INTERPOLATIONS = ("nearest", "bilinear")


def resize_args(where, x, size, interpolation):
    floats(where, "x", x)
    if x.ndim != 4:
        raise ValueError(f"{where}: expected x of shape (N, H, W, C). Received: x.shape={shape_str(x.shape)}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{where}: expected interpolation to be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"{where}: expected size (OH, OW) of positive ints. Received: size={size!r}")


# ---- the arguments of engine/ref/rnn.py


def rnn_shape(where, name, a, expected, label):
    floats(where, name, a)
    if a.shape != tuple(expected):
        raise ValueError(f"{where}: expected {name} of shape {label} = {shape_str(expected)}. "
                         f"Received: {name}.shape={shape_str(a.shape)}")


def rnn_args(where, gates, x, recurrent_kernel, arrays, mask, recurrent_mask):
    """Check x (N, T, D), recurrent_kernel (U, G*U), then each (name, array, shape, label) in arrays; return
    (N, T, D, U)."""
    floats(where, "x", x)
    if x.ndim != 3:
        raise ValueError(f"{where}: expected x of shape (N, T, D). Received: x.shape={shape_str(x.shape)}")
    floats(where, "recurrent_kernel", recurrent_kernel)
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != gates * recurrent_kernel.shape[0]:
        raise ValueError(f"{where}: expected recurrent_kernel of shape (U, {gates if gates > 1 else ''}U). "
                         f"Received: recurrent_kernel.shape={shape_str(recurrent_kernel.shape)}")
    (N, T, D), U = x.shape, recurrent_kernel.shape[0]
    dims = {"N": N, "T": T, "D": D, "U": U, "GU": gates * U, "2": 2}
    for name, a, shape in arrays:
        rnn_shape(where, name, a, tuple(dims[d] for d in shape),
               "(" + ", ".join((f"{gates}U" if gates > 1 else "U") if d == "GU" else d for d in shape) + ("," if len(shape) == 1 else "") + ")")
    if mask is not None:
        rnn_shape(where, "mask", mask, (N, T), "(N, T)")
    if recurrent_mask is not None:
        rnn_shape(where, "recurrent_mask", recurrent_mask, (N, U), "(N, U)")
    return N, T, D, U

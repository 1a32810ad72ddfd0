"""engine.ops: differentiable operations on tensors, with Keras 3's names (keras.ops.matmul, relu, ...).

Each operation computes its output, then records how to send a gradient back to its inputs. The kernel
families (matmul, bias add, activations, softmax, reductions) run on the active backend's kernels
(engine.backend); plain broadcasting arithmetic (+, -, *, /, exp, ...) runs on NumPy, which is as fast.
Every function takes Tensors, NumPy arrays or numbers and returns a Tensor.

Gradient rules for broadcasting: an input that was broadcast gets the gradient summed back to its shape.

One file on purpose (past the ~600 lines a file in engine/ usually stays under): every op is here, so going from
a layer to its kernel is one hop. Each kernel family has a section that opens with the files holding its NumPy
reference (engine/ref/), its C++ kernel and binding (csrc/) and its tests; `grep -n "^# reference" ops.py` lists
them.
"""
import builtins

import numpy as np

from .backend import kernels
from .tensor import Tensor, _records, result, results

# --------------------------------------------------------------------------------------------- helpers


def to_array(x):
    """The NumPy array behind a Tensor, or x as an array."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def convert_to_tensor(x, dtype=None):
    """x as a Tensor: Tensors pass through unchanged; anything else is copied as float32 (or dtype)."""
    if isinstance(x, Tensor) and (dtype is None or x.dtype == np.dtype(dtype)):
        return x
    return Tensor(to_array(x), dtype=dtype)


def _pair(x1, x2):
    """Two operands as Tensors of one dtype. A number or array takes the dtype of the Tensor beside it
    (as a Python float does in NumPy 2); two Tensors of different float types meet at float64."""
    if isinstance(x1, Tensor) and isinstance(x2, Tensor):
        if x1.dtype != x2.dtype:                 # cast, which keeps both in the graph
            return cast(x1, np.float64), cast(x2, np.float64)
        return x1, x2
    if isinstance(x1, Tensor):
        return x1, Tensor._wrap(np.asarray(x2, dtype=x1.dtype))
    if isinstance(x2, Tensor):
        return Tensor._wrap(np.asarray(x1, dtype=x2.dtype)), x2
    return convert_to_tensor(x1), convert_to_tensor(x2)


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added or stretched, so it has `shape` again."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    stretched = tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    return g.sum(axis=tuple(range(lead)) + stretched, keepdims=True).reshape(shape)


def _grad_for(t, g):
    """g summed to t's shape, or None when t needs no gradient (saves the work)."""
    return _unbroadcast(g, t.shape) if t.requires_grad else None


# --------------------------------------------------------------------------------------------- arithmetic
# NumPy element-wise, broadcasting: no kernel family.   tests: tests/test_autograd.py


def add(x1, x2):
    """x1 + x2, broadcasting."""
    a, b = _pair(x1, x2)
    return result(a.data + b.data, (a, b), lambda g: (_grad_for(a, g), _grad_for(b, g)), "add")


def subtract(x1, x2):
    """x1 - x2, broadcasting."""
    a, b = _pair(x1, x2)
    return result(a.data - b.data, (a, b), lambda g: (_grad_for(a, g), _grad_for(b, -g)), "subtract")


def multiply(x1, x2):
    """x1 * x2 element-wise, broadcasting."""
    a, b = _pair(x1, x2)
    return result(a.data * b.data, (a, b),
                  lambda g: (_grad_for(a, g * b.data), _grad_for(b, g * a.data)), "multiply")


def divide(x1, x2):
    """x1 / x2 element-wise, broadcasting."""
    a, b = _pair(x1, x2)
    return result(a.data / b.data, (a, b),
                  lambda g: (_grad_for(a, g / b.data), _grad_for(b, -g * a.data / (b.data * b.data))), "divide")


def negative(x):
    """-x"""
    x = convert_to_tensor(x)
    return result(-x.data, (x,), lambda g: (-g,), "negative")


def power(x1, x2):
    """x1 ** x2. d/dx1 = x2 * x1^(x2 - 1); d/dx2 = x1^x2 * log(x1) (needs x1 > 0)."""
    a, b = _pair(x1, x2)
    y = a.data ** b.data

    def backward(g):
        ga = _grad_for(a, g * b.data * a.data ** (b.data - 1)) if a.requires_grad else None
        gb = _grad_for(b, g * y * np.log(a.data)) if b.requires_grad else None
        return ga, gb
    return result(y, (a, b), backward, "power")


def square(x):
    """x * x"""
    x = convert_to_tensor(x)
    return result(x.data * x.data, (x,), lambda g: (2 * g * x.data,), "square")


def sqrt(x):
    """Square root; d/dx = 1 / (2 sqrt(x))."""
    x = convert_to_tensor(x)
    y = np.sqrt(x.data)
    return result(y, (x,), lambda g: (g / (2 * y),), "sqrt")


def exp(x):
    """e^x"""
    x = convert_to_tensor(x)
    y = np.exp(x.data)
    return result(y, (x,), lambda g: (g * y,), "exp")


def log(x):
    """Natural logarithm; d/dx = 1 / x."""
    x = convert_to_tensor(x)
    return result(np.log(x.data), (x,), lambda g: (g / x.data,), "log")


def abs(x):
    """|x|; the gradient at 0 is 0."""
    x = convert_to_tensor(x)
    return result(np.abs(x.data), (x,), lambda g: (g * np.sign(x.data),), "abs")


absolute = abs


def maximum(x1, x2):
    """Element-wise max; where x1 == x2 the gradient goes to x1."""
    a, b = _pair(x1, x2)
    first = a.data >= b.data
    return result(np.where(first, a.data, b.data), (a, b),
                  lambda g: (_grad_for(a, g * first), _grad_for(b, g * ~first)), "maximum")


def minimum(x1, x2):
    """Element-wise min; where x1 == x2 the gradient goes to x1."""
    a, b = _pair(x1, x2)
    first = a.data <= b.data
    return result(np.where(first, a.data, b.data), (a, b),
                  lambda g: (_grad_for(a, g * first), _grad_for(b, g * ~first)), "minimum")


def clip(x, x_min, x_max):
    """x limited to [x_min, x_max]; the gradient passes where x is inside (bounds included)."""
    x = convert_to_tensor(x)
    inside = (x.data >= x_min) & (x.data <= x_max)
    return result(np.clip(x.data, x_min, x_max), (x,), lambda g: (g * inside,), "clip")


def where(condition, x1, x2):
    """x1 where condition is true, else x2 (broadcasting). condition gets no gradient."""
    cond = np.asarray(to_array(condition), dtype=bool)
    a, b = _pair(x1, x2)
    return result(np.where(cond, a.data, b.data), (a, b),
                  lambda g: (_grad_for(a, np.where(cond, g, 0)), _grad_for(b, np.where(cond, 0, g))), "where")


# --------------------------------------------------------------------------------------------- matmul family
# reference: engine/ref/matmul.py
# kernel:    csrc/matmul.cpp (bound in csrc/bind_cpu/bind_matmul.cpp)
# tests:     tests/test_matmul.py, tests/test_dense.py


def _operand(data):
    """(array, transposed) for a matmul kernel: a transposed view of a contiguous matrix goes in as the
    matrix itself with trans=True, so it is never copied."""
    if data.ndim >= 2 and not data.flags.c_contiguous:
        swapped = np.swapaxes(data, -1, -2)
        if swapped.flags.c_contiguous:
            return swapped, True
    return data, False


def matmul(x1, x2):
    """Matrix product with NumPy's rules: 1-D operands are vectors; leading (batch) dimensions broadcast.
    (M, K) @ (K, N) -> (M, N);  (..., M, K) @ (..., K, N) -> (..., M, N)."""
    a, b = _pair(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: expected inputs with at least 1 dimension (use multiply for scalars). "
                         f"Received: x1.shape={a.shape}, x2.shape={b.shape}")
    if a.ndim == 1 or b.ndim == 1:               # a vector is a row on the left, a column on the right
        y = matmul(reshape(a, (1, -1)) if a.ndim == 1 else a, reshape(b, (-1, 1)) if b.ndim == 1 else b)
        shape = y.shape[:-2] + (y.shape[-2:-1] if a.ndim > 1 else ()) + (y.shape[-1:] if b.ndim > 1 else ())
        return reshape(y, shape)
    if a.ndim > 2 and b.ndim > 2 and a.shape[:-2] != b.shape[:-2]:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = broadcast_to(a, batch + a.shape[-2:])
        b = broadcast_to(b, batch + b.shape[-2:])
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: expected x1.shape[-1] == x2.shape[-2]. "
                         f"Received: x1.shape={a.shape}, x2.shape={b.shape}")
    k = kernels(a.dtype)
    ad, ta = _operand(a.data)
    bd, tb = _operand(b.data)
    y = k.matmul_forward(ad, bd, ta, tb)

    def backward(g):
        da, db = k.matmul_backward(g, ad, bd, ta, tb)
        if ta:
            da = np.swapaxes(da, -1, -2)
        if tb:
            db = np.swapaxes(db, -1, -2)
        return (da if a.requires_grad else None), (db if b.requires_grad else None)
    return result(y, (a, b), backward, "matmul")


def dense(x, kernel, bias=None, activation="linear", negative_slope=0.2, alpha=1.0):
    """activation(x @ kernel + bias) in one kernel each way (the GEMM applies bias and activation to each tile
    while it is in cache). activation: 'linear', 'relu', 'leaky_relu', 'sigmoid', 'tanh', 'elu', 'gelu',
    'gelu_approximate', 'silu' or 'softplus'.    x: (..., D), kernel: (D, U), bias: (U,) or None -> (..., U)"""
    x, kernel = _pair(x, kernel)
    parents = (x, kernel) if bias is None else (x, kernel, convert_to_tensor(bias, x.dtype))
    k = kernels(x.dtype)
    b = None if bias is None else parents[2].data
    y, z = k.dense_forward(x.data, kernel.data, b, activation, negative_slope, alpha)

    def backward(g):
        dx, dw, db = k.dense_backward(g, x.data, kernel.data, z, y, activation, bias is not None, negative_slope, alpha)
        return (dx, dw) if bias is None else (dx, dw, db)
    return result(y, parents, backward, "dense")


def bias_add(x, bias):
    """x + bias along the last axis.    x: (..., D), bias: (D,)"""
    x, bias = _pair(x, bias)
    k = kernels(x.dtype)
    y = k.bias_add_forward(x.data, bias.data)
    return result(y, (x, bias), lambda g: k.bias_add_backward(g), "bias_add")


# --------------------------------------------------------------------------------------------- activations
# reference: engine/ref/activation.py
# kernel:    csrc/activation.cpp (bound in csrc/bind_cpu/bind_activation.cpp)
# tests:     tests/test_activation.py


def _activation(name, x, **params):
    x = convert_to_tensor(x)
    k = kernels(x.dtype)
    y = getattr(k, name + "_forward")(x.data, **params)
    backward_kernel = getattr(k, name + "_backward")
    return result(y, (x,), lambda g: (backward_kernel(g, x.data, y, **params),), name)


def linear(x):
    """The identity activation, y = x."""
    return _activation("linear", x)


def relu(x):
    """max(x, 0)"""
    return _activation("relu", x)


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x"""
    return _activation("leaky_relu", x, negative_slope=float(negative_slope))


def sigmoid(x):
    """1 / (1 + exp(-x))"""
    return _activation("sigmoid", x)


def tanh(x):
    """Hyperbolic tangent."""
    return _activation("tanh", x)


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)"""
    return _activation("elu", x, alpha=float(alpha))


def gelu(x, approximate=True):
    """x * Phi(x), Phi the normal CDF; approximate=True (Keras ops' default) uses the tanh form."""
    return _activation("gelu", x, approximate=bool(approximate))


def silu(x):
    """x * sigmoid(x)"""
    return _activation("silu", x)


swish = silu


def softplus(x):
    """log(1 + exp(x))"""
    return _activation("softplus", x)


# --------------------------------------------------------------------------------------------- softmax, log_softmax
# reference: engine/ref/attention.py
# kernel:    csrc/attention.cpp (bound in csrc/bind_cpu/bind_attention.cpp)
# tests:     tests/test_attention.py


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis (computed with the max subtracted: no overflow)."""
    x = convert_to_tensor(x)
    k = kernels(x.dtype)
    y = k.softmax_forward(x.data, axis)
    out = result(y, (x,), lambda g: (k.softmax_backward(g, y, axis),), "softmax")
    if axis in (-1, x.ndim - 1):
        out._logits = x            # cross-entropy on these probabilities uses the logits instead (exact)
    return out


def log_softmax(x, axis=-1):
    """log(softmax(x)) along axis, computed without taking the log of an underflowed 0."""
    x = convert_to_tensor(x)
    k = kernels(x.dtype)
    y = k.log_softmax_forward(x.data, axis)
    return result(y, (x,), lambda g: (k.log_softmax_backward(g, y, axis),), "log_softmax")


# --------------------------------------------------------------------------------------------- reductions
# reference: engine/ref/reduce.py
# kernel:    csrc/reduce.cpp (bound in csrc/bind_cpu/bind_reduce.cpp)
# tests:     tests/test_reduce.py


def _axis_arg(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def sum(x, axis=None, keepdims=False):
    """Sum over axis (None: all axes; an int; or a tuple of ints)."""
    x, axis = convert_to_tensor(x), _axis_arg(axis)
    k = kernels(x.dtype)
    y = k.sum_forward(x.data, axis, keepdims)
    return result(y, (x,), lambda g: (k.sum_backward(g, x.data, axis, keepdims),), "sum")


def mean(x, axis=None, keepdims=False):
    """Mean over axis (None: all axes; an int; or a tuple of ints)."""
    x, axis = convert_to_tensor(x), _axis_arg(axis)
    k = kernels(x.dtype)
    y = k.mean_forward(x.data, axis, keepdims)
    return result(y, (x,), lambda g: (k.mean_backward(g, x.data, axis, keepdims),), "mean")


def max(x, axis=None, keepdims=False):
    """Max over axis. Tied maxima share the gradient equally."""
    x, axis = convert_to_tensor(x), _axis_arg(axis)
    k = kernels(x.dtype)
    y = k.max_forward(x.data, axis, keepdims)
    return result(y, (x,), lambda g: (k.max_backward(g, x.data, y, axis, keepdims),), "max")


def min(x, axis=None, keepdims=False):
    """Min over axis, as -max(-x)."""
    return negative(max(negative(x), axis, keepdims))


# --------------------------------------------------------------------------------------------- shapes
# NumPy views and copies: no kernel family.   tests: tests/test_autograd.py


def reshape(x, newshape):
    """The same values in a new shape (one dimension may be -1)."""
    x = convert_to_tensor(x)
    try:
        y = x.data.reshape(newshape)
    except (ValueError, TypeError):
        raise ValueError(f"reshape: expected a shape with {x.size} elements in all. "
                         f"Received: x.shape={x.shape}, newshape={newshape}") from None
    return result(y, (x,), lambda g: (g.reshape(x.shape),), "reshape")


def transpose(x, axes=None):
    """Permute the axes (None reverses them)."""
    x = convert_to_tensor(x)
    if axes is not None:
        axes = tuple(axes)
        if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)) or len(axes) != x.ndim:
            raise ValueError(f"transpose: expected axes to be a permutation of 0..{x.ndim - 1}. "
                             f"Received: axes={axes}")
    y = np.transpose(x.data, axes)
    inverse = None if axes is None else tuple(np.argsort([a % x.ndim for a in axes]))
    return result(y, (x,), lambda g: (np.transpose(g, inverse),), "transpose")


def expand_dims(x, axis):
    """Insert a dimension of size 1 at axis."""
    x = convert_to_tensor(x)
    return reshape(x, np.expand_dims(x.data, axis).shape)


def squeeze(x, axis=None):
    """Remove dimensions of size 1 (all of them, or the one at axis)."""
    x = convert_to_tensor(x)
    return reshape(x, np.squeeze(x.data, axis).shape)


def broadcast_to(x, shape):
    """x repeated along broadcast axes to `shape`; the gradient is summed back."""
    x = convert_to_tensor(x)
    y = np.broadcast_to(x.data, shape)
    return result(y, (x,), lambda g: (_unbroadcast(g, x.shape),), "broadcast_to")


def _same_dtype(xs, where):
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise ValueError(f"{where}: expected a non-empty list of tensors. Received: {type(xs).__name__} "
                         f"of length {len(xs) if hasattr(xs, '__len__') else 'none'}")
    ts = [convert_to_tensor(x) for x in xs]
    if len({t.dtype for t in ts}) > 1:
        ts = [convert_to_tensor(t, np.float64) for t in ts]
    return ts


def concatenate(xs, axis=0):
    """Join tensors along an existing axis."""
    ts = _same_dtype(xs, "concatenate")
    try:
        y = np.concatenate([t.data for t in ts], axis=axis)
    except ValueError as err:                     # AxisError is a ValueError too
        raise ValueError(f"concatenate: expected tensors whose shapes match except along axis={axis}. "
                         f"Received: shapes={[t.shape for t in ts]} ({err})") from None
    ax = axis % y.ndim
    bounds = np.cumsum([t.shape[ax] for t in ts])[:-1]
    return result(y, tuple(ts), lambda g: tuple(np.split(g, bounds, axis=ax)), "concatenate")


def stack(xs, axis=0):
    """Join tensors of one shape along a new axis."""
    ts = _same_dtype(xs, "stack")
    try:
        y = np.stack([t.data for t in ts], axis=axis)
    except ValueError as err:                     # AxisError is a ValueError too
        raise ValueError(f"stack: expected tensors of one shape. Received: shapes={[t.shape for t in ts]} "
                         f"({err})") from None
    ax = axis % y.ndim
    return result(y, tuple(ts), lambda g: tuple(np.moveaxis(g, ax, 0)), "stack")


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def take_index(x, index):
    """x[index] with NumPy's rules (ints, slices, None, ..., integer or boolean arrays). The gradient
    lands on the selected entries; an entry selected twice gets both gradients."""
    x = convert_to_tensor(x)
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    y = x.data[index]
    basic = _is_basic_index(index)

    def backward(g):
        dx = np.zeros_like(x.data)
        if basic:                                # each entry at most once: assign
            dx[index] = g
        else:                                    # fancy indexing may repeat entries: add them all
            np.add.at(dx, index, g)
        return (dx,)
    return result(y, (x,), backward, "getitem")


# --------------------------------------------------------------------------------------------- cross-entropy
# reference: engine/ref/loss.py
# kernel:    csrc/loss.cpp (bound in csrc/bind_cpu/bind_loss.cpp)
# tests:     tests/test_loss_kernels.py, tests/test_losses.py
# Keras 3's functions: per-sample losses (the last axis reduced), from probabilities or from logits.
# From logits, and from the output of ops.softmax (whose logits are remembered), they run the fused
# kernels of engine/ref/loss.py: no log of zero, no overflow at logits of 1e4, gradient probs - targets.

_EPSILON = 1e-7                      # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _softmax_logits(output):
    return getattr(output, "_logits", None) if isinstance(output, Tensor) else None


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum(target * log(softmax)) over the last axis.    target, output: (N, C) -> (N,)"""
    output = convert_to_tensor(output)
    target = np.asarray(to_array(target), dtype=output.dtype)
    if target.shape != output.shape:
        raise ValueError(f"categorical_crossentropy: expected target and output of one shape. "
                         f"Received: target.shape={target.shape}, output.shape={output.shape}")
    if axis not in (-1, output.ndim - 1):
        raise ValueError(f"categorical_crossentropy: only the last axis holds classes. Received: axis={axis}")
    logits = output if from_logits else _softmax_logits(output)
    if logits is None:                                   # plain probabilities: clip, then log
        p = clip(divide(output, sum(output, axis=-1, keepdims=True)), _EPSILON, 1 - _EPSILON)
        return negative(sum(multiply(target, log(p)), axis=-1))
    rows = reshape(logits, (-1, logits.shape[-1]))
    t = target.reshape(rows.shape)
    k = kernels(rows.dtype)
    loss, probs = k.softmax_cross_entropy_forward(rows.data, t)
    out = result(loss, (rows,), lambda g: (k.softmax_cross_entropy_backward(g, probs, t),), "softmax_cross_entropy")
    return reshape(out, logits.shape[:-1])


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-log(softmax[class]) with target holding class ids.    target: (N,) or (N, 1), output: (N, C) -> (N,)"""
    output = convert_to_tensor(output)
    labels = np.asarray(to_array(target))
    if labels.ndim == output.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.shape != output.shape[:-1]:
        raise ValueError(f"sparse_categorical_crossentropy: expected target of shape {output.shape[:-1]} (one class "
                         f"id per row of output). Received: target.shape={np.shape(to_array(target))}, "
                         f"output.shape={output.shape}")
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise ValueError("sparse_categorical_crossentropy: expected integer class ids in target. "
                         "Received: fractional values")
    labels = labels.astype(np.int64).reshape(-1)
    num_classes = output.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"sparse_categorical_crossentropy: expected class ids in [0, {num_classes}). "
                         f"Received: a class id of {bad}")
    logits = output if from_logits else _softmax_logits(output)
    if logits is None:
        p = clip(reshape(output, (-1, num_classes)), _EPSILON, 1 - _EPSILON)
        picked = take_index(p, (np.arange(len(labels)), labels))
        return reshape(negative(log(picked)), output.shape[:-1])
    rows = reshape(logits, (-1, num_classes))
    k = kernels(rows.dtype)
    loss, probs = k.sparse_softmax_cross_entropy_forward(rows.data, labels)
    out = result(loss, (rows,), lambda g: (k.sparse_softmax_cross_entropy_backward(g, probs, labels),),
                 "sparse_softmax_cross_entropy")
    return reshape(out, output.shape[:-1])


def binary_crossentropy(target, output, from_logits=False):
    """-(t log p + (1 - t) log(1 - p)), element by element (not reduced).    target, output: same shape"""
    output = convert_to_tensor(output)
    target = np.asarray(to_array(target), dtype=output.dtype)
    if target.shape != output.shape:
        raise ValueError(f"binary_crossentropy: expected target and output of one shape. "
                         f"Received: target.shape={target.shape}, output.shape={output.shape}")
    if from_logits:
        k = kernels(output.dtype)
        loss = k.sigmoid_cross_entropy_forward(output.data, target)
        return result(loss, (output,), lambda g: (k.sigmoid_cross_entropy_backward(g, output.data, target),),
                      "sigmoid_cross_entropy")
    p = clip(output, _EPSILON, 1 - _EPSILON)
    return negative(add(multiply(target, log(p)), multiply(1 - target, log(subtract(1.0, p)))))


# --------------------------------------------------------------------------------------------- embedding
# reference: engine/ref/embedding.py
# kernel:    csrc/embedding.cpp (bound in csrc/bind_cpu/bind_embedding.cpp)
# tests:     tests/test_embedding.py


def embedding(ids, table):
    """table[ids]: the rows of table picked by integer ids (a NumPy int array; ids get no gradient).
    ids: (...) in [0, V), table: (V, D) -> (..., D). The gradient adds each output row into its table row."""
    table = convert_to_tensor(table)
    ids = to_array(ids)
    k = kernels(table.dtype)
    y = k.embedding_forward(ids, table.data)
    return result(y, (table,), lambda g: (k.embedding_backward(g, ids, table.shape[0]),), "embedding")


# --------------------------------------------------------------------------------------------- attention
# reference: engine/ref/attention.py
# kernel:    csrc/attention_fused.cpp, csrc/attention_fused_backward.cpp (bound in csrc/bind_cpu/bind_attention.cpp)
# tests:     tests/test_attention_fused.py
# Keras 3's ops.dot_product_attention on the fused kernel, or on separate ops (softmax, matmul) when asked.


def _attention_extent(where, name, a, full):
    """A mask or bias broadcastable to full = (B, N, T, S), as the kernels take it: 4-D, each of the first three
    axes 1 or full, the last S (a last axis of 1 is repeated; the others stay broadcast, so a padding mask of
    shape (B, 1, 1, S) costs B * S, not B * N * T * S)."""
    if a.ndim > 4:
        raise ValueError(f"{where}: expected {name} broadcastable to (batch, heads, queries, keys) = {full}. "
                         f"Received: {name}.shape={a.shape}")
    a = a.reshape((1,) * (4 - a.ndim) + a.shape)
    if any(d not in (1, f) for d, f in zip(a.shape, full)):
        raise ValueError(f"{where}: expected {name} broadcastable to (batch, heads, queries, keys) = {full}. "
                         f"Received: {name}.shape={a.shape}")
    return np.ascontiguousarray(np.broadcast_to(a, a.shape[:3] + full[3:]))


def _attention_inputs(where, query, key, value, bias, mask, scale):
    q, k, v = _same_dtype([query, key, value], where)
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim != 4:
            raise ValueError(f"{where}: expected {name} of rank 4, (batch, sequence, heads, head_dim). "
                             f"Received: {name}.shape={t.shape}")
    (B, T, N, H), (_, S, K, _) = q.shape, k.shape
    if k.shape[0] != B or v.shape[:3] != k.shape[:3] or k.shape[3] != H:
        raise ValueError(f"{where}: expected key (batch, S, heads, {H}) and value (batch, S, heads, value_dim) "
                         f"matching query (batch, T, heads, {H}). Received: query.shape={q.shape}, "
                         f"key.shape={k.shape}, value.shape={v.shape}")
    if K == 0 or N % K:
        raise ValueError(f"{where}: expected query heads to be a multiple of key heads (grouped-query attention). "
                         f"Received: query.shape={q.shape}, key.shape={k.shape}")
    if S == 0 or H == 0:
        raise ValueError(f"{where}: expected at least one key and head_dim >= 1. Received: key.shape={k.shape}")
    full = (B, N, T, S)
    if mask is not None:
        mask = to_array(mask)
        if mask.dtype.kind not in "biu":
            raise TypeError(f"{where}: expected a boolean mask (True = attend); pass an additive mask as `bias`. "
                            f"Received: mask.dtype={mask.dtype}")
        mask = _attention_extent(where, "mask", mask.astype(bool), full)
    if bias is not None:
        bias = convert_to_tensor(bias, q.dtype)
        _attention_extent(where, "bias", bias.data, full)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating))):
        raise TypeError(f"{where}: expected scale to be a number or None. Received: scale={scale!r}")
    return q, k, v, bias, mask, full


def _attention_fused(q, k, v, bias, mask, scale, is_causal, full, return_weights=False):
    """The fused kernel as an autograd op: (o, weights or None). The weights carry no gradient."""
    kern = kernels(q.dtype)
    bias_data = None if bias is None else _attention_extent("dot_product_attention", "bias", bias.data, full)
    o, lse, weights = kern.attention_forward(q.data, k.data, v.data, mask, bias_data, scale, is_causal,
                                             return_weights)

    def backward(g):
        bias_grad = bias is not None and bias.requires_grad
        dq, dk, dv, dbias = kern.attention_backward(g, q.data, k.data, v.data, o, lse, mask, bias_data, scale,
                                                    is_causal, bias_grad)
        return (dq, dk, dv) + ((_unbroadcast(dbias, bias.shape) if bias_grad else None,) if bias is not None else ())
    parents = (q, k, v) if bias is None else (q, k, v, bias)
    out = result(o, parents, backward, "dot_product_attention")
    return out, (None if weights is None else Tensor._wrap(weights))


def _attention_unfused(q, k, v, bias, mask, scale, is_causal, full, dropout=None):
    """The same attention from ops: the whole (B, N, T, S) score matrix in memory, softmax, then the weighted sum
    of values. Every step records its own gradient (and dropout, a callable, may act on the weights).
    -> (o (B, T, N, HV), weights (B, N, T, S))"""
    (B, T, N, H), (_, S, K, HV) = q.shape, v.shape
    G = N // K
    qh = reshape(transpose(q, (0, 2, 1, 3)), (B, K, G, T, H))           # query head n = kh * G + g
    kh = expand_dims(transpose(k, (0, 2, 3, 1)), 2)                      # (B, K, 1, H, S)
    scores = reshape(multiply(matmul(qh, kh), scale), full)               # (B, N, T, S)
    if bias is not None:
        scores = add(scores, bias)
    allowed = np.ones((1, 1, T, S), bool) if mask is None else mask
    if is_causal:
        allowed = allowed & np.tril(np.ones((T, S), bool))
    if mask is not None or is_causal:
        scores = where(np.broadcast_to(allowed, full), scores, _MASKED)
    weights = softmax(scores, axis=-1)
    dropped = weights if dropout is None else dropout(weights)
    vh = expand_dims(transpose(v, (0, 2, 1, 3)), 2)                      # (B, K, 1, S, HV)
    o = matmul(reshape(dropped, (B, K, G, T, S)), vh)                    # (B, K, G, T, HV)
    return transpose(reshape(o, (B, N, T, HV)), (0, 2, 1, 3)), weights


_MASKED = float(np.float32(-0.7 * np.finfo(np.float32).max))   # Keras' stand-in for a masked logit


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None):
    """softmax(query key^T * scale + bias, masked) value, per batch and head (Keras 3's ops function).

    query (B, T, N, H), key (B, S, K, H), value (B, S, K, HV) -> (B, T, N, HV); K may divide N (grouped-query
    attention: query head n reads key head n // (N / K)). scale defaults to 1 / sqrt(H). mask: bool, True =
    attend, broadcastable to (B, N, T, S); bias: added to the scores, broadcastable to (B, N, T, S);
    is_causal: query t sees keys 0..t. Masked scores become -0.7 * float32 max (as in Keras), so a query whose
    every key is masked attends uniformly.
    flash_attention: None or True runs the fused kernel (tiles and an online softmax: memory grows with T + S,
    not T * S); False computes the full score matrix with separate ops (softmax, matmul), the naive way."""
    where = "dot_product_attention"
    q, k, v, bias, mask, full = _attention_inputs(where, query, key, value, bias, mask, scale)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    if flash_attention is False:
        return _attention_unfused(q, k, v, bias, mask, scale, is_causal, full)[0]
    return _attention_fused(q, k, v, bias, mask, scale, bool(is_causal), full)[0]


# --------------------------------------------------------------------------------------------- layer normalisation
# reference: engine/ref/layernorm.py
# kernel:    csrc/layernorm.cpp (bound in csrc/bind_cpu/bind_layernorm.cpp)
# tests:     tests/test_layernorm.py


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over `axis` (an int or a tuple of ints; the statistics
    are taken over all of them together). gamma and beta have the shape of those axes, or are None.
    rms_scaling: x / sqrt(mean(x^2) + epsilon) * gamma (no centring, beta unused)."""
    x = convert_to_tensor(x)
    axes = sorted({a % builtins.max(x.ndim, 1) for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)})
    if not axes or any(a >= x.ndim for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)):
        raise ValueError(f"layer_normalization: expected axis within the {x.ndim} axes of x. Received: axis={axis}")
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = transpose(x, rest + axes) if rest + axes != list(range(x.ndim)) else x
    feature_shape = tuple(x.shape[a] for a in axes)
    rows = reshape(moved, moved.shape[:len(rest)] + (int(np.prod(feature_shape)),))
    params = []
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is None:
            params.append(None)
            continue
        p = convert_to_tensor(p, x.dtype)
        if p.shape != feature_shape:
            raise ValueError(f"layer_normalization: expected {name} of shape {feature_shape} (the normalised axes). "
                             f"Received: {name}.shape={p.shape}")
        params.append(reshape(p, (-1,)))
    g, b = params
    if rms_scaling:
        b = None
    k = kernels(x.dtype)
    y, mean, rstd = k.layer_norm_forward(rows.data, None if g is None else g.data, None if b is None else b.data,
                                         float(epsilon), bool(rms_scaling))

    def backward(grad):
        dx, dgamma, dbeta = k.layer_norm_backward(grad, rows.data, mean, rstd, None if g is None else g.data,
                                                  bool(rms_scaling))
        return (dx,) + tuple(d for p, d in ((g, dgamma), (b, dbeta)) if p is not None)
    parents = (rows,) + tuple(p for p in (g, b) if p is not None)
    out = reshape(result(y, parents, backward, "layer_normalization"), moved.shape)
    if moved is x:
        return out
    return transpose(out, tuple(np.argsort(rest + axes)))


# --------------------------------------------------------------------------------------------- recurrent
# reference: engine/ref/rnn.py
# kernel:    csrc/lstm.cpp, csrc/gru.cpp, csrc/simple_rnn.cpp, csrc/rnn.h (bound in csrc/bind_cpu/bind_rnn.cpp)
# tests:     tests/test_rnn.py, tests/test_recurrent.py
# SimpleRNN, LSTM and GRU over whole sequences, each one fused kernel call forward and one backward. A kernel has
# several outputs (the sequence and the last states): tensor.results makes them share one graph node, whose
# backward runs once with a gradient for every output (zeros for an unused one).


def _floats(*xs):
    """Tensors of one float dtype: float64 if any input is float64 (then the reference kernels run)."""
    dtype = np.float64 if any(to_array(x).dtype == np.float64 for x in xs) else np.float32
    return [convert_to_tensor(x, dtype) for x in xs]


def _mask_array(mask, dtype):
    return None if mask is None else np.ascontiguousarray(to_array(mask), dtype=dtype)


def lstm(x, h0, c0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
         recurrent_activation="sigmoid", return_gates=False):
    """An LSTM over a whole sequence: (y, h, c) = every h_t (N, T, U) and the last states (N, U).
    x (N, T, D), kernel (D, 4U), recurrent_kernel (U, 4U), bias (4U,) in Keras' layout (gates i, f, c, o);
    mask (N, T): 0 marks padded steps (state carried); recurrent_mask (N, U): recurrent dropout, scaled.
    return_gates=True also returns what the kernel saves for its backward: (y, h, c, gates, cells), gates
    (N, T, 4U) every step's i, f, c, o after their activations and cells (N, T, U) every c_t; these two carry
    no gradient (LSTM.trace_gates shows them)."""
    x, h0, c0, kernel, recurrent_kernel, bias = parents = _floats(x, h0, c0, kernel, recurrent_kernel, bias)
    k = kernels(x.dtype)
    mask, recurrent_mask = _mask_array(mask, x.dtype), _mask_array(recurrent_mask, x.dtype)
    args = (x.data, h0.data, c0.data, kernel.data, recurrent_kernel.data, bias.data, mask, recurrent_mask, activation,
            recurrent_activation)
    if not return_gates and not _records(parents):       # inference: the kernel saves nothing for a backward
        return tuple(Tensor._wrap(a) for a in k.lstm_forward(*args, save=False))
    y, h, c, gates, cells = k.lstm_forward(*args)

    def backward(dy, dh, dc):
        return k.lstm_backward(dy, dh, dc, x.data, h0.data, c0.data, kernel.data, recurrent_kernel.data, mask,
                               recurrent_mask, y, gates, cells, activation, recurrent_activation)
    outputs = results((y, h, c), tuple(parents), backward, "lstm")
    return outputs + (Tensor._wrap(gates), Tensor._wrap(cells)) if return_gates else outputs


def gru(x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
        recurrent_activation="sigmoid"):
    """A GRU (Keras' reset_after=True) over a whole sequence: (y, h). kernel (D, 3U), recurrent_kernel (U, 3U),
    bias (2, 3U) (input bias, recurrent bias), gates z, r, h; mask and recurrent_mask as in lstm."""
    x, h0, kernel, recurrent_kernel, bias = parents = _floats(x, h0, kernel, recurrent_kernel, bias)
    k = kernels(x.dtype)
    mask, recurrent_mask = _mask_array(mask, x.dtype), _mask_array(recurrent_mask, x.dtype)
    args = (x.data, h0.data, kernel.data, recurrent_kernel.data, bias.data, mask, recurrent_mask, activation,
            recurrent_activation)
    if not _records(parents):                    # inference: the kernel saves nothing for a backward
        return tuple(Tensor._wrap(a) for a in k.gru_forward(*args, save=False))
    y, h, gates, recurrent_h = k.gru_forward(*args)

    def backward(dy, dh):
        return k.gru_backward(dy, dh, x.data, h0.data, kernel.data, recurrent_kernel.data, mask, recurrent_mask, y,
                              gates, recurrent_h, activation, recurrent_activation)
    return results((y, h), tuple(parents), backward, "gru")


def simple_rnn(x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh"):
    """A fully connected RNN over a whole sequence, h_t = activation(x_t W + h_{t-1} R + b): (y, h).
    kernel (D, U), recurrent_kernel (U, U), bias (U,); mask and recurrent_mask as in lstm."""
    x, h0, kernel, recurrent_kernel, bias = parents = _floats(x, h0, kernel, recurrent_kernel, bias)
    k = kernels(x.dtype)
    mask, recurrent_mask = _mask_array(mask, x.dtype), _mask_array(recurrent_mask, x.dtype)
    y, h = k.simple_rnn_forward(x.data, h0.data, kernel.data, recurrent_kernel.data, bias.data, mask, recurrent_mask,
                                activation)

    def backward(dy, dh):
        return k.simple_rnn_backward(dy, dh, x.data, h0.data, kernel.data, recurrent_kernel.data, mask,
                                     recurrent_mask, y, activation)
    return results((y, h), tuple(parents), backward, "simple_rnn")


# --------------------------------------------------------------------------------------------- conv, pool, batch norm
# Keras 3's ops.conv, ops.max_pool, ops.average_pool and ops.pad, engine's global pooling and fused batch norm, on
# the conv2d, pool2d and batchnorm families (a section each, below). 2-D operands are images (N, H, W, C) (or
# (N, C, H, W) with data_format='channels_first'); 1-D ones, sequences (N, L, C), run as images of height 1.


def _image_format(data_format):
    return "channels_last" if data_format is None else data_format


def _as_image(x, data_format, where):
    """x as a rank-4 image batch: a rank-3 sequence gets a height of 1. Returns (image, was_sequence)."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        axis = 1 if data_format == "channels_last" else 2
        return expand_dims(x, axis), True
    raise ValueError(f"{where}: expected inputs of rank 3 (N, L, C) or 4 (N, H, W, C). Received: inputs.shape={x.shape}")


def _sequence_padding(padding, span):
    """A 1-D padding as the 2-D kernels take it: 'causal' puts the whole span - 1 on the left (the start)."""
    if padding == "causal":
        return ((0, 0), (span - 1, 0))
    return padding


def _from_image(y, was_sequence, data_format):
    if not was_sequence:
        return y
    return squeeze(y, 1 if data_format == "channels_last" else 2)


# --------------------------------------------------------------------------------------------- conv2d family
# reference: engine/ref/conv2d.py
# kernel:    csrc/conv2d.cpp, csrc/conv2d_winograd.cpp (bound in csrc/bind_cpu/bind_conv2d.cpp)
# tests:     tests/test_conv2d.py, tests/test_cnn_layers.py


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1, bias=None):
    """Convolution, as keras.ops.conv, with an optional fused bias. 2-D: inputs (N, H, W, C), kernel
    (KH, KW, C, F) -> (N, OH, OW, F); 1-D: inputs (N, L, C), kernel (K, C, F) -> (N, OL, F), where padding may
    also be 'causal'. strides and dilation_rate: an int or one per spatial axis; padding: 'valid' or 'same'."""
    x, w = convert_to_tensor(inputs), convert_to_tensor(kernel)
    data_format = _image_format(data_format)
    padding = padding.lower() if isinstance(padding, str) else padding
    image, was_sequence = _as_image(x, data_format, "conv")
    if was_sequence:
        if w.ndim != 3:
            raise ValueError(f"conv: expected a kernel of shape (K, C, F) for 1-D inputs. Received: kernel.shape={w.shape}")
        dilation = dilation_rate[0] if isinstance(dilation_rate, (tuple, list)) else dilation_rate
        padding = _sequence_padding(padding, (w.shape[0] - 1) * dilation + 1)
        strides = (1, strides[0] if isinstance(strides, (tuple, list)) else strides)
        dilation_rate = (1, dilation)
        w = expand_dims(w, 0)
    elif padding == "causal":
        raise ValueError("conv: padding='causal' is for 1-D inputs (N, L, C). Received: padding='causal' with "
                         f"inputs.shape={x.shape}")
    b = None if bias is None else convert_to_tensor(bias, image.dtype)
    if w.dtype != image.dtype:
        image, w = convert_to_tensor(image, np.float64), convert_to_tensor(w, np.float64)
    k = kernels(image.dtype)
    args = (strides, padding, dilation_rate, data_format)
    y = k.conv2d_forward(image.data, w.data, None if b is None else b.data, *args)

    def backward(g):
        grads = k.conv2d_backward(g, image.data, w.data, *args, image.requires_grad)   # dx (or None), dkernel, dbias
        return grads if b is not None else grads[:2]
    out = result(y, (image, w) if b is None else (image, w, b), backward, "conv2d")
    return _from_image(out, was_sequence, data_format)


# --------------------------------------------------------------------------------------------- pool2d family
# reference: engine/ref/pool2d.py
# kernel:    csrc/pool2d.cpp, global pooling on csrc/reduce.cpp (bound in csrc/bind_cpu/bind_pool2d.cpp)
# tests:     tests/test_pool2d.py, tests/test_cnn_layers.py


def _pool(kind, inputs, pool_size, strides, padding, data_format):
    x = convert_to_tensor(inputs)
    data_format = _image_format(data_format)
    padding = padding.lower() if isinstance(padding, str) else padding
    where = "max_pool" if kind == "max" else "average_pool"
    image, was_sequence = _as_image(x, data_format, where)
    if was_sequence:
        pool_size = (1, pool_size[0] if isinstance(pool_size, (tuple, list)) else pool_size)
        if strides is not None:
            strides = (1, strides[0] if isinstance(strides, (tuple, list)) else strides)
    k = kernels(image.dtype)
    args = (pool_size, strides, padding, data_format)
    if kind == "max":
        y, argmax = k.maxpool2d_forward(image.data, *args)
        out = result(y, (image,), lambda g: (k.maxpool2d_backward(g, image.data, argmax, *args),), "maxpool2d")
    else:
        y = k.avgpool2d_forward(image.data, *args)
        out = result(y, (image,), lambda g: (k.avgpool2d_backward(g, image.data, *args),), "avgpool2d")
    return _from_image(out, was_sequence, data_format)


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max over each pool_size window (keras.ops.max_pool): 2-D (N, H, W, C) or 1-D (N, L, C) inputs.
    strides=None means strides = pool_size. The gradient goes to the first maximum of each window."""
    return _pool("max", inputs, pool_size, strides, padding, data_format)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Mean over each pool_size window (keras.ops.average_pool); with padding='same' the padded pixels are
    not counted."""
    return _pool("average", inputs, pool_size, strides, padding, data_format)


def _global_pool(kind, inputs, data_format, keepdims):
    x, data_format = convert_to_tensor(inputs), _image_format(data_format)
    k = kernels(x.dtype)
    y = getattr(k, f"global_{kind}pool2d_forward")(x.data, data_format, keepdims)
    saved = (y,) if kind == "max" else ()                   # the max's backward finds the maxima again from y
    backward = getattr(k, f"global_{kind}pool2d_backward")
    return result(y, (x,), lambda g: (backward(g, x.data, *saved, data_format, keepdims),), f"global_{kind}pool2d")


def global_average_pool(inputs, data_format=None, keepdims=False):
    """The mean over height and width of images (N, H, W, C) -> (N, C) (or (N, 1, 1, C) with keepdims)."""
    return _global_pool("avg", inputs, data_format, keepdims)


def global_max_pool(inputs, data_format=None, keepdims=False):
    """The max over height and width of images (N, H, W, C) -> (N, C); tied maxima share the gradient (Keras)."""
    return _global_pool("max", inputs, data_format, keepdims)


# --------------------------------------------------------------------------------------------- padding
# NumPy: no kernel family.   tests: tests/test_cnn_layers.py


def pad(x, pad_width, mode="constant", constant_values=None):
    """keras.ops.pad in 'constant' mode: pad_width is one (before, after) pair per axis (or one pair for all);
    the gradient is the unpadded part of the upstream gradient."""
    x = convert_to_tensor(x)
    if mode != "constant":
        raise ValueError(f"pad: engine pads with a constant only (the gradient of the other modes is not "
                         f"implemented). Received: mode={mode!r}")
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: expected pad_width with one (before, after) pair per axis of x (rank {x.ndim}). "
                         f"Received: pad_width={pad_width!r}") from None
    if (widths < 0).any():
        raise ValueError(f"pad: expected non-negative pad widths. Received: pad_width={pad_width!r}")
    y = np.pad(x.data, widths, constant_values=0 if constant_values is None else constant_values)
    inside = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, x.shape))
    return result(y, (x,), lambda g: (g[inside],), "pad")


# --------------------------------------------------------------------------------------------- resize family
# reference: engine/ref/resize.py
# kernel:    csrc/resize.cpp (bound in csrc/bind_cpu/bind_resize.cpp)
# tests:     tests/test_resize.py


def resize(images, size, interpolation="bilinear", data_format=None):
    """keras.ops.image.resize for 'nearest' and 'bilinear' (half-pixel centres, no antialiasing): images
    (N, H, W, C) (or (N, C, H, W) with data_format='channels_first') to (N, OH, OW, C), size = (OH, OW). The
    gradient sends each output pixel's gradient back to the input pixels it read, with their weights."""
    x = convert_to_tensor(images)
    data_format = _image_format(data_format)
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"resize: expected data_format to be 'channels_last' or 'channels_first'. "
                         f"Received: data_format={data_format!r}")
    if x.ndim != 4:
        raise ValueError(f"resize: expected images of rank 4 (N, H, W, C). Received: images.shape={x.shape}")
    image = x if data_format == "channels_last" else transpose(x, (0, 2, 3, 1))
    k = kernels(image.dtype)
    shape = image.shape
    y = k.resize_forward(np.ascontiguousarray(image.data), size, interpolation)
    out = result(y, (image,), lambda g: (k.resize_backward(np.ascontiguousarray(g), shape, interpolation),), "resize")
    return out if data_format == "channels_last" else transpose(out, (0, 3, 1, 2))


# --------------------------------------------------------------------------------------------- batchnorm family
# reference: engine/ref/batchnorm.py
# kernel:    csrc/batchnorm.cpp (bound in csrc/bind_cpu/bind_batchnorm.cpp)
# tests:     tests/test_batchnorm.py


def batch_norm(x, gamma, beta, moving_mean, moving_variance, momentum=0.99, epsilon=1e-3, training=False, axis=-1):
    """Fused batch normalisation (engine's, the kernel BatchNormalization runs): y = gamma * (x - mean) /
    sqrt(var + epsilon) + beta per channel of `axis`. training=True uses the batch's mean and (biased) variance
    and updates the NumPy arrays moving_mean and moving_variance in place (m = m * momentum + stat * (1 -
    momentum)); training=False uses them. Gradients flow to x, gamma and beta."""
    x, gamma, beta = convert_to_tensor(x), convert_to_tensor(gamma), convert_to_tensor(beta)
    k = kernels(x.dtype)
    y, mean_, inv_std = k.batchnorm_forward(x.data, gamma.data, beta.data, moving_mean, moving_variance,
                                            float(momentum), float(epsilon), bool(training), axis)

    def backward(g):
        return k.batchnorm_backward(g, x.data, gamma.data, mean_, inv_std, bool(training), axis)
    return result(y, (x, gamma, beta), backward, "batchnorm")


# --------------------------------------------------------------------------------------------- NumPy math
# The rest of keras.ops that the lecture's examples call (the generative models' schedules, embeddings and
# samplers): creation, element-wise math, scans, indexing. They run on NumPy, with their gradients written
# out here; an op whose result has no useful gradient (argmax, sign, comparisons, creation) returns values that
# are cut from the graph. Integer results are NumPy arrays, as engine keeps integers in arrays.


def _unary(op, x, forward, derivative):
    """forward(x) element-wise; the gradient is g * derivative(x, y)."""
    x = convert_to_tensor(x)
    y = forward(x.data)
    return result(y, (x,), lambda g: (g * derivative(x.data, y),), op)


def sin(x): return _unary("sin", x, np.sin, lambda a, y: np.cos(a))
def cos(x): return _unary("cos", x, np.cos, lambda a, y: -np.sin(a))
def tan(x): return _unary("tan", x, np.tan, lambda a, y: 1 + y * y)
def arcsin(x): return _unary("arcsin", x, np.arcsin, lambda a, y: 1 / np.sqrt(1 - a * a))
def arccos(x): return _unary("arccos", x, np.arccos, lambda a, y: -1 / np.sqrt(1 - a * a))
def arctan(x): return _unary("arctan", x, np.arctan, lambda a, y: 1 / (1 + a * a))
def sinh(x): return _unary("sinh", x, np.sinh, lambda a, y: np.cosh(a))
def cosh(x): return _unary("cosh", x, np.cosh, lambda a, y: np.sinh(a))
def log1p(x): return _unary("log1p", x, np.log1p, lambda a, y: 1 / (1 + a))
def expm1(x): return _unary("expm1", x, np.expm1, lambda a, y: y + 1)
def log2(x): return _unary("log2", x, np.log2, lambda a, y: 1 / (a * np.log(2.0)))
def log10(x): return _unary("log10", x, np.log10, lambda a, y: 1 / (a * np.log(10.0)))
def reciprocal(x): return _unary("reciprocal", x, np.reciprocal, lambda a, y: -y * y)
def rsqrt(x): return _unary("rsqrt", x, lambda a: 1 / np.sqrt(a), lambda a, y: -0.5 * y * y * y)


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    return negative(softplus(negative(x)))


def stop_gradient(x):
    """The same values, cut from the graph: no gradient flows back through it."""
    return Tensor._wrap(convert_to_tensor(x).data)


def _constant(where, values):
    """A float result as a Tensor that needs no gradient; an integer or bool one as a NumPy array."""
    values = np.asarray(values)
    return Tensor._wrap(values) if values.dtype.kind == "f" else values


def sign(x): return _constant("sign", np.sign(to_array(x)))
def floor(x): return _constant("floor", np.floor(to_array(x)))
def ceil(x): return _constant("ceil", np.ceil(to_array(x)))
def round(x, decimals=0): return _constant("round", np.round(to_array(x), decimals))


# ---- creation


def _dtype(where, dtype, default="float32"):
    try:
        kind = np.dtype(default if dtype is None else dtype)
    except TypeError:
        kind = None
    if kind is None or kind.kind not in "fiub" or (kind.kind == "f" and kind not in (np.float32, np.float64)):
        raise ValueError(f"{where}: expected dtype float32, float64, an integer type or bool. Received: dtype={dtype!r}")
    return kind


def _shape_arg(where, shape):
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if items is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in items):
        raise ValueError(f"{where}: expected shape to be a tuple of non-negative ints. Received: shape={shape!r}")
    return tuple(int(d) for d in items)


def full(shape, fill_value, dtype=None):
    """An array of `shape` filled with fill_value (float32 unless dtype says otherwise)."""
    return _constant("full", np.full(_shape_arg("full", shape), fill_value, dtype=_dtype("full", dtype)))


def zeros(shape, dtype=None): return full(shape, 0, dtype)
def ones(shape, dtype=None): return full(shape, 1, dtype)


def full_like(x, fill_value, dtype=None):
    """full(shape(x), fill_value), in x's float type unless dtype says otherwise."""
    a = to_array(x)
    return full(a.shape, fill_value, dtype if dtype is not None else (a.dtype if a.dtype.kind == "f" else None))


def zeros_like(x, dtype=None): return full_like(x, 0, dtype)
def ones_like(x, dtype=None): return full_like(x, 1, dtype)


def eye(N, M=None, k=0, dtype=None):
    """The N x M matrix with ones on diagonal k."""
    return _constant("eye", np.eye(N, M, k, dtype=_dtype("eye", dtype)))


identity = eye


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in [start, stop): integers (a NumPy array) for int arguments, as Keras."""
    values = np.arange(start, stop, step)
    if dtype is None and values.dtype.kind == "f":
        dtype = "float32"
    return _constant("arange", values if dtype is None and values.dtype.kind in "iu" else
                     values.astype(_dtype("arange", dtype)))


def linspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """num evenly spaced values from start to stop (stop included unless endpoint=False)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"linspace: expected num to be an int >= 0. Received: num={num!r}")
    return _constant("linspace", np.linspace(start, stop, int(num), endpoint=endpoint, axis=axis)
                     .astype(_dtype("linspace", dtype)))


def one_hot(x, num_classes, axis=-1, dtype=None):
    """Integer class ids -> one-hot vectors of length num_classes on `axis` (float32); ids out of range give zeros."""
    ids = np.asarray(to_array(x))
    if ids.dtype.kind not in "iu":
        raise ValueError(f"one_hot: expected integer class ids. Received: dtype={ids.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: expected num_classes to be a positive int. Received: num_classes={num_classes!r}")
    out = (ids[..., None] == np.arange(num_classes)).astype(_dtype("one_hot", dtype))
    return _constant("one_hot", np.moveaxis(out, -1, axis))


# ---- conversion and inspection


def convert_to_numpy(x):
    """A NumPy copy of x (a Tensor, an array or numbers)."""
    return np.array(to_array(x))


def shape(x):
    """The shape of x as a tuple (None where a symbolic tensor's size is unknown)."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def cast(x, dtype):
    """x as `dtype`: a float type keeps the gradient (cast back on the way); an integer or bool type gives a
    NumPy array (cut from the graph)."""
    kind = _dtype("cast", dtype)
    if kind.kind != "f":
        return to_array(x).astype(kind)
    x = convert_to_tensor(x)
    if x.dtype == kind:
        return x
    return result(x.data.astype(kind), (x,), lambda g: (g.astype(x.dtype),), "cast")


# ---- comparisons and integer reductions (values only)


def equal(x1, x2): return np.equal(to_array(x1), to_array(x2))
def not_equal(x1, x2): return np.not_equal(to_array(x1), to_array(x2))
def greater(x1, x2): return np.greater(to_array(x1), to_array(x2))
def greater_equal(x1, x2): return np.greater_equal(to_array(x1), to_array(x2))
def less(x1, x2): return np.less(to_array(x1), to_array(x2))
def less_equal(x1, x2): return np.less_equal(to_array(x1), to_array(x2))


def argmax(x, axis=None, keepdims=False):
    return np.argmax(to_array(x), axis=axis, keepdims=keepdims)


def argmin(x, axis=None, keepdims=False):
    return np.argmin(to_array(x), axis=axis, keepdims=keepdims)


def argsort(x, axis=-1):
    return np.argsort(to_array(x), axis=axis, kind="stable")


# ---- scans and reductions with gradients


def cumsum(x, axis=None):
    """Running sums along axis (of the flattened x when axis is None); the gradient is the running sum of g
    from the end."""
    x = convert_to_tensor(x)
    flat = axis is None
    a = x.data.reshape(-1) if flat else x.data
    ax = 0 if flat else axis
    y = np.cumsum(a, axis=ax)

    def backward(g):
        dx = np.flip(np.cumsum(np.flip(g, ax), axis=ax), ax)
        return (dx.reshape(x.shape),)
    return result(y, (x,), backward, "cumsum")


def cumprod(x, axis=None):
    """Running products along axis (of the flattened x when axis is None). Gradient: dL/dx_i = sum over j >= i of
    g_j * y_j / x_i, computed without dividing (so zeros in x are exact) from the products before and after i."""
    x = convert_to_tensor(x)
    flat = axis is None
    a = x.data.reshape(-1) if flat else x.data
    ax = 0 if flat else axis % a.ndim
    y = np.cumprod(a, axis=ax)

    def backward(g):
        a_m, g_m = np.moveaxis(a, ax, -1), np.moveaxis(g, ax, -1)
        n = a_m.shape[-1]
        before = np.concatenate([np.ones_like(a_m[..., :1]), np.cumprod(a_m[..., :-1], axis=-1)], axis=-1)
        dx = np.zeros_like(a_m)
        for i in range(n):                       # dy_j/dx_i = before_i * prod(x[i+1..j]) for j >= i
            after = np.cumprod(np.concatenate([np.ones_like(a_m[..., :1]), a_m[..., i + 1:]], axis=-1), axis=-1)
            dx[..., i] = before[..., i] * (g_m[..., i:] * after[..., : n - i]).sum(axis=-1)
        return (np.moveaxis(dx, -1, ax).reshape(x.shape),)
    return result(y, (x,), backward, "cumprod")


def prod(x, axis=None, keepdims=False):
    """The product over axis; its gradient is that of the last running product."""
    x = convert_to_tensor(x)
    if axis is None:
        out = take_index(cumprod(x), -1) if x.size else convert_to_tensor(np.ones((), x.dtype))
        return reshape(out, (1,) * x.ndim) if keepdims else out
    axis = axis % x.ndim
    out = take_index(cumprod(x, axis), (slice(None),) * axis + (-1,))
    return expand_dims(out, axis) if keepdims else out


def var(x, axis=None, keepdims=False):
    """The mean of (x - mean(x))^2 over axis."""
    x = convert_to_tensor(x)
    return mean(square(x - mean(x, axis, keepdims=True)), axis, keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis, keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, without overflow; its gradient is softmax(x)."""
    x = convert_to_tensor(x)
    m = np.max(x.data, axis=axis, keepdims=True) if x.size else np.zeros((1,) * x.ndim, x.dtype)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x.data - m)
    s = np.sum(e, axis=axis, keepdims=True)
    y = np.log(s) + m
    out = y if keepdims else np.squeeze(y, axis=axis)

    def backward(g):
        gk = g if keepdims else np.expand_dims(g, axis if axis is not None else tuple(range(x.ndim)))
        return (gk * e / s,)
    return result(out, (x,), backward, "logsumexp")


def norm(x, ord=None, axis=None, keepdims=False):
    """The 2-norm (Frobenius for a matrix) over axis: sqrt(sum(x^2))."""
    if ord not in (None, 2, "fro", "euclidean"):
        raise ValueError(f"norm: engine computes the 2-norm only. Received: ord={ord!r}")
    return sqrt(sum(square(x), axis, keepdims))


# ---- indexing, tiling, splitting


def _axis_of(where, axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{where}: expected axis in [{-ndim}, {ndim}). Received: axis={axis!r}")
    return int(axis) % ndim


def take(x, indices, axis=None):
    """x's entries at `indices` along axis (of the flattened x when axis is None), as np.take. The gradient
    adds back onto each selected entry (twice for an index taken twice)."""
    x = convert_to_tensor(x)
    ids = np.asarray(to_array(indices))
    if ids.dtype.kind not in "iu":
        raise ValueError(f"take: expected integer indices. Received: dtype={ids.dtype}")
    if axis is None:
        return take_index(reshape(x, (-1,)), ids)
    axis = _axis_of("take", axis, x.ndim)
    return take_index(x, (slice(None),) * axis + (ids,))


def take_along_axis(x, indices, axis=None):
    """np.take_along_axis: for each position, the entry of x that indices names along axis."""
    x = convert_to_tensor(x)
    ids = np.asarray(to_array(indices))
    if axis is None:
        return take(x, ids.reshape(-1))
    axis = _axis_of("take_along_axis", axis, x.ndim)
    grid = list(np.ix_(*[np.arange(n) for n in ids.shape]))
    grid[axis] = ids
    return take_index(x, tuple(np.broadcast_arrays(*grid)))


def repeat(x, repeats, axis=None):
    """Each entry repeated `repeats` times along axis (of the flattened x when axis is None), as np.repeat."""
    x = convert_to_tensor(x)
    n = x.size if axis is None else x.shape[_axis_of("repeat", axis, x.ndim)]
    return take(x, np.repeat(np.arange(n), repeats), axis)


def tile(x, repeats):
    """x repeated along each axis, as np.tile."""
    x = convert_to_tensor(x)
    reps = (repeats,) if isinstance(repeats, (int, np.integer)) else tuple(repeats)
    rank = builtins.max(len(reps), x.ndim)
    reps = (1,) * (rank - len(reps)) + reps
    x = reshape(x, (1,) * (rank - x.ndim) + x.shape)
    index = tuple(np.arange(r * n) % n for r, n in zip(reps, x.shape))
    return take_index(x, np.ix_(*index)) if rank else x


def flip(x, axis=None):
    """x reversed along axis (every axis when None)."""
    x = convert_to_tensor(x)
    axes = range(x.ndim) if axis is None else [_axis_of("flip", a, x.ndim) for a in
                                                (axis if isinstance(axis, (list, tuple)) else [axis])]
    index = [slice(None)] * x.ndim
    for a in axes:
        index[a] = slice(None, None, -1)
    return take_index(x, tuple(index))


def split(x, indices_or_sections, axis=0):
    """A list of pieces of x along axis, as np.split (equal sections, or the indices to cut at)."""
    x = convert_to_tensor(x)
    axis = _axis_of("split", axis, x.ndim)
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(f"split: expected a number of sections that divides the axis of size {n}. "
                             f"Received: indices_or_sections={indices_or_sections!r}")
        step = n // int(indices_or_sections)
        cuts = list(range(step, n, step))
    else:
        cuts = [int(c) for c in indices_or_sections]
    bounds = [0] + cuts + [n]
    return [take_index(x, (slice(None),) * axis + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def swapaxes(x, axis1, axis2):
    x = convert_to_tensor(x)
    order = list(range(x.ndim))
    a, b = _axis_of("swapaxes", axis1, x.ndim), _axis_of("swapaxes", axis2, x.ndim)
    order[a], order[b] = order[b], order[a]
    return transpose(x, tuple(order))


def moveaxis(x, source, destination):
    x = convert_to_tensor(x)
    order = [a for a in range(x.ndim) if a != _axis_of("moveaxis", source, x.ndim)]
    order.insert(_axis_of("moveaxis", destination, x.ndim), source % x.ndim)
    return transpose(x, tuple(order))


def ravel(x):
    return reshape(x, (-1,))


def triu(x, k=0):
    """x with the entries below diagonal k set to 0 (over the last two axes)."""
    x = convert_to_tensor(x)
    return multiply(x, np.triu(np.ones(x.shape[-2:], x.dtype), k))


def tril(x, k=0):
    """x with the entries above diagonal k set to 0 (over the last two axes)."""
    x = convert_to_tensor(x)
    return multiply(x, np.tril(np.ones(x.shape[-2:], x.dtype), k))


def outer(x1, x2):
    """The outer product of two vectors (flattened): (m,), (n,) -> (m, n)."""
    return multiply(expand_dims(ravel(x1), 1), expand_dims(ravel(x2), 0))


def dot(x1, x2):
    """NumPy's dot for the cases the examples use: vectors give their inner product, otherwise matmul."""
    a, b = convert_to_tensor(x1), convert_to_tensor(x2)
    if a.ndim == 1 and b.ndim == 1:
        return sum(multiply(a, b))
    return matmul(a, b)

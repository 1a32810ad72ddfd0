"""Tensor and reverse-mode autograd.

A Tensor holds a NumPy array (`.data`, float32 unless you ask for float64), an optional gradient
(`.grad`, a Tensor) and, when it was made by an operation that needs gradients, that operation's
inputs and backward function. The graph's vertices:
    a leaf                          a tensor no recorded operation made (weights, inputs)
    the output of one operation     a tensor from result(): its ._parents and ._backward(g) are the operation's
    a _Node                         one operation with several outputs, from results(): its ._backward takes a
                                    gradient per output; each output tensor points to it (._node, ._index)
`loss.backward()` walks the vertices from `loss` back to the leaves in reverse topological order, so a
vertex's turn comes after every gradient for it has arrived: each backward runs once, with the gradients
summed, and each leaf's gradient is added into its `.grad`.

Gradients accumulate, as in PyTorch: a second backward() adds to `.grad` instead of replacing it. Clear
them with `t.grad = None` (optimizers and fit() do this for you) before the next step.

Recording is on when any input has requires_grad=True; `with engine.no_grad():` turns it off.
"""
import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _GradMode:
    enabled = True


class no_grad:
    """Context manager (and decorator): operations inside do not record the graph, so nothing in the
    block gets gradients and no intermediate arrays are kept alive. Use it for inference."""

    def __enter__(self):
        self._previous = _GradMode.enabled
        _GradMode.enabled = False
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self._previous
        return False

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
        return wrapped


def is_grad_enabled():
    """True unless inside `engine.no_grad()`."""
    return _GradMode.enabled


def _as_array(data, dtype):
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        dtype = np.float32                       # Keras' default float, whatever the input's type
    dtype = np.dtype(dtype)
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"tensor: expected dtype float32 or float64. Received: dtype={dtype}")
    try:
        return np.array(data, dtype=dtype)       # always a copy: the tensor owns its data
    except (TypeError, ValueError) as err:
        raise TypeError(f"tensor: expected numbers, nested lists of numbers or a numpy array. "
                        f"Received: {type(data).__name__} ({err})") from None


class Tensor:
    """An n-dimensional array that can record the operations made with it, for autograd.

    Tensor(data, requires_grad=False, dtype=None): data is a number, nested lists or a NumPy array;
    it is copied and stored as float32 (or float64 if dtype says so)."""

    __slots__ = ("data", "grad", "requires_grad", "name", "_parents", "_backward", "_node", "_index", "_op", "_logits",
                 "__weakref__")
    __array_ufunc__ = None                       # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.name = None
        self._parents = None                     # set when result() made this tensor
        self._backward = None
        self._node = None                        # set when results() made it: the _Node it shares; ._index, set
                                                 # with it, says which output of the node this tensor is
        self._op = None
        self._logits = None

    # ---- array-like
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def numpy(self):
        """The data as a NumPy array (shared, not copied: don't write into it while training)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item: expected a tensor with one element. Received: shape={self.shape}")
        return float(self.data.reshape(()))

    @property
    def value(self):
        """The tensor itself: Keras 3 code reads a weight's array as `variable.value` (the guide's
        `v.value.grad` is engine's `v.grad`)."""
        return self

    def detach(self):
        """The same data, cut off from the graph (no gradient flows through it)."""
        return Tensor._wrap(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    @staticmethod
    def _wrap(data):
        """A leaf tensor around `data`, without copying or checking it."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t.name = data, None, False, None
        t._parents = t._backward = t._node = t._op = t._logits = None
        return t

    # ---- autograd
    def backward(self, gradient=None):
        """Add d(self)/d(leaf) into `.grad` of every leaf tensor with requires_grad=True.

        self must hold one element, or `gradient` (the upstream gradient, shaped like self) is given."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require gradients: no tensor it was computed from "
                               "has requires_grad=True, or it was computed under engine.no_grad().")
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(f"backward: expected a tensor with one element (a scalar loss), or an explicit "
                                 f"`gradient` of the same shape. Received: shape={self.shape}")
            seed = np.ones_like(self.data)
        else:
            seed = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(f"backward: expected gradient of shape {self.shape}. "
                                 f"Received: gradient.shape={seed.shape}")
        # id(vertex) -> its gradient so far; a _Node's is a list, one gradient (or None) per output
        grads = {id(self): seed} if self._node is None else _node_grads({}, self, seed)
        for vertex in reversed(_topological_order(self if self._node is None else self._node)):
            g = grads.pop(id(vertex), None)
            if g is None:
                continue
            if type(vertex) is _Node:
                parent_grads = vertex._backward(*_filled(g, vertex.outputs))
            else:
                if type(g) is not np.ndarray or g.dtype != vertex.data.dtype:   # NumPy gives scalars for 0-d results
                    g = np.asarray(g, dtype=vertex.data.dtype)
                if vertex._backward is None:     # a leaf: keep its gradient
                    if vertex.grad is None:
                        vertex.grad = Tensor._wrap(np.array(g, copy=True))
                    else:
                        vertex.grad = Tensor._wrap(vertex.grad.data + g)
                    continue
                parent_grads = vertex._backward(g)
            for parent, pg in zip(vertex._parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if parent._node is not None:     # one output of several: its _Node collects a gradient per output
                    _node_grads(grads, parent, pg)
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg   # never in place: pg may be shared

    # ---- operators and methods: see engine/ops.py for the math and the kernels
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.subtract(self, other)
    def __rsub__(self, other): return _ops.subtract(other, self)
    def __mul__(self, other): return _ops.multiply(self, other)
    def __rmul__(self, other): return _ops.multiply(other, self)
    def __truediv__(self, other): return _ops.divide(self, other)
    def __rtruediv__(self, other): return _ops.divide(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __pow__(self, other): return _ops.power(self, other)
    def __rpow__(self, other): return _ops.power(other, self)
    def __neg__(self): return _ops.negative(self)
    def __pos__(self): return self
    def __getitem__(self, index): return _ops.take_index(self, index)

    def __lt__(self, other): return Tensor._wrap(self.data < _ops.to_array(other))
    def __le__(self, other): return Tensor._wrap(self.data <= _ops.to_array(other))
    def __gt__(self, other): return Tensor._wrap(self.data > _ops.to_array(other))
    def __ge__(self, other): return Tensor._wrap(self.data >= _ops.to_array(other))

    def sum(self, axis=None, keepdims=False): return _ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _ops.min(self, axis, keepdims)

    def reshape(self, *shape):
        """t.reshape(2, 3) or t.reshape((2, 3)); one dimension may be -1."""
        return _ops.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def transpose(self, *axes):
        """t.transpose() reverses the axes; t.transpose(1, 0, 2) or t.transpose((1, 0, 2)) permutes them."""
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return _ops.transpose(self, axes or None)

    @property
    def T(self):
        return _ops.transpose(self)


class _Node:
    """The graph vertex of one operation with several outputs (see results): the tensors it read (._parents), a
    backward that takes one gradient per output (._backward) and the output arrays (.outputs). It holds arrays,
    not the output Tensors, so no reference cycle keeps a graph alive once its tensors are gone."""

    __slots__ = ("_backward", "_parents", "outputs")

    def __init__(self, parents, backward, outputs):
        self._parents, self._backward, self.outputs = parents, backward, outputs


def _node_grads(grads, t, g):
    """Add gradient g for t, an output of a _Node, into the node's list in grads (one gradient or None per output)."""
    slots = grads.get(id(t._node))
    if slots is None:
        slots = grads[id(t._node)] = [None] * len(t._node.outputs)
    i = t._index
    slots[i] = g if slots[i] is None else slots[i] + g           # never in place: g may be shared
    return grads


def _filled(grads, outputs):
    """One gradient per output, each an array of that output's dtype: zeros where none arrived (the loss did not
    use that output)."""
    for i, (g, out) in enumerate(zip(grads, outputs)):
        if g is None:
            grads[i] = np.zeros_like(out)
        elif type(g) is not np.ndarray or g.dtype != out.dtype:
            grads[i] = np.asarray(g, dtype=out.dtype)
    return grads


def _topological_order(root):
    """Every vertex that needs a gradient on the way back from root, each after the vertices that made its inputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        vertex, inputs_done = stack.pop()
        if inputs_done:
            order.append(vertex)
            continue
        if id(vertex) in visited:
            continue
        visited.add(id(vertex))
        stack.append((vertex, True))
        for parent in vertex._parents or ():
            if parent.requires_grad:
                made_by = parent if parent._node is None else parent._node     # parent, or the _Node it shares
                if id(made_by) not in visited:
                    stack.append((made_by, False))
    return order


def _records(parents):
    """Whether an operation on these inputs records the graph (grad mode on and some input needs a gradient)."""
    return _GradMode.enabled and any(p.requires_grad for p in parents)


def result(data, parents, backward, op):
    """The output tensor of an operation. backward(g) returns one gradient (array or None) per parent.
    The graph is recorded only when grad mode is on and some parent requires a gradient."""
    out = Tensor._wrap(data if type(data) is np.ndarray else np.asarray(data))   # 0-d NumPy results are scalars
    out._op = op
    if _GradMode.enabled:                        # _records(parents), unrolled: every operation runs this
        for p in parents:
            if p.requires_grad:
                out.requires_grad = True
                out._parents = parents
                out._backward = backward
                break
    return out


def results(arrays, parents, backward, op):
    """The output tensors of one operation with several outputs (one per array), sharing one graph vertex.
    backward(*grads) gets one gradient per output, in order (zeros for an output the loss did not use), runs
    once per backward pass, and returns one gradient (array or None) per parent."""
    outs = tuple(Tensor._wrap(a if type(a) is np.ndarray else np.asarray(a)) for a in arrays)
    node = _Node(parents, backward, tuple(out.data for out in outs)) if _records(parents) else None
    for i, out in enumerate(outs):
        out._op = op
        if node is not None:
            out.requires_grad, out._node, out._index = True, node, i
    return outs


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of `data` (float32 unless dtype='float64')."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


from . import ops as _ops  # noqa: E402  (ops builds on Tensor, and Tensor's operators call ops)

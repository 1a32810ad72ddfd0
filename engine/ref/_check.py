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

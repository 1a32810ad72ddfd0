"""Kernel backends: one set of names, several implementations with identical signatures.

    'ref'   engine/ref/*.py   NumPy: the readable spec and test oracle (float32 and float64)
    'cpu'   engine._cpu       C++17 + OpenMP kernels from csrc/ (float32)
    'cuda'  engine._cuda      CUDA kernels, where built and a GPU exists (not built yet)

The active backend is 'cpu' when it was compiled, otherwise 'ref' (with one warning at import).
Change it with set_backend(name), or for one block with `with use_backend(name): ...`.
`with trace() as calls:` records every kernel the engine runs, as "backend.kernel" strings.
"""
import contextlib
import importlib
import warnings

import numpy as np

from . import ref


def _optional(module_name):
    try:
        return importlib.import_module(module_name)
    except ImportError:                  # not built (no compiler, or no ENGINE_CUDA=1): 'ref' still works
        return None


_BACKENDS = {"ref": ref, "cpu": _optional("engine._cpu"), "cuda": _optional("engine._cuda")}


def available(name):
    """True when the backend `name` was built and can be used."""
    return _BACKENDS.get(name) is not None


def get(name):
    """The kernel module of backend `name`."""
    if name not in _BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(_BACKENDS)}. Received: name={name!r}")
    if _BACKENDS[name] is None:
        raise RuntimeError(f"backend: '{name}' kernels were not built. Reinstall with `pip install -e .` "
                           "(with a C++ compiler for 'cpu'), or use backend 'ref'.")
    return _BACKENDS[name]


if available("cpu"):
    _active_name = "cpu"
else:
    _active_name = "ref"
    warnings.warn("engine: the compiled 'cpu' kernels (engine._cpu) are not built, so every operation runs on "
                  "the NumPy reference kernels ('ref'). Reinstall with `pip install -e .` on a machine with a "
                  "C++ compiler.", RuntimeWarning, stacklevel=2)
_active = _BACKENDS[_active_name]
_trace = None                            # a list while trace() is on


def set_backend(name):
    """Run every following operation on backend `name`: 'ref', 'cpu' or 'cuda'."""
    global _active, _active_name
    _active = get(name)
    _active_name = name


def get_backend():
    """The name of the active backend."""
    return _active_name


@contextlib.contextmanager
def use_backend(name):
    """Run the block on backend `name`, then restore the previous one."""
    previous = _active_name
    set_backend(name)
    try:
        yield get(name)
    finally:
        set_backend(previous)


class _Traced:
    """Stands in for a kernel module and records each kernel call."""
    __slots__ = ("_module", "_name")

    def __init__(self, module, name):
        self._module, self._name = module, name

    def __getattr__(self, kernel):
        fn = getattr(self._module, kernel)

        def call(*args, **kwargs):
            if _trace is not None:
                _trace.append(f"{self._name}.{kernel}")
            return fn(*args, **kwargs)
        return call


@contextlib.contextmanager
def trace():
    """Record the kernels that run inside the block: `with engine.trace() as calls: ...`; then
    `calls` is a list like ['cpu.matmul_forward', 'cpu.bias_add_forward', ...]."""
    global _trace
    previous, _trace = _trace, []
    calls = _trace
    try:
        yield calls
    finally:
        _trace = previous


def kernels(dtype=np.float32):
    """The kernel module for arrays of `dtype`: the active backend for float32; the reference for
    float64, which the compiled kernels do not take."""
    if dtype == np.float64:
        module, name = ref, "ref"
    else:
        module, name = _active, _active_name
    return module if _trace is None else _Traced(module, name)

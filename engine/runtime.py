"""Run-time controls: threads, the SIMD path, and a summary of what this build runs on."""
import os
import warnings

import numpy as np

from . import backend, cuda
from ._version import __version__


def _cpu():
    return backend.get("cpu") if backend.available("cpu") else None


def set_num_threads(n):
    """Use n OpenMP threads in every compiled kernel. The start value comes from OMP_NUM_THREADS, or
    else the number of cores. Results do not depend on n: every kernel reduces in a fixed order."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: expected an int. Received: n={n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: expected n >= 1. Received: n={n}")
    if _cpu() is not None:
        _cpu().set_num_threads(int(n))


def get_num_threads():
    """The number of threads the compiled kernels use (1 when only the reference is available)."""
    return _cpu().get_num_threads() if _cpu() is not None else 1


def set_simd(path):
    """Make the compiled kernels use SIMD path 'avx512', 'avx2' or 'portable' (no wider than the CPU
    supports). For tests and for seeing what each path is worth; ENGINE_SIMD=<path> does it at import."""
    if _cpu() is None:
        raise RuntimeError("set_simd: the compiled 'cpu' kernels are not built.")
    _cpu().set_simd(path)


def info():
    """What this engine runs on: version, active backend, threads, the SIMD path chosen at run time, CUDA."""
    cpu = _cpu()
    return {
        "version": __version__,
        "backend": backend.get_backend(),
        "backends_built": [name for name in ("ref", "cpu", "cuda") if backend.available(name)],
        "num_threads": get_num_threads(),
        "simd": cpu.simd_path() if cpu is not None else "none (reference kernels only)",
        "simd_detected": cpu.simd_detected() if cpu is not None else "none",
        "freed_memory_kept_mib": _freed_memory_kept_mib,
        "cuda_available": cuda.is_available(),
        "numpy": np.__version__,
    }


# Freed heap memory the process keeps for reuse (MiB), set at import: see _keep_freed_memory. 0: untouched.
DEFAULT_FREED_MEMORY_KEPT_MIB = 512
_freed_memory_kept_mib = 0


def _keep_freed_memory():
    """Make the C allocator reuse the large blocks a training step frees instead of unmapping them and
    faulting fresh zeroed pages in again next step (csrc/runtime.cpp, keep_freed_memory, says why). It keeps
    up to ENGINE_KEEP_FREED_MIB (default 512) MiB of freed heap mapped; ENGINE_KEEP_FREED_MIB=0 leaves the
    allocator as it was. Only with the compiled kernels, and only on glibc."""
    global _freed_memory_kept_mib
    text = os.environ.get("ENGINE_KEEP_FREED_MIB", str(DEFAULT_FREED_MEMORY_KEPT_MIB))
    try:
        mib = int(text)
        if mib < 0:
            raise ValueError
    except ValueError:
        warnings.warn(f"engine: ignoring ENGINE_KEEP_FREED_MIB={text!r}: expected a whole number of MiB >= 0",
                      RuntimeWarning, stacklevel=4)
        mib = DEFAULT_FREED_MEMORY_KEPT_MIB
    if mib > 0 and _cpu() is not None and _cpu().keep_freed_memory(mib << 20):
        _freed_memory_kept_mib = mib


def _apply_environment():
    """ENGINE_SIMD picks a narrower SIMD path for the whole process (a bad value warns, it never fails);
    ENGINE_KEEP_FREED_MIB sets how much freed memory the allocator keeps for reuse."""
    path = os.environ.get("ENGINE_SIMD")
    if path and _cpu() is not None:
        try:
            _cpu().set_simd(path)
        except ValueError as err:
            warnings.warn(f"engine: ignoring ENGINE_SIMD={path!r}: {err}", RuntimeWarning, stacklevel=3)
    _keep_freed_memory()

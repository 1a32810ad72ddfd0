"""Build recipe for engine's compiled kernels.

engine._cpu   C++17 + OpenMP kernels from csrc/, bound by pybind11 in csrc/bind_cpu/ (one file per family).
              Built for the baseline x86-64 ISA; the SIMD path (AVX-512, AVX2+FMA, portable) is
              chosen at run time inside the kernels, so one wheel runs on any x86-64 CPU.
engine._im2col_cython   the Cython rung of the conv2d ladder (engine/_im2col_cython.pyx): built whenever
              Cython is installed (pyproject.toml's build requirements bring it); without Cython the
              package still installs and engine.ladder lists that rung as unavailable.
engine._cuda  (later) CUDA twins from csrc/cuda/: added by cuda_extensions() when that folder
              exists and nvcc is found; ENGINE_CUDA=0/1 forces it off/on.

Environment switches:
  ENGINE_NATIVE=1   add -march=native (opt-in; the binary then runs only on CPUs like this one)
  ENGINE_DEBUG=1    -O0 -g -UNDEBUG, for debuggers and sanitizers
"""
import glob
import os

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("NPY_NUM_BUILD_JOBS", default=0).install()   # compile the .cpp files side by side


def cpu_extension():
    bind_sources = sorted(glob.glob("csrc/bind_cpu/*.cpp"))     # the module: module.cpp + bind_<family>.cpp
    kernel_sources = sorted(glob.glob("csrc/*.cpp"))
    flags = ["-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    # No floating-point operation traps and sqrt never sets errno: GCC may then compute both arms of a select,
    # which is what lets the AVX2 loops vectorise (csrc/common.h). Neither flag changes a result.
    flags += ["-fno-trapping-math", "-fno-math-errno"]
    # Never -ffast-math / -Ofast: loading such a library flips the whole process to flush-to-zero.
    flags += ["-O0", "-g", "-UNDEBUG"] if os.environ.get("ENGINE_DEBUG") == "1" else ["-O3"]
    if os.environ.get("ENGINE_NATIVE") == "1":
        flags.append("-march=native")
    return Pybind11Extension(
        "engine._cpu",
        bind_sources + kernel_sources,
        depends=sorted(glob.glob("csrc/*.h") + glob.glob("csrc/bind_cpu/*.h")),     # header edits trigger a rebuild
        cxx_std=17,
        extra_compile_args=flags,
        extra_link_args=["-fopenmp"],
    )


def cython_extensions():
    """engine._im2col_cython: typed-memoryview loops compiled by Cython; plain C, no OpenMP, no NumPy headers."""
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    from setuptools import Extension
    flags = ["-O0", "-g"] if os.environ.get("ENGINE_DEBUG") == "1" else ["-O3"]
    return cythonize([Extension("engine._im2col_cython", ["engine/_im2col_cython.pyx"], extra_compile_args=flags)],
                     language_level=3, quiet=True)


def cuda_extensions():
    """engine._cuda, the GPU twins in csrc/cuda/. There are none yet, so this builds nothing; the
    CUDA issue fills it in (find nvcc through CUDA_HOME, ENGINE_CUDA=0/1 to force it off/on)."""
    return []


setup(ext_modules=[cpu_extension()] + cython_extensions() + cuda_extensions(), cmdclass={"build_ext": build_ext})

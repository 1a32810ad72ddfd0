"""engine.ladder: the kernel ladders. Each family (matmul, conv2d, softmax, attention)
is a list of rungs, from the plainest loop to the fastest kernel, each one a real, tested kernel that a
learner can call by name on NumPy arrays and time against the others.

    from engine import ladder
    ladder.families()                       # ['matmul', 'softmax', 'attention']
    for rung in ladder.rungs('matmul'):     # name, idea, and the function itself
        print(rung.name, rung.idea)
    c = ladder.run('matmul', 'v3', a, b)    # one rung on float32 arrays
    ladder.print_table('matmul', n=512)     # every rung timed on one size: time, GFLOP/s, speed-ups
    ladder.print_table('conv2d', n=64)      # a batch of n 14x14x32 images, 64 filters of 3x3, padding='same'
    ladder.print_table('attention', n=1024) # one head, 1024 queries and keys of size 64
    ladder.peak_memory('attention', 'v2', n=4096)   # bytes one call adds, measured in a fresh process
    ladder.fma_peak()                       # GFLOP/s of the vector units alone, on the active SIMD path
    ladder.paths_table('matmul', 'v4')      # one rung on every SIMD path this CPU has

The SIMD path ('avx512', 'avx2', 'portable') is the one engine.info()['simd'] names; engine.set_simd('avx2')
switches to a narrower one, so each path's table can be printed on one machine.

The 'ref' rung is the NumPy reference (OpenBLAS underneath): the spec, and the speed to reach. The attention
rungs return (o, lse, weights); the table times them on (1, n, 1, 64) inputs.
"""
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import backend, ref


@dataclass(frozen=True)
class Rung:
    family: str
    name: str
    idea: str                  # what this rung adds over the one before
    fn: Callable
    unavailable: str = ""      # why the rung cannot run here (it is listed, not timed); "" when it can


def _matmul_rungs():
    rungs = [Rung("matmul", "ref", "NumPy's matmul (OpenBLAS): the reference every rung must match", ref.matmul_forward)]
    if not backend.available("cpu"):
        return rungs
    cpu = backend.get("cpu").ladder
    return rungs + [
        Rung("matmul", "v1", "naive i-j-k loops: one dot product per output, B read down its columns",
             cpu.matmul_forward_v1),
        Rung("matmul", "v2", "i-k-j loop order: unit-stride rows of B and C, so the inner loop vectorises; "
             "OpenMP over rows", cpu.matmul_forward_v2),
        Rung("matmul", "v3", "cache blocking: tiles of C with K in slices, so the B tile stays in cache while "
             "it is reused; OpenMP over tiles", cpu.matmul_forward_v3),
        Rung("matmul", "v4", "packed panels + register-blocked micro-kernel (12x32 AVX-512, 6x16 AVX2, 6x8 "
             "portable, chosen at run time); OpenMP over tiles: engine's matmul_forward", cpu.matmul_forward_v4),
    ]


def _with_cpu(reference, compiled):
    """The reference rung, then compiled(engine._cpu.ladder) when the cpu kernels are built."""
    return [reference] + (compiled(backend.get("cpu").ladder) if backend.available("cpu") else [])


def _softmax_rungs():
    return _with_cpu(Rung("softmax", "ref", "NumPy: max, exp, sum and divide as whole-array operations",
                          ref.softmax_forward), lambda cpu: [
        Rung("softmax", "v1", "one row at a time: max, the C library's exp for each value, a double sum, divide; "
             "OpenMP over rows", cpu.softmax_forward_v1),
        Rung("softmax", "v2", "the row passes written to vectorise: a 16-lane max, a polynomial exp and its sum in "
             "one pass (AVX-512/AVX2 chosen at run time): engine's softmax_forward", cpu.softmax_forward_v2)])


def _attention_rungs():
    return _with_cpu(Rung("attention", "ref", "NumPy: the whole (T, S) score matrix per head, softmax, then times V",
                          ref.attention_forward), lambda cpu: [
        Rung("attention", "v1", "naive C++: per head the full T x S scores (matmul), softmax row by row, matmul "
             "with V; memory O(T S)", cpu.attention_forward_v1),
        Rung("attention", "v2", "fused: 96 x 96 tiles, an online softmax (running max and sum per query), "
             "register-blocked tile products; memory O(T + S): engine's attention_forward", cpu.attention_forward_v2)])


def _cython_conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                   data_format="channels_last"):
    """The Cython rung: im2col by typed-memoryview loops (engine/_im2col_cython.pyx), then NumPy's matmul."""
    from . import _im2col_cython
    from .ref import _check as spec_args
    from .ref import conv2d as spec
    N, H, W, C, (OH, OW), (top, _, left, _) = spec.geometry("conv2d_cython", x.shape, kernel.shape[:2], strides,
                                                            padding, dilation_rate, data_format)
    KH, KW, _, F = kernel.shape
    (SH, SW), (DH, DW) = spec_args.int_pair("conv2d_cython", "strides", strides), spec_args.int_pair("conv2d_cython",
                                                                                            "dilation_rate", dilation_rate)
    cols = np.empty((N * OH * OW, KH * KW * C), dtype=np.float32)
    _im2col_cython.im2col(np.ascontiguousarray(spec.to_nhwc(x, data_format), dtype=np.float32), cols, KH, KW, SH, SW,
                          DH, DW, top, left, OH, OW)
    y = cols @ kernel.reshape(KH * KW * C, F)
    if bias is not None:
        y += bias
    return spec.from_nhwc(y.reshape(N, OH, OW, F), data_format)


def _cython_unavailable():
    try:
        from . import _im2col_cython  # noqa: F401
        return ""
    except ImportError as err:
        return (f"engine._im2col_cython was not built ({err}): install Cython and reinstall engine "
                "(pip install Cython && pip install -e .)")


def _conv2d_rungs():
    rungs = [Rung("conv2d", "ref", "NumPy im2col (one strided slice per kernel tap) + one matrix product (OpenBLAS): "
                  "the reference", ref.conv2d_forward)]
    if not backend.available("cpu"):
        return rungs
    cpu = backend.get("cpu")
    return rungs + [
        Rung("conv2d", "v1", "direct convolution in C++: seven nested loops, one thread, no copies",
             cpu.ladder.conv2d_forward_v1),
        Rung("conv2d", "cython", "im2col as typed-memoryview loops compiled by Cython, then NumPy's matmul",
             _cython_conv2d, _cython_unavailable()),
        Rung("conv2d", "v2", "C++ im2col in cache-sized blocks + the packed SIMD GEMM accumulating onto the bias, OpenMP over "
             "blocks: engine's conv2d_forward for every shape v3 does not take", cpu.ladder.conv2d_forward_v2),
        Rung("conv2d", "v3", "Winograd F(2x2, 3x3): 16 small GEMMs on transformed 4x4 tiles, 2.25x fewer multiply-adds; "
             "3x3, strides 1 (dilated: per phase), >= 8 channels and filters: engine's conv2d_forward there",
             cpu.ladder.conv2d_forward_v3),
    ]


_FAMILIES = {"matmul": _matmul_rungs, "conv2d": _conv2d_rungs, "softmax": _softmax_rungs,
             "attention": _attention_rungs}


def families():
    """The kernel families that have a ladder."""
    return list(_FAMILIES)


def rungs(family):
    """The rungs of `family`, slowest idea first."""
    if family not in _FAMILIES:
        raise ValueError(f"ladder: expected a family in {families()}. Received: family={family!r}")
    return _FAMILIES[family]()


def get(family, name):
    """The function of rung `name` of `family`."""
    for rung in rungs(family):
        if rung.name == name:
            return rung.fn
    raise ValueError(f"ladder: expected a rung of {family!r} in {[r.name for r in rungs(family)]}. "
                     f"Received: name={name!r}")


def run(family, name, *arrays):
    """Call one rung on NumPy arrays (float32)."""
    return get(family, name)(*arrays)


def _matmul_inputs(n, m=None, k=None, seed=0):
    rng = np.random.default_rng(seed)
    m, k = m or n, k or n
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def _median_time(fn, args, min_time):
    fn(*args)                                            # warm up: caches, thread team, page faults
    times, total = [], 0.0
    while total < min_time or len(times) < 3:
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
        total += times[-1]
    return float(np.median(times))


def _conv2d_inputs(n, seed=0):
    """The ladder's convolution: n images of 14 x 14 x 32, 64 filters of 3 x 3, padding='same' (the second
    convolution of the lecture's MNIST classifier)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 14, 14, 32)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    bias = rng.standard_normal(64).astype(np.float32)
    return (x, kernel, bias, 1, "same"), 2.0 * n * 14 * 14 * 64 * 3 * 3 * 32


_SIZES = {"matmul": "{n} x {n} x {n}", "conv2d": "{n} images 14x14x32, 64 filters 3x3, padding='same'",
          "softmax": "({n}, 1024) rows", "attention": "one head, T = S = {n}, head size 64"}


def _inputs(family, n, seed=0):
    """(arguments, flops) for one call of a rung of `family` at size n."""
    rng = np.random.default_rng(seed)
    if family == "matmul":
        return _matmul_inputs(n), 2.0 * n ** 3
    if family == "conv2d":
        return _conv2d_inputs(n, seed)
    if family == "softmax":              # 5 operations a value: max, subtract, exp, add, divide
        return (rng.standard_normal((n, 1024)).astype(np.float32),), 5.0 * n * 1024
    q, k, v = (rng.standard_normal((1, n, 1, 64)).astype(np.float32) for _ in range(3))
    return (q, k, v), 4.0 * n * n * 64


def fma_peak():
    """GFLOP/s of independent float32 multiply-adds on every thread, on the active SIMD path: no loads, no
    stores, nothing to wait for but the vector units. No GEMM can pass it; the matmul table shows each rung's
    fraction of it."""
    return backend.get("cpu").ladder.fma_peak()


def table(family="matmul", n=512, min_time=0.2, skip_slower_than=5.0):
    """Time every rung of `family` on one size n (matmul: n x n x n; conv2d: n images, see _conv2d_inputs;
    softmax: n rows of 1024; attention: one head of n queries and keys); rows of dicts with name, seconds,
    gflops, speedup (over the rung before) and of_ref (the fraction of the reference's speed). A rung whose
    single run takes longer than skip_slower_than seconds is timed once; a rung that cannot run here is left
    out (print_table lists it with the reason)."""
    if family not in _FAMILIES:
        raise ValueError(f"ladder.table: expected a family in {families()}. Received: family={family!r}")
    args, flops = _inputs(family, n)
    rows, previous = [], None
    for rung in rungs(family):
        if rung.unavailable:
            continue
        start = time.perf_counter()
        rung.fn(*args)
        once = time.perf_counter() - start
        seconds = once if once > skip_slower_than else _median_time(rung.fn, args, min_time)
        rows.append({"name": rung.name, "idea": rung.idea, "seconds": seconds, "gflops": flops / seconds / 1e9,
                     "speedup": None if previous is None or rung.name == "v1" else previous / seconds})
        previous = seconds if rung.name != "ref" else None
    ref_seconds = rows[0]["seconds"]
    for row in rows:
        row["of_ref"] = ref_seconds / row["seconds"]
    return rows


def print_table(family="matmul", n=512, min_time=0.2, print_fn=print):
    """Print table(): one line per rung."""
    rows = table(family, n, min_time)
    cpu = backend.get("cpu") if backend.available("cpu") else None
    threads, simd = (cpu.get_num_threads(), cpu.simd_path()) if cpu else (1, "none")
    peak = fma_peak() if cpu and family == "matmul" else None
    print_fn(f"{family} ladder, {_SIZES[family].format(n=n)}, float32, {threads} threads, SIMD path {simd}"
             + (f" (FMA peak {peak:.0f} GFLOP/s)" if peak else ""))
    print_fn(f"  {'rung':<6} {'time':>10} {'GFLOP/s':>9} {'vs prev':>8} {'of NumPy':>9}"
             + (f" {'of peak':>8}" if peak else "") + "  idea")
    for row in rows:
        speedup = "" if row["speedup"] is None else f"{row['speedup']:.1f}x"
        row["of_peak"] = row["gflops"] / peak if peak else None
        print_fn(f"  {row['name']:<6} {row['seconds'] * 1e3:>8.2f}ms {row['gflops']:>9.1f} {speedup:>8} "
                 f"{row['of_ref']:>8.0%}" + (f" {row['of_peak']:>7.0%}" if peak else "") + f"  {row['idea']}")
    for rung in rungs(family):
        if rung.unavailable:
            print_fn(f"  {rung.name:<6} {'-':>10} unavailable: {rung.unavailable}")
    return rows


def paths_table(family="matmul", rung="v4", n=512, min_time=0.2, print_fn=print):
    """Time one compiled rung of `family` (default: the fastest matmul rung) on every SIMD path this CPU has,
    each against the reference and, for matmul, against that path's FMA peak; print one line per path and
    return the rows (path, gflops, of_ref, of_peak). The path is switched with engine.set_simd, then restored."""
    cpu = backend.get("cpu")
    order = ["avx512", "avx2", "portable"]
    before = cpu.simd_path()
    args, flops = _inputs(family, n)
    rows = []
    try:
        for path in order[order.index(cpu.simd_detected()):]:
            cpu.set_simd(path)
            seconds = _median_time(get(family, rung), args, min_time)
            peak = fma_peak() if family == "matmul" else None
            rows.append({"path": path, "gflops": flops / seconds / 1e9,
                         "of_peak": flops / seconds / 1e9 / peak if peak else None, "peak": peak})
    finally:
        cpu.set_simd(before)
    ref_seconds = _median_time(get(family, "ref"), args, min_time)   # last: its thread pool spins a while after
    for row in rows:
        row["of_ref"] = ref_seconds / (flops / row["gflops"] / 1e9)
    print_fn(f"{family} rung {rung} on each SIMD path, {_SIZES[family].format(n=n)}, {cpu.get_num_threads()} threads")
    for row in rows:
        peak = f"  {row['of_peak']:>4.0%} of its FMA peak ({row['peak']:.0f})" if row["peak"] else ""
        print_fn(f"  {row['path']:<9} {row['gflops']:>7.1f} GFLOP/s  {row['of_ref']:>5.0%} of NumPy{peak}")
    return rows


_PEAK_SCRIPT = r"""
import ctypes, json, sys
from engine import ladder
family, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
fn = ladder.get(family, name)
fn(*ladder._inputs(family, 8)[0])            # start the thread team and the libraries first
args = ladder._inputs(family, n)[0]
ctypes.CDLL("libc.so.6").malloc_trim(0)      # freed memory back to the system, so it is not reused unseen
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                             # reset the peak (VmHWM) to the resident size now
before = status("VmRSS")
out = fn(*args)
first = out[0] if isinstance(out, tuple) else out
print(json.dumps({"extra": status("VmHWM") - before, "output": int(first.nbytes)}))
"""


def peak_memory(family, name, n):
    """The peak resident memory (bytes) that one call of rung `name` at size n adds, in a fresh Python process:
    the high-water mark (VmHWM, reset just before the call) minus the resident size before it. Returns
    {'extra': bytes, 'output': bytes of the (first) output}. Linux only (it reads /proc/self)."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError(f"ladder.peak_memory: reads /proc/self/status, which only Linux has. Received: "
                           f"platform={sys.platform!r}")
    get(family, name)                                    # a bad name fails here, not in the child
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, family, name, str(int(n))], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ladder.peak_memory: the measuring process failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)

"""The SIMD paths, checked in the built module itself: the machine code of engine._cpu, disassembled.

The build targets baseline x86-64 and compiles each hot loop once per path (common.h: on_avx512 / on_avx2 /
on_portable, and functions named *_avx512 / *_avx2); the CPU picks one at run time. Two things must hold:
  * nothing outside those functions uses the wide registers, or the module would crash on an older CPU;
  * every function compiled for a path uses that path's registers (ymm for AVX2, zmm for AVX-512): a body
    the compiler left scalar runs at a quarter or a sixteenth of the speed, and nothing else would notice.
"""
import functools
import re
import shutil
import subprocess
import sys

import pytest

import engine

needs_objdump = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("objdump") is None,
                                reason="the disassembly needs Linux and objdump (binutils)")

# Bodies compiled for a path that are scalar by nature, as substrings of their demangled names, each with its
# reason. Empty: since the build flags and loop forms in common.h, every dispatched body vectorises.
SCALAR_BY_NATURE = {}

REGISTER = {"avx2": "%ymm", "avx512": "%zmm"}


@functools.lru_cache(maxsize=1)
def functions():
    """[(demangled name, its instructions)] for every function in engine._cpu (a static function that several
    files include, such as rnn.h's products, appears once per copy)."""
    listing = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", engine._cpu.__file__],
                             capture_output=True, text=True, check=True).stdout
    out = []
    for line in listing.splitlines():
        if line.endswith(">:"):
            out.append((line.split("<", 1)[1][:-2], []))
        elif out and "\t" in line:
            out[-1][1].append(line)
    return out


def own_name(name):
    """The last component of a function's own name, before its template arguments and parameters:
    'on_avx2' for engine::on_avx2<...>(...). objdump leaves some names of lambdas inside templates mangled
    (_ZN6engine7on_avx2IZZ...): those are read from their length-prefixed components."""
    if name.startswith("_ZN"):
        parts, i = [], 3
        while i < len(name) and name[i].isdigit():
            j = i
            while name[j].isdigit():
                j += 1
            parts.append(name[j:j + int(name[i:j])])
            i = j + int(name[i:j])
        return parts[-1] if parts else name
    own = name.replace("(anonymous namespace)::", "")
    if own.split(" ", 1)[0] in ("void", "float", "double"):      # a template's return type comes first
        own = own.split(" ", 1)[1]
    return re.split(r"[<(]", own)[0].split("::")[-1]


def path_of(name):
    """'avx512', 'avx2' or None: the path a function is compiled for, from its own name (on_avx2, micro_avx512,
    pack_a_rows_avx2, ...)."""
    for path in ("avx512", "avx2"):
        if re.search(rf"(^|_){path}(_|$)", own_name(name)):
            return path
    return None


@needs_objdump
def test_the_parser_finds_the_dispatched_bodies():
    # The check below is only as good as this count: every family dispatches somewhere.
    bodies = [name for name, _ in functions() if path_of(name)]
    for family in ("map_forward", "map_backward", "bias_activation_tile", "micro_avx2", "micro_avx512",
                   "lstm_step", "gru_back", "simple_step", "softmax_rows", "log_softmax_backward", "maxpool2d_backward",
                   "batchnorm_forward", "transform_kernel", "input_transform", "forward_avx2", "backward_avx512",
                   "softmax_cross_entropy_forward", "sigmoid_cross_entropy_backward", "adam_update", "chains_avx2"):
        assert any(family in name for name in bodies), f"no dispatched body of {family} found"
    assert path_of("void engine::on_avx2<engine::map_forward<engine::Relu>(float*)::{lambda()#1}>(x const&)") == "avx2"
    assert path_of("engine::(anonymous namespace)::forward_avx512(float*, long)") == "avx512"
    assert path_of("void engine::lstm_step_avx2<32l, engine::LstmArgs*>(engine::LstmArgs*)") == "avx2"
    assert path_of("engine::gemm_packed(float*, float const*)") is None
    assert path_of("_ZN6engine7on_avx2IZZNS_11simd_chunksIZNS_L11map_forwardINS_4ReluEEEvPfEUlllE_EEvEUlvE_EEvSA_") == "avx2"


@needs_objdump
def test_only_dispatched_functions_use_wide_registers():
    # An undispatched function runs on every CPU: AVX2/AVX-512 code there would crash an older one.
    offenders = [name for name, code in functions()
                 if path_of(name) is None and any("%ymm" in line or "%zmm" in line for line in code)]
    assert not offenders, f"wide SIMD outside the dispatched functions: {sorted(offenders)[:5]}"


@needs_objdump
def test_every_dispatched_body_uses_its_paths_registers():
    scalar = []
    for name, code in functions():
        path = path_of(name)
        if path is None or any(key in name for key in SCALAR_BY_NATURE):
            continue
        if not any(REGISTER[path] in line for line in code):
            scalar.append(f"{path}: {name[:160]}")
    assert not scalar, f"{len(scalar)} bodies compiled for a SIMD path use none of its registers:\n" + "\n".join(scalar)


def test_fma_peak_is_measured_on_the_active_path(simd_path):
    # The ceiling the matmul table divides by: a wider path does more per instruction, never less.
    from engine import ladder
    peak = ladder.fma_peak()
    assert peak > 0.1, f"{simd_path}: {peak} GFLOP/s"
    assert engine._cpu.ladder.fma_peak(iterations=1000, repeats=1) > 0
    for name, bad in (("iterations", {"iterations": 0}), ("repeats", {"repeats": 0})):
        with pytest.raises(ValueError, match=f"fma_peak: expected {name} >= 1. Received: {name}=0"):
            engine._cpu.ladder.fma_peak(**bad)


def test_matmul_table_shows_the_path_and_the_fraction_of_peak(capsys):
    from engine import ladder
    rows = ladder.print_table("matmul", n=64, min_time=0.01)
    head = capsys.readouterr().out.splitlines()[0]
    assert f"SIMD path {engine.info()['simd']}" in head and "FMA peak" in head
    assert all(0 < row["of_peak"] for row in rows)

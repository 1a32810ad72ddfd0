"""Runtime controls: the compiled module, backends, threads, seeding, info(), and the process-wide
floating-point state."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import engine
from checks import bits_equal, random_f32


def run_python(code, **env):
    """Run `code` in a fresh interpreter (so import-time behaviour is tested) and return its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_cpu_module_is_built_and_active():
    # Fails, not skips: without the compiled module the whole suite would test the reference against itself.
    import engine._cpu  # noqa: F401
    assert engine.backend.available("cpu")
    assert engine.get_backend() == "cpu"
    assert engine.backend.kernels() is engine._cpu


def test_info_reports_the_build():
    info = engine.info()
    assert info["version"] == engine.__version__
    assert info["backend"] == "cpu"
    assert info["simd"] in ("avx512", "avx2", "portable")
    assert info["simd_detected"] in ("avx512", "avx2", "portable")
    assert info["num_threads"] == engine.get_num_threads() >= 1
    assert info["cuda_available"] is False and engine.cuda.is_available() is False
    assert "cpu" in info["backends_built"] and "ref" in info["backends_built"]


def test_importing_and_running_leaves_subnormals_alone():
    # A library built with -ffast-math would switch the process to flush-to-zero when it loads.
    x = random_f32(512, 512)
    engine.ops.softmax(engine.ops.matmul(x, x))
    assert np.float32(1e-40) * np.float32(1) != 0
    assert run_python("import engine, numpy as np; print(np.float32(1e-40) * np.float32(1) != 0)").startswith("True")


def test_set_backend_and_use_backend():
    assert engine.get_backend() == "cpu"
    with engine.use_backend("ref") as module:
        assert module is engine.ref and engine.get_backend() == "ref"
        with engine.trace() as calls:
            engine.ops.relu(np.ones(3))
        assert calls == ["ref.relu_forward"]
    assert engine.get_backend() == "cpu"
    engine.set_backend("ref")
    try:
        assert engine.get_backend() == "ref"
    finally:
        engine.set_backend("cpu")


def test_unknown_or_missing_backend_is_a_clear_error():
    with pytest.raises(ValueError, match=r"backend: expected one of \['cpu', 'cuda', 'ref'\]. Received: name='gpu'"):
        engine.set_backend("gpu")
    with pytest.raises(RuntimeError, match="'cuda' kernels were not built"):
        engine.set_backend("cuda")
    assert engine.get_backend() == "cpu"


def test_without_the_compiled_module_the_reference_runs_with_one_warning():
    out = run_python("""
        import sys, warnings
        sys.modules['engine._cpu'] = None          # as if the C++ build had failed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            import engine
        import numpy as np
        print(engine.get_backend(), len(caught), 'not built' in str(caught[0].message))
        print(engine.ops.relu(np.array([-1.0, 2.0])).numpy().tolist(), engine.info()['simd'])
    """)
    assert "ref 1 True" in out and "[0.0, 2.0]" in out


def test_thread_count_can_be_set_and_is_validated(threads):
    threads(1)
    assert engine.get_num_threads() == 1
    threads(2)
    assert engine.get_num_threads() == 2
    with pytest.raises(ValueError, match="set_num_threads: expected n >= 1. Received: n=0"):
        engine.set_num_threads(0)
    with pytest.raises(TypeError, match="expected an int"):
        engine.set_num_threads(1.5)


def test_omp_num_threads_is_honoured():
    assert run_python("import engine; print(engine.get_num_threads())", OMP_NUM_THREADS="3").strip() == "3"


def test_training_step_is_bitwise_equal_for_one_and_two_threads(threads):
    x, w = random_f32(256, 300), random_f32(300, 200, seed=1)

    def step():
        xt = engine.tensor(x)
        wt = engine.tensor(w, requires_grad=True)
        loss = engine.ops.log_softmax(engine.ops.tanh(xt @ wt), axis=1).mean()
        loss.backward()
        return loss.numpy(), wt.grad.numpy()
    threads(1)
    one = step()
    threads(2)
    two = step()
    assert all(bits_equal(a, b) for a, b in zip(one, two))


def test_set_seed_repeats_every_draw():
    engine.set_seed(7)
    first = (engine.random.generator().standard_normal(4), np.random.rand(2))
    engine.set_seed(7)
    second = (engine.random.generator().standard_normal(4), np.random.rand(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="set_seed: expected a non-negative int. Received: seed=-1"):
        engine.set_seed(-1)


def test_simd_path_can_be_forced_lower_and_back():
    detected = engine._cpu.simd_detected()
    try:
        engine.set_simd("portable")
        assert engine.info()["simd"] == "portable"
        a, b = random_f32(37, 19), random_f32(19, 23, seed=1)
        np.testing.assert_allclose(engine.ops.matmul(a, b).numpy(), a @ b, rtol=1e-4, atol=1e-4)
    finally:
        engine.set_simd(detected)
    with pytest.raises(ValueError, match="set_simd: expected one of 'avx512', 'avx2', 'portable'. Received: path='sse9'"):
        engine.set_simd("sse9")
    out = run_python("import engine; print(engine.info()['simd'])", ENGINE_SIMD="portable")
    assert out.strip().endswith("portable")


FAULTS_PER_STEP = """
    import resource
    import numpy as np
    import engine
    x = np.ones(2 << 20, np.float32)                            # 8 MiB
    def step():                                                 # a step's activations, freed together
        live = [engine._cpu.relu_forward(x) for _ in range(4)]
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(engine.info()["freed_memory_kept_mib"], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-fault counts and mallopt: Linux with glibc")
def test_freed_large_arrays_are_reused_without_page_faults():
    # Ten steps that each allocate and free 32 MiB: with the allocator setting made at import, the pages stay
    # mapped and are reused; with it off (ENGINE_KEEP_FREED_MIB=0), glibc unmaps them and faults them back
    # in every step (2048 faults per 8 MiB array; at least one array a step), which the setting prevents.
    kept, faults = map(int, run_python(FAULTS_PER_STEP).split())
    assert kept == engine.runtime.DEFAULT_FREED_MEMORY_KEPT_MIB and faults < 2048
    kept, faults = map(int, run_python(FAULTS_PER_STEP, ENGINE_KEEP_FREED_MIB="0").split())
    assert kept == 0 and faults > 5 * 2048
    out = run_python("import engine; print(engine.info()['freed_memory_kept_mib'])", ENGINE_KEEP_FREED_MIB="lots")
    assert "ignoring ENGINE_KEEP_FREED_MIB='lots': expected a whole number of MiB >= 0" in out
    assert out.startswith(f"{engine.runtime.DEFAULT_FREED_MEMORY_KEPT_MIB}\n")
    with pytest.raises(ValueError, match="keep_freed_memory: expected trim_threshold_bytes >= 0. Received: -1"):
        engine._cpu.keep_freed_memory(-1)

"""The guided tour and the examples run, print what they promise, and reach their results."""
import re
import runpy
from pathlib import Path

import pytest

import engine
from checks import SIMD_PATHS
from engine import tour

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_tour_runs_every_section(capsys):
    assert tour.main([]) == 0
    out = capsys.readouterr().out
    assert "total squared error = 5046, MSE = 5046 / 10 = 504.6" in out
    assert "cpu.matmul_forward" in out and "cpu.relu_forward" in out and "cpu.softmax_forward" in out
    assert "dE/dw: autograd -27.5000, formula mean(2 (y_hat - y) x) = -27.5000" in out


def test_tour_sections_can_run_alone_and_unknown_ones_are_refused(capsys):
    assert tour.main(["loss"]) == 0
    out = capsys.readouterr().out
    assert "504.6" in out and "Activation" not in out
    assert tour.main(["nope"]) == 2
    assert "unknown section 'nope'" in capsys.readouterr().err


def test_gradient_descent_example_fits_the_line(capsys):
    module = runpy.run_path(str(EXAMPLES / "gradient_descent.py"))
    w, b = module["main"](steps=200, lr=0.1)
    assert w == pytest.approx(2.0, abs=0.1) and b == pytest.approx(1.0, abs=0.05)


def test_tour_matmul_section_prints_the_ladder_table(capsys):
    assert tour.main(["matmul"]) == 0
    out = capsys.readouterr().out
    for rung in ("ref", "v1", "v2", "v3", "v4"):
        assert f"\n  {rung} " in out
    assert "GFLOP/s" in out and "vs prev" in out and "of NumPy" in out and "faster" in out
    assert f"SIMD path {engine.info()['simd']}" in out and "of peak" in out
    for path in SIMD_PATHS:                          # the fastest rung once per path, against its FMA peak
        assert re.search(rf"\n  {path} +[0-9.]+ GFLOP/s +[0-9]+% of NumPy", out), path

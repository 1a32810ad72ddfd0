"""The teaching examples and the tour's dense_network section reach the results they promise.

Each example runs through its main(), with the settings the script uses unless a smaller run proves the
same thing. The scikit-learn ones skip where scikit-learn is not installed (pip install -e ".[examples]")."""
import re
import sys

import numpy as np
import pytest

from engine import tour

from checks import run_example



def test_mse_worked_example_gives_5046_and_504_6_three_ways(capsys):
    result = run_example("mse_worked_example")["main"]()
    assert result["total"] == 5046 and result["mse"] == pytest.approx(504.6, abs=1e-12)
    assert result["ops_total"] == 5046                        # float32 holds these integers exactly
    assert result["ops_mse"] == pytest.approx(504.6, rel=1e-6)
    assert result["loss_mse"] == pytest.approx(504.6, rel=1e-6)
    out = capsys.readouterr().out
    assert " 6     110         74     36     1296" in out        # one row of the lecture's table
    assert "1. by hand:    total = 5046, MSE = 5046 / 10 = 504.6" in out


def test_backprop_by_hand_matches_autograd_and_the_published_numbers(capsys):
    result = run_example("backprop_by_hand")["main"]()
    hand, auto = result["hand"], result["autograd"]
    assert set(hand) == set(auto) == {"w1", "w2", "w3", "w4", "b1", "b2", "w5", "w6", "b3"}
    for name in hand:
        assert auto[name] == pytest.approx(hand[name], rel=1e-12, abs=1e-15), name
    # Matt Mazur's worked example (first output): E_o1, dE/dw5, and w5 after one step with lr = 0.5.
    assert result["error"] == pytest.approx(0.274811083, abs=1e-9)
    assert hand["w5"] == pytest.approx(0.082167041, abs=1e-9)
    assert result["updated"]["w5"] == pytest.approx(0.35891648, abs=1e-8)
    assert result["new_error"] < result["error"]
    assert "delta_o   = dE/do * do/dnet_o" in capsys.readouterr().out


def test_keras_regression_on_diabetes_learns():
    pytest.importorskip("sklearn")
    result = run_example("keras_regression_diabetes")["main"](epochs=100)         # the script's settings
    history = result["history"]
    assert len(history["loss"]) == 100 and set(history) >= {"loss", "mse", "val_loss", "val_mse"}
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    # Diabetes is noisy: least squares explains about a third of the test variance on this split. The
    # network must do about as well: well below var(y), the MSE of predicting the mean.
    assert result["test_mse"] < 0.8 * result["var_y_test"]
    assert result["test_mse"] < 1.1 * result["linear_regression_mse"]
    assert result["test_mse_original"] < 0.8 * result["var_y_test_original"]


def test_mlp_on_digits_reaches_97_percent():
    pytest.importorskip("sklearn")
    accuracy = run_example("mlp_digits")["main"]()                                # the script's settings
    assert accuracy >= 0.97


def test_tour_dense_network_section_trains_the_lecture_model(capsys):
    assert tour.main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names.index("dense_network") == names.index("gradient_descent") + 1
    assert tour.main(["dense_network"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 251" in out                          # 10*15+15 + 15*5+5 + 5+1
    assert "validation_split=0.25, epochs=100, batch_size=32" in out
    assert "cpu.dense_forward" in out and "cpu.dense_backward" in out and "cpu.adam_update" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    epochs = [int(r[0]) for r in rows]
    assert epochs[0] == 1 and epochs[-1] == 100
    losses = np.array([[float(r[1]), float(r[2])] for r in rows])       # (rows, [loss, val_loss])
    assert losses[-1, 0] < 0.6 * losses[0, 0] and losses[:, 1].min() < 0.7 * losses[0, 1]


def test_tour_dense_network_without_sklearn_uses_generated_data(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)         # `import` now raises ImportError
    assert tour.main(["dense_network"]) == 0
    out = capsys.readouterr().out
    assert "a generated data set (442 rows, 10 features" in out
    final = re.search(r"the training loss fell from ([\d.]+) to ([\d.]+)", out)
    assert float(final.group(2)) < 0.2 * float(final.group(1))    # the generated problem is learnable

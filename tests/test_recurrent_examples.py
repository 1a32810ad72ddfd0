"""The recurrent examples and the tour's recurrent section reach the results they promise. They run on one
thread: the results are bitwise the same for any thread count, and one thread keeps their time predictable
on a shared machine."""
import runpy
from pathlib import Path

import pytest

import engine
from engine import tour

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def one_thread():
    before = engine.get_num_threads()
    engine.set_num_threads(1)
    yield
    engine.set_num_threads(before)


def test_lstm_beats_simple_rnn_on_the_long_dependency(one_thread, capsys):
    main = runpy.run_path(str(EXAMPLES / "sequence_forecasting.py"))["main"]
    r = main(sine_epochs=6, adding_epochs=14, n_train=4096)
    assert r[("sine", "SimpleRNN")] < 0.5 * r[("sine", "last_value")]         # short memory: both learn it
    assert r[("sine", "LSTM")] < 0.5 * r[("sine", "last_value")]
    assert r[("adding", "LSTM")] < 0.1 * r[("adding", "mean")]                # long memory: only the LSTM
    assert r[("adding", "SimpleRNN")] > 0.8 * r[("adding", "mean")]
    assert "Part 2: forecast the sum of two marked values" in capsys.readouterr().out


def test_character_model_learns_the_sonnets_and_writes(one_thread):
    result = runpy.run_path(str(EXAMPLES / "char_rnn.py"))["main"](epochs=6, units=64, length=80, verbose=0)
    assert result["best_val_loss"] < result["baseline"] - 0.3                 # well below letter frequencies
    for (prompt, _), sample in result["samples"].items():
        assert sample.startswith(prompt) and len(sample) == len(prompt) + 80
        assert set(sample) <= set(result["chars"])


def test_tour_recurrent_section_shows_the_step_and_the_gates(one_thread, capsys):
    assert tour.main(["recurrent"]) == 0
    out = capsys.readouterr().out
    by_hand = [line.split("-> h_t = ")[1] for line in out.splitlines() if "by hand, t=" in line]
    engine_line = next(line for line in out.splitlines() if line.strip().startswith("engine:  h_0, h_1, h_2"))
    assert by_hand and all(value in engine_line for value in by_hand)         # hand and kernel agree
    assert "cpu.simple_rnn_forward" in out and "cpu.lstm_forward, cpu.lstm_backward" in out
    accuracy = eval(out.split("accuracy by epoch: ")[1].split("]")[0] + "]")    # noqa: S307 (our own output)
    assert accuracy[-1] >= 0.95
    assert out.count("token ") >= 4 and "forget gate" in out

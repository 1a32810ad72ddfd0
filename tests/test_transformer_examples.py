"""The transformer examples and the tour's attention section reach what they promise: the toy translator
learns the held-out sentences and its cross-attention links each French word to the English word it
translates; the character model learns more than character frequencies and writes text."""
import re

import numpy as np

from engine import tour

from checks import run_example



def test_translator_learns_held_out_sentences_and_looks_where_the_lecture_says(capsys):
    result = run_example("transformer_translation")["main"](epochs=80, seed=0)
    history = result["history"]
    assert history["loss"][-1] < 0.05 * history["loss"][0]
    assert result["exact"] >= 0.9                                  # held-out sentences, translated word for word
    attention, english, french = result["attention"], result["english"], result["french"]
    assert english == ["I", "love", "you"] and french == ["je", "t'", "aime"]
    looks_at = [english[int(row.argmax())] for row in attention]
    assert looks_at == ["I", "you", "love"]                        # the lines cross: t' -> you, aime -> love
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=1e-5)
    assert "'t'' looks most at 'you'" in capsys.readouterr().out


def test_character_model_learns_more_than_letter_frequencies(threads):
    threads(1)              # about 2 s of work; one thread is immune to a busy machine's descheduled cores
    result = run_example("char_transformer")["main"](epochs=2, context=32, stride=8, length=80, verbose=0)
    assert result["loss"][-1] < result["unigram"] - 0.4              # it has learned which letters follow which
    sample = result["sample"]
    assert sample.startswith("Shall I compare thee") and len(sample) == len("Shall I compare thee") + 80
    assert set(sample) <= set(result["chars"])


def test_tour_attention_section(capsys):
    assert tour.main(["--list"]) == 0
    assert "attention" in capsys.readouterr().out.split()
    assert tour.main(["attention"]) == 0
    out = capsys.readouterr().out
    assert "'t'' puts 0.88 of its attention on 'you'" in out
    assert "cpu.attention_forward" in out and "attention scores (2, 4, 5, 5)" in out
    assert "query/kernel (8, 4, 2)" in out
    assert re.search(r"│ add(_\d+)? \(Add\) ", out)                  # the residual connection in the summary
    assert "the naive rung (full 300 x 300 score matrix per head) and the fused one agree" in out

"""Seeing where the model looks: attention_weights finds an attention layer by object, name or path and returns
every head's weights for an input; render_attention prints them; plot_attention draws labelled heat maps
(skipped without matplotlib, whose absence gets a clear message)."""
import re
import sys

import numpy as np
import pytest

import engine
from engine.layers import Dense, Input, MultiHeadAttention, TransformerDecoder, TransformerEncoder
from engine.models import Model
from engine.visualize import attention_weights, find_attention, plot_attention, render_attention

from checks import random_f32


def encoder_decoder(seed=0):
    engine.set_seed(seed)
    source, target = Input(shape=(4, 8), name="source"), Input(shape=(3, 8), name="target")
    encoded = TransformerEncoder(16, 2, name="encoder")(source)
    decoded = TransformerDecoder(16, 2, name="decoder")(target, encoded)
    return Model([source, target], Dense(5)(decoded))


def test_weights_of_every_head_match_the_layer_called_by_hand():
    model = encoder_decoder()
    x = [random_f32(2, 4, 8, seed=1), random_f32(2, 3, 8, seed=2)]
    cross = attention_weights(model, x, "decoder/cross_attention")
    assert cross.shape == (2, 2, 3, 4)                            # (batch, heads, target steps, source steps)
    np.testing.assert_allclose(cross.sum(axis=-1), 1.0, rtol=1e-5)
    own = attention_weights(model, x, "decoder/self_attention")
    assert own.shape == (2, 2, 3, 3) and (np.triu(own[0, 0], 1) == 0).all()      # causal
    encoder = model.get_layer("encoder")
    with engine.no_grad():
        _, by_hand = encoder(x[0], return_attention_scores=True)
    np.testing.assert_allclose(attention_weights(model, x, "encoder"), by_hand.numpy(), rtol=1e-6)
    assert find_attention(model, encoder.self_attention) is encoder.self_attention
    assert not encoder.self_attention.keep_scores                 # switched off again


def test_a_bare_attention_layer_can_be_read_too():
    layer = MultiHeadAttention(num_heads=3, key_dim=2)
    q = random_f32(1, 5, 4)
    weights = attention_weights(lambda x, training=False: layer(x, x), q, layer)
    assert weights.shape == (1, 3, 5, 5)


def test_ambiguous_or_unknown_layers_are_refused():
    model = encoder_decoder()
    x = [random_f32(1, 4, 8), random_f32(1, 3, 8)]
    with pytest.raises(ValueError, match=re.escape("'decoder' holds 2: ['self_attention', 'cross_attention']. "
                                                   "Name one of them, e.g. layer='decoder/self_attention'")):
        attention_weights(model, x, "decoder")
    with pytest.raises(ValueError, match=re.escape("no layer named 'nowhere'")):
        attention_weights(model, x, "decoder/nowhere")
    with pytest.raises(TypeError, match="expected `layer` to be a Layer or a name"):
        attention_weights(model, x, 3)


def test_render_attention_is_a_labelled_table():
    weights = np.array([[0.94, 0.03, 0.03], [0.06, 0.06, 0.88], [0.02, 0.95, 0.03]])
    text = render_attention(weights, ["je", "t'", "aime"], ["I", "love", "you"])
    lines = text.splitlines()
    assert lines[0].split() == ["I", "love", "you"]
    assert lines[2].startswith("t'") and "0.88█" in lines[2]
    two_heads = render_attention(np.stack([weights, weights.T]))
    assert "head 0" in two_heads and "head 1" in two_heads
    with pytest.raises(ValueError, match=re.escape("expected 3 key_tokens (one per column). Received: 2")):
        render_attention(weights, None, ["I", "love"])
    with pytest.raises(ValueError, match="pick one example with weights"):
        render_attention(np.zeros((2, 2, 3, 3)))


def test_plot_attention_draws_one_labelled_map_per_head(tmp_path):
    pytest.importorskip("matplotlib")
    weights = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3))      # (heads, 3 queries, 4 keys)
    path = tmp_path / "map.png"
    fig = plot_attention(weights, ["a", "b", "c"], ["w", "x", "y", "z"], title="demo", filename=path)
    maps = [ax for ax in fig.axes if ax.get_title().startswith("head")]
    assert len(maps) == 2 and path.stat().st_size > 1000
    assert [t.get_text() for t in maps[0].get_xticklabels()] == ["w", "x", "y", "z"]
    assert [t.get_text() for t in maps[1].get_yticklabels()] == ["a", "b", "c"]


def test_plot_attention_without_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=re.escape("plot_attention needs matplotlib: pip install matplotlib")):
        plot_attention(np.eye(2))

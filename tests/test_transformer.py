"""Transformer layers: LayerNormalization, MultiHeadAttention, PositionalEncoding, PositionEmbedding,
TransformerEncoder and TransformerDecoder. The layer contract (config round trip, weights in Keras' layout
and order), each layer vs a NumPy formula written here, the fused and the unfused attention paths against
each other (outputs and every gradient), masks, dropout, attention_axes, the blocks' causal and padding
behaviour, and bad input naming the layer and the values."""
import json
import re

import numpy as np
import pytest

import engine
from engine import layers, ops
from engine.layers import (Embedding, LayerNormalization, MultiHeadAttention, PositionalEncoding, PositionEmbedding,
                           TransformerDecoder, TransformerEncoder)

from checks import check_layer, np_softmax, random_f32

# ------------------------------------------------------------------------------------------ LayerNormalization

LN_OPTIONS = {
    "default": ({}, (4, 6)),
    "sequence": ({"epsilon": 1e-5}, (2, 5, 8)),
    "two_axes": ({"axis": [1, 2]}, (2, 3, 4)),
    "middle_axis": ({"axis": 1}, (2, 3, 4)),
    "no_center": ({"center": False}, (3, 7)),
    "no_scale": ({"scale": False}, (3, 7)),
    "rms": ({"rms_scaling": True}, (3, 7)),
    "initializers": ({"gamma_initializer": "random_normal", "beta_initializer": "ones",
                      "gamma_regularizer": "l2"}, (3, 7)),
}


@pytest.mark.parametrize("option", LN_OPTIONS)
def test_layer_normalization_contract_and_formula(option):
    kwargs, shape = LN_OPTIONS[option]
    layer, x, y = check_layer(LayerNormalization, kwargs, shape, shape)
    axes = kwargs.get("axis", -1)
    axes = tuple(a % len(shape) for a in (axes if isinstance(axes, list) else [axes]))
    param_shape = tuple(shape[a] for a in sorted(axes))
    bshape = tuple(shape[a] if a in axes else 1 for a in range(len(shape)))
    eps = kwargs.get("epsilon", 1e-3)
    x64 = x.astype(np.float64)
    if kwargs.get("rms_scaling"):
        expected = x64 / np.sqrt(np.mean(x64 ** 2, axis=axes, keepdims=True) + eps)
    else:
        expected = (x64 - x64.mean(axes, keepdims=True)) / np.sqrt(x64.var(axes, keepdims=True) + eps)
    names = [w.name.split("/")[-1] for w in layer.weights]
    weights = dict(zip(names, layer.get_weights()))
    assert all(w.shape == param_shape for w in layer.weights)
    if "gamma" in weights:
        expected = expected * weights["gamma"].reshape(bshape)
    if "beta" in weights:
        expected = expected + weights["beta"].reshape(bshape)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)
    expected_names = (["gamma"] if kwargs.get("scale", True) or kwargs.get("rms_scaling") else []) + \
        (["beta"] if kwargs.get("center", True) and not kwargs.get("rms_scaling") else [])
    assert names == expected_names                                # Keras' order: gamma, then beta


def test_layer_normalization_gradients_reach_gamma_and_beta():
    layer = LayerNormalization()
    x = engine.tensor(random_f32(4, 6, seed=1), requires_grad=True)
    (layer(x) * random_f32(4, 6, seed=2)).sum().backward()
    assert layer.gamma.grad is not None and layer.beta.grad is not None and x.grad is not None
    assert layer.losses == []


@pytest.mark.parametrize("make, match", [
    (lambda: LayerNormalization(epsilon=0), "expected epsilon > 0. Received: epsilon=0"),
    (lambda: LayerNormalization(axis="last"), "expected axis to be an int or a list of ints"),
    (lambda: LayerNormalization(gamma_constraint="non_neg"), "no weight constraints"),
    (lambda: LayerNormalization(axis=3)(random_f32(2, 3)), "LayerNormalization 'layer_normalization"),
    (lambda: LayerNormalization(axis=0)(random_f32(2, 3)), "expected axis among the non-batch axes"),
], ids=["epsilon", "axis_type", "constraint", "axis_range", "batch_axis"])
def test_layer_normalization_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_layer_normalization_refuses_another_feature_size():
    layer = LayerNormalization(name="norm")
    layer(random_f32(2, 4))
    with pytest.raises(ValueError, match=re.escape("LayerNormalization 'norm': expected input sizes (4,)")):
        layer(random_f32(2, 5))


# ------------------------------------------------------------------------------------------ MultiHeadAttention

def np_mha(layer, query, value, key=None, mask=None):
    """Keras' MultiHeadAttention in NumPy (float64), from the layer's weights. mask: (B, T, S) or None."""
    key = value if key is None else key
    w = [a.astype(np.float64) for a in layer.get_weights()]
    if layer.use_bias:
        wq, bq, wk, bk, wv, bv, wo, bo = w
    else:
        (wq, wk, wv, wo), bq, bk, bv, bo = w, 0, 0, 0, 0
    q = np.einsum("btc,cnh->btnh", query, wq) + bq
    k = np.einsum("bsc,cnh->bsnh", key, wk) + bk
    v = np.einsum("bsc,cnh->bsnh", value, wv) + bv
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(layer.key_dim)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -1e30)
    p = np_softmax(scores)
    o = np.einsum("bnts,bsnh->btnh", p, v)
    out = np.tensordot(o, wo, axes=([2, 3], [0, 1])) + bo
    return out, p


def _qkv(B=2, T=5, S=7, C=8, CV=6, CK=None, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, T, C)).astype(np.float32)
    v = rng.standard_normal((B, S, CV)).astype(np.float32)
    k = None if CK is None else rng.standard_normal((B, S, CK)).astype(np.float32)
    return q, v, k


MHA_OPTIONS = {
    "self": ({"num_heads": 2, "key_dim": 4}, dict(C=8, CV=8, S=5)),
    "cross": ({"num_heads": 3, "key_dim": 2}, dict(C=8, CV=6)),
    "separate_key": ({"num_heads": 2, "key_dim": 3}, dict(C=4, CV=6, CK=5)),
    "value_dim": ({"num_heads": 2, "key_dim": 4, "value_dim": 3}, dict(C=8, CV=6)),
    "output_shape": ({"num_heads": 1, "key_dim": 4, "output_shape": 5}, dict(C=8, CV=6)),
    "no_bias": ({"num_heads": 4, "key_dim": 2, "use_bias": False}, dict(C=8, CV=6)),
    "one_head_one_step": ({"num_heads": 1, "key_dim": 1}, dict(T=1, S=1, C=3, CV=3)),
}


@pytest.mark.parametrize("option", MHA_OPTIONS)
def test_multi_head_attention_matches_numpy_and_keras_layout(option):
    kwargs, dims = MHA_OPTIONS[option]
    engine.set_seed(1)
    layer = MultiHeadAttention(**kwargs, name="mha")
    q, v, k = _qkv(**dims)
    out, scores = layer(q, v, k, return_attention_scores=True)
    expected, p = np_mha(layer, q.astype(np.float64), v.astype(np.float64), None if k is None else k.astype(np.float64))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores.numpy(), p, rtol=1e-4, atol=1e-6)
    N, H = kwargs["num_heads"], kwargs["key_dim"]
    HV = kwargs.get("value_dim") or H
    C, CV, CK = q.shape[-1], v.shape[-1], (k if k is not None else v).shape[-1]
    out_dim = kwargs.get("output_shape", C)
    layout = [("query/kernel", (C, N, H)), ("query/bias", (N, H)), ("key/kernel", (CK, N, H)), ("key/bias", (N, H)),
              ("value/kernel", (CV, N, HV)), ("value/bias", (N, HV)), ("attention_output/kernel", (N, HV, out_dim)),
              ("attention_output/bias", (out_dim,))]
    if not kwargs.get("use_bias", True):
        layout = [item for item in layout if not item[0].endswith("bias")]
    assert [(w.name.split("/", 1)[1], w.shape) for w in layer.weights] == layout
    assert out.shape == q.shape[:2] + (out_dim,) and scores.shape == (q.shape[0], N, q.shape[1], v.shape[1])
    assert layer.compute_output_shape(q.shape, v.shape) == out.shape


def test_multi_head_attention_config_round_trip():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, dropout=0.1, use_bias=False, output_shape=(2, 3),
                               attention_axes=(1,), kernel_initializer="he_normal", bias_regularizer="l2", seed=5)
    q, v, _ = _qkv()
    y = layer(q, v)
    assert y.shape == (2, 5, 2, 3)
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    clone = MultiHeadAttention.from_config(config)
    assert clone.get_config() == config
    clone(q, v)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(q, v).numpy(), y.numpy())


def _mask_cases(B=2, T=5, S=7):
    rng = np.random.default_rng(3)
    attention = rng.random((B, T, S)) > 0.3
    attention[..., 0] = True
    return {"attention_mask": dict(attention_mask=attention, expected=attention),
            "causal": dict(use_causal_mask=True, expected=np.broadcast_to(np.tril(np.ones((T, S), bool)), (B, T, S))),
            "both": dict(attention_mask=attention, use_causal_mask=True,
                         expected=attention & np.tril(np.ones((T, S), bool)))}


@pytest.mark.parametrize("case", ["attention_mask", "causal", "both"])
def test_multi_head_attention_masks_match_numpy(case):
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    q, v, _ = _qkv()
    kwargs = dict(_mask_cases()[case])
    expected_mask = kwargs.pop("expected")
    out, scores = layer(q, v, return_attention_scores=True, **kwargs)
    expected, p = np_mha(layer, q.astype(np.float64), v.astype(np.float64), mask=expected_mask)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert (scores.numpy()[~np.broadcast_to(expected_mask[:, None], scores.shape)] == 0).all()


def test_multi_head_attention_uses_embedding_masks():
    """Token id 0 is padding with Embedding(mask_zero=True): keys there get no weight, as with value_mask."""
    engine.set_seed(2)
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0]])
    x = Embedding(8, 6, mask_zero=True)(ids)
    layer = MultiHeadAttention(num_heads=2, key_dim=3)
    _, scores = layer(x, x, return_attention_scores=True)
    real = ids != 0
    s = scores.numpy()                                            # (batch, heads, queries, keys)
    pad_key = np.broadcast_to(~real[:, None, None, :], s.shape)
    real_query = np.broadcast_to(real[:, None, :, None], s.shape)
    assert (s[pad_key & real_query] == 0).all()                   # real queries ignore padded keys
    np.testing.assert_allclose(s[~real_query], 0.2, rtol=1e-6)    # a padded query has nothing allowed: uniform
    out2, scores2 = layer(x.numpy(), x.numpy(), return_attention_scores=True, query_mask=real, value_mask=real)
    np.testing.assert_allclose(scores2.numpy()[np.broadcast_to(real[:, None, :, None], scores2.shape)],
                               scores.numpy()[np.broadcast_to(real[:, None, :, None], scores.shape)], rtol=1e-6)
    assert layers.base.get_mask(layer(x, x)) is not None          # the output keeps the query's mask


@pytest.mark.parametrize("masked", [False, True])
def test_fused_and_unfused_paths_agree_on_outputs_and_every_gradient(masked):
    """flash_attention=False computes the full score matrix with separate ops; the default runs the fused kernel.
    Two independent computations of the same function and its gradient."""
    engine.set_seed(4)
    q, v, k = _qkv(B=2, T=9, S=11, C=8, CV=6, CK=5)
    mask = _mask_cases(2, 9, 11)["both"] if masked else {}
    fused = MultiHeadAttention(num_heads=3, key_dim=4, value_dim=2)
    naive = MultiHeadAttention(num_heads=3, key_dim=4, value_dim=2, flash_attention=False)
    results = []
    for layer in (fused, naive):
        qt, vt, kt = (engine.tensor(a, requires_grad=True) for a in (q, v, k))
        layer(qt, vt, kt, **{key: val for key, val in mask.items() if key != "expected"})
        if layer is naive:
            layer.set_weights(fused.get_weights())
        out = layer(qt, vt, kt, **{key: val for key, val in mask.items() if key != "expected"})
        (out * random_f32(*out.shape, seed=9)).sum().backward()
        results.append([out.numpy()] + [t.grad.numpy() for t in (qt, vt, kt)] + [w.grad.numpy() for w in layer.weights])
        for w in layer.weights:
            w.grad = None
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_returned_scores_carry_gradients_when_recorded():
    layer = MultiHeadAttention(num_heads=2, key_dim=2)
    q, v, _ = _qkv()
    out, scores = layer(q, v, return_attention_scores=True)
    assert scores.requires_grad                                   # trainable weights: the unfused path
    (scores * random_f32(*scores.shape)).sum().backward()
    assert layer.query_kernel.grad is not None
    with engine.no_grad():
        _, scores = layer(q, v, return_attention_scores=True)     # inference: the fused kernel's weights
    assert not scores.requires_grad
    np.testing.assert_allclose(scores.numpy().sum(-1), 1.0, rtol=1e-5)


def test_dropout_acts_only_while_training_and_is_seeded():
    q, v, _ = _qkv()
    layer = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5, seed=3)
    inference = layer(q, v).numpy()
    np.testing.assert_array_equal(layer(q, v, training=False).numpy(), inference)
    trained = layer(q, v, training=True).numpy()
    assert not np.allclose(trained, inference)
    plain = MultiHeadAttention(num_heads=2, key_dim=4)
    plain(q, v)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(plain(q, v, training=True).numpy(), inference, rtol=1e-5, atol=1e-6)


def test_attention_over_two_axes_and_over_one_of_them():
    """attention_axes: (1, 2) attends over every (row, column) position of an image-like input; (2,) attends
    along each row separately. Both against the rank-3 layer on reshaped input."""
    engine.set_seed(6)
    x = random_f32(2, 3, 4, 5, seed=7)
    both = MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=(1, 2))
    out, scores = both(x, x, return_attention_scores=True)
    flat = MultiHeadAttention(num_heads=2, key_dim=3)
    flat(x.reshape(2, 12, 5), x.reshape(2, 12, 5))
    flat.set_weights(both.get_weights())
    np.testing.assert_allclose(out.numpy().reshape(2, 12, 5), flat(x.reshape(2, 12, 5), x.reshape(2, 12, 5)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert scores.shape == (2, 2, 3, 4, 3, 4)
    rows = MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=2)
    out_rows = rows(x, x)
    flat.set_weights(rows.get_weights())
    per_row = flat(x.reshape(6, 4, 5), x.reshape(6, 4, 5)).numpy().reshape(2, 3, 4, 5)
    np.testing.assert_allclose(out_rows.numpy(), per_row, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, kind, match", [
    (lambda: MultiHeadAttention(2, 0), ValueError, "MultiHeadAttention: `key_dim` must be a positive int. Received: key_dim=0"),
    (lambda: MultiHeadAttention(0, 4), ValueError, "`num_heads` must be a positive int. Received: num_heads=0"),
    (lambda: MultiHeadAttention(2, 4, value_dim=-1), ValueError, "Received: value_dim=-1"),
    (lambda: MultiHeadAttention(2, 4, dropout=1.0), ValueError, "expected `dropout` in [0, 1). Received: dropout=1.0"),
    (lambda: MultiHeadAttention(2, 4, output_shape=0), ValueError, "Received: output_shape=0"),
    (lambda: MultiHeadAttention(2, 4, dropout=0.1, flash_attention=True), ValueError, "flash_attention=True"),
    (lambda: MultiHeadAttention(2, 4, attention_axes="time"), TypeError, "attention_axes"),
    (lambda: MultiHeadAttention(2, 4, kernel_constraint="max_norm"), ValueError, "no weight constraints"),
], ids=["key_dim", "num_heads", "value_dim", "dropout", "output_shape", "flash_dropout", "axes_type", "constraint"])
def test_multi_head_attention_bad_arguments(make, kind, match):
    with pytest.raises(kind, match=re.escape(match)):
        make()


def test_multi_head_attention_bad_calls_name_the_layer_and_values():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, name="attn")
    q, v, _ = _qkv()
    with pytest.raises(TypeError, match="MultiHeadAttention 'attn': missing the `value` argument"):
        layer(q)
    layer(q, v)
    with pytest.raises(ValueError, match=re.escape("MultiHeadAttention 'attn': expected query (B, ..., 8)")):
        layer(q[..., :5], v)                                       # another feature size than it was built for
    with pytest.raises(ValueError, match=re.escape("key.shape=(2, 6, 6)")):
        layer(q, v, v[:, :6])                                      # key and value of different lengths
    with pytest.raises(ValueError, match=re.escape("MultiHeadAttention 'attn': expected attention_mask of shape "
                                                   "(batch, query steps, key steps) = (2, 5, 7). "
                                                   "Received: attention_mask.shape=(2, 5, 6)")):
        layer(q, v, attention_mask=np.ones((2, 5, 6), bool))
    with pytest.raises(ValueError, match=re.escape("expected value_mask of shape (2, 7). Received: value_mask.shape=(2, 5)")):
        layer(q, v, value_mask=np.ones((2, 5), bool))
    with pytest.raises(TypeError, match="expected attention_mask to hold booleans"):
        layer(q, v, attention_mask=np.ones((2, 5, 7), np.float32))
    with pytest.raises(ValueError, match="expected query, value and key of one rank"):
        MultiHeadAttention(num_heads=1, key_dim=2)(q[0], v[0])
    with pytest.raises(ValueError, match="expected attention_axes among the axes between batch and features"):
        MultiHeadAttention(num_heads=1, key_dim=2, attention_axes=(3,))(q, v)


def test_dot_product_attention_op_checks_its_inputs():
    q = random_f32(2, 5, 4, 8)
    k = random_f32(2, 7, 2, 8)
    with pytest.raises(ValueError, match=re.escape("dot_product_attention: expected key (batch, S, heads, 8)")):
        ops.dot_product_attention(q, k[..., :6], k[..., :6])
    with pytest.raises(ValueError, match="expected query heads to be a multiple of key heads"):
        ops.dot_product_attention(q[:, :, :3], k, k)
    with pytest.raises(ValueError, match=re.escape("expected mask broadcastable to (batch, heads, queries, keys) = "
                                                   "(2, 4, 5, 7). Received: mask.shape=(1, 1, 5, 6)")):
        ops.dot_product_attention(q, k, k, mask=np.ones((5, 6), bool))
    with pytest.raises(TypeError, match="pass an additive mask as `bias`"):
        ops.dot_product_attention(q, k, k, mask=np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match="expected query of rank 4"):
        ops.dot_product_attention(q[0], k, k)


def test_dot_product_attention_both_paths_agree_with_bias_gradients():
    rng = np.random.default_rng(11)
    q, k, v = (engine.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 6, 4, 3), (2, 8, 2, 3),
                                                                                  (2, 8, 2, 5)))
    bias = engine.tensor(rng.standard_normal((6, 8)), requires_grad=True)
    mask = rng.random((2, 1, 1, 8)) > 0.2
    grads = []
    for flash in (None, False):
        out = ops.dot_product_attention(q, k, v, bias=bias, mask=mask, is_causal=True, flash_attention=flash)
        (out * out).sum().backward()
        grads.append([out.numpy()] + [t.grad.numpy() for t in (q, k, v, bias)])
        for t in (q, k, v, bias):
            t.grad = None
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ positions

def test_positional_encoding_is_the_sinusoid_of_the_paper():
    x = random_f32(2, 7, 6)
    layer, _, y = check_layer(PositionalEncoding, {"max_wavelength": 100}, (2, 7, 6), (2, 7, 6))
    t, i = np.arange(7)[:, None], np.arange(6)[None, :]
    angle = t / 100.0 ** (2 * (i // 2) / 6)
    expected = np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    np.testing.assert_allclose(y.numpy()[0], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(y.numpy()[0], y.numpy()[1])
    shifted = layer(x, start_index=3).numpy()[0]
    np.testing.assert_allclose(shifted[:4], expected[3:], rtol=1e-6, atol=1e-7)
    assert layers.SinePositionEncoding is PositionalEncoding


def test_position_embedding_is_learned_per_step():
    layer, x, y = check_layer(PositionEmbedding, {"sequence_length": 10, "initializer": "random_normal"},
                              (3, 4, 5), (3, 4, 5))
    table = layer.get_weights()[0]
    assert table.shape == (10, 5) and layer.weights[0].name.endswith("embeddings")
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(table[:4], (3, 4, 5)))
    xt = engine.tensor(x)
    layer(xt).sum().backward()
    grad = layer.position_embeddings.grad.numpy()
    np.testing.assert_array_equal(grad[:4], 3.0)                  # each used row gets one per example
    np.testing.assert_array_equal(grad[4:], 0.0)
    with pytest.raises(ValueError, match=re.escape("expected at most sequence_length=10 steps")):
        layer(random_f32(2, 11, 5))


@pytest.mark.parametrize("make, match", [
    (lambda: PositionEmbedding(0), "`sequence_length` must be a positive int. Received: sequence_length=0"),
    (lambda: PositionalEncoding(max_wavelength=-1), "expected max_wavelength > 0"),
    (lambda: PositionalEncoding()(random_f32(2, 3)), "expected an input of shape (batch, steps, features)"),
])
def test_position_layers_bad_input(make, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make()


# ------------------------------------------------------------------------------------------ blocks

@pytest.mark.parametrize("normalize_first", [False, True], ids=["post_norm", "pre_norm"])
def test_encoder_block_contract_layout_and_formula(normalize_first):
    kwargs = {"intermediate_dim": 12, "num_heads": 2, "normalize_first": normalize_first, "activation": "gelu",
              "layer_norm_epsilon": 1e-6, "dropout": 0.1}
    layer, x, y = check_layer(TransformerEncoder, kwargs, (2, 5, 8), (2, 5, 8))
    shapes = [w.shape for w in layer.weights]
    assert shapes == [(8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (8, 2, 4), (2, 4), (2, 4, 8), (8,),  # self_attention
                      (8,), (8,), (8,), (8,), (8, 12), (12,), (12, 8), (8,)]                    # norms, feed-forward
    sa, ln1, ln2, ff1, ff2 = (layer.self_attention, layer.self_attention_layer_norm, layer.feedforward_layer_norm,
                              layer.feedforward_intermediate_dense, layer.feedforward_output_dense)
    with engine.no_grad():
        if normalize_first:
            h = x + sa(ln1(x), ln1(x)).numpy()
            expected = h + ff2(ff1(ln2(h))).numpy()
        else:
            h = ln1(x + sa(x, x).numpy()).numpy()
            expected = ln2(h + ff2(ff1(h)).numpy()).numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_encoder_padding_mask_hides_padded_steps():
    engine.set_seed(3)
    block = TransformerEncoder(16, 2)
    x = random_f32(2, 6, 8)
    padding = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    y = block(x, padding_mask=padding).numpy()
    changed = x.copy()
    changed[0, 4:] = 100.0                                        # whatever sits in the padding
    y2 = block(changed, padding_mask=padding).numpy()
    np.testing.assert_allclose(y[0, :4], y2[0, :4], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y[1], y2[1])
    _, scores = block(x, padding_mask=padding, return_attention_scores=True)
    assert scores.shape == (2, 2, 6, 6) and (scores.numpy()[0, :, :, 4:] == 0).all()


def test_decoder_is_causal_and_cross_attends():
    engine.set_seed(5)
    block = TransformerDecoder(16, 2)
    dec, enc = random_f32(2, 6, 8, seed=1), random_f32(2, 4, 10, seed=2)
    y = block(dec, enc).numpy()
    later = dec.copy()
    later[:, 4:] = -50.0                                          # change only the last two steps
    y2 = block(later, enc).numpy()
    np.testing.assert_allclose(y[:, :4], y2[:, :4], rtol=1e-5, atol=1e-6)    # earlier steps cannot see them
    assert not np.allclose(y[:, 4:], y2[:, 4:])
    assert not np.allclose(block(dec, enc * 2).numpy(), y)       # the encoder output matters everywhere
    assert block.cross_attention.key_kernel.shape == (10, 2, 4)  # keys projected from the encoder's 10 features
    with pytest.raises(ValueError, match="built with an encoder_sequence and must be called the same way"):
        block(dec)
    gpt = TransformerDecoder(16, 2)
    assert gpt(dec).shape == (2, 6, 8) and gpt.cross_attention is None
    assert len(gpt.weights) == 16 and len(block.weights) == 26


def test_blocks_stack_in_a_sequential_model_and_train():
    engine.set_seed(7)
    model = engine.models.Sequential([layers.Input(shape=(6, 8))] +
                                     [TransformerEncoder(16, 2, normalize_first=True) for _ in range(3)] +
                                     [layers.Dense(1)])
    x = random_f32(32, 6, 8, seed=3)
    y = x.sum(axis=-1, keepdims=True) + x[:, ::-1, :1]          # a step's features plus one from another step
    model.compile(optimizer=engine.optimizers.Adam(learning_rate=3e-3), loss="mse")
    history = model.fit(x, y, epochs=20, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.4 * history[0]


@pytest.mark.parametrize("make, match", [
    (lambda: TransformerEncoder(0, 2), "TransformerEncoder: `intermediate_dim` must be a positive int. "
                                       "Received: intermediate_dim=0"),
    (lambda: TransformerDecoder(8, -1), "`num_heads` must be a positive int"),
    (lambda: TransformerEncoder(8, 2, dropout=2), "expected `dropout` in [0, 1)"),
    (lambda: TransformerEncoder(8, 4, name="enc")(random_f32(2, 3, 2)), "TransformerEncoder 'enc': the head size "
                                                                        "hidden_dim // num_heads must be at least 1. "
                                                                        "Received: hidden_dim=2, num_heads=4"),
])
def test_blocks_bad_arguments(make, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make()


def test_a_transformer_model_saves_and_loads(tmp_path):
    """Embedding, positions, encoder and decoder blocks in a functional model: the loaded model predicts the same
    and keeps training where the first one would."""
    engine.set_seed(8)
    source, target = layers.Input(shape=(None,), dtype="int64"), layers.Input(shape=(None,), dtype="int64")
    x = Embedding(12, 8)(source)
    x = x + PositionalEncoding()(x)
    encoded = TransformerEncoder(16, 2, normalize_first=True)(x)
    y = Embedding(12, 8)(target)
    y = layers.Add()([y, PositionEmbedding(6)(y)])
    y = TransformerDecoder(16, 2)(y, encoded)
    model = engine.models.Model([source, target], layers.Dense(12, activation="softmax")(y))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 12, (16, 5)), rng.integers(0, 12, (16, 6))
    model.fit([a, b], b, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "transformer.keras"
    model.save(path)
    loaded = engine.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict([a, b], verbose=0), model.predict([a, b], verbose=0))
    model.fit([a, b], b, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit([a, b], b, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for w1, w2 in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w1, w2)

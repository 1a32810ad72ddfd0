"""Scaled dot-product attention kernels: the fused kernel (cpu) and the naive rung vs engine.ref, forward and
every gradient, with and without masks, bias, causal, grouped-query heads; sequence lengths of 1 and odd
lengths that are not a multiple of the 96-wide tile; fully masked rows; the reference backward vs float64
finite differences; threads; SIMD paths; views; zero sizes; NaN; bad input. Also the softmax ladder rungs."""
import itertools
import re

import numpy as np
import pytest

import engine
from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")
MASKED = ref.MASKED
TOL = dict(rtol=2e-5, atol=2e-5)

# (B, T, S, N, K, H, HV): one of everything, odd sizes, lengths past one and two 96-wide tiles, T != S,
# grouped-query heads (K < N), value size != key size, and B * K both below and above the thread count.
SHAPES = [(1, 1, 1, 1, 1, 1, 1), (2, 5, 7, 4, 2, 8, 3), (1, 97, 200, 3, 3, 64, 64), (2, 100, 130, 2, 1, 16, 24),
          (3, 200, 97, 2, 2, 5, 7), (4, 193, 50, 4, 2, 16, 16), (1, 1, 300, 2, 1, 32, 8)]
_id = lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v)   # noqa: E731


def _inputs(shape, seed=0, scale=1.0):
    B, T, S, N, K, H, HV = shape
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) * scale).astype(np.float32)     # noqa: E731
    return f(B, T, N, H), f(B, S, K, H), f(B, S, K, HV), f(B, T, N, HV)


def _masks(shape, seed=1):
    """No mask; a padding mask over keys; a full (B, N, T, S) one; one shared by the batch with a fully
    masked query row."""
    B, T, S, N, K, H, HV = shape
    rng = np.random.default_rng(seed)
    padding = rng.random((B, 1, 1, S)) > 0.3
    padding[..., 0] = True
    full = rng.random((B, N, T, S)) > 0.25
    shared = rng.random((1, 1, T, S)) > 0.5
    shared[0, 0, T // 2, :] = False                          # a query with nothing to attend to
    return {"none": None, "padding": padding, "full": full, "row_masked": shared}


def _biases(shape, seed=2):
    B, T, S, N, K, H, HV = shape
    rng = np.random.default_rng(seed)
    return {"none": None, "per_batch": rng.standard_normal((B, 1, T, S)).astype(np.float32),
            "per_head": rng.standard_normal((1, N, T, S)).astype(np.float32)}


def _close(a, b, name):
    if b is None:
        assert a is None, name
        return
    assert a.shape == b.shape and a.dtype == np.float32, (name, a.shape, b.shape, a.dtype)
    np.testing.assert_allclose(a, b, err_msg=name, **TOL)


def _check_against_ref(fn, q, k, v, do, mask, bias, causal, scale=None):
    o, lse, w = fn(q, k, v, mask, bias, scale, causal, True)
    ro, rlse, rw = ref.attention_forward(q, k, v, mask, bias, scale, causal, True)
    _close(o, ro, "o")
    _close(lse, rlse, "lse")
    _close(w, rw, "weights")
    grads = cpu.attention_backward(do, q, k, v, ro, rlse, mask, bias, scale, causal, bias is not None)
    expected = ref.attention_backward(do, q, k, v, ro, rlse, mask, bias, scale, causal, bias is not None)
    for got, want, name in zip(grads, expected, ["dq", "dk", "dv", "dbias"]):
        _close(got, want, name)
    return o, w


# ------------------------------------------------------------------------------------------ oracle

@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_fused_matches_ref_with_every_mask(shape, causal):
    q, k, v, do = _inputs(shape)
    for (mask_name, mask), (bias_name, bias) in itertools.product(_masks(shape).items(), _biases(shape).items()):
        _check_against_ref(cpu.attention_forward, q, k, v, do, mask, bias, causal)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES[:4], ids=_id)
def test_naive_rung_matches_ref_and_the_fused_rung(shape, causal):
    q, k, v, do = _inputs(shape)
    for mask in _masks(shape).values():
        bias = _biases(shape)["per_head"]
        naive, naive_w = _check_against_ref(cpu.ladder.attention_forward_v1, q, k, v, do, mask, bias, causal)
        fused, fused_w = cpu.ladder.attention_forward_v2(q, k, v, mask, bias, None, causal, True)[::2]
        np.testing.assert_allclose(naive, fused, **TOL)
        np.testing.assert_allclose(naive_w, fused_w, **TOL)


def test_the_ladder_lists_both_rungs_and_they_agree():
    from engine import ladder
    assert "attention" in ladder.families() and "softmax" in ladder.families()
    assert [r.name for r in ladder.rungs("attention")] == ["ref", "v1", "v2"]
    q, k, v, _ = _inputs((1, 40, 40, 1, 1, 64, 64))
    outs = [ladder.run("attention", name, q, k, v)[0] for name in ("ref", "v1", "v2")]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], **TOL)
    rows = ladder.table("attention", n=64, min_time=0.0)
    assert [r["name"] for r in rows] == ["ref", "v1", "v2"] and all(r["seconds"] > 0 for r in rows)


@pytest.mark.parametrize("scale", [0.05, 1.0, 3.0])
def test_explicit_scale_and_large_logits(scale):
    """Scores in the thousands: the max shift keeps exp finite. The oracle is the reference in float64: a
    float32 score of 1e4 is only known to 1e-3, so the softmax near its switch points is ill-conditioned
    and the gradients are compared relative to their size."""
    q, k, v, do = _inputs((2, 33, 120, 2, 2, 16, 16), scale=10.0)
    o, lse, w = cpu.attention_forward(q, k, v, None, None, scale, False, True)
    exact = ref.attention_forward(*(a.astype(np.float64) for a in (q, k, v)), None, None, scale, False, True)
    assert np.isfinite(o).all() and np.isfinite(w).all()
    np.testing.assert_allclose(o, exact[0], rtol=1e-3, atol=1e-3 * np.abs(exact[0]).max())
    grads = cpu.attention_backward(do, q, k, v, o, lse, None, None, scale)[:3]
    exact_grads = ref.attention_backward(*(a.astype(np.float64) for a in (do, q, k, v)), exact[0], exact[1],
                                         None, None, scale)[:3]
    for got, want in zip(grads, exact_grads):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-2 * np.abs(want).max() + 1e-6)


def test_weights_rows_sum_to_one_and_causal_hides_the_future():
    q, k, v, _ = _inputs((2, 150, 150, 2, 1, 8, 8))
    _, _, w = cpu.attention_forward(q, k, v, None, None, None, True, True)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(w[0, 0], k=1) == 0)                      # query t never weighs keys after t


# ------------------------------------------------------------------------------------------ fully masked rows

@pytest.mark.parametrize("fn", ["attention_forward", "attention_forward_v1"])
def test_a_fully_masked_row_attends_uniformly_without_nan(fn):
    """Keras' rule: masked scores become -0.7 * FLT_MAX, so a row with nothing allowed has equal scores and
    averages all values; its lse is that constant, and it sends no gradient to q or k."""
    kernel = getattr(cpu, fn) if fn == "attention_forward" else cpu.ladder.attention_forward_v1
    B, T, S, N, K, H, HV = shape = (2, 130, 110, 2, 1, 8, 4)
    q, k, v, do = _inputs(shape)
    mask = np.ones((B, 1, T, S), bool)
    mask[1, 0, 100, :] = False
    for causal in (False, True):
        o, lse, w = kernel(q, k, v, mask, None, None, causal, True)
        assert np.isfinite(o).all() and np.isfinite(w).all()
        np.testing.assert_allclose(o[1, 100], np.repeat(v[1].mean(axis=0), 2, axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w[1, :, 100], 1.0 / S, rtol=1e-6)
        assert (lse[1, :, 100] == MASKED).all() and (lse[0] != MASKED).all()
        dq, dk, dv, _ = cpu.attention_backward(do, q, k, v, o, lse, mask, None, None, causal)
        assert np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all()
        assert (dq[1, 100] == 0).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_a_row_of_minus_infinity_bias_is_nan_as_in_the_reference():
    q, k, v, do = _inputs((1, 4, 6, 1, 1, 4, 4))
    bias = np.zeros((1, 1, 4, 6), np.float32)
    bias[0, 0, 2] = -np.inf                                        # an additive mask hiding everything: 0/0
    bias[0, 0, 3, :3] = -np.inf                                    # hiding half: fine
    o, lse, _ = cpu.attention_forward(q, k, v, None, bias)
    ro, rlse, _ = ref.attention_forward(q, k, v, None, bias)
    assert np.isnan(o[0, 2]).all() and np.isnan(ro[0, 2]).all()
    np.testing.assert_allclose(o[0, [0, 1, 3]], ro[0, [0, 1, 3]], **TOL)


def test_nan_in_one_query_stays_in_its_row():
    q, k, v, _ = _inputs((1, 120, 100, 1, 1, 8, 8))
    q[0, 57, 0, 3] = np.nan
    o, lse, _ = cpu.attention_forward(q, k, v)
    assert np.isnan(o[0, 57]).all() and np.isnan(lse[0, 0, 57])
    assert np.isfinite(np.delete(o, 57, axis=1)).all()


# ------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("mask_name", ["none", "padding", "row_masked"])
def test_reference_backward_is_the_gradient(mask_name, causal):
    """Finite differences in float64 of L = sum(o * r), for q, k, v and a broadcast bias (GQA: 4 query heads,
    2 key heads)."""
    shape = (2, 3, 4, 4, 2, 3, 2)
    q, k, v, _ = (a.astype(np.float64) for a in _inputs(shape))
    mask = _masks(shape)[mask_name]
    bias = np.random.default_rng(5).standard_normal((2, 1, 3, 4))

    def forward(q, k, v, bias):
        return ref.attention_forward(q, k, v, mask, bias, 0.7, causal)[0]

    def backward(r, q, k, v, bias):
        o, lse, _ = ref.attention_forward(q, k, v, mask, bias, 0.7, causal)
        dq, dk, dv, dbias = ref.attention_backward(r, q, k, v, o, lse, mask, bias, 0.7, causal, True)
        return dq, dk, dv, dbias.sum(axis=1, keepdims=True)         # the bias broadcast over heads
    check_grad(forward, backward, [q, k, v, bias], tol=1e-6)


def test_bias_gradient_is_zero_where_masked_and_none_unless_asked():
    shape = (1, 9, 11, 2, 2, 4, 4)
    q, k, v, do = _inputs(shape)
    mask = _masks(shape)["full"]
    bias = _biases(shape)["per_batch"]
    o, lse, _ = cpu.attention_forward(q, k, v, mask, bias)
    assert cpu.attention_backward(do, q, k, v, o, lse, mask, bias)[3] is None
    dbias = cpu.attention_backward(do, q, k, v, o, lse, mask, bias, None, False, True)[3]
    assert dbias.shape == (1, 2, 9, 11) and (dbias[~np.broadcast_to(mask, dbias.shape)] == 0).all()


# ------------------------------------------------------------------------------------------ threads, SIMD, layouts

@pytest.mark.parametrize("shape", [(1, 130, 200, 2, 1, 16, 16), (4, 100, 100, 2, 2, 8, 8)], ids=_id)
def test_same_bits_on_1_and_2_threads(threads, simd_path, shape):
    """B * K = 1 runs the backward as two passes on 2 threads and as one task per head on 1 thread: both add the
    same terms in the same order, so even the two designs give the same bits."""
    q, k, v, do = _inputs(shape)
    mask, bias = _masks(shape)["row_masked"], _biases(shape)["per_head"]
    runs = []
    for n in (1, 2):
        threads(n)
        o, lse, w = cpu.attention_forward(q, k, v, mask, bias, None, True, True)
        runs.append((o, lse, w) + tuple(cpu.attention_backward(do, q, k, v, o, lse, mask, bias, None, True, True)))
    for a, b in zip(*runs):
        assert bits_equal(a, b)


def test_every_simd_path_matches_ref(simd_path):
    shape = (2, 100, 130, 2, 1, 20, 12)
    q, k, v, do = _inputs(shape)
    for mask in (None, _masks(shape)["row_masked"]):
        _check_against_ref(cpu.attention_forward, q, k, v, do, mask, _biases(shape)["per_batch"], True)


def test_reads_strided_and_transposed_views(backend):
    """(B, N, T, H) arrays transposed to Keras' (B, T, N, H) are views, not copies: accepted as they are."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, 50, 8)).astype(np.float32).transpose(0, 2, 1, 3)
    k = rng.standard_normal((2, 60, 6, 8)).astype(np.float32)[:, :, ::2]
    v = rng.standard_normal((2, 3, 60, 5)).astype(np.float32).transpose(0, 2, 1, 3)
    assert not q.flags.c_contiguous and not k.flags.c_contiguous
    o, lse, _ = backend.attention_forward(q, k, v)
    ro, rlse, _ = ref.attention_forward(*(np.ascontiguousarray(a) for a in (q, k, v)))
    np.testing.assert_allclose(o, ro, **TOL)


@pytest.mark.parametrize("shape", [(0, 5, 7, 2, 2, 4, 4), (2, 0, 7, 2, 2, 4, 4)], ids=["no_batch", "no_queries"])
def test_zero_size_batch_and_no_queries(backend, shape):
    q, k, v, do = _inputs(shape)
    o, lse, w = backend.attention_forward(q, k, v, None, None, None, False, True)
    assert o.shape == shape[:2] + (2, 4) and lse.shape == (shape[0], 2, shape[1]) and w.shape == (shape[0], 2, shape[1], 7)
    dq, dk, dv, _ = backend.attention_backward(do, q, k, v, o, lse)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    assert (dk == 0).all() and (dv == 0).all()                     # no queries: nothing flows to the keys


# ------------------------------------------------------------------------------------------ bad input

BAD = [
    (lambda q, k, v: (q[0], k, v), ValueError, "expected q of rank 4"),
    (lambda q, k, v: (q, k[..., :3], v), ValueError, "expected k (B, S, K, H)"),
    (lambda q, k, v: (q[:, :, :3], k, v), ValueError, "N a multiple of K"),
    (lambda q, k, v: (q, k[:, :0], v[:, :0]), ValueError, "S >= 1"),
    (lambda q, k, v: (q, k, v[:, :3]), ValueError, "expected k (B, S, K, H)"),
    (lambda q, k, v: (q.astype(np.float16), k, v), TypeError, "expected q to be a float32 array"),
    (lambda q, k, v: (q.tolist(), k, v), TypeError, "expected q to be a float32 numpy array"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arrays_get_the_same_error_from_every_backend(backend, case):
    make, kind, match = BAD[case]
    q, k, v, _ = _inputs((2, 5, 7, 4, 2, 8, 3))
    with pytest.raises(kind, match=re.escape(match)):
        backend.attention_forward(*make(q, k, v))


@pytest.mark.parametrize("mask, kind, match", [
    (np.ones((2, 4, 5, 6), bool), ValueError, "expected mask of shape (1|B, 1|N, 1|T, S) = (1|2, 1|4, 1|5, 7). "
                                              "Received: mask.shape=(2, 4, 5, 6)"),
    (np.ones((2, 3, 5, 7), bool), ValueError, "Received: mask.shape=(2, 3, 5, 7)"),
    (np.ones((5, 7), bool), ValueError, "Received: mask.shape=(5, 7)"),
    (np.ones((2, 4, 5, 7), np.float32), TypeError, "expected mask to be a bool numpy array. Received: mask.dtype=float32"),
], ids=["keys", "heads", "rank", "dtype"])
def test_a_mask_of_the_wrong_shape_or_type_is_refused(backend, mask, kind, match):
    q, k, v, _ = _inputs((2, 5, 7, 4, 2, 8, 3))
    with pytest.raises(kind, match=re.escape(match)):
        backend.attention_forward(q, k, v, mask)


def test_backward_checks_the_saved_arrays(backend):
    q, k, v, do = _inputs((2, 5, 7, 4, 2, 8, 3))
    o, lse, _ = ref.attention_forward(q, k, v)
    with pytest.raises(ValueError, match=re.escape("expected lse of shape (2, 4, 5). Received: lse.shape=(2, 4)")):
        backend.attention_backward(do, q, k, v, o, lse[..., 0])
    with pytest.raises(ValueError, match=re.escape("expected do of shape (2, 5, 4, 3)")):
        backend.attention_backward(do[:, :4], q, k, v, o, lse)


# ------------------------------------------------------------------------------------------ softmax ladder

@pytest.mark.parametrize("rung", ["softmax_forward_v1", "softmax_forward_v2"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (64, 1000), (0, 5), (5, 4097)], ids=_id)
def test_softmax_rungs_match_ref(rung, shape):
    x = random_f32(*shape, seed=3, scale=4.0)
    np.testing.assert_allclose(getattr(cpu.ladder, rung)(x), ref.softmax_forward(x), rtol=1e-5, atol=1e-7)


def test_softmax_rungs_are_in_the_ladder_and_deterministic(threads, simd_path):
    from engine import ladder
    assert [r.name for r in ladder.rungs("softmax")] == ["ref", "v1", "v2"]
    x = random_f32(300, 513, seed=4, scale=3.0)
    for name in ("v1", "v2"):
        threads(1)
        one = ladder.run("softmax", name, x)
        threads(2)
        assert bits_equal(one, ladder.run("softmax", name, x))
    with pytest.raises(ValueError, match=re.escape("expected x of shape (N, D) with D >= 1")):
        cpu.ladder.softmax_forward_v2(random_f32(2, 3, 4))


# ------------------------------------------------------------------------------------------ memory

def test_fused_forward_memory_stays_far_below_a_score_matrix():
    """At 4096 steps one head's score matrix is 64 MiB. The fused forward adds its output (1 MiB) and a few MiB
    of packed keys, values and tiles per thread; the naive rung holds the whole matrix. Measured in fresh
    processes (engine.ladder.peak_memory)."""
    from engine import ladder
    matrix = 4096 * 4096 * 4
    fused = ladder.peak_memory("attention", "v2", 4096)
    naive = ladder.peak_memory("attention", "v1", 4096)
    assert fused["output"] == 4096 * 64 * 4
    assert fused["extra"] < matrix / 4, fused
    assert naive["extra"] > matrix, naive
    with pytest.raises(ValueError, match="expected a rung of 'attention'"):
        ladder.peak_memory("attention", "v9", 16)


def test_scratch_too_large_is_a_python_error_not_a_crash():
    """The naive rung asks for T x S floats per head (here 36 TB): std::bad_alloc inside the OpenMP team is
    carried out of it and becomes MemoryError."""
    q = np.zeros((1, 3_000_000, 1, 1), np.float32)
    with pytest.raises(MemoryError):
        cpu.ladder.attention_forward_v1(q, q, q)

"""loss family kernels: every backend (and SIMD path) vs engine.ref, forward and backward, on edge shapes;
the reference backward vs float64 finite differences; thread-count bits; NaN; bad input.
(tests/test_losses.py tests the Keras loss classes built on them.)"""
import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")
# (N, C): one value, one class, odd sizes off every vector width and the 256-value blocks of the row sums,
# a wide row, no rows.
SHAPES = [(1, 1), (1, 7), (5, 1), (3, 17), (9, 257), (2, 1000), (0, 5)]
RTOL, ATOL = 2e-5, 2e-6


def _case(N, C, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = random_f32(N, C, seed=seed, scale=scale)
    targets = rng.random((N, C)).astype(np.float32)
    targets /= np.maximum(targets.sum(axis=1, keepdims=True), 1e-6)       # probability rows (soft labels)
    labels = rng.integers(0, C, N).astype(np.int64)
    dloss = random_f32(N, seed=seed + 1)
    return logits, targets, labels, dloss


def _close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("N, C", SHAPES)
def test_softmax_cross_entropy_matches_ref(backend, N, C):
    logits, targets, _, dloss = _case(N, C)
    loss, probs = backend.softmax_cross_entropy_forward(logits, targets)
    want_loss, want_probs = ref.softmax_cross_entropy_forward(logits, targets)
    _close(loss, want_loss, "loss")
    _close(probs, want_probs, "probs")
    _close(backend.softmax_cross_entropy_backward(dloss, probs, targets),
           ref.softmax_cross_entropy_backward(dloss, want_probs, targets), "dlogits")


@pytest.mark.parametrize("N, C", SHAPES)
def test_sparse_softmax_cross_entropy_matches_ref(backend, N, C):
    logits, _, labels, dloss = _case(N, C, seed=3)
    loss, probs = backend.sparse_softmax_cross_entropy_forward(logits, labels)
    want_loss, want_probs = ref.sparse_softmax_cross_entropy_forward(logits, labels)
    _close(loss, want_loss, "loss")
    _close(probs, want_probs, "probs")
    _close(backend.sparse_softmax_cross_entropy_backward(dloss, probs, labels),
           ref.sparse_softmax_cross_entropy_backward(dloss, want_probs, labels), "dlogits")


@pytest.mark.parametrize("shape", [(1,), (7,), (33,), (4, 257), (0, 3)])
def test_sigmoid_cross_entropy_matches_ref(backend, shape):
    logits = random_f32(*shape, seed=1, scale=6.0)
    targets = np.random.default_rng(2).random(shape).astype(np.float32)
    dloss = random_f32(*shape, seed=3)
    _close(backend.sigmoid_cross_entropy_forward(logits, targets), ref.sigmoid_cross_entropy_forward(logits, targets),
           "loss")
    _close(backend.sigmoid_cross_entropy_backward(dloss, logits, targets),
           ref.sigmoid_cross_entropy_backward(dloss, logits, targets), "dlogits")


def test_extreme_logits_stay_finite_and_exact(backend):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [88.0, -104.0, 3.0]], np.float32)
    targets = np.eye(3, dtype=np.float32)
    loss, probs = backend.softmax_cross_entropy_forward(logits, targets)
    want_loss, want_probs = ref.softmax_cross_entropy_forward(logits, targets)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(probs))
    _close(loss, want_loss, "loss")
    _close(probs, want_probs, "probs")
    z = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], np.float32)
    t = np.full_like(z, 0.25)
    _close(backend.sigmoid_cross_entropy_forward(z, t), ref.sigmoid_cross_entropy_forward(z, t), "binary loss")


def test_nan_in_a_row_stays_in_that_row(backend):
    logits, targets, labels, _ = _case(3, 40)
    logits[1, 17] = np.nan
    loss, probs = backend.softmax_cross_entropy_forward(logits, targets)
    assert np.isnan(loss[1]) and np.all(np.isnan(probs[1]))
    assert np.all(np.isfinite(loss[[0, 2]])) and np.all(np.isfinite(probs[[0, 2]]))
    loss, _ = backend.sparse_softmax_cross_entropy_forward(logits, labels)
    assert np.isnan(loss[1]) and np.all(np.isfinite(loss[[0, 2]]))


def test_reference_backwards_are_the_gradients():
    logits, targets, labels, _ = _case(3, 5, seed=7)
    check_grad(lambda z: ref.softmax_cross_entropy_forward(z, targets.astype(np.float64))[0],
               lambda r, z: [ref.softmax_cross_entropy_backward(r, ref.softmax_cross_entropy_forward(
                   z, targets.astype(np.float64))[1], targets.astype(np.float64))], [logits])
    check_grad(lambda z: ref.sparse_softmax_cross_entropy_forward(z, labels)[0],
               lambda r, z: [ref.sparse_softmax_cross_entropy_backward(r, ref.sparse_softmax_cross_entropy_forward(
                   z, labels)[1], labels)], [logits])
    t = targets.astype(np.float64)
    check_grad(lambda z: ref.sigmoid_cross_entropy_forward(z, t), lambda r, z: [ref.sigmoid_cross_entropy_backward(
        r, z, t)], [logits])


def test_bits_do_not_depend_on_the_thread_count(threads, simd_path):
    logits, targets, labels, dloss = _case(700, 300, seed=5)
    z, t = random_f32(300000, seed=6), np.random.default_rng(7).random(300000).astype(np.float32)
    runs = []
    for n in (1, 2):
        threads(n)
        loss, probs = cpu.softmax_cross_entropy_forward(logits, targets)
        sparse, _ = cpu.sparse_softmax_cross_entropy_forward(logits, labels)
        runs.append((loss, probs, sparse, cpu.softmax_cross_entropy_backward(dloss, probs, targets),
                     cpu.sigmoid_cross_entropy_forward(z, t), cpu.sigmoid_cross_entropy_backward(z, z, t)))
    for one, two in zip(*runs):
        assert bits_equal(one, two)


def test_bad_labels_are_refused(backend):
    logits = random_f32(2, 3)
    with pytest.raises(ValueError, match=r"expected class ids in \[0, 3\). Received: a label of 3"):
        backend.sparse_softmax_cross_entropy_forward(logits, np.array([0, 3], np.int64))
    with pytest.raises(TypeError, match="expected labels to be an int64 numpy array"):
        backend.sparse_softmax_cross_entropy_forward(logits, np.array([0, 1], np.int32))
    with pytest.raises(ValueError, match="targets"):
        backend.softmax_cross_entropy_forward(logits, random_f32(2, 4))

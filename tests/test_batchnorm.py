"""Batch normalisation kernels: every backend vs engine.ref (training and inference, several axes), the
moving-average update with Keras' momentum and epsilon, gradients (reference vs finite differences),
thread-count determinism, bad input."""
import re

import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")
# (shape, axis): dense features, NHWC channels (B = 1), NCHW channels (B > 1), one row, odd sizes
CASES = [((8, 5), -1), ((4, 6, 7, 3), -1), ((4, 3, 6, 7), 1), ((1, 9), 1), ((3, 5, 7), 0), ((700, 33), -1)]
_id = lambda v: str(v).replace(" ", "")   # noqa: E731


def _state(C, seed=0):
    rng = np.random.default_rng(seed)
    gamma, beta = (rng.standard_normal(C) + 1).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    return gamma, beta, rng.standard_normal(C).astype(np.float32), (rng.random(C) + 0.5).astype(np.float32)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape, axis", CASES, ids=_id)
def test_batchnorm_matches_ref(backend, shape, axis, training):
    x = random_f32(*shape, seed=1, scale=3.0) + 2.0
    C = shape[axis]
    gamma, beta, mm, mv = _state(C)
    mm_ref, mv_ref = mm.copy(), mv.copy()
    y, mean, inv_std = backend.batchnorm_forward(x, gamma, beta, mm, mv, 0.9, 1e-3, training, axis)
    y_ref, mean_ref, inv_ref = ref.batchnorm_forward(x, gamma, beta, mm_ref, mv_ref, 0.9, 1e-3, training, axis)
    for got, want in ((y, y_ref), (mean, mean_ref), (inv_std, inv_ref), (mm, mm_ref), (mv, mv_ref)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    dy = random_f32(*shape, seed=2)
    for got, want in zip(backend.batchnorm_backward(dy, x, gamma, mean, inv_std, training, axis),
                         ref.batchnorm_backward(dy, x, gamma, mean_ref, inv_ref, training, axis)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_training_follows_keras_formulas(backend):
    x = random_f32(6, 4, seed=3) * 2 + 1
    gamma, beta, mm, mv = _state(4)
    mm0, mv0 = mm.copy(), mv.copy()
    y, mean, inv_std = backend.batchnorm_forward(x, gamma, beta, mm, mv, 0.99, 1e-3, True, -1)
    x64 = x.astype(np.float64)
    batch_mean, batch_var = x64.mean(0), x64.var(0)                         # the biased variance, as Keras
    np.testing.assert_allclose(y, gamma * (x64 - batch_mean) / np.sqrt(batch_var + 1e-3) + beta, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mm, mm0 * 0.99 + batch_mean * 0.01, rtol=1e-6)
    np.testing.assert_allclose(mv, mv0 * 0.99 + batch_var * 0.01, rtol=1e-6)
    y_inf, _, _ = backend.batchnorm_forward(x, gamma, beta, mm, mv, 0.99, 1e-3, False, -1)
    np.testing.assert_allclose(y_inf, gamma * (x64 - mm) / np.sqrt(mv + 1e-3) + beta, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape, axis", [((5, 3), -1), ((2, 3, 2, 2), 1), ((2, 2, 3, 2), -1)], ids=_id)
def test_ref_backward_is_the_gradient(shape, axis, training):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    C = shape[axis]
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    mm, mv = rng.standard_normal(C), rng.random(C) + 0.5

    def forward(x, gamma, beta):
        return ref.batchnorm_forward(x, gamma, beta, mm.copy(), mv.copy(), 0.9, 1e-3, training, axis)[0]

    def backward(r, x, gamma, beta):
        _, mean, inv_std = ref.batchnorm_forward(x, gamma, beta, mm.copy(), mv.copy(), 0.9, 1e-3, training, axis)
        return ref.batchnorm_backward(r, x, gamma, mean, inv_std, training, axis)
    check_grad(forward, backward, [x, gamma, beta], tol=1e-5)


def test_results_do_not_depend_on_the_thread_count(threads, simd_path):
    outs = []
    for n in (1, 2, 3):
        threads(n)
        out = []
        for shape, axis in (((64, 14, 14, 32), -1), ((16, 32, 14, 14), 1)):
            x = random_f32(*shape, seed=5)
            gamma, beta, mm, mv = _state(shape[axis])
            y, mean, inv_std = cpu.batchnorm_forward(x, gamma, beta, mm, mv, 0.9, 1e-3, True, axis)
            out += [y, mean, inv_std, mm, mv, *cpu.batchnorm_backward(y, x, gamma, mean, inv_std, True, axis)]
        outs.append(out)
    for other in outs[1:]:
        assert all(bits_equal(a, b) for a, b in zip(outs[0], other))


def test_bad_input(backend):
    x = random_f32(4, 3)
    gamma, beta, mm, mv = _state(3)
    with pytest.raises(ValueError, match=re.escape("batchnorm_forward: expected gamma of shape (3,), one value per "
                                                   "channel of the normalised axis. Received: gamma.shape=(2,)")):
        backend.batchnorm_forward(x, gamma[:2], beta, mm, mv)
    with pytest.raises(ValueError, match=re.escape("batchnorm_forward: expected axis in [-2, 2) for an array of 2 "
                                                   "dimensions. Received: axis=2")):
        backend.batchnorm_forward(x, gamma, beta, mm, mv, axis=2)
    with pytest.raises(ValueError, match=re.escape("batchnorm_forward: training needs at least one value per channel "
                                                   "to take statistics from. Received: x.shape=(0, 3)")):
        backend.batchnorm_forward(x[:0], gamma, beta, mm, mv)
    y, mean, inv_std = backend.batchnorm_forward(x[:0], gamma, beta, mm, mv, training=False)
    assert y.shape == (0, 3)
    with pytest.raises(ValueError, match=re.escape("batchnorm_forward: expected epsilon > 0. Received: epsilon=0")):
        backend.batchnorm_forward(x, gamma, beta, mm, mv, epsilon=0.0)
    if backend is cpu:
        with pytest.raises(TypeError, match="batchnorm_forward: expected moving_mean to be writeable"):
            frozen = mm.copy()
            frozen.flags.writeable = False
            cpu.batchnorm_forward(x, gamma, beta, frozen, mv)

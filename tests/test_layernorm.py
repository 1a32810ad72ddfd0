"""layernorm family: every backend vs engine.ref (forward and all gradients) on edge shapes, with and without
gamma and beta, rms_scaling, a large mean offset; the reference backward vs float64 finite differences;
threads; views; bad input; ops.layer_normalization over other axes."""
import re

import numpy as np
import pytest

import engine
from engine import backend as backends
from engine import ops, ref

from checks import bits_equal, check_grad, random_f32

cpu = backends.get("cpu")
SHAPES = [(1, 1), (1, 7), (3, 5), (64, 1000), (0, 8), (2, 3, 17), (5, 4097)]
_id = lambda s: "x".join(map(str, s))      # noqa: E731


def _params(D, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(D).astype(np.float32), rng.standard_normal(D).astype(np.float32)


def _check(backend, x, gamma, beta, rms=False, eps=1e-3, tol=1e-5):
    y, mean, rstd = backend.layer_norm_forward(x, gamma, beta, eps, rms)
    ry, rmean, rrstd = ref.layer_norm_forward(x, gamma, beta, eps, rms)
    for got, want, name in ((y, ry, "y"), (mean, rmean, "mean"), (rstd, rrstd, "rstd")):
        assert got.shape == want.shape and got.dtype == np.float32, name
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)
    dy = random_f32(*x.shape, seed=7)
    grads = backend.layer_norm_backward(dy, x, rmean, rrstd, gamma, rms)
    expected = ref.layer_norm_backward(dy, x, rmean, rrstd, gamma, rms)
    for got, want, name in zip(grads, expected, ("dx", "dgamma", "dbeta")):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.sqrt(x.size)), err_msg=name)
    return y


@pytest.mark.parametrize("affine", ["gamma_beta", "none", "gamma_only"])
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_matches_ref(backend, shape, affine):
    x = random_f32(*shape, seed=2, scale=3.0)
    gamma, beta = _params(shape[-1])
    gamma = None if affine == "none" else gamma
    beta = beta if affine == "gamma_beta" else None
    y = _check(backend, x, gamma, beta)
    if affine == "none" and x.size and shape[-1] > 1:
        np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-5)
        np.testing.assert_allclose(y.std(axis=-1), 1, rtol=1e-3)      # var / (var + eps) ~ 1


@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_rms_scaling_matches_ref(backend, shape):
    x = random_f32(*shape, seed=3, scale=2.0)
    gamma, beta = _params(shape[-1])
    _check(backend, x, gamma, beta, rms=True)


def test_a_large_mean_offset_does_not_cancel(backend):
    """x = 1e4 + noise: E[x^2] - E[x]^2 would lose every digit of the variance in float32; the two-pass
    variance keeps it. Compared with float64."""
    x = (1e4 + random_f32(16, 512, seed=4)).astype(np.float32)
    y, mean, rstd = backend.layer_norm_forward(x, None, None, 1e-5)
    x64 = x.astype(np.float64)
    exact = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, exact, rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms"])
def test_reference_backward_is_the_gradient(rms):
    x = random_f32(4, 6, seed=5, scale=2.0).astype(np.float64) + 1.5
    gamma, beta = (p.astype(np.float64) for p in _params(6))

    def forward(x, gamma, beta):
        return ref.layer_norm_forward(x, gamma, beta, 1e-3, rms)[0]

    def backward(r, x, gamma, beta):
        _, mean, rstd = ref.layer_norm_forward(x, gamma, beta, 1e-3, rms)
        dx, dgamma, dbeta = ref.layer_norm_backward(r, x, mean, rstd, gamma, rms)
        return dx, dgamma, (np.zeros_like(dbeta) if rms else dbeta)    # rms_scaling ignores beta
    check_grad(forward, backward, [x, gamma, beta])


def test_same_bits_on_1_and_2_threads(threads, simd_path):
    x = random_f32(1000, 257, seed=6)
    gamma, beta = _params(257)
    dy = random_f32(1000, 257, seed=8)
    runs = []
    for n in (1, 2):
        threads(n)
        y, mean, rstd = cpu.layer_norm_forward(x, gamma, beta, 1e-3)
        runs.append((y, mean, rstd) + tuple(cpu.layer_norm_backward(dy, x, mean, rstd, gamma)))
    for a, b in zip(*runs):
        assert bits_equal(a, b)


def test_reads_strided_views(backend):
    x = random_f32(40, 30, seed=9).T                              # (30, 40), not contiguous
    gamma, beta = _params(40)
    _check(backend, x, gamma, beta[::1])


@pytest.mark.parametrize("make, kind, match", [
    (lambda x, g: (x[..., :0], None, None), ValueError, "expected x of shape (..., D) with D >= 1"),
    (lambda x, g: (x, g[:3], None), ValueError, "expected gamma of shape (5,) for x of shape (..., 5). "
                                                 "Received: gamma.shape=(3,)"),
    (lambda x, g: (x, None, g[None]), ValueError, "expected beta of shape (5,)"),
    (lambda x, g: (x.astype(np.int32), None, None), TypeError, "expected x to be a float32 array"),
], ids=["empty_axis", "gamma", "beta", "dtype"])
def test_bad_input(backend, make, kind, match):
    x = random_f32(4, 5)
    with pytest.raises(kind, match=re.escape(match)):
        backend.layer_norm_forward(*make(x, _params(5)[0]))


def test_backward_checks_saved_shapes(backend):
    x = random_f32(4, 5)
    _, mean, rstd = ref.layer_norm_forward(x)
    with pytest.raises(ValueError, match=re.escape("expected rstd of shape (4,). Received: rstd.shape=(3,)")):
        backend.layer_norm_backward(x, x, mean, rstd[:3])


# ------------------------------------------------------------------------------------------ the op

@pytest.mark.parametrize("axis", [-1, 1, (1, 2), (2, 1)], ids=["last", "middle", "two", "two_reversed"])
def test_op_over_any_axes_matches_numpy_and_autograd_agrees_with_ref(engine_backend, axis):
    x = engine.tensor(random_f32(3, 4, 5, seed=10), requires_grad=True)
    axes = (axis,) if isinstance(axis, int) else axis
    shape = tuple(x.shape[a] for a in sorted(a % 3 for a in axes))
    g = engine.tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)
    b = engine.tensor(np.random.default_rng(2).standard_normal(shape), requires_grad=True)
    y = ops.layer_normalization(x, g, b, axis=axis, epsilon=1e-3)
    x64 = x.numpy().astype(np.float64)
    ax = tuple(sorted(a % 3 for a in axes))
    mean, var = x64.mean(ax, keepdims=True), x64.var(ax, keepdims=True)
    bshape = tuple(x.shape[a] if a in ax else 1 for a in range(3))
    expected = (x64 - mean) / np.sqrt(var + 1e-3) * g.numpy().reshape(bshape) + b.numpy().reshape(bshape)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
    r = np.random.default_rng(3).standard_normal(y.shape)
    (y * r).sum().backward()
    with engine.use_backend("ref"):                               # the same op on float64: the gradient oracle
        x2 = engine.tensor(x.numpy(), dtype="float64", requires_grad=True)
        g2 = engine.tensor(g.numpy(), dtype="float64", requires_grad=True)
        (ops.layer_normalization(x2, g2, b.numpy().astype(np.float64), axis=axis) * r).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g.grad.numpy(), g2.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_op_bad_axis_and_parameter_shape():
    with pytest.raises(ValueError, match="layer_normalization: expected axis within the 2 axes"):
        ops.layer_normalization(random_f32(2, 3), axis=2)
    with pytest.raises(ValueError, match=re.escape("expected gamma of shape (3,) (the normalised axes)")):
        ops.layer_normalization(random_f32(2, 3), gamma=np.ones(4, np.float32))

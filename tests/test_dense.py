"""The fused dense kernels (GEMM + bias + activation epilogue), ops.dense, the Dense layer on them, and the
engine.ladder interface."""
import numpy as np
import pytest

import engine
from engine import ladder, ops, ref
from checks import assert_matmul_close, bits_equal, check_grad, random_f32

ACTIVATIONS = ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "gelu_approximate", "silu",
               "softplus"]
NEEDS_INPUT = {"gelu", "gelu_approximate", "silu", "softplus"}
# (x shape, units): one row, odd sizes that cut tiles at every edge, a stack of rows, a zero-size batch,
# and a layer wider than one column panel and deeper than one K slice
SHAPES = [((1, 1), 1), ((3, 5), 7), ((33, 17), 10), ((2, 5, 9), 13), ((0, 4), 6), ((40, 300), 70)]


def _inputs(shape, units, seed=0, bias=True):
    x = random_f32(*shape, seed=seed)
    w = random_f32(shape[-1], units, seed=seed + 1, scale=0.5)
    return x, w, (random_f32(units, seed=seed + 2) if bias else None)


@pytest.mark.parametrize("shape, units", SHAPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_kernels_match_the_reference(backend, shape, units, activation, use_bias):
    x, w, b = _inputs(shape, units, bias=use_bias)
    y, z = backend.dense_forward(x, w, b, activation)
    y_ref, z_ref = ref.dense_forward(x, w, b, activation)
    np.testing.assert_allclose(y, y_ref, rtol=2e-5, atol=2e-5)
    assert (z is y) == (activation not in NEEDS_INPUT) == (z_ref is y_ref)
    dy = random_f32(*y.shape, seed=5)
    grads = backend.dense_backward(dy, x, w, z, y, activation, use_bias)
    for got, want in zip(grads, ref.dense_backward(dy, x, w, z_ref, y_ref, activation, use_bias)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_dense_linear_is_the_gemm_plus_bias():
    x, w, b = _inputs((37, 29), 45)
    y, _ = engine._cpu.dense_forward(x, w, b, "linear")
    assert_matmul_close(y - b, x, w, c_factor=4.0)


@pytest.mark.parametrize("activation, params", [("relu", {}), ("leaky_relu", {"negative_slope": -0.5}),
                                                ("elu", {"alpha": 0.7}), ("gelu", {}), ("silu", {})])
def test_reference_dense_backward_is_the_gradient(activation, params):
    x, w, b = (a.astype(np.float64) for a in _inputs((3, 4), 5, seed=3))
    x[np.abs(x) < 1e-3] = 0.5                     # keep away from the kinks of relu-like activations

    def forward(x_, w_, b_):
        return ref.dense_forward(x_, w_, b_, activation, **params)[0]

    def backward(r, x_, w_, b_):
        y, z = ref.dense_forward(x_, w_, b_, activation, **params)
        return ref.dense_backward(r, x_, w_, z, y, activation, True, **params)
    check_grad(forward, backward, [x, w, b], tol=1e-5)


def test_negative_slope_and_non_positive_alpha_keep_the_input():
    x, w, b = _inputs((4, 3), 2)
    for activation, params in (("leaky_relu", {"negative_slope": -0.1}), ("elu", {"alpha": 0.0})):
        y, z = engine._cpu.dense_forward(x, w, b, activation, **params)
        assert z is not y, activation               # y no longer tells where z > 0


def test_dense_is_bitwise_deterministic_across_threads(threads, simd_path):
    x, w, b = _inputs((300, 256), 300)
    dy = random_f32(300, 300, seed=7)

    def run():
        y, z = engine._cpu.dense_forward(x, w, b, "gelu")
        return (y, z) + engine._cpu.dense_backward(dy, x, w, z, y, "gelu", True)
    threads(1)
    one = run()
    threads(2)
    two = run()
    assert all(bits_equal(a, b) for a, b in zip(one, two))


def test_dense_kernels_reject_bad_input(backend):
    x, w, b = _inputs((4, 3), 2)
    with pytest.raises(ValueError, match=r"expected x of shape \(\.\.\., D\) and w of shape \(D, U\). "
                                         r"Received: x.shape=\(4, 3\), w.shape=\(5, 2\)"):
        backend.dense_forward(x, random_f32(5, 2), b)
    with pytest.raises(ValueError, match=r"expected bias of shape \(2,\). Received: bias.shape=\(3,\)"):
        backend.dense_forward(x, w, random_f32(3))
    with pytest.raises(ValueError, match="expected activation in .* Received: activation='softmax'"):
        backend.dense_forward(x, w, b, "softmax")
    with pytest.raises(TypeError, match="x.dtype=int64"):
        backend.dense_forward(np.ones((4, 3), np.int64), w, b)


# ---------------------------------------------------------------------------------------- ops and layers


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "gelu", "softplus", "softmax"])
def test_dense_layer_uses_one_kernel_and_trains_like_the_unfused_ops(engine_backend, activation):
    engine.set_seed(0)
    layer = engine.layers.Dense(7, activation=activation)
    x = random_f32(9, 5)
    with engine.trace() as calls:
        y = layer(x)
        (y * y).sum().backward()
    fused = [c for c in calls if c.endswith("dense_forward")]
    assert len(fused) == 1 and not any("matmul_forward" in c or "bias_add" in c for c in calls), calls
    grads = [w.grad.numpy() for w in layer.weights]
    # the same computation, op by op
    kernel, bias = (engine.tensor(w.numpy(), requires_grad=True) for w in layer.weights)
    unfused = engine.activations.get(activation)(ops.bias_add(ops.matmul(x, kernel), bias))
    (unfused * unfused).sum().backward()
    np.testing.assert_allclose(y.numpy(), unfused.numpy(), rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, (kernel.grad.numpy(), bias.grad.numpy())):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ops_dense_gradients_match_finite_differences():
    x, w, b = (np.array(a, dtype=np.float64) for a in _inputs((2, 3, 4), 3, seed=4))
    with engine.use_backend("ref"):
        def loss(xv, wv, bv):
            return ops.sum(ops.square(ops.dense(xv, wv, bv, "tanh")))
        ts = [engine.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b)]
        loss(*ts).backward()
        for t, a in zip(ts, (x, w, b)):
            numeric = np.zeros_like(a)
            for j in np.ndindex(a.shape):
                old = a[j]
                a[j] = old + 1e-6
                up = loss(*(engine.tensor(v, dtype="float64") for v in (x, w, b))).item()
                a[j] = old - 1e-6
                down = loss(*(engine.tensor(v, dtype="float64") for v in (x, w, b))).item()
                a[j] = old
                numeric[j] = (up - down) / 2e-6
            np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------- engine.ladder


def test_ladder_lists_and_runs_every_matmul_rung():
    assert "matmul" in ladder.families()
    names = [r.name for r in ladder.rungs("matmul")]
    assert names == ["ref", "v1", "v2", "v3", "v4"]
    assert all(r.idea for r in ladder.rungs("matmul"))
    a, b = random_f32(37, 23), random_f32(23, 41, seed=1)
    for name in names:
        assert_matmul_close(ladder.run("matmul", name, a, b), a, b)
    assert ladder.get("matmul", "v4") is engine._cpu.ladder.matmul_forward_v4


def test_ladder_table_times_every_rung(capsys):
    rows = ladder.print_table("matmul", n=48, min_time=0.001)
    out = capsys.readouterr().out
    assert [r["name"] for r in rows] == ["ref", "v1", "v2", "v3", "v4"]
    assert all(r["seconds"] > 0 and r["gflops"] > 0 for r in rows)
    assert rows[0]["of_ref"] == 1.0 and rows[1]["speedup"] is None and rows[2]["speedup"] > 0
    assert "GFLOP/s" in out and "v4" in out and "of NumPy" in out


def test_ladder_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"expected a family in \['matmul'.*Received: family='fft'"):
        ladder.rungs("fft")
    with pytest.raises(ValueError, match=r"expected a rung of 'matmul' in .*Received: name='v9'"):
        ladder.get("matmul", "v9")

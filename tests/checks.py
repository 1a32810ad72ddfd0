"""Assertion helpers shared by the tests."""
import numpy as np

from engine import backend as backends

EPS32 = np.finfo(np.float32).eps


def simd_paths():
    """Every SIMD path this CPU can run, widest first (['avx512', 'avx2', 'portable'] on an AVX-512 machine);
    ['portable'] where the cpu kernels are not built (the tests that need them fail on their own)."""
    order = ["avx512", "avx2", "portable"]
    if not backends.available("cpu"):
        return ["portable"]
    return order[order.index(backends.get("cpu").simd_detected()):]


SIMD_PATHS = simd_paths()


def random_f32(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def check_grad(forward, backward, inputs, eps=1e-6, tol=1e-6, seed=0):
    """backward(r, *inputs) must return dL/d(input) for L = sum(forward(*inputs) * r), compared with
    float64 central differences on every entry of every input."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    r = np.random.default_rng(seed).standard_normal(np.shape(forward(*inputs)))
    loss = lambda: np.sum(forward(*inputs) * r)   # noqa: E731
    grads = backward(r, *inputs)
    assert len(grads) == len(inputs), f"backward returned {len(grads)} gradients for {len(inputs)} inputs"
    for i, (a, grad) in enumerate(zip(inputs, grads)):
        numeric = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            old = a[j]
            a[j] = old + eps
            up = loss()
            a[j] = old - eps
            down = loss()
            a[j] = old
            numeric[j] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=tol, atol=tol, err_msg=f"gradient of input {i}")


def assert_matmul_close(c, a, b, c_factor=2.0):
    """c must equal a @ b within c_factor * K * eps32 * (|a| @ |b|): the float32 rounding bound of a
    K-term dot product, which holds whatever order the terms were added in."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    exact = a64 @ b64
    bound = c_factor * max(a.shape[-1], 1) * EPS32 * (np.abs(a64) @ np.abs(b64)) + 1e-30
    err = np.abs(np.asarray(c, np.float64) - exact)
    assert c.shape == exact.shape, f"shape {c.shape} != {exact.shape}"
    worst = np.max(err / bound) if err.size else 0.0
    assert worst <= 1.0, f"error {worst:.2f}x the float32 bound"


def bits_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def check_layer_grad(layer, x, tol=1e-6):
    """The input gradient of layer(x), by autograd in float64, against central differences."""
    import engine

    def forward(a):
        return layer(engine.tensor(a, dtype="float64")).data

    def backward(r, a):
        t = engine.tensor(a, dtype="float64", requires_grad=True)
        (layer(t) * engine.tensor(r, dtype="float64")).sum().backward()
        return [t.grad.data]
    check_grad(forward, backward, [x], tol=tol)

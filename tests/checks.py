"""Assertion helpers shared by the tests (the only module tests import besides conftest.py)."""
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import backend as backends
from engine import ref

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


def raises_same(call, error):
    """call(module) must raise `error` with the same message on the ref and cpu kernels (the bindings and
    engine/ref/_check.py word every check alike); returns the message."""
    messages = []
    for module in (ref, backends.get("cpu")):
        with pytest.raises(error) as info:
            call(module)
        messages.append(str(info.value))
    assert messages[0] == messages[1], f"ref and cpu disagree:\n  ref: {messages[0]}\n  cpu: {messages[1]}"
    return messages[0]


def check_layer(cls, kwargs, input_shape, expected_output_shape, seed=0, training=False):
    """Build cls(**kwargs) on a random input of input_shape and check: the output shape, compute_output_shape
    (batch dimension None), a JSON-able get_config, and that cls.from_config(config) gives an equivalent layer
    (the same config, and the same output once it holds the same weights). Returns (layer, x, y)."""
    layer = cls(**kwargs)
    assert not layer.built or not layer.weights
    x = random_f32(*input_shape, seed=seed)
    y = layer(x, training=training)
    assert isinstance(y, engine.Tensor)
    assert layer.built
    assert y.shape == tuple(expected_output_shape), f"output shape {y.shape} != {expected_output_shape}"
    assert y.dtype == np.float32
    symbolic = (None,) + tuple(input_shape[1:])
    assert tuple(layer.compute_output_shape(symbolic)) == (None,) + tuple(expected_output_shape[1:])

    config = layer.get_config()
    assert json.loads(json.dumps(config)) == json.loads(json.dumps(config))    # plain JSON values only
    for key, value in kwargs.items():                 # every constructor argument is in the config
        assert key in config, f"get_config lacks {key!r}"
    clone = cls.from_config(config)
    assert type(clone) is cls
    assert clone.get_config() == config
    clone(x, training=training)                       # build it
    clone.set_weights(layer.get_weights())
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]
    np.testing.assert_array_equal(clone(x, training=training).numpy(), y.numpy())
    return layer, x, y


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name):
    """The example script's globals (its main() and helpers), without running it as a script."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"))

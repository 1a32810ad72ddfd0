"""Tensor and autograd: composite expressions vs float64 finite differences, the cpu backend vs the
reference, operations with several outputs, accumulation, no_grad, and bad input."""
import numpy as np
import pytest

import engine
from engine import ops
from engine.tensor import results


def numeric_grads(f, arrays, eps=1e-6):
    """Central differences of the scalar f(*tensors) with respect to every entry of every array (float64)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out = []
    for a in arrays:
        g = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            old = a[j]
            a[j] = old + eps
            up = f(*[engine.tensor(x, dtype="float64") for x in arrays]).item()
            a[j] = old - eps
            down = f(*[engine.tensor(x, dtype="float64") for x in arrays]).item()
            a[j] = old
            g[j] = (up - down) / (2 * eps)
        out.append(g)
    return out


def autograd_grads(f, arrays, dtype="float64"):
    ts = [engine.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    f(*ts).backward()
    return [t.grad.numpy() for t in ts]


def rand(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


# Each case: a scalar function of tensors, and the input arrays. They cover broadcasting, a tensor used
# twice, slicing and fancy indexing, every op family and the shape operations.
CASES = {
    "broadcast_add_mul": (lambda x, y: ((x + y) * y).sum(), [rand(3, 1), rand(1, 4, seed=1)]),
    "reuse_twice": (lambda x: (x * x + x * 3.0 - x / 2.0).sum(), [rand(2, 3)]),
    "slice_step": (lambda x: (x[1:, ::2] * 2.0).sum() + x[0, 1], [rand(3, 5)]),
    "fancy_index_repeats": (lambda x: (x[[0, 2, 0]] ** 2).sum(), [rand(3, 4)]),
    "bool_mask": (lambda x: (x[np.array([True, False, True])] * 3.0).mean(), [rand(3, 2)]),
    "matmul_bias_relu": (lambda x, w, b: ops.relu(ops.bias_add(x @ w, b)).sum(),
                         [rand(4, 3), rand(3, 5, seed=1), rand(5, seed=2)]),
    "matmul_transposed_view": (lambda x, w: (x.T @ w).sum() + (w.T @ x).mean(), [rand(3, 4), rand(3, 2, seed=1)]),
    "batched_broadcast_matmul": (lambda a, b: (a @ b).sum(), [rand(2, 1, 3, 4), rand(3, 4, 2, seed=1)]),
    "vector_matmul": (lambda v, m: (v @ m @ v).sum(), [rand(3), rand(3, 3, seed=1)]),
    "divide_power": (lambda x, y: (x / y + x ** 3 + 2.0 ** y).sum(), [rand(2, 3), rand(2, 3, seed=1, low=0.5, high=2)]),
    "exp_log_sqrt": (lambda x: (ops.exp(x) + ops.log(x) + ops.sqrt(x) + ops.square(x)).sum(),
                     [rand(4, low=0.5, high=2.0)]),
    "abs_clip_max_min": (lambda x, y: (ops.abs(x) + ops.clip(x, -0.5, 0.5) + ops.maximum(x, y) +
                                       ops.minimum(x, y)).sum(), [rand(2, 5), rand(2, 5, seed=1)]),
    "where": (lambda x, y: ops.where(np.array([True, False, True]), x, y).sum(), [rand(3), rand(3, seed=1)]),
    "activations": (lambda x: (ops.sigmoid(x) + ops.tanh(x) + ops.elu(x) + ops.gelu(x) + ops.gelu(x, False) +
                               ops.silu(x) + ops.softplus(x) + ops.leaky_relu(x) + ops.linear(x)).sum(),
                    [rand(2, 3)]),
    "softmax_log_softmax": (lambda x, r: (ops.softmax(x, axis=1) * r).sum() + (ops.log_softmax(x) * r).sum(),
                            [rand(2, 3, 4), rand(2, 3, 4, seed=1)]),
    "reductions": (lambda x: x.sum(axis=0).max() + x.mean(axis=(0, 2)).sum() + x.max(axis=1, keepdims=True).sum()
                   + x.min(), [rand(2, 3, 4)]),
    "reshape_transpose": (lambda x, r: (x.reshape(4, 3).T.reshape(-1) * r).sum() + (x.transpose(1, 0) * 2.0).sum(),
                          [rand(3, 4), rand(12, seed=1)]),
    "concat_stack": (lambda x, y: (ops.concatenate([x, y, x], axis=1) ** 2).sum() +
                     (ops.stack([x, y], axis=2) * 3.0).max(), [rand(2, 3), rand(2, 3, seed=1)]),
    "expand_squeeze_broadcast_to": (lambda x: (ops.squeeze(ops.expand_dims(x, 0)) +
                                               ops.broadcast_to(x, (2, 3, 4))).sum(), [rand(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_autograd_matches_finite_differences(name):
    f, arrays = CASES[name]
    with engine.use_backend("ref"):
        got = autograd_grads(f, arrays)
        expected = numeric_grads(f, arrays)
    for i, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=f"{name}: input {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_autograd_matches_reference(name):
    f, arrays = CASES[name]
    with engine.use_backend("ref"):
        expected = autograd_grads(f, arrays, dtype="float32")
    with engine.use_backend("cpu"), engine.trace() as calls:
        got = autograd_grads(f, arrays, dtype="float32")
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    assert not any(c.startswith("ref.") for c in calls), calls


def test_float64_tensors_run_on_the_reference_kernels():
    x = engine.tensor(rand(2, 3), dtype="float64", requires_grad=True)
    with engine.use_backend("cpu"), engine.trace() as calls:
        ops.relu(x).sum().backward()
    assert calls and all(c.startswith("ref.") for c in calls)
    assert x.grad.dtype == np.float64


def test_gradients_accumulate_until_cleared():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_backward_with_explicit_gradient():
    x = engine.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    y = ops.relu(x) * 2.0
    y.backward(np.array([[1.0, 1.0], [0.5, 2.0]]))
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 0.0], [1.0, 4.0]])


def test_gradient_of_an_intermediate_result_used_twice_is_summed():
    x = engine.tensor(2.0, requires_grad=True)
    y = x * x                       # y feeds z twice: dz/dx = d(y^2 + y)/dx = (2y + 1) 2x
    z = y * y + y
    z.backward()
    assert x.grad.item() == pytest.approx((2 * 4 + 1) * 4)


def two_outputs(x, received=None):
    """y1 = 2x and y2 = x^2 from one graph node, as a fused kernel with two outputs makes them. received, a list,
    gets the (g1, g2) of every backward call."""
    x = ops.convert_to_tensor(x)

    def backward(g1, g2):
        if received is not None:
            received.append((g1, g2))
        return (2 * g1 + 2 * x.data * g2,)
    return results((2 * x.data, x.data * x.data), (x,), backward, "two_outputs")


def first(x):
    return two_outputs(x)[0]


def second(x):
    return two_outputs(x)[1]


R = rand(2, 3, seed=7)


def both(x):
    y1, y2 = two_outputs(x)
    return (y1 * y2 * R).sum() + y1.sum()


def second_twice(x):
    y2 = second(x)
    return (y2 * y2 * R).sum() + y2.mean()


def second_through_a_chain(x):
    y1, y2 = two_outputs(x)
    return ops.exp(ops.tanh(y2 * R)).sum() + (y1 * R).sum()


def node_feeding_nodes(x):
    y1, y2 = two_outputs(x)
    return (two_outputs(y2)[0] * y1 * R).sum() + (two_outputs(y1 + y2)[1] * R).sum()


# Each case: a loss that uses some of the outputs of one node, some of them several times or through other ops.
TWO_OUTPUT_CASES = {
    "first_only": lambda x: (first(x) * R).sum(),
    "second_only": lambda x: (second(x) * R).sum(),
    "both": both,
    "second_twice": second_twice,
    "second_through_a_chain": second_through_a_chain,
    "node_feeding_nodes": node_feeding_nodes,
}


@pytest.mark.parametrize("name", sorted(TWO_OUTPUT_CASES))
def test_an_operation_with_two_outputs_matches_finite_differences(name):
    f = TWO_OUTPUT_CASES[name]
    x = rand(2, 3)
    np.testing.assert_allclose(autograd_grads(f, [x])[0], numeric_grads(f, [x])[0], rtol=1e-6, atol=1e-7)


def test_two_outputs_run_one_backward_with_zeros_for_the_unused_output():
    x = engine.tensor(rand(2, 3), dtype="float64", requires_grad=True)
    received = []
    y1, y2 = two_outputs(x, received)
    assert y1._node is y2._node and (y1._index, y2._index) == (0, 1) and y1.requires_grad and y2.requires_grad
    (y2 * y2).sum().backward()
    (g1, g2), = received                                       # one call, after y2's gradient was complete
    np.testing.assert_array_equal(g1, np.zeros((2, 3)))
    np.testing.assert_allclose(g2, 2 * x.data ** 2)
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.data ** 3)


def test_backward_from_the_second_output_and_twice_accumulates():
    x = engine.tensor(rand(2, 3), dtype="float64", requires_grad=True)
    received = []
    y1, y2 = two_outputs(x, received)
    y2.backward(R)                                            # straight from the second output
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.data * R)
    loss = (y1 * y2).sum()
    loss.backward()
    loss.backward()                                           # the graph stays; gradients add up
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.data * R + 2 * (6 * x.data ** 2))
    assert len(received) == 3                                 # one backward call per pass


def test_two_outputs_under_no_grad_record_nothing():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    with engine.no_grad():
        y1, y2 = two_outputs(x)
    assert not y1.requires_grad and not y2.requires_grad and y1._node is None and y2._node is None
    np.testing.assert_array_equal(y2.numpy(), [1.0, 4.0])


def test_no_grad_records_nothing():
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    with engine.no_grad():
        y = (w * 2.0).sum()
    assert not y.requires_grad and y._parents is None and y._node is None
    assert engine.is_grad_enabled()

    @engine.no_grad()
    def predict(t):
        return t * 3.0
    assert not predict(w).requires_grad
    assert (w * 3.0).requires_grad


def test_detach_cuts_the_graph():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    y = (x.detach() * x).sum()       # only the second factor carries a gradient
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])


def test_leaf_gradients_do_not_share_memory():
    a = engine.tensor([1.0], requires_grad=True)
    b = engine.tensor([2.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data[0] = 100.0
    assert b.grad.item() == 1.0


def test_tensor_basics_and_numpy_interop():
    t = engine.tensor([[1, 2, 3]])
    assert t.dtype == np.float32 and t.shape == (1, 3) and t.ndim == 2 and t.size == 3 and len(t) == 1
    assert not t.requires_grad and t.grad is None
    assert np.asarray(t).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(t), [[1, 2, 3]])
    assert engine.tensor(np.arange(3.0), dtype="float64").dtype == np.float64
    assert isinstance(np.ones(3) + engine.tensor([1.0, 2.0, 3.0]), engine.Tensor)   # tensor's __radd__ wins
    assert (np.ones(3) + engine.tensor([1.0, 2.0, 3.0])).dtype == np.float32
    assert "requires_grad=True" in repr(engine.tensor([1.0], requires_grad=True))
    assert engine.tensor([[4.0]]).item() == 4.0
    data = np.array([1.0, 2.0], dtype=np.float32)
    t = engine.tensor(data)
    data[0] = 9.0
    assert t.numpy()[0] == 1.0                      # tensor() copies its input
    assert ((t > 1.5).numpy() == [False, True]).all()


def test_operators_match_numpy():
    a, b = rand(2, 3), rand(2, 3, seed=1, low=0.5, high=1.5)
    ta, tb = engine.tensor(a, dtype="float64"), engine.tensor(b, dtype="float64")
    for got, want in [(ta + tb, a + b), (ta - tb, a - b), (ta * tb, a * b), (ta / tb, a / b), (-ta, -a),
                      (tb ** 2, b ** 2), (2.0 - ta, 2.0 - a), (1.0 / tb, 1.0 / b), (ta @ tb.T, a @ b.T),
                      (ta[:, 1], a[:, 1]), (ta.T, a.T), (ta.sum(axis=1), a.sum(axis=1)),
                      (ta.max(axis=0), a.max(axis=0)), (ta.min(), a.min()), (ta.mean(), a.mean())]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_bad_input_raises_clear_errors():
    with pytest.raises(TypeError, match="dtype float32 or float64. Received: dtype=int32"):
        engine.tensor([1, 2], dtype="int32")
    with pytest.raises(TypeError, match="expected numbers"):
        engine.tensor({"a": 1})
    with pytest.raises(ValueError, match=r"x1.shape\[-1\] == x2.shape\[-2\]. Received: x1.shape=\(2, 3\), "
                                         r"x2.shape=\(4, 5\)"):
        ops.matmul(engine.tensor(np.ones((2, 3))), engine.tensor(np.ones((4, 5))))
    with pytest.raises(ValueError, match="expected a tensor with one element"):
        (engine.tensor(np.ones(3), requires_grad=True) * 2.0).backward()
    with pytest.raises(RuntimeError, match="does not require gradients"):
        engine.tensor([1.0]).sum().backward()
    with pytest.raises(ValueError, match="expected gradient of shape"):
        (engine.tensor([1.0, 2.0], requires_grad=True) * 2.0).backward(np.ones(3))
    with pytest.raises(ValueError, match="reshape: expected a shape with 6 elements"):
        engine.tensor(np.ones((2, 3))).reshape(4, 2)
    with pytest.raises(ValueError, match="transpose: expected axes to be a permutation"):
        engine.tensor(np.ones((2, 3))).transpose(0, 0)
    with pytest.raises(ValueError, match="concatenate: expected tensors whose shapes match"):
        ops.concatenate([np.ones((2, 3)), np.ones((3, 2))], axis=1)
    with pytest.raises(ValueError, match="axis"):
        ops.softmax(np.ones((2, 3)), axis=2)


def test_mixing_float32_and_float64_keeps_both_in_the_graph():
    a = engine.tensor([1.0, 2.0], requires_grad=True)
    b = engine.tensor([3.0, 4.0], dtype="float64", requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and a.grad.data.tolist() == [3.0, 4.0]
    assert b.grad.data.tolist() == [1.0, 2.0]

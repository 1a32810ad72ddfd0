"""The NumPy-math part of engine.ops (keras.ops names the generative examples call): values against NumPy,
gradients against float64 finite differences, integer results as arrays, and bad arguments."""
import numpy as np
import pytest

import engine
from engine import ops
from checks import check_grad

RNG = np.random.default_rng(0)
X = RNG.uniform(0.2, 0.8, (3, 4))              # inside every domain below (arcsin, log, ...)

# (op, the NumPy function it mirrors, input); each is also checked for its gradient
DIFFERENTIABLE = [
    (ops.sin, np.sin, X), (ops.cos, np.cos, X), (ops.tan, np.tan, X), (ops.arcsin, np.arcsin, X),
    (ops.arccos, np.arccos, X), (ops.arctan, np.arctan, X), (ops.sinh, np.sinh, X), (ops.cosh, np.cosh, X),
    (ops.log1p, np.log1p, X), (ops.expm1, np.expm1, X), (ops.log2, np.log2, X), (ops.log10, np.log10, X),
    (ops.reciprocal, np.reciprocal, X), (ops.rsqrt, lambda a: 1 / np.sqrt(a), X),
    (ops.log_sigmoid, lambda a: -np.log1p(np.exp(-a)), X - 0.5),
    (lambda a: ops.cumsum(a, axis=1), lambda a: np.cumsum(a, axis=1), X), (ops.cumsum, np.cumsum, X),
    (lambda a: ops.cumprod(a, axis=0), lambda a: np.cumprod(a, axis=0), X), (ops.cumprod, np.cumprod, X),
    (lambda a: ops.cumprod(a, axis=1), lambda a: np.cumprod(a, axis=1), np.array([[0.5, 0.0, 2.0, 3.0]])),
    (lambda a: ops.prod(a, axis=1), lambda a: np.prod(a, axis=1), X), (ops.prod, np.prod, X),
    (lambda a: ops.var(a, axis=0), lambda a: np.var(a, axis=0), X), (ops.std, np.std, X),
    (lambda a: ops.logsumexp(a, axis=1), lambda a: np.log(np.exp(a).sum(axis=1)), X * 10),
    (ops.norm, np.linalg.norm, X),
    (lambda a: ops.take(a, np.array([2, 0, 2]), axis=1), lambda a: np.take(a, [2, 0, 2], axis=1), X),
    (lambda a: ops.take(a, np.array([[5, 1]])), lambda a: np.take(a, [[5, 1]]), X),
    (lambda a: ops.take_along_axis(a, np.array([[0], [3], [1]]), axis=1),
     lambda a: np.take_along_axis(a, np.array([[0], [3], [1]]), axis=1), X),
    (lambda a: ops.repeat(a, 2, axis=0), lambda a: np.repeat(a, 2, axis=0), X), (lambda a: ops.repeat(a, 3),
                                                                               lambda a: np.repeat(a, 3), X),
    (lambda a: ops.tile(a, (2, 1, 3)), lambda a: np.tile(a, (2, 1, 3)), X),
    (lambda a: ops.flip(a, axis=1), lambda a: np.flip(a, axis=1), X), (ops.flip, np.flip, X),
    (lambda a: ops.split(a, 2, axis=1)[1], lambda a: np.split(a, 2, axis=1)[1], X),
    (lambda a: ops.split(a, [1], axis=0)[1], lambda a: np.split(a, [1], axis=0)[1], X),
    (lambda a: ops.swapaxes(a, 0, 1), lambda a: np.swapaxes(a, 0, 1), X),
    (lambda a: ops.moveaxis(a[None], 0, 2), lambda a: np.moveaxis(a[None], 0, 2), X),
    (ops.ravel, np.ravel, X), (ops.triu, np.triu, X), (lambda a: ops.tril(a, -1), lambda a: np.tril(a, -1), X),
    (lambda a: ops.outer(a[0], a[1]), lambda a: np.outer(a[0], a[1]), X),
    (lambda a: ops.dot(a[0], a[1]), lambda a: np.dot(a[0], a[1]), X), (lambda a: ops.dot(a, a.T), None, X),
]


@pytest.mark.parametrize("index", range(len(DIFFERENTIABLE)))
def test_values_and_gradients(index):
    op, reference, x = DIFFERENTIABLE[index]
    if reference is not None:
        np.testing.assert_allclose(op(engine.tensor(x, dtype="float64")).data, reference(x), rtol=1e-10, atol=1e-12)
    check_grad(lambda a: op(engine.tensor(a, dtype="float64")).data,
               lambda r, a: _autograd(op, r, a), [x.copy()], tol=1e-5)


def _autograd(op, r, a):
    t = engine.tensor(a, dtype="float64", requires_grad=True)
    (op(t) * engine.tensor(r, dtype="float64")).sum().backward()
    return [t.grad.data]


def test_creation_and_conversion():
    assert ops.zeros((2, 3)).data.dtype == np.float32 and ops.ones((2,)).data.tolist() == [1, 1]
    assert ops.full((2,), 7, dtype="float64").data.dtype == np.float64
    np.testing.assert_array_equal(ops.zeros_like(np.ones((2, 2), "f8")).data, np.zeros((2, 2)))
    assert ops.ones_like(np.ones(3, "i4")).data.dtype == np.float32
    assert ops.zeros((2,), dtype="int32").dtype == np.int32                        # integers stay arrays
    np.testing.assert_array_equal(ops.eye(3).data, np.eye(3))
    assert ops.arange(5).tolist() == [0, 1, 2, 3, 4] and ops.arange(0.0, 1.0, 0.5).data.tolist() == [0.0, 0.5]
    np.testing.assert_allclose(ops.linspace(0, 1, 5).data, np.linspace(0, 1, 5))
    np.testing.assert_array_equal(ops.one_hot(np.array([2, 0]), 3).data, [[0, 0, 1], [1, 0, 0]])
    t = engine.tensor([[1.0, 2.0]])
    assert isinstance(ops.convert_to_numpy(t), np.ndarray) and ops.shape(t) == (1, 2)
    assert ops.cast(t, "int32").dtype == np.int32
    wide = engine.tensor([1.5, 2.5], requires_grad=True)
    (ops.cast(wide, "float64") * 2.0).sum().backward()
    assert wide.grad.dtype == np.float32 and wide.grad.data.tolist() == [2.0, 2.0]
    assert ops.argmax(np.array([[1, 5, 2]]), axis=1).tolist() == [1] and ops.argmin(np.array([3, 1])) == 1
    assert ops.argsort(np.array([3, 1, 2])).tolist() == [1, 2, 0]
    assert ops.equal(np.array([1, 2]), 2).tolist() == [False, True] and ops.greater(t, 1.5).tolist() == [[False, True]]
    np.testing.assert_array_equal(ops.sign(np.array([-2.0, 0.0, 3.0])).data, [-1, 0, 1])
    assert ops.floor(np.array([1.7])).data.tolist() == [1.0] and ops.round(np.array([1.26]), 1).data.tolist() == [1.3]
    s = engine.tensor([1.0, 2.0], requires_grad=True)
    assert not ops.stop_gradient(s).requires_grad and not ops.sign(s).requires_grad


@pytest.mark.parametrize("call, match", [
    (lambda: ops.zeros((2, -1)), r"zeros|full: expected shape to be a tuple of non-negative ints"),
    (lambda: ops.zeros((2,), dtype="complex64"), r"expected dtype float32, float64, an integer type or bool"),
    (lambda: ops.linspace(0, 1, -1), r"linspace: expected num to be an int >= 0"),
    (lambda: ops.one_hot(np.array([0.5]), 3), r"one_hot: expected integer class ids"),
    (lambda: ops.one_hot(np.array([1]), 0), r"one_hot: expected num_classes to be a positive int"),
    (lambda: ops.take(np.ones(3), np.array([0.5])), r"take: expected integer indices"),
    (lambda: ops.take(np.ones((2, 2)), np.array([0]), axis=2), r"take: expected axis in \[-2, 2\)"),
    (lambda: ops.split(np.ones(5), 2), r"split: expected a number of sections that divides the axis of size 5"),
    (lambda: ops.norm(np.ones(3), ord=1), r"norm: engine computes the 2-norm only"),
    (lambda: ops.resize(np.ones((2, 3, 3), "f4"), (4, 4)), r"resize: expected images of rank 4"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_resize_op_is_differentiable_in_both_layouts(data_format):
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 2))
    image = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    op = lambda a: ops.resize(a, (5, 7), "bilinear", data_format)           # noqa: E731
    check_grad(lambda a: op(engine.tensor(a, dtype="float64")).data, lambda r, a: _autograd(op, r, a), [image])

"""Integer arguments of the cpu kernels given as things that are not one integer: a NumPy array (which passes
Python's index check and then refuses to be one), an int past int64, a bool. Each call gives a Python error
(always, where the reference rejects it too), or the reference's result; never a crash. (These once read a
NULL pointer.)"""
import numpy as np
import pytest

from engine import backend as backends
from engine import ref

cpu = backends.get("cpu")
X4 = np.ones((1, 4, 4, 2), "f4")
K = np.ones((3, 3, 2, 2), "f4")

CALLS = {
    "sum axis array": lambda k: k.sum_forward(np.ones((2, 3), "f4"), np.array([0]), False),
    "sum axis huge": lambda k: k.sum_forward(np.ones((2, 3), "f4"), 2**70, False),
    "softmax axis array": lambda k: k.softmax_forward(np.ones((2, 3), "f4"), np.array([0])),
    "log_softmax axis 2-d array": lambda k: k.log_softmax_forward(np.ones((2, 3), "f4"), np.zeros((2, 2), int)),
    "conv strides array": lambda k: k.conv2d_forward(X4, K, None, np.array([1, 1])),
    "conv strides huge": lambda k: k.conv2d_forward(X4, K, None, 2**64),
    "conv padding arrays": lambda k: k.conv2d_forward(X4, K, None, 1, ((np.array([1]), 0), (0, 0))),
    "avgpool strides array": lambda k: k.avgpool2d_forward(X4, 2, np.zeros((2, 2))),
    "maxpool size bool": lambda k: k.maxpool2d_forward(X4, True),
    "embedding rows array": lambda k: k.embedding_backward(np.ones((2, 3), "f4"), np.array([0, 1]), np.array([4])),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_not_one_integer_is_an_error_or_the_references_result(name):
    call = CALLS[name]
    try:
        expected = call(ref)
    except (TypeError, ValueError, OverflowError):
        expected = None
    try:
        got = call(cpu)
    except (TypeError, ValueError):
        return                                   # an error that names the argument: always acceptable
    assert expected is not None, "the cpu kernel took an argument that the reference rejects"
    got, expected = (got[0], expected[0]) if isinstance(got, tuple) else (got, expected)
    np.testing.assert_allclose(got, expected, rtol=1e-6)

"""matmul family: every backend, ladder rung and SIMD path vs engine.ref; gradients; threads; bad input."""
import re

import numpy as np
import pytest

from engine import backend as backends
from engine import ref

from checks import assert_matmul_close, bits_equal, check_grad, raises_same, random_f32

cpu = backends.get("cpu")
_id = lambda v: str(v).replace(" ", "")   # noqa: E731  test ids like (3,4) and (0,2)
TRANS = [(False, False), (True, False), (False, True), (True, True)]
RUNGS = ["matmul_forward_v1", "matmul_forward_v2", "matmul_forward_v3", "matmul_forward_v4"]

# (M, N, K): one element, odd sizes off every SIMD width and micro-tile (6x8, 6x16, 12x32), several
# K slices (KC = 256), several M blocks (MC = 144), several N blocks (NC = 4096), zero rows.
SHAPES = [(1, 1, 1), (3, 7, 13), (17, 33, 5), (13, 127, 33), (127, 3, 17), (37, 65, 300), (150, 40, 7),
          (2, 4100, 3), (0, 5, 4), (4, 0, 5)]


def _op(x, trans):
    return np.swapaxes(x, -1, -2) if trans else x


def _operand(batch, rows, cols, trans, seed):
    """op(x) has shape batch + (rows, cols); x is stored transposed when trans is set."""
    return random_f32(*batch, *((cols, rows) if trans else (rows, cols)), seed=seed)


def _folded(left, right):
    """sum_i left[i] @ right[i] written as one product whose summed dimension runs over the batch too."""
    P, Q = left.shape[-2:]
    R = right.shape[-1]
    left = left.reshape(-1, P, Q).transpose(1, 0, 2).reshape(P, -1)           # (P, batch * Q)
    return left, right.reshape(-1, R)                                           # (batch * Q, R)


def assert_matmul_grads_close(da, db, dc, a, b, trans_a, trans_b):
    """da and db must be the products of matmul_backward's docstring, each within the float32 bound."""
    A, B = _op(a, trans_a), _op(b, trans_b)
    T = lambda x: np.swapaxes(x, -1, -2)                                        # noqa: E731
    expected = {"da": (da, a, (dc, T(B)) if not trans_a else (B, T(dc))),
                "db": (db, b, (T(A), dc) if not trans_b else (T(dc), A))}
    for name, (grad, operand, (left, right)) in expected.items():
        assert grad.shape == operand.shape, f"{name}.shape {grad.shape} != {operand.shape}"
        assert grad.dtype == np.float32, f"{name}.dtype {grad.dtype}"
        if operand.ndim == 2 and dc.ndim > 2:                                   # shared: summed over the stack
            left, right = _folded(left, right)
        assert_matmul_close(grad, left, right)


# ------------------------------------------------------------------------------------------ oracle

@pytest.mark.parametrize("trans_a, trans_b", TRANS)
@pytest.mark.parametrize("M, N, K", SHAPES)
def test_matmul_forward_matches_ref(backend, M, N, K, trans_a, trans_b):
    a, b = _operand((), M, K, trans_a, 1), _operand((), K, N, trans_b, 2)
    c = backend.matmul_forward(a, b, trans_a, trans_b)
    assert c.dtype == np.float32
    assert_matmul_close(c, _op(a, trans_a), _op(b, trans_b))


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
@pytest.mark.parametrize("M, N, K", SHAPES)
def test_matmul_backward_matches_ref(backend, M, N, K, trans_a, trans_b):
    a, b = _operand((), M, K, trans_a, 1), _operand((), K, N, trans_b, 2)
    dc = random_f32(M, N, seed=3)
    da, db = backend.matmul_backward(dc, a, b, trans_a, trans_b)
    assert_matmul_grads_close(da, db, dc, a, b, trans_a, trans_b)


# (batch of a, batch of b, M, N, K): equal stacks, a 2-D a shared by the stack, a 2-D b shared, an
# empty stack, two batch dimensions.
BATCHED = [((4,), (4,), 3, 7, 13), ((2,), (2,), 33, 17, 129), ((), (5,), 7, 13, 9), ((5,), (), 7, 13, 9),
           ((3,), (), 50, 40, 300), ((), (3,), 50, 40, 300), ((0,), (), 3, 5, 4), ((), (0,), 3, 5, 4),
           ((2, 3), (2, 3), 5, 6, 7), ((2, 3), (), 5, 6, 7)]


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
@pytest.mark.parametrize("batch_a, batch_b, M, N, K", BATCHED, ids=_id)
def test_matmul_batched_matches_ref(backend, batch_a, batch_b, M, N, K, trans_a, trans_b):
    a, b = _operand(batch_a, M, K, trans_a, 1), _operand(batch_b, K, N, trans_b, 2)
    c = backend.matmul_forward(a, b, trans_a, trans_b)
    assert_matmul_close(c, _op(a, trans_a), _op(b, trans_b))
    dc = random_f32(*c.shape, seed=3)
    da, db = backend.matmul_backward(dc, a, b, trans_a, trans_b)
    assert_matmul_grads_close(da, db, dc, a, b, trans_a, trans_b)


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
@pytest.mark.parametrize("batch_a, batch_b", [((), ()), ((3,), (3,)), ((3,), ()), ((), (3,))], ids=_id)
def test_matmul_with_k_zero_gives_zeros(backend, batch_a, batch_b, trans_a, trans_b):
    a, b = _operand(batch_a, 4, 0, trans_a, 1), _operand(batch_b, 0, 5, trans_b, 2)
    c = backend.matmul_forward(a, b, trans_a, trans_b)
    assert c.shape == (batch_a or batch_b) + (4, 5)
    np.testing.assert_array_equal(c, np.zeros(c.shape, np.float32))
    da, db = backend.matmul_backward(random_f32(*c.shape), a, b, trans_a, trans_b)
    assert da.shape == a.shape and db.shape == b.shape


def test_matmul_backward_of_zero_rows_gives_zero_weight_gradient(backend):
    """A batch of 0 rows: the weight gradient is a sum over nothing, so exactly zero (not garbage)."""
    x, w = random_f32(0, 5), random_f32(5, 3)
    c = backend.matmul_forward(x, w)
    assert c.shape == (0, 3)
    dx, dw = backend.matmul_backward(np.zeros((0, 3), np.float32), x, w)
    assert dx.shape == (0, 5)
    np.testing.assert_array_equal(dw, np.zeros((5, 3), np.float32))


def test_matmul_reads_strided_and_transposed_views(backend):
    base = random_f32(13, 34, seed=1)
    a = base[:, ::2]                                    # (13, 17), stride 2: not contiguous
    b = random_f32(33, 17, seed=2).T                    # (17, 33), a transposed view
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    assert_matmul_close(backend.matmul_forward(a, b), a, b)
    dc = random_f32(33, 13, seed=3).T                   # (13, 33), transposed
    da, db = backend.matmul_backward(dc, a, b)
    assert_matmul_grads_close(da, db, dc, a, b, False, False)
    stack = random_f32(3, 13, 34, seed=4)[:, :, 1::2]   # a strided stack times a shared transposed b
    assert_matmul_close(backend.matmul_forward(stack, b), stack, b)


@pytest.mark.parametrize("rung", RUNGS)
@pytest.mark.parametrize("M, N, K", SHAPES + [(5, 4, 0), (64, 300, 129)])
def test_ladder_rung_matches_ref(rung, M, N, K):
    a, b = random_f32(M, K, seed=1), random_f32(K, N, seed=2)
    c = getattr(cpu.ladder, rung)(a, b)
    assert_matmul_close(c, a, b)
    if K == 0:
        np.testing.assert_array_equal(c, np.zeros((M, N), np.float32))


@pytest.mark.parametrize("rung", RUNGS)
def test_ladder_rung_reads_views(rung):
    a, b = random_f32(9, 22, seed=1)[:, ::2], random_f32(5, 11, seed=2).T
    assert_matmul_close(getattr(cpu.ladder, rung)(a, b), a, b)


def test_every_simd_path_matches_ref(simd_path):
    assert cpu.simd_path() == simd_path
    for M, N, K in SHAPES + [(5, 4, 0)]:
        for trans_a, trans_b in TRANS:
            a, b = _operand((), M, K, trans_a, 1), _operand((), K, N, trans_b, 2)
            assert_matmul_close(cpu.matmul_forward(a, b, trans_a, trans_b), _op(a, trans_a), _op(b, trans_b))
            dc = random_f32(M, N, seed=3)
            da, db = cpu.matmul_backward(dc, a, b, trans_a, trans_b)
            assert_matmul_grads_close(da, db, dc, a, b, trans_a, trans_b)
        a, b = random_f32(M, K, seed=1), random_f32(K, N, seed=2)
        assert_matmul_close(cpu.ladder.matmul_forward_v4(a, b), a, b)
    for batch_a, batch_b, M, N, K in BATCHED:
        a, b = _operand(batch_a, M, K, False, 1), _operand(batch_b, K, N, True, 2)
        c = cpu.matmul_forward(a, b, False, True)
        assert_matmul_close(c, a, _op(b, True))
        dc = random_f32(*c.shape, seed=3)
        da, db = cpu.matmul_backward(dc, a, b, False, True)
        assert_matmul_grads_close(da, db, dc, a, b, False, True)


def test_set_simd_rejects_unknown_path():
    with pytest.raises(ValueError, match=re.escape("set_simd: expected one of 'avx512', 'avx2', 'portable'. "
                                                   "Received: path='sse9'")):
        cpu.set_simd("sse9")


# ------------------------------------------------------------------------------------------ bias add

BIAS_SHAPES = [(1, 1), (3, 7), (13, 17), (0, 5), (3, 0), (4, 3, 33), (127,), (2, 130)]   # (3, 0): D = 0


@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=_id)
def test_bias_add_matches_ref(backend, shape):
    x, bias = random_f32(*shape, seed=1), random_f32(shape[-1], seed=2)
    y = backend.bias_add_forward(x, bias)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x + bias)                # one float32 add: exact
    dy = random_f32(*shape, seed=3)
    dx, dbias = backend.bias_add_backward(dy)
    np.testing.assert_array_equal(dx, dy)
    assert dbias.shape == (shape[-1],) and dbias.dtype == np.float32
    expected = dy.sum(axis=tuple(range(dy.ndim - 1)), dtype=np.float64)
    np.testing.assert_allclose(dbias, expected, rtol=1e-6, atol=1e-6)


def test_bias_add_reads_views(backend):
    x, bias = random_f32(7, 26, seed=1)[:, ::2], random_f32(26, seed=2)[1::2]
    np.testing.assert_array_equal(backend.bias_add_forward(x, bias), x + bias)
    dy = random_f32(13, 5, seed=3).T                          # (5, 13) transposed
    dx, dbias = backend.bias_add_backward(dy)
    np.testing.assert_array_equal(dx, dy)
    np.testing.assert_allclose(dbias, dy.sum(axis=0, dtype=np.float64), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("trans_a, trans_b", TRANS)
@pytest.mark.parametrize("batch_a, batch_b", [((), ()), ((2,), (2,)), ((2,), ()), ((), (2,))], ids=_id)
def test_matmul_backward_is_the_gradient(batch_a, batch_b, trans_a, trans_b):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(batch_a + ((4, 3) if trans_a else (3, 4)))
    b = rng.standard_normal(batch_b + ((5, 4) if trans_b else (4, 5)))
    check_grad(lambda a, b: ref.matmul_forward(a, b, trans_a, trans_b),
               lambda r, a, b: ref.matmul_backward(r, a, b, trans_a, trans_b), [a, b])


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5)], ids=_id)
def test_bias_add_backward_is_the_gradient(shape):
    rng = np.random.default_rng(0)
    check_grad(ref.bias_add_forward, lambda r, x, bias: ref.bias_add_backward(r),
               [rng.standard_normal(shape), rng.standard_normal(shape[-1])])


# ------------------------------------------------------------------------------------------ threads

def _same_bits_on_1_and_2_threads(threads, fn):
    threads(1)
    one = fn()
    threads(2)
    two = fn()
    one, two = (one, two) if isinstance(one, tuple) else ((one,), (two,))
    for i, (x, y) in enumerate(zip(one, two)):
        assert bits_equal(x, y), f"output {i}: 1 and 2 threads differ in {np.sum(x != y)} of {x.size} values"


@pytest.mark.parametrize("trans_a, trans_b", TRANS)
def test_matmul_is_bitwise_deterministic_across_threads(threads, simd_path, trans_a, trans_b):
    a, b = _operand((), 300, 300, trans_a, 1), _operand((), 300, 300, trans_b, 2)
    dc = random_f32(300, 300, seed=3)
    _same_bits_on_1_and_2_threads(threads, lambda: cpu.matmul_forward(a, b, trans_a, trans_b))
    _same_bits_on_1_and_2_threads(threads, lambda: cpu.matmul_backward(dc, a, b, trans_a, trans_b))


@pytest.mark.parametrize("batch_a, batch_b, M, N, K", [((6,), (6,), 100, 100, 100), ((2,), (2,), 200, 200, 200),
                                                        ((4,), (), 200, 200, 160), ((), (4,), 200, 200, 160)])
def test_batched_matmul_is_bitwise_deterministic_across_threads(threads, simd_path, batch_a, batch_b, M, N,
                                                               K):
    a, b = _operand(batch_a, M, K, False, 1), _operand(batch_b, K, N, False, 2)
    dc = random_f32(*np.broadcast_shapes(batch_a, batch_b), M, N, seed=3)
    _same_bits_on_1_and_2_threads(threads, lambda: cpu.matmul_forward(a, b))
    _same_bits_on_1_and_2_threads(threads, lambda: cpu.matmul_backward(dc, a, b))


@pytest.mark.parametrize("rung", RUNGS[1:])
def test_ladder_rung_is_bitwise_deterministic_across_threads(threads, simd_path, rung):
    a, b = random_f32(300, 300, seed=1), random_f32(300, 300, seed=2)
    _same_bits_on_1_and_2_threads(threads, lambda: getattr(cpu.ladder, rung)(a, b))


def test_bias_add_is_bitwise_deterministic_across_threads(threads, simd_path):
    x, bias, dy = random_f32(4096, 300, seed=1), random_f32(300, seed=2), random_f32(4096, 300, seed=3)
    _same_bits_on_1_and_2_threads(threads, lambda: cpu.bias_add_forward(x, bias))
    _same_bits_on_1_and_2_threads(threads, lambda: cpu.bias_add_backward(dy))


# ------------------------------------------------------------------------------------------ numerics

def _assert_nan_row_only(c, row):
    assert np.all(np.isnan(c[row])), f"row {row} of C should be all NaN: {c[row]}"
    others = np.delete(c, row, axis=0)
    np.testing.assert_array_equal(others, np.zeros_like(others))


@pytest.mark.parametrize("M, N, K", [(3, 5, 4), (13, 37, 300), (30, 70, 17)])
def test_nan_in_a_gives_nan_in_its_row_even_against_zeros(backend, M, N, K):
    a = random_f32(M, K, seed=1)
    a[M // 2, K - 1] = np.nan
    b = np.zeros((K, N), np.float32)                  # 0 * NaN must stay NaN: no zero may be skipped
    _assert_nan_row_only(backend.matmul_forward(a, b), M // 2)
    _assert_nan_row_only(backend.matmul_forward(np.ascontiguousarray(a.T), b, trans_a=True), M // 2)


@pytest.mark.parametrize("rung", RUNGS)
def test_nan_propagates_through_every_rung_and_path(simd_path, rung):
    a = random_f32(13, 300, seed=1)
    a[7, 0] = np.nan
    _assert_nan_row_only(getattr(cpu.ladder, rung)(a, np.zeros((300, 37), np.float32)), 7)


# ------------------------------------------------------------------------------------------ bad input

def test_mismatched_inner_dimensions_name_both_shapes(backend):
    a, b = random_f32(3, 4), random_f32(5, 6)
    msg = ("matmul_forward: expected the inner dimensions to match, got K=4 from a and K=5 from b. "
           "Received: a.shape=(3, 4), b.shape=(5, 6), trans_a=False, trans_b=False")
    with pytest.raises(ValueError, match=re.escape(msg)):
        backend.matmul_forward(a, b)
    with pytest.raises(ValueError, match=r"inner dimensions.*a\.shape=\(3, 4\), b\.shape=\(5, 6\), trans_a=True"):
        backend.matmul_forward(a, b, trans_a=True)
    with pytest.raises(ValueError, match=r"^matmul_backward: expected the inner dimensions"):
        backend.matmul_backward(random_f32(3, 6), a, b)


def test_unequal_batch_dimensions_raise(backend):
    with pytest.raises(ValueError, match=re.escape("matmul_forward: expected equal batch dimensions, or one operand "
                                                   "2-D. Received: a.shape=(2, 3, 4), b.shape=(3, 4, 5)")):
        backend.matmul_forward(random_f32(2, 3, 4), random_f32(3, 4, 5))
    with pytest.raises(ValueError, match=r"expected equal batch dimensions"):
        backend.matmul_forward(random_f32(2, 3, 3, 4), random_f32(3, 2, 4, 5))


def test_one_dimensional_operand_raises(backend):
    with pytest.raises(ValueError, match=re.escape("matmul_forward: expected a and b with at least 2 dimensions "
                                                   "(use engine.ops.matmul for vectors). Received: a.shape=(4,), "
                                                   "b.shape=(4, 5)")):
        backend.matmul_forward(random_f32(4), random_f32(4, 5))
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*b\.shape=\(4,\)"):
        backend.matmul_forward(random_f32(3, 4), random_f32(4))


def test_int_arrays_raise_type_error_naming_the_dtype(backend):
    with pytest.raises(TypeError, match=re.escape("matmul_forward: expected a to be a float32 array. "
                                                  "Received: a.dtype=int64")):
        backend.matmul_forward(np.ones((2, 3), np.int64), random_f32(3, 4))
    with pytest.raises(TypeError, match=r"expected dc to be a float32 array\. Received: dc\.dtype=int64"):
        backend.matmul_backward(np.ones((2, 4), np.int64), random_f32(2, 3), random_f32(3, 4))
    with pytest.raises(TypeError, match=r"expected bias to be a float32 array\. Received: bias\.dtype=int64"):
        backend.bias_add_forward(random_f32(2, 3), np.ones(3, np.int64))


def test_cpu_rejects_float64_naming_the_dtype():
    with pytest.raises(TypeError, match=re.escape("matmul_forward: expected b to be a float32 array. "
                                                  "Received: b.dtype=float64")):
        cpu.matmul_forward(random_f32(2, 3), np.ones((3, 4)))
    with pytest.raises(TypeError, match=r"bias_add_backward: .*Received: dy\.dtype=float64"):
        cpu.bias_add_backward(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"matmul_forward_v2: .*Received: a\.dtype=float64"):
        cpu.ladder.matmul_forward_v2(np.ones((2, 3)), random_f32(3, 4))


def test_list_instead_of_array_raises_type_error(backend):
    with pytest.raises(TypeError, match=re.escape("matmul_forward: expected a to be a float32 numpy array. "
                                                  "Received: type(a)=list")):
        backend.matmul_forward([[1.0, 2.0]], random_f32(2, 3))
    with pytest.raises(TypeError, match=r"Received: type\(bias\)=list"):
        backend.bias_add_forward(random_f32(2, 3), [1.0, 2.0, 3.0])


def test_bias_of_wrong_length_raises(backend):
    with pytest.raises(ValueError, match=re.escape("bias_add_forward: expected bias of shape (D,) for x of shape "
                                                   "(..., D). Received: x.shape=(2, 3), bias.shape=(4,)")):
        backend.bias_add_forward(random_f32(2, 3), random_f32(4))
    with pytest.raises(ValueError, match=r"bias\.shape=\(1, 3\)"):
        backend.bias_add_forward(random_f32(2, 3), random_f32(1, 3))


def test_dc_of_wrong_shape_raises(backend):
    with pytest.raises(ValueError, match=re.escape("matmul_backward: expected dc of shape (2, 4) (the forward "
                                                   "output). Received: dc.shape=(4, 2)")):
        backend.matmul_backward(random_f32(4, 2), random_f32(2, 3), random_f32(3, 4))
    with pytest.raises(ValueError, match=r"expected dc of shape \(5, 2, 4\)"):
        backend.matmul_backward(random_f32(2, 4), random_f32(5, 2, 3), random_f32(3, 4))


def test_ladder_rung_rejects_stacks():
    with pytest.raises(ValueError, match=re.escape("matmul_forward_v3: expected 2-D a and b. "
                                                   "Received: a.shape=(2, 3, 4), b.shape=(4, 5)")):
        cpu.ladder.matmul_forward_v3(random_f32(2, 3, 4), random_f32(4, 5))


@pytest.mark.parametrize("call, error", [
    (lambda m: m.matmul_forward(random_f32(3, 4), random_f32(5, 6), True, True), ValueError),
    (lambda m: m.matmul_forward(random_f32(2, 3, 4), random_f32(3, 4, 5)), ValueError),
    (lambda m: m.matmul_forward(random_f32(4), random_f32(4, 5)), ValueError),
    (lambda m: m.matmul_backward(random_f32(3, 3), random_f32(2, 3), random_f32(3, 4)), ValueError),
    (lambda m: m.matmul_backward(random_f32(2, 4), random_f32(2, 3), np.ones((3, 4), np.int32)), TypeError),
    (lambda m: m.matmul_forward((1.0, 2.0), random_f32(2, 3)), TypeError),
    (lambda m: m.bias_add_forward(random_f32(2, 3), random_f32(2)), ValueError),
    (lambda m: m.bias_add_forward(random_f32(2, 3), np.ones(3, np.int64)), TypeError),
    (lambda m: m.bias_add_backward(np.float32(1.0)), TypeError),
], ids=["inner", "batch", "1-D", "dc-shape", "int32", "tuple", "bias-length", "bias-int", "scalar-dy"])
def test_ref_and_cpu_give_the_same_error(call, error):
    raises_same(call, error)


@pytest.mark.parametrize("M, K, N", [(3001, 288, 64), (2000, 9, 32), (1500, 100, 50)])
def test_narrow_products_read_in_place_on_a_team(threads, simd_path, M, K, N):
    # A narrow output (N <= 64) makes the GEMM read A and B in place, with the tiles handed out by rows:
    # large enough here to run on the whole team, on every SIMD path.
    a, b = random_f32(M, K, seed=1), random_f32(K, N, seed=2)
    threads(1)
    one = cpu.matmul_forward(a, b)
    threads(2)
    two = cpu.matmul_forward(a, b)
    assert_matmul_close(two, a, b)
    assert bits_equal(one, two), simd_path

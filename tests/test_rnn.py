"""rnn family: the fused SimpleRNN, LSTM and GRU kernels vs engine.ref, forward and backward (inputs, initial
states and all weights) on edge shapes (one step, batch 1, an empty batch, units off the band width), with
masks, recurrent dropout masks and every activation; the reference backward vs float64 finite differences;
thread-count determinism; every SIMD path; bad input (the same message from every backend)."""
import numpy as np
import pytest

import engine
from engine import ref
from engine import backend as backends

from checks import bits_equal, check_grad

cpu = backends.get("cpu")
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
# (N, T, D, U): all ones, odd sizes, one time step, batch 1 with units past two bands of 32, exactly two
# bands, an empty batch, no time steps, no units, no input features; then shapes large enough for the team
# path (csrc/rnn.h's worth_a_team: the projection and the weight gradients on the band tasks), with a last band
# of 4 units.
SHAPES = [(1, 1, 1, 1), (3, 5, 4, 7), (2, 1, 3, 33), (1, 6, 2, 70), (4, 7, 5, 64), (0, 3, 2, 5), (2, 0, 3, 4),
          (2, 3, 4, 0), (2, 3, 0, 5), (33, 3, 7, 100), (32, 1, 1, 96)]
ACTS = [("tanh", "sigmoid"), ("relu", "tanh"), ("linear", "sigmoid"), ("sigmoid", "linear")]


def _f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def make_case(cell, N, T, D, U, masked=False, seed=0, dtype=np.float32):
    """Inputs of one kernel call as a dict of keyword arguments (without activations)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    args = {"x": _f32(rng, N, T, D), "h0": _f32(rng, N, U, scale=0.5)}
    if cell == "lstm":
        args["c0"] = _f32(rng, N, U, scale=0.5)
    # weights scaled as the initializers do (a recurrent kernel of spectral radius about 1): stable dynamics
    args.update(kernel=_f32(rng, D, G * U, scale=1 / np.sqrt(max(D, 1))),
                recurrent_kernel=_f32(rng, U, G * U, scale=1 / np.sqrt(max(U, 1))),
                bias=_f32(rng, *((2, G * U) if cell == "gru" else (G * U,)), scale=0.3))
    if masked:
        args["mask"] = (rng.random((N, T)) > 0.3).astype(np.float32)
        args["recurrent_mask"] = ((rng.random((N, U)) > 0.25) / 0.75).astype(np.float32)
    return {k: v.astype(dtype) for k, v in args.items()}


def forward(k, cell, args, act="tanh", ract="sigmoid"):
    acts = {"activation": act} if cell == "simple_rnn" else {"activation": act, "recurrent_activation": ract}
    return getattr(k, f"{cell}_forward")(**args, **acts)


def backward(k, cell, args, outs, grads, act="tanh", ract="sigmoid"):
    """The kernel's backward given forward outputs `outs` and upstream gradients (dy, dh[, dc])."""
    acts = {"activation": act} if cell == "simple_rnn" else {"activation": act, "recurrent_activation": ract}
    mask, rmask = args.get("mask"), args.get("recurrent_mask")
    common = dict(x=args["x"], h0=args["h0"], kernel=args["kernel"], recurrent_kernel=args["recurrent_kernel"],
                  mask=mask, recurrent_mask=rmask, y=outs[0], **acts)
    if cell == "lstm":
        return k.lstm_backward(*grads, c0=args["c0"], gates=outs[3], cells=outs[4], **common)
    if cell == "gru":
        return k.gru_backward(*grads, gates=outs[2], recurrent_h=outs[3], **common)
    return k.simple_rnn_backward(*grads, **common)


def upstream(cell, N, T, U, seed=9):
    rng = np.random.default_rng(seed)
    return [_f32(rng, N, T, U)] + [_f32(rng, N, U) for _ in range(2 if cell == "lstm" else 1)]


def assert_close(actual, expected, what):
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape and a.dtype == np.float32, f"{what} output {i}: {a.shape} {a.dtype}"
        scale = max(1.0, float(np.abs(e).max())) if e.size else 1.0      # float32 sums of many terms
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=2e-5 * scale, err_msg=f"{what} output {i}")


# ------------------------------------------------------------------------------------------ oracle

@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("N, T, D, U", SHAPES, ids=str)
@pytest.mark.parametrize("cell", GATES)
def test_forward_and_backward_match_ref(backend, cell, N, T, D, U, masked):
    args = make_case(cell, N, T, D, U, masked)
    outs = forward(backend, cell, args)
    expected = forward(ref, cell, args)
    assert_close(outs, expected, f"{cell}_forward")
    grads = upstream(cell, N, T, U)
    assert_close(backward(backend, cell, args, outs, grads), backward(ref, cell, args, expected, grads),
                 f"{cell}_backward")


@pytest.mark.parametrize("N, T, D, U", [(3, 5, 4, 7), (33, 3, 7, 100)], ids=str)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_inference_forward_saves_nothing_and_matches(backend, cell, N, T, D, U):
    """save=False (what ops use when no gradient is recorded) returns the same outputs and no saved arrays."""
    args = make_case(cell, N, T, D, U, masked=True, seed=12)
    full = forward(backend, cell, args)
    n_out = 3 if cell == "lstm" else 2
    lean = getattr(backend, f"{cell}_forward")(**args, save=False)
    assert len(lean) == n_out
    for a, b in zip(lean, full[:n_out]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("act, ract", ACTS, ids=str)
@pytest.mark.parametrize("cell", GATES)
def test_every_activation_matches_ref(backend, cell, act, ract):
    args = make_case(cell, 3, 6, 4, 37, masked=True, seed=1)
    outs, expected = forward(backend, cell, args, act, ract), forward(ref, cell, args, act, ract)
    assert_close(outs, expected, f"{cell}_forward {act}/{ract}")
    grads = upstream(cell, 3, 6, 37)
    assert_close(backward(backend, cell, args, outs, grads, act, ract),
                 backward(ref, cell, args, expected, grads, act, ract), f"{cell}_backward {act}/{ract}")


@pytest.mark.parametrize("cell", GATES)
def test_non_contiguous_inputs(backend, cell):
    args = make_case(cell, 4, 10, 6, 9, masked=True, seed=2)
    strided = {k: (v[:, ::2] if k in ("x", "mask") else np.asfortranarray(v)) for k, v in args.items()}
    dense = {k: np.ascontiguousarray(v) for k, v in strided.items()}
    assert_close(forward(backend, cell, strided), forward(ref, cell, dense), f"{cell}_forward strided")


@pytest.mark.parametrize("shape", [(5, 4, 3, 45), (33, 3, 7, 100)], ids=["one_thread_path", "team_path"])
@pytest.mark.parametrize("cell", GATES)
def test_every_simd_path_matches_ref(cell, simd_path, shape):
    N, T, D, U = shape
    args = make_case(cell, N, T, D, U, masked=True, seed=3)
    outs = forward(cpu, cell, args)
    grads = upstream(cell, N, T, U)
    got = backward(cpu, cell, args, outs, grads)
    expected = forward(ref, cell, args)
    assert_close(outs, expected, f"{cell}_forward on {simd_path}")
    assert_close(got, backward(ref, cell, args, expected, grads), f"{cell}_backward on {simd_path}")


@pytest.mark.parametrize("cell", GATES)
def test_bits_do_not_depend_on_thread_count(cell, threads, simd_path):
    args = make_case(cell, 32, 6, 16, 96, masked=True, seed=4)        # three bands: the team splits them
    results = []
    for n in (1, 2):
        threads(n)
        outs = forward(cpu, cell, args)
        results.append(list(outs) + list(backward(cpu, cell, args, outs, upstream(cell, 32, 6, 96))))
    for i, (one, two) in enumerate(zip(*results)):
        assert bits_equal(one, two), f"{cell} result {i} differs between 1 and 2 threads"


# ------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("act, ract", ACTS, ids=str)
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("cell", GATES)
def test_reference_backward_is_the_gradient(cell, masked, act, ract):
    """Every gradient (inputs, initial states, weights) against float64 central differences of
    L = sum(y * r_y) + sum(h * r_h) (+ sum(c * r_c))."""
    args = make_case(cell, 2, 4, 3, 3, masked, seed=5, dtype=np.float64)
    names = [k for k in args if k not in ("mask", "recurrent_mask")]
    fixed = {k: args[k] for k in ("mask", "recurrent_mask") if k in args}
    n_out = 3 if cell == "lstm" else 2

    def run(*arrays):
        outs = forward(ref, cell, {**dict(zip(names, arrays)), **fixed}, act, ract)
        return np.concatenate([o.reshape(-1) for o in outs[:n_out]])

    def grad(r, *arrays):
        case = {**dict(zip(names, arrays)), **fixed}
        outs = forward(ref, cell, case, act, ract)
        sizes = np.cumsum([o.size for o in outs[:n_out]])[:-1]
        grads = [g.reshape(o.shape) for g, o in zip(np.split(r, sizes), outs[:n_out])]
        return backward(ref, cell, case, outs, grads, act, ract)

    check_grad(run, grad, [args[k] for k in names], tol=1e-5)


# ------------------------------------------------------------------------------------------ bad input

def _bad(cell, **changes):
    args = make_case(cell, 2, 3, 4, 5)
    args.update(changes)
    return args


BAD = [
    ("lstm", {"x": np.zeros((2, 3), np.float32)}, ValueError, r"lstm_forward: expected x of shape \(N, T, D\). "
     r"Received: x.shape=\(2, 3\)"),
    ("lstm", {"recurrent_kernel": np.zeros((5, 19), np.float32)}, ValueError,
     r"lstm_forward: expected recurrent_kernel of shape \(U, 4U\). Received: recurrent_kernel.shape=\(5, 19\)"),
    ("gru", {"kernel": np.zeros((3, 15), np.float32)}, ValueError,
     r"gru_forward: expected kernel of shape \(D, 3U\) = \(4, 15\). Received: kernel.shape=\(3, 15\)"),
    ("gru", {"bias": np.zeros(15, np.float32)}, ValueError,
     r"gru_forward: expected bias of shape \(2, 3U\) = \(2, 15\). Received: bias.shape=\(15,\)"),
    ("simple_rnn", {"h0": np.zeros((3, 5), np.float32)}, ValueError,
     r"simple_rnn_forward: expected h0 of shape \(N, U\) = \(2, 5\). Received: h0.shape=\(3, 5\)"),
    ("simple_rnn", {"bias": np.zeros(4, np.float32)}, ValueError,
     r"simple_rnn_forward: expected bias of shape \(U,\) = \(5,\). Received: bias.shape=\(4,\)"),
    ("lstm", {"mask": np.ones((2, 4), np.float32)}, ValueError,
     r"lstm_forward: expected mask of shape \(N, T\) = \(2, 3\). Received: mask.shape=\(2, 4\)"),
    ("lstm", {"recurrent_mask": np.ones((2, 4), np.float32)}, ValueError,
     r"lstm_forward: expected recurrent_mask of shape \(N, U\) = \(2, 5\). Received: recurrent_mask.shape=\(2, 4\)"),
    ("lstm", {"x": np.zeros((2, 3, 4), np.int32)}, TypeError,
     r"lstm_forward: expected x to be a float32 array. Received: x.dtype=int32"),
    ("gru", {"mask": np.ones((2, 3), bool)}, TypeError,
     r"gru_forward: expected mask to be a float32 array. Received: mask.dtype=bool"),
]


@pytest.mark.parametrize("cell, changes, error, message", BAD, ids=lambda v: str(v)[:40])
def test_bad_input_gets_the_same_error_everywhere(backend, cell, changes, error, message):
    with pytest.raises(error, match=message):
        forward(backend, cell, _bad(cell, **changes))


@pytest.mark.parametrize("cell", GATES)
def test_unknown_activation_is_refused(backend, cell):
    with pytest.raises(ValueError, match=rf"{cell}_forward: expected activation in \('linear', 'relu', 'sigmoid', "
                                         r"'tanh'\). Received: activation='elu'"):
        forward(backend, cell, _bad(cell), act="elu")


def test_backward_checks_saved_arrays(backend):
    args = make_case("lstm", 2, 3, 4, 5)
    outs = list(forward(backend, "lstm", args))
    outs[3] = outs[3][:, :, :-1]
    with pytest.raises(ValueError, match=r"lstm_backward: expected gates of shape \(N, T, 4U\) = \(2, 3, 20\). "
                                         r"Received: gates.shape=\(2, 3, 19\)"):
        backward(backend, "lstm", args, outs, upstream("lstm", 2, 3, 5))


def test_kernels_run_under_engine_threads_setting():
    """The public thread setting reaches the recurrent kernels (a smoke test of the team path)."""
    args = make_case("lstm", 32, 3, 8, 128, seed=6)
    before = engine.get_num_threads()
    try:
        engine.set_num_threads(2)
        two = forward(cpu, "lstm", args)
    finally:
        engine.set_num_threads(before)
    assert_close(two, forward(ref, "lstm", args), "lstm_forward on 2 threads")

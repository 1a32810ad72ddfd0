"""Recurrent layers: SimpleRNN, LSTM, GRU, Bidirectional, TimeDistributed through the public API. Keras
weight layouts and configs; return_sequences / return_state / go_backwards / masking / initial_state /
stateful semantics (each checked against an independent way of computing the same thing); dropout masks
fixed across time; seeing the gates; bad input; a seeded training run that must recall a token seen 20
steps earlier, which a network without memory cannot; saving; and, where Keras 3 is installed, the same
outputs as Keras for the same weights."""
import json
import os
import sys

import numpy as np
import pytest

import engine
from engine import layers, models, optimizers
from engine.layers.base import get_mask

from checks import np_sigmoid, random_f32

RNNS = [layers.SimpleRNN, layers.LSTM, layers.GRU]
N_STATES = {layers.SimpleRNN: 1, layers.LSTM: 2, layers.GRU: 1}


def numpy_lstm(x, kernel, recurrent_kernel, bias):
    """Keras' LSTM equations, written out step by step, for one sequence batch with zero initial state."""
    N, T, _ = x.shape
    U = recurrent_kernel.shape[0]
    h, c, ys = np.zeros((N, U)), np.zeros((N, U)), []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = np_sigmoid(z[:, :U]), np_sigmoid(z[:, U:2 * U]), np.tanh(z[:, 2 * U:3 * U]), np_sigmoid(z[:, 3 * U:])
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys, axis=1), h, c


# ------------------------------------------------------------------------------------------ layouts, shapes, config


@pytest.mark.parametrize("cls, shapes", [
    (layers.SimpleRNN, [(3, 5), (5, 5), (5,)]),
    (layers.LSTM, [(3, 20), (5, 20), (20,)]),
    (layers.GRU, [(3, 15), (5, 15), (2, 15)]),
])
def test_keras_weight_layouts_and_default_initializers(cls, shapes):
    layer = cls(5)
    y = layer(random_f32(2, 4, 3))
    assert y.shape == (2, 5)
    assert [w.shape for w in layer.get_weights()] == shapes
    assert [w.name.split("/")[-1] for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    rk = layer.recurrent_kernel.numpy()
    np.testing.assert_allclose(rk @ rk.T if rk.shape[0] <= rk.shape[1] else rk.T @ rk, np.eye(5), atol=1e-5)
    bias = layer.bias.numpy()
    if cls is layers.LSTM:                                          # unit_forget_bias: forget gate starts at 1
        np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    else:
        np.testing.assert_array_equal(bias, np.zeros(shapes[2]))
    no_bias = cls(5, use_bias=False)
    no_bias(random_f32(2, 4, 3))
    assert [w.name.split("/")[-1] for w in no_bias.weights] == ["kernel", "recurrent_kernel"]


def test_lstm_matches_the_equations_written_out():
    layer = layers.LSTM(6, return_sequences=True, return_state=True)
    x = random_f32(3, 7, 4)
    y, h, c = layer(x)
    kernel, recurrent_kernel, bias = layer.get_weights()
    ey, eh, ec = numpy_lstm(x.astype(np.float64), kernel, recurrent_kernel, bias)
    for got, expected in ((y, ey), (h, eh), (c, ec)):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", RNNS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_output_shapes_and_config_round_trip(cls, return_sequences, return_state):
    kwargs = {"units": 4, "return_sequences": return_sequences, "return_state": return_state, "dropout": 0.1,
              "recurrent_dropout": 0.2, "kernel_regularizer": "l2", "activation": "relu", "seed": 3,
              "go_backwards": True, "kernel_initializer": "he_normal", "bias_initializer": "ones"}
    layer = cls(**kwargs)
    x = random_f32(2, 5, 3)
    out = layer(x)
    expected = (2, 5, 4) if return_sequences else (2, 4)
    outs = out if return_state else [out]
    assert [o.shape for o in outs] == [expected] + [(2, 4)] * (N_STATES[cls] if return_state else 0)
    symbolic = layer.compute_output_shape((None, 5, 3))
    assert (symbolic[0] if return_state else symbolic) == (None,) + expected[1:]
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    for key in kwargs:
        assert key in config, key
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone(x)
    clone.set_weights(layer.get_weights())
    first = lambda o: (o[0] if return_state else o).numpy()                 # noqa: E731
    np.testing.assert_array_equal(first(clone(x)), first(layer(x)))
    assert len(layer.losses) == 1                                           # the kernel's l2 penalty


def test_return_state_gives_the_last_output_and_the_cell():
    layer = layers.LSTM(3, return_sequences=True, return_state=True)
    y, h, c = layer(random_f32(2, 6, 4))
    np.testing.assert_array_equal(h.numpy(), y.numpy()[:, -1])
    trace = layer.trace_gates(random_f32(2, 6, 4))
    assert set(trace) == {"input", "forget", "candidate", "output", "cell", "hidden", "mask"}
    assert c.shape == (2, 3)


@pytest.mark.parametrize("cls", RNNS)
def test_go_backwards_is_the_reversed_sequence(cls):
    x = random_f32(3, 6, 4, seed=1)
    backwards = cls(5, go_backwards=True, return_sequences=True)
    y = backwards(x).numpy()
    forwards = cls(5, return_sequences=True)
    forwards(x)
    forwards.set_weights(backwards.get_weights())
    np.testing.assert_allclose(y, forwards(x[:, ::-1].copy()).numpy(), rtol=1e-6, atol=1e-7)   # not re-reversed


# ------------------------------------------------------------------------------------------ masking


@pytest.mark.parametrize("cls", RNNS)
def test_padded_steps_leave_the_state_unchanged(cls):
    """A right-padded batch with a mask gives each sequence's result on its real steps alone; the outputs of
    padded steps repeat the last real output (Keras' zero_output_for_mask=False)."""
    lengths = [6, 3, 1]
    x = random_f32(3, 6, 4, seed=2)
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    layer = cls(5, return_sequences=True, return_state=True)
    y, *states = layer(x * mask[:, :, None], mask=mask)
    for n, length in enumerate(lengths):
        alone_y, *alone_states = layer(x[n:n + 1, :length])
        np.testing.assert_allclose(y.numpy()[n, :length], alone_y.numpy()[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y.numpy()[n, length:], np.repeat(alone_y.numpy()[:, -1], 6 - length, 0),
                                   rtol=1e-5, atol=1e-6)
        for s, alone in zip(states, alone_states):
            np.testing.assert_allclose(s.numpy()[n], alone.numpy()[0], rtol=1e-5, atol=1e-6)


def test_embedding_mask_reaches_the_recurrent_layer_in_a_sequential_model():
    engine.set_seed(1)
    model = models.Sequential([layers.Embedding(12, 4, mask_zero=True), layers.LSTM(5, return_sequences=True)])
    ids = np.array([[3, 7, 2, 0, 0], [5, 0, 0, 0, 0]])
    y = model(ids)
    np.testing.assert_array_equal(get_mask(y), ids != 0)               # return_sequences passes the mask on
    for n, length in enumerate([3, 1]):
        alone = model(ids[n:n + 1, :length])
        np.testing.assert_allclose(y.numpy()[n, length - 1], alone.numpy()[0, -1], rtol=1e-5, atol=1e-6)
        assert np.all(y.numpy()[n, length:] == y.numpy()[n, length - 1])
    last = models.Sequential([layers.Embedding(12, 4, mask_zero=True), layers.GRU(5)])
    assert get_mask(last(ids)) is None                                  # a single output per sequence: no mask


def test_zero_output_for_mask_and_gradient_through_a_masked_layer():
    x = random_f32(2, 4, 3)
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    layer = layers.GRU(3, return_sequences=True, zero_output_for_mask=True)
    y = layer(x, mask=mask)
    assert np.all(y.numpy()[0, 2:] == 0) and np.all(y.numpy()[1] != 0)
    y.sum().backward()
    assert np.isfinite(layer.kernel.grad.numpy()).all() and np.abs(layer.kernel.grad.numpy()).sum() > 0


# ------------------------------------------------------------------------------------------ states


@pytest.mark.parametrize("cls", RNNS)
def test_initial_state_and_stateful_continue_a_sequence(cls):
    x = random_f32(2, 8, 3, seed=4)
    whole = cls(4, return_sequences=True, return_state=True)
    y, *states = whole(x)
    first = cls(4, return_sequences=True, return_state=True)
    first(x[:, :5])
    first.set_weights(whole.get_weights())
    _, *mid = first(x[:, :5])
    y2, *end = first(x[:, 5:], initial_state=mid)
    np.testing.assert_allclose(y2.numpy(), y.numpy()[:, 5:], rtol=1e-5, atol=1e-6)
    stateful = cls(4, return_sequences=True, stateful=True)
    stateful(x[:, :5])
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    stateful(x[:, :5])
    np.testing.assert_allclose(stateful(x[:, 5:]).numpy(), y.numpy()[:, 5:], rtol=1e-5, atol=1e-6)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :5]).numpy(), y.numpy()[:, :5], rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_initial_state():
    x = random_f32(2, 3, 3)
    h0, c0 = engine.tensor(random_f32(2, 4), requires_grad=True), engine.tensor(random_f32(2, 4), requires_grad=True)
    y = layers.LSTM(4)(x, initial_state=[h0, c0])
    y.sum().backward()
    assert h0.grad is not None and c0.grad is not None and np.abs(c0.grad.numpy()).sum() > 0


# ------------------------------------------------------------------------------------------ dropout


@pytest.mark.parametrize("cls", RNNS)
def test_dropout_only_in_training_and_repeatable_with_a_seed(cls):
    x = random_f32(4, 5, 6)
    layer = cls(8, dropout=0.5, recurrent_dropout=0.5, seed=7)
    inference = layer(x).numpy()
    np.testing.assert_array_equal(layer(x, training=False).numpy(), inference)
    trained = layer(x, training=True).numpy()
    assert not np.allclose(trained, inference)
    again = cls.from_config(layer.get_config())
    again(x)
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x, training=True).numpy(), trained)       # the same seed, the same masks


def test_dropout_mask_is_the_same_at_every_time_step():
    """With no recurrence (recurrent kernel zero) and a linear activation, h_t = (x_t * m) @ kernel; a constant
    input then gives the same output at every step only if the mask m is fixed across time."""
    layer = layers.SimpleRNN(6, activation="linear", recurrent_initializer="zeros", dropout=0.5, seed=1,
                             return_sequences=True)
    x = np.repeat(random_f32(3, 1, 10), 7, axis=1)
    y = layer(x, training=True).numpy()
    assert not np.allclose(y, layer(x).numpy())
    np.testing.assert_allclose(y, np.repeat(y[:, :1], 7, axis=1), rtol=1e-6)


# ------------------------------------------------------------------------------------------ wrappers


@pytest.mark.parametrize("merge_mode, width", [("concat", 8), ("sum", 4), ("mul", 4), ("ave", 4)])
def test_bidirectional_merges_a_forward_and_a_backward_pass(merge_mode, width):
    x = random_f32(2, 5, 3)
    bi = layers.Bidirectional(layers.LSTM(4, return_sequences=True), merge_mode=merge_mode)
    y = bi(x)
    assert y.shape == (2, 5, width) and len(bi.weights) == 6
    forward, backward = layers.LSTM(4, return_sequences=True), layers.LSTM(4, return_sequences=True)
    forward(x), backward(x)
    forward.set_weights(bi.get_weights()[:3])
    backward.set_weights(bi.get_weights()[3:])
    a, b = forward(x).numpy(), backward(x[:, ::-1].copy()).numpy()[:, ::-1]
    expected = {"concat": np.concatenate([a, b], -1), "sum": a + b, "mul": a * b, "ave": (a + b) / 2}[merge_mode]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert bi.compute_output_shape((None, 5, 3)) == (None, 5, width)
    clone = layers.Bidirectional.from_config(json.loads(json.dumps(bi.get_config())))
    clone(x)
    clone.set_weights(bi.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), y.numpy())


def test_bidirectional_states_and_list_output():
    bi = layers.Bidirectional(layers.GRU(3, return_state=True), merge_mode=None)
    out = bi(random_f32(2, 4, 5))
    assert [o.shape for o in out] == [(2, 3), (2, 3), (2, 3), (2, 3)]
    with pytest.raises(ValueError, match=r"Bidirectional: expected merge_mode in"):
        layers.Bidirectional(layers.GRU(3), merge_mode="max")
    with pytest.raises(ValueError, match=r"Bidirectional: expected `layer` to be a SimpleRNN, LSTM or GRU"):
        layers.Bidirectional(layers.Dense(3))


def test_time_distributed_applies_one_layer_to_every_step():
    x = random_f32(2, 5, 3)
    td = layers.TimeDistributed(layers.Dense(4))
    y = td(x)
    kernel, bias = td.get_weights()
    np.testing.assert_allclose(y.numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-6)
    assert td.compute_output_shape((None, 5, 3)) == (None, 5, 4)
    clone = layers.TimeDistributed.from_config(json.loads(json.dumps(td.get_config())))
    assert clone.layer.units == 4
    with pytest.raises(ValueError, match=r"TimeDistributed '.*': expected an input of shape \(batch, timesteps, \.\.\.\)"):
        td(random_f32(2, 3))


def test_sequence_model_saves_and_loads(tmp_path):
    engine.set_seed(2)
    model = models.Sequential([layers.Embedding(20, 6, mask_zero=True),
                               layers.Bidirectional(layers.LSTM(5, return_sequences=True)),
                               layers.TimeDistributed(layers.Dense(3)), layers.GRU(4), layers.Dense(1)])
    ids = np.array([[4, 5, 6, 0], [7, 8, 0, 0]])
    model.compile(optimizer="adam", loss="mse")
    model.fit(ids, np.ones((2, 1), np.float32), epochs=2, verbose=0)
    model.save(tmp_path / "seq.keras")
    loaded = models.load_model(tmp_path / "seq.keras")
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))


# ------------------------------------------------------------------------------------------ seeing the gates


def test_trace_gates_matches_the_layer_and_the_equations():
    layer = layers.LSTM(5, return_sequences=True)
    x = random_f32(2, 6, 3)
    y = layer(x).numpy()
    trace = layer.trace_gates(x)
    np.testing.assert_allclose(trace["hidden"], y, rtol=1e-6)
    for gate in ("input", "forget", "output"):
        assert trace[gate].shape == (2, 6, 5) and trace[gate].min() > 0 and trace[gate].max() < 1
    c_prev = np.concatenate([np.zeros((2, 1, 5)), trace["cell"][:, :-1]], axis=1)
    np.testing.assert_allclose(trace["cell"], trace["forget"] * c_prev + trace["input"] * trace["candidate"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trace["hidden"], trace["output"] * np.tanh(trace["cell"]), rtol=1e-5, atol=1e-6)


def test_trace_gates_runs_the_lstm_op_which_can_return_the_gates():
    layer = layers.LSTM(4)
    x = random_f32(2, 5, 3)
    layer.build(x.shape)
    with engine.trace() as calls:
        trace = layer.trace_gates(x)
    assert [c.split(".")[1] for c in calls] == ["lstm_forward"]
    h0 = np.zeros((2, 4), np.float32)
    y, h, c, gates, cells = engine.ops.lstm(x, h0, h0, layer.kernel, layer.recurrent_kernel, layer.bias,
                                            return_gates=True)
    assert y.requires_grad and h.requires_grad and c.requires_grad        # as without return_gates
    assert not gates.requires_grad and not cells.requires_grad            # saved arrays: no gradient
    np.testing.assert_array_equal(gates.numpy()[..., 4:8], trace["forget"])
    np.testing.assert_array_equal(cells.numpy(), trace["cell"])
    np.testing.assert_array_equal(y.numpy(), trace["hidden"])
    (h.sum() + c.sum()).backward()
    assert layer.kernel.grad.shape == layer.kernel.shape


def test_plot_gates_draws_every_gate(tmp_path):
    pytest.importorskip("matplotlib")
    layer = layers.LSTM(3)
    trace = layer.trace_gates(random_f32(2, 8, 2), mask=np.arange(8)[None, :] < np.array([[8], [5]]))
    fig = layers.plot_gates(trace, sample=1, filename=tmp_path / "gates.png")
    assert len(fig.axes) == 6 and (tmp_path / "gates.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"plot_gates: expected sample in \[0, 2\). Received: sample=5"):
        layers.plot_gates(trace, sample=5)


def test_plot_gates_without_matplotlib_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)               # `import matplotlib` now fails
    trace = layers.LSTM(2).trace_gates(random_f32(1, 3, 2))
    with pytest.raises(ImportError, match=r"plot_gates needs matplotlib.*pip install matplotlib"):
        layers.plot_gates(trace)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, r"LSTM: `units` must be a positive int. Received: units=0"),
    ({"units": 4, "dropout": 1.5}, r"LSTM: expected `dropout` in \[0, 1\]. Received: dropout=1.5"),
    ({"units": 4, "kernel_constraint": "non_neg"}, r"LSTM: engine has no weight constraints yet"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.LSTM(**kwargs)


@pytest.mark.parametrize("cls", RNNS)
@pytest.mark.parametrize("masked", [False, True])
def test_step_by_step_path_equals_the_fused_kernel(cls, masked):
    """Activations the kernels lack run the same equations through engine.ops, one step at a time. Forced
    onto that path with the kernels' own activations, a layer must give the fused kernel's outputs and
    gradients."""
    x = random_f32(3, 5, 4, seed=11)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], bool) if masked else None
    fused = cls(6, return_sequences=True, return_state=True, recurrent_dropout=0.3, seed=2)
    steps = cls.from_config(fused.get_config())
    outs = fused(x, mask=mask, training=True)
    steps(x)
    steps.set_weights(fused.get_weights())
    steps._act = None                                                  # as if the activation were unknown
    step_outs = steps(x, mask=mask, training=True)
    for a, b in zip(outs, step_outs):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    sum(o.sum() for o in outs).backward()
    sum(o.sum() for o in step_outs).backward()
    for a, b in zip(fused.weights, steps.weights):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_any_activation_works_step_by_step():
    x = random_f32(2, 4, 3)
    layer = layers.LSTM(3, activation="elu", recurrent_activation="softplus",
                        return_sequences=True)
    y = layer(x)
    kernel, recurrent_kernel, bias = layer.get_weights()
    elu = lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0)))          # noqa: E731
    softplus = lambda z: np.log1p(np.exp(z))                                  # noqa: E731
    h, c = np.zeros((2, 3)), np.zeros((2, 3))
    for t in range(4):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = softplus(z[:, :3]), softplus(z[:, 3:6]), elu(z[:, 6:9]), softplus(z[:, 9:])
        c = f * c + i * g
        h = o * elu(c)
        np.testing.assert_allclose(y.numpy()[:, t], h, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert np.isfinite(layer.kernel.grad.numpy()).all()
    with pytest.raises(ValueError, match=r"LSTM '.*': trace_gates runs the fused kernel"):
        layer.trace_gates(x)


def test_gru_reset_after_false_applies_the_reset_gate_before_the_product():
    x = random_f32(2, 5, 3, seed=13)
    layer = layers.GRU(4, reset_after=False, return_sequences=True, bias_initializer="random_normal")
    y = layer(x)
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert bias.shape == (12,)
    h = np.zeros((2, 4))
    for t in range(5):
        xp = x[:, t] @ kernel + bias
        z = np_sigmoid(xp[:, :4] + h @ recurrent_kernel[:, :4])
        r = np_sigmoid(xp[:, 4:8] + h @ recurrent_kernel[:, 4:8])
        hh = np.tanh(xp[:, 8:] + (r * h) @ recurrent_kernel[:, 8:])
        h = z * h + (1 - z) * hh
        np.testing.assert_allclose(y.numpy()[:, t], h, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert np.abs(layer.bias.grad.numpy()).sum() > 0
    assert layers.GRU.from_config(layer.get_config()).reset_after is False
    with pytest.raises(ValueError, match=r"GRU: expected `reset_after` to be True or False. Received: reset_after=1"):
        layers.GRU(3, reset_after=1)


@pytest.mark.parametrize("cls", RNNS)
def test_bad_input_names_the_layer_and_the_shape(cls):
    layer = cls(4, name="rec")
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'rec': expected an input of shape \(batch, timesteps, "
                                         r"features\).*Received: input_shape=\(2, 3\)"):
        layer(random_f32(2, 3))
    layer(random_f32(2, 3, 5))
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'rec': expected input with last dimension 5 \(the layer "
                                         r"was built for it\). Received: input.shape=\(2, 3, 6\)"):
        layer(random_f32(2, 3, 6))
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'rec': expected input of shape \(batch, timesteps, "
                                         r"features\). Received: input.shape=\(2, 5\)"):
        layer(random_f32(2, 5))
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'rec': expected initial_state as a list of "
                                         rf"{N_STATES[cls]} tensor"):
        layer(random_f32(2, 3, 5), initial_state=[random_f32(2, 4)] * 3)
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'rec': expected a mask of shape \(2, 3\)"):
        layer(random_f32(2, 3, 5), mask=np.ones((2, 4), bool))


# ------------------------------------------------------------------------------------------ learning


def recall_data(n, lag=20, classes=4, seed=0):
    """One-hot sequences of lag + 1 steps: step 0 holds the class (0..3), the next `lag` steps noise tokens
    (4..8). The target is the class, seen `lag` steps before the end."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    tokens = rng.integers(classes, classes + 5, size=(n, lag + 1))
    tokens[:, 0] = y
    return np.eye(classes + 5, dtype=np.float32)[tokens], y


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
def test_recurrent_network_recalls_a_token_seen_20_steps_earlier(cls):
    x, y = recall_data(1024)
    x_test, y_test = recall_data(512, seed=1)
    engine.set_seed(0)
    model = models.Sequential([cls(16), layers.Dense(4, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95, f"{cls.__name__} recalled {accuracy:.2f} of the test tokens"
    # Without memory a network sees only the last step, noise: it cannot beat chance (1 in 4) by much.
    engine.set_seed(0)
    memoryless = models.Sequential([layers.Dense(16, activation="relu"), layers.Dense(4, activation="softmax")])
    memoryless.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    memoryless.fit(x[:, -1], y, epochs=8, batch_size=32, verbose=0)
    _, chance = memoryless.evaluate(x_test[:, -1], y_test, verbose=0)
    assert chance < 0.35


# ------------------------------------------------------------------------------------------ Keras itself


@pytest.mark.filterwarnings("ignore::DeprecationWarning")          # raised inside Keras' torch backend
def test_same_outputs_as_keras_for_the_same_weights():
    """Where Keras 3 is installed (with the torch backend, or any backend the environment selects)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    as_np = keras.ops.convert_to_numpy
    x = random_f32(3, 6, 4, seed=8)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]], bool)
    for name in ("SimpleRNN", "LSTM", "GRU"):
        for kwargs in ({}, {"return_sequences": True, "go_backwards": True},
                       {"return_sequences": True, "return_state": True}, {"activation": "elu"},
                       *([{"reset_after": False, "return_sequences": True}] if name == "GRU" else [])):
            for m in (None, mask):
                ours, theirs = getattr(layers, name)(5, **kwargs), getattr(keras.layers, name)(5, **kwargs)
                y = ours(x, mask=m)
                theirs.build(x.shape)
                theirs.set_weights(ours.get_weights())
                expected = theirs(x, mask=None if m is None else keras.ops.convert_to_tensor(m))
                y = y if isinstance(y, list) else [y]
                expected = expected if isinstance(expected, (list, tuple)) else [expected]
                for a, b in zip(y, expected):
                    np.testing.assert_allclose(a.numpy(), as_np(b), rtol=1e-5, atol=1e-5, err_msg=f"{name} {kwargs}")
    bi, kbi = layers.Bidirectional(layers.LSTM(4)), keras.layers.Bidirectional(keras.layers.LSTM(4))
    y = bi(x, mask=mask)
    kbi.build(x.shape)
    kbi.set_weights(bi.get_weights())
    np.testing.assert_allclose(y.numpy(), as_np(kbi(x, mask=keras.ops.convert_to_tensor(mask))), rtol=1e-5, atol=1e-5)

"""Recurrent layers: SimpleRNN, LSTM, GRU (each one fused kernel over the whole sequence, csrc/lstm.cpp,
for the activations the kernels know; any other activation runs the same equations step by step through
engine.ops), and the wrappers Bidirectional and TimeDistributed. Keras 3's arguments, defaults and weight layouts, so
weights move between Keras and engine unchanged. Shapes: N batch, T time steps, D features, U units.

Seeing the gates: LSTM.trace_gates(x) returns every step's input, forget and output gates, candidate, cell
state and output; plot_gates(trace) draws them (matplotlib, imported only then).
"""
import numpy as np

from .. import activations, ops, random, regularizers, serialization
from ..ref.rnn import ACTIVATIONS
from ..tensor import Tensor, no_grad
from ._args import fraction, positive_int
from .base import Layer


def _no_constraint(cls_name, **constraints):
    for name, value in constraints.items():
        if value is not None:
            raise ValueError(f"{cls_name}: engine has no weight constraints yet. Received: {name}={value!r}")


def _kernel_activation(fn):
    """The name the fused kernels know an activation by, or None (then the layer runs step by step)."""
    try:
        name = activations.serialize(fn)
    except ValueError:                                  # a custom callable
        return None
    return name if name in ACTIVATIONS else None


def _reverse_time(x):
    return ops.take_index(x, (slice(None), slice(None, None, -1)))          # (N, T, ...) in reverse time


class _RNN(Layer):
    """What SimpleRNN, LSTM and GRU share: Keras' RNN layer around its cell, flattened into one class.
    Subclasses set _gates (G), _states (1 or 2) and _run (the fused op)."""

    _gates, _states = 1, 1
    supports_masking = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, use_cudnn="auto", zero_output_for_mask=False, **kwargs):
        kwargs.pop("implementation", None)                      # Keras' choice of cell code; one kernel here
        super().__init__(**kwargs)
        cls = type(self).__name__
        units = positive_int(cls, "units", units)
        _no_constraint(cls, kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                       bias_constraint=bias_constraint)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{cls}: expected `seed` to be None or a non-negative int. Received: seed={seed!r}")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"{cls}: expected use_cudnn in ('auto', True, False). Received: use_cudnn={use_cudnn!r}")
        self.units = int(units)
        self._set_options(activation=activation, recurrent_activation=recurrent_activation,
                          kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                          bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                          recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                          rnn_activity_regularizer=activity_regularizer)           # applied to the output only
        self._act = _kernel_activation(self.activation)
        self._ract = _kernel_activation(self.recurrent_activation)
        self.use_bias = bool(use_bias)
        self.dropout = fraction(cls, "dropout", dropout)
        self.recurrent_dropout = fraction(cls, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self.unroll, self.use_cudnn = bool(unroll), use_cudnn       # no effect: the fused kernel is the loop
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None                                          # the carried states when stateful

    # ---- weights
    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected an input of shape (batch, timesteps, "
                             f"features) with a known feature size. Received: input_shape={tuple(input_shape)}")
        GU = self._gates * self.units
        self.kernel = self.add_weight((input_shape[-1], GU), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, name="kernel")                 # (D, GU)
        self.recurrent_kernel = self.add_weight((self.units, GU), self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer, name="recurrent_kernel")  # (U, GU)
        self.bias = self.add_weight(self._bias_shape(), self._bias_initializer(), regularizer=self.bias_regularizer,
                                    name="bias") if self.use_bias else None
        self.built = True

    # ---- the forward pass
    def _check_input(self, x):
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected input of shape (batch, timesteps, "
                             f"features). Received: input.shape={x.shape}")
        if x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected input with last dimension "
                             f"{self.kernel.shape[0]} (the layer was built for it). Received: input.shape={x.shape}")

    def _dropout_mask(self, shape, rate):
        """Keras' dropout mask: kept with probability 1 - rate, scaled by 1 / (1 - rate); the same mask is
        used at every time step."""
        rng = self._rng or random.generator()
        return ((rng.random(shape) >= rate) / (1.0 - rate)).astype(np.float32)

    def _initial_state(self, where, initial_state, N):
        """The states to start from: initial_state, the carried states of a stateful layer, or zeros."""
        if initial_state is None and self.stateful and self.states is not None:
            initial_state = self.states
        if initial_state is None:
            return [Tensor._wrap(np.zeros((N, self.units), np.float32)) for _ in range(self._states)]
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self._states:
            raise ValueError(f"{where}: expected initial_state as a list of {self._states} tensor(s) of shape "
                             f"(batch, units). Received: {len(states)} tensor(s)")
        states = [ops.convert_to_tensor(s) for s in states]
        for s in states:
            if s.shape != (N, self.units):
                raise ValueError(f"{where}: expected each initial state of shape ({N}, {self.units}). "
                                 f"Received: shape={s.shape}")
        return states

    def call(self, inputs, mask=None, training=None, initial_state=None):
        x = inputs
        self._check_input(x)
        where = f"{type(self).__name__} '{self.name}'"
        N, T, D = x.shape
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (N, T):
                raise ValueError(f"{where}: expected a mask of shape ({N}, {T}). Received: mask.shape={mask.shape}")
        given_state = initial_state is not None or (self.stateful and self.states is not None)
        states = self._initial_state(where, initial_state, N)
        if self.go_backwards:                                   # Keras returns the reversed sequence as is
            x = _reverse_time(x)
            mask = None if mask is None else mask[:, ::-1]
        if training and 0.0 < self.dropout < 1.0:
            x = ops.multiply(x, self._dropout_mask((N, 1, D), self.dropout))
        recurrent_mask = None
        if training and 0.0 < self.recurrent_dropout < 1.0:
            recurrent_mask = self._dropout_mask((N, self.units), self.recurrent_dropout)
        kernel_mask = None if mask is None or mask.all() else mask.astype(np.float32)
        run = self._run if self._fused() else self._run_steps
        y, *final = run(x, states, kernel_mask, recurrent_mask)
        if self.stateful:
            self.states = [Tensor._wrap(s.data.copy()) for s in final]
        if kernel_mask is not None:
            # Keras: a padded step outputs the previous step's output, or zeros with zero_output_for_mask; before
            # the first real step there is no previous output, so that is zeros too.
            seen = np.maximum.accumulate(mask, axis=1) if given_state else None
            keep = mask if self.zero_output_for_mask else seen
            if keep is not None:
                y = ops.multiply(y, keep[:, :, None].astype(np.float32))
        output = y if self.return_sequences else (
            final[0] if kernel_mask is None or not (given_state or self.zero_output_for_mask)
            else ops.take_index(y, (slice(None), -1)))
        if self.rnn_activity_regularizer is not None:
            self.add_loss(self.rnn_activity_regularizer(output))
        return [output] + list(final) if self.return_state else output

    def _fused(self):
        """Whether the fused kernel computes this layer (its activations are ones the kernel knows)."""
        return self._act is not None and (self._ract is not None or isinstance(self, SimpleRNN))

    def _run_steps(self, x, states, mask, recurrent_mask):
        """The same equations as the fused kernel, built from engine.ops one step at a time (a Python loop,
        so slower): for activations the kernels do not have (elu, gelu, a custom function, ...), and GRU's
        reset_after=False."""
        U = self.units
        bias = self.bias if self.bias is not None else np.zeros(self._bias_shape(), np.float32)
        input_bias = ops.take_index(bias, 0) if bias.ndim == 2 else bias                 # GRU: (2, 3U)
        xp = ops.bias_add(ops.matmul(x, self.kernel), input_bias)                        # (N, T, GU)
        gate = lambda z, q: ops.take_index(z, (slice(None), slice(q * U, (q + 1) * U)))  # noqa: E731
        ys = []
        for t in range(x.shape[1]):
            h = states[0] if recurrent_mask is None else ops.multiply(states[0], recurrent_mask)
            rec = ops.matmul(h, self.recurrent_kernel)                                   # (N, GU)
            new = self._cell(ops.take_index(xp, (slice(None), t)), rec, states, gate, bias, h)
            if mask is not None:                                 # padded steps carry the state over
                keep = mask[:, t:t + 1] != 0
                new = [ops.where(keep, n, s) for n, s in zip(new, states)]
            states = new
            ys.append(states[0])
        y = ops.stack(ys, axis=1) if ys else ops.convert_to_tensor(np.zeros((x.shape[0], 0, U), np.float32))
        return (y, *states)

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        return [output_mask] + [None] * self._states if self.return_state else output_mask

    def compute_output_shape(self, input_shape):
        N, T = input_shape[0], input_shape[1]
        output = (N, T, self.units) if self.return_sequences else (N, self.units)
        return [output] + [(N, self.units)] * self._states if self.return_state else output

    def reset_states(self, states=None):
        """Forget the carried states of a stateful layer (or set them: a list of (batch, units) arrays)."""
        self.states = None if states is None else [Tensor._wrap(np.asarray(s, np.float32).copy()) for s in states]

    def get_config(self):
        config = {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                  **self._options_config("activation", "kernel_initializer", "recurrent_initializer",
                                         "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
                                         "bias_regularizer"),
                  "activity_regularizer": regularizers.serialize(self.rnn_activity_regularizer),
                  "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
                  "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
                  "return_sequences": self.return_sequences, "return_state": self.return_state,
                  "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                  "zero_output_for_mask": self.zero_output_for_mask}
        if config["activity_regularizer"] is None:
            del config["activity_regularizer"]
        return config


class SimpleRNN(_RNN):
    """A fully connected RNN: h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias), each neuron
    fed its own previous state. (N, T, D) -> (N, U), or (N, T, U) with return_sequences=True.
    kernel (D, U), recurrent_kernel (U, U), bias (U,)."""

    def __init__(self, units, activation="tanh", use_bias=True, **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN: unrecognized keyword arguments: ['recurrent_activation']")
        super().__init__(units, activation=activation, recurrent_activation="sigmoid", use_bias=use_bias, **kwargs)

    def _run(self, x, states, mask, recurrent_mask):
        bias = self.bias if self.bias is not None else np.zeros(self.units, np.float32)
        return ops.simple_rnn(x, states[0], self.kernel, self.recurrent_kernel, bias, mask, recurrent_mask, self._act)

    def _cell(self, xp, rec, states, gate, bias, h):
        return [self.activation(ops.add(xp, rec))]


class LSTM(_RNN):
    """Long short-term memory (Hochreiter 1997): a memory cell c and input, forget and output gates.
        i, f, o = recurrent_activation(x_t W_q + h_{t-1} R_q + b_q);  g = activation(x_t W_c + h_{t-1} R_c + b_c)
        c_t = f * c_{t-1} + i * g;  h_t = o * activation(c_t)
    (N, T, D) -> (N, U), or (N, T, U) with return_sequences=True; return_state=True adds h_T and c_T.
    kernel (D, 4U), recurrent_kernel (U, 4U), bias (4U,), gates in Keras' order i, f, c, o.
    unit_forget_bias=True starts the forget gate's bias at 1 (remember by default)."""

    _gates, _states = 4, 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        U, init = self.units, self.bias_initializer

        def forget_ones(shape, dtype="float32"):                # i: init, f: ones, c and o: init
            return np.concatenate([init((U,), dtype), np.ones(U, dtype), init((2 * U,), dtype)])
        return forget_ones

    def _run(self, x, states, mask, recurrent_mask):
        bias = self.bias if self.bias is not None else np.zeros(4 * self.units, np.float32)
        return ops.lstm(x, states[0], states[1], self.kernel, self.recurrent_kernel, bias, mask, recurrent_mask,
                        self._act, self._ract)

    def _cell(self, xp, rec, states, gate, bias, h):
        z = ops.add(xp, rec)
        i, f, o = (self.recurrent_activation(gate(z, q)) for q in (0, 1, 3))
        c = ops.add(ops.multiply(f, states[1]), ops.multiply(i, self.activation(gate(z, 2))))
        return [ops.multiply(o, self.activation(c)), c]

    def trace_gates(self, inputs, mask=None, initial_state=None):
        """Run the layer on inputs (N, T, D) (no training, no dropout) and return every step's gates and states,
        each (N, T, U), in the order the steps were processed (reversed when go_backwards):
            'input', 'forget', 'output'   the gates i, f, o, between 0 and 1 with the default sigmoid
            'candidate'                   g, the new content the input gate lets into the cell
            'cell'                        c_t, the memory cell;   'hidden': h_t, the output
            'mask'                        (N, T) bools, False on padded steps (the state was carried)"""
        x = ops.convert_to_tensor(inputs)
        if self._act is None or self._ract is None:
            names = [getattr(fn, "__name__", repr(fn)) for fn in (self.activation, self.recurrent_activation)]
            raise ValueError(f"LSTM '{self.name}': trace_gates runs the fused kernel, which takes activations in "
                             f"{ACTIVATIONS}. Received: activation={names[0]!r}, recurrent_activation={names[1]!r}")
        if not self.built:
            self(x)
        self._check_input(x)
        N, T, _ = x.shape
        mask = np.ones((N, T), bool) if mask is None else np.asarray(ops.to_array(mask), dtype=bool)
        h0, c0 = self._initial_state(f"LSTM '{self.name}'", initial_state, N)
        xs = x.data[:, ::-1] if self.go_backwards else x.data
        mask = mask[:, ::-1] if self.go_backwards else mask
        bias = self.bias.data if self.bias is not None else np.zeros(4 * self.units, np.float32)
        xs, h0, c0 = (np.ascontiguousarray(a, np.float32) for a in (xs, h0.data, c0.data))   # float32, as call() runs
        with no_grad():
            y, _, _, gates, cells = (t.numpy() for t in ops.lstm(
                xs, h0, c0, self.kernel, self.recurrent_kernel, bias, None if mask.all() else mask, None, self._act,
                self._ract, return_gates=True))
        U = self.units
        names = ("input", "forget", "candidate", "output")
        trace = {name: gates[:, :, k * U:(k + 1) * U] for k, name in enumerate(names)}
        trace.update(cell=cells, hidden=y, mask=np.ascontiguousarray(mask))
        return trace

    def get_config(self):
        config = super().get_config()
        config.update(self._options_config("recurrent_activation"), unit_forget_bias=self.unit_forget_bias)
        return config


class GRU(_RNN):
    """Gated recurrent unit (Cho 2014). Keras' default reset_after=True form:
        z, r = recurrent_activation(x_t W + b_in + h_{t-1} R + b_rec)   (update and reset gates)
        hh = activation(x_t W_h + b_in_h + r * (h_{t-1} R_h + b_rec_h));  h_t = z * h_{t-1} + (1 - z) * hh
    kernel (D, 3U), recurrent_kernel (U, 3U), bias (2, 3U) (input bias, recurrent bias), gates z, r, h.
    reset_after=False (the original form, bias (3U,)) applies r before the product: hh = activation(x_t W_h +
    b_h + (r * h_{t-1}) R_h); it runs step by step through engine.ops (the fused kernel is reset_after=True)."""

    _gates, _states = 3, 1

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True, reset_after=True,
                 **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, **kwargs)
        if not isinstance(reset_after, bool):
            raise ValueError(f"GRU: expected `reset_after` to be True or False. Received: reset_after={reset_after!r}")
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _fused(self):
        return self.reset_after and super()._fused()

    def _run(self, x, states, mask, recurrent_mask):
        bias = self.bias if self.bias is not None else np.zeros((2, 3 * self.units), np.float32)
        return ops.gru(x, states[0], self.kernel, self.recurrent_kernel, bias, mask, recurrent_mask, self._act,
                       self._ract)

    def _cell(self, xp, rec, states, gate, bias, h):
        if self.reset_after:
            rec = ops.bias_add(rec, ops.take_index(bias, 1))                             # the recurrent bias
        z = self.recurrent_activation(ops.add(gate(xp, 0), gate(rec, 0)))
        r = self.recurrent_activation(ops.add(gate(xp, 1), gate(rec, 1)))
        if self.reset_after:
            candidate = ops.multiply(r, gate(rec, 2))
        else:                                    # the reset gate scales the state before its product
            U = self.units
            candidate = ops.matmul(ops.multiply(r, h), ops.take_index(self.recurrent_kernel, (slice(None),
                                                                                              slice(2 * U, 3 * U))))
        hh = self.activation(ops.add(gate(xp, 2), candidate))
        return [ops.add(ops.multiply(z, states[0]), ops.multiply(ops.subtract(1.0, z), hh))]

    def get_config(self):
        config = super().get_config()
        config.update(self._options_config("recurrent_activation"), reset_after=self.reset_after)
        return config


# --------------------------------------------------------------------------------------------- wrappers


def _serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _deserialize(spec, where):
    if isinstance(spec, Layer):
        return spec
    return serialization.deserialize(spec, where=where)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards over the sequence and merges the two:
    merge_mode 'concat' (default), 'sum', 'mul', 'ave', or None (a list of both). With return_sequences the
    backward layer's outputs are put back in forward time order first. Weights: the forward layer's, then
    the backward layer's."""

    supports_masking = True
    _MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, _RNN):
            raise ValueError(f"Bidirectional: expected `layer` to be a SimpleRNN, LSTM or GRU instance. "
                             f"Received: layer={layer!r}")
        if merge_mode not in self._MERGE_MODES:
            raise ValueError(f"Bidirectional: expected merge_mode in {self._MERGE_MODES}. "
                             f"Received: merge_mode={merge_mode!r}")
        super().__init__(**kwargs)
        config = layer.get_config()
        self.forward_layer = type(layer).from_config({**config, "name": "forward_" + layer.name,
                                                      "zero_output_for_mask": layer.return_sequences})
        if backward_layer is None:
            backward_layer = type(layer).from_config({**config, "name": "backward_" + layer.name,
                                                      "go_backwards": not layer.go_backwards})
            self._custom_backward = False
        else:
            if not isinstance(backward_layer, _RNN) or backward_layer.go_backwards == layer.go_backwards or \
                    backward_layer.return_sequences != layer.return_sequences or \
                    backward_layer.return_state != layer.return_state:
                raise ValueError("Bidirectional: expected backward_layer to be a recurrent layer with go_backwards "
                                 "opposite to layer's and the same return_sequences and return_state. "
                                 f"Received: backward_layer={backward_layer!r}")
            self._custom_backward = True
        backward_layer.zero_output_for_mask = layer.return_sequences
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        self._layer_config = _serialize(layer)
        self._initial_weights = weights

    def build(self, input_shape):
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(input_shape)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _merge(self, a, b):
        if self.merge_mode == "concat":
            return ops.concatenate([a, b], axis=-1)
        if self.merge_mode == "sum":
            return ops.add(a, b)
        if self.merge_mode == "mul":
            return ops.multiply(a, b)
        if self.merge_mode == "ave":
            return ops.multiply(ops.add(a, b), 0.5)
        return [a, b]

    def call(self, inputs, mask=None, training=None, initial_state=None):
        forward_state = backward_state = None
        if initial_state is not None:                           # forward layer's states, then backward's
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(inputs, mask=mask, training=training, initial_state=forward_state)
        y_rev = self.backward_layer(inputs, mask=mask, training=training, initial_state=backward_state)
        states = []
        if self.return_state:
            y, states = y[0], list(y[1:]) + list(y_rev[1:])
            y_rev = y_rev[0]
        if self.return_sequences:
            y_rev = _reverse_time(y_rev)
        output = self._merge(y, y_rev)
        if self.return_state:
            return (output if isinstance(output, list) else [output]) + states
        return output

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * (2 * self.forward_layer._states)
        return output_mask

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:]) * 2
        if self.merge_mode == "concat":
            shape = tuple(shape[:-1]) + (2 * shape[-1],)
        output = [tuple(shape), tuple(shape)] if self.merge_mode is None else tuple(shape)
        return (output if isinstance(output, list) else [output]) + states if self.return_state else output

    def get_config(self):
        config = {**super().get_config(), "layer": self._layer_config, "merge_mode": self.merge_mode}
        if self._custom_backward:
            config["backward_layer"] = _serialize(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = _deserialize(config["layer"], "Bidirectional.from_config")
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _deserialize(config["backward_layer"], "Bidirectional.from_config")
        return cls(**config)


class TimeDistributed(Layer):
    """Applies a layer to every time step: (N, T, ...) -> the layer on (N * T, ...) -> (N, T, ...).
    TimeDistributed(Dense(8)) gives every step the same Dense weights."""

    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed: expected `layer` to be a Layer instance. Received: layer={layer!r}")
        super().__init__(**kwargs)
        self.layer = layer

    def _check(self, shape):
        if len(shape) < 3:
            raise ValueError(f"TimeDistributed '{self.name}': expected an input of shape (batch, timesteps, ...) "
                             f"with at least 3 dimensions. Received: input_shape={tuple(shape)}")

    def build(self, input_shape):
        self._check(input_shape)
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]))
            self.layer.built = True
        self.built = True

    def call(self, inputs, training=None):
        self._check(inputs.shape)
        N, T = inputs.shape[:2]
        y = self.layer(ops.reshape(inputs, (N * T,) + tuple(inputs.shape[2:])), training=training)
        return ops.reshape(y, (N, T) + tuple(y.shape[1:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def get_config(self):
        return {**super().get_config(), "layer": _serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = _deserialize(config["layer"], "TimeDistributed.from_config")
        return cls(**config)


# --------------------------------------------------------------------------------------------- seeing the gates


def plot_gates(trace, sample=0, units=None, filename=None, title=None):
    """Draw an LSTM's gates over time (from LSTM.trace_gates): one panel per gate and for the cell state and
    output, one line per unit (the first 4 units unless `units` lists them). Returns the matplotlib Figure;
    saves it to `filename` when given. matplotlib is optional: it is imported only here."""
    try:
        import matplotlib.pyplot as plt          # without a display, matplotlib picks a file-only backend
    except ImportError:
        raise ImportError("plot_gates needs matplotlib, an optional dependency: pip install matplotlib "
                          "(or pip install -e \".[examples]\")") from None
    if not isinstance(trace, dict) or "forget" not in trace:
        raise ValueError("plot_gates: expected the dict that LSTM.trace_gates returns. "
                         f"Received: {type(trace).__name__}")
    N, T, U = trace["forget"].shape
    if not 0 <= sample < N:
        raise ValueError(f"plot_gates: expected sample in [0, {N}). Received: sample={sample}")
    units = list(range(min(U, 4))) if units is None else list(units)
    panels = [("input", "input gate i"), ("forget", "forget gate f"), ("output", "output gate o"),
              ("candidate", "candidate g"), ("cell", "cell state c"), ("hidden", "output h")]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(8, 1.6 * len(panels)))
    steps = np.arange(T)
    padded = ~trace["mask"][sample]
    for ax, (key, label) in zip(axes, panels):
        for u in units:
            ax.plot(steps, trace[key][sample, :, u], label=f"unit {u}")
        if padded.any():
            ax.fill_between(steps, 0, 1, where=padded, transform=ax.get_xaxis_transform(), color="0.9")
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        if key in ("input", "forget", "output"):
            ax.set_ylim(-0.05, 1.05)
    axes[0].legend(loc="upper right", fontsize="small", ncol=len(units))
    axes[-1].set_xlabel("time step")
    fig.suptitle(title or f"LSTM gates, sample {sample}")
    fig.tight_layout()
    if filename is not None:
        fig.savefig(filename)
    return fig

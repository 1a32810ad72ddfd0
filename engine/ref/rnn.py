"""NumPy reference for the recurrent family: SimpleRNN, LSTM and GRU run over a whole sequence, forward and
backward through time. The spec that csrc/lstm.cpp, gru.cpp and simple_rnn.cpp (with csrc/rnn.h) must
match.

Dimensions: N batch, T time steps, D input features, U units, G gates (LSTM 4: i, f, c, o; GRU 3: z, r, h;
SimpleRNN 1). Weights are in Keras 3's layout, so they move between Keras and engine unchanged:
kernel (D, G*U), recurrent_kernel (U, G*U), bias (G*U,) (GRU: (2, 3U), the input bias then the recurrent one).

Shared options:
  mask (N, T) or None      1 where step t of sample n holds data, 0 where it is padding. On a padded step
                           the state is carried over unchanged, and the output y_t is that carried state.
  recurrent_mask (N, U)    recurrent dropout, already scaled (0 or 1 / (1 - rate)); the state is multiplied
                           by it where it enters the recurrent product (only there), the same every step.
  activation, recurrent_activation    'tanh', 'sigmoid', 'relu' or 'linear': activations whose derivative is
                           a function of their output, which is what the forward saves.
Every forward first projects all time steps' inputs in one product (x @ kernel + bias); the loop over time
then does one small product per step (h_{t-1} @ recurrent_kernel) and the gate arithmetic.
Backward through time walks the steps in reverse, collecting each step's pre-activation gradients dz; the
weight gradients are then three products over all steps at once: dkernel = x^T dz, drecurrent_kernel =
h_prev^T dz, dbias = sum(dz).
"""
import numpy as np

from ._check import rnn_args

_ACTIVATIONS = {                        # name: (f(z), f'(z) written with y = f(z))
    "linear": (lambda z: z, lambda y: np.ones_like(y)),
    "relu": (lambda z: np.maximum(z, 0), lambda y: (y > 0).astype(y.dtype)),
    "sigmoid": (lambda z: 0.5 * (1 + np.tanh(0.5 * z)), lambda y: y * (1 - y)),   # tanh form: no overflow
    "tanh": (np.tanh, lambda y: 1 - y * y),
}
ACTIVATIONS = tuple(_ACTIVATIONS)


def _activation(where, name, value):
    if not isinstance(value, str) or value not in _ACTIVATIONS:
        raise ValueError(f"{where}: expected {name} in {ACTIVATIONS}. Received: {name}={value!r}")
    return _ACTIVATIONS[value]


def _keep(mask, t):
    """(N, 1) bools: which samples hold data at step t (all of them without a mask)."""
    return True if mask is None else mask[:, t:t + 1] != 0


def _dropped(h, recurrent_mask):
    return h if recurrent_mask is None else h * recurrent_mask


def _previous(seq, first, t):
    """The value of a per-step sequence (N, T, U) one step before t (first at t = 0)."""
    return seq[:, t - 1] if t else first


def _weight_grads(dz_in, dz_rec, x, h0, y, recurrent_mask, kernel):
    """dx, dkernel, drecurrent_kernel from every step's pre-activation gradients at once. dz_in (N, T, GU)
    reaches the inputs and the kernel, dz_rec (the same except in GRU's candidate) the recurrent kernel."""
    T = y.shape[1]
    h_prev = np.concatenate([h0[:, None], y[:, :-1]], axis=1)[:, :T]                  # (N, T, U): h_{t-1}
    h_prev = _dropped(h_prev, None if recurrent_mask is None else recurrent_mask[:, None])
    flat = lambda a: a.reshape(a.shape[0] * a.shape[1], a.shape[2])                    # noqa: E731  (N*T, .)
    return dz_in @ kernel.T, flat(x).T @ flat(dz_in), flat(h_prev).T @ flat(dz_rec)


# --------------------------------------------------------------------------------------------- LSTM


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
                 recurrent_activation="sigmoid", save=True):
    """Per step: z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias, split into (i, f, c, o);
    i, f, o = recurrent_activation(...), g = activation(z_c); c_t = f * c_{t-1} + i * g; h_t = o * activation(c_t).
    x (N, T, D), h0, c0 (N, U) -> y (N, T, U) every h_t, h (N, U) and c (N, U) the last states,
    gates (N, T, 4U) i, f, g, o after their activations, cells (N, T, U) every c_t (saved for the backward).
    save=False (inference): only y, h, c."""
    where = "lstm_forward"
    N, T, D, U = rnn_args(where, 4, x, recurrent_kernel, [("h0", h0, "NU"), ("c0", c0, "NU"), ("kernel", kernel, ("D", "GU")),
                                                        ("bias", bias, ("GU",))], mask, recurrent_mask)
    act, _ = _activation(where, "activation", activation)
    ract, _ = _activation(where, "recurrent_activation", recurrent_activation)
    xp = x @ kernel + bias                                       # (N, T, 4U): every step's input projection
    y, cells, gates = np.empty((N, T, U), x.dtype), np.empty((N, T, U), x.dtype), np.empty((N, T, 4 * U), x.dtype)
    h, c = h0, c0
    for t in range(T):
        z = xp[:, t] + _dropped(h, recurrent_mask) @ recurrent_kernel                  # (N, 4U)
        i, f, g, o = ract(z[:, :U]), ract(z[:, U:2 * U]), act(z[:, 2 * U:3 * U]), ract(z[:, 3 * U:])
        c_new = f * c + i * g
        h_new = o * act(c_new)
        keep = _keep(mask, t)                                    # padded steps carry the state over
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        y[:, t], cells[:, t] = h, c
    return (y, np.array(h), np.array(c), gates, cells) if save else (y, np.array(h), np.array(c))


def lstm_backward(dy, dh, dc, x, h0, c0, kernel, recurrent_kernel, mask, recurrent_mask, y, gates, cells,
                  activation="tanh", recurrent_activation="sigmoid"):
    """Backward through time of lstm_forward. dy (N, T, U) reaches every output, dh and dc (N, U) the last
    states; the rest is what lstm_forward took and saved.
    -> dx (N, T, D), dh0 (N, U), dc0 (N, U), dkernel (D, 4U), drecurrent_kernel (U, 4U), dbias (4U,)"""
    where = "lstm_backward"
    N, T, D, U = rnn_args(where, 4, x, recurrent_kernel,
                        [("dy", dy, "NTU"), ("dh", dh, "NU"), ("dc", dc, "NU"), ("h0", h0, "NU"), ("c0", c0, "NU"),
                         ("kernel", kernel, ("D", "GU")), ("y", y, "NTU"), ("gates", gates, ("N", "T", "GU")),
                         ("cells", cells, "NTU")], mask, recurrent_mask)
    act, dact = _activation(where, "activation", activation)
    _, dract = _activation(where, "recurrent_activation", recurrent_activation)
    dz = np.zeros((N, T, 4 * U), x.dtype)
    dh_next, dc_next = dh, dc                                    # gradients reaching h_t and c_t from later on
    for t in reversed(range(T)):
        i, f, g, o = (gates[:, t, k * U:(k + 1) * U] for k in range(4))
        c_prev, tc = _previous(cells, c0, t), act(cells[:, t])
        keep = _keep(mask, t)
        dh_t = dy[:, t] + dh_next
        dh_new = np.where(keep, dh_t, 0)                         # a padded step passes both gradients through
        dc_new = np.where(keep, dc_next, 0) + dh_new * o * dact(tc)
        dz[:, t] = np.concatenate([dc_new * g * dract(i), dc_new * c_prev * dract(f), dc_new * i * dact(g),
                                   dh_new * tc * dract(o)], axis=1)
        dh_next = _dropped(dz[:, t] @ recurrent_kernel.T, recurrent_mask) + np.where(keep, 0, dh_t)
        dc_next = dc_new * f + np.where(keep, 0, dc_next)
    dx, dkernel, drecurrent = _weight_grads(dz, dz, x, h0, y, recurrent_mask, kernel)
    return dx, dh_next, dc_next, dkernel, drecurrent, dz.sum(axis=(0, 1))


# --------------------------------------------------------------------------------------------- GRU


def gru_forward(x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh",
                recurrent_activation="sigmoid", save=True):
    """Keras' GRU with reset_after=True. Per step, with xz, xr, xh = x_t @ kernel + bias[0] and
    rz, rr, rh = h_{t-1} @ recurrent_kernel + bias[1]:  z = recurrent_activation(xz + rz),
    r = recurrent_activation(xr + rr), hh = activation(xh + r * rh);  h_t = z * h_{t-1} + (1 - z) * hh.
    x (N, T, D), h0 (N, U), bias (2, 3U) -> y (N, T, U), h (N, U), gates (N, T, 3U) z, r, hh,
    recurrent_h (N, T, U) every rh (saved for the backward). save=False (inference): only y, h."""
    where = "gru_forward"
    N, T, D, U = rnn_args(where, 3, x, recurrent_kernel, [("h0", h0, "NU"), ("kernel", kernel, ("D", "GU")),
                                                        ("bias", bias, ("2", "GU"))], mask, recurrent_mask)
    act, _ = _activation(where, "activation", activation)
    ract, _ = _activation(where, "recurrent_activation", recurrent_activation)
    xp = x @ kernel + bias[0]                                    # (N, T, 3U)
    y, gates, recurrent_h = np.empty((N, T, U), x.dtype), np.empty((N, T, 3 * U), x.dtype), np.empty((N, T, U), x.dtype)
    h = h0
    for t in range(T):
        rec = _dropped(h, recurrent_mask) @ recurrent_kernel + bias[1]                 # (N, 3U)
        z = ract(xp[:, t, :U] + rec[:, :U])
        r = ract(xp[:, t, U:2 * U] + rec[:, U:2 * U])
        hh = act(xp[:, t, 2 * U:] + r * rec[:, 2 * U:])
        h = np.where(_keep(mask, t), z * h + (1 - z) * hh, h)
        gates[:, t] = np.concatenate([z, r, hh], axis=1)
        y[:, t], recurrent_h[:, t] = h, rec[:, 2 * U:]
    return (y, np.array(h), gates, recurrent_h) if save else (y, np.array(h))


def gru_backward(dy, dh, x, h0, kernel, recurrent_kernel, mask, recurrent_mask, y, gates, recurrent_h,
                 activation="tanh", recurrent_activation="sigmoid"):
    """Backward through time of gru_forward. -> dx (N, T, D), dh0 (N, U), dkernel (D, 3U),
    drecurrent_kernel (U, 3U), dbias (2, 3U)"""
    where = "gru_backward"
    N, T, D, U = rnn_args(where, 3, x, recurrent_kernel,
                        [("dy", dy, "NTU"), ("dh", dh, "NU"), ("h0", h0, "NU"), ("kernel", kernel, ("D", "GU")),
                         ("y", y, "NTU"), ("gates", gates, ("N", "T", "GU")), ("recurrent_h", recurrent_h, "NTU")],
                        mask, recurrent_mask)
    _, dact = _activation(where, "activation", activation)
    _, dract = _activation(where, "recurrent_activation", recurrent_activation)
    dz_in, dz_rec = np.zeros((N, T, 3 * U), x.dtype), np.zeros((N, T, 3 * U), x.dtype)
    dh_next = dh
    for t in reversed(range(T)):
        z, r, hh = (gates[:, t, k * U:(k + 1) * U] for k in range(3))
        keep = _keep(mask, t)
        dh_t = dy[:, t] + dh_next
        dh_new = np.where(keep, dh_t, 0)
        dzz = dh_new * (_previous(y, h0, t) - hh) * dract(z)
        dzh = dh_new * (1 - z) * dact(hh)                        # the candidate's pre-activation
        dzr = dzh * recurrent_h[:, t] * dract(r)
        dz_in[:, t] = np.concatenate([dzz, dzr, dzh], axis=1)
        dz_rec[:, t] = np.concatenate([dzz, dzr, dzh * r], axis=1)  # r scales the recurrent part of the candidate
        dh_next = (_dropped(dz_rec[:, t] @ recurrent_kernel.T, recurrent_mask) + dh_new * z
                   + np.where(keep, 0, dh_t))
    dx, dkernel, drecurrent = _weight_grads(dz_in, dz_rec, x, h0, y, recurrent_mask, kernel)
    return dx, dh_next, dkernel, drecurrent, np.stack([dz_in.sum(axis=(0, 1)), dz_rec.sum(axis=(0, 1))])


# --------------------------------------------------------------------------------------------- SimpleRNN


def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, mask=None, recurrent_mask=None, activation="tanh"):
    """Per step: h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).
    x (N, T, D), h0 (N, U), bias (U,) -> y (N, T, U) every h_t, h (N, U) the last state"""
    where = "simple_rnn_forward"
    N, T, D, U = rnn_args(where, 1, x, recurrent_kernel, [("h0", h0, "NU"), ("kernel", kernel, ("D", "GU")),
                                                        ("bias", bias, ("GU",))], mask, recurrent_mask)
    act, _ = _activation(where, "activation", activation)
    xp = x @ kernel + bias                                       # (N, T, U)
    y = np.empty((N, T, U), x.dtype)
    h = h0
    for t in range(T):
        h = np.where(_keep(mask, t), act(xp[:, t] + _dropped(h, recurrent_mask) @ recurrent_kernel), h)
        y[:, t] = h
    return y, np.array(h)


def simple_rnn_backward(dy, dh, x, h0, kernel, recurrent_kernel, mask, recurrent_mask, y, activation="tanh"):
    """Backward through time of simple_rnn_forward. -> dx (N, T, D), dh0 (N, U), dkernel (D, U),
    drecurrent_kernel (U, U), dbias (U,)"""
    where = "simple_rnn_backward"
    N, T, D, U = rnn_args(where, 1, x, recurrent_kernel, [("dy", dy, "NTU"), ("dh", dh, "NU"), ("h0", h0, "NU"),
                                                        ("kernel", kernel, ("D", "GU")), ("y", y, "NTU")],
                        mask, recurrent_mask)
    _, dact = _activation(where, "activation", activation)
    dz = np.zeros((N, T, U), x.dtype)
    dh_next = dh
    for t in reversed(range(T)):
        keep = _keep(mask, t)
        dh_t = dy[:, t] + dh_next
        dz[:, t] = np.where(keep, dh_t, 0) * dact(y[:, t])
        dh_next = _dropped(dz[:, t] @ recurrent_kernel.T, recurrent_mask) + np.where(keep, 0, dh_t)
    dx, dkernel, drecurrent = _weight_grads(dz, dz, x, h0, y, recurrent_mask, kernel)
    return dx, dh_next, dkernel, drecurrent, dz.sum(axis=(0, 1))

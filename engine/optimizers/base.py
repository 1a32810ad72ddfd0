"""Optimizer: Keras 3's optimizer base class, driving the fused in-place update kernels.

One update, `optimizer.apply(grads, variables)`:
  1. check every (grad, variable) pair before touching anything, so a bad pair leaves nothing half-updated
  2. clip the gradients, on copies in NumPy: clipnorm (each gradient's L2 norm), global_clipnorm (the norm
     of all gradients together) or clipvalue (each entry); at most one of the three, as in Keras 3
  3. for each variable that has a gradient, one fused kernel call (engine.backend.kernels, so 'ref' or
     'cpu'): decoupled weight decay, then the optimizer's rule, on the parameter and its slots in place
  4. iterations += 1

Update k (k = iterations before the update, from 0) uses learning_rate = schedule(k) when a
LearningRateSchedule is given; Adam's bias correction counts from step k + 1.

Slots (SGD's velocity, Adam's m and v, ...) are arrays shaped like their variable, created on the first
update that sees the variable and found again by the variable's identity. A subclass names its slots
(_slot_names, in the fixed order get_state uses), gives their initial value (_slot_initial_value) and
calls its kernel (_update_step). Not implemented from Keras: EMA of the weights, loss scaling, gradient
accumulation and callable learning rates; their arguments are accepted at their defaults only, so Keras
configs still load.
"""
import math
import numbers
import re
import warnings
import weakref

import numpy as np

from .. import backend
from ..serialization import Registered
from ..tensor import Tensor
from . import schedules

# Keras 3 constructor arguments engine does not implement: accepted (and echoed by get_config) at these
# values only, so a config written by Keras loads.
_KERAS_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                   "loss_scale_factor": None, "gradient_accumulation_steps": None}

_INTERVALS = {                                   # phrase for the error message, test
    "[0, 1]": ("in [0, 1]", lambda x: 0 <= x <= 1),
    "[0, 1)": ("in [0, 1)", lambda x: 0 <= x < 1),
    ">= 0": (">= 0 and finite", lambda x: 0 <= x < math.inf),
    "> 0": ("> 0 and finite", lambda x: 0 < x < math.inf),
}


def hyperparameter(where, name, value, interval):
    """value as a float, after checking it is a real number (TypeError) inside `interval`, one of
    '[0, 1]', '[0, 1)', '>= 0', '> 0' (ValueError; NaN is never inside)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected `{name}` to be a float. Received: {name}={value!r}")
    phrase, inside = _INTERVALS[interval]
    if not inside(float(value)):
        raise ValueError(f"{where}: expected `{name}` {phrase}. Received: {name}={value!r}")
    return float(value)


def flag(where, name, value):
    """value as a bool; TypeError for anything but True/False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: expected `{name}` to be True or False. Received: {name}={value!r}")
    return bool(value)


def variable_name(var, index):
    """How error messages name a variable: its layer path ('dense/kernel') when it has one."""
    for attribute in ("name", "_op"):
        name = getattr(var, attribute, None)
        if isinstance(name, str) and name:
            return repr(name)
    return f"at index {index}"


def _param_array(where, var, index):
    """The array a variable's update writes into: var.data, float, C-contiguous and writeable."""
    data = getattr(var, "data", None)
    if not isinstance(data, np.ndarray) or data.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: expected each variable to be a Tensor holding a float32 array. "
                        f"Received: variable {variable_name(var, index)} of type {type(var).__name__}")
    if not data.flags.c_contiguous or not data.flags.writeable:
        raise TypeError(f"{where}: expected variable {variable_name(var, index)} to hold a C-contiguous, "
                        f"writeable array (it is updated in place)")
    return data


def _grad_array(where, grad, param, var, index):
    """grad (a Tensor, an array or nested lists) as a C-contiguous array of the parameter's dtype and shape.
    The caller's array is returned as is when it already fits: the kernels only read it."""
    if isinstance(grad, Tensor):
        grad = grad.data
    grad = np.asarray(grad)
    if grad.dtype.kind not in "fiu":
        raise TypeError(f"{where}: expected the gradient of variable {variable_name(var, index)} to be a float "
                        f"array. Received: grad.dtype={grad.dtype}")
    if grad.shape != param.shape:
        raise ValueError(f"{where}: expected the gradient of variable {variable_name(var, index)} to have the "
                         f"variable's shape {tuple(param.shape)}. Received: grad.shape={tuple(grad.shape)}")
    return grad.astype(param.dtype, order="C", copy=False)      # (np.ascontiguousarray would make 0-d 1-d)


def _squared_norm(g):
    """sum(g^2), accumulated in float64 by NumPy's pairwise sum: deterministic, whatever the thread count."""
    return float(np.square(g, dtype=np.float64).sum())


def _clip_to_norm(g, norm, clip_norm):
    """g * clip_norm / max(norm, clip_norm): unchanged when norm <= clip_norm. A NaN or infinite norm turns
    every entry into NaN (Keras' global_clipnorm does the same), so TerminateOnNaN sees it."""
    if not math.isfinite(norm):
        return np.full_like(g, np.nan)
    if norm <= clip_norm:
        return g
    return g * g.dtype.type(clip_norm / norm)


class Optimizer(Registered):
    """Base class of the optimizers (SGD, Adam, AdamW, RMSprop, Adagrad); Keras 3's arguments.

    learning_rate: float >= 0 or a schedules.LearningRateSchedule.
    weight_decay: None or float >= 0: decoupled decay, param -= learning_rate * weight_decay * param, before
        each update (skip variables with exclude_from_weight_decay).
    clipnorm / global_clipnorm / clipvalue: None or float > 0, at most one of them. clipnorm scales each
        gradient down to that L2 norm, global_clipnorm scales all of them by the same factor so that their
        joint norm is at most that, clipvalue clips each entry to [-clipvalue, clipvalue].
    name: a string (each subclass has Keras' default).
    """

    registry_kind = "optimizer"

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, **kwargs):
        where = type(self).__name__
        self._keras_only_arguments(where, kwargs)
        self.name = where.lower() if name is None else name
        self._learning_rate = self._learning_rate_value(where, learning_rate)
        self.weight_decay = None if weight_decay is None else hyperparameter(where, "weight_decay", weight_decay,
                                                                             ">= 0")
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        for key, value in clips.items():
            if value is not None:
                hyperparameter(where, key, value, "> 0")
        if sum(value is not None for value in clips.values()) > 1:
            raise ValueError(f"{where}: expected at most one of `clipnorm`, `clipvalue` and `global_clipnorm` (as "
                             f"in Keras 3). Received: clipnorm={clipnorm!r}, clipvalue={clipvalue!r}, "
                             f"global_clipnorm={global_clipnorm!r}")
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self._iterations = 0
        self._slots = {}                   # id(variable) -> (weak reference to it, {slot name: array})
        self._built_variables = None       # the list given to build(), used by apply(grads) without variables
        self._exclude_from_decay = []      # variables (compared by identity) that skip weight decay
        self._exclude_pattern = None       # regex over variable names that skip weight decay

    def _keras_only_arguments(self, where, kwargs):
        """Take Keras' arguments that engine does not implement out of kwargs; reject the rest."""
        if kwargs.pop("decay", None):      # Keras 2's learning-rate decay; Keras 3 also warns and ignores it
            warnings.warn(f"{where}: argument `decay` is no longer supported and is ignored. Use a "
                          "LearningRateSchedule (engine.optimizers.schedules) instead.", stacklevel=3)
        for key, default in _KERAS_DEFAULTS.items():
            value = kwargs.pop(key, default)
            inert = key in ("ema_momentum", "ema_overwrite_frequency")    # only read when use_ema=True
            if value != default and not inert:
                raise ValueError(f"{where}: `{key}` is not implemented in engine; only its default {default!r} is "
                                 f"accepted. Received: {key}={value!r}")
            setattr(self, key, value)
        if kwargs:
            received = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
            raise TypeError(f"{where}: unexpected keyword argument(s) {sorted(kwargs)}. Received: {received}")

    @staticmethod
    def _learning_rate_value(where, value):
        if isinstance(value, schedules.LearningRateSchedule):
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{where}: expected `learning_rate` to be a float or a LearningRateSchedule. "
                            f"Received: learning_rate={value!r}")
        return hyperparameter(where, "learning_rate", value, ">= 0")

    # ---- state the user reads
    @property
    def iterations(self):
        """How many updates have been applied (an int)."""
        return self._iterations

    @property
    def learning_rate(self):
        """The learning rate the next update uses, as a float: the schedule at `iterations`, if one is set."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self._iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        where = f"{type(self).__name__}.learning_rate"
        if isinstance(self._learning_rate, schedules.LearningRateSchedule) and \
                not isinstance(value, schedules.LearningRateSchedule):
            raise TypeError(f"{where}: this optimizer was created with a LearningRateSchedule, so its learning "
                            f"rate is not settable; create it with a float learning_rate instead. "
                            f"Received: learning_rate={value!r}")
        self._learning_rate = self._learning_rate_value(where, value)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Skip weight decay for the variables in var_list, and for those whose name matches (re.search)
        any string in var_names (var_names=['bias'] excludes every bias)."""
        self._exclude_from_decay = list(var_list or [])
        self._exclude_pattern = re.compile("|".join(var_names)) if var_names else None

    def _weight_decay_for(self, var):
        if not self.weight_decay:
            return 0.0
        if any(var is excluded for excluded in self._exclude_from_decay):
            return 0.0
        name = getattr(var, "name", None) or getattr(var, "_op", None)
        if self._exclude_pattern is not None and isinstance(name, str) and self._exclude_pattern.search(name):
            return 0.0
        return self.weight_decay

    # ---- what each optimizer defines
    def _slot_names(self):
        """The slots one variable needs, in the fixed order get_state writes them."""
        return ()

    def _slot_initial_value(self, slot_name):
        return 0.0

    def _update_step(self, kernels, param, grad, slots, learning_rate, weight_decay):
        """One fused kernel call: update param (and slots) in place with the clipped grad."""
        raise NotImplementedError(f"{type(self).__name__}: an Optimizer subclass must implement _update_step")

    # ---- slots
    def _known_slots(self, var):
        """The slots of var, or None if this optimizer has not seen var yet."""
        entry = self._slots.get(id(var))
        if entry is not None and entry[0]() is var:      # an id can be reused once its variable is gone
            return entry[1]
        return None

    def _track(self, var, slots):
        key = id(var)

        def forget(ref, key=key, table=self._slots):     # drop the slots when the variable is garbage collected
            if table.get(key, (None,))[0] is ref:
                del table[key]
        try:
            ref = weakref.ref(var, forget)
        except TypeError:                                # not weak-referenceable: keep it alive instead
            ref = lambda: var                            # noqa: E731
        self._slots[key] = (ref, slots)

    def _slots_for(self, var):
        slots = self._known_slots(var)
        if slots is None:
            param = var.data
            slots = {name: np.full(param.shape, self._slot_initial_value(name), dtype=param.dtype)
                     for name in self._slot_names()}
            self._track(var, slots)
        return slots

    def build(self, variables):
        """Create the slots of every variable now (apply() otherwise creates them on first sight), and
        remember the list so that apply(grads) may leave `variables` out."""
        where = f"{type(self).__name__}.build"
        variables = list(variables)
        for i, var in enumerate(variables):
            _param_array(where, var, i)
        for var in variables:
            self._slots_for(var)
        self._built_variables = variables

    # ---- the update
    def apply(self, grads, variables=None):
        """One update step. grads: a list aligned with variables, each an array (or Tensor) of its variable's
        shape, or None to leave that variable (and its weight decay) alone. Returns `iterations`."""
        where = f"{type(self).__name__}.apply"
        grads = list(grads)
        if variables is None:
            if self._built_variables is None:
                raise ValueError(f"{where}: expected `variables`, since the optimizer was not built on a list of "
                                 "variables. Call optimizer.apply(grads, variables) or optimizer.build(variables)")
            variables = self._built_variables
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{where}: expected one gradient per variable. "
                             f"Received: len(grads)={len(grads)}, len(variables)={len(variables)}")
        if not grads:                                    # nothing to train: a no-op, as in Keras
            return self._iterations

        todo_grads, todo_vars = [], []                   # check everything before the first write
        for i, (grad, var) in enumerate(zip(grads, variables)):
            param = _param_array(where, var, i)
            if grad is not None:
                todo_grads.append(_grad_array(where, grad, param, var, i))
                todo_vars.append(var)
        if not todo_vars:
            raise ValueError(f"{where}: no gradients provided for any variable (every grad is None). Did the "
                             f"loss depend on the variables, and did loss.backward() run? Received: "
                             f"{len(grads)} gradients, all None")

        learning_rate = self.learning_rate               # schedule(iterations): the same for every variable
        for grad, var in zip(self._clip_gradients(todo_grads), todo_vars):
            kernels = backend.kernels(var.data.dtype)    # the active backend ('ref' for float64 variables)
            self._update_step(kernels, var.data, grad, self._slots_for(var), learning_rate,
                              self._weight_decay_for(var))
        self._iterations += 1
        return self._iterations

    def apply_gradients(self, grads_and_vars):
        """apply() for an iterable of (grad, variable) pairs: opt.apply_gradients(zip(grads, variables)).
        Returns `iterations`."""
        pairs = list(grads_and_vars)
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"{type(self).__name__}.apply_gradients: expected (gradient, variable) pairs. "
                                f"Received: item {i} of type {type(pair).__name__}")
        return self.apply([grad for grad, _ in pairs], [var for _, var in pairs])

    def _clip_gradients(self, grads):
        """Clipped copies of grads (the caller's arrays are never written)."""
        if self.clipnorm is not None:
            clipped = [_clip_to_norm(g, math.sqrt(_squared_norm(g)), self.clipnorm) for g in grads]
        elif self.global_clipnorm is not None:
            norm = math.sqrt(sum(_squared_norm(g) for g in grads))
            clipped = [_clip_to_norm(g, norm, self.global_clipnorm) for g in grads]
        elif self.clipvalue is not None:
            clipped = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        else:
            return grads
        return [np.asarray(c) for c in clipped]          # NumPy gives scalars for 0-d results; kernels want arrays

    # ---- saving and resuming
    def get_state(self, variables):
        """(meta, arrays): everything needed to resume training bit for bit. arrays holds copies of the
        slots of each variable in `variables`, in that order, each variable's slots in _slot_names() order;
        a variable not updated yet has no slots and meta['has_slots'] says False for it. meta is
        JSON-able: class_name, iterations, learning_rate (None under a schedule), slot_names, has_slots."""
        names = list(self._slot_names())
        has_slots, arrays = [], []
        for var in variables:
            slots = self._known_slots(var)
            has_slots.append(slots is not None)
            if slots is not None:
                arrays.extend(slots[name].copy() for name in names)
        uses_schedule = isinstance(self._learning_rate, schedules.LearningRateSchedule)
        meta = {"class_name": type(self).__name__, "iterations": self._iterations,
                "learning_rate": None if uses_schedule else self._learning_rate,
                "slot_names": names, "has_slots": has_slots}
        return meta, arrays

    def set_state(self, variables, meta, arrays):
        """Restore what get_state(variables) returned: iterations, the learning rate (unless a schedule
        drives it) and the slots of each variable (copied). Checks everything first; raises ValueError on
        any mismatch and then changes nothing."""
        where = f"{type(self).__name__}.set_state"
        variables, arrays = list(variables), list(arrays)
        names = list(self._slot_names())
        if not isinstance(meta, dict) or not {"iterations", "slot_names", "has_slots"} <= set(meta):
            raise ValueError(f"{where}: expected the meta dict of get_state() (with iterations, slot_names, "
                             f"has_slots). Received: meta={meta!r}")
        if meta.get("class_name", type(self).__name__) != type(self).__name__:
            raise ValueError(f"{where}: expected the state of a {type(self).__name__} optimizer. "
                             f"Received: class_name={meta['class_name']!r}")
        if list(meta["slot_names"]) != names:
            raise ValueError(f"{where}: expected slots {names} (this optimizer's options). "
                             f"Received: slot_names={list(meta['slot_names'])}")
        has_slots = list(meta["has_slots"])
        if len(has_slots) != len(variables):
            raise ValueError(f"{where}: expected a state saved for {len(variables)} variables. "
                             f"Received: len(has_slots)={len(has_slots)}")
        expected = sum(bool(h) for h in has_slots) * len(names)
        if len(arrays) != expected:
            raise ValueError(f"{where}: expected {expected} slot arrays ({len(names)} per variable with slots). "
                             f"Received: len(arrays)={len(arrays)}")
        iterations = meta["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
            raise ValueError(f"{where}: expected iterations to be an int >= 0. Received: iterations={iterations!r}")
        learning_rate = meta.get("learning_rate")
        if learning_rate is not None:
            learning_rate = hyperparameter(where, "learning_rate", learning_rate, ">= 0")

        restored = []                                    # (variable, slots or None), committed after all checks
        source = iter(arrays)
        for i, (var, has) in enumerate(zip(variables, has_slots)):
            param = _param_array(where, var, i)
            if not has:
                restored.append((var, None))
                continue
            slots = {}
            for name in names:
                a = np.asarray(next(source))
                if a.shape != param.shape or a.dtype.kind != "f":
                    raise ValueError(f"{where}: expected slot '{name}' of variable {variable_name(var, i)} to be a "
                                     f"float array of the variable's shape {tuple(param.shape)}. "
                                     f"Received: shape={tuple(a.shape)}, dtype={a.dtype}")
                slots[name] = np.array(a, dtype=param.dtype, order="C", copy=True)
            restored.append((var, slots))

        for var, slots in restored:
            if slots is None:
                self._slots.pop(id(var), None)
            else:
                self._track(var, slots)
        self._iterations = int(iterations)
        if learning_rate is not None and not isinstance(self._learning_rate, schedules.LearningRateSchedule):
            self._learning_rate = learning_rate

    # ---- configuration
    def get_config(self):
        """The constructor arguments, Keras names: learning_rate is a float (the current value) or a
        schedule's {'class_name', 'config'}."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        else:
            learning_rate = self._learning_rate
        config = {"name": self.name, "learning_rate": learning_rate, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}
        config.update({key: getattr(self, key) for key in _KERAS_DEFAULTS})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new optimizer (without state) from get_config()'s dict."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate:g} " \
               f"iterations={self._iterations}>"

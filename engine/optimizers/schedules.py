"""Learning-rate schedules: Keras 3's `keras.optimizers.schedules`, in plain Python floats.

A schedule is a callable step -> learning rate. Give one to an optimizer as `learning_rate` and the
optimizer evaluates it at every update: update k (k = optimizer.iterations before the update, counting
from 0) uses schedule(k), as in Keras.

    ExponentialDecay        lr0 * decay_rate ** (step / decay_steps)          (floor of the exponent if staircase)
    InverseTimeDecay        lr0 / (1 + decay_rate * step / decay_steps)        (step / decay_steps floored if staircase)
    PiecewiseConstantDecay  values[i] while boundaries[i-1] < step <= boundaries[i]
    CosineDecay             optional linear warmup, then lr * ((1 - alpha) * 0.5 (1 + cos(pi t)) + alpha)

Keras computes schedules in the float dtype of the initial learning rate (float32); these compute in
Python floats (float64). The optimizer hands the value to a float32 kernel, so the two agree to float32
rounding.
"""
import math
import numbers

__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay", "CosineDecay",
           "serialize", "deserialize"]


def _real(where, name, value):
    """value as a Python int or float (JSON-able, echoed by get_config); TypeError unless it is a real
    number (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected `{name}` to be a number. Received: {name}={value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _non_negative(where, name, value):
    value = _real(where, name, value)
    if not value >= 0 or math.isinf(value):            # `not >=` also catches NaN
        raise ValueError(f"{where}: expected `{name}` to be a finite number >= 0. Received: {name}={value!r}")
    return value


def _positive(where, name, value):
    value = _real(where, name, value)
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{where}: expected `{name}` to be a finite number > 0. Received: {name}={value!r}")
    return value


def _step(where, step):
    """The optimizer step (an int, a NumPy integer or a float) as a float."""
    return float(_real(where, "step", step))


class LearningRateSchedule:
    """Base class: subclasses implement __call__(step) -> float and get_config() -> dict of constructor
    arguments; from_config(config) is cls(**config)."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__}: a LearningRateSchedule must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__}: a LearningRateSchedule must implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _DecaySchedule(LearningRateSchedule):
    """Shared by ExponentialDecay and InverseTimeDecay: the same arguments, p = step / decay_steps (floored
    with staircase=True), and a rule decay(p) that subclasses define."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        where = type(self).__name__
        self.initial_learning_rate = _non_negative(where, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive(where, "decay_steps", decay_steps)
        self.decay_rate = _non_negative(where, "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(type(self).__name__, step) / self.decay_steps
        return self.decay(math.floor(p) if self.staircase else p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_DecaySchedule):
    """lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps); with staircase=True the
    exponent is floor(step / decay_steps), so the rate drops in steps every `decay_steps` updates."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def decay(self, p):
        return self.initial_learning_rate * self.decay_rate ** p


class InverseTimeDecay(_DecaySchedule):
    """lr(step) = initial_learning_rate / (1 + decay_rate * step / decay_steps); with staircase=True,
    step / decay_steps is floored."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def decay(self, p):
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


class PiecewiseConstantDecay(LearningRateSchedule):
    """lr(step) = values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
    values[-1] once step > boundaries[-1]. boundaries: strictly increasing, one fewer than values."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        where = "PiecewiseConstantDecay"
        boundaries = [_real(where, "boundaries[i]", b) for b in boundaries]
        values = [_non_negative(where, "values[i]", v) for v in values]
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"{where}: expected one more value than boundaries. Received: boundaries={boundaries} "
                             f"(length {len(boundaries)}), values={values} (length {len(values)})")
        if any(lo >= hi for lo, hi in zip(boundaries, boundaries[1:])):
            raise ValueError(f"{where}: expected strictly increasing boundaries. Received: boundaries={boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        step = _step("PiecewiseConstantDecay", step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:                       # the boundary itself belongs to the interval below it
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay (SGDR without restarts), with an optional linear warmup first.

    Without warmup (warmup_target=None):
        t = min(step, decay_steps) / decay_steps
        lr(step) = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi t)) + alpha)
    With warmup: for step < warmup_steps the rate rises linearly from initial_learning_rate to
    warmup_target, lr = initial + (warmup_target - initial) * step / warmup_steps; after it the cosine
    above runs from warmup_target over step - warmup_steps. alpha is the final rate as a fraction."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        where = "CosineDecay"
        self.initial_learning_rate = _non_negative(where, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive(where, "decay_steps", decay_steps)
        self.alpha = _non_negative(where, "alpha", alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else _non_negative(where, "warmup_target", warmup_target)
        self.warmup_steps = _non_negative(where, "warmup_steps", warmup_steps)

    def _decay(self, step, from_lr):
        t = step / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return from_lr * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = _step("CosineDecay", step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * fraction
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule):
    """{'class_name': ..., 'config': ...}, the form Keras saves a schedule in."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"schedules.serialize: expected a LearningRateSchedule. "
                        f"Received: schedule={schedule!r}")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """The schedule described by {'class_name': ..., 'config': ...} (extra Keras keys such as 'module'
    are ignored)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"schedules.deserialize: expected a dict with 'class_name' and 'config'. "
                         f"Received: config={config!r}")
    name = config["class_name"]
    if name not in _SCHEDULES:
        raise ValueError(f"schedules.deserialize: expected a class_name in {sorted(_SCHEDULES)}. "
                         f"Received: class_name={name!r}")
    return _SCHEDULES[name].from_config(dict(config.get("config") or {}))

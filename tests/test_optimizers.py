"""Optimizers: the update kernels (every backend vs engine.ref, in place, bad arrays), the optimizer classes
vs an independent NumPy re-implementation of Keras 3's rules (clipping, weight decay, schedules), a
hand-written training loop, config / serialization / saved-state round trips, thread-count independence,
and bad input."""
import json
import math

import numpy as np
import pytest

import engine
from engine import optimizers, ref
from engine.optimizers import schedules

from checks import bits_equal, random_f32

# ------------------------------------------------------------------------------------------ 1. kernels

SIZES = [1, 7, 1000, 100003]             # one value, odd small, medium, large and prime (OpenMP split unevenly)

# Each case: the kernel, its slots (initial value, or None when the option leaves the slot out) and its
# hyperparameters. Together they cover every option of every kernel, and weight decay once per kernel.
KERNEL_CASES = {
    "sgd": ("sgd_update", {"velocity": None}, dict(lr=0.1)),
    "sgd_momentum": ("sgd_update", {"velocity": 0.0}, dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov_decay": ("sgd_update", {"velocity": 0.0}, dict(lr=0.1, momentum=0.9, nesterov=True,
                                                                 weight_decay=0.05)),
    "sgd_decay": ("sgd_update", {"velocity": None}, dict(lr=0.1, weight_decay=0.01)),
    "adam": ("adam_update", {"m": 0.0, "v": 0.0, "v_hat": None}, dict(lr=0.01, beta_1=0.9, beta_2=0.999,
                                                                        epsilon=1e-7)),
    "adam_amsgrad_decay": ("adam_update", {"m": 0.0, "v": 0.0, "v_hat": 0.0},       # 1 - beta exact in float32
                           dict(lr=0.01, beta_1=0.875, beta_2=0.9921875, epsilon=1e-6, weight_decay=0.004)),
    "rmsprop": ("rmsprop_update", {"velocity": 0.0, "average_grad": None, "momentum_buf": None},
                dict(lr=0.01, rho=0.9, momentum=0.0, epsilon=1e-7)),
    "rmsprop_centered": ("rmsprop_update", {"velocity": 0.0, "average_grad": 0.0, "momentum_buf": None},
                         dict(lr=0.01, rho=0.9, momentum=0.0, epsilon=1e-7)),
    "rmsprop_momentum_decay": ("rmsprop_update", {"velocity": 0.0, "average_grad": None, "momentum_buf": 0.0},
                               dict(lr=0.01, rho=0.8, momentum=0.5, epsilon=1e-7, weight_decay=0.1)),
    "rmsprop_centered_momentum": ("rmsprop_update", {"velocity": 0.0, "average_grad": 0.0, "momentum_buf": 0.0},
                                  dict(lr=0.01, rho=0.9, momentum=0.9, epsilon=1e-7)),
    "adagrad": ("adagrad_update", {"accumulator": 0.1}, dict(lr=0.1, epsilon=1e-7)),
    "adagrad_decay": ("adagrad_update", {"accumulator": 0.0}, dict(lr=0.1, epsilon=1e-7, weight_decay=0.2)),
}


def new_slots(slot_spec, n):
    return {name: None if init is None else np.full(n, init, np.float32) for name, init in slot_spec.items()}


def run_kernel(kernels, case, n, steps=3, seed=0):
    """`steps` updates in a row with fresh gradients; returns the parameter and the slots."""
    kernel, slot_spec, hyper = KERNEL_CASES[case]
    param = random_f32(n, seed=seed)
    slots = new_slots(slot_spec, n)
    for step in range(1, steps + 1):
        grad = random_f32(n, seed=seed + step)
        extra = {"step": step} if kernel == "adam_update" else {}
        getattr(kernels, kernel)(param=param, grad=grad, **slots, **hyper, **extra)
    return param, slots


def assert_close_to_ref(got, want, what):
    """rtol 1e-6 relative to each value, with an absolute floor of 1e-6 times the largest magnitude (for
    values that cross zero)."""
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale + 1e-30, err_msg=what)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_update_kernel_matches_ref(backend, case, n):
    param, slots = run_kernel(backend, case, n)
    want_param, want_slots = run_kernel(ref, case, n)
    assert_close_to_ref(param, want_param, "param")
    for name, slot in slots.items():
        if slot is not None:
            assert_close_to_ref(slot, want_slots[name], name)


@pytest.mark.parametrize("case", ["sgd_momentum", "adam_amsgrad_decay", "rmsprop_centered_momentum", "adagrad"])
def test_update_kernel_writes_into_the_callers_arrays(backend, case):
    kernel, slot_spec, hyper = KERNEL_CASES[case]
    param, grad = random_f32(7), random_f32(7, seed=1)
    slots = new_slots(slot_spec, 7)
    before = {"param": param.copy(), "grad": grad.copy(), **{k: s.copy() for k, s in slots.items() if s is not None}}
    extra = {"step": 1} if kernel == "adam_update" else {}
    assert getattr(backend, kernel)(param=param, grad=grad, **slots, **hyper, **extra) is None   # no new arrays
    assert not np.array_equal(param, before["param"]) and bits_equal(grad, before["grad"])
    for name, slot in slots.items():
        if slot is not None:
            assert not np.array_equal(slot, before[name]), f"{name} was not updated in place"


ONE_CASE_PER_KERNEL = {"sgd_update": "sgd_momentum", "adam_update": "adam", "rmsprop_update": "rmsprop",
                       "adagrad_update": "adagrad"}


def _read_only():
    a = np.zeros(7, np.float32)
    a.setflags(write=False)
    return a


# Arrays the compiled kernels must refuse, since an update written into a converted copy would be lost.
BAD_IN_PLACE = {"non-contiguous": (lambda: np.zeros(14, np.float32)[::2], "to be C-contiguous"),
                "float64": (lambda: np.zeros(7, np.float64), r"to be a float32 array\. Received: \w+\.dtype=float64"),
                "read-only": (_read_only, "to be writeable")}


@pytest.mark.parametrize("bad", sorted(BAD_IN_PLACE))
@pytest.mark.parametrize("target", ["param", "slot"])
@pytest.mark.parametrize("kernel", sorted(ONE_CASE_PER_KERNEL))
def test_cpu_update_kernel_rejects_arrays_it_cannot_update(kernel, target, bad):
    _, slot_spec, hyper = KERNEL_CASES[ONE_CASE_PER_KERNEL[kernel]]
    make_bad, message = BAD_IN_PLACE[bad]
    param, slots = np.zeros(7, np.float32), new_slots(slot_spec, 7)
    name = "param" if target == "param" else next(iter(slot_spec))
    if target == "param":
        param = make_bad()
    else:
        slots[name] = make_bad()
    extra = {"step": 1} if kernel == "adam_update" else {}
    cpu_kernel = getattr(engine.backend.get("cpu"), kernel)
    with pytest.raises(TypeError, match=rf"{kernel}: expected {name} {message}"):
        cpu_kernel(param=param, grad=np.zeros(7, np.float32), **slots, **hyper, **extra)


@pytest.mark.parametrize("kernel", sorted(ONE_CASE_PER_KERNEL))
def test_update_kernel_rejects_a_slot_of_the_wrong_shape(backend, kernel):
    _, slot_spec, hyper = KERNEL_CASES[ONE_CASE_PER_KERNEL[kernel]]
    slots = new_slots(slot_spec, 7)
    first_slot = next(iter(slot_spec))
    slots[first_slot] = np.zeros(6, np.float32)
    extra = {"step": 1} if kernel == "adam_update" else {}
    with pytest.raises(ValueError, match=rf"{kernel}: expected {first_slot} of the parameter's shape \(7,\)\. "
                                         rf"Received: {first_slot}.shape=\(6,\)"):
        getattr(backend, kernel)(param=np.zeros(7, np.float32), grad=np.zeros(7, np.float32), **slots, **hyper,
                                 **extra)


def test_adam_update_rejects_step_zero(backend):
    z = [np.zeros(3, np.float32) for _ in range(4)]
    with pytest.raises(ValueError, match=r"adam_update: expected step >= 1 \(updates count from 1\)\. "
                                         r"Received: step=0"):
        backend.adam_update(z[0], z[1], z[2], z[3], None, 0.1, 0.9, 0.999, 1e-7, 0)


# ------------------------------------------------------------------------------------------ 2. vs Keras' rules
# An independent float64 NumPy transcription of Keras 3 (keras/src/optimizers/*.py): clipping in
# BaseOptimizer._clip_gradients, decay in _apply_weight_decay, then each optimizer's update_step.

def keras_clip(grads, clipnorm=None, clipvalue=None, global_clipnorm=None, **_):
    if clipnorm:
        return [g * clipnorm / max(np.sqrt(np.sum(g * g)), clipnorm) for g in grads]
    if global_clipnorm:
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        return [g * global_clipnorm * min(1.0 / norm, 1.0 / global_clipnorm) for g in grads]
    if clipvalue:
        return [np.clip(g, -clipvalue, clipvalue) for g in grads]
    return grads


def keras_update(kind, p, g, s, lr, t, hp):
    """One Keras update of parameter p (float64, in place) with gradient g; s: this variable's slots."""
    p -= p * (hp.get("weight_decay") or 0.0) * lr
    if kind == "SGD":
        mom = hp.get("momentum", 0.0)
        if mom == 0:
            p -= g * lr
            return
        s.setdefault("m", np.zeros_like(p))
        s["m"] = s["m"] * mom - g * lr
        p += s["m"] * mom - g * lr if hp.get("nesterov") else s["m"]
    elif kind in ("Adam", "AdamW"):
        b1, b2, eps = hp.get("beta_1", 0.9), hp.get("beta_2", 0.999), hp.get("epsilon", 1e-7)
        m, v = s.setdefault("m", np.zeros_like(p)), s.setdefault("v", np.zeros_like(p))
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        if hp.get("amsgrad"):
            s["v_hat"] = np.maximum(s.get("v_hat", np.zeros_like(p)), v)
            v = s["v_hat"]
        p -= m * alpha / (np.sqrt(v) + eps)
    elif kind == "RMSprop":
        rho, mom, eps = hp.get("rho", 0.9), hp.get("momentum", 0.0), hp.get("epsilon", 1e-7)
        s["vel"] = rho * s.get("vel", np.zeros_like(p)) + (1 - rho) * g * g
        denominator = s["vel"] + eps
        if hp.get("centered"):
            s["avg"] = rho * s.get("avg", np.zeros_like(p)) + (1 - rho) * g
            denominator = s["vel"] - s["avg"] ** 2 + eps
        increment = lr * g / np.sqrt(denominator)
        if mom > 0:
            s["mom"] = mom * s.get("mom", np.zeros_like(p)) + increment
            p -= s["mom"]
        else:
            p -= increment
    elif kind == "Adagrad":
        acc = s.setdefault("acc", np.full_like(p, hp.get("initial_accumulator_value", 0.1)))
        acc += g * g
        p -= lr * g / np.sqrt(acc + hp.get("epsilon", 1e-7))


KERAS_DEFAULT_LR = {"SGD": 0.01, "Adam": 0.001, "AdamW": 0.001, "RMSprop": 0.001, "Adagrad": 0.001}

# (class, constructor arguments, learning rate of update k as a function of k, written out by hand)
OPTIMIZER_CASES = {
    "sgd": ("SGD", {}, None),
    "sgd_momentum_clipnorm": ("SGD", dict(learning_rate=0.1, momentum=0.9, clipnorm=0.5), None),
    "sgd_nesterov_decay": ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.05), None),
    "sgd_exponential_decay": ("SGD", dict(learning_rate=schedules.ExponentialDecay(0.1, 2, 0.5), momentum=0.5),
                              lambda k: 0.1 * 0.5 ** (k / 2)),
    "adam": ("Adam", {}, None),
    "adam_amsgrad_clipnorm": ("Adam", dict(learning_rate=0.05, amsgrad=True, clipnorm=0.5), None),
    "adam_staircase_decay": ("Adam", dict(learning_rate=schedules.ExponentialDecay(0.05, 2, 0.5, staircase=True),
                                          weight_decay=0.1), lambda k: 0.05 * 0.5 ** (k // 2)),
    "adamw": ("AdamW", dict(learning_rate=0.05), None),
    "adamw_global_clipnorm": ("AdamW", dict(learning_rate=0.05, weight_decay=0.5, global_clipnorm=1.0), None),
    "rmsprop": ("RMSprop", {}, None),
    "rmsprop_centered_momentum_clipvalue": ("RMSprop", dict(learning_rate=0.01, centered=True, momentum=0.5,
                                                            clipvalue=0.3), None),
    "rmsprop_momentum_decay": ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.9, weight_decay=0.1), None),
    "adagrad": ("Adagrad", {}, None),
    "adagrad_clipvalue_decay": ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.5, clipvalue=0.3,
                                                weight_decay=0.1), None),
}

VAR_SHAPES = [(3, 4), (5,), ()]           # a matrix, a vector and a scalar weight


def named(tensor, name):
    """Give a tensor a layer path, as Layer.add_weight does (.name; older Tensors keep it in ._op)."""
    try:
        tensor.name = name
    except AttributeError:
        tensor._op = name
    return tensor


def random_grads(step, scale=2.0):
    """Gradients large enough that every clipping option is active."""
    return [random_f32(*shape, seed=100 * step + i, scale=scale) for i, shape in enumerate(VAR_SHAPES)]


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_optimizer_matches_keras_rule(engine_backend, case):
    kind, kwargs, lr_of_step = OPTIMIZER_CASES[case]
    opt = getattr(optimizers, kind)(**kwargs)
    hp = {"weight_decay": 0.004} if kind == "AdamW" else {}
    hp.update({k: v for k, v in kwargs.items() if k != "learning_rate"})
    start = [random_f32(*shape, seed=i) for i, shape in enumerate(VAR_SHAPES)]
    variables = [engine.Tensor(a, requires_grad=True) for a in start]
    want = [np.array(a, dtype=np.float64) for a in start]          # arrays, also for the 0-d weight
    slots = [{} for _ in start]
    for k in range(4):
        grads = random_grads(k)
        kept = [g.copy() for g in grads]
        assert opt.apply_gradients(zip([engine.Tensor(g) for g in grads], variables)) == k + 1
        assert all(bits_equal(g, c) for g, c in zip(grads, kept)), "the caller's gradients were modified"
        lr = lr_of_step(k) if lr_of_step else kwargs.get("learning_rate", KERAS_DEFAULT_LR[kind])
        for p, g, s in zip(want, keras_clip([g.astype(np.float64) for g in grads], **hp), slots):
            keras_update(kind, p, g, s, lr, k + 1, hp)
        for i, (var, p) in enumerate(zip(variables, want)):
            np.testing.assert_allclose(var.data, p, rtol=2e-5, atol=2e-6, err_msg=f"variable {i} after update {k}")
    assert opt.iterations == 4


def test_none_gradient_skips_the_variable_and_its_decay():
    opt = optimizers.Adam(learning_rate=0.1, weight_decay=0.5)
    a, b = engine.Tensor(np.ones(3), requires_grad=True), engine.Tensor(np.ones(2), requires_grad=True)
    opt.apply([np.ones(3, np.float32), None], [a, b])
    assert np.all(a.data < 1) and np.array_equal(b.data, np.ones(2, np.float32))
    meta, arrays = opt.get_state([a, b])
    assert meta["has_slots"] == [True, False] and len(arrays) == 2


def test_weight_decay_exclusion_by_variable_and_by_name():
    opt = optimizers.SGD(learning_rate=0.1, weight_decay=0.5)
    a, b, c = (engine.Tensor(np.ones(2), requires_grad=True) for _ in range(3))
    named(c, "dense/bias")
    opt.exclude_from_weight_decay(var_list=[a], var_names=["bias"])
    opt.apply([np.zeros(2, np.float32)] * 3, [a, b, c])
    assert np.array_equal(a.data, np.ones(2, np.float32)) and np.array_equal(c.data, np.ones(2, np.float32))
    np.testing.assert_allclose(b.data, 1 - 0.1 * 0.5)


def test_learning_rate_follows_the_schedule_and_can_be_set():
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 1, 0.5))
    v = engine.Tensor(np.zeros(1), requires_grad=True)
    seen = []
    for _ in range(3):
        seen.append(opt.learning_rate)
        opt.apply([np.ones(1, np.float32)], [v])
    assert seen == [0.1, 0.05, 0.025]
    np.testing.assert_allclose(v.data, [-(0.1 + 0.05 + 0.025)], rtol=1e-6)
    with pytest.raises(TypeError, match="created with a LearningRateSchedule, so its learning rate is not settable"):
        opt.learning_rate = 0.01
    fixed = optimizers.Adam()
    fixed.learning_rate = 0.5                # what ReduceLROnPlateau does
    assert fixed.learning_rate == 0.5 and fixed.get_config()["learning_rate"] == 0.5


def test_nan_gradient_is_not_an_error():
    opt = optimizers.Adam(clipnorm=1.0)
    v = engine.Tensor(np.zeros(3), requires_grad=True)
    opt.apply([np.array([np.nan, 0, 1], np.float32)], [v])
    assert np.isnan(v.data).all() and opt.iterations == 1    # TerminateOnNaN's job to stop training


def test_float64_variables_run_on_the_reference_kernels():
    opt = optimizers.Adam(learning_rate=0.1)
    v = engine.Tensor(np.ones(3), requires_grad=True, dtype="float64")
    with engine.trace() as calls:
        opt.apply([np.ones(3)], [v])
    assert calls == ["ref.adam_update"] and v.dtype == np.float64
    alpha = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)         # first Adam step: m = 0.1, v = 0.001
    np.testing.assert_allclose(v.data, 1 - alpha * 0.1 / (np.sqrt(0.001) + 1e-7), rtol=1e-12)


@pytest.mark.parametrize("name, schedule, expected", [
    ("exponential", schedules.ExponentialDecay(1.0, 10, 0.5), {0: 1.0, 5: 0.5 ** 0.5, 20: 0.25}),
    ("exponential_staircase", schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True), {9: 1.0, 10: 0.5, 25: 0.25}),
    ("inverse_time", schedules.InverseTimeDecay(1.0, 10, 0.5), {0: 1.0, 5: 1 / 1.25, 20: 0.5}),
    ("inverse_time_staircase", schedules.InverseTimeDecay(1.0, 10, 0.5, staircase=True), {9: 1.0, 10: 1 / 1.5}),
    ("piecewise", schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]),
     {0: 1.0, 10: 1.0, 11: 0.5, 20: 0.5, 21: 0.1}),
    ("cosine", schedules.CosineDecay(1.0, 10, alpha=0.1), {0: 1.0, 5: 0.55, 10: 0.1, 50: 0.1}),
    ("cosine_warmup", schedules.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4),
     {0: 0.0, 2: 0.5, 4: 1.0, 9: 0.5, 14: 0.0, 99: 0.0}),
])
def test_schedules_follow_keras_formulas(name, schedule, expected):
    for step, lr in expected.items():
        assert math.isclose(schedule(step), lr, rel_tol=1e-12, abs_tol=1e-15), f"{name} at step {step}"
    again = schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule))))
    assert type(again) is type(schedule) and again.get_config() == schedule.get_config()


# ------------------------------------------------------------------------------------------ 3. a training loop

TRAINING_CASES = [   # optimizer, steps, loss to beat; the loss starts near 6.7 and its noise floor is 1e-4
    (lambda: optimizers.SGD(learning_rate=0.1), 100, 1e-2),
    (lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True), 100, 1e-2),
    (lambda: optimizers.Adam(learning_rate=0.1), 100, 1e-2),
    (lambda: optimizers.AdamW(learning_rate=0.1), 100, 1e-2),
    (lambda: optimizers.RMSprop(learning_rate=0.05), 100, 1e-2),
    (lambda: optimizers.RMSprop(learning_rate=0.02, momentum=0.5, centered=True), 100, 1e-2),
    (lambda: optimizers.Adagrad(learning_rate=0.5), 100, 1e-2),
]


@pytest.mark.parametrize("make, steps, target", TRAINING_CASES,
                         ids=["sgd", "sgd_nesterov", "adam", "adamw", "rmsprop", "rmsprop_centered", "adagrad"])
def test_hand_written_loop_fits_a_linear_regression(make, steps, target):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x @ np.array([[1.5], [-2.0], [0.5]], np.float32) + 0.3 + 0.01 * rng.standard_normal((64, 1)).astype(np.float32)
    X, Y = engine.tensor(x), engine.tensor(y)
    w = engine.Tensor(np.zeros((3, 1)), requires_grad=True)
    b = engine.Tensor(np.zeros(1), requires_grad=True)
    opt = make()
    for _ in range(steps):
        loss = ((X @ w + b - Y) ** 2).mean()
        loss.backward()
        opt.apply_gradients(zip([w.grad, b.grad], [w, b]))
        w.grad = b.grad = None
    final = ((X @ w + b - Y) ** 2).mean().item()
    assert final < target, f"{type(opt).__name__}: loss {final:.3g} after {steps} steps (want < {target})"


# ------------------------------------------------------------------------------------------ 4. config, state, threads

CONFIG_CASES = [
    optimizers.SGD(learning_rate=0.2, momentum=0.5, nesterov=True, clipnorm=1.0, name="my_sgd"),
    optimizers.Adam(learning_rate=schedules.CosineDecay(0.1, 100, alpha=0.01), beta_1=0.8, amsgrad=True,
                    global_clipnorm=2.0),
    optimizers.AdamW(weight_decay=0.01, epsilon=1e-6),
    optimizers.RMSprop(rho=0.8, momentum=0.3, centered=True, clipvalue=0.5),
    optimizers.Adagrad(learning_rate=schedules.PiecewiseConstantDecay([5], [0.1, 0.01]),
                       initial_accumulator_value=0.2, weight_decay=0.1),
]


@pytest.mark.parametrize("opt", CONFIG_CASES, ids=lambda o: type(o).__name__)
def test_config_round_trips(opt):
    config = opt.get_config()
    assert json.loads(json.dumps(config)) == config          # JSON-able, as model.save writes it
    again = type(opt).from_config(config)
    assert type(again) is type(opt) and again.get_config() == config
    through = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(opt))))
    assert type(through) is type(opt) and through.get_config() == config
    assert optimizers.get(optimizers.serialize(opt)).get_config() == config


def test_get_accepts_names_in_any_case_configs_and_instances():
    for name, cls in [("sgd", optimizers.SGD), ("SGD", optimizers.SGD), ("Adam", optimizers.Adam),
                      ("adamw", optimizers.AdamW), ("RMSProp", optimizers.RMSprop), ("ADAGRAD", optimizers.Adagrad)]:
        assert type(optimizers.get(name)) is cls
    opt = optimizers.Adam()
    assert optimizers.get(opt) is opt
    assert optimizers.get({"class_name": "sgd", "config": {"learning_rate": 0.5}}).learning_rate == 0.5
    defaults = optimizers.SGD().get_config()
    assert defaults["learning_rate"] == 0.01 and defaults["momentum"] == 0.0 and defaults["name"] == "SGD"
    assert optimizers.AdamW().get_config()["weight_decay"] == 0.004


def _train(opt, variables, steps, first_step=0):
    for k in range(first_step, first_step + steps):
        grads = random_grads(k, scale=1.0)
        if k == 0:
            grads[2] = None                  # the scalar gets no gradient at first: no slots yet
        opt.apply(grads, variables)


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.05, 2, 0.5), amsgrad=True, weight_decay=0.1),
    lambda: optimizers.RMSprop(centered=True, momentum=0.5, global_clipnorm=1.0),
    lambda: optimizers.Adagrad(learning_rate=0.1, clipvalue=0.5),
], ids=["sgd", "adam", "rmsprop", "adagrad"])
def test_saved_state_resumes_bit_for_bit(make):
    variables = [engine.Tensor(random_f32(*shape, seed=i), requires_grad=True) for i, shape in enumerate(VAR_SHAPES)]
    opt = make()
    _train(opt, variables, 1)
    meta, arrays = opt.get_state(variables)
    assert json.loads(json.dumps(meta)) == meta and meta["iterations"] == 1
    assert meta["has_slots"] == [True, True, False] and len(arrays) == 2 * len(meta["slot_names"])
    _train(opt, variables, 2, first_step=1)

    meta, arrays = opt.get_state(variables)
    copies = [engine.Tensor(v.data, requires_grad=True) for v in variables]
    resumed = type(opt).from_config(opt.get_config())
    resumed.set_state(copies, meta, arrays)
    arrays[0][...] = 123.0                   # set_state copied the arrays: changing them now has no effect
    assert resumed.iterations == 3 and resumed.learning_rate == opt.learning_rate
    _train(opt, variables, 3, first_step=3)
    _train(resumed, copies, 3, first_step=3)
    for v, c in zip(variables, copies):
        assert bits_equal(v.data, c.data)
    assert all(bits_equal(a, b) for a, b in zip(opt.get_state(variables)[1], resumed.get_state(copies)[1]))


def test_set_state_restores_a_learning_rate_changed_during_training():
    opt, v = optimizers.SGD(learning_rate=0.1), engine.Tensor(np.zeros(2), requires_grad=True)
    opt.learning_rate = 0.025
    meta, arrays = opt.get_state([v])
    fresh = optimizers.SGD(learning_rate=0.1)
    fresh.set_state([v], meta, arrays)
    assert fresh.learning_rate == 0.025


def test_set_state_rejects_mismatches():
    variables = [engine.Tensor(np.zeros((2, 3)), requires_grad=True), engine.Tensor(np.zeros(4), requires_grad=True)]
    opt = optimizers.Adam()
    opt.apply([np.ones((2, 3), np.float32), np.ones(4, np.float32)], variables)
    meta, arrays = opt.get_state(variables)
    fresh = optimizers.Adam()
    with pytest.raises(ValueError, match=r"Adam.set_state: expected 4 slot arrays .* Received: len\(arrays\)=3"):
        fresh.set_state(variables, meta, arrays[:3])
    with pytest.raises(ValueError, match=r"Adam.set_state: expected a state saved for 1 variables\. "
                                         r"Received: len\(has_slots\)=2"):
        fresh.set_state(variables[:1], meta, arrays)
    with pytest.raises(ValueError, match=r"expected slot 'v' of variable at index 0 to be a float array of the "
                                         r"variable's shape \(2, 3\)\. Received: shape=\(3, 2\)"):
        fresh.set_state(variables, meta, [arrays[0], arrays[1].reshape(3, 2)] + arrays[2:])
    with pytest.raises(ValueError, match=r"Adam.set_state: expected slots \['m', 'v', 'v_hat'\]"):
        optimizers.Adam(amsgrad=True).set_state(variables, meta, arrays)
    with pytest.raises(ValueError, match=r"RMSprop.set_state: expected the state of a RMSprop optimizer\. "
                                         r"Received: class_name='Adam'"):
        optimizers.RMSprop().set_state(variables, meta, arrays)
    assert fresh.iterations == 0 and fresh.get_state(variables)[0]["has_slots"] == [False, False]   # unchanged


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: optimizers.Adam(amsgrad=True, weight_decay=0.01),
    lambda: optimizers.RMSprop(centered=True, momentum=0.5),
    lambda: optimizers.Adagrad(weight_decay=0.01),
], ids=["sgd", "adam", "rmsprop", "adagrad"])
def test_one_and_two_threads_give_the_same_bits(threads, simd_path, make):
    results = []
    for count in (1, 2):
        threads(count)
        with engine.use_backend("cpu"):
            v = engine.Tensor(random_f32(100003), requires_grad=True)
            opt = make()
            for k in range(3):
                opt.apply([random_f32(100003, seed=k + 1)], [v])
        results.append(v.data)
    assert bits_equal(results[0], results[1])


# ------------------------------------------------------------------------------------------ 5. bad input

def test_bad_names_and_hyperparameters():
    with pytest.raises(ValueError, match=r"optimizers.get: expected one of \['adagrad', 'adam', "
                                         r"'adamw', 'rmsprop', 'sgd'\] \(any case\).* Received: identifier='adamax'"):
        optimizers.get("adamax")
    with pytest.raises(ValueError, match=r"optimizers.deserialize: expected one of .* Received: class_name='Foo'"):
        optimizers.deserialize({"class_name": "Foo", "config": {}})
    with pytest.raises(ValueError, match=r"SGD: expected `learning_rate` >= 0 and finite\. "
                                         r"Received: learning_rate=-0.1"):
        optimizers.SGD(learning_rate=-0.1)
    with pytest.raises(TypeError, match=r"Adam: expected `learning_rate` to be a float or a LearningRateSchedule"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match=r"Adam: expected `clipnorm` > 0 and finite\. Received: clipnorm=0"):
        optimizers.Adam(clipnorm=0)
    with pytest.raises(ValueError, match=r"Adam: expected `clipvalue` > 0 and finite\. Received: clipvalue=-1"):
        optimizers.Adam(clipvalue=-1)
    with pytest.raises(ValueError, match=r"SGD: expected at most one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(TypeError, match=r"Adam: unexpected keyword argument\(s\) \['lr'\]\. Received: lr=0.1"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(ValueError, match=r"Adam: `use_ema` is not implemented in engine"):
        optimizers.Adam(use_ema=True)
    with pytest.raises(ValueError, match=r"SGD: expected `momentum` in \[0, 1\]\. Received: momentum=1.5"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"Adam: expected `beta_1` in \[0, 1\)\. Received: beta_1=1.0"):
        optimizers.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match=r"RMSprop: expected `rho` in \[0, 1\)\. Received: rho=nan"):
        optimizers.RMSprop(rho=float("nan"))
    with pytest.raises(ValueError, match=r"Adagrad: expected `epsilon` >= 0 and finite\. Received: epsilon=-1e-07"):
        optimizers.Adagrad(epsilon=-1e-7)
    with pytest.raises(ValueError, match=r"AdamW: expected `weight_decay` to be a float >= 0"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(TypeError, match=r"RMSprop: expected `centered` to be True or False\. Received: centered='yes'"):
        optimizers.RMSprop(centered="yes")
    with pytest.raises(ValueError, match=r"ExponentialDecay: expected `decay_steps` to be a finite number > 0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match=r"PiecewiseConstantDecay: expected one more value than boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.01])


def test_bad_gradients_and_variables():
    a, b = engine.Tensor(np.zeros((2, 3)), requires_grad=True), engine.Tensor(np.zeros(4), requires_grad=True)
    named(b, "dense/bias")
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match=r"Adam.apply: expected one gradient per variable\. "
                                         r"Received: len\(grads\)=1, len\(variables\)=2"):
        opt.apply([np.zeros((2, 3), np.float32)], [a, b])
    with pytest.raises(ValueError, match=r"Adam.apply: expected the gradient of variable 'dense/bias' to have the "
                                         r"variable's shape \(4,\)\. Received: grad.shape=\(3,\)"):
        opt.apply_gradients([(np.ones((2, 3), np.float32), a), (np.ones(3, np.float32), b)])
    with pytest.raises(ValueError, match=r"expected the gradient of variable at index 0 to have the variable's shape"):
        opt.apply([np.zeros((3, 2), np.float32), None], [a, b])
    assert opt.iterations == 0 and np.all(a.data == 0)        # nothing was half-applied
    with pytest.raises(ValueError, match=r"Adam.apply: no gradients provided for any variable"):
        opt.apply([None, None], [a, b])
    with pytest.raises(TypeError, match=r"Adam.apply: expected each variable to be a Tensor holding a float32 array"):
        opt.apply([np.zeros(3, np.float32)], [np.zeros(3, np.float32)])
    with pytest.raises(TypeError, match=r"Adam.apply_gradients: expected \(gradient, variable\) pairs"):
        opt.apply_gradients([np.zeros(3, np.float32)])
    assert opt.apply([], []) == 0                             # no variables: nothing to do, as in Keras

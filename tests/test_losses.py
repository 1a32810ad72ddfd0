"""Losses: every loss (by Keras name, alias and class) vs a float64 NumPy formula, the reductions and sample
weights, label rank handling, the lecture's MSE table, numerical stability at logits of +-1e4, the fused
cross-entropy on a softmax output, gradients vs float64 central differences, and bad input."""
import json

import numpy as np
import pytest

import engine
from engine import losses, ops

EPS = 1e-7                                   # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]

# ------------------------------------------------------------------------------------------ NumPy formulas
# Each takes float64 arrays (y_true, y_pred) of one shape (sparse: labels (N,)) and returns one value per sample.


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_mse(t, p):
    return np.mean((p - t) ** 2, axis=-1)


def np_mae(t, p):
    return np.mean(np.abs(p - t), axis=-1)


def np_huber(t, p, delta=1.0):
    e = np.abs(p - t)
    return np.mean(np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2), axis=-1)


def np_bce(t, p, from_logits=False, label_smoothing=0.0):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:                          # the stable form of -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)))
        values = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
    else:
        q = np.clip(p, EPS, 1 - EPS)
        values = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    return np.mean(values, axis=-1)


def np_cce(t, p, from_logits=False, label_smoothing=0.0):
    t = t * (1 - label_smoothing) + label_smoothing / p.shape[-1]
    if from_logits:
        return -np.sum(t * np_log_softmax(p), axis=-1)
    q = np.clip(p / p.sum(axis=-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(t * np.log(q), axis=-1)


def np_scce(labels, p, from_logits=False):
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    logp = np_log_softmax(p) if from_logits else np.log(np.clip(p, EPS, 1 - EPS))
    return -logp[np.arange(len(labels)), labels]


def np_softmax(z):
    return np.exp(np_log_softmax(z))


# ------------------------------------------------------------------------------------------ data

RNG = np.random.default_rng(0)
N, C = 6, 4
REG_TRUE = RNG.standard_normal((N, 3))
REG_PRED = REG_TRUE + RNG.standard_normal((N, 3)) * 1.5          # errors on both sides of the Huber delta
BIN_TRUE = (RNG.random((N, 2)) > 0.5).astype(np.float64)
BIN_PROB = RNG.uniform(0.05, 0.95, (N, 2))
BIN_LOGIT = RNG.standard_normal((N, 2)) * 2
LABELS = np.array([0, 3, 1, 2, 3, 0])
ONE_HOT = np.eye(C)[LABELS]
CAT_LOGIT = RNG.standard_normal((N, C)) * 2
CAT_PROB = np_softmax(RNG.standard_normal((N, C)))                # plain probabilities (no remembered logits)

# name -> (loss object, y_true, y_pred, NumPy per-sample formula)
CASES = {
    "mse": (lambda: losses.get("mse"), REG_TRUE, REG_PRED, np_mse),
    "mean_squared_error": (lambda: losses.get("mean_squared_error"), REG_TRUE, REG_PRED, np_mse),
    "MeanSquaredError": (lambda: losses.MeanSquaredError(), REG_TRUE, REG_PRED, np_mse),
    "mae": (lambda: losses.get("mae"), REG_TRUE, REG_PRED, np_mae),
    "mean_absolute_error": (lambda: losses.get("mean_absolute_error"), REG_TRUE, REG_PRED, np_mae),
    "MeanAbsoluteError": (lambda: losses.MeanAbsoluteError(), REG_TRUE, REG_PRED, np_mae),
    "huber": (lambda: losses.get("huber"), REG_TRUE, REG_PRED, np_huber),
    "Huber_delta_0.5": (lambda: losses.Huber(delta=0.5), REG_TRUE, REG_PRED, lambda t, p: np_huber(t, p, 0.5)),
    "Huber_delta_2": (lambda: losses.Huber(delta=2.0), REG_TRUE, REG_PRED, lambda t, p: np_huber(t, p, 2.0)),
    "binary_crossentropy": (lambda: losses.get("binary_crossentropy"), BIN_TRUE, BIN_PROB, np_bce),
    "BCE_probs_smoothing": (lambda: losses.BinaryCrossentropy(label_smoothing=0.2), BIN_TRUE, BIN_PROB,
                            lambda t, p: np_bce(t, p, label_smoothing=0.2)),
    "BCE_logits": (lambda: losses.BinaryCrossentropy(from_logits=True), BIN_TRUE, BIN_LOGIT,
                   lambda t, p: np_bce(t, p, from_logits=True)),
    "BCE_logits_smoothing": (lambda: losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), BIN_TRUE,
                             BIN_LOGIT, lambda t, p: np_bce(t, p, True, 0.1)),
    "categorical_crossentropy": (lambda: losses.get("categorical_crossentropy"), ONE_HOT, CAT_PROB, np_cce),
    "CCE_probs_smoothing": (lambda: losses.CategoricalCrossentropy(label_smoothing=0.3), ONE_HOT, CAT_PROB,
                            lambda t, p: np_cce(t, p, label_smoothing=0.3)),
    "CCE_logits": (lambda: losses.CategoricalCrossentropy(from_logits=True), ONE_HOT, CAT_LOGIT,
                   lambda t, p: np_cce(t, p, from_logits=True)),
    "CCE_logits_smoothing": (lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), ONE_HOT,
                             CAT_LOGIT, lambda t, p: np_cce(t, p, True, 0.1)),
    "sparse_categorical_crossentropy": (lambda: losses.get("sparse_categorical_crossentropy"), LABELS, CAT_PROB,
                                        np_scce),
    "SCCE_logits": (lambda: losses.SparseCategoricalCrossentropy(from_logits=True), LABELS, CAT_LOGIT,
                    lambda t, p: np_scce(t, p, from_logits=True)),
}


# ------------------------------------------------------------------------------------------ values


@pytest.mark.parametrize("name", CASES)
def test_loss_matches_numpy(name, engine_backend):
    make, t, p, formula = CASES[name]
    loss = make()
    assert isinstance(loss, losses.Loss)
    out = loss(t, p.astype(np.float32))
    assert isinstance(out, engine.Tensor) and out.shape == ()
    np.testing.assert_allclose(out.item(), formula(t, p).mean(), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_reductions_and_sample_weight(name):
    make, t, p, formula = CASES[name]
    values = formula(t, p)
    w = np.linspace(0.0, 2.0, N)
    loss = make()
    for reduction, expect, expect_w in [("sum_over_batch_size", values.mean(), (values * w).sum() / N),
                                        ("sum", values.sum(), (values * w).sum()),
                                        ("none", values, values * w),
                                        (None, values, values * w)]:
        loss.reduction = reduction
        got = loss(t, p.astype(np.float32))
        got_w = loss(t, p.astype(np.float32), sample_weight=w)
        assert got.shape == np.shape(expect), reduction
        np.testing.assert_allclose(got.numpy(), expect, rtol=2e-5, atol=1e-6, err_msg=str(reduction))
        np.testing.assert_allclose(got_w.numpy(), expect_w, rtol=2e-5, atol=1e-6, err_msg=str(reduction))


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_sample_weight_column_is_the_same_as_flat(reduction):
    """Keras squeezes a (N, 1) sample_weight to the per-sample values' rank (squeeze_or_expand_to_same_rank)."""
    loss = losses.MeanSquaredError(reduction=reduction)
    t, p = REG_TRUE, REG_PRED.astype(np.float32)
    w = np.linspace(0.5, 2.0, N)
    flat = loss(t, p, sample_weight=w).numpy()
    column = loss(t, p, sample_weight=w[:, None]).numpy()
    assert column.shape == flat.shape
    np.testing.assert_allclose(column, flat, rtol=1e-6)


def test_scalar_sample_weight_scales_the_loss():
    loss = losses.MeanAbsoluteError()
    base = loss(REG_TRUE, REG_PRED.astype(np.float32)).item()
    np.testing.assert_allclose(loss(REG_TRUE, REG_PRED.astype(np.float32), sample_weight=2.5).item(), 2.5 * base,
                               rtol=1e-6)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "binary_crossentropy"])
def test_label_rank_n_vs_n1(name):
    """y_true (N,) against y_pred (N, 1) is one value per sample, the same as y_true (N, 1)."""
    t = (RNG.random(N) > 0.5).astype(np.float64) if name == "binary_crossentropy" else RNG.standard_normal(N)
    p = RNG.uniform(0.1, 0.9, (N, 1)).astype(np.float32)
    loss = losses.get(name)
    loss.reduction = "none"
    a, b = loss(t, p).numpy(), loss(t[:, None], p).numpy()
    assert a.shape == b.shape == (N,)
    np.testing.assert_allclose(a, b)
    formula = {"mse": np_mse, "mae": np_mae, "huber": np_huber, "binary_crossentropy": np_bce}[name]
    np.testing.assert_allclose(a, formula(t[:, None], p.astype(np.float64)), rtol=2e-5, atol=1e-6)


def test_sparse_labels_n_and_n1_agree():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    a = loss(LABELS, CAT_LOGIT.astype(np.float32)).numpy()
    b = loss(LABELS[:, None], CAT_LOGIT.astype(np.float32)).numpy()
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, np_scce(LABELS, CAT_LOGIT, True), rtol=1e-5)


def test_loss_functions_are_per_sample():
    """The Keras functions (losses.mean_squared_error, ...) return one value per sample, unreduced."""
    cases = [(losses.mean_squared_error, REG_TRUE, REG_PRED, np_mse), (losses.mae, REG_TRUE, REG_PRED, np_mae),
             (losses.mse, REG_TRUE, REG_PRED, np_mse), (losses.huber, REG_TRUE, REG_PRED, np_huber),
             (losses.binary_crossentropy, BIN_TRUE, BIN_PROB, np_bce),
             (losses.categorical_crossentropy, ONE_HOT, CAT_PROB, np_cce),
             (losses.sparse_categorical_crossentropy, LABELS, CAT_PROB, np_scce)]
    for fn, t, p, formula in cases:
        out = fn(t, p.astype(np.float32))
        assert out.shape == (N,), fn.__name__
        np.testing.assert_allclose(out.numpy(), formula(t, p), rtol=2e-5, atol=1e-6, err_msg=fn.__name__)
    out = losses.categorical_crossentropy(ONE_HOT, CAT_LOGIT.astype(np.float32), from_logits=True, label_smoothing=0.2)
    np.testing.assert_allclose(out.numpy(), np_cce(ONE_HOT, CAT_LOGIT, True, 0.2), rtol=2e-5)


def test_lecture_mse_table():
    """The lecture's table: ten predictions whose squared errors total 5046, so the MSE is 504.6."""
    actual = np.array([120, 95, 140, 80, 160, 110, 130, 70, 150, 100], dtype=np.float64)
    predicted = np.array([111, 73, 122, 106, 172, 74, 126, 103, 180, 94], dtype=np.float32)
    squared = (predicted - actual) ** 2
    assert squared.sum() == 5046
    np.testing.assert_allclose(losses.MeanSquaredError()(actual[:, None], predicted[:, None]).item(), 504.6,
                               rtol=1e-6)
    np.testing.assert_allclose(losses.get("mse")(actual, predicted[:, None]).item(), 504.6, rtol=1e-6)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="sum")(actual[:, None], predicted[:, None]).item(),
                               5046.0, rtol=1e-6)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(actual[:, None], predicted[:, None]).numpy(),
                               squared)
    np.testing.assert_allclose(losses.mean_squared_error(actual, predicted).item(), 504.6, rtol=1e-6)  # one row of 10


def test_loss_returns_a_differentiable_tensor():
    p = engine.tensor(REG_PRED, requires_grad=True)
    losses.MeanSquaredError()(REG_TRUE, p).backward()
    np.testing.assert_allclose(p.grad.numpy(), 2 * (REG_PRED - REG_TRUE) / REG_PRED.size, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------ stability

EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 1e4, -1e4]])
EXTREME_LABELS = np.array([1, 1, 2])


def _finite_loss_and_grad(loss, t, z):
    zt = engine.tensor(z, requires_grad=True)
    out = loss(t, zt)
    ops.sum(out).backward()
    assert np.isfinite(out.numpy()).all(), out.numpy()
    assert np.isfinite(zt.grad.numpy()).all(), zt.grad.numpy()
    return out.numpy(), zt.grad.numpy()


def test_categorical_from_logits_extreme(engine_backend):
    value, grad = _finite_loss_and_grad(losses.CategoricalCrossentropy(from_logits=True, reduction="none"),
                                        np.eye(3)[EXTREME_LABELS], EXTREME)
    np.testing.assert_allclose(value, [2e4, 0.0, 2e4], rtol=1e-6)
    np.testing.assert_allclose(grad, np_softmax(EXTREME) - np.eye(3)[EXTREME_LABELS], atol=1e-6)


def test_sparse_categorical_from_logits_extreme(engine_backend):
    value, grad = _finite_loss_and_grad(losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none"),
                                        EXTREME_LABELS, EXTREME)
    np.testing.assert_allclose(value, [2e4, 0.0, 2e4], rtol=1e-6)
    np.testing.assert_allclose(grad, np_softmax(EXTREME) - np.eye(3)[EXTREME_LABELS], atol=1e-6)


def test_binary_from_logits_extreme(engine_backend):
    z = np.array([[1e4], [-1e4], [1e4], [-1e4]])
    t = np.array([0.0, 1.0, 1.0, 0.0])
    value, grad = _finite_loss_and_grad(losses.BinaryCrossentropy(from_logits=True, reduction="none"), t, z)
    np.testing.assert_allclose(value, [1e4, 1e4, 0.0, 0.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad[:, 0], [1.0, -1.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("logits", [CAT_LOGIT, EXTREME], ids=["ordinary", "extreme"])
def test_categorical_from_softmax_output_uses_the_logits(logits, engine_backend):
    """The cross-entropy of ops.softmax(z) (from_logits=False) equals the from_logits value on z: exact, not
    clipped at -log(1e-7) for the extreme rows."""
    labels = EXTREME_LABELS if logits is EXTREME else LABELS
    one_hot = np.eye(logits.shape[-1])[labels]
    z = logits.astype(np.float32)
    fused = losses.CategoricalCrossentropy(reduction="none")(one_hot, ops.softmax(engine.tensor(z))).numpy()
    direct = losses.CategoricalCrossentropy(from_logits=True, reduction="none")(one_hot, z).numpy()
    sparse = losses.SparseCategoricalCrossentropy(reduction="none")(labels, ops.softmax(engine.tensor(z))).numpy()
    np.testing.assert_allclose(fused, direct, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sparse, direct, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused, np_cce(one_hot, logits, from_logits=True), rtol=1e-5, atol=1e-6)


def test_categorical_from_a_softmax_layer_output():
    """The same through a Dense(..., activation='softmax') layer, as a model's last layer produces it."""
    engine.set_seed(0)
    dense = engine.layers.Dense(C, activation="softmax", kernel_initializer=engine.initializers.Constant(1e3))
    x = np.array([[10.0, -10.0], [-10.0, 10.0]], dtype=np.float32)
    out = dense(x)
    logits = x.astype(np.float64) @ dense.kernel.numpy().astype(np.float64)
    t = np.eye(C)[[1, 2]]
    np.testing.assert_allclose(losses.CategoricalCrossentropy(reduction="none")(t, out).numpy(),
                               np_cce(t, logits, from_logits=True), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ gradients


def _numeric_grad(f, a, eps=1e-6):
    a = np.array(a, dtype=np.float64)
    g = np.zeros_like(a)
    for j in np.ndindex(a.shape):
        old = a[j]
        a[j] = old + eps
        up = f(a)
        a[j] = old - eps
        down = f(a)
        a[j] = old
        g[j] = (up - down) / (2 * eps)
    return g


def _check_loss_grad(loss, t, p, transform=None):
    """d loss / d p by autograd (float64, reference backend) vs central differences. transform maps the
    variable to y_pred (ops.softmax for the fused path)."""
    transform = transform or (lambda v: v)
    with engine.use_backend("ref"):
        f = lambda a: loss(t, transform(engine.tensor(a, dtype="float64"))).item()   # noqa: E731
        v = engine.tensor(p, dtype="float64", requires_grad=True)
        out = loss(t, transform(v))
        assert out.dtype == np.float64
        out.backward()
        np.testing.assert_allclose(v.grad.numpy(), _numeric_grad(f, p), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", CASES)
def test_loss_gradient_matches_finite_differences(name):
    make, t, p, _ = CASES[name]
    w = np.linspace(0.5, 1.5, N)
    loss = make()
    _check_loss_grad(loss, t, p)
    loss.reduction = "sum"
    _check_loss_grad(lambda tt, pp: loss(tt, pp, sample_weight=w), t, p)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_fused_softmax_path_gradient_matches_finite_differences(smoothing):
    _check_loss_grad(losses.CategoricalCrossentropy(label_smoothing=smoothing), ONE_HOT, CAT_LOGIT, ops.softmax)
    _check_loss_grad(losses.SparseCategoricalCrossentropy(), LABELS, CAT_LOGIT, ops.softmax)


# ------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.MeanAbsoluteError(reduction="sum"),
                                  losses.Huber(delta=0.7), losses.BinaryCrossentropy(True, 0.1),
                                  losses.CategoricalCrossentropy(label_smoothing=0.2),
                                  losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")],
                         ids=lambda l: type(l).__name__)
def test_config_round_trip(loss):
    config = loss.get_config()
    json.dumps(config)
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    assert losses.get(losses.serialize(loss)).get_config() == config


def test_keras_default_names():
    assert losses.MeanSquaredError().name == "mean_squared_error"
    assert losses.MeanAbsoluteError().name == "mean_absolute_error"
    assert losses.Huber().name == "huber_loss" and losses.Huber().delta == 1.0
    assert losses.BinaryCrossentropy().name == "binary_crossentropy"
    assert losses.CategoricalCrossentropy().name == "categorical_crossentropy"
    assert losses.SparseCategoricalCrossentropy().name == "sparse_categorical_crossentropy"
    for cls in (losses.MeanSquaredError, losses.BinaryCrossentropy, losses.SparseCategoricalCrossentropy):
        assert cls().reduction == "sum_over_batch_size"
    assert isinstance(losses.get("MeanSquaredError"), losses.MeanSquaredError)


def test_custom_function_as_loss():
    loss = losses.get(lambda t, p: ops.mean(ops.abs(p - t) ** 3, axis=-1))
    np.testing.assert_allclose(loss(REG_TRUE, REG_PRED.astype(np.float32)).item(),
                               np.mean(np.abs(REG_PRED - REG_TRUE) ** 3), rtol=1e-5)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("loss,t,p", [
    (losses.MeanSquaredError(), np.zeros((4, 3)), np.zeros((4, 2))),
    (losses.MeanAbsoluteError(), np.zeros((5, 1)), np.zeros((4, 1))),
    (losses.Huber(), np.zeros((4, 3)), np.zeros((4, 2))),
    (losses.BinaryCrossentropy(), np.zeros((4, 2)), np.full((4, 3), 0.5)),
    (losses.CategoricalCrossentropy(), np.eye(3)[[0, 1]], np.full((2, 4), 0.25)),
    (losses.CategoricalCrossentropy(from_logits=True), np.array([0, 1]), np.zeros((2, 3))),
    (losses.SparseCategoricalCrossentropy(), np.array([0, 1, 2]), np.full((2, 3), 1 / 3)),
], ids=["mse", "mae_rows", "huber", "bce", "cce", "cce_sparse_labels", "scce_rows"])
def test_mismatched_shapes_raise(loss, t, p):
    with pytest.raises(ValueError, match=r"shape"):
        loss(t, p.astype(np.float32))


@pytest.mark.parametrize("labels,message", [([0, 3], r"\[0, 3\)|3"), ([-1, 0], r"-1"),
                                            ([0.5, 1.0], r"integer|fraction")])
@pytest.mark.parametrize("from_logits", [False, True])
def test_bad_sparse_labels_raise(labels, message, from_logits):
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    with pytest.raises(ValueError, match=message):
        loss(np.array(labels), np.full((2, 3), 1 / 3, dtype=np.float32))


@pytest.mark.parametrize("bad", ["nope", "Mse", 3, None])
def test_unknown_loss_raises(bad):
    with pytest.raises(ValueError, match="loss"):
        losses.get(bad)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="mean_of_everything")
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)

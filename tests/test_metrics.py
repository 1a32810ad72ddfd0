"""Metrics: each metric vs a NumPy formula, accumulation over several update_state calls with sample weights,
reset_state, Keras' resolution of 'accuracy', the History keys named as Keras names them, and bad names."""
import numpy as np
import pytest

import engine
from engine import layers, metrics, models, optimizers

from checks import np_softmax

EPS = 1e-7
RNG = np.random.default_rng(1)


def batches(kind, n, seed):
    """(y_true, y_pred) for one batch of each kind of problem."""
    rng = np.random.default_rng(seed)
    if kind == "regression":
        t = rng.standard_normal((n, 2))
        return t, t + rng.standard_normal((n, 2))
    if kind == "binary":
        return (rng.random((n, 1)) > 0.5).astype(np.float64), rng.random((n, 1))
    labels = rng.integers(0, 4, n)
    probs = np_softmax(rng.standard_normal((n, 4)) * 2)
    return (labels if kind == "sparse" else np.eye(4)[labels]), probs


# name -> (metric factory, kind, NumPy per-sample formula, final transform of the weighted mean)
CASES = {
    "mse": (lambda: metrics.get("mse"), "regression", lambda t, p: np.mean((p - t) ** 2, -1), None),
    "MeanSquaredError": (metrics.MeanSquaredError, "regression", lambda t, p: np.mean((p - t) ** 2, -1), None),
    "mae": (lambda: metrics.get("mae"), "regression", lambda t, p: np.mean(np.abs(p - t), -1), None),
    "MeanAbsoluteError": (metrics.MeanAbsoluteError, "regression", lambda t, p: np.mean(np.abs(p - t), -1), None),
    "rmse": (lambda: metrics.get("rmse"), "regression", lambda t, p: np.mean((p - t) ** 2, -1), np.sqrt),
    "RootMeanSquaredError": (metrics.RootMeanSquaredError, "regression", lambda t, p: np.mean((p - t) ** 2, -1),
                             np.sqrt),
    "binary_accuracy": (lambda: metrics.get("binary_accuracy"), "binary",
                        lambda t, p: np.mean((p > 0.5) == (t == 1), -1), None),
    "BinaryAccuracy_0.7": (lambda: metrics.BinaryAccuracy(threshold=0.7), "binary",
                           lambda t, p: np.mean((p > 0.7) == (t == 1), -1), None),
    "categorical_accuracy": (lambda: metrics.get("categorical_accuracy"), "categorical",
                             lambda t, p: (t.argmax(-1) == p.argmax(-1)).astype(float), None),
    "sparse_categorical_accuracy": (lambda: metrics.get("sparse_categorical_accuracy"), "sparse",
                                    lambda t, p: (t == p.argmax(-1)).astype(float), None),
    "binary_crossentropy": (lambda: metrics.get("binary_crossentropy"), "binary",
                            lambda t, p: -np.mean(t * np.log(np.clip(p, EPS, 1 - EPS)) +
                                                  (1 - t) * np.log(1 - np.clip(p, EPS, 1 - EPS)), -1), None),
    "categorical_crossentropy": (lambda: metrics.get("categorical_crossentropy"), "categorical",
                                 lambda t, p: -np.sum(t * np.log(np.clip(p, EPS, 1 - EPS)), -1), None),
    "sparse_categorical_crossentropy": (lambda: metrics.get("sparse_categorical_crossentropy"), "sparse",
                                        lambda t, p: -np.log(np.clip(p, EPS, 1 - EPS)[np.arange(len(t)), t]), None),
}


@pytest.mark.parametrize("name", CASES)
def test_metric_matches_numpy(name):
    make, kind, formula, final = CASES[name]
    t, p = batches(kind, 12, seed=0)
    m = make()
    m.update_state(t, p)
    expect = formula(t, p).mean()
    np.testing.assert_allclose(m.result(), final(expect) if final else expect, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_accumulates_weighted_batches_and_resets(name):
    """Three update_state calls (weighted, unweighted, weighted) give the weighted mean of all samples seen."""
    make, kind, formula, final = CASES[name]
    m = make()
    values, weights = [], []
    for seed, n, weighted in [(1, 5, True), (2, 7, False), (3, 4, True)]:
        t, p = batches(kind, n, seed)
        w = np.random.default_rng(seed + 10).uniform(0.1, 3.0, n) if weighted else None
        m.update_state(t, p, sample_weight=w)
        values.append(formula(t, p))
        weights.append(np.ones(n) if w is None else w)
    v, w = np.concatenate(values), np.concatenate(weights)
    expect = (v * w).sum() / w.sum()
    np.testing.assert_allclose(m.result(), final(expect) if final else expect, rtol=1e-6, atol=1e-12)
    m.reset_state()
    assert m.result() == 0.0
    t, p = batches(kind, 6, seed=9)
    m.update_state(t, p)
    expect = formula(t, p).mean()
    np.testing.assert_allclose(m.result(), final(expect) if final else expect, rtol=1e-6, atol=1e-12)


def test_mean_metric():
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state([10.0], sample_weight=[2.0])
    np.testing.assert_allclose(m.result(), (1 + 2 + 3 + 20) / 5)


def test_binary_accuracy_threshold():
    t = np.array([[1.0], [1.0], [0.0], [0.0]])
    p = np.array([[0.9], [0.6], [0.4], [0.55]])
    for threshold, expect in [(0.5, 0.75), (0.58, 1.0), (0.95, 0.5)]:
        m = metrics.BinaryAccuracy(threshold=threshold)
        m.update_state(t, p)
        assert m.result() == pytest.approx(expect), threshold


def test_accuracy_labels_of_rank_n_and_n1():
    p = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    for labels in (np.array([1, 0, 0]), np.array([[1], [0], [0]])):
        m = metrics.SparseCategoricalAccuracy()
        m.update_state(labels, p)
        assert m.result() == pytest.approx(2 / 3)
    m = metrics.BinaryAccuracy()
    m.update_state(np.array([1.0, 0.0, 0.0]), np.array([[0.9], [0.2], [0.7]]))
    assert m.result() == pytest.approx(2 / 3)


def test_lecture_mse_table_as_a_metric():
    actual = np.array([120, 95, 140, 80, 160, 110, 130, 70, 150, 100], dtype=np.float64)
    predicted = np.array([111, 73, 122, 106, 172, 74, 126, 103, 180, 94], dtype=np.float64)
    m = metrics.MeanSquaredError()
    m.update_state(actual[:5, None], predicted[:5, None])
    m.update_state(actual[5:, None], predicted[5:, None])
    assert m.result() == pytest.approx(504.6)
    r = metrics.RootMeanSquaredError()
    r.update_state(actual[:, None], predicted[:, None])
    assert r.result() == pytest.approx(np.sqrt(504.6))


def test_keras_default_names():
    assert metrics.MeanSquaredError().name == "mean_squared_error"
    assert metrics.MeanAbsoluteError().name == "mean_absolute_error"
    assert metrics.RootMeanSquaredError().name == "root_mean_squared_error"
    assert metrics.BinaryAccuracy().name == "binary_accuracy"
    assert metrics.CategoricalAccuracy().name == "categorical_accuracy"
    assert metrics.SparseCategoricalAccuracy().name == "sparse_categorical_accuracy"
    assert metrics.BinaryCrossentropy().name == "binary_crossentropy"
    assert metrics.get("mse").name == "mse"                       # named as written in compile(metrics=[...])


@pytest.mark.parametrize("cls,kind,formula", [
    (metrics.BinaryCrossentropy, "binary",
     lambda t, z: np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))), -1)),
    (metrics.CategoricalCrossentropy, "categorical",
     lambda t, z: -np.sum(t * np.log(np_softmax(z)), -1)),
    (metrics.SparseCategoricalCrossentropy, "sparse",
     lambda t, z: -np.log(np_softmax(z)[np.arange(len(t)), t])),
], ids=["binary", "categorical", "sparse"])
def test_crossentropy_metrics_from_logits(cls, kind, formula):
    """Keras 3's cross-entropy metrics take from_logits (keras.metrics.BinaryCrossentropy(name=..., dtype=None,
    from_logits=False, label_smoothing=0), and the same for the categorical ones), so a model compiled with a
    from_logits loss can report the matching metric."""
    t, _ = batches(kind, 8, seed=4)
    z = np.random.default_rng(5).standard_normal((8, 1 if kind == "binary" else 4)) * 3
    m = cls(from_logits=True)
    m.update_state(t, z)
    np.testing.assert_allclose(m.result(), formula(t, z).mean(), rtol=1e-6)


def test_unknown_metric_name_raises():
    for bad in ["nope", "accuracyy", 3]:
        with pytest.raises(ValueError, match="metric"):
            metrics.get(bad)


# ------------------------------------------------------------------------------------------ inside a model


def _frozen_model(units, activation, seed=0):
    """A model that does not learn (SGD with learning rate 0), so fit/evaluate metrics are computable by hand."""
    engine.set_seed(seed)
    model = models.Sequential([layers.Input(shape=(4,)), layers.Dense(units, activation=activation)])
    return model


X = RNG.standard_normal((30, 4)).astype(np.float32)


@pytest.mark.parametrize("loss,units,activation,y,expect_fn", [
    ("binary_crossentropy", 1, "sigmoid", (RNG.random(30) > 0.5).astype(np.float32), "binary_accuracy"),
    ("mse", 1, "sigmoid", (RNG.random((30, 1)) > 0.5).astype(np.float32), "binary_accuracy"),
    ("sparse_categorical_crossentropy", 3, "softmax", RNG.integers(0, 3, 30), "sparse_categorical_accuracy"),
    ("sparse_categorical_crossentropy", 3, "softmax", RNG.integers(0, 3, (30, 1)), "sparse_categorical_accuracy"),
    ("categorical_crossentropy", 3, "softmax", np.eye(3, dtype=np.float32)[RNG.integers(0, 3, 30)],
     "categorical_accuracy"),
], ids=["bce", "one_column", "sparse", "sparse_n1", "one_hot"])
def test_accuracy_is_resolved_as_keras_does(loss, units, activation, y, expect_fn):
    model = _frozen_model(units, activation)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss=loss, metrics=["accuracy"])
    result = model.evaluate(X, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "accuracy"}
    p = model.predict(X, verbose=0)
    labels = np.asarray(y).reshape(len(y), -1)
    if expect_fn == "binary_accuracy":
        expect = np.mean((p[:, 0] > 0.5) == (labels[:, 0] == 1))
    elif expect_fn == "sparse_categorical_accuracy":
        expect = np.mean(p.argmax(-1) == labels[:, 0])
    else:
        expect = np.mean(p.argmax(-1) == labels.argmax(-1))
    assert result["accuracy"] == pytest.approx(expect)


def test_history_keys_as_keras_names_them():
    y = (X @ np.arange(1.0, 5.0)).astype(np.float32)
    model = _frozen_model(1, None)
    model.compile(optimizer="sgd", loss="mse", metrics=["mse", "mae"])
    history = model.fit(X, y, validation_split=0.2, epochs=2, verbose=0)
    assert list(history.history) == ["loss", "mse", "mae", "val_loss", "val_mse", "val_mae"]
    assert all(len(v) == 2 for v in history.history.values())
    np.testing.assert_allclose(history.history["loss"], history.history["mse"], rtol=1e-5)

    labels = RNG.integers(0, 3, 30)
    model = _frozen_model(3, "softmax")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, labels, validation_data=(X[:5], labels[:5]), epochs=1, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["acc", metrics.SparseCategoricalAccuracy()])
    history = model.fit(X, labels, epochs=1, verbose=0)
    assert list(history.history) == ["loss", "acc", "sparse_categorical_accuracy"]


def test_metrics_in_fit_match_numpy_over_the_epoch():
    """With learning rate 0, the epoch's mse and mae (accumulated over uneven batches) equal NumPy's over all
    samples."""
    y = (X @ np.arange(1.0, 5.0)).astype(np.float32)
    model = _frozen_model(1, None)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse", metrics=["mse", "mae", "rmse"])
    history = model.fit(X, y, batch_size=7, epochs=1, verbose=0, shuffle=False)
    e = model.predict(X, verbose=0)[:, 0] - y
    np.testing.assert_allclose(history.history["loss"][0], np.mean(e ** 2), rtol=1e-5)
    np.testing.assert_allclose(history.history["mse"][0], np.mean(e ** 2), rtol=1e-5)
    np.testing.assert_allclose(history.history["mae"][0], np.mean(np.abs(e)), rtol=1e-5)
    np.testing.assert_allclose(history.history["rmse"][0], np.sqrt(np.mean(e ** 2)), rtol=1e-5)


def test_crossentropy_metrics_in_compile():
    labels = RNG.integers(0, 3, 30)
    model = _frozen_model(3, "softmax")
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy",
                  metrics=["categorical_crossentropy", "sparse_categorical_crossentropy"])
    p = model.predict(X, verbose=0).astype(np.float64)
    expect = -np.log(p[np.arange(30), labels]).mean()
    with pytest.raises(ValueError):                        # one-hot loss on class ids: a shape error
        model.evaluate(X, labels, verbose=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_crossentropy"])
    result = model.evaluate(X, labels, verbose=0, return_dict=True)
    np.testing.assert_allclose([result["loss"], result["sparse_categorical_crossentropy"]], [expect] * 2, rtol=1e-5)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy",
                  metrics=["categorical_crossentropy"])
    result = model.evaluate(X, np.eye(3)[labels], verbose=0, return_dict=True)
    np.testing.assert_allclose([result["loss"], result["categorical_crossentropy"]], [expect] * 2, rtol=1e-5)


def test_compiled_metrics_are_not_weighted_by_sample_weight():
    """Keras 3 passes sample_weight to the loss and to `weighted_metrics` only; the metrics of
    compile(metrics=[...]) are updated with m.update_state(y_true, y_pred) (CompileMetrics.update_state), so
    history['mse'] is the plain mean while history['loss'] is weighted."""
    y = (X @ np.arange(1.0, 5.0)).astype(np.float32)
    w = np.linspace(0.0, 3.0, len(X)).astype(np.float32)
    model = _frozen_model(1, None)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse", metrics=["mse"])
    history = model.fit(X, y, sample_weight=w, batch_size=len(X), epochs=1, verbose=0)
    e2 = (model.predict(X, verbose=0)[:, 0] - y) ** 2
    np.testing.assert_allclose(history.history["loss"][0], np.mean(e2 * w), rtol=1e-5)
    np.testing.assert_allclose(history.history["mse"][0], np.mean(e2), rtol=1e-5)
    result = model.evaluate(X, y, sample_weight=w, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], np.mean(e2 * w), rtol=1e-5)
    np.testing.assert_allclose(result["mse"], np.mean(e2), rtol=1e-5)


@pytest.mark.parametrize("bad", ["nope", "accuracyy", ["mse"]])
def test_unknown_metric_name_fails_at_compile(bad):
    model = _frozen_model(1, None)
    with pytest.raises((ValueError, TypeError), match="metric"):
        model.compile(optimizer="adam", loss="mse", metrics=[bad])


def test_metrics_must_be_a_list():
    model = _frozen_model(1, None)
    with pytest.raises(TypeError, match="metrics"):
        model.compile(optimizer="adam", loss="mse", metrics="mse")

"""Models: the lecture's Keras code verbatim on a seeded regression problem, a seeded classification fit,
evaluate/predict/train_on_batch/test_on_batch, validation_split, shuffle, initial_epoch, steps_per_epoch,
class and sample weights, Sequential building, a subclassed Model, summary(), weights, verbose output,
determinism across seeds and thread counts, and bad input that must leave the model as it was."""
import time

import numpy as np
import pytest

import engine
from engine import callbacks, losses, models, optimizers
from engine.layers import Dense, Dropout, Input
from engine.models import Sequential

# ------------------------------------------------------------------------------------------ data and helpers


def regression_data(n=200, seed=0):
    """8 features, a mostly linear target with a kink and a little noise (variance about 3)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, 8)
    y = (x @ w + 0.5 * np.abs(x[:, 0]) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    return x, y


def blobs(n=300, seed=0):
    """Three well separated Gaussian blobs in 2-D, integer labels."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    labels = rng.integers(0, 3, n)
    return (centers[labels] + rng.standard_normal((n, 2))).astype(np.float32), labels


def small_model(seed=0, n_in=3, hidden=4, out=1, dropout=False):
    engine.set_seed(seed)
    stack = [Input(shape=(n_in,)), Dense(hidden, activation="relu")]
    stack += [Dropout(0.3)] if dropout else []
    return Sequential(stack + [Dense(out)])


def linear_model(n_in=3, seed=0):
    engine.set_seed(seed)
    return Sequential([Input(shape=(n_in,)), Dense(1)])


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape and u.dtype == v.dtype
        assert np.array_equal(u.view(np.uint32), v.view(np.uint32)), "weights differ"


RNG = np.random.default_rng(3)
X3 = RNG.standard_normal((40, 3)).astype(np.float32)
Y3 = (X3 @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)


# ------------------------------------------------------------------------------------------ the lecture


def test_lecture_regression_code(capsys):
    """The lecture's Keras code as written, on a seeded synthetic problem with 8 inputs."""
    X, y = regression_data()
    engine.set_seed(0)
    start = time.perf_counter()

    n_cols = X.shape[1]
    model = Sequential()
    model.add(Dense(15, activation='relu', input_shape=(n_cols,)))
    model.add(Dense(5, activation='relu'))
    model.add(Dense(1, activation='linear'))
    model.compile(optimizer='adam', loss='mse', metrics=['mse'])
    history = model.fit(X, y, validation_split=0.25, epochs=100)

    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "Epoch 100/100" in out                                   # verbose='auto' is 1
    h = history.history
    assert list(h) == ["loss", "mse", "val_loss", "val_mse"]
    assert all(len(v) == 100 for v in h.values())
    assert history.epoch == list(range(100))
    assert history.params["epochs"] == 100 and history.params["steps"] == 5      # ceil(150 / 32)
    assert model.history is history
    assert h["loss"][0] > 2.0
    assert h["loss"][-1] < 0.25, h["loss"][-1]
    assert h["val_loss"][-1] < 0.5, h["val_loss"][-1]
    np.testing.assert_allclose(h["loss"], h["mse"], rtol=1e-5)
    np.testing.assert_allclose(h["val_loss"], h["val_mse"], rtol=1e-5)
    assert elapsed < 5.0, elapsed


def test_toy_fit_lowers_the_loss_within_a_second():
    X, y = regression_data(n=64)
    model = small_model(n_in=8, hidden=8)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse")
    start = time.perf_counter()
    history = model.fit(X, y, epochs=20, batch_size=16, verbose=0)
    assert time.perf_counter() - start < 1.0
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]


def test_lecture_mse_table_through_evaluate():
    """A model that outputs its input (kernel 1, no bias) evaluated on the lecture's table: MSE 504.6."""
    actual = np.array([120, 95, 140, 80, 160, 110, 130, 70, 150, 100], dtype=np.float32)
    predicted = np.array([111, 73, 122, 106, 172, 74, 126, 103, 180, 94], dtype=np.float32)
    model = Sequential([Input(shape=(1,)), Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(optimizer="sgd", loss="mse", metrics=["mse", "mae"])
    loss, mse, mae = model.evaluate(predicted[:, None], actual, batch_size=4, verbose=0)
    assert loss == pytest.approx(504.6, rel=1e-6) and mse == pytest.approx(504.6, rel=1e-6)
    assert mae == pytest.approx(np.mean(np.abs(predicted - actual)), rel=1e-6)


def test_seeded_classification_fit():
    X, labels = blobs()
    engine.set_seed(0)
    model = Sequential([Input(shape=(2,)), Dense(16, activation="relu"), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, labels, epochs=25, batch_size=32, validation_split=0.2, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.history["loss"][-1] < 0.4
    assert history.history["accuracy"][-1] > 0.9
    assert history.history["val_accuracy"][-1] > 0.9
    probs = model.predict(X, verbose=0)
    assert probs.shape == (300, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(1) == labels) > 0.9


# ------------------------------------------------------------------------------------------ evaluate / predict


def test_evaluate_return_forms():
    model = linear_model()
    model.compile(optimizer="sgd", loss="mse")
    loss = model.evaluate(X3, Y3, verbose=0)
    assert isinstance(loss, float)
    kernel, bias = model.get_weights()
    expect = np.mean((X3 @ kernel[:, 0] + bias[0] - Y3) ** 2)
    assert loss == pytest.approx(expect, rel=1e-5)

    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    result = model.evaluate(X3, Y3, batch_size=7, verbose=0)
    assert isinstance(result, list) and len(result) == 3
    e = X3 @ kernel[:, 0] + bias[0] - Y3
    np.testing.assert_allclose(result, [np.mean(e ** 2), np.mean(np.abs(e)), np.mean(e ** 2)], rtol=1e-5)
    as_dict = model.evaluate(X3, Y3, verbose=0, return_dict=True)
    assert list(as_dict) == ["loss", "mae", "mse"]
    np.testing.assert_allclose(list(as_dict.values()), result, rtol=1e-6)


@pytest.mark.parametrize("batch_size", [None, 1, 3, 7, 10, 64])
def test_predict_shape_and_batching(batch_size):
    model = small_model(hidden=6, out=2)
    full = model(X3[:10]).numpy()
    out = model.predict(X3[:10], batch_size=batch_size, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (10, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, full, rtol=1e-6, atol=1e-7)


def test_predict_empty_and_uncompiled():
    model = small_model(out=2)
    assert model.predict(np.zeros((0, 3), np.float32), verbose=0).shape == (0, 2)
    assert model.predict(X3[:1].tolist(), verbose=0).shape == (1, 2)          # nested lists are accepted


def test_predict_is_inference():
    """Dropout is off in predict and evaluate: repeated predictions are identical."""
    model = small_model(dropout=True)
    model.compile(optimizer="sgd", loss="mse")
    np.testing.assert_array_equal(model.predict(X3, verbose=0), model.predict(X3, verbose=0))
    assert model.evaluate(X3, Y3, verbose=0) == model.evaluate(X3, Y3, verbose=0)


# ------------------------------------------------------------------------------------------ train/test_on_batch


def test_train_on_batch_and_test_on_batch():
    model = linear_model()
    lr = 0.05
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    x, y = X3[:8], Y3[:8]
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    e = x @ kernel[:, 0] + bias[0] - y
    before = model.test_on_batch(x, y)
    assert isinstance(before, float) and before == pytest.approx(np.mean(e ** 2), rel=1e-5)
    assert model.train_on_batch(x, y) == pytest.approx(before, rel=1e-6)     # the loss before the update
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel[:, 0], kernel[:, 0] - lr * 2 * x.T @ e / len(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_bias[0], bias[0] - lr * 2 * e.mean(), rtol=1e-5, atol=1e-6)
    assert model.test_on_batch(x, y) < before

    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    result = model.train_on_batch(x, y)
    assert isinstance(result, list) and len(result) == 2
    logs = model.test_on_batch(x, y, return_dict=True)
    assert list(logs) == ["loss", "mae"]


# ------------------------------------------------------------------------------------------ validation_split


@pytest.mark.parametrize("n,split", [(100, 0.2), (10, 0.25), (7, 0.5), (40, 0.3)])
def test_validation_split_takes_the_last_fraction(n, split):
    """Keras 3 (array_slicing.train_validation_split): split_at = floor(n * (1 - validation_split)); the samples
    from split_at on are the validation data, taken before any shuffling. So fit(validation_split=f) must give
    the very same History as fit(x[:split_at], validation_data=(x[split_at:], ...)) under the same seed."""
    x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
    y = (x.sum(axis=1) + 1.0).astype(np.float32)
    split_at = int(np.floor(n * (1.0 - split)))

    def run(**kwargs):
        model = small_model(seed=5)
        model.compile(optimizer="adam", loss="mse")
        return model.fit(epochs=3, batch_size=4, verbose=0, **kwargs).history

    by_split = run(x=x, y=y, validation_split=split)
    by_data = run(x=x[:split_at], y=y[:split_at], validation_data=(x[split_at:], y[split_at:]))
    assert by_split == by_data


def test_validation_loss_by_hand():
    """With learning rate 0 the validation loss is the MSE of the fixed model on the last 25% of the samples."""
    model = linear_model()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse")
    history = model.fit(X3, Y3, validation_split=0.25, epochs=2, verbose=0)
    kernel, bias = model.get_weights()
    e = X3 @ kernel[:, 0] + bias[0] - Y3
    np.testing.assert_allclose(history.history["val_loss"], [np.mean(e[30:] ** 2)] * 2, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"], [np.mean(e[:30] ** 2)] * 2, rtol=1e-5)


# ------------------------------------------------------------------------------------------ shuffle, epochs, steps


def test_shuffle_false_is_the_batches_in_order():
    a = small_model(seed=1)
    a.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
    a.fit(X3, Y3, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b = small_model(seed=1)
    b.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
    for _ in range(2):
        for start in range(0, 40, 8):
            b.train_on_batch(X3[start:start + 8], Y3[start:start + 8])
    assert_weights_equal(a.get_weights(), b.get_weights())

    c = small_model(seed=1)
    c.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
    c.fit(X3, Y3, batch_size=8, epochs=2, shuffle=True, verbose=0)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_shuffle_with_one_batch_changes_nothing():
    """A full-batch step's gradient is a sum over the samples: the order does not matter (beyond rounding)."""
    runs = []
    for shuffle in (False, True):
        model = small_model(seed=2)
        model.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
        runs.append(model.fit(X3, Y3, batch_size=40, epochs=3, shuffle=shuffle, verbose=0).history["loss"])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_initial_epoch(capsys):
    model = small_model()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(X3, Y3, epochs=5, initial_epoch=3, verbose=1)
    assert history.epoch == [3, 4]
    assert len(history.history["loss"]) == 2
    out = capsys.readouterr().out
    assert "Epoch 4/5" in out and "Epoch 5/5" in out and "Epoch 1/5" not in out
    assert model.fit(X3, Y3, epochs=2, initial_epoch=2, verbose=0).history == {}


def test_steps_per_epoch_limits_the_batches():
    model = small_model()
    model.compile(optimizer="sgd", loss="mse")
    seen = []
    counter = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    history = model.fit(X3, Y3, batch_size=8, epochs=3, steps_per_epoch=2, callbacks=[counter], verbose=0)
    assert seen == [0, 1, 0, 1, 0, 1]
    assert history.params["steps"] == 2


def test_epochs_zero_trains_nothing():
    model = small_model()
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    assert model.fit(X3, Y3, epochs=0, verbose=0).history == {}
    assert_weights_equal(before, model.get_weights())


# ------------------------------------------------------------------------------------------ class and sample weights


def _frozen_binary_model():
    engine.set_seed(4)
    model = Sequential([Input(shape=(3,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="binary_crossentropy")
    return model


def _bce_values(model, x, t):
    p = np.clip(model.predict(x, verbose=0)[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def test_class_weight_and_sample_weight_change_the_loss():
    t = (X3[:, 0] > 0).astype(np.float32)
    model = _frozen_binary_model()
    values = _bce_values(model, X3, t)
    plain = model.fit(X3, t, batch_size=40, epochs=1, verbose=0).history["loss"][0]
    assert plain == pytest.approx(values.mean(), rel=1e-5)

    same = model.fit(X3, t, batch_size=40, epochs=1, verbose=0, class_weight={0: 1.0, 1: 1.0}).history["loss"][0]
    assert same == pytest.approx(plain, rel=1e-6)

    cw = {0: 0.5, 1: 3.0}
    weighted = model.fit(X3, t, batch_size=40, epochs=1, verbose=0, class_weight=cw).history["loss"][0]
    w = np.where(t == 1, 3.0, 0.5)
    assert weighted == pytest.approx((values * w).mean(), rel=1e-5)        # sum(w * loss) / N, as Keras

    sw = np.linspace(0.0, 2.0, 40).astype(np.float32)
    by_sample = model.fit(X3, t, batch_size=40, epochs=1, verbose=0, sample_weight=sw).history["loss"][0]
    assert by_sample == pytest.approx((values * sw).mean(), rel=1e-5)
    both = model.fit(X3, t, batch_size=40, epochs=1, verbose=0, sample_weight=sw, class_weight=cw).history["loss"][0]
    assert both == pytest.approx((values * sw * w).mean(), rel=1e-5)
    assert model.evaluate(X3, t, sample_weight=sw, verbose=0) == pytest.approx(by_sample, rel=1e-6)


def test_class_weight_for_sparse_labels():
    X, labels = blobs(n=30)
    engine.set_seed(0)
    model = Sequential([Input(shape=(2,)), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    p = model.predict(X, verbose=0).astype(np.float64)
    values = -np.log(p[np.arange(30), labels])
    cw = {0: 1.0, 1: 2.0, 2: 0.25}
    loss = model.fit(X, labels, batch_size=30, epochs=1, verbose=0, class_weight=cw).history["loss"][0]
    assert loss == pytest.approx((values * np.array([cw[c] for c in labels])).mean(), rel=1e-5)


def test_sample_weight_zero_ignores_samples():
    """Samples of weight 0 do not move the weights: training on (x, y) with the second half weighted 0 is
    training on the first half alone (with the loss divided by the full batch size)."""
    x, y = X3[:8], Y3[:8]
    a = linear_model()
    a.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    a.train_on_batch(x, y, sample_weight=np.r_[np.ones(4), np.zeros(4)].astype(np.float32))
    b = linear_model()
    b.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")      # half the rate: N is 4, not 8
    b.train_on_batch(x[:4], y[:4])
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------ Sequential and Model


def test_sequential_list_equals_add():
    engine.set_seed(8)
    listed = Sequential([Input(shape=(3,)), Dense(4, activation="relu"), Dense(1)])
    engine.set_seed(8)
    added = Sequential()
    added.add(Input(shape=(3,)))
    added.add(Dense(4, activation="relu"))
    added.add(Dense(1))
    assert_weights_equal(listed.get_weights(), added.get_weights())
    np.testing.assert_array_equal(listed.predict(X3, verbose=0), added.predict(X3, verbose=0))
    assert [type(layer).__name__ for layer in listed.layers] == ["Dense", "Dense"]     # no InputLayer
    assert listed.built and [w.shape for w in listed.weights] == [(3, 4), (4,), (4, 1), (1,)]


def test_sequential_input_shape_on_the_first_layer_builds_now():
    model = Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    assert model.built and [w.shape for w in model.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]
    lazy = Sequential([Dense(4), Dense(2)])
    assert lazy.weights == []
    assert lazy.predict(X3, verbose=0).shape == (40, 2)                          # built on first use
    assert [w.shape for w in lazy.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]


def test_sequential_pop():
    model = Sequential([Input(shape=(3,)), Dense(4), Dense(2)])
    last = model.layers[-1]
    assert model.pop() is last
    assert len(model.layers) == 1 and model.count_params() == 16
    assert model.predict(X3, verbose=0).shape == (40, 4)
    model.pop()
    with pytest.raises(ValueError, match="no layers"):
        model.pop()


def test_sequential_add_rejects_non_layers():
    model = Sequential()
    with pytest.raises(TypeError, match="Layer"):
        model.add("dense")
    model.add(Dense(2))
    with pytest.raises(ValueError, match="InputLayer"):
        model.add(Input(shape=(3,)))


class TwoLayer(models.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(16, activation="tanh")
        self.out = Dense(1)

    def call(self, inputs, training=None):
        return self.out(self.hidden(inputs)) + 0.5 * inputs[:, :1]        # a custom computation


def test_subclassed_model_trains_with_fit():
    X, y = regression_data(n=128)
    engine.set_seed(0)
    model = TwoLayer()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    history = model.fit(X, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]
    assert len(model.weights) == 4 and len(model.trainable_weights) == 4
    assert model.weights[0] is model.hidden.kernel
    assert model.predict(X[:5], verbose=0).shape == (5, 1)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert model.hidden.name in text and model.out.name in text and "Total params: 161" in text


def test_summary_of_the_lecture_model():
    model = Sequential()
    model.add(Dense(15, activation="relu", input_shape=(8,)))
    model.add(Dense(5, activation="relu"))
    model.add(Dense(1, activation="linear"))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f'Model: "{model.name}"' in text
    for layer, shape, params in zip(model.layers, ["(None, 15)", "(None, 5)", "(None, 1)"], [135, 80, 6]):
        row = next(line for line in lines if layer.name + " (Dense)" in line)
        assert shape in row and str(params) in row.split(shape)[1], row
    assert "Total params: 221" in text
    assert "Trainable params: 221" in text
    assert "Non-trainable params: 0" in text
    assert model.count_params() == 221


def test_summary_counts_frozen_layers():
    model = Sequential([Input(shape=(8,)), Dense(15), Dense(1)])
    model.layers[0].trainable = False
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 151" in text and "Trainable params: 16" in text and "Non-trainable params: 135" in text


def test_summary_prints_to_stdout(capsys):
    Sequential([Input(shape=(2,)), Dense(3)]).summary()
    assert "Total params: 9" in capsys.readouterr().out


def test_model_get_and_set_weights():
    model = small_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 4), (4,), (4, 1), (1,)]
    arrays = [w.data for w in model.weights]
    new = [np.full(w.shape, i + 1.0, np.float32) for i, w in enumerate(weights)]
    model.set_weights(new)
    assert all(w.data is a for w, a in zip(model.weights, arrays))                # in place
    assert_weights_equal(model.get_weights(), new)
    np.testing.assert_allclose(model.predict(X3[:2], verbose=0), (np.maximum(X3[:2] @ new[0] + 2, 0) @ new[2]) + 4,
                               rtol=1e-6)
    with pytest.raises(ValueError):
        model.set_weights(new[:3])
    with pytest.raises(ValueError):
        model.set_weights(new[:2] + [np.zeros((1, 4), np.float32), new[3]])
    assert_weights_equal(model.get_weights(), new)


def test_trainable_weights_and_frozen_layers():
    model = small_model()
    assert len(model.trainable_weights) == 4 and model.non_trainable_weights == []
    first = model.layers[0]
    first.trainable = False
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    frozen = first.get_weights()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    model.fit(X3, Y3, epochs=2, verbose=0)
    assert_weights_equal(first.get_weights(), frozen)


# ------------------------------------------------------------------------------------------ verbose


def _fit_output(capsys, verbose, epochs=3, **kwargs):
    model = small_model()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    capsys.readouterr()
    model.fit(X3, Y3, epochs=epochs, batch_size=8, verbose=verbose, **kwargs)
    return capsys.readouterr().out


def test_verbose_0_prints_nothing(capsys):
    assert _fit_output(capsys, 0, validation_split=0.25) == ""
    model = small_model()
    model.compile(optimizer="sgd", loss="mse")
    model.evaluate(X3, Y3, verbose=0)
    model.predict(X3, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    out = _fit_output(capsys, 2, validation_split=0.25)
    lines = [line for line in out.splitlines() if "loss:" in line]
    assert len(lines) == 3
    assert all("val_loss:" in line and "mae:" in line for line in lines)
    assert "━" not in out


def test_verbose_1_prints_epochs_and_a_progress_line(capsys):
    out = _fit_output(capsys, 1)
    for epoch in (1, 2, 3):
        assert f"Epoch {epoch}/3" in out
    bars = [line for line in out.splitlines() if "━" in line]
    assert len(bars) == 3                                   # not a terminal: printed once per epoch
    assert bars[0].startswith("5/5") and "loss:" in bars[0] and "mae:" in bars[0]
    assert "\r" not in out and "\x1b[" not in out          # no redrawing or colour off a terminal
    auto = _fit_output(capsys, "auto")                     # 'auto' is 1
    assert "Epoch 3/3" in auto and len([line for line in auto.splitlines() if "━" in line]) == 3


def test_single_epoch_has_no_epoch_header(capsys):
    """Keras 3's ProgbarLogger.on_epoch_begin prints 'Epoch i/N' only when self.epochs > 1."""
    out = _fit_output(capsys, 1, epochs=1)
    assert "Epoch 1/1" not in out
    assert "loss:" in out


# ------------------------------------------------------------------------------------------ determinism


def _seeded_run(seed, threads_setter=None, n_threads=None, width=64):
    """A seeded fit with dropout, shuffling and a validation split. width=512 makes the matmuls, reductions and
    optimizer updates large enough for the kernels to split them across threads."""
    if threads_setter is not None:
        threads_setter(n_threads)
    n_features = 8 if width == 64 else 64
    rng = np.random.default_rng(1)
    X = rng.standard_normal((256, n_features)).astype(np.float32)
    y = (X[:, :4].sum(axis=1) + 0.1 * rng.standard_normal(256)).astype(np.float32)
    engine.set_seed(seed)
    model = Sequential([Input(shape=(n_features,)), Dense(width, activation="relu"), Dropout(0.2),
                        Dense(32, activation="relu"), Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(X, y, epochs=3, batch_size=64 if width == 64 else 128, validation_split=0.25, verbose=0)
    return history.history, model.get_weights()


def test_same_seed_same_history_and_weights():
    h1, w1 = _seeded_run(7)
    h2, w2 = _seeded_run(7)
    assert h1 == h2
    assert_weights_equal(w1, w2)
    h3, w3 = _seeded_run(8)
    assert h3 != h1


def test_thread_count_does_not_change_the_result(threads):
    h1, w1 = _seeded_run(3, threads, 1, width=512)
    h2, w2 = _seeded_run(3, threads, 2, width=512)
    assert h1 == h2
    assert_weights_equal(w1, w2)


# ------------------------------------------------------------------------------------------ bad input


def _compiled(metrics=None):
    model = small_model()
    model.compile(optimizer="adam", loss="mse", metrics=metrics)
    model.fit(X3, Y3, epochs=1, verbose=0)                     # optimizer state exists
    return model


NAN_X = X3.copy()
NAN_X[5, 1] = np.nan
INF_X = X3.copy()
INF_X[0, 0] = np.inf
NAN_Y = Y3.copy()
NAN_Y[3] = np.nan

FIT_ERRORS = {
    "length_mismatch": (dict(x=X3, y=Y3[:30]), ValueError, r"len\(x\)=40.*len\(y\)=30"),
    "nan_x": (dict(x=NAN_X, y=Y3), ValueError, r"NaN.*x|x.*NaN"),
    "inf_x": (dict(x=INF_X, y=Y3), ValueError, r"finite"),
    "nan_y": (dict(x=X3, y=NAN_Y), ValueError, r"NaN.*y|y.*NaN"),
    "wrong_features": (dict(x=X3[:, :2], y=Y3), ValueError, r"3.*2|2.*3"),
    "strings": (dict(x=np.array([["a", "b", "c"]] * 40), y=Y3), TypeError, r"x"),
    "no_y": (dict(x=X3), ValueError, r"y"),
    "batch_size_0": (dict(x=X3, y=Y3, batch_size=0), ValueError, r"batch_size"),
    "batch_size_float": (dict(x=X3, y=Y3, batch_size=2.5), (ValueError, TypeError), r"batch_size"),
    "batch_size_str": (dict(x=X3, y=Y3, batch_size="8"), (ValueError, TypeError), r"batch_size"),
    "epochs_negative": (dict(x=X3, y=Y3, epochs=-1), ValueError, r"epochs"),
    "epochs_float": (dict(x=X3, y=Y3, epochs=2.5), (ValueError, TypeError), r"epochs"),
    "validation_split_1": (dict(x=X3, y=Y3, validation_split=1.0), ValueError, r"validation_split"),
    "validation_split_negative": (dict(x=X3, y=Y3, validation_split=-0.1), ValueError, r"validation_split"),
    "validation_split_str": (dict(x=X3, y=Y3, validation_split="0.2"), (ValueError, TypeError), r"validation_split"),
    "validation_split_too_small": (dict(x=X3[:1], y=Y3[:1], validation_split=0.5), ValueError, r"validation_split"),
    "verbose_3": (dict(x=X3, y=Y3, verbose=3), ValueError, r"verbose"),
    "verbose_str": (dict(x=X3, y=Y3, verbose="loud"), ValueError, r"verbose"),
    "sample_weight_shape": (dict(x=X3, y=Y3, sample_weight=np.ones(39)), ValueError, r"sample_weight"),
    "class_weight_missing": (dict(x=X3, y=(Y3 > 0).astype(np.int64), class_weight={0: 1.0}), ValueError,
                             r"class_weight"),
    "validation_data_form": (dict(x=X3, y=Y3, validation_data=X3), ValueError, r"validation_data"),
    "validation_data_nan": (dict(x=X3, y=Y3, validation_data=(NAN_X, Y3)), ValueError, r"NaN"),
    "validation_data_lengths": (dict(x=X3, y=Y3, validation_data=(X3, Y3[:3])), ValueError, r"len"),
}


@pytest.mark.parametrize("case", FIT_ERRORS)
def test_fit_bad_input_leaves_the_model_as_it_was(case):
    kwargs, error, message = FIT_ERRORS[case]
    kwargs = dict(kwargs)
    model = _compiled()
    before = model.get_weights()
    iterations = int(model.optimizer.iterations) if hasattr(model.optimizer, "iterations") else None
    with pytest.raises(error, match=message):
        model.fit(epochs=kwargs.pop("epochs", 2), verbose=kwargs.pop("verbose", 0), **kwargs)
    assert_weights_equal(before, model.get_weights())
    if iterations is not None:
        assert int(model.optimizer.iterations) == iterations


@pytest.mark.parametrize("call", ["predict", "evaluate", "train_on_batch", "test_on_batch"])
@pytest.mark.parametrize("bad", ["wrong_features", "nan_x", "length_mismatch"])
def test_other_entry_points_reject_bad_input(call, bad):
    if call == "predict" and bad == "length_mismatch":
        pytest.skip("predict takes no y")
    kwargs = dict(FIT_ERRORS[bad][0])
    model = _compiled()
    before = model.get_weights()
    if call == "predict":
        kwargs.pop("y")
    with pytest.raises(ValueError, match=FIT_ERRORS[bad][2]):
        getattr(model, call)(**kwargs)
    assert_weights_equal(before, model.get_weights())


def test_wrong_feature_count_at_predict_names_the_layer_and_sizes():
    model = small_model()
    with pytest.raises(ValueError) as info:
        model.predict(np.zeros((4, 5), np.float32), verbose=0)
    message = str(info.value)
    assert model.layers[0].name in message and "3" in message and "5" in message


@pytest.mark.parametrize("call,kwargs", [("predict", dict(batch_size=0)), ("predict", dict(verbose=5)),
                                         ("evaluate", dict(y=Y3, batch_size=-2)), ("evaluate", dict(y=Y3, verbose=5))])
def test_predict_and_evaluate_check_their_arguments(call, kwargs):
    model = _compiled()
    with pytest.raises(ValueError, match=next(iter(k for k in kwargs if k != "y"))):
        getattr(model, call)(X3, **kwargs)


@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_training_before_compile_raises(call):
    model = small_model()
    before = model.get_weights()
    with pytest.raises(RuntimeError, match="compile"):
        getattr(model, call)(X3, Y3)
    assert_weights_equal(before, model.get_weights())


@pytest.mark.parametrize("kwargs,match", [
    (dict(optimizer="adamm", loss="mse"), "optimizer"),
    (dict(optimizer="adam", loss="mean_squared_errors"), "loss"),
    (dict(optimizer="adam", loss="mse", metrics=["msee"]), "metric"),
    (dict(optimizer=3, loss="mse"), "optimizer"),
], ids=["optimizer", "loss", "metric", "optimizer_type"])
def test_bad_compile_leaves_the_model_as_it_was(kwargs, match):
    """A compile that raises must not leave the model half re-compiled: the optimizer (and its state), the loss
    and the metrics of the earlier compile stay, and the next fit works as before."""
    model = _compiled(metrics=["mae"])
    optimizer, loss = model.optimizer, model.loss
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.compile(**kwargs)
    assert model.optimizer is optimizer
    assert model.loss is loss
    assert_weights_equal(before, model.get_weights())
    assert list(model.fit(X3, Y3, epochs=1, verbose=0).history) == ["loss", "mae"]


def test_bad_compile_on_a_fresh_model_leaves_it_uncompiled():
    model = small_model()
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="adam", loss="nope")
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X3, Y3, verbose=0)


def test_fit_without_a_loss_raises():
    model = small_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="loss"):
        model.fit(X3, Y3, verbose=0)


def test_losses_module_is_the_one_compile_uses():
    model = small_model()
    model.compile(optimizer="adam", loss=losses.Huber(delta=0.5))
    assert isinstance(model.loss, losses.Huber) and model.loss.delta == 0.5
    assert isinstance(model.optimizer, optimizers.Adam)

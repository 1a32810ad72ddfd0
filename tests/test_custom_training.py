"""Custom training as Keras 3 writes it with an autograd backend (keras.io, "Customizing what happens in fit()
with PyTorch"): train_step(self, data), zero_grad, loss.backward(), optimizer.apply, metric trackers reset per
epoch, test_step, predict_step, a GAN's own compile with two optimizers, add_loss. Seeded and small."""
import numpy as np
import pytest

import engine
from engine import layers, losses, metrics, models, ops

RNG = np.random.default_rng(0)
X = RNG.standard_normal((256, 4)).astype("f4")
Y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]], "f4") + 0.1).astype("f4")


class Linear(models.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(1)

    def call(self, x):
        return self.dense(x)


class GuideModel(Linear):
    """The guide's first example: the compiled loss and metrics, reached through self.metrics."""

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.grad for v in trainable_weights]
        with engine.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_the_guides_train_step_with_compiled_loss_and_metrics():
    engine.set_seed(0)
    model = GuideModel()
    model.compile(optimizer=engine.optimizers.Adam(0.05), loss="mse", metrics=["mae"])
    history = model.fit(X, Y, epochs=20, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "mean_absolute_error"} or set(history.history) == {"loss", "mae"}
    assert history.history["loss"][-1] < 0.25 * history.history["loss"][0]


class OwnTrackers(Linear):
    """The guide's second example: its own loss function and trackers, compile(optimizer) alone."""

    def __init__(self):
        super().__init__()
        self.loss_tracker = metrics.Mean(name="loss")
        self.mae_metric = metrics.MeanAbsoluteError(name="mae")
        self.loss_fn = losses.MeanSquaredError()

    def train_step(self, data):
        x, y = data
        self.zero_grad()
        y_pred = self(x, training=True)
        loss = self.loss_fn(y, y_pred)
        loss.backward()
        self.optimizer.apply([v.grad for v in self.trainable_weights], self.trainable_weights)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        self.loss_tracker.update_state(self.loss_fn(y, y_pred))
        self.mae_metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker, self.mae_metric]


def test_own_trackers_are_reset_every_epoch_and_evaluate_uses_test_step():
    engine.set_seed(0)
    model = OwnTrackers()
    model.compile(optimizer=engine.optimizers.Adam(0.05))
    history = model.fit(X, Y, epochs=15, batch_size=32, verbose=0)
    losses_per_epoch = history.history["loss"]
    assert losses_per_epoch[-1] < 0.3 * losses_per_epoch[0]
    assert model.loss_tracker.count == 256 // 32          # reset at each epoch: it holds the last epoch's 8 batches
    logs = model.evaluate(X, Y, verbose=0, return_dict=True)
    with engine.no_grad():
        expected = float(np.mean((model(X).data - Y) ** 2))
    assert set(logs) == {"loss", "mae"} and logs["loss"] == pytest.approx(expected, rel=1e-4)


def test_predict_step_can_be_overridden():
    class Doubled(GuideModel):
        def predict_step(self, data):
            return self(data, training=False) * 2.0
    model = Doubled()
    out = model.predict(X[:5], verbose=0)
    with engine.no_grad():
        np.testing.assert_allclose(out, 2.0 * model(X[:5]).data, rtol=1e-6)


class GAN(models.Model):
    """A GAN in the keras.io layout: its own compile with two optimizers, its own trackers, fit(x) with no y."""

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator, self.generator, self.latent_dim = discriminator, generator, latent_dim
        self.d_loss_tracker = metrics.Mean(name="d_loss")
        self.g_loss_tracker = metrics.Mean(name="g_loss")
        self.seed_generator = engine.random.SeedGenerator(1337)
        self.built = True

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

    def train_step(self, real):
        if isinstance(real, tuple):
            real = real[0]
        batch = real.shape[0]
        z = engine.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        fake = self.generator(z)
        combined = ops.concatenate([fake, engine.tensor(real)], axis=0)
        labels = np.concatenate([np.ones((batch, 1)), np.zeros((batch, 1))]).astype("f4")
        self.zero_grad()
        d_loss = self.loss_fn(labels, self.discriminator(combined))
        d_loss.backward()
        self.d_optimizer.apply([v.grad for v in self.discriminator.trainable_weights],
                               self.discriminator.trainable_weights)
        z = engine.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        self.zero_grad()
        g_loss = self.loss_fn(np.zeros((batch, 1), "f4"), self.discriminator(self.generator(z)))
        g_loss.backward()
        self.g_optimizer.apply([v.grad for v in self.generator.trainable_weights], self.generator.trainable_weights)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def test_a_gan_with_two_optimizers_moves_the_generator_towards_the_data():
    engine.set_seed(0)
    real = (RNG.standard_normal((512, 2)) * 0.2 + [2.0, -1.0]).astype("f4")
    generator = models.Sequential([layers.Input(shape=(3,)), layers.Dense(16, activation="relu"), layers.Dense(2)])
    discriminator = models.Sequential([layers.Input(shape=(2,)), layers.Dense(16, activation="relu"),
                                       layers.Dense(1, activation="sigmoid")])
    gan = GAN(discriminator, generator, latent_dim=3)
    gan.compile(d_optimizer=engine.optimizers.Adam(0.01), g_optimizer=engine.optimizers.Adam(0.01),
                loss_fn=losses.BinaryCrossentropy())
    before = np.linalg.norm(generator.predict(RNG.standard_normal((256, 3)).astype("f4"), verbose=0).mean(0)
                            - [2.0, -1.0])
    g_before = [w.copy() for w in generator.get_weights()]
    history = gan.fit(real, epochs=100, batch_size=64, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert gan.d_optimizer.iterations == gan.g_optimizer.iterations == 100 * 8      # one step each per batch
    assert all(not np.array_equal(a, b) for a, b in zip(g_before, generator.get_weights()))
    after = np.linalg.norm(generator.predict(RNG.standard_normal((256, 3)).astype("f4"), verbose=0).mean(0)
                           - [2.0, -1.0])
    assert after < 0.5 * before, (before, after)                  # the generated mean moved towards the data's


class KLPenalty(layers.Layer):
    """A VAE's KL term, added with add_loss in call."""

    def call(self, inputs):
        mean, log_var = inputs
        kl = -0.5 * ops.mean(ops.sum(1 + log_var - ops.square(mean) - ops.exp(log_var), axis=1))
        self.add_loss(kl)
        return mean


def test_add_loss_trains_a_model_compiled_without_a_loss_and_fit_takes_x_alone():
    engine.set_seed(0)
    inp = layers.Input(shape=(4,))
    mean, log_var = layers.Dense(2)(inp), layers.Dense(2)(inp)
    model = models.Model(inp, KLPenalty()([mean, log_var]))
    model.compile(optimizer=engine.optimizers.Adam(0.05))
    history = model.fit(X, epochs=30, batch_size=64, verbose=0)
    assert history.history["loss"][0] > 0.5 and history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    model(X[:8])
    assert len(model.losses) == 1 and model.losses[0].item() >= 0           # one KL term per forward pass
    model(X[:8])
    assert len(model.losses) == 1                                            # cleared when the next pass starts


def test_zero_grad_get_layer_and_the_engine_0_1_step_signature():
    class Legacy(GuideModel):
        def train_step(self, x, y, sample_weight=None):
            return super().train_step((x, y))
    engine.set_seed(0)
    model = Legacy()
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(X, Y, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    (model(X).sum()).backward()
    model.zero_grad()
    assert all(w.grad is None for w in model.weights)
    seq = models.Sequential([layers.Input(shape=(4,)), layers.Dense(3, name="first"), layers.Dense(1)])
    assert seq.get_layer("first") is seq.layers[0] and seq.get_layer(index=-1) is seq.layers[1]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        seq.get_layer("nope")
    with pytest.raises(ValueError, match=r"get_layer: expected index in \[-2, 2\)"):
        seq.get_layer(index=5)


def test_bad_custom_training():
    class ReturnsLoss(GuideModel):
        def train_step(self, data):
            super().train_step(data)
            return 0.5
    model = ReturnsLoss()
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(TypeError, match=r"fit: expected train_step to return a dict of metric values.*"
                                        r"Received: float"):
        model.fit(X, Y, epochs=1, verbose=0)
    gan = GAN(models.Sequential([layers.Dense(1)]), models.Sequential([layers.Dense(2)]), 3)
    with pytest.raises(RuntimeError, match="fit: the model must be compiled first"):
        gan.fit(X, epochs=1, verbose=0)
    plain = models.Sequential([layers.Input(shape=(4,)), layers.Dense(1)])
    plain.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"fit: expected a loss.*self.add_loss"):
        plain.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match=r"add_loss: expected a scalar loss"):
        KLPenalty().add_loss(np.ones(3))

"""BatchNormalization and GroupNormalization, with Keras 3's arguments, defaults and weights.

GroupNormalization is layer normalisation over groups of channels: the channels are split into `groups`
groups, and each sample's group (all its pixels, the group's channels) is normalised on its own. It runs the
layernorm kernels (engine/ref/layernorm.py, csrc/layernorm.cpp) through ops.layer_normalization, which takes
the statistics over several axes at once: x (N, ..., C) is viewed as (N, ..., G, C / G) and normalised over
every axis but N and G.

Weights, in Keras' order: gamma (if scale), beta (if center), moving_mean, moving_variance; the last two are
non-trainable, updated during training, and saved with the model like every weight. Runs the batchnorm
kernels (engine/ref/batchnorm.py, csrc/batchnorm.cpp) through ops.batch_norm.
"""
import numpy as np

from .. import ops
from ._args import fraction, positive_int
from .base import Layer


class BatchNormalization(Layer):
    """Normalise each channel of `axis` (the last by default) to mean 0 and variance 1, then scale by gamma and
    shift by beta: y = gamma * (x - mean) / sqrt(var + epsilon) + beta.

    Training (fit, or calling with training=True on a trainable layer) uses the batch's mean and variance and
    moves the moving statistics toward them: moving = moving * momentum + batch * (1 - momentum). Inference
    (predict, evaluate, training=False, or a layer with trainable=False, as in Keras) uses the moving
    statistics. Keras' defaults: momentum=0.99, epsilon=1e-3."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"BatchNormalization: expected axis to be an int (engine normalises one axis). "
                             f"Received: axis={axis!r}")
        momentum = fraction("BatchNormalization", "momentum", momentum)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"BatchNormalization: expected epsilon > 0. Received: epsilon={epsilon!r}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self._set_options(beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                          moving_mean_initializer=moving_mean_initializer,
                          moving_variance_initializer=moving_variance_initializer,
                          beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer)

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank or input_shape[self.axis] is None:
            raise ValueError(f"BatchNormalization '{self.name}': expected axis={self.axis} to name an axis of known "
                             f"size. Received: input_shape={tuple(input_shape)}")
        C = (int(input_shape[self.axis]),)
        self.gamma = self.add_weight(C, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                     name="gamma") if self.scale else None
        self.beta = self.add_weight(C, self.beta_initializer, regularizer=self.beta_regularizer,
                                    name="beta") if self.center else None
        self.moving_mean = self.add_weight(C, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(C, self.moving_variance_initializer, trainable=False,
                                               name="moving_variance")
        self.built = True

    def call(self, inputs, training=None):
        C = self.moving_mean.shape[0]
        if not -inputs.ndim <= self.axis < inputs.ndim or inputs.shape[self.axis] != C:
            raise ValueError(f"BatchNormalization '{self.name}': expected an input with {C} values on axis "
                             f"{self.axis} (the layer was built for it). Received: input.shape={inputs.shape}")
        gamma = self.gamma if self.gamma is not None else np.ones(C, np.float32)
        beta = self.beta if self.beta is not None else np.zeros(C, np.float32)
        use_batch = bool(training) and self.trainable
        return ops.batch_norm(inputs, gamma, beta, self.moving_mean.data, self.moving_variance.data, self.momentum,
                              self.epsilon, use_batch, self.axis)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **self._options_config("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                                       "moving_variance_initializer", "beta_regularizer", "gamma_regularizer")}


class GroupNormalization(Layer):
    """Normalise groups of channels: split the channels of `axis` (the last by default) into `groups` groups and
    give each sample's group mean 0 and variance 1 (over its pixels and channels), then y = gamma * xhat + beta
    per channel. groups=1 is layer normalisation over a whole sample; groups=C is instance normalisation.
    Unlike BatchNormalization it does not depend on the batch, so training and inference compute the same.
    Weights, in Keras' order: gamma (if scale), beta (if center), each (C,)."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = "GroupNormalization"
        self.groups = positive_int(where, "groups", groups)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{where}: expected axis to be an int. Received: axis={axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"{where}: expected epsilon > 0. Received: epsilon={epsilon!r}")
        for name, value in (("beta_constraint", beta_constraint), ("gamma_constraint", gamma_constraint)):
            if value is not None:
                raise ValueError(f"{where}: engine has no weight constraints yet. Received: {name}={value!r}")
        self.axis, self.epsilon, self.center, self.scale = int(axis), float(epsilon), bool(center), bool(scale)
        self._set_options(beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                          beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer)

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or not -rank <= self.axis < rank or self.axis % rank == 0 or input_shape[self.axis] is None:
            raise ValueError(f"GroupNormalization '{self.name}': expected axis={self.axis} to name a channel axis of "
                             f"known size (not the batch). Received: input_shape={tuple(input_shape)}")
        C = int(input_shape[self.axis])
        if C % self.groups:
            raise ValueError(f"GroupNormalization '{self.name}': expected groups={self.groups} to divide the "
                             f"{C} channels. Received: input_shape={tuple(input_shape)}")
        self.gamma = self.add_weight((C,), self.gamma_initializer, regularizer=self.gamma_regularizer,
                                     name="gamma") if self.scale else None
        self.beta = self.add_weight((C,), self.beta_initializer, regularizer=self.beta_regularizer,
                                    name="beta") if self.center else None
        self.built = True

    def call(self, inputs):
        axis, C = self.axis % inputs.ndim, (self.gamma if self.gamma is not None else self.beta)
        channels = inputs.shape[axis]
        if (C is not None and channels != C.shape[0]) or channels % self.groups:
            raise ValueError(f"GroupNormalization '{self.name}': expected an input with the channels it was built "
                             f"for on axis {self.axis}. Received: input.shape={inputs.shape}")
        G = self.groups
        grouped = ops.reshape(inputs, inputs.shape[:axis] + (G, channels // G) + inputs.shape[axis + 1:])
        over = tuple(a for a in range(1, grouped.ndim) if a != axis)          # all but the batch and the group
        y = ops.reshape(ops.layer_normalization(grouped, axis=over, epsilon=self.epsilon), inputs.shape)
        shape = tuple(channels if a == axis else 1 for a in range(inputs.ndim))
        if self.gamma is not None:
            y = y * ops.reshape(self.gamma, shape)
        if self.beta is not None:
            y = y + ops.reshape(self.beta, shape)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **self._options_config("beta_initializer", "gamma_initializer", "beta_regularizer",
                                       "gamma_regularizer")}

"""LayerNormalization: each example normalised over its feature axes (Keras 3's layer), on the layernorm
kernels (engine/ref/layernorm.py, csrc/layernorm.cpp). Shapes: N batch, D the normalised features."""
import numpy as np

from .. import ops
from .base import Layer


class LayerNormalization(Layer):
    """y = (x - mean) / sqrt(var + epsilon) * gamma + beta, with mean and var over `axis` (an int or a list of
    ints; the last axis by default) for each example on its own, so the batch size does not matter.

    center=False drops beta, scale=False drops gamma; rms_scaling=True divides by the root mean square
    (no centring, no beta). gamma and beta have the shape of the normalised axes, as Keras stores them."""

    supports_masking = True                  # a mask on the input passes through to the output

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise TypeError(f"LayerNormalization: expected axis to be an int or a list of ints. Received: axis={axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"LayerNormalization: expected epsilon > 0. Received: epsilon={epsilon!r}")
        for name, value in (("beta_constraint", beta_constraint), ("gamma_constraint", gamma_constraint)):
            if value is not None:
                raise ValueError(f"LayerNormalization: engine has no weight constraints yet. Received: {name}={value!r}")
        self.axis = [int(a) for a in axes] if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = float(epsilon)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), bool(rms_scaling)
        self._set_options(beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                          beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer)

    def _axes(self, ndim):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -ndim <= a < ndim for a in axes) or any(a % ndim == 0 for a in axes) and ndim > 1:
            raise ValueError(f"LayerNormalization '{self.name}': expected axis among the non-batch axes of an input "
                             f"of rank {ndim}. Received: axis={self.axis}")
        return sorted({a % ndim for a in axes})

    def build(self, input_shape):
        axes = self._axes(len(input_shape))
        shape = tuple(input_shape[a] for a in axes)
        if any(d is None for d in shape):
            raise ValueError(f"LayerNormalization '{self.name}': expected known sizes on the normalised axes. "
                             f"Received: input_shape={tuple(input_shape)}, axis={self.axis}")
        self.gamma = self.add_weight(shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                     name="gamma") if self.scale or self.rms_scaling else None
        self.beta = self.add_weight(shape, self.beta_initializer, regularizer=self.beta_regularizer,
                                    name="beta") if self.center and not self.rms_scaling else None
        self._param_shape = shape
        self.built = True

    def call(self, inputs):
        axes = self._axes(inputs.ndim)
        if tuple(inputs.shape[a] for a in axes) != self._param_shape:
            raise ValueError(f"LayerNormalization '{self.name}': expected input sizes {self._param_shape} on axis "
                             f"{self.axis} (the layer was built for them). Received: input.shape={inputs.shape}")
        return ops.layer_normalization(inputs, self.gamma, self.beta, axis=tuple(axes), epsilon=self.epsilon,
                                       rms_scaling=self.rms_scaling)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                **self._options_config("beta_initializer", "gamma_initializer", "beta_regularizer",
                                       "gamma_regularizer")}

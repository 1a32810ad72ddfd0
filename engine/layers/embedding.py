"""Embedding: integer token ids -> learned vectors, one row of a table per id (Keras 3's layer).
Shapes: N batch, T time (or any further axes), V = input_dim rows, D = output_dim features."""
import warnings

import numpy as np

from .. import ops
from ..tensor import Tensor
from ._args import positive_int
from .base import Layer


class Embedding(Layer):
    """Turns token ids into dense vectors: y[n, t] = embeddings[ids[n, t]].    (N, T) ints -> (N, T, D).

    embeddings (V, D) is stored as Keras stores it, so weights move between Keras and engine. With
    mask_zero=True, id 0 is padding: the layer attaches a mask (ids != 0) to its output, and the recurrent
    layers after it leave their state unchanged on those steps (id 0 then cannot be a real token, so
    input_dim should be the vocabulary size + 1). The backward adds each output row's gradient into the
    row it came from (a scatter-add: repeated ids accumulate), see csrc/embedding.cpp."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 **kwargs):
        if kwargs.pop("input_length", None) is not None:       # Keras 3 dropped it, with the same warning
            warnings.warn("Embedding: argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        input_dim, output_dim = positive_int("Embedding", "input_dim", input_dim), \
            positive_int("Embedding", "output_dim", output_dim)
        if embeddings_constraint is not None:
            raise ValueError("Embedding: engine has no weight constraints yet. Received: "
                             f"embeddings_constraint={embeddings_constraint!r}")
        if lora_rank is not None:
            raise ValueError(f"Embedding: engine has no LoRA yet. Received: lora_rank={lora_rank!r}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        # Keras' 'uniform' is RandomUniform(-0.05, 0.05)
        self._set_options(embeddings_initializer="random_uniform" if embeddings_initializer == "uniform"
                          else embeddings_initializer, embeddings_regularizer=embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self._initial_weights = weights

    def build(self, input_shape=None):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer, name="embeddings")   # (V, D)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def __call__(self, inputs, training=None, **kwargs):
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "iu":
            inputs = Tensor._wrap(inputs)          # integer ids stay integers (Layer.__call__ makes float32)
        return super().__call__(inputs, training=training, **kwargs)

    def _ids(self, inputs):
        """The ids as an int64 array; float input (a model's input is float32) must hold whole numbers."""
        ids = inputs.data if isinstance(inputs, Tensor) else np.asarray(inputs)
        if ids.dtype.kind == "f":
            if not np.array_equal(ids, np.round(ids)):
                bad = ids[ids != np.round(ids)][0]
                raise ValueError(f"Embedding '{self.name}': expected integer token ids. Received: a token id of {bad}")
            ids = ids.astype(np.int64)
        elif ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding '{self.name}': expected integer token ids. Received: ids.dtype={ids.dtype}")
        bad = (ids < 0) | (ids >= self.input_dim)
        if bad.any():
            raise ValueError(f"Embedding '{self.name}': expected token ids in [0, {self.input_dim}) (input_dim="
                             f"{self.input_dim}). Received: a token id of {ids[bad][0]}")
        return ids

    def call(self, inputs):
        return ops.embedding(self._ids(inputs), self.embeddings)               # (..., D)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return self._ids(inputs) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                **self._options_config("embeddings_initializer", "embeddings_regularizer"),
                "embeddings_constraint": None, "mask_zero": self.mask_zero, "lora_rank": None}

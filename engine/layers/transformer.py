"""Transformer layers with KerasHub's names and arguments: PositionalEncoding (sinusoidal, KerasHub's
SinePositionEncoding), PositionEmbedding (learned), TransformerEncoder and TransformerDecoder blocks.
Shapes: B batch, T steps (S on the encoder side), D hidden size, N heads, F = intermediate_dim.

The position layers return the encoding of each step, shaped like their input; add it to the token
embeddings: `x = tokens + PositionalEncoding()(tokens)`. A block is attention, then a position-wise
feed-forward network (Dense(F, activation), Dense(D)); each of the two (three with cross-attention) is wrapped
in dropout + residual connection + LayerNormalization, after the residual (normalize_first=False, the original
Transformer) or before the sublayer (normalize_first=True, "pre-norm"). Blocks keep the shape (B, T, D), so
they stack N times."""
import numpy as np

from .. import ops, serialization
from ..tensor import Tensor
from .attention import MultiHeadAttention
from ._args import fraction, positive_int
from .base import Layer, get_mask
from .core import Dense, Dropout
from .layernorm import LayerNormalization
from .symbolic import shape_of


def _steps_and_features(where, input_shape):
    if len(input_shape) < 3 or input_shape[-1] is None:
        raise ValueError(f"{where}: expected an input of shape (batch, steps, features) with known features. "
                         f"Received: input_shape={tuple(input_shape)}")


class PositionalEncoding(Layer):
    """The sinusoidal position encoding of "Attention Is All You Need", shaped like the input (..., T, D):
    PE[t, 2i] = sin(t / w^(2i/D)), PE[t, 2i + 1] = cos(t / w^(2i/D)), w = max_wavelength. Nothing is learned.
    call(inputs, start_index=0): positions start_index, start_index + 1, ..."""

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        if isinstance(max_wavelength, bool) or not isinstance(max_wavelength, (int, float)) or max_wavelength <= 0:
            raise ValueError(f"PositionalEncoding: expected max_wavelength > 0. Received: max_wavelength={max_wavelength!r}")
        self.max_wavelength = max_wavelength

    def build(self, input_shape):
        _steps_and_features(f"PositionalEncoding '{self.name}'", input_shape)
        self.built = True

    def call(self, inputs, start_index=0):
        steps, dim = inputs.shape[-2], inputs.shape[-1]
        positions = np.arange(steps, dtype=np.float64) + start_index
        timescales = np.power(1.0 / self.max_wavelength, 2 * (np.arange(dim) // 2) / dim)
        angles = positions[:, None] * timescales[None, :]                       # (T, D)
        encoding = np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles)).astype(np.float32)
        return ops.broadcast_to(Tensor._wrap(encoding), inputs.shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


SinePositionEncoding = PositionalEncoding        # KerasHub's name
serialization.register_builtin("layer", PositionalEncoding, "SinePositionEncoding")


class PositionEmbedding(Layer):
    """A learned position embedding: one trainable vector per step, embeddings (sequence_length, D), shaped
    like the input (..., T, D) with T <= sequence_length. call(inputs, start_index=0)."""

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = positive_int("PositionEmbedding", "sequence_length", sequence_length)
        self._set_options(initializer=initializer)

    def build(self, input_shape):
        _steps_and_features(f"PositionEmbedding '{self.name}'", input_shape)
        self.position_embeddings = self.add_weight((self.sequence_length, input_shape[-1]), self.initializer,
                                                   name="embeddings")                        # (L, D)
        self.built = True

    def call(self, inputs, start_index=0):
        steps = inputs.shape[-2]
        if start_index + steps > self.sequence_length or inputs.shape[-1] != self.position_embeddings.shape[1]:
            raise ValueError(f"PositionEmbedding '{self.name}': expected at most sequence_length="
                             f"{self.sequence_length} steps (from start_index={start_index}) of "
                             f"{self.position_embeddings.shape[1]} features. Received: input.shape={inputs.shape}")
        rows = self.position_embeddings[start_index:start_index + steps]                     # (T, D)
        return ops.broadcast_to(rows, inputs.shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                **self._options_config("initializer")}


def _padding_and_attention(where, padding_mask, attention_mask):
    """KerasHub's merge: a padding mask (B, S) hides keys from every query; with an attention mask (B, T, S),
    both must allow. -> a bool array for MultiHeadAttention's attention_mask, or None."""
    mask = None
    if padding_mask is not None:
        mask = np.asarray(ops.to_array(padding_mask)).astype(bool)
        if mask.ndim != 2:
            raise ValueError(f"{where}: expected a padding mask of shape (batch, steps). Received: shape={mask.shape}")
        mask = mask[:, None, :]
    if attention_mask is not None:
        a = np.asarray(ops.to_array(attention_mask)).astype(bool)
        mask = a if mask is None else mask & a
    return mask


class _TransformerBlock(Layer):
    """What the encoder and decoder blocks share: arguments, sublayers, the residual wrapper."""

    supports_masking = True

    def __init__(self, intermediate_dim, num_heads, dropout=0, activation="relu", layer_norm_epsilon=1e-5,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", normalize_first=False, **kwargs):
        super().__init__(**kwargs)
        where = type(self).__name__
        self.intermediate_dim = positive_int(where, "intermediate_dim", intermediate_dim)
        self.num_heads = positive_int(where, "num_heads", num_heads)
        self.dropout = fraction(where, "dropout", dropout, below_one=True)
        self._set_options(activation=activation, kernel_initializer=kernel_initializer,
                          bias_initializer=bias_initializer)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.normalize_first = bool(normalize_first)

    def _hidden(self, input_shape):
        _steps_and_features(f"{type(self).__name__} '{self.name}'", input_shape)
        hidden = input_shape[-1]
        if hidden // self.num_heads == 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': the head size hidden_dim // num_heads must be at "
                             f"least 1. Received: hidden_dim={hidden}, num_heads={self.num_heads}")
        return hidden

    def _attention_block(self, prefix, query_shape, value_shape, hidden):
        """The attention sublayer `prefix` with its layer norm and dropout, built: (attention, norm, dropout)."""
        attention = MultiHeadAttention(self.num_heads, hidden // self.num_heads, dropout=self.dropout, name=prefix,
                                       **self._options_config("kernel_initializer", "bias_initializer"))
        attention.build(query_shape, value_shape)
        return attention, self._norm(f"{prefix}_layer_norm", query_shape), Dropout(self.dropout, name=f"{prefix}_dropout")

    def _norm(self, name, shape):
        norm = LayerNormalization(epsilon=self.layer_norm_epsilon, name=name)
        norm.build(shape)
        return norm

    def _feedforward(self, hidden):
        init = self._options_config("kernel_initializer", "bias_initializer")
        return (Dense(self.intermediate_dim, activation=self.activation, name="feedforward_intermediate_dense", **init),
                Dense(hidden, name="feedforward_output_dense", **init))

    def _residual(self, x, sublayer, norm, dropout, training):
        """x + dropout(sublayer(x)), with the norm after the sum (post-norm) or on the sublayer's input (pre-norm)."""
        y = sublayer(norm(x) if self.normalize_first else x)
        y = ops.add(dropout(y, training=training), x)
        return y if self.normalize_first else norm(y)

    def _ffn(self, x, training):
        inner, outer = self.feedforward_intermediate_dense, self.feedforward_output_dense
        return self._residual(x, lambda h: outer(inner(h)), self.feedforward_layer_norm, self.feedforward_dropout,
                              training)

    def compute_output_shape(self, input_shape, *args):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "intermediate_dim": self.intermediate_dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "layer_norm_epsilon": self.layer_norm_epsilon,
                **self._options_config("activation", "kernel_initializer", "bias_initializer"),
                "normalize_first": self.normalize_first}


class TransformerEncoder(_TransformerBlock):
    """One encoder block: self-attention over the whole sequence, then the feed-forward network.
    call(inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False);
    padding_mask (B, T) is True on real steps (by default the mask Embedding(mask_zero=True) attached)."""

    def build(self, input_shape):
        hidden = self._hidden(input_shape)
        self.self_attention, self.self_attention_layer_norm, self.self_attention_dropout = self._attention_block(
            "self_attention", input_shape, input_shape, hidden)
        self.feedforward_layer_norm = self._norm("feedforward_layer_norm", input_shape)
        self.feedforward_intermediate_dense, self.feedforward_output_dense = self._feedforward(hidden)
        self.feedforward_dropout = Dropout(self.dropout, name="feedforward_dropout")
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False):
        padding_mask = get_mask(inputs) if padding_mask is None else padding_mask
        mask = _padding_and_attention(f"TransformerEncoder '{self.name}'", padding_mask, attention_mask)
        scores = []

        def attend(h):
            out = self.self_attention(h, h, attention_mask=mask, training=training,
                                      return_attention_scores=return_attention_scores)
            if return_attention_scores:
                scores.append(out[1])
                return out[0]
            return out
        x = self._residual(inputs, attend, self.self_attention_layer_norm, self.self_attention_dropout, training)
        x = self._ffn(x, training)
        return (x, scores[0]) if return_attention_scores else x


class TransformerDecoder(_TransformerBlock):
    """One decoder block: causal self-attention (step t sees steps 0..t), then, when an encoder_sequence is
    given, cross-attention from the decoder steps to the encoder's, then the feed-forward network. Without an
    encoder it is a GPT-style block.
    call(decoder_sequence, encoder_sequence=None, decoder_padding_mask=None, decoder_attention_mask=None,
         encoder_padding_mask=None, encoder_attention_mask=None, use_causal_mask=True, training=None)."""

    def __call__(self, decoder_sequence, encoder_sequence=None, **kwargs):
        if not self.built:
            self.build(shape_of(decoder_sequence), None if encoder_sequence is None else shape_of(encoder_sequence))
        return super().__call__(decoder_sequence, encoder_sequence, **kwargs)

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden = self._hidden(decoder_sequence_shape)
        self.self_attention, self.self_attention_layer_norm, self.self_attention_dropout = self._attention_block(
            "self_attention", decoder_sequence_shape, decoder_sequence_shape, hidden)
        self.cross_attention = None
        if encoder_sequence_shape is not None:
            _steps_and_features(f"TransformerDecoder '{self.name}'", encoder_sequence_shape)
            self.cross_attention, self.cross_attention_layer_norm, self.cross_attention_dropout = \
                self._attention_block("cross_attention", decoder_sequence_shape, encoder_sequence_shape, hidden)
        self.feedforward_intermediate_dense, self.feedforward_output_dense = self._feedforward(hidden)
        self.feedforward_layer_norm = self._norm("feedforward_layer_norm", decoder_sequence_shape)
        self.feedforward_dropout = Dropout(self.dropout, name="feedforward_dropout")
        self.built = True

    def call(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None, decoder_attention_mask=None,
             encoder_padding_mask=None, encoder_attention_mask=None, use_causal_mask=True, training=None):
        where = f"TransformerDecoder '{self.name}'"
        if (encoder_sequence is None) != (self.cross_attention is None):
            raise ValueError(f"{where}: the block was built {'with' if self.cross_attention else 'without'} an "
                             f"encoder_sequence and must be called the same way. Received: encoder_sequence="
                             f"{'None' if encoder_sequence is None else 'a tensor'}")
        decoder_padding_mask = get_mask(decoder_sequence) if decoder_padding_mask is None else decoder_padding_mask
        self_mask = _padding_and_attention(where, decoder_padding_mask, decoder_attention_mask)
        x = self._residual(decoder_sequence, lambda h: self.self_attention(
            h, h, attention_mask=self_mask, use_causal_mask=use_causal_mask, training=training),
            self.self_attention_layer_norm, self.self_attention_dropout, training)
        if encoder_sequence is not None:
            if not isinstance(encoder_sequence, Tensor):
                encoder_sequence = ops.convert_to_tensor(encoder_sequence)
            encoder_padding_mask = get_mask(encoder_sequence) if encoder_padding_mask is None else encoder_padding_mask
            cross_mask = _padding_and_attention(where, encoder_padding_mask, encoder_attention_mask)
            x = self._residual(x, lambda h: self.cross_attention(h, encoder_sequence, attention_mask=cross_mask,
                                                                 training=training),
                               self.cross_attention_layer_norm, self.cross_attention_dropout, training)
        return self._ffn(x, training)

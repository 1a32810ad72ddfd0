"""MultiHeadAttention (Keras 3's layer) on the fused attention kernel (engine/ref/attention.py,
csrc/attention_fused.cpp). Shapes: B batch, T query steps, S key/value steps, C features, N heads,
H = key_dim (query and key head size), HV = value_dim (value head size)."""
import math

import numpy as np

from .. import ops
from ..tensor import Tensor, is_grad_enabled
from ._args import fraction, positive_int
from .base import Layer, get_mask
from .core import Dropout
from .symbolic import shape_of


def _bool_mask(where, name, mask):
    mask = np.asarray(ops.to_array(mask))
    if mask.dtype.kind not in "biu":
        raise TypeError(f"{where}: expected {name} to hold booleans (True = attend). Received: {name}.dtype={mask.dtype}")
    return mask.astype(bool)


class MultiHeadAttention(Layer):
    """Multi-head attention: each of num_heads heads projects the query, key and value (Dense-like kernels),
    attends (softmax(q k^T / sqrt(key_dim)) v), and an output kernel mixes the heads back together.

        layer = MultiHeadAttention(num_heads=2, key_dim=2)
        out, scores = layer(query, value, return_attention_scores=True)   # (B, T, C), (B, N, T, S)

    call(query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
         return_attention_scores=False, training=None, use_causal_mask=False): key defaults to value;
    attention_mask (B, T, S) is True where a query may attend to a key; the query/value/key masks (B, T) or
    (B, S), and the masks Embedding(mask_zero=True) attaches, are combined into it, as in Keras.
    Weights in Keras' layout and order: query/kernel (C, N, H), query/bias (N, H), key/kernel, key/bias,
    value/kernel (C, N, HV), value/bias (N, HV), attention_output/kernel (N, HV, *output_shape), its bias.

    The attention itself runs on the fused kernel (no (T, S) score matrix in memory). With dropout while
    training, or when the returned scores must carry gradients, it runs as separate ops (scores, softmax,
    dropout, weighted sum) instead, which is what Keras computes."""

    supports_masking = True                  # the output keeps the query's mask

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, seed=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = "MultiHeadAttention"
        self.num_heads = positive_int(where, "num_heads", num_heads)
        self.key_dim = positive_int(where, "key_dim", key_dim)
        self.value_dim = positive_int(where, "value_dim", value_dim, allow_none=True)
        self.dropout, self.use_bias = fraction(where, "dropout", dropout, below_one=True), bool(use_bias)
        if output_shape is not None:
            dims = output_shape if isinstance(output_shape, (list, tuple)) else (output_shape,)
            output_shape = tuple(positive_int(where, "output_shape", d) for d in dims)
        self._output_shape = output_shape
        if attention_axes is not None:
            axes = attention_axes if isinstance(attention_axes, (list, tuple)) else (attention_axes,)
            if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
                raise TypeError(f"{where}: expected attention_axes to be None, an int or a tuple of ints. "
                                f"Received: attention_axes={attention_axes!r}")
            attention_axes = tuple(int(a) for a in axes)
        self.attention_axes = attention_axes
        if flash_attention not in (None, True, False):
            raise ValueError(f"{where}: expected flash_attention to be None, True or False. "
                             f"Received: flash_attention={flash_attention!r}")
        if flash_attention and self.dropout > 0:
            raise ValueError(f"{where}: dropout on the attention weights needs them in memory, so it cannot run "
                             f"with flash_attention=True. Received: dropout={dropout}")
        self.flash_attention = flash_attention
        for name, value in (("kernel_constraint", kernel_constraint), ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"{where}: engine has no weight constraints yet. Received: {name}={value!r}")
        self._set_options(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                          kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer)
        self.seed = seed
        self.dropout_layer = Dropout(self.dropout, seed=seed, name=f"{self.name}_dropout")
        self.keep_scores = False             # engine.visualize sets it to read the weights of the last call
        self.last_attention_scores = None

    # ---- shapes and weights
    def _attention_axes(self, rank):
        """The attention axes of an input of `rank` (batch first, features last) as sorted non-negative ints."""
        middle = list(range(1, rank - 1))
        if self.attention_axes is None:
            return middle
        axes = sorted({a % rank for a in self.attention_axes})
        if any(a not in middle for a in axes):
            raise ValueError(f"MultiHeadAttention '{self.name}': expected attention_axes among the axes between batch "
                             f"and features of a rank-{rank} input. Received: attention_axes={self.attention_axes}")
        return axes

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = tuple(query_shape if value_shape is None else value_shape)
        key_shape = tuple(value_shape if key_shape is None else key_shape)
        query_shape = tuple(query_shape)
        where = f"MultiHeadAttention '{self.name}'"
        if len(query_shape) < 3 or len(value_shape) != len(query_shape) or len(key_shape) != len(query_shape):
            raise ValueError(f"{where}: expected query, value and key of one rank, at least 3 (batch, steps, "
                             f"features). Received: query.shape={query_shape}, value.shape={value_shape}, "
                             f"key.shape={key_shape}")
        if any(s[-1] is None for s in (query_shape, value_shape, key_shape)):
            raise ValueError(f"{where}: expected known feature sizes (the last axis). Received: query.shape="
                             f"{query_shape}, value.shape={value_shape}, key.shape={key_shape}")
        self._attention_axes(len(query_shape))
        N, H, HV = self.num_heads, self.key_dim, self.value_dim or self.key_dim
        out = self._output_shape or (query_shape[-1],)

        def weight(shape, name, bias=False):
            init, reg = (self.bias_initializer, self.bias_regularizer) if bias else \
                (self.kernel_initializer, self.kernel_regularizer)
            return self.add_weight(shape, init, regularizer=reg, name=name)
        self.query_kernel = weight((query_shape[-1], N, H), "query/kernel")
        self.query_bias = weight((N, H), "query/bias", True) if self.use_bias else None
        self.key_kernel = weight((key_shape[-1], N, H), "key/kernel")
        self.key_bias = weight((N, H), "key/bias", True) if self.use_bias else None
        self.value_kernel = weight((value_shape[-1], N, HV), "value/kernel")
        self.value_bias = weight((N, HV), "value/bias", True) if self.use_bias else None
        self.output_kernel = weight((N, HV) + tuple(out), "attention_output/kernel")
        self.output_bias = weight(tuple(out), "attention_output/bias", True) if self.use_bias else None
        self._built_features = (query_shape[-1], value_shape[-1], key_shape[-1])
        self.built = True

    def __call__(self, query, value=None, key=None, **kwargs):
        if value is None:
            raise TypeError(f"MultiHeadAttention '{self.name}': missing the `value` argument: call(query, value, "
                            f"key=None, ...); for self-attention pass the same tensor twice")
        if not self.built:
            self.build(shape_of(query), shape_of(value), None if key is None else shape_of(key))
        return super().__call__(query, value, key, **kwargs)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return tuple(query_shape[:-1]) + (self._output_shape or (query_shape[-1],))

    # ---- the computation
    def _project(self, x, kernel, bias):
        """x (..., C) @ kernel (C, N, D) + bias (N, D) -> (..., N, D)"""
        C, N, D = kernel.shape
        y = ops.matmul(x, ops.reshape(kernel, (C, N * D)))
        if bias is not None:
            y = ops.bias_add(y, ops.reshape(bias, (N * D,)))
        return ops.reshape(y, tuple(x.shape[:-1]) + (N, D))

    def _attention_mask(self, query, value, key, query_mask, value_mask, key_mask, attention_mask, use_causal_mask,
                        q_len, s_len):
        """Keras' combination of masks as one bool array broadcastable to (B, 1, T, S), or None."""
        where = f"MultiHeadAttention '{self.name}'"
        B = query.shape[0]
        query_mask = get_mask(query) if query_mask is None else query_mask
        value_mask = get_mask(value) if value_mask is None else value_mask
        key_mask = get_mask(key) if key_mask is None and key is not value else key_mask
        mask = None

        def both(a, b):
            return b if a is None else a & b
        for name, given, axis, length in (("query_mask", query_mask, -1, q_len), ("value_mask", value_mask, -2, s_len),
                                          ("key_mask", key_mask, -2, s_len)):
            if given is None:
                continue
            m = _bool_mask(where, name, given)
            if m.size != B * length:
                raise ValueError(f"{where}: expected {name} of shape ({B}, {length}). Received: {name}.shape={m.shape}")
            mask = both(mask, np.expand_dims(m.reshape(B, length), axis))     # (B, T, 1) or (B, 1, S)
        if use_causal_mask:
            mask = both(mask, np.tril(np.ones((q_len, s_len), bool))[None])  # (1, T, S)
        if attention_mask is not None:
            a = _bool_mask(where, "attention_mask", attention_mask)
            if a.ndim == 2:
                a = a[None]
            if a.ndim != 3 or a.shape[0] not in (1, B) or a.shape[1] not in (1, q_len) or a.shape[2] not in (1, s_len):
                raise ValueError(f"{where}: expected attention_mask of shape (batch, query steps, key steps) = "
                                 f"({B}, {q_len}, {s_len}). Received: attention_mask.shape={a.shape}")
            mask = both(mask, a)
        return None if mask is None else mask[:, None]                        # (B, 1, T, S): one mask for all heads

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        where = f"MultiHeadAttention '{self.name}'"
        value = value if isinstance(value, Tensor) else ops.convert_to_tensor(value)
        key = value if key is None else (key if isinstance(key, Tensor) else ops.convert_to_tensor(key))
        features = (query.shape[-1], value.shape[-1], key.shape[-1])
        if features != self._built_features or value.ndim != query.ndim or key.shape[:-1] != value.shape[:-1] \
                or value.shape[0] != query.shape[0]:
            raise ValueError(f"{where}: expected query (B, ..., {self._built_features[0]}), value (B, ..., "
                             f"{self._built_features[1]}) and key (B, ..., {self._built_features[2]}) with key and "
                             f"value of one length. Received: query.shape={query.shape}, value.shape={value.shape}, "
                             f"key.shape={key.shape}")
        axes = self._attention_axes(query.ndim)
        others = [a for a in range(1, query.ndim - 1) if a not in axes]
        if any(query.shape[a] != value.shape[a] for a in others):
            raise ValueError(f"{where}: expected query and value to match on the axes outside attention_axes. "
                             f"Received: query.shape={query.shape}, value.shape={value.shape}")
        q = self._project(query, self.query_kernel, self.query_bias)         # (B, ..., N, H)
        k = self._project(key, self.key_kernel, self.key_bias)
        v = self._project(value, self.value_kernel, self.value_bias)         # (B, ..., N, HV)
        # Attention runs over one flattened axis: the axes outside attention_axes join the batch.
        order = [0] + others + axes + [query.ndim - 1, query.ndim]
        outer = [query.shape[a] for a in others]
        q_len = int(np.prod([query.shape[a] for a in axes]))
        s_len = int(np.prod([value.shape[a] for a in axes]))
        B = query.shape[0] * int(np.prod(outer))

        def flat(t, length):
            t = ops.transpose(t, order) if order != list(range(t.ndim)) else t
            return ops.reshape(t, (B, length) + t.shape[-2:])
        mask = self._attention_mask(query, value, key, query_mask, value_mask, key_mask, attention_mask,
                                    use_causal_mask, q_len, s_len)
        if mask is not None and others:
            mask = np.broadcast_to(mask, (query.shape[0], 1, q_len, s_len))
            mask = np.repeat(mask, int(np.prod(outer)), axis=0)
        qf, kf, vf = flat(q, q_len), flat(k, s_len), flat(v, s_len)
        dropping = bool(training) and self.dropout > 0
        traced = return_attention_scores and is_grad_enabled() and (
            self.trainable or any(t.requires_grad for t in (query, key, value)))
        scale = 1.0 / math.sqrt(self.key_dim)
        if dropping or traced or self.flash_attention is False:
            q4, k4, v4, _, m4, full = ops._attention_inputs(where, qf, kf, vf, None, mask, None)
            o, scores = ops._attention_unfused(q4, k4, v4, None, m4, scale, False, full,
                                               dropout=lambda w: self.dropout_layer(w, training=training))
        else:
            q4, k4, v4, _, m4, full = ops._attention_inputs(where, qf, kf, vf, None, mask, None)
            o, scores = ops._attention_fused(q4, k4, v4, None, m4, scale, False, full,
                                             return_weights=return_attention_scores or self.keep_scores)
        # o (B', T', N, HV) -> (B, ..., N, HV) in the query's axis order
        HV = o.shape[-1]
        o = ops.reshape(o, (query.shape[0],) + tuple(outer) + tuple(query.shape[a] for a in axes) + (self.num_heads, HV))
        if order != list(range(len(order))):
            o = ops.transpose(o, np.argsort(order))
        out_dims = self.output_kernel.shape[2:]
        y = ops.matmul(ops.reshape(o, tuple(o.shape[:-2]) + (self.num_heads * HV,)),
                       ops.reshape(self.output_kernel, (self.num_heads * HV, int(np.prod(out_dims)))))
        if self.output_bias is not None:
            y = ops.bias_add(y, ops.reshape(self.output_bias, (-1,)))
        y = ops.reshape(y, tuple(query.shape[:-1]) + tuple(out_dims))
        if scores is not None:                # (B', N, T', S') -> (B, outer..., N, query axes..., key axes...)
            scores = ops.reshape(scores, (query.shape[0],) + tuple(outer) + (self.num_heads,) +
                                 tuple(query.shape[a] for a in axes) + tuple(value.shape[a] for a in axes))
            if self.keep_scores:
                self.last_attention_scores = scores.numpy().copy()
        return (y, scores) if return_attention_scores else y

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": None if self._output_shape is None else list(self._output_shape),
                "attention_axes": None if self.attention_axes is None else list(self.attention_axes),
                "flash_attention": self.flash_attention,
                **self._options_config("kernel_initializer", "bias_initializer", "kernel_regularizer",
                                       "bias_regularizer"),
                "kernel_constraint": None, "bias_constraint": None, "seed": self.seed}


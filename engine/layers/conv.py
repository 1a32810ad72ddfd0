"""Convolution layers: Conv2D and Conv1D, with Keras 3's arguments, defaults and weight layout.

Shapes: N batch, H/W height/width (L the length of a sequence), C input channels, F filters. Conv2D's kernel is
(KH, KW, C // groups, F) and Conv1D's (K, C // groups, F), as in Keras, so weights move between Keras and
engine unchanged. Both run on the conv2d kernels (engine/ref/conv2d.py, csrc/conv2d.cpp) through ops.conv.

The argument checks and the output-shape arithmetic they share with the pooling and padding layers are in
engine/layers/_args.py.
"""
import numpy as np

from .. import ops
from ._args import check_rank, data_format_arg, int_tuple, join_shape, padding_arg, positive_int, split_shape, \
    window_output
from .base import Layer

# --------------------------------------------------------------------------------------------- Conv


class _Conv(Layer):
    """Conv1D and Conv2D: y = activation(conv(x, kernel) + bias)."""

    rank = 2
    paddings = ("valid", "same")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = type(self).__name__
        filters = positive_int(where, "filters", filters)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0 or filters % groups:
            raise ValueError(f"{where}: expected groups to be a positive int that divides filters={filters}. "
                             f"Received: groups={groups!r}")
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = int_tuple(where, "kernel_size", kernel_size, self.rank)
        self.strides = int_tuple(where, "strides", strides, self.rank)
        self.dilation_rate = int_tuple(where, "dilation_rate", dilation_rate, self.rank)
        self.padding = padding_arg(where, padding, self.paddings)
        self.data_format = data_format_arg(where, data_format)
        self.use_bias = bool(use_bias)
        self._set_options(activation=activation, kernel_initializer=kernel_initializer,
                          bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                          bias_regularizer=bias_regularizer)

    def _channels(self, input_shape):
        return split_shape(input_shape, self.data_format)[2]

    def build(self, input_shape):
        self.compute_output_shape(input_shape)     # rank, and the kernel must fit: fail now, not in the kernel
        channels = self._channels(input_shape)
        if channels is None or channels % self.groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected a known number of input channels that "
                             f"groups={self.groups} divides. Received: input_shape={tuple(input_shape)}")
        shape = self.kernel_size + (channels // self.groups, self.filters)          # (KH, KW, C / groups, F)
        self.kernel = self.add_weight(shape, self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      name="kernel")
        self.bias = self.add_weight((self.filters,), self.bias_initializer, regularizer=self.bias_regularizer,
                                    name="bias") if self.use_bias else None
        self.built = True

    def call(self, inputs):
        expected = self.kernel.shape[-2] * self.groups
        if inputs.ndim != self.rank + 2 or self._channels(inputs.shape) != expected:
            axis = -1 if self.data_format == "channels_last" else 1
            raise ValueError(f"{type(self).__name__} '{self.name}': expected an input of rank {self.rank + 2} with "
                             f"{expected} channels on axis {axis} (the layer was built for it). "
                             f"Received: input.shape={inputs.shape}")
        return self.activation(self._convolve(inputs))

    def _convolve(self, x):
        args = dict(strides=self.strides, padding=self.padding, data_format=self.data_format,
                    dilation_rate=self.dilation_rate)
        if self.groups == 1:
            return ops.conv(x, self.kernel, bias=self.bias, **args)
        # groups: each slice of C / groups input channels has its own F / groups filters; outputs side by side
        axis = -1 if self.data_format == "channels_last" else 1
        cin, fout = self.kernel.shape[-2], self.filters // self.groups
        outs = []
        for g in range(self.groups):
            pick_in = (Ellipsis, slice(g * cin, (g + 1) * cin)) if axis == -1 else \
                (slice(None), slice(g * cin, (g + 1) * cin))
            bias = None if self.bias is None else self.bias[g * fout:(g + 1) * fout]
            outs.append(ops.conv(x[pick_in], self.kernel[..., g * fout:(g + 1) * fout], bias=bias, **args))
        return ops.concatenate(outs, axis=axis)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, self.rank, self.data_format)
        spatial = window_output(self, input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding,
                                "kernel_size")
        return join_shape(input_shape[0], spatial, self.filters, self.data_format)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "use_bias": self.use_bias,
                **self._options_config("activation", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                                       "bias_regularizer")}


class Conv2D(_Conv):
    """2-D convolution: input (N, H, W, C) -> output (N, OH, OW, filters) (or NCHW with
    data_format='channels_first'); kernel (KH, KW, C // groups, filters), bias (filters,).

        Conv2D(32, (3, 3), strides=1, padding='same', dilation_rate=1, activation='relu')

    OH = ceil(H / SH) for padding='same'; floor((H - (KH - 1) * DH - 1) / SH) + 1 for 'valid'
    (engine.visualize.explain(layer, input_shape) shows the arithmetic with the numbers filled in)."""

    rank = 2


class Conv1D(_Conv):
    """1-D convolution over sequences: input (N, L, C) -> (N, OL, filters); kernel (K, C // groups, filters).
    padding may also be 'causal': (K - 1) * dilation_rate zeros on the left, so output t sees inputs <= t."""

    rank = 1
    paddings = ("valid", "same", "causal")

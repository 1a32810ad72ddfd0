"""Pooling layers: MaxPooling2D, AveragePooling2D (windows of pool_size) and GlobalAveragePooling2D,
GlobalMaxPooling2D (the whole image), with Keras 3's arguments and defaults (and its aliases MaxPool2D,
AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D).

Shapes: N batch, H/W height/width, C channels. MaxPooling2D and AveragePooling2D run the pool2d kernels
(engine/ref/pool2d.py, csrc/pool2d.cpp): max-pool ties send the gradient to the first maximum; average pooling
with padding='same' does not count the padding. The global layers run the pool2d family's global kernels, which
are the reduce kernels' mean and max over H and W: Keras' GlobalMaxPooling2D is a reduce_max too, so tied maxima
share the gradient there, as in Keras.
"""
from .. import ops, serialization
from ._args import check_rank, data_format_arg, int_tuple, join_shape, padding_arg, split_shape, window_output
from .base import Layer


class _Pooling2D(Layer):
    kind = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = type(self).__name__
        self.pool_size = int_tuple(where, "pool_size", pool_size, 2)
        self.strides = int_tuple(where, "strides", strides, 2, allow_none=True) or self.pool_size
        self.padding = padding_arg(where, padding)
        self.data_format = data_format_arg(where, data_format)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)          # rank, and the window must fit
        self.built = True

    def call(self, inputs):
        if inputs.ndim != 4:
            self.compute_output_shape(inputs.shape)
        pool = ops.max_pool if self.kind == "max" else ops.average_pool
        return pool(inputs, self.pool_size, self.strides, self.padding, self.data_format)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 2, self.data_format)
        spatial = window_output(self, input_shape, self.pool_size, self.strides, (1, 1), self.padding, "pool_size")
        batch, _, channels = split_shape(input_shape, self.data_format)
        return join_shape(batch, spatial, channels, self.data_format)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """The maximum of each pool_size window: (N, H, W, C) -> (N, OH, OW, C). strides=None: windows side by side.
    OH = floor((H - PH) / SH) + 1 for padding='valid', ceil(H / SH) for 'same'."""

    kind = "max"


class AveragePooling2D(_Pooling2D):
    """The mean of each pool_size window (padded pixels not counted): (N, H, W, C) -> (N, OH, OW, C)."""

    kind = "average"


class _GlobalPooling2D(Layer):
    kind = "max"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format_arg(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def call(self, inputs):
        if inputs.ndim != 4:
            check_rank(self, inputs.shape, 2, self.data_format)
        pool = ops.global_max_pool if self.kind == "max" else ops.global_average_pool
        return pool(inputs, self.data_format, self.keepdims)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 2, self.data_format)
        batch, _, channels = split_shape(input_shape, self.data_format)
        return join_shape(batch, (1, 1), channels, self.data_format) if self.keepdims else (batch, channels)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims=True."""

    kind = "average"


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims=True."""

    kind = "max"


MaxPool2D, AvgPool2D = MaxPooling2D, AveragePooling2D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D
for _cls, _alias in ((MaxPooling2D, "MaxPool2D"), (AveragePooling2D, "AvgPool2D"),
                     (GlobalAveragePooling2D, "GlobalAvgPool2D"), (GlobalMaxPooling2D, "GlobalMaxPool2D")):
    serialization.register_builtin("layer", _cls, _alias)      # a config may name a class by its alias

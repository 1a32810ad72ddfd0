"""The layers' shared argument rules, one home each: hyperparameters (positive ints, fractions, shapes) and
the window arithmetic of the convolution, pooling and padding layers (formats, paddings, output sizes).

Every check raises a ValueError that names the layer, the argument, what was expected and what was received.
"""
import numpy as np

from ..ref.conv2d import axis_geometry



# --------------------------------------------------------------------------------------------- hyperparameters


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def positive_int(where, name, value, allow_none=False):
    """`value` as an int > 0 (None too where allow_none)."""
    if allow_none and value is None:
        return None
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{where}: `{name}` must be a positive int. Received: {name}={value!r}")
    return int(value)


def fraction(where, name, value, below_one=False):
    """`value` as a float in [0, 1] (in [0, 1) when below_one: a dropout rate of 1 would drop everything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or \
            not (0 <= value < 1 if below_one else 0 <= value <= 1):
        raise ValueError(f"{where}: expected `{name}` in [0, {'1)' if below_one else '1]'}. Received: {name}={value!r}")
    return float(value)


def shape_arg(where, value, name):
    """A shape argument as a tuple of positive ints or None."""
    if isinstance(value, int):
        value = (value,)
    try:
        shape = tuple(value)
    except TypeError:
        raise ValueError(f"{where}: expected `{name}` to be a tuple of ints. Received: {name}={value!r}") from None
    if not all(d is None or (_is_int(d) and d > 0) for d in shape):
        raise ValueError(f"{where}: expected `{name}` to hold positive ints (or None). Received: {name}={value!r}")
    return tuple(None if d is None else int(d) for d in shape)


# --------------------------------------------------------------------------------------------- windows


FORMATS = ("channels_last", "channels_first")


# --------------------------------------------------------------------------------------------- argument checks


def int_tuple(where, name, value, rank, allow_none=False):
    """An int or a tuple of `rank` positive ints (Keras' normalize_tuple), as a tuple."""
    if allow_none and value is None:
        return None
    items = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != rank or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                     for v in items):
        raise ValueError(f"{where}: expected {name} to be a positive int or a tuple of {rank} positive ints. "
                         f"Received: {name}={value!r}")
    return tuple(int(v) for v in items)


def data_format_arg(where, data_format):
    """None means Keras' default image layout, 'channels_last'."""
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in FORMATS:
        raise ValueError(f"{where}: expected data_format to be 'channels_last' or 'channels_first'. "
                         f"Received: data_format={data_format!r}")
    return data_format


def padding_arg(where, padding, allowed=("valid", "same")):
    """'valid' or 'same' (any case, as Keras), or 'causal' where allowed."""
    if isinstance(padding, str) and padding.lower() in allowed:
        return padding.lower()
    raise ValueError(f"{where}: expected padding to be one of {', '.join(repr(a) for a in allowed)}. "
                     f"Received: padding={padding!r}")


def split_shape(input_shape, data_format):
    """(batch, spatial sizes, channels) of an input shape in either layout."""
    shape = tuple(input_shape)
    if data_format == "channels_last":
        return shape[0], shape[1:-1], shape[-1]
    return shape[0], shape[2:], shape[1]


def join_shape(batch, spatial, channels, data_format):
    if data_format == "channels_last":
        return (batch,) + tuple(spatial) + (channels,)
    return (batch, channels) + tuple(spatial)


def window_output(layer, input_shape, window, strides, dilation, padding, what):
    """The spatial output sizes of a window (kernel or pool) sliding over input_shape, with Keras' arithmetic
    (padding 'valid', 'same' or 'causal'); None stays None. Raises when the window does not fit."""
    _, spatial, _ = split_shape(input_shape, layer.data_format)
    out = []
    for size, k, s, d in zip(spatial, window, strides, dilation):
        span = (k - 1) * d + 1
        if size is None:
            out.append(None)
            continue
        pads = (span - 1, 0) if padding == "causal" else padding
        padded = size + (0 if padding == "valid" else sum(axis_geometry(size, k, s, d, pads)[1:]))
        if span > padded:
            raise ValueError(f"{type(layer).__name__} '{layer.name}': expected {what}={tuple(window)} with "
                             f"dilation_rate={tuple(dilation)} (a window of {span} along one axis) to fit the input "
                             f"{tuple(spatial)} with padding='{padding}', which gives {padded} there. "
                             f"Received: input_shape={tuple(input_shape)}")
        out.append(axis_geometry(size, k, s, d, pads)[0])
    return tuple(out)


def check_rank(layer, input_shape, rank, data_format):
    """input_shape must be (batch, spatial..., channels) (or channels first) with `rank` spatial axes."""
    spatial = "length" if rank == 1 else "height, width"
    layout = f"(batch, {spatial}, channels)" if data_format == "channels_last" else f"(batch, channels, {spatial})"
    if len(input_shape) != rank + 2:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': expected an input of rank {rank + 2} {layout}. "
                         f"Received: input_shape={tuple(input_shape)}")

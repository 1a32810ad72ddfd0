"""engine.activations: activation functions by Keras name. Each one takes and returns a Tensor and runs
on the activation kernels (engine/ref/activation.py, csrc/activation.cpp).

    activations.get('relu')(x);  activations.get(None) is linear;  activations.serialize(fn) -> 'relu'
"""
from . import ops
from .serialization import lookup


def linear(x):
    """y = x (returned as is: there is nothing to compute)."""
    return ops.convert_to_tensor(x)


def relu(x):
    return ops.relu(x)


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return ops.tanh(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis)


def elu(x, alpha=1.0):
    return ops.elu(x, alpha)


def gelu(x, approximate=False):
    """Keras' activations.gelu defaults to the exact erf form (ops.gelu to the tanh approximation)."""
    return ops.gelu(x, approximate)


def silu(x):
    return ops.silu(x)


swish = silu


def softplus(x):
    return ops.softplus(x)


_BY_NAME = {"linear": linear, "relu": relu, "leaky_relu": leaky_relu, "sigmoid": sigmoid, "tanh": tanh,
            "softmax": softmax, "log_softmax": log_softmax, "elu": elu, "gelu": gelu, "silu": silu,
            "swish": swish, "softplus": softplus}


# The activations the fused dense kernel applies itself (engine.ops.dense), with the arguments it needs.
_DENSE_KERNEL = {linear: ("linear", {}), relu: ("relu", {}), leaky_relu: ("leaky_relu", {"negative_slope": 0.2}),
                 sigmoid: ("sigmoid", {}), tanh: ("tanh", {}), elu: ("elu", {"alpha": 1.0}), gelu: ("gelu", {}),
                 silu: ("silu", {}), softplus: ("softplus", {})}


def dense_kernel_name(activation):
    """(name, kwargs) for ops.dense when the dense kernel can apply `activation` itself, else None."""
    return _DENSE_KERNEL.get(activation)


def get(identifier):
    """A name (or None, meaning linear, or a callable) -> the activation function."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    return lookup("activations.get", identifier, "activation", "a callable or None", _BY_NAME)


def serialize(activation):
    """The name to store in a config: the Keras name for the built-in ones, else the function's name."""
    for name, fn in _BY_NAME.items():
        if fn is activation:
            return "silu" if fn is silu else name
    name = getattr(activation, "__name__", None)
    if name in _BY_NAME:
        return name
    raise ValueError(f"activations.serialize: {activation!r} is not a built-in activation, so it cannot be "
                     "saved by name. Wrap it in a Layer subclass with get_config instead.")

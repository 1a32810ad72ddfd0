"""engine.optimizers: Keras 3's optimizers on top of the fused in-place update kernels.

    opt = engine.optimizers.Adam(learning_rate=1e-3)           # or get('adam'), or model.compile('adam', ...)
    loss.backward()
    opt.apply_gradients(zip([w.grad for w in weights], weights))
    for w in weights:
        w.grad = None

Files: base.py (Optimizer: clipping, weight decay, slots, state, config), sgd.py, adam.py (Adam, AdamW),
rmsprop.py, adagrad.py, schedules.py (learning-rate schedules). Each update rule is spelled out in
engine/ref/optimizer.py, the NumPy reference the C++ kernels in csrc/optimizer.cpp match.
"""
from ..serialization import lookup
from . import schedules
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "schedules", "get", "serialize",
           "deserialize"]

_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def serialize(optimizer):
    """{'class_name': ..., 'config': ...}: what deserialize() (and Keras) read back."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizers.serialize: expected an Optimizer. Received: {type(optimizer).__name__}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """A new optimizer from {'class_name': ..., 'config': ...}. class_name is matched without regard to case
    ('Adam', 'adam'), as in Keras; custom_objects maps the names of your own Optimizer subclasses to them."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"optimizers.deserialize: expected a dict with 'class_name' and 'config'. "
                         f"Received: config={config!r}")
    name = config["class_name"]
    custom = custom_objects or {}
    cls = custom[name] if name in custom else lookup("optimizers.deserialize", name, "class_name",
                                                     "or a class in custom_objects", _OPTIMIZERS, any_case=True)
    return cls.from_config(config.get("config") or {})


def get(identifier):
    """An optimizer from a name ('adam', 'SGD', ...), a config dict or an Optimizer instance (returned as
    is). None gives None, as in Keras."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    return lookup("optimizers.get", identifier, "identifier", "a config dict or an Optimizer instance", _OPTIMIZERS,
                  any_case=True)()

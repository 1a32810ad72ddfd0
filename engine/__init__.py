"""engine: an educational deep-learning tensor engine.

Keras-style Python on top of readable C++/OpenMP kernels, each beside the NumPy reference it must match.

    import engine
    x = engine.tensor([[1.0, 2.0]], requires_grad=True)
    y = engine.ops.relu(x @ engine.tensor([[0.5], [-1.0]]))
    y.sum().backward()            # x.grad now holds dy/dx

Reading order: engine/ref/ (the math) -> engine/tensor.py and engine/ops.py (autograd) -> csrc/ (kernels).
"""
from ._version import __version__

from . import backend, cuda, ops, random, ref, serialization
from . import activations, initializers, regularizers
from . import layers, losses, metrics, optimizers, callbacks, models
from . import datasets, visualize
from . import functional  # noqa: F401  (registers Model(inputs, outputs)'s class for load_model)
from .backend import get_backend, set_backend, trace, use_backend
from .random import set_seed
from .runtime import get_num_threads, info, set_num_threads, set_simd
from .tensor import Tensor, is_grad_enabled, no_grad, tensor

from .runtime import _apply_environment

_apply_environment()
del _apply_environment

__all__ = ["Tensor", "tensor", "no_grad", "is_grad_enabled", "ops", "backend", "ref", "cuda", "random",
           "serialization", "activations", "initializers", "regularizers", "layers", "losses", "metrics", "optimizers",
           "callbacks", "models", "datasets", "visualize",
           "set_backend", "get_backend", "use_backend", "trace", "set_seed", "set_num_threads",
           "get_num_threads", "set_simd", "info", "__version__"]

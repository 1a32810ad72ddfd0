"""engine.layers: Keras-style layers on engine kernels."""
from .base import Layer, clear_session
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Softmax
from .embedding import Embedding

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout",
           "Flatten", "clear_session"]
__all__ += ["Embedding"]

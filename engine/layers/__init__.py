"""engine.layers: Keras-style layers on engine kernels."""
from .base import Layer, clear_session
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Softmax
from .embedding import Embedding
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed, plot_gates

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout",
           "Flatten", "clear_session"]
__all__ += ["Embedding"]
__all__ += ["SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed", "plot_gates"]

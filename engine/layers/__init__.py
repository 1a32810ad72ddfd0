"""engine.layers: Keras-style layers on engine kernels."""
from .attention import MultiHeadAttention
from .base import Layer, clear_session
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Softmax
from .embedding import Embedding
from .layernorm import LayerNormalization
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, concatenate
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed, plot_gates
from .transformer import (PositionalEncoding, PositionEmbedding, SinePositionEncoding, TransformerDecoder,
                          TransformerEncoder)

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout",
           "Flatten", "clear_session",
           "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed", "plot_gates",
           "MultiHeadAttention", "LayerNormalization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "add", "concatenate", "PositionalEncoding", "SinePositionEncoding", "PositionEmbedding",
           "TransformerEncoder", "TransformerDecoder"]

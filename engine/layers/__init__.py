"""engine.layers: Keras-style layers on engine kernels."""
from .base import Layer, clear_session
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, LeakyReLU, ReLU, Softmax
from .embedding import Embedding

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout",
           "Flatten", "clear_session"]
__all__ += ["Embedding"]
from .attention import MultiHeadAttention
from .layernorm import LayerNormalization
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, concatenate
from .transformer import (PositionalEncoding, PositionEmbedding, SinePositionEncoding, TransformerDecoder,
                          TransformerEncoder)

__all__ += ["MultiHeadAttention", "LayerNormalization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
            "Concatenate", "add", "concatenate", "PositionalEncoding", "SinePositionEncoding", "PositionEmbedding",
            "TransformerEncoder", "TransformerDecoder"]

"""engine.layers: Keras-style layers on engine kernels."""
from .attention import MultiHeadAttention
from .base import Layer, clear_session
from .conv import Conv1D, Conv2D
from .core import (Activation, Dense, Dropout, Flatten, GaussianNoise, Input, InputLayer, Lambda, LeakyReLU, ReLU,
                   Softmax)
from .embedding import Embedding
from .layernorm import LayerNormalization
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, concatenate
from .normalization import BatchNormalization, GroupNormalization
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D,
                      GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, TimeDistributed, plot_gates
from .preprocessing import Normalization, Rescaling
from .reshaping import Cropping2D, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D
from .transformer import (PositionalEncoding, PositionEmbedding, SinePositionEncoding, TransformerDecoder,
                          TransformerEncoder)

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout",
           "Flatten", "clear_session",
           "Conv1D", "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", "GlobalAveragePooling2D",
           "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D", "BatchNormalization", "ZeroPadding2D",
           "Reshape",
           "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed", "plot_gates",
           "MultiHeadAttention", "LayerNormalization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "add", "concatenate", "PositionalEncoding", "SinePositionEncoding", "PositionEmbedding",
           "TransformerEncoder", "TransformerDecoder",
           "Lambda", "GaussianNoise", "Cropping2D", "RepeatVector", "Rescaling", "Normalization", "GroupNormalization",
           "UpSampling2D"]

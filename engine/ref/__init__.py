"""engine.ref: the NumPy reference kernels. Readable, the spec every compiled kernel must match, the
test oracle, and the backend used when nothing is compiled. One file per kernel family; the compiled
module engine._cpu has the same names, arguments and return values.

The references accept float32 and float64 (float64 for gradient checks); the compiled kernels float32.
"""
from .activation import (elu_backward, elu_forward, gelu_backward, gelu_forward, leaky_relu_backward,
                         leaky_relu_forward, linear_backward, linear_forward, relu_backward, relu_forward,
                         sigmoid_backward, sigmoid_forward, silu_backward, silu_forward, softplus_backward,
                         softplus_forward, tanh_backward, tanh_forward)
from .attention import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward
from .attention import MASKED, attention_backward, attention_forward
from .layernorm import layer_norm_backward, layer_norm_forward
from .loss import (sigmoid_cross_entropy_backward, sigmoid_cross_entropy_forward, softmax_cross_entropy_backward,
                   softmax_cross_entropy_forward, sparse_softmax_cross_entropy_backward,
                   sparse_softmax_cross_entropy_forward)
from .matmul import (bias_add_backward, bias_add_forward, dense_backward, dense_forward, matmul_backward,
                     matmul_forward)
from .optimizer import adagrad_update, adam_update, rmsprop_update, sgd_update
from .reduce import max_backward, max_forward, mean_backward, mean_forward, sum_backward, sum_forward
from .embedding import embedding_backward, embedding_forward
from .rnn import (gru_backward, gru_forward, lstm_backward, lstm_forward, simple_rnn_backward,
                  simple_rnn_forward)
from .batchnorm import batchnorm_backward, batchnorm_forward
from .conv2d import conv2d_backward, conv2d_forward
from .pool2d import (avgpool2d_backward, avgpool2d_forward, global_avgpool2d_backward, global_avgpool2d_forward,
                     global_maxpool2d_backward, global_maxpool2d_forward, maxpool2d_backward, maxpool2d_forward)
from .resize import resize_backward, resize_forward

// csrc/bind_cpu/families.h (namespace engine::bind): one function per kernel family, each defining that family's
// functions of engine._cpu on `m` and its ladder rungs, if it has any, on `ladder` (engine._cpu.ladder).
// module.cpp calls them all; bind_<family>.cpp defines each, with every adapter inside its m.def.
#pragma once

#include <pybind11/pybind11.h>

namespace engine::bind {

void bind_runtime(pybind11::module_& m, pybind11::module_& ladder);      // threads, SIMD path, memory; fma_peak
void bind_matmul(pybind11::module_& m, pybind11::module_& ladder);       // matmul, dense, bias add; matmul rungs
void bind_activation(pybind11::module_& m, pybind11::module_& ladder);   // element-wise activations
void bind_attention(pybind11::module_& m, pybind11::module_& ladder);    // softmax, attention; their rungs
void bind_reduce(pybind11::module_& m, pybind11::module_& ladder);       // sum, mean, max
void bind_loss(pybind11::module_& m, pybind11::module_& ladder);         // cross-entropies
void bind_optimizer(pybind11::module_& m, pybind11::module_& ladder);    // SGD, Adam, RMSprop, Adagrad updates
void bind_embedding(pybind11::module_& m, pybind11::module_& ladder);
void bind_layernorm(pybind11::module_& m, pybind11::module_& ladder);
void bind_rnn(pybind11::module_& m, pybind11::module_& ladder);          // LSTM, GRU, SimpleRNN
void bind_conv2d(pybind11::module_& m, pybind11::module_& ladder);       // conv2d; conv2d rungs
void bind_pool2d(pybind11::module_& m, pybind11::module_& ladder);       // max, average and global pooling
void bind_batchnorm(pybind11::module_& m, pybind11::module_& ladder);
void bind_resize(pybind11::module_& m, pybind11::module_& ladder);       // UpSampling2D's resizing

}  // namespace engine::bind

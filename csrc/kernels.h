// csrc/kernels.h (namespace engine): every CPU kernel's signature, one block per family.
// Contract for all of them: outputs first, then inputs, then sizes; every array is float32, contiguous,
// row-major, and sized as the comment says. Kernels trust their inputs: csrc/bind_cpu/ checks them.
// Dimensions: M, N, K matrix sizes (C is M x N, K is summed); N rows, D features; A, R, B the outer,
// reduced and inner extents of a reduction or softmax axis (x viewed as (A, R, B) or (A, D, B)).
#pragma once

#include <cstdint>

#include "common.h"

namespace engine {

// runtime.cpp
void set_num_threads(int n);
int get_num_threads();
// Keep freed large blocks in the heap instead of returning them to the OS (glibc); false where not glibc.
bool keep_freed_memory(int64_t trim_threshold_bytes);

// The element-wise activations by name, for the fused Dense path (activation.cpp).
enum class Act : int { linear, relu, leaky_relu, sigmoid, tanh, elu, gelu, gelu_tanh, silu, softplus };

// matmul.cpp: C (M, N) = op(A) @ op(B); op(A) = A (M, K), or A^T with A stored (K, M) when trans_a.
void matmul_forward_v1(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K);
void matmul_forward_v2(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K);
void matmul_forward_v3(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K);
void matmul_forward_v4(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K);
// fma_peak.cpp: the best GFLOP/s of `repeats` runs of `iterations` rounds of independent multiply-adds on every
// thread, on the active SIMD path (the ceiling every GEMM rung is measured against).
double fma_peak_gflops(int64_t iterations, int repeats);
// What a GEMM may do to each tile of C after its last K slice, while the tile is in cache: c = act(c +
// bias[col]); pre (same layout as C), if not null, keeps c + bias. bias may be null.
struct Epilogue { const float* bias; Act act; float param; float* pre; };
void apply_epilogue(const Epilogue& e, float* ct, int64_t ldc, int64_t row0, int64_t col0, int64_t rows, int64_t cols);
// The best rung, with transposes; accumulate adds into C instead of overwriting it.
void matmul_forward(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K,
                    bool trans_a, bool trans_b, bool accumulate, const Epilogue* epilogue = nullptr);
// c[i] = op(a[i]) @ op(b[i]) for i < batch; matrix i starts at a + i * a_step (a step of 0 shares one
// matrix). c_step == 0 sums all products into one C, in order of i.
void matmul_forward_batched(float* c, const float* a, const float* b, int64_t batch, int64_t a_step,
                            int64_t b_step, int64_t c_step, int64_t M, int64_t N, int64_t K, bool trans_a,
                            bool trans_b);
// A dense layer, y (N, U) = act(x (N, D) @ w (D, U) + bias): one GEMM with the epilogue; z (may be null)
// keeps x @ w + bias for activations whose derivative needs it (activation_needs_input).
void dense_forward(float* y, float* z, const float* x, const float* w, const float* bias, int64_t N, int64_t D,
                   int64_t U, Act act, float param);
// dz = dy * act'(z); dbias = sum over rows of dz; dx = dz @ w^T; dw = x^T @ dz. z may be y (see above);
// dbias may be null (no bias).
void dense_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, const float* w,
                    const float* z, const float* y, int64_t N, int64_t D, int64_t U, Act act, float param);
void bias_add_forward(float* y, const float* x, const float* bias, int64_t N, int64_t D);  // y, x: (N, D)
void bias_add_backward(float* dbias, const float* dy, int64_t N, int64_t D);              // dbias: (D,)

// activation.cpp: y = f(x) and dx = dy * f'(x), element by element over n values. The backward
// reads x or y, whichever gives the derivative more cheaply (both are always passed).
void linear_forward(float* y, const float* x, int64_t n);
void linear_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n);
void relu_forward(float* y, const float* x, int64_t n);
void relu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n);
void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope);
void leaky_relu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n,
                         float negative_slope);
void sigmoid_forward(float* y, const float* x, int64_t n);
void sigmoid_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n);
void tanh_forward(float* y, const float* x, int64_t n);
void tanh_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n);
void elu_forward(float* y, const float* x, int64_t n, float alpha);
void elu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, float alpha);
void gelu_forward(float* y, const float* x, int64_t n, bool approximate);
void gelu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, bool approximate);
void silu_forward(float* y, const float* x, int64_t n);
void silu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n);
void softplus_forward(float* y, const float* x, int64_t n);
void softplus_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n);

// activation.cpp, the Dense path: activations by enum (Act, above).
// c = act(c + bias) on a rows x cols tile (row stride ldc); pre (row stride ld_pre) keeps c + bias if not null.
void bias_activation_tile(float* c, int64_t ldc, float* pre, int64_t ld_pre, int64_t rows, int64_t cols,
                          const float* bias, Act act, float param);
// dz = dy * act'(z), given z and y = act(z) (z may be y itself when activation_needs_input is false).
void activation_backward(float* dz, const float* dy, const float* z, const float* y, int64_t n, Act act, float param);
bool activation_needs_input(Act act, float param);

// attention.cpp: softmax and log-softmax along the middle axis of x viewed as (A, D, B).
void softmax_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B);
void softmax_backward(float* dx, const float* dy, const float* y, int64_t A, int64_t D, int64_t B);
void log_softmax_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B);
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t A, int64_t D, int64_t B);

// reduce.cpp: y (A, B) = reduction over r of x (A, R, B); backward spreads dy (A, B) back to (A, R, B).
void sum_forward(float* y, const float* x, int64_t A, int64_t R, int64_t B);
void sum_backward(float* dx, const float* dy, int64_t A, int64_t R, int64_t B);
void mean_forward(float* y, const float* x, int64_t A, int64_t R, int64_t B);
void mean_backward(float* dx, const float* dy, int64_t A, int64_t R, int64_t B);
void max_forward(float* y, const float* x, int64_t A, int64_t R, int64_t B);          // R >= 1
void max_backward(float* dx, const float* dy, const float* x, const float* y, int64_t A, int64_t R, int64_t B);

// loss.cpp: cross-entropy fused with its softmax (rows of C classes) or sigmoid (n values).
void softmax_cross_entropy_forward(float* loss, float* probs, const float* logits, const float* targets, int64_t N,
                                   int64_t C);                                  // loss: (N,), probs: (N, C)
void softmax_cross_entropy_backward(float* dlogits, const float* dloss, const float* probs, const float* targets,
                                    int64_t N, int64_t C);
void sparse_softmax_cross_entropy_forward(float* loss, float* probs, const float* logits, const int64_t* labels,
                                          int64_t N, int64_t C);                 // labels in [0, C)
void sparse_softmax_cross_entropy_backward(float* dlogits, const float* dloss, const float* probs,
                                           const int64_t* labels, int64_t N, int64_t C);
void sigmoid_cross_entropy_forward(float* loss, const float* logits, const float* targets, int64_t n);
void sigmoid_cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const float* targets,
                                    int64_t n);

// optimizer.cpp: in-place updates of n parameter values and their slots (nullptr: slot not used).
// Hyperparameters are double: constants such as 1 - beta are formed in double, then rounded once.
void sgd_update(float* param, const float* grad, float* velocity, int64_t n, double lr, double momentum,
                bool nesterov, double weight_decay);
void adam_update(float* param, const float* grad, float* m, float* v, float* v_hat, int64_t n, double lr,
                 double beta_1, double beta_2, double epsilon, int64_t step, double weight_decay);
void rmsprop_update(float* param, const float* grad, float* velocity, float* average_grad, float* momentum_buf,
                    int64_t n, double lr, double rho, double momentum, double epsilon, double weight_decay);
void adagrad_update(float* param, const float* grad, float* accumulator, int64_t n, double lr, double epsilon,
                    double weight_decay);

// embedding.cpp: y (n, D) = table (V, D) rows picked by ids (n,), every id in [0, V); the backward adds
// each dy row into dtable (V, D) at its id (rows never picked stay 0).
void embedding_forward(float* y, const float* table, const int64_t* ids, int64_t n, int64_t D);
void embedding_backward(float* dtable, const float* dy, const int64_t* ids, int64_t n, int64_t V, int64_t D);

// attention_fused.cpp, attention_fused_backward.cpp, attention_ladder.cpp: scaled dot-product attention.
// q (B, T, N, H), k (B, S, K, H), v (B, S, K, HV) -> o (B, T, N, HV), lse (B, N, T); weights (B, N, T, S) when
// not nullptr. N is a multiple of K (query head n reads key head n / (N / K)); S >= 1. mask (1 = attend) and
// bias are (B, N, T, S) arrays read through strides over B, N, T (0 where they broadcast) with S contiguous;
// nullptr when absent.
struct AttentionArgs {
    int64_t B, T, S, N, K, H, HV;
    float scale;
    bool causal;                                  // query t sees keys 0..t
    const uint8_t* mask;
    int64_t mask_strides[3];
    const float* bias;
    int64_t bias_strides[3];
};
void attention_forward_v2(float* o, float* lse, float* weights, const float* q, const float* k, const float* v,
                          const AttentionArgs& args);                   // fused: tiles + online softmax
void attention_forward_v1(float* o, float* lse, float* weights, const float* q, const float* k, const float* v,
                          const AttentionArgs& args);                   // naive: the full score matrix per head
// dq, dk, dv shaped like q, k, v; dbias (B, N, T, S) = d loss / d logits when not nullptr.
void attention_backward(float* dq, float* dk, float* dv, float* dbias, const float* dout, const float* q,
                        const float* k, const float* v, const float* o, const float* lse, const AttentionArgs& args);
// attention.cpp: the softmax ladder's rungs over rows, x (N, D).
void softmax_forward_v1(float* y, const float* x, int64_t N, int64_t D);
void softmax_forward_v2(float* y, const float* x, int64_t N, int64_t D);

// layernorm.cpp: normalise each row of x (N, D): y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps);
// rms: mean taken as 0 (beta unused). gamma, beta: (D,) or nullptr (1 and 0); mean, rstd: (N,).
void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        int64_t N, int64_t D, float epsilon, bool rms);
void layer_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gamma, int64_t N, int64_t D, bool rms);
// lstm.cpp, gru.cpp, simple_rnn.cpp (rnn.h): SimpleRNN, LSTM and GRU (Keras' reset_after=True) over whole sequences, in Keras' weight
// layouts; see engine/ref/rnn.py for the formulas. x (N, T, D); h0, c0, h, c (N, U); kernel (D, G*U);
// recurrent_kernel (U, G*U); bias (G*U,), GRU (2, 3U); mask (N, T) (0 = padded step: state carried) and
// recurrent_mask (N, U) (recurrent dropout, scaled) may be nullptr. Forward outputs: y (N, T, U) every
// h_t; LSTM gates (N, T, 4U) = i, f, g, o and cells (N, T, U) every c_t; GRU gates (N, T, 3U) = z, r, hh and
// recurrent_h (N, T, U). For inference, cells / recurrent_h may be nullptr: then nothing is saved (gates is
// still needed, as room for the input projection). Backward: dy (N, T, U) and dh, dc (N, U) of the last
// states, then what forward took and saved; it writes one gradient per differentiable input.
enum class RnnActivation : int { linear = 0, relu = 1, sigmoid = 2, tanh = 3 };
void lstm_forward(float* y, float* h, float* c, float* gates, float* cells, const float* x, const float* h0,
                  const float* c0, const float* kernel, const float* recurrent_kernel, const float* bias,
                  const float* mask, const float* recurrent_mask, int64_t N, int64_t T, int64_t D, int64_t U,
                  RnnActivation activation, RnnActivation recurrent_activation);
void lstm_backward(float* dx, float* dh0, float* dc0, float* dkernel, float* drecurrent_kernel, float* dbias,
                   const float* dy, const float* dh, const float* dc, const float* x, const float* h0, const float* c0,
                   const float* kernel, const float* recurrent_kernel, const float* mask, const float* recurrent_mask,
                   const float* y, const float* gates, const float* cells, int64_t N, int64_t T, int64_t D, int64_t U,
                   RnnActivation activation, RnnActivation recurrent_activation);
void gru_forward(float* y, float* h, float* gates, float* recurrent_h, const float* x, const float* h0,
                 const float* kernel, const float* recurrent_kernel, const float* bias, const float* mask,
                 const float* recurrent_mask, int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation,
                 RnnActivation recurrent_activation);
void gru_backward(float* dx, float* dh0, float* dkernel, float* drecurrent_kernel, float* dbias, const float* dy,
                  const float* dh, const float* x, const float* h0, const float* kernel, const float* recurrent_kernel,
                  const float* mask, const float* recurrent_mask, const float* y, const float* gates,
                  const float* recurrent_h, int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation,
                  RnnActivation recurrent_activation);
void simple_rnn_forward(float* y, float* h, const float* x, const float* h0, const float* kernel,
                        const float* recurrent_kernel, const float* bias, const float* mask, const float* recurrent_mask,
                        int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation);
void simple_rnn_backward(float* dx, float* dh0, float* dkernel, float* drecurrent_kernel, float* dbias, const float* dy,
                         const float* dh, const float* x, const float* h0, const float* kernel,
                         const float* recurrent_kernel, const float* mask, const float* recurrent_mask, const float* y,
                         int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation);
// conv2d.cpp, pool2d.cpp: 2-D windows over NHWC images. Window2d is the geometry: input (N, H, W, C), window
// KH x KW (a kernel or a pool), strides SH/SW, dilation DH/DW (1 for pooling), zero padding pad_top/pad_left
// before the first row/column (the rest is implied by OH/OW), output OH x OW. Conv kernels are (KH, KW, C, F).
struct Window2d {
    int64_t N, H, W, C, KH, KW, SH, SW, DH, DW, pad_top, pad_left, OH, OW;
};
// y (N, OH, OW, F) = conv2d(x, kernel) + bias (bias may be nullptr). The ladder's rungs: conv2d_forward_v1 the
// direct loops, conv2d_forward_v2 im2col + GEMM, conv2d_forward_v3 Winograd (below); conv2d_forward runs v3
// where conv2d_winograd_applies, v2 everywhere else.
void conv2d_forward(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g, int64_t F);
void conv2d_forward_v1(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g, int64_t F);
void conv2d_forward_v2(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g, int64_t F);
// dx (N, H, W, C), dkernel (KH, KW, C, F), dbias (F,) from dy (N, OH, OW, F); dx or dbias nullptr: not wanted.
void conv2d_backward(float* dx, float* dkernel, float* dbias, const float* dy, const float* x, const float* kernel,
                     const Window2d& g, int64_t F);
// The same by Winograd's F(2x2, 3x3) (conv2d_winograd.cpp), where conv2d_winograd_applies: 3x3, strides 1,
// enough channels (a dilated kernel: one undilated convolution per phase). conv2d_backward_input_winograd: dx (N, H, W, C) from dy (N, OH, OW, F);
// conv2d_backward_kernel_winograd: dkernel (3, 3, C, F) from dy and x.
bool conv2d_winograd_applies(const Window2d& g, int64_t F);
void conv2d_forward_v3(float* y, const float* x, const float* kernel, const float* bias, const Window2d& g, int64_t F);
void conv2d_backward_input_winograd(float* dx, const float* dy, const float* kernel, const Window2d& g, int64_t F);
void conv2d_backward_kernel_winograd(float* dkernel, const float* dy, const float* x, const Window2d& g, int64_t F);
// One image, output rows [oh0, oh1): cols ((oh1 - oh0) * OW, KH * KW * C); col2im adds cols back into dx.
void im2col(float* cols, const float* x, const Window2d& g, int64_t oh0, int64_t oh1);
void col2im(float* dx, const float* cols, const Window2d& g, int64_t oh0, int64_t oh1);
// out[b, s, r] = in[b, r, s] for in (batch, R, S): NCHW <-> NHWC at the edges.
void transpose_inner(float* out, const float* in, int64_t batch, int64_t R, int64_t S);
// y (N, OH, OW, C); argmax (N, OH, OW, C): the input position h * W + w each max came from (first max wins).
void maxpool2d_forward(float* y, int32_t* argmax, const float* x, const Window2d& g);
// Returns how many argmax values lay outside their output's window (their gradients are not in dx; 0 for the
// argmax maxpool2d_forward made); maxpool2d_argmax_outside finds the first of them (flat index), or -1.
int64_t maxpool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Window2d& g);
int64_t maxpool2d_argmax_outside(const int32_t* argmax, const Window2d& g);
void avgpool2d_forward(float* y, const float* x, const Window2d& g);     // mean over the real pixels of a window
void avgpool2d_backward(float* dx, const float* dy, const Window2d& g);

// resize.cpp: y (N, OH, OW, C) = x (N, H, W, C) resized ('nearest', or 'bilinear' with half-pixel centres), and
// its gradient dx (N, H, W, C) from dy (N, OH, OW, C). H, W, OH, OW >= 1.
void resize_forward(float* y, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW,
                    bool bilinear);
void resize_backward(float* dx, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, int64_t OH,
                     int64_t OW, bool bilinear);

// batchnorm.cpp: x viewed as (A, C, B), normalised per channel c. Training uses the batch statistics and
// updates moving_mean and moving_var in place; inference uses them. mean, inv_std (C,): saved for backward.
void batchnorm_forward(float* y, float* mean, float* inv_std, float* moving_mean, float* moving_var, const float* x,
                       const float* gamma, const float* beta, int64_t A, int64_t C, int64_t B, double momentum,
                       double epsilon, bool training);
void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                        const float* mean, const float* inv_std, int64_t A, int64_t C, int64_t B, bool training);

}  // namespace engine

// csrc/loss.cpp (namespace engine): cross-entropy fused with the softmax or sigmoid that precedes it.
// Matches engine/ref/loss.py. N rows (examples), C classes; n values for the element-wise sigmoid form.
//
// Why fused: computing softmax, then log, then the sum loses everything once a probability underflows
// (log 0 = -inf) and overflows for logits of 1e4. With lse = log(sum_c exp(z_c)) computed as
// max + log(sum exp(z - max)), the loss -sum_c t_c log p_c = sum_c t_c (lse - z_c) never takes the log
// of a small number, and the gradient is simply probs - targets.
// Rows (and values) in one chunk per thread, each compiled for the active SIMD path; a row's sums run in
// fixed SIMD lanes added in a fixed order (row_reduce.h), so threads cannot change the bits.
#include <algorithm>
#include <cmath>

#include "common.h"
#include "kernels.h"
#include "row_reduce.h"
#include "vector_math.h"

namespace engine {

// row(n) for every row, in chunks of rows compiled for the active SIMD path (simd_chunks): each row pass is a
// plain loop that vectorises (exp_f from vector_math.h; the max and the sums in SIMD lanes, row_reduce.h).
template <class Row>
static void each_row(int64_t N, int64_t C, int64_t cost, const Row& row) {
    simd_chunks(N, C * cost, [&](int64_t lo, int64_t hi) {
        for (int64_t n = lo; n < hi; n++) row(n);
    });
}

// log(sum_c exp(z_c)) for one row, and probs_c = exp(z_c - max) / sum: exp is evaluated once per value.
ENGINE_INLINE double log_sum_exp_row(float* __restrict probs, const float* __restrict z, int64_t C) {
    const float mx = lanes_max(z, C);
    for (int64_t c = 0; c < C; c++) probs[c] = exp_nonpositive_f(z[c] - mx);
    const double total = row_sum(probs, C);
    const float inv = static_cast<float>(1.0 / total);
    for (int64_t c = 0; c < C; c++) probs[c] *= inv;
    return mx + std::log(total);
}

// loss = sum_c t_c (lse - z_c) = lse sum_c(t_c) - sum_c(t_c z_c), both sums in double lanes.
void softmax_cross_entropy_forward(float* loss, float* probs, const float* logits, const float* targets, int64_t N,
                                   int64_t C) {
    each_row(N, C, kCostTranscendental, [&](int64_t n) {
        const float* z = logits + n * C;
        const float* t = targets + n * C;
        const double lse = log_sum_exp_row(probs + n * C, z, C);
        loss[n] = static_cast<float>(lse * row_sum(t, C) - row_dot(t, z, C));
    });
}

// dlogits = dloss * (probs * sum_c(targets) - targets); sum_c(targets) is 1 for a probability vector.
void softmax_cross_entropy_backward(float* dlogits, const float* dloss, const float* probs, const float* targets,
                                    int64_t N, int64_t C) {
    each_row(N, C, 2, [&](int64_t n) {
        const float* __restrict t = targets + n * C;
        const float* __restrict p = probs + n * C;
        float* __restrict d = dlogits + n * C;
        const float mass = static_cast<float>(row_sum(t, C)), scale = dloss[n];
        for (int64_t c = 0; c < C; c++) d[c] = scale * (p[c] * mass - t[c]);
    });
}

void sparse_softmax_cross_entropy_forward(float* loss, float* probs, const float* logits, const int64_t* labels,
                                          int64_t N, int64_t C) {
    each_row(N, C, kCostTranscendental, [&](int64_t n) {
        const double lse = log_sum_exp_row(probs + n * C, logits + n * C, C);
        loss[n] = static_cast<float>(lse - logits[n * C + labels[n]]);
    });
}

// dlogits = dloss * (probs - onehot(label))
void sparse_softmax_cross_entropy_backward(float* dlogits, const float* dloss, const float* probs,
                                           const int64_t* labels, int64_t N, int64_t C) {
    each_row(N, C, 1, [&](int64_t n) {
        const float* __restrict p = probs + n * C;
        float* __restrict d = dlogits + n * C;
        const float scale = dloss[n];
        for (int64_t c = 0; c < C; c++) d[c] = scale * p[c];
        d[labels[n]] -= scale;
    });
}

// loss = -(t log s + (1 - t) log(1 - s)), s = sigmoid(z), written as max(z, 0) - z t + log1p(exp(-|z|)).
void sigmoid_cross_entropy_forward(float* loss, const float* logits, const float* targets, int64_t n) {
    simd_chunks(n, kCostTranscendental, [&](int64_t lo, int64_t hi) {
        float* __restrict l = loss + lo;
        const float* __restrict z = logits + lo;
        const float* __restrict t = targets + lo;
        for (int64_t i = 0; i < hi - lo; i++) {
            l[i] = (z[i] > 0.0f ? z[i] : 0.0f) - z[i] * t[i] + log1p_unit_f(exp_nonpositive_f(-__builtin_fabsf(z[i])));
        }
    });
}

// dlogits = dloss * (sigmoid(z) - t)
void sigmoid_cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const float* targets,
                                    int64_t n) {
    simd_chunks(n, kCostTranscendental, [&](int64_t lo, int64_t hi) {
        float* __restrict d = dlogits + lo;
        const float* __restrict g = dloss + lo;
        const float* __restrict z = logits + lo;
        const float* __restrict t = targets + lo;
        for (int64_t i = 0; i < hi - lo; i++) d[i] = g[i] * (sigmoid_f(z[i]) - t[i]);
    });
}

}  // namespace engine

// csrc/loss.cpp (namespace engine): cross-entropy fused with the softmax or sigmoid that precedes it.
// Matches engine/ref/loss.py. N rows (examples), C classes; n values for the element-wise sigmoid form.
//
// Why fused: computing softmax, then log, then the sum loses everything once a probability underflows
// (log 0 = -inf) and overflows for logits of 1e4. With lse = log(sum_c exp(z_c)) computed as
// max + log(sum exp(z - max)), the loss -sum_c t_c log p_c = sum_c t_c (lse - z_c) never takes the log
// of a small number, and the gradient is simply probs - targets.
// OpenMP over rows; each row's sums are in double and in order, so threads cannot change the bits.
#include <algorithm>
#include <cmath>

#include "common.h"
#include "kernels.h"

namespace engine {

// log(sum_c exp(z_c)) for one row, and probs_c = exp(z_c - lse).
static double log_sum_exp_row(float* probs, const float* z, int64_t C) {
    float mx = z[0];
    for (int64_t c = 1; c < C; c++) mx = std::max(mx, z[c]);
    double total = 0.0;
    for (int64_t c = 0; c < C; c++) total += std::exp(static_cast<double>(z[c]) - mx);
    const double lse = mx + std::log(total);
    for (int64_t c = 0; c < C; c++) probs[c] = static_cast<float>(std::exp(z[c] - lse));
    return lse;
}

void softmax_cross_entropy_forward(float* loss, float* probs, const float* logits, const float* targets, int64_t N,
                                   int64_t C) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * C, kCostTranscendental))
    for (int64_t n = 0; n < N; n++) {
        const float* z = logits + n * C;
        const float* t = targets + n * C;
        const double lse = log_sum_exp_row(probs + n * C, z, C);
        double l = 0.0;
        for (int64_t c = 0; c < C; c++) l += t[c] * (lse - z[c]);
        loss[n] = static_cast<float>(l);
    }
}

// dlogits = dloss * (probs * sum_c(targets) - targets); sum_c(targets) is 1 for a probability vector.
void softmax_cross_entropy_backward(float* dlogits, const float* dloss, const float* probs, const float* targets,
                                    int64_t N, int64_t C) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * C, 2))
    for (int64_t n = 0; n < N; n++) {
        const float* t = targets + n * C;
        double mass = 0.0;
        for (int64_t c = 0; c < C; c++) mass += t[c];
        for (int64_t c = 0; c < C; c++)
            dlogits[n * C + c] = dloss[n] * (probs[n * C + c] * static_cast<float>(mass) - t[c]);
    }
}

void sparse_softmax_cross_entropy_forward(float* loss, float* probs, const float* logits, const int64_t* labels,
                                          int64_t N, int64_t C) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * C, kCostTranscendental))
    for (int64_t n = 0; n < N; n++) {
        const double lse = log_sum_exp_row(probs + n * C, logits + n * C, C);
        loss[n] = static_cast<float>(lse - logits[n * C + labels[n]]);
    }
}

// dlogits = dloss * (probs - onehot(label))
void sparse_softmax_cross_entropy_backward(float* dlogits, const float* dloss, const float* probs,
                                           const int64_t* labels, int64_t N, int64_t C) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * C))
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) dlogits[n * C + c] = dloss[n] * probs[n * C + c];
        dlogits[n * C + labels[n]] -= dloss[n];
    }
}

// loss = -(t log s + (1 - t) log(1 - s)), s = sigmoid(z), written as max(z, 0) - z t + log1p(exp(-|z|)).
void sigmoid_cross_entropy_forward(float* loss, const float* logits, const float* targets, int64_t n) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n, kCostTranscendental))
    for (int64_t i = 0; i < n; i++) {
        const float z = logits[i];
        loss[i] = std::fmax(z, 0.0f) - z * targets[i] + std::log1p(std::exp(-std::fabs(z)));
    }
}

// dlogits = dloss * (sigmoid(z) - t)
void sigmoid_cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const float* targets,
                                    int64_t n) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n, kCostTranscendental))
    for (int64_t i = 0; i < n; i++) {
        const float z = logits[i];
        const float e = std::exp(-std::fabs(z));                     // sigmoid without overflow
        const float s = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        dlogits[i] = dloss[i] * (s - targets[i]);
    }
}

}  // namespace engine

// csrc/attention.cpp (namespace engine): softmax and log-softmax over one axis (attention joins later).
// Matches engine/ref/attention.py. x is viewed as (A, D, B): the axis has D entries, A slabs come before
// it and B values after it, so element (a, d, b) is x[(a * D + d) * B + b]. For the last axis B = 1.
// OpenMP over the A slabs (each one independent); sums in double, in a fixed order: no thread-count
// effect on the bits. No intrinsics.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

// Per slab: shift[b] = max_d x[d, b] and total[b] = sum_d exp(x[d, b] - shift[b]); then `finish` writes
// the output from them. Both softmax and log-softmax start this way. A NaN anywhere on the axis makes
// total NaN, so the whole softmax along it is NaN, as in the reference.
template <class Finish>
static void softmax_family_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B, Finish finish) {
    #pragma omp parallel if (parallel_worth_it(A * D * B, kCostTranscendental) && A > 1)
    {
        std::vector<float> shift(B);
        std::vector<double> total(B);
        #pragma omp for schedule(static)
        for (int64_t a = 0; a < A; a++) {
            const float* xs = x + a * D * B;
            float* ys = y + a * D * B;
            std::copy(xs, xs + B, shift.begin());
            for (int64_t d = 1; d < D; d++)
                for (int64_t b = 0; b < B; b++)
                    if (xs[d * B + b] > shift[b]) shift[b] = xs[d * B + b];
            std::fill(total.begin(), total.end(), 0.0);
            for (int64_t d = 0; d < D; d++)
                for (int64_t b = 0; b < B; b++) total[b] += std::exp(xs[d * B + b] - shift[b]);
            finish(ys, xs, shift.data(), total.data(), D, B);
        }
    }
}

void softmax_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B) {
    softmax_family_forward(y, x, A, D, B, [](float* ys, const float* xs, const float* shift, const double* total,
                                             int64_t D, int64_t B) {
        for (int64_t d = 0; d < D; d++)
            for (int64_t b = 0; b < B; b++)
                ys[d * B + b] = static_cast<float>(std::exp(xs[d * B + b] - shift[b]) / total[b]);
    });
}

void log_softmax_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B) {
    softmax_family_forward(y, x, A, D, B, [](float* ys, const float* xs, const float* shift, const double* total,
                                             int64_t D, int64_t B) {
        for (int64_t d = 0; d < D; d++)
            for (int64_t b = 0; b < B; b++)
                ys[d * B + b] = static_cast<float>(xs[d * B + b] - shift[b] - std::log(total[b]));
    });
}

// Per slab: total[b] = sum_d weight(d, b); then dx[d, b] = grad(d, b, total[b]).
template <class Weight, class Grad>
static void softmax_family_backward(float* dx, int64_t A, int64_t D, int64_t B, Weight weight, Grad grad) {
    #pragma omp parallel if (parallel_worth_it(A * D * B) && A > 1)
    {
        std::vector<double> total(B);
        #pragma omp for schedule(static)
        for (int64_t a = 0; a < A; a++) {
            const int64_t base = a * D * B;
            std::fill(total.begin(), total.end(), 0.0);
            for (int64_t d = 0; d < D; d++)
                for (int64_t b = 0; b < B; b++) total[b] += weight(base + d * B + b);
            for (int64_t d = 0; d < D; d++)
                for (int64_t b = 0; b < B; b++) dx[base + d * B + b] = grad(base + d * B + b, total[b]);
        }
    }
}

// dx = y * (dy - sum_d(dy * y))
void softmax_backward(float* dx, const float* dy, const float* y, int64_t A, int64_t D, int64_t B) {
    softmax_family_backward(
        dx, A, D, B, [=](int64_t i) { return static_cast<double>(dy[i]) * y[i]; },
        [=](int64_t i, double total) { return static_cast<float>(y[i] * (dy[i] - total)); });
}

// dx = dy - exp(y) * sum_d(dy)
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t A, int64_t D, int64_t B) {
    softmax_family_backward(
        dx, A, D, B, [=](int64_t i) { return static_cast<double>(dy[i]); },
        [=](int64_t i, double total) { return static_cast<float>(dy[i] - std::exp(static_cast<double>(y[i])) * total); });
}

}  // namespace engine

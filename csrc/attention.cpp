// csrc/attention.cpp (namespace engine): softmax and log-softmax over one axis. (Attention itself is in
// csrc/attention_fused.cpp.) Matches engine/ref/attention.py. x is viewed as (A, D, B): the axis has D entries,
// A slabs come before it and B values after it, so element (a, d, b) is x[(a * D + d) * B + b]. For the last
// axis B = 1.
// Along the last axis (B = 1) each row is a few vectorised passes (exp from vector_math.h), in chunks of rows
// compiled for the active SIMD path (simd_chunks); along another axis, OpenMP over the A slabs with the C
// library's exp. Sums in double (along rows: float lanes of 16
// terms, then double), in a fixed order: no thread-count effect on the bits. No intrinsics.
//
// The softmax ladder (engine.ladder 'softmax'; both rungs bound in engine._cpu.ladder, softmax over rows):
//   softmax_forward_v1   the slab loop: max, then sum of exp (the C library's, one call per value), then divide
//   softmax_forward_v2   row passes written so they vectorise: a max and a sum in independent SIMD lanes
//                        (row_reduce.h), exp_f from vector_math.h. This is softmax_forward along the last axis.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "row_reduce.h"
#include "vector_math.h"

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

// The common case, softmax along the last axis (B = 1): one contiguous row at a time. The row max and the
// row sum run in independent SIMD lanes (csrc/row_reduce.h: a single running max or sum is a dependency
// chain the compiler will not split), exp comes from vector_math.h. Log = false writes softmax, Log = true
// log-softmax.
template <bool Log>
static inline __attribute__((always_inline)) void softmax_row(float* __restrict y, const float* __restrict x,
                                                              int64_t D) {
    const float mx = lanes_max(x, D);
    for (int64_t e = 0; e < D; e++) y[e] = exp_nonpositive_f(x[e] - mx);
    const double total = row_sum(y, D);
    if (Log) {
        const float log_total = static_cast<float>(std::log(total));
        for (int64_t e = 0; e < D; e++) y[e] = (x[e] - mx) - log_total;
    } else {
        const float inv = static_cast<float>(1.0 / total);
        for (int64_t e = 0; e < D; e++) y[e] *= inv;
    }
}

template <bool Log>
static void softmax_rows(float* y, const float* x, int64_t rows, int64_t D) {
    simd_chunks(rows, D * kCostTranscendental, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; r++) softmax_row<Log>(y + r * D, x + r * D, D);
    });
}

void softmax_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B) {
    if (B == 1) return softmax_rows<false>(y, x, A, D);
    softmax_family_forward(y, x, A, D, B, [](float* ys, const float* xs, const float* shift, const double* total,
                                             int64_t D, int64_t B) {
        for (int64_t d = 0; d < D; d++)
            for (int64_t b = 0; b < B; b++)
                ys[d * B + b] = static_cast<float>(std::exp(xs[d * B + b] - shift[b]) / total[b]);
    });
}

// The ladder's two rungs over rows (N, D): the slab loop with B = 1, and the vectorised row passes.
void softmax_forward_v1(float* y, const float* x, int64_t N, int64_t D) {
    softmax_family_forward(y, x, N, D, 1, [](float* ys, const float* xs, const float* shift, const double* total,
                                             int64_t D, int64_t B) {
        for (int64_t d = 0; d < D; d++) ys[d] = static_cast<float>(std::exp(xs[d] - shift[0]) / total[0]);
    });
}

void softmax_forward_v2(float* y, const float* x, int64_t N, int64_t D) { softmax_rows<false>(y, x, N, D); }

void log_softmax_forward(float* y, const float* x, int64_t A, int64_t D, int64_t B) {
    if (B == 1) return softmax_rows<true>(y, x, A, D);
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

// Along the last axis: dx = y * (dy - dot) row by row, dot = sum(dy * y) in lanes (row_reduce.h).
static inline __attribute__((always_inline)) void softmax_backward_row(float* __restrict dx, const float* __restrict dy,
                                                                       const float* __restrict y, int64_t D) {
    const float dot = static_cast<float>(row_dot(dy, y, D));
    for (int64_t e = 0; e < D; e++) dx[e] = y[e] * (dy[e] - dot);
}

// Along the last axis: dx = dy - exp(y) * sum(dy), row by row, the sum in lanes.
static inline __attribute__((always_inline)) void log_softmax_backward_row(float* __restrict dx,
                                                                           const float* __restrict dy,
                                                                           const float* __restrict y, int64_t D) {
    const float total = static_cast<float>(row_sum(dy, D));
    for (int64_t e = 0; e < D; e++) dx[e] = dy[e] - exp_nonpositive_f(y[e]) * total;
}

// dx = y * (dy - sum_d(dy * y))
void softmax_backward(float* dx, const float* dy, const float* y, int64_t A, int64_t D, int64_t B) {
    if (B == 1) {
        return simd_chunks(A, 4 * D, [&](int64_t lo, int64_t hi) {
            for (int64_t r = lo; r < hi; r++) softmax_backward_row(dx + r * D, dy + r * D, y + r * D, D);
        });
    }
    softmax_family_backward(
        dx, A, D, B, [=](int64_t i) { return static_cast<double>(dy[i]) * y[i]; },
        [=](int64_t i, double total) { return static_cast<float>(y[i] * (dy[i] - total)); });
}

// dx = dy - exp(y) * sum_d(dy)
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t A, int64_t D, int64_t B) {
    if (B == 1) {
        return simd_chunks(A, D * kCostTranscendental, [&](int64_t lo, int64_t hi) {
            for (int64_t r = lo; r < hi; r++) log_softmax_backward_row(dx + r * D, dy + r * D, y + r * D, D);
        });
    }
    softmax_family_backward(
        dx, A, D, B, [=](int64_t i) { return static_cast<double>(dy[i]); },
        [=](int64_t i, double total) { return static_cast<float>(dy[i] - std::exp(static_cast<double>(y[i])) * total); });
}

}  // namespace engine

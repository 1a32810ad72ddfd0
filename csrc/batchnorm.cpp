// csrc/batchnorm.cpp (namespace engine): batch normalisation, training and inference, forward and backward.
// Matches engine/ref/batchnorm.py (Keras' momentum and epsilon semantics, the biased batch variance).
// Dimensions: x is viewed as (A, C, B): C channels on the normalised axis, A the axes before it, B after it
// (NHWC with axis=-1: A = N * H * W, B = 1; NCHW with axis=1: A = N, B = H * W). M = A * B values per channel.
//
// Per-channel sums (mean, variance, dgamma, dbeta) are taken in double in a fixed order: for B = 1 the rows
// are cut into fixed chunks of kRows (by shape, not by thread), each chunk summed in order by one thread, and
// the chunk sums added in order; for B > 1 each thread owns whole channels. So the bits do not depend on the
// thread count. The element-wise passes are plain loops over contiguous memory that the compiler vectorises.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

constexpr int64_t kRows = 256;           // rows of C values per partial sum when B = 1

// out[c * 2 + k] = sum over a, b of term_k(a, c, b) for k < K (K = 1 or 2 terms): one pass over x.
template <int K, class Term>
static void channel_sums(double* out, int64_t A, int64_t C, int64_t B, Term term) {
    if (B == 1) {
        const int64_t chunks = std::max<int64_t>(1, (A + kRows - 1) / kRows);
        std::vector<double> partial(chunks * C * K, 0.0);          // (chunks, K, C)
        #pragma omp parallel for schedule(static) if (parallel_worth_it(A * C * 2) && chunks > 1)
        for (int64_t t = 0; t < chunks; t++) simd_dispatch([&] {     // rows of C contiguous values: vectorised over c
            double* __restrict p = partial.data() + t * C * K;
            const Term local = term;
            for (int64_t a = t * kRows; a < std::min(A, (t + 1) * kRows); a++)
                for (int64_t c = 0; c < C; c++) {
                    double v[2];
                    local(a * C + c, c, v);
                    for (int k = 0; k < K; k++) p[k * C + c] += v[k];
                }
        });
        for (int64_t c = 0; c < C; c++)
            for (int k = 0; k < K; k++) {
                double s = 0.0;
                for (int64_t t = 0; t < chunks; t++) s += partial[(t * K + k) * C + c];
                out[c * 2 + k] = s;
            }
        return;
    }
    #pragma omp parallel for schedule(static) if (parallel_worth_it(A * C * B * 2) && C > 1)
    for (int64_t c = 0; c < C; c++) {
        double s[2] = {0.0, 0.0};
        for (int64_t a = 0; a < A; a++)
            for (int64_t b = 0; b < B; b++) {
                double v[2];
                term((a * C + c) * B + b, c, v);
                for (int k = 0; k < K; k++) s[k] += v[k];
            }
        out[c * 2] = s[0];
        out[c * 2 + 1] = s[1];
    }
}

// out[i] = f(i, c) over x viewed as (A, C, B); parallel over A.
// With B = 1 (channels last) the loop over c is the contiguous one, and is the one that vectorises.
template <class F>
static void per_element(int64_t A, int64_t C, int64_t B, F f) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(A * C * B) && A > 1)
    for (int64_t a = 0; a < A; a++) simd_dispatch([&] {
        const F local = f;
        if (B == 1) {
            for (int64_t c = 0; c < C; c++) local(a * C + c, c);
            return;
        }
        for (int64_t c = 0; c < C; c++) {
            const int64_t base = (a * C + c) * B;
            for (int64_t b = 0; b < B; b++) local(base + b, c);
        }
    });
}

void batchnorm_forward(float* y, float* mean, float* inv_std, float* moving_mean, float* moving_var, const float* x,
                       const float* gamma, const float* beta, int64_t A, int64_t C, int64_t B, double momentum,
                       double epsilon, bool training) {
    std::vector<double> var(C);
    if (training) {
        const double M = static_cast<double>(A * B);
        std::vector<double> mean_sum(2 * C), var_sum(2 * C);
        channel_sums<1>(mean_sum.data(), A, C, B, [&](int64_t i, int64_t, double* v) { v[0] = x[i]; });
        for (int64_t c = 0; c < C; c++) mean[c] = static_cast<float>(mean_sum[c * 2 + 0] / M);
        // second pass around the float mean: no cancellation, as the reference's two passes
        channel_sums<1>(var_sum.data(), A, C, B, [&](int64_t i, int64_t c, double* v) {
            const float d = x[i] - mean[c];
            v[0] = static_cast<double>(d * d);
        });
        for (int64_t c = 0; c < C; c++) {        // moving averages from the double statistics, rounded once
            var[c] = var_sum[c * 2 + 0] / M;
            moving_mean[c] = static_cast<float>(moving_mean[c] * momentum + mean_sum[c * 2 + 0] / M * (1.0 - momentum));
            moving_var[c] = static_cast<float>(moving_var[c] * momentum + var[c] * (1.0 - momentum));
        }
    } else {
        for (int64_t c = 0; c < C; c++) {
            mean[c] = moving_mean[c];
            var[c] = moving_var[c];
        }
    }
    std::vector<float> scale(C), shift(C);
    for (int64_t c = 0; c < C; c++) {
        inv_std[c] = static_cast<float>(1.0 / std::sqrt(var[c] + epsilon));
        scale[c] = gamma[c] * inv_std[c];
        shift[c] = beta[c];
    }
    per_element(A, C, B, [&](int64_t i, int64_t c) { y[i] = (x[i] - mean[c]) * scale[c] + shift[c]; });
}

void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                        const float* mean, const float* inv_std, int64_t A, int64_t C, int64_t B, bool training) {
    std::vector<double> sums(2 * C);
    channel_sums<2>(sums.data(), A, C, B, [&](int64_t i, int64_t c, double* v) {
        v[0] = dy[i];
        v[1] = static_cast<double>(dy[i]) * ((x[i] - mean[c]) * inv_std[c]);
    });
    const double M = static_cast<double>(std::max<int64_t>(A * B, 1));
    std::vector<float> scale(C), db_m(C), dg_m(C);
    for (int64_t c = 0; c < C; c++) {
        dbeta[c] = static_cast<float>(sums[c * 2 + 0]);
        dgamma[c] = static_cast<float>(sums[c * 2 + 1]);
        scale[c] = gamma[c] * inv_std[c];
        db_m[c] = training ? static_cast<float>(sums[c * 2 + 0] / M) : 0.0f;
        dg_m[c] = training ? static_cast<float>(sums[c * 2 + 1] / M) : 0.0f;
    }
    per_element(A, C, B, [&](int64_t i, int64_t c) {
        const float xhat = (x[i] - mean[c]) * inv_std[c];
        dx[i] = scale[c] * (dy[i] - db_m[c] - xhat * dg_m[c]);
    });
}

}  // namespace engine

// csrc/layernorm.cpp (namespace engine): layer normalisation over the last axis, forward and backward.
// Matches engine/ref/layernorm.py. x is viewed as (N, D): N rows of D features; gamma, beta: (D,).
//   forward   per row, two passes with sums in SIMD lanes (row_reduce.h): the mean, then the mean of squared
//             deviations (never E[x^2] - E[x]^2, which cancels when |mean| >> std); then y = (x - mean) * rstd *
//             gamma + beta. OpenMP over rows.
//   backward  per row, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma. dgamma and dbeta
//             are sums over rows: each block of kRowBlock rows (a fixed size, not one per thread) sums into its
//             own partial row, then the partials are added block by block, in order: the bits do not depend
//             on the thread count.
// No intrinsics: the row loops are compiled once per SIMD path (simd_chunks, simd_dispatch) and vectorise.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "row_reduce.h"

namespace engine {
namespace {

constexpr int64_t kRowBlock = 128;

ENGINE_INLINE void forward_rows(float* __restrict y, float* __restrict mean, float* __restrict rstd,
                                const float* __restrict x, const float* __restrict gamma, const float* __restrict beta,
                                int64_t lo, int64_t hi, int64_t D, float epsilon, bool rms) {
    for (int64_t n = lo; n < hi; n++) {
        const float* __restrict xr = x + n * D;
        float* __restrict yr = y + n * D;
        const float m = rms ? 0.0f : static_cast<float>(row_sum(xr, D) / D);
        const double var = row_squared_deviation(xr, m, D) / D;          // the second pass: deviations
        const float r = static_cast<float>(1.0 / std::sqrt(var + epsilon));
        for (int64_t e = 0; e < D; e++) yr[e] = (xr[e] - m) * r * gamma[e] + beta[e];
        mean[n] = m;
        rstd[n] = r;
    }
}

// Rows [lo, hi): dx, and this block's partial sums of dy * xhat and dy (pg, pb: (D,), added to). Two passes
// over a row: its two sums, then dx and the partial sums (few arrays in flight, so they stay in L1).
ENGINE_INLINE void backward_rows(float* __restrict dx, float* __restrict pg, float* __restrict pb,
                                 const float* __restrict dy, const float* __restrict x, const float* __restrict mean,
                                 const float* __restrict rstd, const float* __restrict gamma, int64_t lo, int64_t hi,
                                 int64_t D, bool rms) {
    for (int64_t n = lo; n < hi; n++) {
        const float* __restrict xr = x + n * D;
        const float* __restrict dyr = dy + n * D;
        float* __restrict dxr = dx + n * D;
        const float m = mean[n], r = rstd[n];
        const float mean_g = rms ? 0.0f : static_cast<float>(row_dot(dyr, gamma, D) / D);    // mean(g), g = dy gamma
        const float mean_gx = static_cast<float>(row_dot_deviation(dyr, gamma, xr, m, D) * r / D);   // mean(g xhat)
        for (int64_t e = 0; e < D; e++) {
            const float xhat = (xr[e] - m) * r;
            dxr[e] = r * (dyr[e] * gamma[e] - mean_g - xhat * mean_gx);
            pg[e] += dyr[e] * xhat;
            pb[e] += dyr[e];
        }
    }
}

}  // namespace

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        int64_t N, int64_t D, float epsilon, bool rms) {
    std::vector<float> ones, zeros;                       // stand-ins for an absent gamma or beta
    if (!gamma) gamma = (ones.assign(D, 1.0f), ones.data());
    if (!beta || rms) beta = (zeros.assign(D, 0.0f), zeros.data());
    simd_chunks(N, 4 * D, [&](int64_t lo, int64_t hi) {
        forward_rows(y, mean, rstd, x, gamma, beta, lo, hi, D, epsilon, rms);
    });
}

void layer_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gamma, int64_t N, int64_t D, bool rms) {
    std::vector<float> ones;
    if (!gamma) gamma = (ones.assign(D, 1.0f), ones.data());
    const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
    std::vector<float> pg(blocks * D, 0.0f), pb(blocks * D, 0.0f);     // per block partial dgamma, dbeta
    #pragma omp parallel for schedule(static) if (blocks > 1 && parallel_worth_it(N * D, 8))
    for (int64_t k = 0; k < blocks; k++) simd_dispatch([&] {
        const int64_t lo = k * kRowBlock, hi = std::min(N, lo + kRowBlock);
        backward_rows(dx, pg.data() + k * D, pb.data() + k * D, dy, x, mean, rstd, gamma, lo, hi, D, rms);
    });
    std::vector<double> sg(D, 0.0), sb(D, 0.0);
    parallel_chunks(D, 2 * blocks, [&](int64_t lo, int64_t hi) {   // columns apart; blocks in order
        for (int64_t k = 0; k < blocks; k++)                           // block rows one after another: unit stride
            for (int64_t e = lo; e < hi; e++) {
                sg[e] += pg[k * D + e];
                sb[e] += pb[k * D + e];
            }
        for (int64_t e = lo; e < hi; e++) {
            dgamma[e] = static_cast<float>(sg[e]);
            dbeta[e] = static_cast<float>(sb[e]);
        }
    });
}

}  // namespace engine

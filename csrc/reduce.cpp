// csrc/reduce.cpp (namespace engine): sum, mean and max over one run of axes, and their gradients.
// Matches engine/ref/reduce.py. x is viewed as (A, R, B): R is the product of the reduced axes, A of
// the axes before them, B of the axes after them (csrc/bind_cpu/bind_reduce.cpp moves non-adjacent reduced
// axes together first). Element (a, r, b) is x[(a * R + r) * B + b]; y is (A, B).
//
// Determinism: a sum is split into fixed chunks of R (kChunk rows, whatever the thread count), each
// chunk summed in order in double, and the chunk sums added in order. The split only depends on the
// shape, so 1, 2 or 16 threads give the same bits.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace engine {

constexpr int64_t kChunk = 4096;   // rows of R per partial sum

void sum_forward(float* y, const float* x, int64_t A, int64_t R, int64_t B) {
    const int64_t chunks = std::max<int64_t>(1, (R + kChunk - 1) / kChunk);
    std::vector<double> partial(A * chunks * B, 0.0);        // (A, chunks, B)
    #pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(A * R * B))
    for (int64_t a = 0; a < A; a++)
        for (int64_t c = 0; c < chunks; c++) {
            double* p = partial.data() + (a * chunks + c) * B;
            const int64_t r1 = std::min(R, (c + 1) * kChunk);
            for (int64_t r = c * kChunk; r < r1; r++) {
                const float* xr = x + (a * R + r) * B;
                for (int64_t b = 0; b < B; b++) p[b] += xr[b];
            }
        }
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++) {
            double s = 0.0;
            for (int64_t c = 0; c < chunks; c++) s += partial[(a * chunks + c) * B + b];
            y[a * B + b] = static_cast<float>(s);
        }
}

void mean_forward(float* y, const float* x, int64_t A, int64_t R, int64_t B) {
    sum_forward(y, x, A, R, B);
    for (int64_t i = 0; i < A * B; i++) y[i] /= static_cast<float>(R);   // R = 0 gives 0 / 0 = NaN, as NumPy
}

// dx[a, r, b] = scale * dy[a, b]
static void spread(float* dx, const float* dy, int64_t A, int64_t R, int64_t B, float scale) {
    #pragma omp parallel for collapse(2) schedule(static) if (parallel_worth_it(A * R * B))
    for (int64_t a = 0; a < A; a++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t b = 0; b < B; b++) dx[(a * R + r) * B + b] = scale * dy[a * B + b];
}

void sum_backward(float* dx, const float* dy, int64_t A, int64_t R, int64_t B) { spread(dx, dy, A, R, B, 1.0f); }

void mean_backward(float* dx, const float* dy, int64_t A, int64_t R, int64_t B) {
    spread(dx, dy, A, R, B, 1.0f / static_cast<float>(std::max<int64_t>(R, 1)));
}

void max_forward(float* y, const float* x, int64_t A, int64_t R, int64_t B) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(A * R * B) && A > 1)
    for (int64_t a = 0; a < A; a++) {
        float* ya = y + a * B;
        std::copy(x + a * R * B, x + a * R * B + B, ya);
        for (int64_t r = 1; r < R; r++) {
            const float* xr = x + (a * R + r) * B;
            for (int64_t b = 0; b < B; b++)
                if (!(xr[b] <= ya[b]) && !std::isnan(ya[b])) ya[b] = xr[b];   // NaN, once seen, stays
        }
    }
}

// The gradient goes to the entries equal to the max; k tied entries get dy / k each.
void max_backward(float* dx, const float* dy, const float* x, const float* y, int64_t A, int64_t R, int64_t B) {
    #pragma omp parallel if (parallel_worth_it(A * R * B) && A > 1)
    {
        std::vector<int64_t> ties(B);
        #pragma omp for schedule(static)
        for (int64_t a = 0; a < A; a++) {
            std::fill(ties.begin(), ties.end(), 0);
            for (int64_t r = 0; r < R; r++)
                for (int64_t b = 0; b < B; b++) ties[b] += x[(a * R + r) * B + b] == y[a * B + b];
            for (int64_t r = 0; r < R; r++)
                for (int64_t b = 0; b < B; b++) {
                    const int64_t i = (a * R + r) * B + b;
                    dx[i] = x[i] == y[a * B + b] ? dy[a * B + b] / static_cast<float>(ties[b]) : 0.0f;
                }
        }
    }
}

}  // namespace engine

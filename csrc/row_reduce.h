// csrc/row_reduce.h (namespace engine): a max and sums along one row, in independent SIMD lanes.
// Used by the row kernels of softmax (csrc/attention.cpp) and layer norm (csrc/layernorm.cpp).
//
// Why: a single running max or sum is one long dependency chain, and the compiler may not split it (float
// addition is not associative; it will not reorder without -ffast-math, which we never use). Written as 16
// lanes with GCC's vector extensions, each SIMD path uses its widest registers (one zmm, two ymm or four
// xmm: the caller is compiled once per path and these functions are inlined into it).
// Sums: each lane adds 16 values (a 256-value block) in float, in two chains (even and odd vectors) added at
// the end of the block, then the block is added into 16 double lanes;
// the lanes are combined in a fixed order at the end. So the bits do not depend on the thread count, and the
// rounding error stays that of float sums of 16 terms plus double sums.
// No vector types cross a function boundary (that would change the ABI between SIMD paths).
#pragma once

#include <cstdint>
#include <cstring>

#include "common.h"

namespace engine {

typedef float Lanes16 __attribute__((vector_size(64)));     // 16 floats

// The max of x[0..n) (n >= 1); NaN never wins (so a NaN in the row shows up in the sum of exp instead).
ENGINE_INLINE float lanes_max(const float* x, int64_t n) {
    Lanes16 m;
    for (int j = 0; j < 16; j++) m[j] = x[0];
    int64_t e = 0;
    for (; e + 16 <= n; e += 16) {
        Lanes16 v;
        std::memcpy(&v, x + e, sizeof v);
        m = v > m ? v : m;
    }
    float mx = x[0];
    for (int j = 0; j < 16; j++) mx = m[j] > mx ? m[j] : mx;
    for (; e < n; e++) mx = x[e] > mx ? x[e] : mx;
    return mx;
}

// Sum over e < n of a term: Term 0 a[e], 1 a[e] * b[e], 2 (a[e] - c)^2, 3 a[e] * b[e] * (d[e] - c).
template <int Term>
ENGINE_INLINE double lanes_sum(const float* a, const float* b, float c, int64_t n, const float* d = nullptr) {
    double total[16] = {};
    int64_t e = 0;
    while (e + 16 <= n) {
        Lanes16 block[2] = {};                   // two chains of additions (even and odd vectors) run in parallel
        for (int k = 0; k < 16 && e + 16 <= n; k++, e += 16) {
            Lanes16 v;
            std::memcpy(&v, a + e, sizeof v);
            if (Term == 1 || Term == 3) {
                Lanes16 w;
                std::memcpy(&w, b + e, sizeof w);
                v = v * w;
            }
            if (Term == 2) v = (v - c) * (v - c);
            if (Term == 3) {
                Lanes16 u;
                std::memcpy(&u, d + e, sizeof u);
                v = v * (u - c);
            }
            block[k & 1] += v;
        }
        const Lanes16 both = block[0] + block[1];
        for (int j = 0; j < 16; j++) total[j] += both[j];
    }
    for (; e < n; e++) {
        const float v = Term == 0 ? a[e] : Term == 1 ? a[e] * b[e] : Term == 2 ? (a[e] - c) * (a[e] - c)
                                                                                  : a[e] * b[e] * (d[e] - c);
        total[0] += v;
    }
    double sum = 0.0;
    for (int j = 0; j < 16; j++) sum += total[j];
    return sum;
}

ENGINE_INLINE double row_sum(const float* a, int64_t n) { return lanes_sum<0>(a, nullptr, 0.0f, n); }
ENGINE_INLINE double row_dot(const float* a, const float* b, int64_t n) { return lanes_sum<1>(a, b, 0.0f, n); }
ENGINE_INLINE double row_squared_deviation(const float* a, float c, int64_t n) { return lanes_sum<2>(a, nullptr, c, n); }
// sum of a[e] * b[e] * (d[e] - c)
ENGINE_INLINE double row_dot_deviation(const float* a, const float* b, const float* d, float c, int64_t n) {
    return lanes_sum<3>(a, b, c, n, d);
}

}  // namespace engine

// csrc/row_reduce.h (namespace engine): a max and sums along one row, in independent SIMD lanes.
// Used by the row kernels of softmax (csrc/attention.cpp) and layer norm (csrc/layernorm.cpp).
//
// Why: a single running max or sum is one long dependency chain, and the compiler may not split it (float
// addition is not associative; it will not reorder without -ffast-math, which we never use). Written as 16
// lanes, held as two 8-float vectors of GCC's vector extensions: two ymm registers on the AVX2 and AVX-512
// paths, four xmm on the portable one (the caller is compiled once per path and these functions are inlined
// into it). One 16-float vector was one zmm on AVX-512, but on AVX2 GCC moved it through the stack,
// element by element: the AVX2 softmax ran 3x slower than PyTorch's.
// Sums: each lane adds 16 values (a 256-value block) in float, in two chains (even and odd vectors) added at
// the end of the block, then the block is added into 16 double lanes;
// the lanes are combined in a fixed order at the end. So the bits do not depend on the thread count or the
// SIMD path, and the rounding error stays that of float sums of 16 terms plus double sums.
// No vector types cross a function boundary (that would change the ABI between SIMD paths).
#pragma once

#include <cstdint>
#include <cstring>

#include "common.h"

namespace engine {

typedef float Lanes8 __attribute__((vector_size(32)));      // 8 floats
typedef double Doubles4 __attribute__((vector_size(32)));   // 4 doubles

// 16 lanes: lane j is half[j / 8][j % 8].
struct Lanes16 {
    Lanes8 half[2];
};

ENGINE_INLINE Lanes16 load16(const float* p) {
    Lanes16 v;
    std::memcpy(&v.half[0], p, sizeof(Lanes8));
    std::memcpy(&v.half[1], p + 8, sizeof(Lanes8));
    return v;
}

// The max of x[0..n) (n >= 1); NaN never wins (so a NaN in the row shows up in the sum of exp instead).
ENGINE_INLINE float lanes_max(const float* x, int64_t n) {
    Lanes8 m[2];
    m[0] = m[1] = Lanes8{} + x[0];
    int64_t e = 0;
    for (; e + 16 <= n; e += 16) {
        const Lanes16 v = load16(x + e);
        for (int h = 0; h < 2; h++) m[h] = v.half[h] > m[h] ? v.half[h] : m[h];
    }
    float mx = x[0];
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 8; j++) mx = m[h][j] > mx ? m[h][j] : mx;
    for (; e < n; e++) mx = x[e] > mx ? x[e] : mx;
    return mx;
}

// Sum over e < n of a term: Term 0 a[e], 1 a[e] * b[e], 2 (a[e] - c)^2, 3 a[e] * b[e] * (d[e] - c).
template <int Term>
ENGINE_INLINE double lanes_sum(const float* a, const float* b, float c, int64_t n, const float* d = nullptr) {
    Doubles4 total[4] = {};                      // lane j is total[j / 4][j % 4]
    int64_t e = 0;
    while (e + 16 <= n) {
        Lanes8 block[2][2] = {};                 // [chain][half]: two chains of additions (even and odd vectors)
        for (int k = 0; k < 16 && e + 16 <= n; k++, e += 16) {
            Lanes16 v = load16(a + e);
            if (Term == 1 || Term == 3) {
                const Lanes16 w = load16(b + e);
                for (int h = 0; h < 2; h++) v.half[h] = v.half[h] * w.half[h];
            }
            if (Term == 2)
                for (int h = 0; h < 2; h++) v.half[h] = (v.half[h] - c) * (v.half[h] - c);
            if (Term == 3) {
                const Lanes16 u = load16(d + e);
                for (int h = 0; h < 2; h++) v.half[h] = v.half[h] * (u.half[h] - c);
            }
            for (int h = 0; h < 2; h++) block[k & 1][h] += v.half[h];
        }
        for (int h = 0; h < 2; h++) {
            const Lanes8 both = block[0][h] + block[1][h];
            typedef float Lanes4 __attribute__((vector_size(16)));
            const Lanes4 low = __builtin_shufflevector(both, both, 0, 1, 2, 3);
            const Lanes4 high = __builtin_shufflevector(both, both, 4, 5, 6, 7);
            total[2 * h] += __builtin_convertvector(low, Doubles4);
            total[2 * h + 1] += __builtin_convertvector(high, Doubles4);
        }
    }
    double lane0 = total[0][0];                  // the values past the last full block go into lane 0
    for (; e < n; e++) {
        const float v = Term == 0 ? a[e] : Term == 1 ? a[e] * b[e] : Term == 2 ? (a[e] - c) * (a[e] - c)
                                                                                  : a[e] * b[e] * (d[e] - c);
        lane0 += v;
    }
    double sum = lane0;
    for (int j = 1; j < 16; j++) sum += total[j / 4][j % 4];
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

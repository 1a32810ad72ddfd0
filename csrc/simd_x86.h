// csrc/simd_x86.h (namespace engine): AVX2 register helpers shared by the kernels that write intrinsics
// (matmul.cpp's packing, attention_tile.h's transposes). x86-64 only: include it under
// #if defined(__x86_64__), and call it only from functions compiled for the AVX2 or AVX-512 path.
#pragma once

#include "common.h"

#if ENGINE_X86
#include <immintrin.h>

namespace engine {

// r[0..7] = the rows of an 8 x 8 block in; the columns out (r[j][i] = old r[i][j]), all in registers: unpack
// pairs of rows, shuffle pairs of pairs, then swap 128-bit halves.
ENGINE_AVX2 ENGINE_INLINE void transpose8x8(__m256 (&r)[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);            // a_i0 a_j0 a_i1 a_j1 | a_i4 a_j4 a_i5 a_j5
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);        // a_i2 a_j2 a_i3 a_j3 | a_i6 a_j6 a_i7 a_j7
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));       // columns 0 | 4 of 4 rows
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));   // columns 1 | 5
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0)); // columns 2 | 6
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2)); // columns 3 | 7
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

}  // namespace engine
#endif  // ENGINE_X86

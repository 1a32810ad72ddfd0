// csrc/attention_tile.h (namespace engine::tile): the small matrix products that the fused attention
// (csrc/attention_fused.cpp) runs on its tiles, one version per SIMD path.
//
//   C (M x N) = or += A (M x K) B (K x N), with A stored k-major: A(i, k) = a[k * lda + i]
//   (a column of A is contiguous), B and C row-major with leading dimensions ldb and ldc.
//
// Why not engine::matmul_forward: a tile is small (96 x 96 x 64), and the general GEMM would copy (pack) both
// operands on every call; here the attention code lays its tiles out once, in exactly the form the
// micro-kernel reads, so nothing is copied. The micro-kernel keeps an MR x (NV * VL) block of C in SIMD
// registers for the whole k loop, loading one row of B and broadcasting MR consecutive values of A per step.
//
// Edges: N must be a multiple of VL (the caller pads B and C to it); M may be anything, but A is read up to
// the next multiple of MR, so the caller allocates A with that slack (the extra rows of C are never stored).
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>

#include "common.h"
#include "simd_x86.h"

namespace engine {
namespace tile {

// One micro-kernel per SIMD path, the same loop with each path's intrinsics (a shared template body cannot be
// compiled for a target it does not carry: GCC refuses to inline the intrinsics into it).
#if ENGINE_X86
struct Avx512 {
    static constexpr int64_t MR = 6, VL = 16, NVMAX = 4;   // 6 x 64: 24 zmm accumulators + 4 for B + 1 for A

    template <int NV>
    ENGINE_AVX512 static void micro(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                                    int64_t ldc, int64_t rows, bool accumulate) {
        __m512 acc[MR][NV];
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m512 bv[NV];
            for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + k * ldb + 16 * v);
            const float* ak = a + k * lda;
            #pragma GCC unroll 6
            for (int r = 0; r < MR; r++) {
                const __m512 ar = _mm512_set1_ps(ak[r]);
                for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
            }
        }
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            for (int v = 0; v < NV; v++) {
                float* cr = c + r * ldc + 16 * v;
                _mm512_storeu_ps(cr, accumulate ? _mm512_add_ps(acc[r][v], _mm512_loadu_ps(cr)) : acc[r][v]);
            }
        }
    }
};

struct Avx2 {
    static constexpr int64_t MR = 6, VL = 8, NVMAX = 2;    // 6 x 16: 12 ymm accumulators + 2 for B + 1 for A

    template <int NV>
    ENGINE_AVX2 static void micro(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                                  int64_t ldc, int64_t rows, bool accumulate) {
        __m256 acc[MR][NV];
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m256 bv[NV];
            for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(b + k * ldb + 8 * v);
            const float* ak = a + k * lda;
            #pragma GCC unroll 6
            for (int r = 0; r < MR; r++) {
                const __m256 ar = _mm256_set1_ps(ak[r]);
                for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
            }
        }
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            for (int v = 0; v < NV; v++) {
                float* cr = c + r * ldc + 8 * v;
                _mm256_storeu_ps(cr, accumulate ? _mm256_add_ps(acc[r][v], _mm256_loadu_ps(cr)) : acc[r][v]);
            }
        }
    }
};

#endif  // ENGINE_X86

struct Portable {
    static constexpr int64_t MR = 4, VL = 4, NVMAX = 2;    // plain loops; the compiler vectorises them (SSE2)

    template <int NV>
    static void micro(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                      int64_t rows, bool accumulate) {
        constexpr int NR = NV * VL;
        float acc[MR][NR] = {};
        for (int64_t k = 0; k < K; k++)
            for (int r = 0; r < MR; r++)
                for (int s = 0; s < NR; s++) acc[r][s] += a[k * lda + r] * b[k * ldb + s];
        for (int r = 0; r < MR && r < rows; r++)
            for (int s = 0; s < NR; s++) c[r * ldc + s] = accumulate ? c[r * ldc + s] + acc[r][s] : acc[r][s];
    }
};

// C (M x N) = or += A B, tile by tile: each B panel (K x NVMAX VL) is reused by every tile down its column.
template <class Isa>
ENGINE_INLINE void gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float* c, int64_t ldc, bool accumulate) {
    constexpr int64_t MR = Isa::MR, VL = Isa::VL;
    for (int64_t j = 0; j < N;) {
        const int64_t left = (N - j) / VL;
        const int nv = left >= Isa::NVMAX ? static_cast<int>(Isa::NVMAX) : (left >= 2 ? 2 : 1);
        for (int64_t i = 0; i < M; i += MR) {
            const int64_t rows = std::min(MR, M - i);
            if (nv == 4)
                Isa::template micro<Isa::NVMAX>(K, a + i, lda, b + j, ldb, c + i * ldc + j, ldc, rows, accumulate);
            else if (nv == 2)
                Isa::template micro<2>(K, a + i, lda, b + j, ldb, c + i * ldc + j, ldc, rows, accumulate);
            else
                Isa::template micro<1>(K, a + i, lda, b + j, ldb, c + i * ldc + j, ldc, rows, accumulate);
        }
        j += nv * VL;
    }
}

#if ENGINE_X86
// dst = src^T for one 8 x 8 block (rows of src become columns of dst), in registers.
ENGINE_AVX2 inline void transpose8(float* dst, int64_t ldd, const float* src, int64_t lds) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    transpose8x8(r);
    for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * ldd, r[i]);
}
#else
using Avx512 = Portable;                         // never chosen off x86; the dispatch code still names them
using Avx2 = Portable;
void transpose8(float* dst, int64_t ldd, const float* src, int64_t lds);   // declared only: transpose() calls it
                                                                           // when VL >= 8, which never holds here
#endif

// dst (cols x rows, leading dimension ldd) = src (rows x cols, leading dimension lds) transposed: whole 8 x 8
// blocks in registers on the SIMD paths, the edges (and the portable path) element by element.
template <class Isa>
ENGINE_INLINE void transpose(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
    int64_t r8 = 0, c8 = 0;
    if constexpr (Isa::VL >= 8) {
        r8 = rows / 8 * 8, c8 = cols / 8 * 8;
        for (int64_t r = 0; r < r8; r += 8)
            for (int64_t c = 0; c < c8; c += 8) transpose8(dst + c * ldd + r, ldd, src + r * lds + c, lds);
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = r < r8 ? c8 : 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

}  // namespace tile

// body(task) for every task in [0, tasks), each on one thread of the team (on the calling thread alone when
// `parallel` is false). An exception thrown inside (std::bad_alloc for scratch too large, say) must not leave
// an OpenMP region, where it would terminate the process: the first one is kept and rethrown after the team
// has finished, so Python gets MemoryError or ValueError instead.
template <class Body>
void parallel_tasks(int64_t tasks, bool parallel, Body body) {
    std::exception_ptr error = nullptr;
    #pragma omp parallel for schedule(static) if (parallel && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        try {
            body(t);
        } catch (...) {
            #pragma omp critical(engine_parallel_tasks)
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}
}  // namespace engine

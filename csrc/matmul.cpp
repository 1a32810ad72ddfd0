// csrc/matmul.cpp (namespace engine): matrix multiply, C = op(A) @ op(B); the dense layer (the product with a
// bias + activation epilogue, and its backward); the bias add.
// Matches engine/ref/matmul.py. Dimensions: M rows of C, N columns of C, K the shared (summed) dimension.
// All matrices are row-major and contiguous; op(A) is A (M, K), or A^T when A is stored (K, M) and
// trans_a is set; the same for B. Transposed operands are read in place, never copied out.
//
// Why one file of about 700 lines: the ladder reads top to bottom, from the naive loops to the packed GEMM,
// and what rung 4 is built from (packing, a micro-kernel per SIMD path, the blocking plan, the threads' loops)
// is static and used by rung 4 alone; cut in two, both halves would share a private header of those types.
// The dense layer and the bias add (the last 45 lines) are this GEMM with its epilogue, grouped as
// engine/ref/matmul.py groups them.
//
// The ladder (each rung is bound in engine.ladder and tested against the reference). GFLOP/s measured on
// the 2-core AVX-512 test machine, 256 x 256 x 256, 2 threads, medians (`python -m engine.tour matmul`;
// NumPy/OpenBLAS in the same run: 181):
//   matmul_forward_v1     2.5  naive i-j-k loops: the definition, one dot product per output
//   matmul_forward_v2      48  i-k-j order: the inner loop walks rows of B and C with unit stride, so it
//                              vectorises; OpenMP over rows of C
//   matmul_forward_v3      48  cache blocking: tiles of C, K in slices, so the B tile stays in cache while it
//                              is reused; OpenMP over tiles of C. No faster than v2 here, at 256 or 1024:
//                              each multiply-add still loads and stores C, and that, not memory, is the limit
//   matmul_forward_v4     210  packing + register-blocked micro-kernel (the GotoBLAS/BLIS design): copy a
//                              slice of B and a block of A into contiguous panels, then an MR x NR tile of C
//                              lives in SIMD registers for a whole K slice. SIMD path chosen at run time;
//                              OpenMP over tiles of C, or, when C has many rows, over runs of rows, each
//                              thread packing its own A and its own copy of the B slice (no waits). This is
//                              matmul_forward, with transposed operands, stacks of matrices and a bias +
//                              activation epilogue.
// v4 on each path (`engine.ladder.paths_table('matmul', 'v4')`, same machine, 256^3, 2 threads, one run;
// the fraction is of the path's FMA peak, engine.ladder.fma_peak):
//   avx512    12 x 32 tile, 24 zmm accumulators      210 GFLOP/s  82%
//   avx2       6 x 16 tile, 12 ymm accumulators      219 GFLOP/s  85%   (Zen 4 runs a zmm FMA as two ymm ones)
//   portable   6 x 8 tile, GCC vectors (SSE2, NEON)   41 GFLOP/s  41%
// At 2048^3, 2 threads: 0.8 of the peak on AVX-512, 0.74 on AVX2 (NumPy 0.72-0.8 in the same runs); 0.82-0.85
// on one thread on either path.
//
// Determinism: every rung gives each element of C to exactly one thread, and that thread adds the
// products in a fixed order of k (slice by slice), so the bits do not depend on the thread count.
// NaN and Inf propagate: no rung skips a zero.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "simd_x86.h"                            // x86-64 only (empty elsewhere)

namespace engine {

// Below this many multiply-adds a product runs on one thread: waking a team and its barriers cost
// more than they save. Measured with 2 threads: 128^3 (2.1M) ran no faster on two threads than on
// one, 160^3 (4.1M) ran 13% faster.
constexpr int64_t kGemmParallelMinWork = int64_t{3} << 20;
static bool gemm_parallel_worth_it(int64_t M, int64_t N, int64_t K) { return M * N * K >= kGemmParallelMinWork; }

// ---------------------------------------------------------------------------------------------------
// Rungs 1-3: plain C++ that reads like the math. C (M, N) = A (M, K) @ B (K, N), no transposes.

void matmul_forward_v1(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++) sum += a[i * K + k] * b[k * N + j];   // B walked down a column
            c[i * N + j] = sum;
        }
}

void matmul_forward_v2(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K) {
    #pragma omp parallel for schedule(static) if (gemm_parallel_worth_it(M, N, K))
    for (int64_t i = 0; i < M; i++) {
        float* ci = c + i * N;
        std::fill(ci, ci + N, 0.0f);
        for (int64_t k = 0; k < K; k++) {
            const float aik = a[i * K + k];
            const float* bk = b + k * N;
            for (int64_t j = 0; j < N; j++) ci[j] += aik * bk[j];           // unit stride: vectorises
        }
    }
}

void matmul_forward_v3(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K) {
    constexpr int64_t TM = 64, TN = 256, TK = 128;   // one B tile (TK x TN) is 128 KiB: it stays in L2
    const int64_t tiles_m = (M + TM - 1) / TM, tiles_n = (N + TN - 1) / TN;
    #pragma omp parallel for collapse(2) schedule(static) if (gemm_parallel_worth_it(M, N, K))
    for (int64_t ti = 0; ti < tiles_m; ti++)
        for (int64_t tj = 0; tj < tiles_n; tj++) {
            const int64_t i0 = ti * TM, i1 = std::min(M, i0 + TM);
            const int64_t j0 = tj * TN, j1 = std::min(N, j0 + TN);
            for (int64_t i = i0; i < i1; i++) std::fill(c + i * N + j0, c + i * N + j1, 0.0f);
            for (int64_t k0 = 0; k0 < K; k0 += TK) {                       // K slices in a fixed order
                const int64_t k1 = std::min(K, k0 + TK);
                for (int64_t i = i0; i < i1; i++) {
                    float* ci = c + i * N;
                    for (int64_t k = k0; k < k1; k++) {
                        const float aik = a[i * K + k];
                        const float* bk = b + k * N;
                        for (int64_t j = j0; j < j1; j++) ci[j] += aik * bk[j];
                    }
                }
            }
        }
}

// ---------------------------------------------------------------------------------------------------
// Rung 4: packed panels and a register-blocked micro-kernel.
//
// Loops (outermost first):  jc: N in blocks of NC  ->  pc: K in slices of KC (pack B: KC x NC)
//                           ic: M in blocks of MC (pack A: MC x KC)  ->  jr, ir: MR x NR tiles of C
// Packed A: MR-row panels, each stored k-major (ap[k * MR + r]); packed B: NR-column panels, each
// stored k-major (bp[k * NR + s]). The micro-kernel reads both with unit stride; rows past the matrix
// edge are packed as zeros, so it never branches on them. Where packing would cost more than it saves,
// the micro-kernel reads the matrix in place instead: a small B (not transposed, fits in L2), and an A
// (not transposed) that is small or feeds a narrow output (kDirectA* below).

struct Blocking { int64_t MR, NR, MC, KC, NC; };

// op(A)(i, k) = a[i * rs + k * cs]: (rs, cs) = (K, 1) for A, (1, M) for A stored transposed.
static void pack_a(float* ap, const float* a, int64_t rs, int64_t cs, int64_t mc, int64_t kc, int64_t MR,
                   int64_t first_panel, int64_t end_panel) {
    for (int64_t p = first_panel; p < end_panel; p++) {
        float* dst = ap + p * MR * kc;
        const int64_t r0 = p * MR, rows = std::min(MR, mc - r0);
        for (int64_t k = 0; k < kc; k++) {
            for (int64_t r = 0; r < rows; r++) dst[k * MR + r] = a[(r0 + r) * rs + k * cs];
            for (int64_t r = rows; r < MR; r++) dst[k * MR + r] = 0.0f;
        }
    }
}

#if ENGINE_X86
// pack_a for A not transposed (cs = 1) on the AVX2 and AVX-512 paths: each block of 8 rows x 8 k is moved
// through registers and transposed there (8 loads, 24 shuffles, 8 stores), instead of 64 scalar moves. A panel
// of MR = 6 rows fills rows 6 and 7 with copies of row 5 and writes 8 floats for each k, the last 2 of which
// the next k overwrites (the panel's last k writes exactly 6). Panels with rows past the matrix edge, and
// the k past the last multiple of 8, take the scalar loop.
template <int MR>
ENGINE_AVX2 static void pack_a_rows_avx2(float* ap, const float* a, int64_t rs, int64_t mc, int64_t kc,
                                         int64_t first_panel, int64_t end_panel) {
    const int64_t k8 = kc / 8 * 8;
    for (int64_t p = first_panel; p < end_panel; p++) {
        float* dst = ap + p * MR * kc;
        const int64_t r0 = p * MR;
        if (mc - r0 < MR) {
            pack_a(ap, a, rs, 1, mc, kc, MR, p, p + 1);
            continue;
        }
        for (int rb = 0; rb < MR; rb += 8) {
            const int rows = std::min(8, MR - rb);
            for (int64_t k = 0; k < k8; k += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(a + (r0 + rb + std::min(i, rows - 1)) * rs + k);
                transpose8x8(r);
                for (int j = 0; j < 8; j++) {
                    float* out = dst + (k + j) * MR + rb;
                    if (rows == 8) {
                        _mm256_storeu_ps(out, r[j]);
                    } else if (rows == 4) {
                        _mm_storeu_ps(out, _mm256_castps256_ps128(r[j]));
                    } else if (j < 7 || k + 8 < kc) {          // rows == 6: the next k overwrites the extra 2
                        _mm256_storeu_ps(out, r[j]);
                    } else {
                        _mm_storeu_ps(out, _mm256_castps256_ps128(r[j]));
                        _mm_storel_pi(reinterpret_cast<__m64*>(out + 4), _mm256_extractf128_ps(r[j], 1));
                    }
                }
            }
            for (int64_t k = k8; k < kc; k++)
                for (int i = 0; i < rows; i++) dst[k * MR + rb + i] = a[(r0 + rb + i) * rs + k];
        }
    }
}
#endif  // ENGINE_X86

// op(B)(k, j) = b[k * rs + j * cs]: (rs, cs) = (N, 1) for B, (1, K) for B stored transposed. Panels
// [first_panel, end_panel) of the slice; memory is read in its own order: B row by row across the panels (one
// pass over each row, not one short run per page), B^T column by column down k.
static void pack_b(float* bp, const float* b, int64_t rs, int64_t cs, int64_t kc, int64_t nc, int64_t NR,
                   int64_t first_panel, int64_t end_panel) {
    if (cs == 1) {
        for (int64_t k = 0; k < kc; k++) {
            const float* src = b + k * rs;
            for (int64_t p = first_panel; p < end_panel; p++) {
                float* dst = bp + p * NR * kc + k * NR;
                const int64_t c0 = p * NR, cols = std::min(NR, nc - c0);
                for (int64_t s = 0; s < cols; s++) dst[s] = src[c0 + s];
                for (int64_t s = cols; s < NR; s++) dst[s] = 0.0f;
            }
        }
        return;
    }
    for (int64_t p = first_panel; p < end_panel; p++) {
        float* dst = bp + p * NR * kc;
        const int64_t c0 = p * NR, cols = std::min(NR, nc - c0);
        for (int64_t s = 0; s < NR; s++) {
            const float* src = b + (c0 + s) * cs;
            for (int64_t k = 0; k < kc; k++) dst[k * NR + s] = s < cols ? src[k * rs] : 0.0f;
        }
    }
}

#if ENGINE_X86
// pack_b for B not transposed (cs = 1) on the AVX2 and AVX-512 paths: every full panel row is NR / 8 moves of
// 8 floats; a last panel narrower than NR takes the scalar loop.
template <int NR>
ENGINE_AVX2 static void pack_b_rows_avx2(float* bp, const float* b, int64_t rs, int64_t kc, int64_t nc,
                                         int64_t first_panel, int64_t end_panel) {
    const int64_t full_end = std::min(end_panel, nc / NR);
    for (int64_t k = 0; k < kc; k++) {
        const float* src = b + k * rs;
        for (int64_t p = first_panel; p < full_end; p++) {
            float* dst = bp + p * NR * kc + k * NR;
            #pragma GCC unroll 4
            for (int s = 0; s < NR; s += 8) _mm256_storeu_ps(dst + s, _mm256_loadu_ps(src + p * NR + s));
        }
    }
    if (full_end < end_panel) pack_b(bp, b, rs, 1, kc, nc, NR, std::max(full_end, first_panel), end_panel);
}
#endif  // ENGINE_X86

// Where a micro-kernel finds A(r, k) for the rows of its tile. Packed: a packed panel, A(r, k) =
// a[k * MR + r], constant offsets the compiler folds into each load. In place (A not transposed):
// A(r, k) = a[r * rs + k], read through one pointer per row.
struct PanelA { const float* a; int64_t rs; };

template <bool Packed, int MR>
struct PanelReader {
    const float* rows[MR];
    const float* packed;
    PanelReader(PanelA pa, int64_t valid_rows) : packed(pa.a) {
        if (!Packed)                             // rows past the matrix edge re-read the last row (never stored)
            for (int r = 0; r < MR; r++) rows[r] = pa.a + std::min<int64_t>(r, valid_rows - 1) * pa.rs;
    }
    float operator()(int r, int64_t k) const { return Packed ? packed[k * MR + r] : rows[r][k]; }
};

// Micro-kernels: the rows x cols (at most MR x NR) tile of C = sum over k of A(:, k) b[k, :], written
// over C (overwrite) or added to it. pa: the A panel (packed or in place). b: row k at b + k * b_rs, a packed B
// panel (b_rs = NR) or B itself (b_rs = its row length). Full = every column of the tile exists; an edge
// tile (Full = false) masks its loads and stores so nothing past the matrix is read or written. The
// accumulators are local arrays of vectors; fully unrolled, every one of them stays in a register.
#if ENGINE_X86
template <bool Full, bool Packed>
ENGINE_AVX512 static void micro_avx512(int64_t kc, PanelA pa, const float* b, int64_t b_rs, float* c,
                                       int64_t ldc, int64_t rows, int64_t cols, bool overwrite) {
    constexpr int MR = 12;                       // 12 x 32: 24 zmm accumulators + 2 for B + 1 for A
    const __mmask16 m0 = Full || cols >= 16 ? 0xffff : static_cast<__mmask16>((1u << cols) - 1);
    const __mmask16 m1 = Full || cols >= 32 ? 0xffff : cols <= 16 ? 0 : static_cast<__mmask16>((1u << (cols - 16)) - 1);
    const PanelReader<Packed, MR> A(pa, rows);
    __m512 acc0[MR], acc1[MR];
    #pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        acc0[r] = acc1[r] = _mm512_setzero_ps();
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);        // the tile is read or
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 31), _MM_HINT_T0);   // written after the loop
    }
    #pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        const float* bk = b + k * b_rs;
        const __m512 b0 = Full ? _mm512_loadu_ps(bk) : _mm512_maskz_loadu_ps(m0, bk);
        const __m512 b1 = Full ? _mm512_loadu_ps(bk + 16) : _mm512_maskz_loadu_ps(m1, bk + 16);
        #pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            const __m512 a_rk = _mm512_set1_ps(A(r, k));
            acc0[r] = _mm512_fmadd_ps(a_rk, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(a_rk, b1, acc1[r]);
        }
    }
    #pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float* cr = c + r * ldc;
        if (!overwrite) {
            acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, cr));
            acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, acc0[r]);
        _mm512_mask_storeu_ps(cr + 16, m1, acc1[r]);
    }
}

// The half-width edge kernel (12 x 16): for a last panel of at most 16 columns (a 10-class output
// layer), it does half the work of the 12 x 32 kernel with its loads masked.
template <bool Packed>
ENGINE_AVX512 static void micro_avx512_half(int64_t kc, PanelA pa, const float* b, int64_t b_rs, float* c,
                                            int64_t ldc, int64_t rows, int64_t cols, bool overwrite) {
    constexpr int MR = 12;
    const __mmask16 m0 = cols >= 16 ? 0xffff : static_cast<__mmask16>((1u << cols) - 1);
    const PanelReader<Packed, MR> A(pa, rows);
    __m512 acc[MR];
    #pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b + k * b_rs);
        #pragma GCC unroll 12
        for (int r = 0; r < MR; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(A(r, k)), b0, acc[r]);
    }
    #pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float* cr = c + r * ldc;
        if (!overwrite) acc[r] = _mm512_add_ps(acc[r], _mm512_maskz_loadu_ps(m0, cr));
        _mm512_mask_storeu_ps(cr, m0, acc[r]);
    }
}

ENGINE_AVX2 static inline __m256i avx2_mask(int64_t count) {   // lanes 0 .. count-1 on
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(8, count)))),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <bool Full, bool Packed>
ENGINE_AVX2 static void micro_avx2(int64_t kc, PanelA pa, const float* b, int64_t b_rs, float* c,
                                   int64_t ldc, int64_t rows, int64_t cols, bool overwrite) {
    constexpr int MR = 6;                        // 6 x 16: 12 ymm accumulators + 2 for B + 1 for A
    const __m256i m0 = avx2_mask(Full ? 8 : cols), m1 = avx2_mask(Full ? 8 : cols - 8);
    const PanelReader<Packed, MR> A(pa, rows);
    __m256 acc0[MR], acc1[MR];
    #pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        acc0[r] = acc1[r] = _mm256_setzero_ps();
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);        // the tile is read or
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);   // written after the loop
    }
    #pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const float* bk = b + k * b_rs;
        const __m256 b0 = Full ? _mm256_loadu_ps(bk) : _mm256_maskload_ps(bk, m0);
        const __m256 b1 = Full ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + 8, m1);
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const __m256 a_rk = _mm256_set1_ps(A(r, k));
            acc0[r] = _mm256_fmadd_ps(a_rk, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(a_rk, b1, acc1[r]);
        }
    }
    #pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float* cr = c + r * ldc;
        if (Full) {                              // plain moves: a masked store costs AMD cores ~10x more
            if (!overwrite) {
                acc0[r] = _mm256_add_ps(acc0[r], _mm256_loadu_ps(cr));
                acc1[r] = _mm256_add_ps(acc1[r], _mm256_loadu_ps(cr + 8));
            }
            _mm256_storeu_ps(cr, acc0[r]);
            _mm256_storeu_ps(cr + 8, acc1[r]);
            continue;
        }
        if (!overwrite) {
            acc0[r] = _mm256_add_ps(acc0[r], _mm256_maskload_ps(cr, m0));
            acc1[r] = _mm256_add_ps(acc1[r], _mm256_maskload_ps(cr + 8, m1));
        }
        _mm256_maskstore_ps(cr, m0, acc0[r]);
        _mm256_maskstore_ps(cr + 8, m1, acc1[r]);
    }
}

template <bool Packed>
ENGINE_AVX2 static void micro_avx2_half(int64_t kc, PanelA pa, const float* b, int64_t b_rs, float* c,
                                        int64_t ldc, int64_t rows, int64_t cols, bool overwrite) {
    constexpr int MR = 6;                        // 6 x 8: the AVX2 twin of micro_avx512_half
    const __m256i m0 = avx2_mask(cols);
    const PanelReader<Packed, MR> A(pa, rows);
    __m256 acc[MR];
    #pragma GCC unroll 6
    for (int r = 0; r < MR; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_maskload_ps(b + k * b_rs, m0);
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(A(r, k)), b0, acc[r]);
    }
    #pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float* cr = c + r * ldc;
        if (!overwrite) acc[r] = _mm256_add_ps(acc[r], _mm256_maskload_ps(cr, m0));
        _mm256_maskstore_ps(cr, m0, acc[r]);
    }
}
#endif  // ENGINE_X86

// The portable kernel (6 x 8) in GCC's generic 4-float vectors: two SSE2 registers per row of the tile on
// x86-64, two NEON registers on aarch64; 12 accumulators + 2 for B + 1 for A in the 16 registers. An edge tile
// reads its B row through a zero-padded copy and stores only its columns.
typedef float Float4 __attribute__((vector_size(16)));
typedef float Float4u __attribute__((vector_size(16), aligned(4)));     // loads and stores at any address

template <bool Full, bool Packed>
static void micro_portable(int64_t kc, PanelA pa, const float* b, int64_t b_rs, float* c, int64_t ldc,
                           int64_t rows, int64_t cols, bool overwrite) {
    constexpr int MR = 6, NR = 8;
    const PanelReader<Packed, MR> A(pa, rows);
    Float4 acc0[MR], acc1[MR];
    for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = Float4{};
    float edge[NR] = {};
    for (int64_t k = 0; k < kc; k++) {
        const float* bk = b + k * b_rs;
        if (!Full) {
            for (int64_t s = 0; s < cols; s++) edge[s] = bk[s];
            bk = edge;
        }
        const Float4 b0 = *reinterpret_cast<const Float4u*>(bk), b1 = *reinterpret_cast<const Float4u*>(bk + 4);
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const Float4 a_rk = Float4{} + A(r, k);
            acc0[r] += a_rk * b0;
            acc1[r] += a_rk * b1;
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        float* cr = c + r * ldc;
        if (Full && overwrite) {
            *reinterpret_cast<Float4u*>(cr) = acc0[r];
            *reinterpret_cast<Float4u*>(cr + 4) = acc1[r];
            continue;
        }
        for (int64_t s = 0; s < (Full ? NR : cols); s++) {
            const float v = s < 4 ? acc0[r][s] : acc1[r][s - 4];
            cr[s] = overwrite ? v : cr[s] + v;
        }
    }
}

using MicroKernel = void (*)(int64_t, PanelA, const float*, int64_t, float*, int64_t, int64_t, int64_t, bool);

using PackRows = void (*)(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t);   // pack_*_rows_avx2

// One path's kernels: [packed A?] full tiles, edge tiles, and half-width edge tiles (<= NR / 2 columns); the
// packing of A when it is not transposed (null: the scalar pack_a).
struct Path { MicroKernel full[2], edge[2], half[2]; Blocking blk; PackRows pack_a_rows, pack_b_rows; };

// Block sizes: a B panel (KC x NR) and an A panel (MR x KC) fit in L1 together; the packed A block
// (MC x KC) stays in L2. Measured on the 2-core test machine (see bench/bench_matmul.py).
static Path path_for(Simd simd) {
    switch (simd) {
#if ENGINE_X86
        case Simd::avx512:
            return {{micro_avx512<true, false>, micro_avx512<true, true>},
                    {micro_avx512<false, false>, micro_avx512<false, true>},
                    {micro_avx512_half<false>, micro_avx512_half<true>}, {12, 32, 144, 256, 4096},
                    pack_a_rows_avx2<12>, pack_b_rows_avx2<32>};
        case Simd::avx2:
            return {{micro_avx2<true, false>, micro_avx2<true, true>}, {micro_avx2<false, false>, micro_avx2<false, true>},
                    {micro_avx2_half<false>, micro_avx2_half<true>}, {6, 16, 144, 256, 4096}, pack_a_rows_avx2<6>,
                    pack_b_rows_avx2<16>};
#endif
        default:
            return {{micro_portable<true, false>, micro_portable<true, true>},
                    {micro_portable<false, false>, micro_portable<false, true>},
                    {micro_portable<false, false>, micro_portable<false, true>}, {6, 8, 144, 256, 4096}, nullptr, nullptr};
    }
}

// B is read in place when it is not transposed and small enough to stay in L2 (1 MiB here): 64K floats.
constexpr int64_t kDirectBMax = int64_t{1} << 16;
// A (not transposed) is read in place, row by row, when packing it would not pay: when each packed panel
// would serve at most kDirectANarrow column panels of C (a narrow output, such as a convolution with 64
// filters), or when all of A fits in L2. Packing is a strided copy, as slow as the multiply for such shapes.
constexpr int64_t kDirectANarrow = 2;
constexpr int64_t kDirectAMax = int64_t{1} << 16;

// Packing buffers, reused across calls: one pair per calling thread (Python threads may call
// kernels at the same time: the GIL is released), shared by the OpenMP team of that call.
static float* scratch(std::vector<float>& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
    return buf.data();
}

// Everything one product needs. gemm_loops runs on every thread of a team (thread `t` of `threads`), or
// on one thread alone with threads = 1: then it executes no OpenMP construct at all, which matters when
// it runs inside someone else's parallel loop (one product per thread), where a work-sharing loop would
// bind to that outer team.
struct GemmPlan {
    const float* a; int64_t ars, acs;            // op(A)(i, k) = a[i * ars + k * acs]
    const float* b; int64_t brs, bcs;            // op(B)(k, j) = b[k * brs + j * bcs]
    float* c; int64_t M, N, K;
    bool accumulate, pack_a, pack_b;
    bool split_rows;                             // threads own whole blocks of MC rows (each packs its own A)
    int64_t a_block, b_block;                    // floats of one packed A block, of one packed B slice
    const Epilogue* epilogue;                    // applied to each tile after its last K slice
    Path path;
    float* ap; float* bp;
};

// Pack panels [first, end) of the A block at rows ic, K slice pc (mc x kc) into ap.
static void pack_a_block(const GemmPlan& g, float* ap, int64_t ic, int64_t mc, int64_t pc, int64_t kc, int64_t first,
                         int64_t end) {
    const float* a = g.a + ic * g.ars + pc * g.acs;
    if (g.acs == 1 && g.path.pack_a_rows != nullptr) g.path.pack_a_rows(ap, a, g.ars, mc, kc, first, end);
    else pack_a(ap, a, g.ars, g.acs, mc, kc, g.path.blk.MR, first, end);
}

// Pack panels [first, end) of the B slice at columns jc, K slice pc (kc x nc) into bp.
static void pack_b_slice(const GemmPlan& g, float* bp, int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t first,
                         int64_t end) {
    const float* b = g.b + pc * g.brs + jc * g.bcs;
    if (g.bcs == 1 && g.path.pack_b_rows != nullptr) g.path.pack_b_rows(bp, b, g.brs, kc, nc, first, end);
    else pack_b(bp, b, g.brs, g.bcs, kc, nc, g.path.blk.NR, first, end);
}

static void team_barrier(int threads) {
    if (threads > 1) {
        #pragma omp barrier
    }
}

// All the MR x NR tiles of one block of rows (ic, mc) in one K slice (pc, kc), tiles [first, end) of them.
// With B packed they go in (jr, ir) order: a thread reuses its B panel. With B read in place (small, it
// stays in cache) in (ir, jr) order: a thread then reads only its own rows of A.
static void gemm_tiles(const GemmPlan& g, const float* ap, const float* bp, int64_t ic, int64_t mc, int64_t jc,
                       int64_t nc, int64_t pc, int64_t kc, int64_t first, int64_t end) {
    const int64_t MR = g.path.blk.MR, NR = g.path.blk.NR, N = g.N;
    const int64_t panels_a = (mc + MR - 1) / MR, panels_b = (nc + NR - 1) / NR;
    const bool overwrite = pc == 0 && !g.accumulate, last = pc + kc == g.K;
    for (int64_t i = first; i < end; i++) {
        const int64_t jr = g.pack_b ? i / panels_a : i % panels_b;
        const int64_t ir = g.pack_b ? i % panels_a : i / panels_b;
        const int64_t rows = std::min(MR, mc - ir * MR), cols = std::min(NR, nc - jr * NR);
        const int64_t row0 = ic + ir * MR, col0 = jc + jr * NR;
        float* ct = g.c + row0 * N + col0;
        const float* bt = g.pack_b ? bp + jr * NR * kc : g.b + pc * g.brs + col0;
        const int64_t b_rs = g.pack_b ? NR : g.brs;
        const int packed = g.pack_a;
        const MicroKernel micro = cols == NR ? g.path.full[packed]
                                  : cols <= NR / 2 ? g.path.half[packed] : g.path.edge[packed];
        const PanelA pa = g.pack_a ? PanelA{ap + ir * MR * kc, MR} : PanelA{g.a + row0 * g.ars + pc, g.ars};
        micro(kc, pa, bt, b_rs, ct, N, rows, cols, overwrite);
        if (last && g.epilogue != nullptr) apply_epilogue(*g.epilogue, ct, N, row0, col0, rows, cols);
    }
}

static void gemm_loops(const GemmPlan& g, int t, int threads) {
    const Blocking& blk = g.path.blk;
    const int64_t MR = blk.MR, NR = blk.NR, N = g.N;
    for (int64_t jc = 0; jc < N; jc += blk.NC) {
        const int64_t nc = std::min(blk.NC, N - jc), panels_b = (nc + NR - 1) / NR;
        for (int64_t pc = 0; pc < g.K; pc += blk.KC) {
            const int64_t kc = std::min(blk.KC, g.K - pc);
            if (g.split_rows) {
                // Many rows: each thread takes an equal run of MR-row panels, in blocks of up to MC rows, and
                // packs its own A and its own copy of the B slice: no thread ever waits for another, and no
                // packed line moves between cores' caches.
                float* ap = g.ap + t * g.a_block;
                float* bp = g.bp + t * g.b_block;
                if (g.pack_b) pack_b_slice(g, bp, jc, nc, pc, kc, 0, panels_b);
                const int64_t panels = (g.M + MR - 1) / MR;
                const int64_t row_end = std::min(g.M, panels * (t + 1) / threads * MR);
                for (int64_t ic = panels * t / threads * MR; ic < row_end; ic += blk.MC) {
                    const int64_t mc = std::min(blk.MC, row_end - ic), panels_a = (mc + MR - 1) / MR;
                    if (g.pack_a) pack_a_block(g, ap, ic, mc, pc, kc, 0, panels_a);
                    gemm_tiles(g, ap, bp, ic, mc, jc, nc, pc, kc, 0, panels_a * panels_b);
                }
                continue;
            }
            if (g.pack_b) {
                pack_b_slice(g, g.bp, jc, nc, pc, kc, panels_b * t / threads, panels_b * (t + 1) / threads);
                team_barrier(threads);
            }
            // Few blocks of rows: the team shares each block, tile by tile.
            for (int64_t ic = 0; ic < g.M; ic += blk.MC) {
                const int64_t mc = std::min(blk.MC, g.M - ic), panels_a = (mc + MR - 1) / MR;
                if (g.pack_a) {
                    pack_a_block(g, g.ap, ic, mc, pc, kc, panels_a * t / threads, panels_a * (t + 1) / threads);
                    team_barrier(threads);
                }
                const int64_t tiles = panels_b * panels_a;
                gemm_tiles(g, g.ap, g.bp, ic, mc, jc, nc, pc, kc, tiles * t / threads, tiles * (t + 1) / threads);
                if (g.pack_a) team_barrier(threads);   // the next block repacks A: wait until nobody reads it
            }
            if (g.pack_b && !g.pack_a) team_barrier(threads);   // the next slice repacks B
        }
    }
}

static void gemm_packed(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K,
                        bool trans_a, bool trans_b, bool accumulate, bool serial, const Epilogue* epilogue) {
    const Path path = path_for(simd_active());
    const Blocking& blk = path.blk;
    const int64_t MR = blk.MR, NR = blk.NR;
    const int64_t kc_max = std::min(K, blk.KC), mc_max = std::min(M, blk.MC), nc_max = std::min(N, blk.NC);
    const bool pack_b = trans_b || K * N > kDirectBMax;
    const bool pack_a = trans_a || (N > kDirectANarrow * NR && M * K > kDirectAMax);
    const bool team = !serial && gemm_parallel_worth_it(M, N, K);
    const int threads = team ? omp_get_max_threads() : 1;
    // Rows split between the threads (no one waits for another's packing) once there are at least two
    // blocks of MC rows per thread; fewer rows are shared tile by tile within each block.
    const bool split_rows = team && (M + blk.MC - 1) / blk.MC >= 2 * threads;
    const int64_t a_block = (mc_max + MR - 1) / MR * MR * kc_max, b_block = (nc_max + NR - 1) / NR * NR * kc_max;
    thread_local std::vector<float> abuf, bbuf;
    GemmPlan g{a, trans_a ? 1 : K, trans_a ? M : 1, b, trans_b ? 1 : N, trans_b ? K : 1, c, M, N, K,
               accumulate, pack_a, pack_b, split_rows, a_block, b_block, epilogue, path,
               pack_a ? scratch(abuf, a_block * (split_rows ? threads : 1)) : nullptr,
               pack_b ? scratch(bbuf, b_block * (split_rows ? threads : 1)) : nullptr};
    if (!team) {
        gemm_loops(g, 0, 1);
        return;
    }
    #pragma omp parallel num_threads(threads)
    gemm_loops(g, omp_get_thread_num(), omp_get_num_threads());
}

void matmul_forward_v4(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K) {
    matmul_forward(c, a, b, M, N, K, false, false, false);
}

// The Dense epilogue on a finished tile: bias add and activation while the tile is in cache.
void apply_epilogue(const Epilogue& e, float* ct, int64_t ldc, int64_t row0, int64_t col0, int64_t rows, int64_t cols) {
    bias_activation_tile(ct, ldc, e.pre == nullptr ? nullptr : e.pre + row0 * ldc + col0, ldc, rows, cols,
                         e.bias == nullptr ? nullptr : e.bias + col0, e.act, e.param);
}

void matmul_forward(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K,
                    bool trans_a, bool trans_b, bool accumulate, const Epilogue* epilogue) {
    if (M == 0 || N == 0) return;
    if (K == 0) {                                // an empty sum is zero
        if (!accumulate) std::fill(c, c + M * N, 0.0f);
        if (epilogue != nullptr) apply_epilogue(*epilogue, c, N, 0, 0, M, N);
        return;
    }
    gemm_packed(c, a, b, M, N, K, trans_a, trans_b, accumulate, false, epilogue);
}

void matmul_forward_batched(float* c, const float* a, const float* b, int64_t batch, int64_t a_step,
                            int64_t b_step, int64_t c_step, int64_t M, int64_t N, int64_t K, bool trans_a,
                            bool trans_b) {
    if (M == 0 || N == 0) return;
    if (K == 0 || batch == 0) {                  // empty sums are zero
        std::fill(c, c + (c_step == 0 ? 1 : batch) * M * N, 0.0f);
        return;
    }
    // A stack of A (M, K) times one shared B is one GEMM with batch * M rows.
    if (!trans_a && a_step == M * K && b_step == 0 && c_step == M * N) {
        matmul_forward(c, a, b, batch * M, N, K, false, trans_b, false);
        return;
    }
    if (c_step == 0) {
        // sum_i A_i^T B_i over stacked A_i (K, M) and B_i (K, N) is one GEMM with batch * K rows summed.
        if (trans_a && !trans_b && a_step == K * M && b_step == K * N) {
            matmul_forward(c, a, b, M, N, batch * K, true, false, false);
            return;
        }
        for (int64_t i = 0; i < batch; i++)      // in order of i: the same bits for any thread count
            matmul_forward(c, a + i * a_step, b + i * b_step, M, N, K, trans_a, trans_b, i > 0);
        return;
    }
    // Large products: one after another, each on the whole team. Many small ones: one thread per matrix.
    // (Never a GEMM team inside a parallel loop: the nested region would run on one thread.)
    if (batch == 1 || gemm_parallel_worth_it(M, N, K)) {
        for (int64_t i = 0; i < batch; i++)
            gemm_packed(c + i * c_step, a + i * a_step, b + i * b_step, M, N, K, trans_a, trans_b, false, false, nullptr);
        return;
    }
    #pragma omp parallel for schedule(static) if (gemm_parallel_worth_it(batch * M, N, K))
    for (int64_t i = 0; i < batch; i++)
        gemm_packed(c + i * c_step, a + i * a_step, b + i * b_step, M, N, K, trans_a, trans_b, false, true, nullptr);
}

// ---------------------------------------------------------------------------------------------------
// A dense layer in one call each way: the GEMM with the bias + activation epilogue, and its backward.

void dense_forward(float* y, float* z, const float* x, const float* w, const float* bias, int64_t N, int64_t D,
                   int64_t U, Act act, float param) {
    const Epilogue epilogue{bias, act, param, z};
    matmul_forward(y, x, w, N, U, D, false, false, false, &epilogue);
}

void dense_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, const float* w,
                    const float* z, const float* y, int64_t N, int64_t D, int64_t U, Act act, float param) {
    thread_local std::vector<float> dz_buf;
    float* dz = scratch(dz_buf, N * U);
    activation_backward(dz, dy, z, y, N * U, act, param);               // (N, U)
    if (dbias != nullptr) bias_add_backward(dbias, dz, N, U);           // (U,)
    matmul_forward(dx, dz, w, N, D, U, false, true, false);             // (N, D) = dz @ w^T
    matmul_forward(dw, x, dz, D, U, N, true, false, false);             // (D, U) = x^T @ dz
}

// ---------------------------------------------------------------------------------------------------
// Bias add, y[n, d] = x[n, d] + bias[d], and its bias gradient dbias[d] = sum_n dy[n, d].

void bias_add_forward(float* y, const float* x, const float* bias, int64_t N, int64_t D) {
    simd_chunks(N, D, [&](int64_t lo, int64_t hi) {
        for (int64_t n = lo; n < hi; n++) {
            float* __restrict yn = y + n * D;
            const float* __restrict xn = x + n * D;
            for (int64_t d = 0; d < D; d++) yn[d] = xn[d] + bias[d];
        }
    });
}

void bias_add_backward(float* dbias, const float* dy, int64_t N, int64_t D) {
    // Each thread owns a band of columns and sums it down the rows in order: no shared reduction.
    constexpr int64_t band = 64;
    const int64_t bands = (D + band - 1) / band;
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * D) && bands > 1)
    for (int64_t t = 0; t < bands; t++) simd_dispatch([&] {
        const int64_t d0 = t * band, d1 = std::min(D, d0 + band);
        double sum[band] = {};                   // double: N may be a large batch
        for (int64_t n = 0; n < N; n++)
            for (int64_t d = d0; d < d1; d++) sum[d - d0] += dy[n * D + d];
        for (int64_t d = d0; d < d1; d++) dbias[d] = static_cast<float>(sum[d - d0]);
    });
}

}  // namespace engine

// csrc/matmul.cpp (namespace engine): matrix multiply, C = op(A) @ op(B), and the bias add of a dense layer.
// Matches engine/ref/matmul.py. Dimensions: M rows of C, N columns of C, K the shared (summed) dimension.
// All matrices are row-major and contiguous; op(A) is A (M, K), or A^T when A is stored (K, M) and
// trans_a is set; the same for B. Transposed operands are read in place, never copied out.
//
// The ladder (each rung is bound in engine.ladder and tested against the reference):
//   matmul_forward_v1   naive i-j-k loops: the definition, one dot product per output
//   matmul_forward_v2   i-k-j order: the inner loop walks rows of B and C with unit stride, so it
//                       vectorises; OpenMP over rows of C
//   matmul_forward_v3   cache blocking: tiles of C, K in slices, so the B tile stays in cache while it
//                       is reused; OpenMP over tiles of C
//   matmul_forward_v4   packing + register-blocked micro-kernel (the GotoBLAS/BLIS design): copy a slice
//                       of B and a block of A into contiguous panels, then an MR x NR tile of C lives in
//                       SIMD registers for a whole K slice. SIMD path chosen at run time (AVX-512,
//                       AVX2+FMA, portable); OpenMP over tiles of C. This is matmul_forward.
//
// Determinism: every rung gives each element of C to exactly one thread, and that thread adds the
// products in a fixed order of k (slice by slice), so the bits do not depend on the thread count.
// NaN and Inf propagate: no rung skips a zero.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

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
// stored k-major (bp[k * NR + s]). The micro-kernel then reads both with unit stride, and rows or
// columns past the matrix edge are packed as zeros so the kernel never branches.

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

// op(B)(k, j) = b[k * rs + j * cs]: (rs, cs) = (N, 1) for B, (1, K) for B stored transposed.
static void pack_b(float* bp, const float* b, int64_t rs, int64_t cs, int64_t kc, int64_t nc, int64_t NR,
                   int64_t first_panel, int64_t end_panel) {
    for (int64_t p = first_panel; p < end_panel; p++) {
        float* dst = bp + p * NR * kc;
        const int64_t c0 = p * NR, cols = std::min(NR, nc - c0);
        for (int64_t k = 0; k < kc; k++) {
            const float* src = b + k * rs + c0 * cs;
            if (cs == 1) {
                std::memcpy(dst + k * NR, src, cols * sizeof(float));
            } else {
                for (int64_t s = 0; s < cols; s++) dst[k * NR + s] = src[s * cs];
            }
            for (int64_t s = cols; s < NR; s++) dst[k * NR + s] = 0.0f;
        }
    }
}

// Micro-kernels: tile (MR, NR) of C = sum over k of ap[k, :]^T bp[k, :], then C = tile (overwrite)
// or C += tile. The accumulators are local arrays of vectors; with the loops fully unrolled the
// compiler keeps every one of them in a register.
ENGINE_AVX512 static void micro_avx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                                       bool overwrite) {
    constexpr int MR = 12;                       // 12 x 32: 24 zmm accumulators + 2 for B + 1 for A
    __m512 acc0[MR], acc1[MR];
    #pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(bp + k * 32), b1 = _mm512_loadu_ps(bp + k * 32 + 16);
        #pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            const __m512 ar = _mm512_set1_ps(ap[k * MR + r]);
            acc0[r] = _mm512_fmadd_ps(ar, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(ar, b1, acc1[r]);
        }
    }
    #pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        float* cr = c + r * ldc;
        if (!overwrite) {
            acc0[r] = _mm512_add_ps(acc0[r], _mm512_loadu_ps(cr));
            acc1[r] = _mm512_add_ps(acc1[r], _mm512_loadu_ps(cr + 16));
        }
        _mm512_storeu_ps(cr, acc0[r]);
        _mm512_storeu_ps(cr + 16, acc1[r]);
    }
}

ENGINE_AVX2 static void micro_avx2(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                                   bool overwrite) {
    constexpr int MR = 6;                        // 6 x 16: 12 ymm accumulators + 2 for B + 1 for A
    __m256 acc0[MR], acc1[MR];
    #pragma GCC unroll 6
    for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(bp + k * 16), b1 = _mm256_loadu_ps(bp + k * 16 + 8);
        #pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const __m256 ar = _mm256_set1_ps(ap[k * MR + r]);
            acc0[r] = _mm256_fmadd_ps(ar, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(ar, b1, acc1[r]);
        }
    }
    #pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        float* cr = c + r * ldc;
        if (!overwrite) {
            acc0[r] = _mm256_add_ps(acc0[r], _mm256_loadu_ps(cr));
            acc1[r] = _mm256_add_ps(acc1[r], _mm256_loadu_ps(cr + 8));
        }
        _mm256_storeu_ps(cr, acc0[r]);
        _mm256_storeu_ps(cr + 8, acc1[r]);
    }
}

static void micro_portable(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                           bool overwrite) {
    constexpr int MR = 4, NR = 8;                // plain loops; the compiler vectorises them with SSE2
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; k++)
        for (int r = 0; r < MR; r++)
            for (int s = 0; s < NR; s++) acc[r][s] += ap[k * MR + r] * bp[k * NR + s];
    for (int r = 0; r < MR; r++)
        for (int s = 0; s < NR; s++) c[r * ldc + s] = overwrite ? acc[r][s] : c[r * ldc + s] + acc[r][s];
}

using MicroKernel = void (*)(int64_t, const float*, const float*, float*, int64_t, bool);

struct Path { MicroKernel micro; Blocking blk; };

// Block sizes: a B panel (KC x NR) and an A panel (MR x KC) fit in L1 together; the packed A block
// (MC x KC) stays in L2. Measured on the 2-core test machine (see bench/bench_matmul.py).
static Path path_for(Simd simd) {
    switch (simd) {
        case Simd::avx512: return {micro_avx512, {12, 32, 144, 256, 4096}};
        case Simd::avx2: return {micro_avx2, {6, 16, 144, 256, 4096}};
        default: return {micro_portable, {4, 8, 128, 256, 4096}};
    }
}

// Packing buffers, reused across calls: one pair per calling thread (Python threads may call
// kernels at the same time: the GIL is released), shared by the OpenMP team of that call.
static float* scratch(std::vector<float>& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
    return buf.data();
}

static void gemm_packed(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K,
                        bool trans_a, bool trans_b, bool accumulate, bool serial) {
    const Path path = path_for(simd_active());
    const Blocking& blk = path.blk;
    const int64_t MR = blk.MR, NR = blk.NR;
    const int64_t ars = trans_a ? 1 : K, acs = trans_a ? M : 1;
    const int64_t brs = trans_b ? 1 : N, bcs = trans_b ? K : 1;
    const int64_t kc_max = std::min(K, blk.KC);
    const int64_t mc_max = std::min(M, blk.MC), nc_max = std::min(N, blk.NC);
    thread_local std::vector<float> abuf, bbuf;
    float* ap = scratch(abuf, (mc_max + MR - 1) / MR * MR * kc_max);
    float* bp = scratch(bbuf, (nc_max + NR - 1) / NR * NR * kc_max);
    const bool team = !serial && gemm_parallel_worth_it(M, N, K);

    #pragma omp parallel if (team)
    {
        float edge[32 * 32];                     // an edge tile is computed here, then copied into C
        for (int64_t jc = 0; jc < N; jc += blk.NC) {
            const int64_t nc = std::min(blk.NC, N - jc), panels_b = (nc + NR - 1) / NR;
            for (int64_t pc = 0; pc < K; pc += blk.KC) {
                const int64_t kc = std::min(blk.KC, K - pc);
                const bool overwrite = pc == 0 && !accumulate;
                #pragma omp for schedule(static)
                for (int64_t p = 0; p < panels_b; p++)
                    pack_b(bp, b + pc * brs + jc * bcs, brs, bcs, kc, nc, NR, p, p + 1);
                for (int64_t ic = 0; ic < M; ic += blk.MC) {
                    const int64_t mc = std::min(blk.MC, M - ic), panels_a = (mc + MR - 1) / MR;
                    #pragma omp for schedule(static)
                    for (int64_t p = 0; p < panels_a; p++)
                        pack_a(ap, a + ic * ars + pc * acs, ars, acs, mc, kc, MR, p, p + 1);
                    #pragma omp for collapse(2) schedule(static)
                    for (int64_t jr = 0; jr < panels_b; jr++)
                        for (int64_t ir = 0; ir < panels_a; ir++) {
                            const int64_t rows = std::min(MR, mc - ir * MR), cols = std::min(NR, nc - jr * NR);
                            float* ct = c + (ic + ir * MR) * N + jc + jr * NR;
                            const float* at = ap + ir * MR * kc;
                            const float* bt = bp + jr * NR * kc;
                            if (rows == MR && cols == NR) {
                                path.micro(kc, at, bt, ct, N, overwrite);
                                continue;
                            }
                            path.micro(kc, at, bt, edge, NR, true);
                            for (int64_t r = 0; r < rows; r++)
                                for (int64_t s = 0; s < cols; s++)
                                    ct[r * N + s] = overwrite ? edge[r * NR + s] : ct[r * N + s] + edge[r * NR + s];
                        }
                }
            }
        }
    }
}

void matmul_forward_v4(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K) {
    matmul_forward(c, a, b, M, N, K, false, false, false);
}

void matmul_forward(float* c, const float* a, const float* b, int64_t M, int64_t N, int64_t K,
                    bool trans_a, bool trans_b, bool accumulate) {
    if (M == 0 || N == 0) return;
    if (K == 0) {                                // an empty sum is zero
        if (!accumulate) std::fill(c, c + M * N, 0.0f);
        return;
    }
    gemm_packed(c, a, b, M, N, K, trans_a, trans_b, accumulate, false);
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
            gemm_packed(c + i * c_step, a + i * a_step, b + i * b_step, M, N, K, trans_a, trans_b, false, false);
        return;
    }
    #pragma omp parallel for schedule(static) if (gemm_parallel_worth_it(batch * M, N, K))
    for (int64_t i = 0; i < batch; i++)
        gemm_packed(c + i * c_step, a + i * a_step, b + i * b_step, M, N, K, trans_a, trans_b, false, true);
}

// ---------------------------------------------------------------------------------------------------
// Bias add, y[n, d] = x[n, d] + bias[d], and its bias gradient dbias[d] = sum_n dy[n, d].

void bias_add_forward(float* y, const float* x, const float* bias, int64_t N, int64_t D) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * D))
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) y[n * D + d] = x[n * D + d] + bias[d];
}

void bias_add_backward(float* dbias, const float* dy, int64_t N, int64_t D) {
    // Each thread owns a band of columns and sums it down the rows in order: no shared reduction.
    constexpr int64_t band = 64;
    const int64_t bands = (D + band - 1) / band;
    #pragma omp parallel for schedule(static) if (parallel_worth_it(N * D) && bands > 1)
    for (int64_t t = 0; t < bands; t++) {
        const int64_t d0 = t * band, d1 = std::min(D, d0 + band);
        double sum[band] = {};                   // double: N may be a large batch
        for (int64_t n = 0; n < N; n++)
            for (int64_t d = d0; d < d1; d++) sum[d - d0] += dy[n * D + d];
        for (int64_t d = d0; d < d1; d++) dbias[d] = static_cast<float>(sum[d - d0]);
    }
}

}  // namespace engine

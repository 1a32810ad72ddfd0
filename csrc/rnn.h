// csrc/rnn.h (namespace engine): what the recurrent kernels share. lstm.cpp, gru.cpp and simple_rnn.cpp run
// their cell over a whole sequence, forward and backward through time, and match engine/ref/rnn.py, which
// has the formulas. Dimensions: N batch, T time steps, D input features, U units, G gates (LSTM 4: i, f, c, o;
// GRU 3: z, r, h; SimpleRNN 1), GU = G * U.
// Arrays are batch-major as in Keras: x (N, T, D), y (N, T, U), gates (N, T, GU).
//
// Strategy (what makes it fast; the arithmetic is the reference's):
//  * Every step's input projection is one GEMM, x (N*T, D) @ kernel (D, GU), written straight into the
//    gates array (in column blocks, on the same team). The loop over time then does one
//    small GEMM per step, h_{t-1} (N, U) @ recurrent_kernel.
//  * Units are split into bands of kBand units. A band owns its units' columns in every gate, so one thread
//    does the band's share of the step's GEMM and then its gate arithmetic and state update without waiting
//    for anyone: a step waits only for the previous step (whose h_t its GEMM reads). The OpenMP team is
//    made once per sequence (waking it costs 40 us or more here; a band's step is a few us); threads claim
//    the bands of each step from a shared counter (run_stages). Band widths do not depend on the thread
//    count and each value is computed by the same arithmetic in the same order on any thread: results are
//    bitwise equal for any thread count.
//  * The small products (per step, and the projection and weight gradients on the team) use one register-
//    tiled kernel (gemm_tile) on B packed once per call: the recurrent kernel is the same at every step.
//  * The gate arithmetic is plain loops over a band's units, compiled for AVX-512, AVX2 and baseline x86-64
//    (the running CPU picks one, as in activation.cpp); the activations come from vector_math.h. Keras'
//    default activations get a one-pass version; inference (save=False) stores nothing for a backward.
//  * Backward, per step in reverse: each band computes its pre-activation gradients dz_t, then (once every
//    band's dz_t is there) its units of dh_{t-1} = dz_t @ recurrent_kernel^T. The weight gradients are
//    products over all steps at once at the end: dkernel = x^T dz, drecurrent_kernel = h_prev^T dz,
//    dx = dz kernel^T (each band its columns, on the same team; the engine's GEMM for sequences too small
//    for a team).
// Kernels trust their inputs (csrc/bind_cpu/bind_rnn.cpp checks the shapes). The outputs should start on a 64-byte
// boundary (csrc/bind_cpu/args.h allocates them so): the bands of different threads then never share a cache line.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "vector_math.h"

namespace engine {

constexpr int64_t kBand = 32;                    // units per band: two AVX-512 vectors
// Below this many multiply-adds in one step's recurrent product the whole sequence runs on one thread: the
// per-step hand-over between threads costs more than the split saves. Measured (LSTM, T = 50, D = 64, U = 64,
// fastest of 20 runs, 2 threads against 1, on the shared 2-core machine): N = 2 (32k) 0.80x forward, 0.63x
// backward; N = 8 (131k) 0.99x, 0.75x; N = 16 (262k) 1.01x, 0.82x. Above it the machine was never quiet
// enough to show the gain; re-measure there (bench/bench_rnn.py at the 2.1M-per-step size).
constexpr int64_t kRnnParallelMinWork = int64_t{1} << 18;

// Buffers that several threads write, each its own band of every row, start on a cache line: a row's band
// boundaries then fall on cache-line boundaries (32 floats = 2 lines), and no two threads write one line.
// (With 16-byte alignment the lines at band edges bounced between the cores at every step.)
template <class T>
struct CacheAligned {
    using value_type = T;
    CacheAligned() = default;
    template <class U> CacheAligned(const CacheAligned<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <class U> bool operator==(const CacheAligned<U>&) const { return true; }
    template <class U> bool operator!=(const CacheAligned<U>&) const { return false; }
};
using Floats = std::vector<float, CacheAligned<float>>;

// ---------------------------------------------------------------------------------- activations on a run

ENGINE_INLINE void act_run(RnnActivation a, float* __restrict y, const float* __restrict z, int64_t n) {
    switch (a) {
        case RnnActivation::linear: for (int64_t i = 0; i < n; i++) y[i] = z[i]; break;
        case RnnActivation::relu: for (int64_t i = 0; i < n; i++) y[i] = z[i] < 0.0f ? 0.0f : z[i]; break;
        case RnnActivation::sigmoid: for (int64_t i = 0; i < n; i++) y[i] = sigmoid_f(z[i]); break;
        case RnnActivation::tanh: for (int64_t i = 0; i < n; i++) y[i] = tanh_f(z[i]); break;
    }
}

// d[i] *= f'(z) written with y = f(z).
ENGINE_INLINE void dact_run(RnnActivation a, float* __restrict d, const float* __restrict y, int64_t n) {
    switch (a) {
        case RnnActivation::linear: break;
        case RnnActivation::relu: for (int64_t i = 0; i < n; i++) d[i] = y[i] > 0.0f ? d[i] : 0.0f; break;
        case RnnActivation::sigmoid: for (int64_t i = 0; i < n; i++) d[i] *= y[i] * (1.0f - y[i]); break;
        case RnnActivation::tanh: for (int64_t i = 0; i < n; i++) d[i] *= 1.0f - y[i] * y[i]; break;
    }
}

// One band's gate arithmetic, compiled once per SIMD path, and once more for full bands (W = kBand: every
// loop has a known trip count, so it compiles to straight vector code without loop tails).
// name(simd, full_band, args...) calls the copy for `simd`.
#define ENGINE_RNN_PER_SIMD(name, body)                                                                       \
    template <int64_t W, class... A> ENGINE_AVX512 ENGINE_FLATTEN static void name##_avx512(A... a) {         \
        body<W>(a...);                                                                                        \
    }                                                                                                         \
    template <int64_t W, class... A> ENGINE_AVX2 ENGINE_FLATTEN static void name##_avx2(A... a) {             \
        body<W>(a...);                                                                                        \
    }                                                                                                         \
    template <int64_t W, class... A> ENGINE_FLATTEN static void name##_portable(A... a) { body<W>(a...); }    \
    template <int64_t W, class... A> static void name##_at(Simd simd, A... a) {                               \
        if (simd == Simd::avx512) name##_avx512<W>(a...);                                                    \
        else if (simd == Simd::avx2) name##_avx2<W>(a...);                                                    \
        else name##_portable<W>(a...);                                                                        \
    }                                                                                                         \
    template <class... A> static void name(Simd simd, bool full_band, A... a) {                               \
        if (full_band) name##_at<kBand>(simd, a...);                                                          \
        else name##_at<0>(simd, a...);                                                                        \
    }

// ---------------------------------------------------------------------------------- the small products
// C (M, cols) = A (M, K) @ B. A is read in place with any strides (A(i, k) = a[i * rs + k * cs], so a
// transposed matrix needs no copy); B is read in panels of NR columns, either packed once per call
// (panel[k * NR + j], zero past the last column: the recurrent kernel, the same at every step) or straight
// from a row-major matrix whose width is a multiple of NR. An MR x NR tile of C stays in registers for all
// of K; each output sums its K products in order, whichever tile, band or thread computes it. (The engine's
// GEMM would repack B at every step.) The vectors are GCC's generic ones, as wide as the path's registers:
// 16 floats (one zmm) on AVX-512, 8 (one ymm) on AVX2, 4 (one xmm) on the portable path. (A 16-float vector on
// AVX2 was moved through the stack element by element: the AVX2 LSTM ran 8x slower than PyTorch's.)
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

template <class V, int MR, int NV>
ENGINE_INLINE void gemm_tile(float* c, int64_t ldc, const float* a, int64_t rs, int64_t cs, const float* b,
                             int64_t ldb, int64_t K, int64_t rows, int64_t cols) {
    constexpr int VL = sizeof(V) / sizeof(float), NR = VL * NV;
    const float* ar[MR];
    for (int r = 0; r < MR; r++) ar[r] = a + (r < rows ? r : 0) * rs;      // rows past M repeat row 0
    V acc[MR][NV];
    #pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = V{};
    for (int64_t k = 0; k < K; k++) {
        V bk[NV];
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) std::memcpy(&bk[v], b + k * ldb + VL * v, sizeof(V));
        const int64_t at = k * cs;
        #pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            const float s = ar[r][at];
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] += s * bk[v];
        }
    }
    if (rows == MR && cols == NR) {
        #pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) std::memcpy(c + r * ldc + VL * v, &acc[r][v], sizeof(V));
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        float row[NR];
        std::memcpy(row, &acc[r][0], sizeof row);
        std::memcpy(c + r * ldc, row, cols * sizeof(float));
    }
}

// panel_step: how far apart B's panels are (NR * K when packed, NR in a row-major matrix).
template <class V, int MR, int NV>
ENGINE_INLINE void gemm_body(float* c, int64_t ldc, const float* a, int64_t rs, int64_t cs, const float* b,
                             int64_t ldb, int64_t panel_step, int64_t M, int64_t cols, int64_t K) {
    constexpr int NR = sizeof(V) / sizeof(float) * NV;
    for (int64_t j0 = 0; j0 < cols; j0 += NR)
        for (int64_t i0 = 0; i0 < M; i0 += MR)
            gemm_tile<V, MR, NV>(c + i0 * ldc + j0, ldc, a + i0 * rs, rs, cs, b + j0 / NR * panel_step, ldb, K,
                                 std::min<int64_t>(MR, M - i0), std::min<int64_t>(NR, cols - j0));
}

// Register tiles per SIMD path: accumulators fill most of the registers (32 zmm; 16 ymm; 16 xmm). The panel
// width NR is 32 on AVX-512 (2 zmm), 16 on the others (2 ymm, 4 xmm).
#define ENGINE_RNN_GEMM(name, attributes, V, MR, NV)                                                         \
    attributes static void name(float* c, int64_t ldc, const float* a, int64_t rs, int64_t cs, const float* b, \
                                int64_t ldb, int64_t panel_step, int64_t M, int64_t cols, int64_t K) {        \
        gemm_body<V, MR, NV>(c, ldc, a, rs, cs, b, ldb, panel_step, M, cols, K);                             \
    }
ENGINE_RNN_GEMM(gemm_avx512, ENGINE_AVX512 ENGINE_FLATTEN, v16, 8, 2)
ENGINE_RNN_GEMM(gemm_avx2, ENGINE_AVX2 ENGINE_FLATTEN, v8, 6, 2)
ENGINE_RNN_GEMM(gemm_portable, ENGINE_FLATTEN, v4, 2, 4)

struct SmallGemm {
    Simd simd;
    int64_t NR;                                  // the panel width the kernel for `simd` reads
    explicit SmallGemm(Simd s) : simd(s), NR(s == Simd::avx512 ? 32 : 16) {}
    int64_t packed_size(int64_t K, int64_t cols) const { return (cols + NR - 1) / NR * NR * K; }
    // dst <- B (K, cols) in panels, where column j of B is column[j][0], column[j][stride], ... Columns that
    // are neighbours in memory (a gate's units in a row of the recurrent kernel) are copied as one run.
    void pack(float* dst, int64_t K, const std::vector<const float*>& column, int64_t stride) const {
        const int64_t cols = static_cast<int64_t>(column.size());
        std::vector<std::pair<int64_t, int64_t>> runs;            // (first column, length) within a panel
        for (int64_t j0 = 0; j0 < cols; j0 += NR) {
            const int64_t width = std::min(NR, cols - j0);
            runs.clear();
            for (int64_t j = 0; j < width; j += runs.back().second) {
                int64_t run = 1;
                while (j + run < width && column[j0 + j + run] == column[j0 + j] + run) run++;
                runs.emplace_back(j, run);
            }
            float* panel = dst + j0 * K;
            for (int64_t k = 0; k < K; k++) {
                float* row = panel + k * NR;
                for (const auto& [j, run] : runs) {
                    if (run == 1) row[j] = column[j0 + j][k * stride];
                    else std::memcpy(row + j, column[j0 + j] + k * stride, run * sizeof(float));
                }
                std::fill(row + width, row + NR, 0.0f);
            }
        }
    }
    void run(float* c, int64_t ldc, const float* a, int64_t rs, int64_t cs, const float* b, int64_t ldb,
             int64_t panel_step, int64_t M, int64_t cols, int64_t K) const {
        if (simd == Simd::avx512) gemm_avx512(c, ldc, a, rs, cs, b, ldb, panel_step, M, cols, K);
        else if (simd == Simd::avx2) gemm_avx2(c, ldc, a, rs, cs, b, ldb, panel_step, M, cols, K);
        else gemm_portable(c, ldc, a, rs, cs, b, ldb, panel_step, M, cols, K);
    }
    // C = A (row-major, lda) @ B packed by pack().
    void operator()(float* c, int64_t ldc, const float* a, int64_t lda, const float* packed, int64_t M, int64_t cols,
                    int64_t K) const {
        run(c, ldc, a, lda, 1, packed, NR, NR * K, M, cols, K);
    }
    // C = op(A) @ B with B row-major (K, cols), ldb apart; a last panel narrower than NR is packed into
    // `edge` (K * NR floats) first, so no read goes past B.
    void rows(float* c, int64_t ldc, const float* a, int64_t rs, int64_t cs, const float* b, int64_t ldb, int64_t M,
              int64_t cols, int64_t K, std::vector<float>& edge) const {
        const int64_t full = cols / NR * NR;
        if (full > 0) run(c, ldc, a, rs, cs, b, ldb, NR, M, full, K);
        if (full == cols) return;
        edge.resize(K * NR);
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < NR; j++) edge[k * NR + j] = full + j < cols ? b[k * ldb + full + j] : 0.0f;
        run(c + full, ldc, a, rs, cs, edge.data(), NR, NR * K, M, cols - full, K);
    }
};

// ---------------------------------------------------------------------------------- the loops over time

inline int64_t band_count(int64_t U) { return (U + kBand - 1) / kBand; }

// Whether a sequence is worth a team (a property of the shape alone, so that the code path, and with it
// every bit of the result, is the same for any thread count), and the team size.
inline bool worth_a_team(int64_t N, int64_t U, int64_t G) {
    return band_count(U) >= 2 && N * U * G * U >= kRnnParallelMinWork;
}

inline int rnn_team(int64_t N, int64_t U, int64_t G) {
    if (!worth_a_team(N, U, G)) return 1;
    return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), band_count(U)));
}

// Runs stages 0 .. stages-1 of `tasks` independent tasks each (the bands of one step); stage s starts when
// every task of stage s - 1 is done. Threads claim tasks in order from one shared counter, so a thread
// takes the next task as soon as it is free, and a thread the OS parks for a while holds up only the task
// it holds (a barrier per step would stall the others for all of its share; on a shared machine that cost
// more than the work). task(s, b, thread) must compute the same thing whichever thread runs it: the
// results are then the same bits for any thread count.
inline void wait_for(const std::atomic<int64_t>& done, int64_t target) {
    for (int spins = 0; done.load(std::memory_order_acquire) < target; spins++) {
        if (spins < 4096) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();                              // tell the core we are spinning
#endif
        } else {
            std::this_thread::yield();                           // let a parked thread of ours run
        }
    }
}

template <class Task>
inline void run_stages(int64_t stages, int64_t tasks, int team, Task task) {
    if (stages <= 0 || tasks <= 0) return;                       // nothing to do (no steps, or no units)
    std::atomic<int64_t> next{0}, done{0};
    #pragma omp parallel num_threads(team) if (team > 1)
    {
        const int thread = omp_get_thread_num();
        for (;;) {
            const int64_t claim = next.fetch_add(1, std::memory_order_relaxed);
            const int64_t stage = claim / tasks;
            if (stage >= stages) break;
            wait_for(done, stage * tasks);
            task(stage, claim % tasks, thread);
            done.fetch_add(1, std::memory_order_acq_rel);
        }
    }
}

// Forward over time. First xp (N*T, GU) = x (N*T, D) @ kernel: every step's input projection, one product
// (in column blocks on the team). Then step(t, u0, w, rec, hd_next) for each step and band
// [u0, u0 + w), given rec (N, G*w) = hd_{t-1} @ the band's recurrent columns (gate 0's units, then gate
// 1's, ...); it writes the band's units of hd_next (h_t, times the recurrent dropout mask when there is
// one), which the next step's product reads.
template <class Step>
inline void forward_in_time(float* xp, const float* x, const float* kernel, int64_t N, int64_t T, int64_t D,
                            int64_t U, int64_t G, const float* rk, const float* h0, const float* rmask, Step step) {
    const int64_t bands = band_count(U), GU = G * U;
    const SmallGemm gemm(simd_active());
    const int64_t per_gate = gemm.packed_size(D, kBand);        // kernel's columns of one gate of one band
    std::vector<float> kernel_packed(worth_a_team(N, U, G) ? bands * G * per_gate : 0);
    for (int64_t b = 0; b < bands && !kernel_packed.empty(); b++)
        for (int64_t q = 0; q < G; q++) {
            std::vector<const float*> column(std::min(kBand, U - b * kBand));
            for (size_t j = 0; j < column.size(); j++) column[j] = kernel + q * U + b * kBand + j;
            gemm.pack(kernel_packed.data() + (b * G + q) * per_gate, D, column, GU);
        }
    std::vector<int64_t> offset(bands + 1, 0);                   // each band's packed columns
    for (int64_t b = 0; b < bands; b++)
        offset[b + 1] = offset[b] + gemm.packed_size(U, G * std::min(kBand, U - b * kBand));
    std::vector<float> packed(offset[bands]);
    for (int64_t b = 0; b < bands; b++) {
        const int64_t u0 = b * kBand, w = std::min(kBand, U - u0);
        std::vector<const float*> column;                        // gate 0's units of the band, gate 1's, ...
        for (int64_t q = 0; q < G; q++)
            for (int64_t u = 0; u < w; u++) column.push_back(rk + q * U + u0 + u);
        gemm.pack(packed.data() + offset[b], U, column, GU);
    }
    Floats hd(2 * N * U);                            // h_{t-1} and h_t, as the GEMM reads them
    for (int64_t i = 0; i < N * U; i++) hd[i] = rmask ? h0[i] * rmask[i] : h0[i];
    const int team = rnn_team(N, U, G);
    std::vector<Floats> rec(team, Floats(N * G * kBand));                           // per thread
    // The input projection: one task per gate of each band (its columns for every step) on the team, or for
    // sequences too small for a team the engine's GEMM (with its own team when large).
    if (worth_a_team(N, U, G)) {
        run_stages(1, bands * G, team, [&](int64_t, int64_t task, int) {
            const int64_t b = task / G, q = task % G, u0 = b * kBand, w = std::min(kBand, U - u0);
            gemm(xp + q * U + u0, GU, x, D, kernel_packed.data() + task * per_gate, N * T, w, D);
        });
    } else {
        matmul_forward(xp, x, kernel, N * T, GU, D, false, false, false);
    }
    run_stages(T, bands, team, [&](int64_t t, int64_t b, int thread) {
        const int64_t u0 = b * kBand, w = std::min(kBand, U - u0);
        float* r = rec[thread].data();
        gemm(r, G * w, hd.data() + (t % 2) * N * U, U, packed.data() + offset[b], N, G * w, U);
        step(t, u0, w, r, hd.data() + ((t + 1) % 2) * N * U);
    });
}

// What the weight gradients take: every step's pre-activation gradients (dz_in reaches the inputs and the
// kernel, dz_rec the recurrent kernel: the same array except in GRU) and the forward's inputs and outputs.
struct WeightGrads {
    float *dx, *dkernel, *drk, *dbias, *dbias_rec;               // dbias_rec: GRU's recurrent bias, or nullptr
    const float *dz_in, *dz_rec, *x, *h0, *y, *kernel, *rmask;
    int64_t D;
};

// h_prev (N*T, U) columns [u0, u0 + w): every step's h_{t-1} as the recurrent product saw it.
inline void previous_states(float* h_prev, const WeightGrads& g, int64_t N, int64_t T, int64_t U, int64_t u0,
                            int64_t w) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t t = 0; t < T; t++) {
            const float* src = (t ? g.y + (n * T + t - 1) * U : g.h0 + n * U) + u0;
            float* dst = h_prev + (n * T + t) * U + u0;
            for (int64_t u = 0; u < w; u++) dst[u] = g.rmask ? src[u] * g.rmask[n * U + u0 + u] : src[u];
        }
}

// dbias[j] = sum over the R rows of dz[:, j] for the `w` columns from col, added in row order, in double.
inline void column_sums(float* dbias, const float* dz, int64_t R, int64_t ld, int64_t col, int64_t w) {
    double sum[kBand] = {};
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < w; j++) sum[j] += dz[r * ld + col + j];
    for (int64_t j = 0; j < w; j++) dbias[col + j] = static_cast<float>(sum[j]);
}

// Sequences too small for a team: the weight gradients as three engine GEMMs (each with its own team when
// large) and the engine's bias reduction.
inline void weight_grads_serial(const WeightGrads& g, int64_t N, int64_t T, int64_t U, int64_t G) {
    const int64_t GU = G * U, D = g.D;
    Floats h_prev(N * T * U);
    previous_states(h_prev.data(), g, N, T, U, 0, U);
    matmul_forward(g.dx, g.dz_in, g.kernel, N * T, D, GU, false, true, false);
    matmul_forward(g.dkernel, g.x, g.dz_in, D, GU, N * T, true, false, false);
    matmul_forward(g.drk, h_prev.data(), g.dz_rec, U, GU, N * T, true, false, false);
    bias_add_backward(g.dbias, g.dz_in, N * T, GU);
    if (g.dbias_rec) bias_add_backward(g.dbias_rec, g.dz_rec, N * T, GU);
}

// Backward over time, then the weight gradients. dh (N, U) holds the gradient reaching h_t from later steps
// (dh of the last state to start with). Two stages per step, latest step first: step(t, u0, w, dz_t, dh)
// writes the band's columns of dz_t (N, GU), the pre-activation gradients that reach the recurrent kernel,
// and replaces the band's units of dh by the part of dh_{t-1} that bypasses the recurrent kernel; then, once
// all of dz_t is there, dh[:, band] += (dz_t @ recurrent_kernel[band]^T) * rmask. Then the team (still
// awake) computes dkernel = x^T dz_in, drecurrent_kernel = h_prev^T dz_rec, dbias and dx = dz_in kernel^T.
template <class Step>
inline void backward_in_time(int64_t N, int64_t T, int64_t U, int64_t G, const float* rk, float* dh,
                             const WeightGrads& g, Step step) {
    const int64_t bands = band_count(U), GU = G * U, D = g.D, NT = N * T;
    const float* rmask = g.rmask;
    const SmallGemm gemm(simd_active());
    const int64_t per_band = gemm.packed_size(GU, kBand);
    std::vector<float> packed(bands * per_band);                 // band b: recurrent_kernel[band rows]^T (GU, w)
    for (int64_t b = 0; b < bands; b++) {
        const int64_t u0 = b * kBand;
        std::vector<const float*> column(std::min(kBand, U - u0));          // row u0 + j of rk, as a column
        for (size_t j = 0; j < column.size(); j++) column[j] = rk + (u0 + j) * GU;
        gemm.pack(packed.data() + b * per_band, GU, column, 1);
    }
    const bool own_weights = worth_a_team(N, U, G);             // the shape alone decides: same bits for any team
    std::vector<float> kernel_t;
    Floats h_prev;
    if (own_weights) {
        kernel_t.resize(gemm.packed_size(GU, D));                // kernel^T (GU, D), for dx
        std::vector<const float*> column(D);
        for (int64_t j = 0; j < D; j++) column[j] = g.kernel + j * GU;
        gemm.pack(kernel_t.data(), GU, column, 1);
        h_prev.resize(NT * U);
    }
    Floats dzs(2 * N * GU);
    const int team = rnn_team(N, U, G);
    std::vector<Floats> rec(team, Floats(N * kBand));
    std::vector<std::vector<float>> edge(team);
    run_stages(2 * T, bands, team, [&](int64_t stage, int64_t b, int thread) {
        const int64_t u0 = b * kBand, w = std::min(kBand, U - u0);
        const int64_t t = T - 1 - stage / 2;
        float* dz_t = dzs.data() + (t % 2) * N * GU;
        if (stage % 2 == 0) {
            if (stage == 0 && own_weights) previous_states(h_prev.data(), g, N, T, U, u0, w);
            step(t, u0, w, dz_t, dh);
            return;
        }
        float* r = rec[thread].data();
        gemm(r, w, dz_t, GU, packed.data() + b * per_band, N, w, GU);
        for (int64_t n = 0; n < N; n++)
            for (int64_t u = 0; u < w; u++)
                dh[n * U + u0 + u] += rmask ? r[n * w + u] * rmask[n * U + u0 + u] : r[n * w + u];
    });
    if (!own_weights) {
        weight_grads_serial(g, N, T, U, G);
        return;
    }
    // The weight gradients, one task per gate of each band (finer than a band: a thread the OS parks holds up
    // less): its columns of dkernel, drecurrent_kernel and dbias, and one block of rows of dx.
    const int64_t tasks = bands * G;
    run_stages(1, tasks, team, [&](int64_t, int64_t task, int thread) {
        const int64_t u0 = task / G * kBand, w = std::min(kBand, U - u0), col = task % G * U + u0;
        gemm.rows(g.dkernel + col, GU, g.x, 1, D, g.dz_in + col, GU, D, w, NT, edge[thread]);
        gemm.rows(g.drk + col, GU, h_prev.data(), 1, U, g.dz_rec + col, GU, U, w, NT, edge[thread]);
        column_sums(g.dbias, g.dz_in, NT, GU, col, w);
        if (g.dbias_rec) column_sums(g.dbias_rec, g.dz_rec, NT, GU, col, w);
        const int64_t r0 = NT * task / tasks, r1 = NT * (task + 1) / tasks;
        gemm(g.dx + r0 * D, D, g.dz_in + r0 * GU, GU, kernel_t.data(), r1 - r0, D, GU);
    });
}

inline bool kept(const float* mask, int64_t n, int64_t t, int64_t T) { return !mask || mask[n * T + t] != 0.0f; }

// Ask for the band's G runs of w values of a gates row early (the next step's row: it is far away in memory).
static inline void prefetch_runs(const float* row, int64_t G, int64_t U, int64_t u0, int64_t w) {
    for (int64_t q = 0; q < G; q++)
        for (int64_t u = 0; u < w; u += 16) __builtin_prefetch(row + q * U + u0 + u, 1);
}

// hd <- h (times the recurrent dropout mask when there is one): what the next step's product reads.
ENGINE_INLINE void recurrent_input(int64_t w, float* __restrict hd, const float* __restrict h,
                                   const float* __restrict rm) {
    if (rm) {
        for (int64_t u = 0; u < w; u++) hd[u] = h[u] * rm[u];
    } else {
        for (int64_t u = 0; u < w; u++) hd[u] = h[u];
    }
}

}  // namespace engine

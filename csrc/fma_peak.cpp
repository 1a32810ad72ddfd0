// csrc/fma_peak.cpp (namespace engine): the top of the matmul ladder, measured. How many floating-point
// operations per second this CPU's vector units can do on the active SIMD path when nothing else limits
// them: every thread runs chains of multiply-adds on registers, loading and storing nothing.
//
// A GEMM can approach this number and never pass it; engine.ladder prints each rung's fraction of it.
// Each chain waits for its previous result (4-5 cycles of FMA latency) and a core issues two FMAs a cycle,
// so 12 independent chains per thread keep both units busy on every x86-64 core of the last ten years.
// The portable path has no FMA instruction: it counts a multiply and an add as the same two operations.
#include <omp.h>

#include <algorithm>

#include "common.h"
#include "kernels.h"

namespace engine {

constexpr int kChains = 12;

// GCC's generic vectors: 16, 8 or 4 floats, one zmm, ymm or xmm register on x86-64 (4 floats: one NEON
// register on aarch64). Compiled for AVX2 or AVX-512, a * b + c is one fused multiply-add.
typedef float Float16 __attribute__((vector_size(64)));
typedef float Float8 __attribute__((vector_size(32)));
typedef float Float4 __attribute__((vector_size(16)));

template <class V>
ENGINE_INLINE float chains(int64_t iterations) {
    V acc[kChains];
    const V scale = V{} + 0.999999f, shift = V{} + 1e-6f;
    for (int i = 0; i < kChains; i++) acc[i] = V{} + static_cast<float>(i);
    for (int64_t it = 0; it < iterations; it++) {
        #pragma GCC unroll 12
        for (int i = 0; i < kChains; i++) acc[i] = acc[i] * scale + shift;
    }
    float total = 0.0f;
    for (int i = 0; i < kChains; i++)
        for (size_t lane = 0; lane < sizeof(V) / sizeof(float); lane++) total += acc[i][lane];
    return total;
}

ENGINE_AVX512 ENGINE_FLATTEN static float chains_avx512(int64_t iterations) { return chains<Float16>(iterations); }
ENGINE_AVX2 ENGINE_FLATTEN static float chains_avx2(int64_t iterations) { return chains<Float8>(iterations); }
ENGINE_FLATTEN static float chains_portable(int64_t iterations) { return chains<Float4>(iterations); }

static volatile float fma_peak_sink = 0.0f;

static int64_t lanes(Simd path) { return path == Simd::avx512 ? 16 : path == Simd::avx2 ? 8 : 4; }

double fma_peak_gflops(int64_t iterations, int repeats) {
    ENGINE_CHECK(iterations >= 1, "fma_peak", "expected iterations >= 1. Received: iterations=", iterations);
    ENGINE_CHECK(repeats >= 1, "fma_peak", "expected repeats >= 1. Received: repeats=", repeats);
    const Simd path = simd_active();
    double best = 0.0;
    for (int r = 0; r < repeats; r++) {
        double slowest = 0.0;
        float sum = 0.0f;
        int threads = 1;
        #pragma omp parallel reduction(max : slowest) reduction(+ : sum)
        {
            #pragma omp single
            threads = omp_get_num_threads();
            const double start = omp_get_wtime();
            float total;
            if (path == Simd::avx512) total = chains_avx512(iterations);
            else if (path == Simd::avx2) total = chains_avx2(iterations);
            else total = chains_portable(iterations);
            slowest = omp_get_wtime() - start;
            sum += total;
        }
        fma_peak_sink = sum;                     // the chains' results are used, so no loop is removed
        const double flops = 2.0 * kChains * lanes(path) * static_cast<double>(iterations) * threads;
        best = std::max(best, flops / slowest / 1e9);
    }
    return best;
}

}  // namespace engine

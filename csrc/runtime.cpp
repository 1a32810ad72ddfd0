// csrc/runtime.cpp (namespace engine): run-time choices shared by all kernels.
//   simd_detected / simd_active / set_simd   which SIMD path the kernels take on this CPU
//   set_num_threads / get_num_threads        the OpenMP team size (OMP_NUM_THREADS sets the start value)
// The build targets baseline x86-64, so the wider paths are chosen here, once, from what the CPU
// reports (cpuid through __builtin_cpu_supports), never from compiler flags.
#include <omp.h>

#include <atomic>

#include "common.h"
#include "kernels.h"

namespace engine {

Simd simd_detected() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return Simd::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Simd::avx2;
#endif
    return Simd::portable;
}

static std::atomic<int> g_simd{static_cast<int>(simd_detected())};

Simd simd_active() { return static_cast<Simd>(g_simd.load(std::memory_order_relaxed)); }

const char* simd_name(Simd path) {
    switch (path) {
        case Simd::avx512: return "avx512";
        case Simd::avx2: return "avx2";
        default: return "portable";
    }
}

void set_simd(Simd path) {
    ENGINE_CHECK(static_cast<int>(path) <= static_cast<int>(simd_detected()), "set_simd",
                 "this CPU supports paths up to '", simd_name(simd_detected()),
                 "'. Received: path='", simd_name(path), "'");
    g_simd.store(static_cast<int>(path), std::memory_order_relaxed);
}

void set_num_threads(int n) {
    ENGINE_CHECK(n >= 1, "set_num_threads", "expected n >= 1. Received: n=", n);
    omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace engine

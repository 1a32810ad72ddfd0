// csrc/runtime.cpp (namespace engine): run-time choices shared by all kernels.
//   simd_detected / simd_active / set_simd   which SIMD path the kernels take on this CPU
//   set_num_threads / get_num_threads        the OpenMP team size (OMP_NUM_THREADS sets the start value)
//   keep_freed_memory                        how the C allocator treats the large arrays a training step frees
// The build targets baseline x86-64, so the wider paths are chosen here, once, from what the CPU
// reports (cpuid through __builtin_cpu_supports), never from compiler flags.
#include <omp.h>

#include <algorithm>
#include <atomic>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

// A training step allocates and frees the same large arrays (activations, their gradients) every batch.
// glibc serves each block of 128 KiB or more with a fresh mmap and unmaps it on free (and trims the freed
// top of the heap above 128 KiB), so every step touches new pages: a page fault per 4 KiB, zeroed by the
// kernel. On the Lab 9.2 CNN that was a third of the epoch (sys time). Here blocks up to 32 MiB (glibc's
// ceiling for this setting) come from the heap, and up to trim_threshold_bytes of freed heap stay mapped
// for the next step to reuse: the process keeps its peak working set, as a caching allocator would.
bool keep_freed_memory(int64_t trim_threshold_bytes) {
    ENGINE_CHECK(trim_threshold_bytes >= 0, "keep_freed_memory", "expected trim_threshold_bytes >= 0. Received: ",
                 trim_threshold_bytes);
#if defined(__GLIBC__)
    const int max_int = 0x7fffffff;
    const int trim = static_cast<int>(std::min<int64_t>(trim_threshold_bytes, max_int));
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1;
#else
    return false;
#endif
}

}  // namespace engine

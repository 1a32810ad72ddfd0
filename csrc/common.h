// csrc/common.h (namespace engine): what every kernel file shares. C++17, no pybind11.
//   fail / ENGINE_CHECK   turn a broken precondition into std::invalid_argument (ValueError in Python)
//   parallel_worth_it     the size below which a kernel stays serial (OpenMP wake-up costs 40 us+ here)
//   Simd                  the SIMD paths a kernel may be compiled for; the active one is picked at run time
//   ENGINE_AVX512 ...     target attributes that compile one function for one path; simd_dispatch runs a
//                         loop compiled for the active path; simd_chunks splits a loop between threads too
// Kernels never exit or abort: they throw, and pybind11 turns the exception into a Python error.
#pragma once

#include <omp.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>

namespace engine {

template <typename... Parts>
[[noreturn]] void fail(const char* where, const Parts&... parts) {
    std::ostringstream msg;
    msg << where << ": ";
    (msg << ... << parts);                       // join all parts into one message
    throw std::invalid_argument(msg.str());      // pybind11 raises ValueError in Python
}

#define ENGINE_CHECK(cond, where, ...) \
    do { if (!(cond)) ::engine::fail(where, __VA_ARGS__); } while (0)

// A parallel region costs a few microseconds even when the team is awake (much more after idling), so
// small loops stay on one thread. Work is counted in simple operations (an add, a compare); pass
// `cost` > 1 when each element costs more. Measured with relu on 2 threads: 32k elements ran 40%
// slower on two threads than on one, 64k equally fast, 128k 1.6x faster.
constexpr int64_t kParallelMinWork = 65536;
constexpr int64_t kCostTranscendental = 32;     // exp, tanh, erf: measured ~30x the time of a relu
inline bool parallel_worth_it(int64_t work, int64_t cost = 1) { return work * cost >= kParallelMinWork; }

// body(lo, hi) over [0, n) split into one contiguous chunk per thread (or the whole range on the
// calling thread when the work is small). For element-wise loops: each chunk is a plain loop that the
// compiler can vectorise, which an `omp for` loop body often is not.
template <class Body>
inline void parallel_chunks(int64_t n, int64_t cost, Body body) {
    if (!parallel_worth_it(n, cost)) {
        body(int64_t{0}, n);
        return;
    }
    #pragma omp parallel
    {
        const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
        body(n * t / threads, n * (t + 1) / threads);
    }
}

// SIMD paths, lowest first. simd_detected() is what this CPU supports; simd_active() is what the
// kernels use (the detected path, or a lower one forced by set_simd for tests and teaching).
enum class Simd : int { portable = 0, avx2 = 1, avx512 = 2 };
Simd simd_detected();
Simd simd_active();
void set_simd(Simd path);                        // throws if the CPU lacks `path`
const char* simd_name(Simd path);

// One function compiled for each path: thin wrappers carry these attributes around an always-inline or
// flattened body (simd_dispatch below does it for a lambda). The default build targets baseline x86-64.
// On other CPUs (aarch64: Apple silicon, Linux Arm) there is one path, the portable one, built for the
// baseline ISA (NEON on aarch64); code with x86 intrinsics sits under #if ENGINE_X86.
#if defined(__x86_64__) || defined(__i386__)
#define ENGINE_X86 1
#define ENGINE_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define ENGINE_AVX2 __attribute__((target("avx2,fma")))
#else
#define ENGINE_X86 0
#define ENGINE_AVX512                            // never chosen there: simd_detected() is portable
#define ENGINE_AVX2
#endif
#define ENGINE_INLINE inline __attribute__((always_inline))
#define ENGINE_FLATTEN __attribute__((flatten))        // inline every call inside this function

// Run `body` (a lambda holding a loop) compiled for the active SIMD path: flatten inlines the lambda
// into a copy of on_<path> built for that ISA, so its loop vectorises with AVX-512, AVX2 or SSE2. Copy
// pointers into __restrict locals and functors into locals inside the lambda: the compiler may then
// keep them in registers instead of reloading them after every store.
//
// What a dispatched loop needs to vectorise on every path, not only on AVX-512 (tests/test_simd.py checks
// the machine code: every AVX2 body must use ymm registers, every AVX-512 body zmm):
//  * No branch the compiler cannot turn into a select. A `c ? a : b` whose arms hold floating-point work
//    is such a branch unless the work may run on both arms: setup.py builds with -fno-trapping-math (no
//    operation traps, so both arms can be computed) and -fno-math-errno (sqrt sets no errno, so it needs
//    no call on the negative side). Without them only AVX-512's masked instructions could if-convert these
//    loops: the AVX-512 bodies vectorised and 25 of the AVX2 bodies stayed scalar. Both flags change no
//    result (NaN, infinities and subnormals behave as before); -ffast-math, which does, stays out.
//  * No store under a condition: write one loop per case instead (a masked store exists on AVX-512 only).
//  * Arrays the compiler can prove apart: __restrict pointers; a loop writing several planes of one array
//    (out[p * n + e] for p = 0..15) needs `#pragma GCC ivdep`, since GCC gives up past 10 run-time overlap
//    checks and leaves the loop scalar.
template <class Body>
ENGINE_AVX512 ENGINE_FLATTEN void on_avx512(const Body& body) { body(); }
template <class Body>
ENGINE_AVX2 ENGINE_FLATTEN void on_avx2(const Body& body) { body(); }
template <class Body>
ENGINE_FLATTEN void on_portable(const Body& body) { body(); }

template <class Body>
inline void simd_dispatch(const Body& body) {
#if ENGINE_X86
    switch (simd_active()) {
        case Simd::avx512: on_avx512(body); break;
        case Simd::avx2: on_avx2(body); break;
        default: on_portable(body);
    }
#else
    on_portable(body);
#endif
}

// The element-wise and row-wise pattern: body(lo, hi) over [0, n) in one contiguous chunk per thread (or all
// of it on the calling thread when the work is small), each chunk compiled for the active SIMD path.
template <class Body>
inline void simd_chunks(int64_t n, int64_t cost, const Body& body) {
    parallel_chunks(n, cost, [&](int64_t lo, int64_t hi) { simd_dispatch([&] { body(lo, hi); }); });
}

}  // namespace engine

// csrc/bind_cpu/bind_runtime.cpp: the run-time choices every kernel shares (csrc/runtime.cpp: the OpenMP team
// size, the SIMD path, the allocator), and the FMA peak the matmul ladder is measured against (csrc/fma_peak.cpp).
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

void bind_runtime(py::module_& m, py::module_& ladder) {
    using py::arg;
    m.def("set_num_threads", &engine::set_num_threads, arg("n"), "Set the OpenMP team size for every kernel.");
    m.def("get_num_threads", &engine::get_num_threads, "The OpenMP team size the kernels use.");
    m.def("keep_freed_memory", &engine::keep_freed_memory, arg("trim_threshold_bytes"),
          "Serve blocks up to 32 MiB from the heap and keep up to trim_threshold_bytes of freed heap mapped "
          "(glibc's mallopt); False where the C library is not glibc.");
    m.def("simd_detected", [] { return engine::simd_name(engine::simd_detected()); },
          "The widest SIMD path this CPU supports: 'avx512', 'avx2' or 'portable'.");
    m.def("simd_path", [] { return engine::simd_name(engine::simd_active()); },
          "The SIMD path the kernels use now.");
    m.def("set_simd", [](const std::string& name) {
        for (auto path : {engine::Simd::portable, engine::Simd::avx2, engine::Simd::avx512})
            if (name == engine::simd_name(path)) return engine::set_simd(path);
        engine::fail("set_simd", "expected one of 'avx512', 'avx2', 'portable'. Received: path='", name, "'");
    }, arg("path"), "Force a SIMD path no wider than the CPU's (for tests and teaching).");

    ladder.def("fma_peak", [](int64_t iterations, int repeats) {
        py::gil_scoped_release nogil;
        return engine::fma_peak_gflops(iterations, repeats);
    }, arg("iterations") = int64_t{1} << 22, arg("repeats") = 5,
       "GFLOP/s of independent multiply-adds on every thread, active SIMD path: the best of `repeats` runs");
}

}  // namespace engine::bind

// csrc/embedding.cpp (namespace engine): embedding lookup (a gather of table rows by id) and its backward
// (a scatter-add of gradient rows into the table). Matches engine/ref/embedding.py exactly (copies and
// sums in the same order). Dimensions: n ids, V rows of the table, D features per row.
// Kernels trust their inputs: every id is in [0, V) (csrc/bind_cpu/bind_embedding.cpp checks them).
//
// Determinism: in the backward two positions with the same id add into the same row. Instead of atomics
// (whose order depends on timing), each thread owns a band of table rows, reads every id, and adds only
// the rows in its band, in order of position: each row's sum has one fixed order for any thread count.
#include <algorithm>
#include <cstring>

#include "common.h"
#include "kernels.h"

namespace engine {

void embedding_forward(float* y, const float* table, const int64_t* ids, int64_t n, int64_t D) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n * D))
    for (int64_t i = 0; i < n; i++) std::memcpy(y + i * D, table + ids[i] * D, D * sizeof(float));
}

void embedding_backward(float* dtable, const float* dy, const int64_t* ids, int64_t n, int64_t V, int64_t D) {
    // Work: zeroing V * D values, adding n * D, and each thread scanning all n ids.
    #pragma omp parallel if (parallel_worth_it(n * D + V * D))
    {
        const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
        const int64_t v0 = V * t / threads, v1 = V * (t + 1) / threads;     // this thread's rows
        std::fill(dtable + v0 * D, dtable + v1 * D, 0.0f);
        for (int64_t i = 0; i < n; i++) {
            const int64_t v = ids[i];
            if (v < v0 || v >= v1) continue;
            float* row = dtable + v * D;
            const float* g = dy + i * D;
            for (int64_t d = 0; d < D; d++) row[d] += g[d];
        }
    }
}

}  // namespace engine

// csrc/attention_ladder.cpp (namespace engine): the attention ladder's first rung. Matches attention_forward
// in engine/ref/attention.py, like the fused kernel it is measured against.
//
// The attention ladder (engine.ladder 'attention'; both rungs bound in engine._cpu.ladder):
//   attention_forward_v1   naive: for each (batch, head) the whole T x S score matrix in memory: S = Q K^T
//                          (engine::matmul_forward), scale, bias and masks, softmax row by row, O = P V (matmul
//                          again). Memory O(T S) per head; OpenMP over heads.
//   attention_forward_v2   fused (csrc/attention_fused.cpp): tiles and an online softmax, memory O(T + S);
//                          engine._cpu.attention_forward.
// Dimensions as in csrc/attention_fused.cpp: B, T, S, N query heads, K key heads, H, HV head sizes.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_tile.h"
#include "common.h"
#include "kernels.h"

namespace engine {

void attention_forward_v1(float* o, float* lse, float* weights, const float* q, const float* k, const float* v,
                          const AttentionArgs& a) {
    const float masked = -0.7f * std::numeric_limits<float>::max();      // Keras' stand-in for a masked logit
    const int64_t G = a.N / a.K, heads = a.B * a.N;
    // One head per task, with buffers for the whole head, the T x S scores included (too large: MemoryError).
    parallel_tasks(heads, parallel_worth_it(a.B * a.N * a.T * a.S * (a.H + a.HV)), [&](int64_t head) {
        std::vector<float> qh(a.T * a.H), kh(a.S * a.H), vh(a.S * a.HV), scores(a.T * a.S), oh(a.T * a.HV);
        const int64_t b = head / a.N, n = head % a.N, kvh = n / G;
        for (int64_t t = 0; t < a.T; t++)
            std::copy_n(q + ((b * a.T + t) * a.N + n) * a.H, a.H, qh.data() + t * a.H);
        for (int64_t s = 0; s < a.S; s++) {
            std::copy_n(k + ((b * a.S + s) * a.K + kvh) * a.H, a.H, kh.data() + s * a.H);
            std::copy_n(v + ((b * a.S + s) * a.K + kvh) * a.HV, a.HV, vh.data() + s * a.HV);
        }
        matmul_forward(scores.data(), qh.data(), kh.data(), a.T, a.S, a.H, false, true, false);   // Q K^T
        const float* bias = a.bias ? a.bias + b * a.bias_strides[0] + n * a.bias_strides[1] : nullptr;
        const uint8_t* mask = a.mask ? a.mask + b * a.mask_strides[0] + n * a.mask_strides[1] : nullptr;
        for (int64_t t = 0; t < a.T; t++) {
            float* x = scores.data() + t * a.S;
            float mx = -std::numeric_limits<float>::infinity();
            bool any = false;
            for (int64_t s = 0; s < a.S; s++) {
                float value = x[s] * a.scale;
                if (bias) value += bias[t * a.bias_strides[2] + s];
                const bool ok = (!mask || mask[t * a.mask_strides[2] + s]) && (!a.causal || s <= t);
                x[s] = ok ? value : masked;
                any = any || ok;
                mx = x[s] > mx ? x[s] : mx;
            }
            double total = 0.0;
            for (int64_t s = 0; s < a.S; s++) {
                x[s] = std::exp(x[s] - mx);
                total += x[s];
            }
            for (int64_t s = 0; s < a.S; s++) x[s] = static_cast<float>(x[s] / total);
            lse[(b * a.N + n) * a.T + t] = any ? static_cast<float>(mx + std::log(total)) : masked;
            if (weights) std::copy_n(x, a.S, weights + ((b * a.N + n) * a.T + t) * a.S);
        }
        matmul_forward(oh.data(), scores.data(), vh.data(), a.T, a.HV, a.S, false, false, false);  // P V
        for (int64_t t = 0; t < a.T; t++)
            std::copy_n(oh.data() + t * a.HV, a.HV, o + ((b * a.T + t) * a.N + n) * a.HV);
    });
}

}  // namespace engine

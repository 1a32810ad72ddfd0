// csrc/attention_fused.cpp (namespace engine): scaled dot-product attention, fused and tiled:
// o = softmax(scale * q k^T + bias, masked) v without ever holding a whole (T, S) score matrix. The forward is
// here, the backward in csrc/attention_fused_backward.cpp, what both share in csrc/attention_fused.h.
// Matches attention_forward / attention_backward in engine/ref/attention.py (which does build that matrix).
// Dimensions: B batch, T queries, S keys, N query heads, K key/value heads (query head n reads key head
// n / G, G = N / K), H query/key head size, HV value head size. q (B, T, N, H), k (B, S, K, H),
// v (B, S, K, HV), o (B, T, N, HV), lse (B, N, T). Br x Bc tiles: Br queries by Bc keys.
//
// Strategy (FlashAttention's, on CPU threads):
//   forward   one task per (batch, head, block of Br queries). Each thread packs a key head once (K^T and
//             V, contiguous and zero-padded), then for each block of Bc keys: S^T = K_j Q_i^T (a tile GEMM,
//             csrc/attention_tile.h), masks, the online softmax (a running max m and sum l per query; what
//             was accumulated so far is rescaled by exp(m_old - m_new)), and O += P V_j. It saves
//             lse = m + log(l) per query for the backward. Memory: O(S) per thread, never O(T S).
//   backward  recomputes P = exp(x - lse) tile by tile: dP^T = V_j dO_i^T, dS^T = P^T * (dP^T - rowsum(dO O)),
//             dV_j += P^T dO_i, dK_j += dS^T Q_i, dQ_i += dS K_j. One task per key head when there are
//             at least as many heads as threads; with fewer, two passes (dK and dV per key block, then dQ per
//             query block) so every thread has work. Both add the same terms in the same order, so they give
//             the same bits and the choice may depend on the thread count.
// Scores are kept transposed (keys x queries), so the softmax runs down columns with the queries in SIMD
// lanes: the running max and sum are element-wise vector operations, with no horizontal reductions.
// Masking follows Keras: a disallowed score becomes kMasked (-0.7 * FLT_MAX, finite), so a query whose every
// key is masked attends uniformly to all S keys (lse = kMasked marks it) and gets no gradient.
// Determinism: each output element is owned by one task, and every sum runs in a fixed order (keys block by
// block, queries block by block, heads of a group in order), so the bits do not depend on the thread count.
#include <omp.h>

#include <cmath>
#include <limits>

#include "attention_fused.h"
#include "vector_math.h"

namespace engine {
namespace {

using namespace fused;

// Online softmax over one key block (st holds masked scores x, shift their column max): m, l per query
// updated, p = exp(x - m) left in st, alpha = exp(m_old - m_new) (the factor for what was accumulated before).
ENGINE_INLINE void online_softmax(float* __restrict st, int64_t nq, int64_t w, float* __restrict m, float* __restrict l,
                                  float* __restrict alpha, float* __restrict shift, float* __restrict sum) {
    for (int64_t r = 0; r < nq; r++) {
        const float m_new = m[r] > shift[r] ? m[r] : shift[r];
        const float use = m_new == -kInf ? 0.0f : m_new;   // a row of -inf so far: p = 0, nothing to rescale
        alpha[r] = exp_nonpositive_f(m[r] - use);
        m[r] = m_new;
        shift[r] = use;
        sum[r] = 0.0f;
    }
    for (int64_t c = 0; c < w; c++) {
        float* __restrict x = st + c * Br;
        for (int64_t r = 0; r < nq; r++) {
            const float p = exp_nonpositive_f(x[r] - shift[r]);
            x[r] = p;
            sum[r] += p;                                   // keys in order: a fixed summation order
        }
    }
    for (int64_t r = 0; r < nq; r++) l[r] = l[r] * alpha[r] + sum[r];
}

// ------------------------------------------------------------------------------------------ forward

struct Forward {
    Plan P;
    float *o, *lse, *weights;
    const float *q, *k, *v;
};

template <class Isa>
ENGINE_INLINE void forward_task(const Forward& f, int64_t task) {
    const Plan& P = f.P;
    const AttentionArgs& a = P.a;
    const int64_t b = task / (a.N * P.nqb), n = task / P.nqb % a.N, i = task % P.nqb;
    const int64_t t0 = i * Br, rows = std::min(Br, a.T - t0), nq = round_up(rows, kPad);
    Scratch& sc = tls;
    pack_head<Isa>(sc, P, b, n / P.G, kKT | kV, f.k, f.v);
    float* qt = grab(sc.qt, a.H * Br);
    float* st = grab(sc.st, Bc * Br);
    float* out = grab(sc.out, Br * P.HVv);
    float* stats = grab(sc.rows, 5 * Br);
    float *m = stats, *l = stats + Br, *alpha = stats + 2 * Br, *shift = stats + 3 * Br, *sum = stats + 4 * Br;
    gather_queries<Isa>(qt, nullptr, 0, f.q, P, b, n, t0, rows, a.H, a.scale);
    std::fill(out, out + Br * P.HVv, 0.0f);
    std::fill(m, m + Br, -kInf);
    std::fill(l, l + Br, 0.0f);
    float* wrow = f.weights ? f.weights + ((b * a.N + n) * a.T + t0) * a.S : nullptr;

    const int64_t blocks = P.key_blocks(i);
    for (int64_t j = 0; j < blocks; j++) {
        const int64_t s0 = j * Bc, w = std::min(Bc, a.S - s0);
        tile::gemm<Isa>(w, nq, a.H, sc.kt.data() + s0, P.Sp, qt, Br, st, Br, false);      // S^T = K_j Q_i^T
        if (P.general) bias_and_mask(st, P, b, n, t0, rows, s0, w);
        mask_scores(st, P, b, n, t0, nq, s0, w, shift);
        if (wrow)                                         // keep the masked scores; normalised at the end
            for (int64_t c = 0; c < w; c++)
                for (int64_t r = 0; r < rows; r++) wrow[r * a.S + s0 + c] = st[c * Br + r];
        online_softmax(st, nq, w, m, l, alpha, shift, sum);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t e = 0; e < P.HVv; e++) out[r * P.HVv + e] *= alpha[r];
        tile::gemm<Isa>(rows, P.HVv, w, st, Br, sc.v.data() + s0 * P.HVv, P.HVv, out, P.HVv, true);   // O += P V_j
    }

    const int64_t seen = std::min(a.S, blocks * Bc);      // keys past this were skipped by the causal mask
    for (int64_t r = 0; r < rows; r++) {
        const int64_t t = t0 + r;
        float* orow = f.o + ((b * a.T + t) * a.N + n) * a.HV;
        float& lse = f.lse[(b * a.N + n) * a.T + t];
        if (m[r] == kMasked) {                            // every key masked: the mean of all S values
            for (int64_t e = 0; e < a.HV; e++) orow[e] = 0.0f;
            for (int64_t s = 0; s < a.S; s++)
                for (int64_t e = 0; e < a.HV; e++) orow[e] += sc.v[s * P.HVv + e];
            for (int64_t e = 0; e < a.HV; e++) orow[e] /= static_cast<float>(a.S);
            lse = kMasked;
        } else {
            const float inv = 1.0f / l[r];                // l = 0 only when every score is -inf: NaN, as 0/0
            for (int64_t e = 0; e < a.HV; e++) orow[e] = out[r * P.HVv + e] * inv;
            lse = l[r] > 0.0f ? m[r] + std::log(l[r]) : std::numeric_limits<float>::quiet_NaN();
        }
        if (!wrow) continue;
        float* wr = wrow + r * a.S;
        const float inv = 1.0f / l[r], mr = m[r];
        if (mr == kMasked) {
            for (int64_t s = 0; s < a.S; s++) wr[s] = 1.0f / static_cast<float>(a.S);
            continue;
        }
        for (int64_t s = 0; s < seen; s++) wr[s] = exp_nonpositive_f(wr[s] - mr) * inv;
        for (int64_t s = seen; s < a.S; s++) wr[s] = 0.0f;
    }
}

ENGINE_AVX512 ENGINE_FLATTEN void forward_avx512(const Forward& f, int64_t task) { forward_task<tile::Avx512>(f, task); }
ENGINE_AVX2 ENGINE_FLATTEN void forward_avx2(const Forward& f, int64_t task) { forward_task<tile::Avx2>(f, task); }
ENGINE_FLATTEN void forward_portable(const Forward& f, int64_t task) { forward_task<tile::Portable>(f, task); }

}  // namespace

void attention_forward_v2(float* o, float* lse, float* weights, const float* q, const float* k, const float* v,
                          const AttentionArgs& args) {
    const Forward f{Plan(args), o, lse, weights, q, k, v};
    const Simd simd = simd_active();
    parallel_tasks(args.B * args.N * f.P.nqb, parallel_worth_it(attention_work(args)), [&](int64_t task) {
        if (simd == Simd::avx512) forward_avx512(f, task);
        else if (simd == Simd::avx2) forward_avx2(f, task);
        else forward_portable(f, task);
    });
}

}  // namespace engine

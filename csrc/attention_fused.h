// csrc/attention_fused.h (namespace engine::fused): what the fused attention's forward (attention_fused.cpp)
// and backward (attention_fused_backward.cpp) share: the tile sizes, the plan of one call, each thread's
// buffers, packing a key head and gathering a block of queries in the layouts the tile products read, and
// the masks. Dimensions and strategy: see the header of csrc/attention_fused.cpp.
#pragma once

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_tile.h"
#include "common.h"
#include "kernels.h"

namespace engine {
namespace fused {

using tile::round_up;

constexpr int64_t Br = 96, Bc = 96;            // queries and keys per tile: multiples of every MR and 2 VL
constexpr int64_t kPad = 16;                   // head sizes and query counts padded to whole 16-float vectors
constexpr float kMasked = -0.7f * std::numeric_limits<float>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

inline std::atomic<uint64_t> g_calls{0};              // tells a thread's packed head apart from the last call's

struct Plan {
    AttentionArgs a;
    int64_t G, Sp, Hv, HVv, nqb, nkb;
    uint64_t call;
    bool general;                              // bias, or a mask that differs between queries: a separate pass
    explicit Plan(const AttentionArgs& args)
        : a(args), G(args.N / args.K), Sp(round_up(args.S, Bc)), Hv(round_up(args.H, kPad)),
          HVv(round_up(args.HV, kPad)), nqb((args.T + Br - 1) / Br), nkb((args.S + Bc - 1) / Bc), call(++g_calls),
          general(args.bias != nullptr || (args.mask != nullptr && args.mask_strides[2] != 0)) {}
    // the key blocks query block i needs: with the causal mask, only those that start at or before its last query
    int64_t key_blocks(int64_t i) const {
        if (!a.causal) return nkb;
        const int64_t last = std::min(a.T, (i + 1) * Br) - 1;
        return std::min(nkb, last / Bc + 1);
    }
};

// Per-thread buffers, reused across calls (the GIL is released: Python threads may run kernels at once).
struct Scratch {
    uint64_t call = 0;
    int64_t head = -1, packed = 0;             // key head (b * K + kvh) packed, and which arrays (bit flags)
    std::vector<float> kt, v, vt, kr;          // K^T (H x Sp), V (Sp x HVv), V^T (HV x Sp), K (Sp x Hv)
    std::vector<float> qt, q, dot, dor;        // Q^T (H x Br), Q (Br x Hv), dO^T (HV x Br), dO (Br x HVv)
    std::vector<float> st, dpt, p, ds, out;    // S^T and dP^T (Bc x Br), P and dS (Br x Bc), O or dQ
    std::vector<float> dk, dv, rows;           // dK, dV accumulators; per-query values (m, l, lse, ...)
};
inline thread_local Scratch tls;

inline float* grab(std::vector<float>& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
    return buf.data();
}

constexpr int kKT = 1, kV = 2, kVT = 4, kKR = 8;

// dst (D x Sp) = head (b, kvh) of src (B, S, K, D), transposed (8 x 8 blocks in registers); columns from S on
// are zero.
template <class Isa>
ENGINE_INLINE void pack_transposed(float* dst, const float* src, const Plan& P, int64_t b, int64_t kvh, int64_t D) {
    const AttentionArgs& a = P.a;
    std::fill(dst, dst + D * P.Sp, 0.0f);
    tile::transpose<Isa>(dst, P.Sp, src + (b * a.S * a.K + kvh) * D, a.K * D, a.S, D);
}

// dst (Sp x ld) = head (b, kvh) of src (B, S, K, D), rows zero-padded to ld, then MR rows of slack.
inline void pack_rows(float* dst, int64_t ld, const float* src, const Plan& P, int64_t b, int64_t kvh, int64_t D) {
    const AttentionArgs& a = P.a;
    std::fill(dst, dst + (P.Sp + 1) * ld, 0.0f);
    for (int64_t s = 0; s < a.S; s++) std::copy_n(src + ((b * a.S + s) * a.K + kvh) * D, D, dst + s * ld);
}

// Make sure this thread holds the arrays `want` of key head (b, kvh) packed.
template <class Isa>
ENGINE_INLINE void pack_head(Scratch& sc, const Plan& P, int64_t b, int64_t kvh, int want, const float* k,
                             const float* v) {
    const int64_t head = b * P.a.K + kvh;
    if (sc.call != P.call || sc.head != head) {
        sc.call = P.call;
        sc.head = head;
        sc.packed = 0;
    }
    const int missing = want & ~static_cast<int>(sc.packed);
    if (missing & kKT) pack_transposed<Isa>(grab(sc.kt, P.a.H * P.Sp), k, P, b, kvh, P.a.H);
    if (missing & kV) pack_rows(grab(sc.v, (P.Sp + 1) * P.HVv), P.HVv, v, P, b, kvh, P.a.HV);
    if (missing & kVT) pack_transposed<Isa>(grab(sc.vt, P.a.HV * P.Sp), v, P, b, kvh, P.a.HV);
    if (missing & kKR) pack_rows(grab(sc.kr, (P.Sp + 1) * P.Hv), P.Hv, k, P, b, kvh, P.a.H);
    sc.packed |= missing;
}

// Rows t0.. of head n of x (B, T, N, D): xt (D x Br) transposed, times `scale`, and/or xr (Br x ld) as rows,
// zero-padded. (Scaling the queries once makes every score come out of the tile product already scaled.)
template <class Isa>
ENGINE_INLINE void gather_queries(float* xt, float* xr, int64_t ld, const float* x, const Plan& P, int64_t b, int64_t n,
                                  int64_t t0, int64_t rows, int64_t D, float scale) {
    const AttentionArgs& a = P.a;
    const float* first = x + ((b * a.T + t0) * a.N + n) * D;            // rows are a.N * D apart
    if (xr) {
        std::fill(xr, xr + Br * ld, 0.0f);
        for (int64_t r = 0; r < rows; r++) std::copy_n(first + r * a.N * D, D, xr + r * ld);
    }
    if (xt) {
        std::fill(xt, xt + D * Br, 0.0f);
        tile::transpose<Isa>(xt, Br, first, a.N * D, rows, D);
        if (scale != 1.0f)
            for (int64_t e = 0; e < D; e++)
                for (int64_t r = 0; r < rows; r++) xt[e * Br + r] *= scale;
    }
}

// The general case (a bias, or a mask that varies with the query): x = s + bias (s already scaled), kMasked
// where the mask says no, for keys s0 + c (c < w) and queries t0 + r (r < rows). st is (keys x queries).
inline void bias_and_mask(float* st, const Plan& P, int64_t b, int64_t n, int64_t t0, int64_t rows, int64_t s0, int64_t w) {
    const AttentionArgs& a = P.a;
    const float* bias = a.bias ? a.bias + b * a.bias_strides[0] + n * a.bias_strides[1] + s0 : nullptr;
    const uint8_t* mask = a.mask ? a.mask + b * a.mask_strides[0] + n * a.mask_strides[1] + s0 : nullptr;
    for (int64_t c = 0; c < w; c++) {
        float* x = st + c * Br;
        for (int64_t r = 0; r < rows; r++) {
            const int64_t t = t0 + r;
            float value = x[r];
            if (bias) value += bias[t * a.bias_strides[2] + c];
            if (mask && !mask[t * a.mask_strides[2] + c]) value = kMasked;
            x[r] = value;
        }
    }
}

// The masks every path shares, applied to st in place: kMasked where a key is masked for every query or lies
// after the query under the causal mask (a tile with neither is left alone). With `shift`, also the column
// max over the block (the online softmax's new candidate max).
ENGINE_INLINE void mask_scores(float* __restrict st, const Plan& P, int64_t b, int64_t n, int64_t t0, int64_t nq,
                               int64_t s0, int64_t w, float* __restrict shift) {
    const AttentionArgs& a = P.a;
    const uint8_t* keys = (a.mask && !P.general) ? a.mask + b * a.mask_strides[0] + n * a.mask_strides[1] + s0 : nullptr;
    const bool causal = a.causal && s0 + w - 1 > t0;      // some key of the tile lies after some query
    if (shift)
        for (int64_t r = 0; r < nq; r++) shift[r] = -kInf;
    for (int64_t c = 0; c < w; c++) {
        float* __restrict x = st + c * Br;
        const bool key_ok = keys ? keys[c] != 0 : true;
        if (key_ok && !causal) {                          // nothing to mask in this column
            if (shift)
                for (int64_t r = 0; r < nq; r++) shift[r] = x[r] > shift[r] ? x[r] : shift[r];
            continue;
        }
        const int64_t first = causal ? s0 + c - t0 : std::numeric_limits<int64_t>::min();   // r >= first sees it
        for (int64_t r = 0; r < nq; r++) {
            const float value = (key_ok && r >= first) ? x[r] : kMasked;
            x[r] = value;
            if (shift) shift[r] = value > shift[r] ? value : shift[r];   // NaN never wins: it reaches l instead
        }
    }
}

inline int64_t attention_work(const AttentionArgs& a) { return a.B * a.N * a.T * a.S * (a.H + a.HV); }

}  // namespace fused
}  // namespace engine

// csrc/attention_fused.cpp (namespace engine): scaled dot-product attention, forward and backward, fused and
// tiled: o = softmax(scale * q k^T + bias, masked) v without ever holding a whole (T, S) score matrix.
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

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_tile.h"
#include "common.h"
#include "kernels.h"
#include "vector_math.h"

namespace engine {
namespace {

using tile::round_up;

constexpr int64_t Br = 96, Bc = 96;            // queries and keys per tile: multiples of every MR and 2 VL
constexpr int64_t kPad = 16;                   // head sizes and query counts padded to whole 16-float vectors
constexpr float kMasked = -0.7f * std::numeric_limits<float>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::atomic<uint64_t> g_calls{0};              // tells a thread's packed head apart from the last call's

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
thread_local Scratch tls;

float* grab(std::vector<float>& buf, int64_t n) {
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
void pack_rows(float* dst, int64_t ld, const float* src, const Plan& P, int64_t b, int64_t kvh, int64_t D) {
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
void bias_and_mask(float* st, const Plan& P, int64_t b, int64_t n, int64_t t0, int64_t rows, int64_t s0, int64_t w) {
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

// Online softmax over one key block (st holds masked scores x, shift their column max): m, l per query
// updated, p = exp(x - m) left in st, alpha = exp(m_old - m_new) (the factor for what was accumulated before).
ENGINE_INLINE void online_softmax(float* __restrict st, int64_t nq, int64_t w, float* __restrict m, float* __restrict l,
                                  float* __restrict alpha, float* __restrict shift, float* __restrict sum) {
    for (int64_t r = 0; r < nq; r++) {
        const float m_new = m[r] > shift[r] ? m[r] : shift[r];
        const float use = m_new == -kInf ? 0.0f : m_new;   // a row of -inf so far: p = 0, nothing to rescale
        alpha[r] = exp_f(m[r] - use);
        m[r] = m_new;
        shift[r] = use;
        sum[r] = 0.0f;
    }
    for (int64_t c = 0; c < w; c++) {
        float* __restrict x = st + c * Br;
        for (int64_t r = 0; r < nq; r++) {
            const float p = exp_f(x[r] - shift[r]);
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
        for (int64_t s = 0; s < seen; s++) wr[s] = exp_f(wr[s] - mr) * inv;
        for (int64_t s = seen; s < a.S; s++) wr[s] = 0.0f;
    }
}

ENGINE_AVX512 ENGINE_FLATTEN void forward_avx512(const Forward& f, int64_t task) { forward_task<tile::Avx512>(f, task); }
ENGINE_AVX2 ENGINE_FLATTEN void forward_avx2(const Forward& f, int64_t task) { forward_task<tile::Avx2>(f, task); }
ENGINE_FLATTEN void forward_portable(const Forward& f, int64_t task) { forward_task<tile::Portable>(f, task); }

// ------------------------------------------------------------------------------------------ backward

struct Backward {
    Plan P;
    float *dq, *dk, *dv, *dbias;
    const float *dout, *q, *k, *v, *o, *lse;
};

// Per query block (n, i): Q^T, Q, dO^T, dO, and per query lse, D = rowsum(dO * O), full (1 if every key masked).
struct QueryBlock {
    int64_t b, n, i, t0, rows, nq;
    float *lse, *drow, *full;
};

template <class Isa>
ENGINE_INLINE QueryBlock load_queries(const Backward& g, Scratch& sc, int64_t b, int64_t n, int64_t i) {
    const Plan& P = g.P;
    const AttentionArgs& a = P.a;
    QueryBlock qb{b, n, i, i * Br, std::min(Br, a.T - i * Br), 0, nullptr, nullptr, nullptr};
    qb.nq = round_up(qb.rows, kPad);
    float* stats = grab(sc.rows, 3 * Br);
    qb.lse = stats, qb.drow = stats + Br, qb.full = stats + 2 * Br;
    std::fill(stats, stats + 3 * Br, 0.0f);               // padded queries: p = 1, dS = 0, all finite
    gather_queries<Isa>(grab(sc.qt, a.H * Br), grab(sc.q, Br * P.Hv), P.Hv, g.q, P, b, n, qb.t0, qb.rows, a.H,
                        a.scale);
    gather_queries<Isa>(grab(sc.dot, a.HV * Br), grab(sc.dor, Br * P.HVv), P.HVv, g.dout, P, b, n, qb.t0, qb.rows,
                        a.HV, 1.0f);
    for (int64_t r = 0; r < qb.rows; r++) {
        const int64_t t = qb.t0 + r;
        const float* orow = g.o + ((b * a.T + t) * a.N + n) * a.HV;
        float d = 0.0f;
        for (int64_t e = 0; e < a.HV; e++) d += sc.dor[r * P.HVv + e] * orow[e];
        qb.drow[r] = d;
        qb.lse[r] = g.lse[(b * a.N + n) * a.T + t];
        qb.full[r] = qb.lse[r] == kMasked ? 1.0f : 0.0f;
    }
    return qb;
}

// One (query block, key block) tile of the backward. want_kv: add into dk_blk, dv_blk (the accumulators of
// this key block's rows); want_q: add into sc.out, dQ (Br x Hv).
template <class Isa>
ENGINE_INLINE void backward_tile(const Backward& g, Scratch& sc, const QueryBlock& qb, int64_t j, float* dk_blk,
                                 float* dv_blk, bool want_kv, bool want_q) {
    const Plan& P = g.P;
    const AttentionArgs& a = P.a;
    const int64_t s0 = j * Bc, w = std::min(Bc, a.S - s0), nq = qb.nq;
    float* st = grab(sc.st, Bc * Br);
    float* dpt = grab(sc.dpt, Bc * Br);
    tile::gemm<Isa>(w, nq, a.H, sc.kt.data() + s0, P.Sp, sc.qt.data(), Br, st, Br, false);       // S^T
    if (P.general) bias_and_mask(st, P, qb.b, qb.n, qb.t0, qb.rows, s0, w);
    mask_scores(st, P, qb.b, qb.n, qb.t0, nq, s0, w, nullptr);
    for (int64_t c = 0; c < w; c++) {                     // P^T = exp(x - lse), 0 on fully masked queries
        float* __restrict x = st + c * Br;
        const float* __restrict lse = qb.lse;
        const float* __restrict full = qb.full;
        for (int64_t r = 0; r < nq; r++) {
            const float p = exp_f(x[r] - lse[r]);
            x[r] = full[r] != 0.0f ? 0.0f : p;
        }
    }
    tile::gemm<Isa>(w, nq, a.HV, sc.vt.data() + s0, P.Sp, sc.dot.data(), Br, dpt, Br, false);    // dP^T = V dO^T
    for (int64_t c = 0; c < w; c++) {                     // dS^T = P^T * (dP^T - D)
        const float* __restrict p = st + c * Br;
        float* __restrict ds = dpt + c * Br;
        const float* __restrict d = qb.drow;
        for (int64_t r = 0; r < nq; r++) ds[r] = p[r] * (ds[r] - d[r]);
    }
    if (g.dbias && want_kv) {                             // once per tile: in the dK, dV pass
        float* db = g.dbias + ((qb.b * a.N + qb.n) * a.T + qb.t0) * a.S + s0;
        for (int64_t c = 0; c < w; c++)
            for (int64_t r = 0; r < qb.rows; r++) db[r * a.S + c] = dpt[c * Br + r];
    }
    if (want_kv) {
        float* p = grab(sc.p, Br * Bc + Bc);
        float* ds = grab(sc.ds, Br * Bc + Bc);
        tile::transpose<Isa>(p, Bc, st, Br, w, qb.rows);
        tile::transpose<Isa>(ds, Bc, dpt, Br, w, qb.rows);
        tile::gemm<Isa>(w, P.HVv, qb.rows, p, Bc, sc.dor.data(), P.HVv, dv_blk, P.HVv, true);     // dV += P^T dO
        tile::gemm<Isa>(w, P.Hv, qb.rows, ds, Bc, sc.q.data(), P.Hv, dk_blk, P.Hv, true);         // dK += dS^T Q
    }
    if (want_q)                                                                                  // dQ += dS K
        tile::gemm<Isa>(qb.rows, P.Hv, w, dpt, Br, sc.kr.data() + s0 * P.Hv, P.Hv, sc.out.data(), P.Hv, true);
}

// A fully masked query attends uniformly: dV[s] += dO / S for every key s in [s_begin, s_end).
void uniform_rows(const Backward& g, Scratch& sc, const QueryBlock& qb, float* dv_rows, int64_t s_begin, int64_t s_end) {
    const Plan& P = g.P;
    for (int64_t r = 0; r < qb.rows; r++) {
        if (qb.full[r] == 0.0f) continue;
        const float* d = sc.dor.data() + r * P.HVv;
        const float inv = 1.0f / static_cast<float>(P.a.S);
        for (int64_t s = s_begin; s < s_end; s++)
            for (int64_t e = 0; e < P.a.HV; e++) dv_rows[(s - s_begin) * P.HVv + e] += d[e] * inv;
    }
}

void write_dq(const Backward& g, Scratch& sc, const QueryBlock& qb) {
    const AttentionArgs& a = g.P.a;
    for (int64_t r = 0; r < qb.rows; r++) {
        float* row = g.dq + ((qb.b * a.T + qb.t0 + r) * a.N + qb.n) * a.H;
        for (int64_t h = 0; h < a.H; h++) row[h] = sc.out[r * g.P.Hv + h] * a.scale;
    }
}

// dk, dv rows [s0, s0 + count) of key head (b, kvh) from the accumulators (dk scaled by `scale`).
void write_dkv(const Backward& g, const float* dk_rows, const float* dv_rows, int64_t b, int64_t kvh, int64_t s0,
               int64_t count) {
    const Plan& P = g.P;
    const AttentionArgs& a = P.a;
    for (int64_t s = 0; s < count; s++) {
        const int64_t row = (b * a.S + s0 + s) * a.K + kvh;
        for (int64_t h = 0; h < a.H; h++) g.dk[row * a.H + h] = dk_rows[s * P.Hv + h] * a.scale;
        std::copy_n(dv_rows + s * P.HVv, a.HV, g.dv + row * a.HV);
    }
}

// One task per key head: every query head of its group, every query block, every key block.
template <class Isa>
ENGINE_INLINE void backward_head(const Backward& g, int64_t head) {
    const Plan& P = g.P;
    const AttentionArgs& a = P.a;
    const int64_t b = head / a.K, kvh = head % a.K;
    Scratch& sc = tls;
    pack_head<Isa>(sc, P, b, kvh, kKT | kVT | kKR, g.k, g.v);
    float* dk = grab(sc.dk, P.Sp * P.Hv);
    float* dv = grab(sc.dv, P.Sp * P.HVv);
    std::fill(dk, dk + P.Sp * P.Hv, 0.0f);
    std::fill(dv, dv + P.Sp * P.HVv, 0.0f);
    for (int64_t n = kvh * P.G; n < (kvh + 1) * P.G; n++)
        for (int64_t i = 0; i < P.nqb; i++) {
            const QueryBlock qb = load_queries<Isa>(g, sc, b, n, i);
            std::fill(grab(sc.out, Br * P.Hv), sc.out.data() + Br * P.Hv, 0.0f);
            for (int64_t j = 0; j < P.key_blocks(i); j++)
                backward_tile<Isa>(g, sc, qb, j, dk + j * Bc * P.Hv, dv + j * Bc * P.HVv, true, true);
            uniform_rows(g, sc, qb, dv, 0, a.S);
            write_dq(g, sc, qb);
        }
    write_dkv(g, dk, dv, b, kvh, 0, a.S);
}

// Two passes when there are few heads. Pass 1, one task per (key head, key block): dK and dV of the block.
template <class Isa>
ENGINE_INLINE void backward_keys(const Backward& g, int64_t task) {
    const Plan& P = g.P;
    const AttentionArgs& a = P.a;
    const int64_t head = task / P.nkb, j = task % P.nkb, b = head / a.K, kvh = head % a.K;
    const int64_t s0 = j * Bc, w = std::min(Bc, a.S - s0);
    Scratch& sc = tls;
    pack_head<Isa>(sc, P, b, kvh, kKT | kVT, g.k, g.v);
    float* dk = grab(sc.dk, Bc * P.Hv);
    float* dv = grab(sc.dv, Bc * P.HVv);
    std::fill(dk, dk + Bc * P.Hv, 0.0f);
    std::fill(dv, dv + Bc * P.HVv, 0.0f);
    for (int64_t n = kvh * P.G; n < (kvh + 1) * P.G; n++)
        for (int64_t i = 0; i < P.nqb; i++) {
            const QueryBlock qb = load_queries<Isa>(g, sc, b, n, i);
            if (j < P.key_blocks(i)) backward_tile<Isa>(g, sc, qb, j, dk, dv, true, false);
            uniform_rows(g, sc, qb, dv, s0, s0 + w);
        }
    write_dkv(g, dk, dv, b, kvh, s0, w);
}

// Pass 2, one task per (batch, query head, query block): dQ of the block.
template <class Isa>
ENGINE_INLINE void backward_queries(const Backward& g, int64_t task) {
    const Plan& P = g.P;
    const AttentionArgs& a = P.a;
    const int64_t b = task / (a.N * P.nqb), n = task / P.nqb % a.N, i = task % P.nqb;
    Scratch& sc = tls;
    pack_head<Isa>(sc, P, b, n / P.G, kKT | kVT | kKR, g.k, g.v);
    const QueryBlock qb = load_queries<Isa>(g, sc, b, n, i);
    std::fill(grab(sc.out, Br * P.Hv), sc.out.data() + Br * P.Hv, 0.0f);
    for (int64_t j = 0; j < P.key_blocks(i); j++) backward_tile<Isa>(g, sc, qb, j, nullptr, nullptr, false, true);
    write_dq(g, sc, qb);
}

enum class Stage { heads, keys, queries };

template <class Isa>
ENGINE_INLINE void backward_task(const Backward& g, Stage stage, int64_t task) {
    if (stage == Stage::heads) backward_head<Isa>(g, task);
    else if (stage == Stage::keys) backward_keys<Isa>(g, task);
    else backward_queries<Isa>(g, task);
}

ENGINE_AVX512 ENGINE_FLATTEN void backward_avx512(const Backward& g, Stage s, int64_t t) { backward_task<tile::Avx512>(g, s, t); }
ENGINE_AVX2 ENGINE_FLATTEN void backward_avx2(const Backward& g, Stage s, int64_t t) { backward_task<tile::Avx2>(g, s, t); }
ENGINE_FLATTEN void backward_portable(const Backward& g, Stage s, int64_t t) { backward_task<tile::Portable>(g, s, t); }

int64_t attention_work(const AttentionArgs& a) { return a.B * a.N * a.T * a.S * (a.H + a.HV); }

}  // namespace

void attention_forward(float* o, float* lse, float* weights, const float* q, const float* k, const float* v,
                       const AttentionArgs& args) {
    const Forward f{Plan(args), o, lse, weights, q, k, v};
    const Simd simd = simd_active();
    parallel_tasks(args.B * args.N * f.P.nqb, parallel_worth_it(attention_work(args)), [&](int64_t task) {
        if (simd == Simd::avx512) forward_avx512(f, task);
        else if (simd == Simd::avx2) forward_avx2(f, task);
        else forward_portable(f, task);
    });
}

void attention_backward(float* dq, float* dk, float* dv, float* dbias, const float* dout, const float* q,
                        const float* k, const float* v, const float* o, const float* lse, const AttentionArgs& args) {
    const Backward g{Plan(args), dq, dk, dv, dbias, dout, q, k, v, o, lse};
    const Simd simd = simd_active();
    if (dbias)                                            // tiles the causal mask skips are never visited
        parallel_chunks(args.B * args.N * args.T * args.S, 1, [&](int64_t lo, int64_t hi) {
            std::fill(dbias + lo, dbias + hi, 0.0f);
        });
    auto stage = [&](Stage s, int64_t tasks) {
        parallel_tasks(tasks, parallel_worth_it(2 * attention_work(args)), [&](int64_t task) {
            if (simd == Simd::avx512) backward_avx512(g, s, task);
            else if (simd == Simd::avx2) backward_avx2(g, s, task);
            else backward_portable(g, s, task);
        });
    };
    const int64_t heads = args.B * args.K;
    if (heads >= omp_get_max_threads()) {
        stage(Stage::heads, heads);
    } else {
        stage(Stage::keys, heads * g.P.nkb);
        stage(Stage::queries, args.B * args.N * g.P.nqb);
    }
}

}  // namespace engine

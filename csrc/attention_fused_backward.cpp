// csrc/attention_fused_backward.cpp (namespace engine): the gradients of the fused attention of
// csrc/attention_fused.cpp (see its header for the dimensions and the strategy). Matches attention_backward in
// engine/ref/attention.py.
//   P is recomputed tile by tile from the saved log-sum-exp: P^T = exp(S^T - lse), dP^T = V_j dO_i^T,
//   dS^T = P^T * (dP^T - rowsum(dO * O)); then dV_j += P^T dO_i, dK_j += dS^T Q_i, dQ_i += dS K_j.
//   One task per key head when there are at least as many heads as threads; with fewer, two passes (dK and dV
//   per key block, then dQ per query block). Both add the same terms in the same order: the same bits.
#include <omp.h>

#include <cmath>
#include <limits>

#include "attention_fused.h"
#include "vector_math.h"

namespace engine {
namespace {

using namespace fused;

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
            const float p = exp_nonpositive_f(x[r] - lse[r]);
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

}  // namespace

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

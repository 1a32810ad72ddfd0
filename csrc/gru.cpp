// csrc/gru.cpp (namespace engine): the GRU (Keras' reset_after=True) over a whole sequence, forward and
// backward through time. Matches engine/ref/rnn.py (gru_forward, gru_backward), which has the formulas. The
// machinery (bands of units, the loops over time on one OpenMP team, the small register-tiled products) is
// in rnn.h.
#include "rnn.h"

namespace engine {

// ---------------------------------------------------------------------------------- GRU (reset_after)

struct GruArgs {
    int64_t N, T, U;
    RnnActivation act, ract;
    const float *bias, *mask, *rmask, *dy, *h0, *y_in, *rech_in;
    float *y, *h, *gates, *rech, *dz_in, *dz_rec;
};

template <int64_t W>
ENGINE_INLINE void gru_step_body(const GruArgs* s, int64_t t, int64_t u0, int64_t width, const float* rec, float* hd) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    const float *b_in = s->bias, *b_rec = s->bias + 3 * U;
    float pre[kBand], rh[kBand];
    for (int64_t n = 0; n < s->N; n++) {
        float* g = s->gates + (n * T + t) * 3 * U;               // holds x_t @ kernel; becomes z, r, hh
        if (t + 1 < T) prefetch_runs(g + 3 * U, 3, U, u0, w);
        const float* r = rec + n * 3 * w;
        for (int64_t q = 0; q < 2; q++) {                        // update and reset gates
            for (int64_t u = 0; u < w; u++)
                pre[u] = (g[q * U + u0 + u] + b_in[q * U + u0 + u]) + (r[q * w + u] + b_rec[q * U + u0 + u]);
            act_run(s->ract, g + q * U + u0, pre, w);
        }
        const float* reset = g + U + u0;
        for (int64_t u = 0; u < w; u++) {
            rh[u] = r[2 * w + u] + b_rec[2 * U + u0 + u];
            pre[u] = (g[2 * U + u0 + u] + b_in[2 * U + u0 + u]) + reset[u] * rh[u];
        }
        act_run(s->act, g + 2 * U + u0, pre, w);
        float* h = s->h + n * U + u0;
        if (kept(s->mask, n, t, T)) {
            const float *z = g + u0, *hh = g + 2 * U + u0;
            for (int64_t u = 0; u < w; u++) h[u] = z[u] * h[u] + (1.0f - z[u]) * hh[u];
        }
        std::copy(h, h + w, s->y + (n * T + t) * U + u0);
        recurrent_input(w, hd + n * U + u0, h, s->rmask ? s->rmask + n * U + u0 : nullptr);
        if (s->rech) std::copy(rh, rh + w, s->rech + (n * T + t) * U + u0);
    }
}
ENGINE_RNN_PER_SIMD(gru_step, gru_step_body)

// The same step for Keras' default activations in one pass over the band's units (see lstm_default_row).
// bias: the input biases of the 3 gates, U apart; bias + 3U: the recurrent ones.
ENGINE_INLINE void gru_default_row(int64_t w, int64_t U, float* __restrict g, const float* __restrict bias,
                                   const float* __restrict r, float* __restrict h, float* __restrict rech,
                                   float* __restrict y, bool keep) {
    const float* __restrict rb = bias + 3 * U;
    float rh[kBand];
    for (int64_t u = 0; u < w; u++) {
        const float z = sigmoid_f((g[u] + bias[u]) + (r[u] + rb[u]));
        const float reset = sigmoid_f((g[U + u] + bias[U + u]) + (r[w + u] + rb[U + u]));
        rh[u] = r[2 * w + u] + rb[2 * U + u];
        const float hh = tanh_f((g[2 * U + u] + bias[2 * U + u]) + reset * rh[u]);
        g[u] = z;
        g[U + u] = reset;
        g[2 * U + u] = hh;
        const float hn = z * h[u] + (1.0f - z) * hh;
        const float hv = keep ? hn : h[u];
        h[u] = hv;
        y[u] = hv;
    }
    if (rech) std::copy(rh, rh + w, rech);                       // training: kept for the backward
}

template <int64_t W>
ENGINE_INLINE void gru_step_default_body(const GruArgs* s, int64_t t, int64_t u0, int64_t width, const float* rec,
                                         float* hd) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    for (int64_t n = 0; n < s->N; n++) {
        float* g = s->gates + (n * T + t) * 3 * U + u0;          // holds x_t @ kernel; becomes z, r, hh
        if (t + 1 < T) prefetch_runs(g - u0 + 3 * U, 3, U, u0, w);
        gru_default_row(w, U, g, s->bias + u0, rec + n * 3 * w, s->h + n * U + u0,
                        s->rech ? s->rech + (n * T + t) * U + u0 : nullptr, s->y + (n * T + t) * U + u0,
                        kept(s->mask, n, t, T));
        recurrent_input(w, hd + n * U + u0, s->h + n * U + u0, s->rmask ? s->rmask + n * U + u0 : nullptr);
    }
}
ENGINE_RNN_PER_SIMD(gru_step_default, gru_step_default_body)

template <int64_t W>
ENGINE_INLINE void gru_back_body(const GruArgs* s, int64_t t, int64_t u0, int64_t width, float* dz_t, float* dh) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    float dzz[kBand], dzr[kBand], dzh[kBand];
    for (int64_t n = 0; n < s->N; n++) {
        const float* g = s->gates + (n * T + t) * 3 * U;
        const float* dyr = s->dy + (n * T + t) * U + u0;
        float *din = s->dz_in + (n * T + t) * 3 * U, *drec = s->dz_rec + (n * T + t) * 3 * U, *dzs = dz_t + n * 3 * U;
        float* dhr = dh + n * U + u0;
        if (!kept(s->mask, n, t, T)) {
            for (int64_t u = 0; u < w; u++) dhr[u] += dyr[u];
            for (int64_t q = 0; q < 3; q++)
                for (float* row : {din, drec, dzs}) std::fill(row + q * U + u0, row + q * U + u0 + w, 0.0f);
            continue;
        }
        const float *z = g + u0, *r = g + U + u0, *hh = g + 2 * U + u0;
        const float* hp = t ? s->y_in + (n * T + t - 1) * U + u0 : s->h0 + n * U + u0;
        const float* rh = s->rech_in + (n * T + t) * U + u0;
        for (int64_t u = 0; u < w; u++) {
            const float dht = dyr[u] + dhr[u];
            dzz[u] = dht * (hp[u] - hh[u]);
            dzh[u] = dht * (1.0f - z[u]);
            dhr[u] = dht * z[u];                                 // the part of dh_{t-1} through z * h_{t-1}
        }
        dact_run(s->ract, dzz, z, w);
        dact_run(s->act, dzh, hh, w);
        for (int64_t u = 0; u < w; u++) dzr[u] = dzh[u] * rh[u];
        dact_run(s->ract, dzr, r, w);
        for (int64_t u = 0; u < w; u++) {
            din[u0 + u] = drec[u0 + u] = dzs[u0 + u] = dzz[u];
            din[U + u0 + u] = drec[U + u0 + u] = dzs[U + u0 + u] = dzr[u];
            din[2 * U + u0 + u] = dzh[u];
            drec[2 * U + u0 + u] = dzs[2 * U + u0 + u] = dzh[u] * r[u];
        }
    }
}
ENGINE_RNN_PER_SIMD(gru_back, gru_back_body)

void gru_forward(float* y, float* h, float* gates, float* recurrent_h, const float* x, const float* h0,
                 const float* kernel, const float* recurrent_kernel, const float* bias, const float* mask,
                 const float* recurrent_mask, int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation,
                 RnnActivation recurrent_activation) {
    std::copy(h0, h0 + N * U, h);
    GruArgs s{N, T, U, activation, recurrent_activation, bias, mask, recurrent_mask, nullptr, nullptr, nullptr,
              nullptr, y, h, gates, recurrent_h, nullptr, nullptr};
    const bool keras_default = activation == RnnActivation::tanh && recurrent_activation == RnnActivation::sigmoid;
    const Simd simd = simd_active();
    forward_in_time(gates, x, kernel, N, T, D, U, 3, recurrent_kernel, h0, recurrent_mask,
                    [&](int64_t t, int64_t u0, int64_t w, const float* rec, float* hd) {
                        if (keras_default) gru_step_default(simd, w == kBand, &s, t, u0, w, rec, hd);
                        else gru_step(simd, w == kBand, &s, t, u0, w, rec, hd);
                    });
}

void gru_backward(float* dx, float* dh0, float* dkernel, float* drecurrent_kernel, float* dbias, const float* dy,
                  const float* dh, const float* x, const float* h0, const float* kernel, const float* recurrent_kernel,
                  const float* mask, const float* recurrent_mask, const float* y, const float* gates,
                  const float* recurrent_h, int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation,
                  RnnActivation recurrent_activation) {
    Floats dz_in(N * T * 3 * U), dz_rec(N * T * 3 * U);
    std::copy(dh, dh + N * U, dh0);
    GruArgs s{N, T, U, activation, recurrent_activation, nullptr, mask, recurrent_mask, dy, h0, y, recurrent_h,
              nullptr, nullptr, const_cast<float*>(gates), nullptr, dz_in.data(), dz_rec.data()};
    const Simd simd = simd_active();
    const WeightGrads grads{dx, dkernel, drecurrent_kernel, dbias, dbias + 3 * U, dz_in.data(), dz_rec.data(), x, h0,
                            y, kernel, recurrent_mask, D};
    backward_in_time(N, T, U, 3, recurrent_kernel, dh0, grads, [&](int64_t t, int64_t u0, int64_t w, float* dz_t,
                                                                   float* dhc) {
        gru_back(simd, w == kBand, &s, t, u0, w, dz_t, dhc);
    });
}

}  // namespace engine

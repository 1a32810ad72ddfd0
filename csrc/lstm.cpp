// csrc/lstm.cpp (namespace engine): the LSTM over a whole sequence, forward and backward through time.
// Matches engine/ref/rnn.py (lstm_forward, lstm_backward), which has the formulas. The machinery (bands of
// units, the loops over time on one OpenMP team, the small register-tiled products) is in rnn.h.
#include "rnn.h"

namespace engine {

// ---------------------------------------------------------------------------------- LSTM

struct LstmArgs {
    int64_t N, T, U;
    RnnActivation act, ract;
    const float *bias, *mask, *rmask, *dy, *c0, *cells_in;
    float *y, *h, *c, *gates, *cells, *dz, *dc;
};

template <int64_t W>
ENGINE_INLINE void lstm_step_body(const LstmArgs* s, int64_t t, int64_t u0, int64_t width, const float* rec, float* hd) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    float pre[4][kBand], cn[kBand], tc[kBand];
    for (int64_t n = 0; n < s->N; n++) {
        float* g = s->gates + (n * T + t) * 4 * U;               // holds x_t @ kernel; becomes i, f, g, o
        if (t + 1 < T) prefetch_runs(g + 4 * U, 4, U, u0, w);
        const float* r = rec + n * 4 * w;
        for (int64_t q = 0; q < 4; q++)
            for (int64_t u = 0; u < w; u++) pre[q][u] = g[q * U + u0 + u] + s->bias[q * U + u0 + u] + r[q * w + u];
        act_run(s->ract, g + u0, pre[0], w);
        act_run(s->ract, g + U + u0, pre[1], w);
        act_run(s->act, g + 2 * U + u0, pre[2], w);
        act_run(s->ract, g + 3 * U + u0, pre[3], w);
        float *h = s->h + n * U + u0, *c = s->c + n * U + u0;
        if (kept(s->mask, n, t, T)) {                            // a padded step leaves h and c as they are
            const float *i = g + u0, *f = g + U + u0, *gg = g + 2 * U + u0, *o = g + 3 * U + u0;
            for (int64_t u = 0; u < w; u++) cn[u] = f[u] * c[u] + i[u] * gg[u];
            act_run(s->act, tc, cn, w);
            for (int64_t u = 0; u < w; u++) {
                c[u] = cn[u];
                h[u] = o[u] * tc[u];
            }
        }
        std::copy(h, h + w, s->y + (n * T + t) * U + u0);
        recurrent_input(w, hd + n * U + u0, h, s->rmask ? s->rmask + n * U + u0 : nullptr);
        if (s->cells) std::copy(c, c + w, s->cells + (n * T + t) * U + u0);
    }
}
ENGINE_RNN_PER_SIMD(lstm_step, lstm_step_body)

// The same step for Keras' default activations (tanh, recurrent sigmoid) in one pass over the band's units:
// every value stays in registers from the pre-activations to h_t (the general body above makes a pass per
// gate, since its activations are chosen at run time). One row: g and bias hold the 4 gates' runs U apart.
ENGINE_INLINE void lstm_default_row(int64_t w, int64_t U, float* __restrict g, const float* __restrict bias,
                                    const float* __restrict r, float* __restrict c, float* __restrict h,
                                    float* __restrict cells, float* __restrict y, bool keep) {
    // Three loops (the sigmoid gates; the candidate and the new cell; the output): GCC's if-conversion turns
    // a loop with one or two of these branch-free activations into vector code, but not one with all five.
    float i[kBand], f[kBand], o[kBand], gg[kBand], cn[kBand];
    for (int64_t u = 0; u < w; u++) {
        i[u] = sigmoid_f(g[u] + bias[u] + r[u]);
        f[u] = sigmoid_f(g[U + u] + bias[U + u] + r[w + u]);
        o[u] = sigmoid_f(g[3 * U + u] + bias[3 * U + u] + r[3 * w + u]);
    }
    for (int64_t u = 0; u < w; u++) {
        gg[u] = tanh_f(g[2 * U + u] + bias[2 * U + u] + r[2 * w + u]);
        cn[u] = f[u] * c[u] + i[u] * gg[u];
    }
    if (cells) {                                                 // training: keep what the backward needs
        for (int64_t u = 0; u < w; u++) {
            g[u] = i[u];
            g[U + u] = f[u];
            g[2 * U + u] = gg[u];
            g[3 * U + u] = o[u];
        }
    }
    if (keep) {
        for (int64_t u = 0; u < w; u++) {
            c[u] = cn[u];
            h[u] = y[u] = o[u] * tanh_f(cn[u]);
        }
    } else {                                                     // a padded step keeps h and c
        for (int64_t u = 0; u < w; u++) y[u] = h[u];
    }
    if (cells)
        for (int64_t u = 0; u < w; u++) cells[u] = c[u];
}


template <int64_t W>
ENGINE_INLINE void lstm_step_default_body(const LstmArgs* s, int64_t t, int64_t u0, int64_t width, const float* rec,
                                          float* hd) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    for (int64_t n = 0; n < s->N; n++) {
        float* g = s->gates + (n * T + t) * 4 * U + u0;          // holds x_t @ kernel; becomes i, f, g, o
        if (t + 1 < T) prefetch_runs(g - u0 + 4 * U, 4, U, u0, w);
        lstm_default_row(w, U, g, s->bias + u0, rec + n * 4 * w, s->c + n * U + u0, s->h + n * U + u0,
                         s->cells ? s->cells + (n * T + t) * U + u0 : nullptr, s->y + (n * T + t) * U + u0,
                         kept(s->mask, n, t, T));
        recurrent_input(w, hd + n * U + u0, s->h + n * U + u0, s->rmask ? s->rmask + n * U + u0 : nullptr);
    }
}
ENGINE_RNN_PER_SIMD(lstm_step_default, lstm_step_default_body)

template <int64_t W>
ENGINE_INLINE void lstm_back_body(const LstmArgs* s, int64_t t, int64_t u0, int64_t width, float* dz_t, float* dh) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    float tc[kBand], dtc[kBand], di[kBand], df[kBand], dg[kBand], dout[kBand];
    for (int64_t n = 0; n < s->N; n++) {
        const float* g = s->gates + (n * T + t) * 4 * U;
        const float* dyr = s->dy + (n * T + t) * U + u0;
        float *dzr = s->dz + (n * T + t) * 4 * U, *dzs = dz_t + n * 4 * U;
        float *dhr = dh + n * U + u0, *dcr = s->dc + n * U + u0;
        if (!kept(s->mask, n, t, T)) {                           // a padded step passes dh and dc through
            for (int64_t u = 0; u < w; u++) dhr[u] += dyr[u];
            for (int64_t q = 0; q < 4; q++) {
                std::fill(dzr + q * U + u0, dzr + q * U + u0 + w, 0.0f);
                std::fill(dzs + q * U + u0, dzs + q * U + u0 + w, 0.0f);
            }
            continue;
        }
        const float *i = g + u0, *f = g + U + u0, *gg = g + 2 * U + u0, *o = g + 3 * U + u0;
        const float* cp = t ? s->cells_in + (n * T + t - 1) * U + u0 : s->c0 + n * U + u0;
        act_run(s->act, tc, s->cells_in + (n * T + t) * U + u0, w);
        for (int64_t u = 0; u < w; u++) {
            const float dht = dyr[u] + dhr[u];
            dout[u] = dht * tc[u];
            dtc[u] = dht * o[u];
        }
        dact_run(s->act, dtc, tc, w);
        for (int64_t u = 0; u < w; u++) {
            const float dct = dcr[u] + dtc[u];
            di[u] = dct * gg[u];
            df[u] = dct * cp[u];
            dg[u] = dct * i[u];
            dcr[u] = dct * f[u];
            dhr[u] = 0.0f;                                       // all of dh_{t-1} goes through the GEMM
        }
        dact_run(s->ract, di, i, w);
        dact_run(s->ract, df, f, w);
        dact_run(s->act, dg, gg, w);
        dact_run(s->ract, dout, o, w);
        const float* parts[4] = {di, df, dg, dout};
        for (int64_t q = 0; q < 4; q++)
            for (int64_t u = 0; u < w; u++) dzr[q * U + u0 + u] = dzs[q * U + u0 + u] = parts[q][u];
    }
}
ENGINE_RNN_PER_SIMD(lstm_back, lstm_back_body)

void lstm_forward(float* y, float* h, float* c, float* gates, float* cells, const float* x, const float* h0,
                  const float* c0, const float* kernel, const float* recurrent_kernel, const float* bias,
                  const float* mask, const float* recurrent_mask, int64_t N, int64_t T, int64_t D, int64_t U,
                  RnnActivation activation, RnnActivation recurrent_activation) {
    std::copy(h0, h0 + N * U, h);
    std::copy(c0, c0 + N * U, c);
    LstmArgs s{N, T, U, activation, recurrent_activation, bias, mask, recurrent_mask, nullptr, nullptr, nullptr,
               y, h, c, gates, cells, nullptr, nullptr};
    const bool keras_default = activation == RnnActivation::tanh && recurrent_activation == RnnActivation::sigmoid;
    const Simd simd = simd_active();
    forward_in_time(gates, x, kernel, N, T, D, U, 4, recurrent_kernel, h0, recurrent_mask,
                    [&](int64_t t, int64_t u0, int64_t w, const float* rec, float* hd) {
                        if (keras_default) lstm_step_default(simd, w == kBand, &s, t, u0, w, rec, hd);
                        else lstm_step(simd, w == kBand, &s, t, u0, w, rec, hd);
                    });
}

void lstm_backward(float* dx, float* dh0, float* dc0, float* dkernel, float* drecurrent_kernel, float* dbias,
                   const float* dy, const float* dh, const float* dc, const float* x, const float* h0, const float* c0,
                   const float* kernel, const float* recurrent_kernel, const float* mask, const float* recurrent_mask,
                   const float* y, const float* gates, const float* cells, int64_t N, int64_t T, int64_t D, int64_t U,
                   RnnActivation activation, RnnActivation recurrent_activation) {
    Floats dz(N * T * 4 * U);
    std::copy(dh, dh + N * U, dh0);                              // dh0 and dc0 carry the gradients back in time
    std::copy(dc, dc + N * U, dc0);
    LstmArgs s{N, T, U, activation, recurrent_activation, nullptr, mask, recurrent_mask, dy, c0, cells,
               nullptr, nullptr, nullptr, const_cast<float*>(gates), nullptr, dz.data(), dc0};
    const Simd simd = simd_active();
    const WeightGrads grads{dx, dkernel, drecurrent_kernel, dbias, nullptr, dz.data(), dz.data(), x, h0, y, kernel,
                            recurrent_mask, D};
    backward_in_time(N, T, U, 4, recurrent_kernel, dh0, grads, [&](int64_t t, int64_t u0, int64_t w, float* dz_t,
                                                                   float* dhc) {
        lstm_back(simd, w == kBand, &s, t, u0, w, dz_t, dhc);
    });
}

}  // namespace engine

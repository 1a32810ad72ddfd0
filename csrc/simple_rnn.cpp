// csrc/simple_rnn.cpp (namespace engine): the fully connected RNN over a whole sequence, forward and backward
// through time. Matches engine/ref/rnn.py (simple_rnn_forward, simple_rnn_backward), which has the formulas.
// The machinery (bands of units, the loops over time on one OpenMP team, the small register-tiled products) is
// in rnn.h.
#include "rnn.h"

namespace engine {

// ---------------------------------------------------------------------------------- SimpleRNN

struct SimpleArgs {
    int64_t N, T, U;
    RnnActivation act;
    const float *bias, *mask, *rmask, *dy, *y_in;
    float *y, *h, *dz;
};

template <int64_t W>
ENGINE_INLINE void simple_step_body(const SimpleArgs* s, int64_t t, int64_t u0, int64_t width, const float* rec, float* hd) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    float pre[kBand];
    for (int64_t n = 0; n < s->N; n++) {
        float* yr = s->y + (n * T + t) * U + u0;                 // holds x_t @ kernel; becomes h_t
        float* h = s->h + n * U + u0;
        if (kept(s->mask, n, t, T)) {
            for (int64_t u = 0; u < w; u++) pre[u] = yr[u] + s->bias[u0 + u] + rec[n * w + u];
            act_run(s->act, h, pre, w);
        }
        std::copy(h, h + w, yr);
        recurrent_input(w, hd + n * U + u0, h, s->rmask ? s->rmask + n * U + u0 : nullptr);
    }
}
ENGINE_RNN_PER_SIMD(simple_step, simple_step_body)

template <int64_t W>
ENGINE_INLINE void simple_back_body(const SimpleArgs* s, int64_t t, int64_t u0, int64_t width, float* dz_t, float* dh) {
    const int64_t w = W ? W : width;
    const int64_t U = s->U, T = s->T;
    float d[kBand];
    for (int64_t n = 0; n < s->N; n++) {
        const float* dyr = s->dy + (n * T + t) * U + u0;
        float *dzr = s->dz + (n * T + t) * U + u0, *dzs = dz_t + n * U + u0, *dhr = dh + n * U + u0;
        if (!kept(s->mask, n, t, T)) {
            for (int64_t u = 0; u < w; u++) {
                dhr[u] += dyr[u];
                dzr[u] = dzs[u] = 0.0f;
            }
            continue;
        }
        for (int64_t u = 0; u < w; u++) {
            d[u] = dyr[u] + dhr[u];
            dhr[u] = 0.0f;
        }
        dact_run(s->act, d, s->y_in + (n * T + t) * U + u0, w);
        for (int64_t u = 0; u < w; u++) dzr[u] = dzs[u] = d[u];
    }
}
ENGINE_RNN_PER_SIMD(simple_back, simple_back_body)

void simple_rnn_forward(float* y, float* h, const float* x, const float* h0, const float* kernel,
                        const float* recurrent_kernel, const float* bias, const float* mask, const float* recurrent_mask,
                        int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation) {
    std::copy(h0, h0 + N * U, h);
    SimpleArgs s{N, T, U, activation, bias, mask, recurrent_mask, nullptr, nullptr, y, h, nullptr};
    const Simd simd = simd_active();
    forward_in_time(y, x, kernel, N, T, D, U, 1, recurrent_kernel, h0, recurrent_mask,
                    [&](int64_t t, int64_t u0, int64_t w, const float* rec, float* hd) {
                        simple_step(simd, w == kBand, &s, t, u0, w, rec, hd);
                    });
}

void simple_rnn_backward(float* dx, float* dh0, float* dkernel, float* drecurrent_kernel, float* dbias, const float* dy,
                         const float* dh, const float* x, const float* h0, const float* kernel,
                         const float* recurrent_kernel, const float* mask, const float* recurrent_mask, const float* y,
                         int64_t N, int64_t T, int64_t D, int64_t U, RnnActivation activation) {
    Floats dz(N * T * U);
    std::copy(dh, dh + N * U, dh0);
    SimpleArgs s{N, T, U, activation, nullptr, mask, recurrent_mask, dy, y, nullptr, nullptr, dz.data()};
    const Simd simd = simd_active();
    const WeightGrads grads{dx, dkernel, drecurrent_kernel, dbias, nullptr, dz.data(), dz.data(), x, h0, y, kernel,
                            recurrent_mask, D};
    backward_in_time(N, T, U, 1, recurrent_kernel, dh0, grads, [&](int64_t t, int64_t u0, int64_t w, float* dz_t,
                                                                   float* dhc) {
        simple_back(simd, w == kBand, &s, t, u0, w, dz_t, dhc);
    });
}

}  // namespace engine

// csrc/activation.cpp (namespace engine): element-wise activations and their derivatives.
// Matches engine/ref/activation.py (same formulas, same numerically stable forms). n is the element count.
// Each activation is two small functions, f(x) and f'(x) (given x and y = f(x)); map_forward and
// map_backward run them over the array, on the OpenMP team once the array is large enough.
// No intrinsics: the loops are plain C++ that the compiler vectorises; exp, expm1, log1p, sigmoid and tanh
// come from vector_math.h (branch-free, so they vectorise too). Only the exact gelu calls the C library's
// erf and stays scalar.
#include <cmath>

#include "common.h"
#include "kernels.h"
#include "vector_math.h"

namespace engine {

// Each element-wise loop is compiled three times, for AVX-512, AVX2 and the baseline, and the running
// CPU picks one (simd_active()); __restrict tells the compiler the output never overlaps the inputs,
// so it can vectorise. ENGINE_FLATTEN inlines f / df (and the math they call) into each copy, compiled
// for its ISA: a call left in the loop would stop it from vectorising.
template <class F>
ENGINE_AVX512 ENGINE_FLATTEN static void forward_avx512(float* __restrict y, const float* __restrict x, int64_t n, F f) {
    for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
}
template <class F>
ENGINE_AVX2 ENGINE_FLATTEN static void forward_avx2(float* __restrict y, const float* __restrict x, int64_t n, F f) {
    for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
}
template <class F>
ENGINE_FLATTEN static void forward_portable(float* __restrict y, const float* __restrict x, int64_t n, F f) {
    for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
}

template <class DF>
ENGINE_AVX512 ENGINE_FLATTEN static void backward_avx512(float* __restrict dx, const float* __restrict dy, const float* __restrict x,
                                          const float* __restrict y, int64_t n, DF df) {
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * df(x[i], y[i]);
}
template <class DF>
ENGINE_AVX2 ENGINE_FLATTEN static void backward_avx2(float* __restrict dx, const float* __restrict dy, const float* __restrict x,
                                      const float* __restrict y, int64_t n, DF df) {
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * df(x[i], y[i]);
}
template <class DF>
ENGINE_FLATTEN static void backward_portable(float* __restrict dx, const float* __restrict dy, const float* __restrict x,
                              const float* __restrict y, int64_t n, DF df) {
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * df(x[i], y[i]);
}

// cost: kCostTranscendental for functions that call exp, tanh or erf, 1 for the rest.
// cost: kCostTranscendental for functions that call exp, tanh or erf, 1 for the rest.
template <class F>
static void map_forward(float* y, const float* x, int64_t n, F f, int64_t cost = kCostTranscendental) {
    const Simd simd = simd_active();
    parallel_chunks(n, cost, [&](int64_t lo, int64_t hi) {
        if (simd == Simd::avx512) forward_avx512(y + lo, x + lo, hi - lo, f);
        else if (simd == Simd::avx2) forward_avx2(y + lo, x + lo, hi - lo, f);
        else forward_portable(y + lo, x + lo, hi - lo, f);
    });
}

template <class DF>
static void map_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, DF df,
                         int64_t cost = kCostTranscendental) {
    const Simd simd = simd_active();
    parallel_chunks(n, cost, [&](int64_t lo, int64_t hi) {
        if (simd == Simd::avx512) backward_avx512(dx + lo, dy + lo, x + lo, y + lo, hi - lo, df);
        else if (simd == Simd::avx2) backward_avx2(dx + lo, dy + lo, x + lo, y + lo, hi - lo, df);
        else backward_portable(dx + lo, dy + lo, x + lo, y + lo, hi - lo, df);
    });
}

void linear_forward(float* y, const float* x, int64_t n) {
    map_forward(y, x, n, [](float v) { return v; }, 1);
}
void linear_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    map_backward(dx, dy, x, y, n, [](float, float) { return 1.0f; }, 1);
}

void relu_forward(float* y, const float* x, int64_t n) {
    map_forward(y, x, n, [](float v) { return v < 0.0f ? 0.0f : v; }, 1);     // NaN stays NaN
}
void relu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    map_backward(dx, dy, x, y, n, [](float v, float) { return v > 0.0f ? 1.0f : 0.0f; }, 1);
}

void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope) {
    map_forward(y, x, n, [=](float v) { return v > 0.0f ? v : negative_slope * v; }, 1);
}
void leaky_relu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n,
                         float negative_slope) {
    map_backward(dx, dy, x, y, n, [=](float v, float) { return v > 0.0f ? 1.0f : negative_slope; }, 1);
}

void sigmoid_forward(float* y, const float* x, int64_t n) {
    map_forward(y, x, n, [](float v) { return sigmoid_f(v); });
}
void sigmoid_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    map_backward(dx, dy, x, y, n, [](float, float s) { return s * (1.0f - s); }, 1);
}

void tanh_forward(float* y, const float* x, int64_t n) {
    map_forward(y, x, n, [](float v) { return tanh_f(v); });
}
void tanh_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    map_backward(dx, dy, x, y, n, [](float, float t) { return 1.0f - t * t; }, 1);
}

void elu_forward(float* y, const float* x, int64_t n, float alpha) {
    map_forward(y, x, n, [=](float v) { return v > 0.0f ? v : alpha * expm1_f(v); });
}
void elu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, float alpha) {
    map_backward(dx, dy, x, y, n, [=](float v, float e) { return v > 0.0f ? 1.0f : e + alpha; }, 1);
}

// gelu(x) = x * Phi(x), Phi the standard normal CDF; approximate=true uses the tanh form.
constexpr float kSqrt1_2 = 0.70710678118654752f;           // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.39894228040143268f;        // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;       // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

void gelu_forward(float* y, const float* x, int64_t n, bool approximate) {
    if (approximate) {
        map_forward(y, x, n, [](float v) {
            return 0.5f * v * (1.0f + tanh_f(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
        });
    } else {
        map_forward(y, x, n, [](float v) { return 0.5f * v * (1.0f + std::erf(v * kSqrt1_2)); });
    }
}
void gelu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, bool approximate) {
    if (approximate) {
        map_backward(dx, dy, x, y, n, [](float v, float) {
            const float t = tanh_f(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
            const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
            return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
        });
    } else {
        map_backward(dx, dy, x, y, n, [](float v, float) {
            return 0.5f * (1.0f + std::erf(v * kSqrt1_2)) + v * kInvSqrt2Pi * std::exp(-0.5f * v * v);
        });
    }
}

void silu_forward(float* y, const float* x, int64_t n) {
    map_forward(y, x, n, [](float v) { return v * sigmoid_f(v); });
}
void silu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    map_backward(dx, dy, x, y, n, [](float v, float) {
        const float s = sigmoid_f(v);
        return s * (1.0f + v * (1.0f - s));
    });
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, exact for small.
void softplus_forward(float* y, const float* x, int64_t n) {
    map_forward(y, x, n, [](float v) { return (v > 0.0f ? v : 0.0f) + log1p_f(exp_f(v > 0.0f ? -v : v)); });
}
void softplus_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    map_backward(dx, dy, x, y, n, [](float v, float) { return sigmoid_f(v); });
}

}  // namespace engine

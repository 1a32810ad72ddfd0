// csrc/activation.cpp (namespace engine): element-wise activations and their derivatives, and the Dense
// epilogue (bias add + activation on a tile of a matrix product).
// Matches engine/ref/activation.py (same formulas, same numerically stable forms). n is the element count.
//
// Each activation is a pair of small functors: Fwd(x) -> y, and Grad(x, y) -> dy/dx (given x and y =
// f(x), using whichever is cheaper). map_forward / map_backward run them over an array: one contiguous
// chunk per thread, each chunk a plain loop compiled for the CPU's SIMD path (simd_chunks). No intrinsics:
// exp, expm1, log1p, sigmoid, tanh and the normal CDF (the exact gelu) come
// from vector_math.h, written so that the loops vectorise.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common.h"
#include "kernels.h"
#include "vector_math.h"

namespace engine {

// cost: kCostTranscendental for functions that call exp, tanh or erf, 1 for the rest.
template <class F>
static void map_forward(float* y, const float* x, int64_t n, F f, int64_t cost) {
    simd_chunks(n, cost, [&](int64_t lo, int64_t hi) {
        float* __restrict yy = y + lo;
        const float* __restrict xx = x + lo;
        const F ff = f;
        for (int64_t i = 0; i < hi - lo; i++) yy[i] = ff(xx[i]);
    });
}

template <class DF>
static void map_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, DF df,
                         int64_t cost) {
    simd_chunks(n, cost, [&](int64_t lo, int64_t hi) {
        float* __restrict dxx = dx + lo;
        const float* __restrict dyy = dy + lo;
        const float* __restrict xx = x + lo;
        const float* __restrict yy = y + lo;
        const DF ff = df;
        for (int64_t i = 0; i < hi - lo; i++) dxx[i] = dyy[i] * ff(xx[i], yy[i]);
    });
}

// ------------------------------------------------------------------------- the activations, as functors

struct Linear {
    float operator()(float v) const { return v; }
    float operator()(float, float) const { return 1.0f; }
    static constexpr int64_t cost = 1;
};
struct Relu {
    float operator()(float v) const { return v < 0.0f ? 0.0f : v; }              // NaN stays NaN
    float operator()(float v, float) const { return v > 0.0f ? 1.0f : 0.0f; }
    static constexpr int64_t cost = 1;
};
struct LeakyRelu {
    float slope;
    float operator()(float v) const { return v > 0.0f ? v : slope * v; }
    float operator()(float v, float) const { return v > 0.0f ? 1.0f : slope; }
    static constexpr int64_t cost = 1;
};
struct Sigmoid {
    float operator()(float v) const { return sigmoid_f(v); }
    float operator()(float, float s) const { return s * (1.0f - s); }
    static constexpr int64_t cost = kCostTranscendental;
};
struct Tanh {
    float operator()(float v) const { return tanh_f(v); }
    float operator()(float, float t) const { return 1.0f - t * t; }
    static constexpr int64_t cost = kCostTranscendental;
};
struct Elu {                                    // d/dx alpha (e^x - 1) = alpha e^x = y + alpha
    float alpha;
    float operator()(float v) const { return v > 0.0f ? v : alpha * expm1_f(v); }
    float operator()(float v, float e) const { return v > 0.0f ? 1.0f : e + alpha; }
    static constexpr int64_t cost = kCostTranscendental;
};

// gelu(x) = x * Phi(x), Phi the standard normal CDF; GeluTanh is the tanh approximation.
constexpr float kInvSqrt2Pi = 0.39894228040143268f;        // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;       // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

struct Gelu {                                   // d/dx x Phi(x) = Phi(x) + x phi(x), phi the normal density
    float operator()(float v) const { return v * normal_cdf_f(v); }
    float operator()(float v, float) const {
        const float av = v < 0.0f ? -v : v;
        return normal_cdf_f(v) + v * kInvSqrt2Pi * exp_minus_half_square_f(av > 20.0f ? 20.0f : av);
    }
    static constexpr int64_t cost = kCostTranscendental;
};
struct GeluTanh {
    float operator()(float v) const { return 0.5f * v * (1.0f + tanh_f(kSqrt2OverPi * (v + kGeluCubic * v * v * v))); }
    float operator()(float v, float) const {
        const float t = tanh_f(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
        const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
        return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
    }
    static constexpr int64_t cost = kCostTranscendental;
};
struct Silu {
    float operator()(float v) const { return v * sigmoid_f(v); }
    float operator()(float v, float) const {
        const float s = sigmoid_f(v);
        return s * (1.0f + v * (1.0f - s));
    }
    static constexpr int64_t cost = kCostTranscendental;
};
// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, exact for small.
struct Softplus {
    float operator()(float v) const {
        return (v > 0.0f ? v : 0.0f) + log1p_unit_f(exp_nonpositive_f(-__builtin_fabsf(v)));
    }
    float operator()(float v, float) const { return sigmoid_f(v); }
    static constexpr int64_t cost = kCostTranscendental;
};

// The derivative of the cheap ones is a compare or a multiply: cost 1 even when the forward costs more.
template <class A> static constexpr int64_t grad_cost() { return std::is_same_v<A, Sigmoid> || std::is_same_v<A, Tanh> ||
                                                                std::is_same_v<A, Elu> ? 1 : A::cost; }

template <class A> static void forward(float* y, const float* x, int64_t n, A a) { map_forward(y, x, n, a, A::cost); }
template <class A> static void backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, A a) {
    map_backward(dx, dy, x, y, n, a, grad_cost<A>());
}

void linear_forward(float* y, const float* x, int64_t n) { forward(y, x, n, Linear{}); }
void linear_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    backward(dx, dy, x, y, n, Linear{});
}
void relu_forward(float* y, const float* x, int64_t n) { forward(y, x, n, Relu{}); }
void relu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    backward(dx, dy, x, y, n, Relu{});
}
void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope) {
    forward(y, x, n, LeakyRelu{negative_slope});
}
void leaky_relu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, float negative_slope) {
    backward(dx, dy, x, y, n, LeakyRelu{negative_slope});
}
void sigmoid_forward(float* y, const float* x, int64_t n) { forward(y, x, n, Sigmoid{}); }
void sigmoid_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    backward(dx, dy, x, y, n, Sigmoid{});
}
void tanh_forward(float* y, const float* x, int64_t n) { forward(y, x, n, Tanh{}); }
void tanh_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    backward(dx, dy, x, y, n, Tanh{});
}
void elu_forward(float* y, const float* x, int64_t n, float alpha) { forward(y, x, n, Elu{alpha}); }
void elu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, float alpha) {
    backward(dx, dy, x, y, n, Elu{alpha});
}
void gelu_forward(float* y, const float* x, int64_t n, bool approximate) {
    if (approximate) forward(y, x, n, GeluTanh{});
    else forward(y, x, n, Gelu{});
}
void gelu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n, bool approximate) {
    if (approximate) backward(dx, dy, x, y, n, GeluTanh{});
    else backward(dx, dy, x, y, n, Gelu{});
}
void silu_forward(float* y, const float* x, int64_t n) { forward(y, x, n, Silu{}); }
void silu_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    backward(dx, dy, x, y, n, Silu{});
}
void softplus_forward(float* y, const float* x, int64_t n) { forward(y, x, n, Softplus{}); }
void softplus_backward(float* dx, const float* dy, const float* x, const float* y, int64_t n) {
    backward(dx, dy, x, y, n, Softplus{});
}

// ------------------------------------------------------------------------- by name, for the Dense path

// Calls fn(functor) with the functor of `act`: one switch, shared by the epilogue and the backward.
template <class Fn>
static void with_activation(Act act, float param, Fn fn) {
    switch (act) {
        case Act::linear: return fn(Linear{});
        case Act::relu: return fn(Relu{});
        case Act::leaky_relu: return fn(LeakyRelu{param});
        case Act::sigmoid: return fn(Sigmoid{});
        case Act::tanh: return fn(Tanh{});
        case Act::elu: return fn(Elu{param});
        case Act::gelu: return fn(Gelu{});
        case Act::gelu_tanh: return fn(GeluTanh{});
        case Act::silu: return fn(Silu{});
        case Act::softplus: return fn(Softplus{});
    }
}

// The Dense epilogue on one tile of C (rows x cols, row stride ldc), while it is still in cache:
// z = c + bias[col] (bias may be null), kept in pre (row stride ld_pre) when pre is not null,
// then c = act(z). Runs on the calling thread: the GEMM calls it once per finished tile.
void bias_activation_tile(float* c, int64_t ldc, float* pre, int64_t ld_pre, int64_t rows, int64_t cols,
                          const float* bias, Act act, float param) {
    with_activation(act, param, [&](auto a) {
        simd_dispatch([&] {
            const auto f = a;
            // Three loops, each free of branches: with `if (pre) pre[s] = z` inside one loop, the store
            // under a condition vectorised on AVX-512 (masked stores) and left the AVX2 body scalar.
            for (int64_t r = 0; r < rows; r++) {
                float* __restrict cr = c + r * ldc;
                if (bias != nullptr)
                    for (int64_t s = 0; s < cols; s++) cr[s] += bias[s];
                if (pre != nullptr) std::copy(cr, cr + cols, pre + r * ld_pre);
                for (int64_t s = 0; s < cols; s++) cr[s] = f(cr[s]);
            }
        });
    });
}

void activation_backward(float* dz, const float* dy, const float* z, const float* y, int64_t n, Act act, float param) {
    with_activation(act, param, [&](auto a) { backward(dz, dy, z, y, n, a); });
}

// Whether the derivative needs the input z: for the others the output y answers the same question (y > 0
// exactly where z > 0 for relu, leaky relu with a slope >= 0 and elu with alpha > 0; sigmoid and tanh
// use y itself), so the forward pass need not keep z.
bool activation_needs_input(Act act, float param) {
    switch (act) {
        case Act::gelu: case Act::gelu_tanh: case Act::silu: case Act::softplus: return true;
        case Act::leaky_relu: return param < 0.0f;
        case Act::elu: return param <= 0.0f;
        default: return false;
    }
}

}  // namespace engine

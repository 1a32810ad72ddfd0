// csrc/optimizer.cpp (namespace engine): optimizer updates, in place, one fused pass over a parameter
// and its slots. Matches engine/ref/optimizer.py, which follows Keras 3's update rules. n is the number
// of values in the parameter; every slot has n values too.
//
// Each kernel first applies decoupled weight decay (param -= lr * weight_decay * param, as Keras does
// for every optimizer when weight_decay is set), then its own rule. Hyperparameters arrive as double and
// the per-step constants (1 - beta, the bias correction) are formed in double and rounded once, as Keras
// does in Python: 1 - 0.999f in float is 0.00099998713, a 1.3e-5 error in Adam's second moment.
// The element loops run in one contiguous chunk per thread, compiled for the active SIMD path
// (simd_chunks), with __restrict and no branch inside, so they vectorise (an optional slot picks one of
// several loops instead); element-wise, so the thread count cannot change the bits.
#include <cmath>

#include "common.h"
#include "kernels.h"

namespace engine {

constexpr int64_t kCostUpdate = 8;     // a few multiply-adds, a square root and a division per value

// p -= lr * g                                                   (momentum == 0)
// v = momentum * v - lr * g;  p += v                            (momentum > 0)
// v = momentum * v - lr * g;  p += momentum * v - lr * g        (nesterov)
static void sgd_chunk(float* __restrict p, const float* __restrict g, float* __restrict vel, int64_t n, float lr,
                      float momentum, bool nesterov, float decay) {
    if (vel == nullptr) {
        for (int64_t i = 0; i < n; i++) p[i] = (p[i] - decay * p[i]) - lr * g[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const float v = momentum * vel[i] - lr * g[i];
        vel[i] = v;
        p[i] = (p[i] - decay * p[i]) + (nesterov ? momentum * v - lr * g[i] : v);
    }
}

void sgd_update(float* param, const float* grad, float* velocity, int64_t n, double lr, double momentum,
                bool nesterov, double weight_decay) {
    const float decay = static_cast<float>(lr * weight_decay);
    simd_chunks(n, 4, [&](int64_t lo, int64_t hi) {
        sgd_chunk(param + lo, grad + lo, velocity ? velocity + lo : nullptr, hi - lo, static_cast<float>(lr),
                  static_cast<float>(momentum), nesterov, decay);
    });
}

// m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  v_hat = max(v_hat, v) with amsgrad
// p -= alpha m / (sqrt(v or v_hat) + epsilon),  alpha = lr sqrt(1 - beta_2^step) / (1 - beta_1^step)
struct AdamConstants { float alpha, c1, c2, eps, decay; };

template <bool Amsgrad>
ENGINE_INLINE void adam_loop(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                             float* __restrict v_hat, int64_t n, AdamConstants k) {
    #pragma GCC ivdep                            // value i reads and writes index i only: nothing carried
    for (int64_t i = 0; i < n; i++) {
        m[i] += (g[i] - m[i]) * k.c1;
        v[i] += (g[i] * g[i] - v[i]) * k.c2;
        float denom = v[i];
        if (Amsgrad) {
            const float larger = v_hat[i] >= v[i] ? v_hat[i] : v[i];      // NaN in either gives NaN, as
            v_hat[i] = v_hat[i] != v_hat[i] ? v_hat[i] : larger;            // np.maximum (fmax: no vector form)
            denom = v_hat[i];
        }
        p[i] = (p[i] - k.decay * p[i]) - k.alpha * m[i] / (std::sqrt(denom) + k.eps);
    }
}

static void adam_chunk(float* p, const float* g, float* m, float* v, float* v_hat, int64_t n, AdamConstants k) {
    if (v_hat != nullptr) adam_loop<true>(p, g, m, v, v_hat, n, k);
    else adam_loop<false>(p, g, m, v, v_hat, n, k);
}

void adam_update(float* param, const float* grad, float* m, float* v, float* v_hat, int64_t n, double lr,
                 double beta_1, double beta_2, double epsilon, int64_t step, double weight_decay) {
    const AdamConstants k{
        static_cast<float>(lr * std::sqrt(1.0 - std::pow(beta_2, double(step))) / (1.0 - std::pow(beta_1, double(step)))),
        static_cast<float>(1.0 - beta_1), static_cast<float>(1.0 - beta_2), static_cast<float>(epsilon),
        static_cast<float>(lr * weight_decay)};
    simd_chunks(n, kCostUpdate, [&](int64_t lo, int64_t hi) {
        adam_chunk(param + lo, grad + lo, m + lo, v + lo, v_hat ? v_hat + lo : nullptr, hi - lo, k);
    });
}

// v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g, denominator v - a^2 + eps, else v + eps
// step = lr g / sqrt(denominator);  momentum: b = momentum b + step, p -= b;  else p -= step
struct RmspropConstants { float lr, rho, c, momentum, eps, decay; };

template <bool Centered, bool Momentum>
ENGINE_INLINE void rmsprop_loop(float* __restrict p, const float* __restrict g, float* __restrict vel,
                                float* __restrict avg, float* __restrict mom, int64_t n, RmspropConstants k) {
    #pragma GCC ivdep                            // value i reads and writes index i only: nothing carried
    for (int64_t i = 0; i < n; i++) {
        vel[i] = k.rho * vel[i] + k.c * g[i] * g[i];
        float denominator = vel[i] + k.eps;
        if (Centered) {
            avg[i] = k.rho * avg[i] + k.c * g[i];
            denominator = vel[i] - avg[i] * avg[i] + k.eps;
        }
        const float increment = k.lr * g[i] / std::sqrt(denominator);
        const float decayed = p[i] - k.decay * p[i];
        if (Momentum) {
            mom[i] = k.momentum * mom[i] + increment;
            p[i] = decayed - mom[i];
        } else {
            p[i] = decayed - increment;
        }
    }
}

static void rmsprop_chunk(float* p, const float* g, float* vel, float* avg, float* mom, int64_t n, RmspropConstants k) {
    if (avg != nullptr && mom != nullptr) rmsprop_loop<true, true>(p, g, vel, avg, mom, n, k);
    else if (avg != nullptr) rmsprop_loop<true, false>(p, g, vel, avg, mom, n, k);
    else if (mom != nullptr) rmsprop_loop<false, true>(p, g, vel, avg, mom, n, k);
    else rmsprop_loop<false, false>(p, g, vel, avg, mom, n, k);
}

void rmsprop_update(float* param, const float* grad, float* velocity, float* average_grad, float* momentum_buf,
                    int64_t n, double lr, double rho, double momentum, double epsilon, double weight_decay) {
    const RmspropConstants k{static_cast<float>(lr), static_cast<float>(rho), static_cast<float>(1.0 - rho),
                             static_cast<float>(momentum), static_cast<float>(epsilon),
                             static_cast<float>(lr * weight_decay)};
    simd_chunks(n, kCostUpdate, [&](int64_t lo, int64_t hi) {
        rmsprop_chunk(param + lo, grad + lo, velocity + lo, average_grad ? average_grad + lo : nullptr,
                      momentum_buf ? momentum_buf + lo : nullptr, hi - lo, k);
    });
}

// accumulator += g^2;  p -= lr g / sqrt(accumulator + epsilon)
static void adagrad_chunk(float* __restrict p, const float* __restrict g, float* __restrict acc, int64_t n, float lr,
                          float eps, float decay) {
    for (int64_t i = 0; i < n; i++) {
        acc[i] += g[i] * g[i];
        p[i] = (p[i] - decay * p[i]) - lr * g[i] / std::sqrt(acc[i] + eps);
    }
}

void adagrad_update(float* param, const float* grad, float* accumulator, int64_t n, double lr, double epsilon,
                    double weight_decay) {
    simd_chunks(n, kCostUpdate, [&](int64_t lo, int64_t hi) {
        adagrad_chunk(param + lo, grad + lo, accumulator + lo, hi - lo, static_cast<float>(lr),
                      static_cast<float>(epsilon), static_cast<float>(lr * weight_decay));
    });
}

}  // namespace engine

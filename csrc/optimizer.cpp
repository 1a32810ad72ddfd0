// csrc/optimizer.cpp (namespace engine): optimizer updates, in place, one fused pass over a parameter
// and its slots. Matches engine/ref/optimizer.py, which follows Keras 3's update rules. n is the number
// of values in the parameter; every slot has n values too.
//
// Each kernel first applies decoupled weight decay (param -= lr * weight_decay * param, as Keras does
// for every optimizer when weight_decay is set), then its own rule. Element-wise, so threads cannot
// change the bits. Arithmetic in float, like the float32 variables Keras updates.
#include <cmath>

#include "common.h"
#include "kernels.h"

namespace engine {

// p -= lr * g                                                   (momentum == 0)
// v = momentum * v - lr * g;  p += v                            (momentum > 0)
// v = momentum * v - lr * g;  p += momentum * v - lr * g        (nesterov)
void sgd_update(float* param, const float* grad, float* velocity, int64_t n, float lr, float momentum,
                bool nesterov, float weight_decay) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n, 4))
    for (int64_t i = 0; i < n; i++) {
        float p = param[i] - lr * weight_decay * param[i];
        const float g = grad[i];
        if (velocity == nullptr) {
            p -= lr * g;
        } else {
            const float v = momentum * velocity[i] - lr * g;
            velocity[i] = v;
            p += nesterov ? momentum * v - lr * g : v;
        }
        param[i] = p;
    }
}

// m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  v_hat = max(v_hat, v) with amsgrad
// p -= alpha m / (sqrt(v or v_hat) + epsilon),  alpha = lr sqrt(1 - beta_2^step) / (1 - beta_1^step)
void adam_update(float* param, const float* grad, float* m, float* v, float* v_hat, int64_t n, float lr,
                 float beta_1, float beta_2, float epsilon, int64_t step, float weight_decay) {
    const float alpha = static_cast<float>(lr * std::sqrt(1.0 - std::pow(double(beta_2), double(step))) /
                                           (1.0 - std::pow(double(beta_1), double(step))));
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n, 8))
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i];
        const float p = param[i] - lr * weight_decay * param[i];
        m[i] += (g - m[i]) * (1.0f - beta_1);
        v[i] += (g * g - v[i]) * (1.0f - beta_2);
        float denom = v[i];
        if (v_hat != nullptr) {
            v_hat[i] = std::fmax(v_hat[i], v[i]);
            denom = v_hat[i];
        }
        param[i] = p - alpha * m[i] / (std::sqrt(denom) + epsilon);
    }
}

// v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g, denominator v - a^2 + eps, else v + eps
// step = lr g / sqrt(denominator);  momentum: b = momentum b + step, p -= b;  else p -= step
void rmsprop_update(float* param, const float* grad, float* velocity, float* average_grad, float* momentum_buf,
                    int64_t n, float lr, float rho, float momentum, float epsilon, float weight_decay) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n, 8))
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i];
        const float p = param[i] - lr * weight_decay * param[i];
        velocity[i] = rho * velocity[i] + (1.0f - rho) * g * g;
        float denominator = velocity[i] + epsilon;
        if (average_grad != nullptr) {
            average_grad[i] = rho * average_grad[i] + (1.0f - rho) * g;
            denominator = velocity[i] - average_grad[i] * average_grad[i] + epsilon;
        }
        const float increment = lr * g / std::sqrt(denominator);
        if (momentum_buf != nullptr) {
            momentum_buf[i] = momentum * momentum_buf[i] + increment;
            param[i] = p - momentum_buf[i];
        } else {
            param[i] = p - increment;
        }
    }
}

// accumulator += g^2;  p -= lr g / sqrt(accumulator + epsilon)
void adagrad_update(float* param, const float* grad, float* accumulator, int64_t n, float lr, float epsilon,
                    float weight_decay) {
    #pragma omp parallel for schedule(static) if (parallel_worth_it(n, 8))
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i];
        const float p = param[i] - lr * weight_decay * param[i];
        accumulator[i] += g * g;
        param[i] = p - lr * g / std::sqrt(accumulator[i] + epsilon);
    }
}

}  // namespace engine

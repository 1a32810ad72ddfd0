// csrc/bind_cpu/bind_activation.cpp: the element-wise activations and their gradients, as
// engine/ref/activation.py; kernels in csrc/activation.cpp.
#include <functional>
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

using Forward = std::function<void(float*, const float*, int64_t)>;
using Backward = std::function<void(float*, const float*, const float*, const float*, int64_t)>;

// y = f(x) over every value of x, any shape.
Array run_forward(const std::string& where, py::handle x_obj, const Forward& kernel) {
    Array x = input(x_obj, where, "x");
    Array y = cache_aligned(shape_of(x));
    {
        py::gil_scoped_release nogil;
        kernel(y.mutable_data(), x.data(), x.size());
    }
    return y;
}

// dx = dy * f'(x), from dy, x and y = f(x), all of one shape.
Array run_backward(const std::string& where, py::handle dy_obj, py::handle x_obj, py::handle y_obj,
                   const Backward& kernel) {
    Array dy = input(dy_obj, where, "dy"), x = input(x_obj, where, "x"), y = input(y_obj, where, "y");
    check_same_shape(where, "dy", dy, "x", x);
    check_same_shape(where, "y", y, "x", x);
    Array dx = cache_aligned(shape_of(x));
    {
        py::gil_scoped_release nogil;
        kernel(dx.mutable_data(), dy.data(), x.data(), y.data(), x.size());
    }
    return dx;
}

// The activations without a parameter: one forward and one backward kernel each.
struct Activation {
    const char* name;
    void (*forward)(float*, const float*, int64_t);
    void (*backward)(float*, const float*, const float*, const float*, int64_t);
};

const Activation kPlainActivations[] = {
    {"linear", engine::linear_forward, engine::linear_backward},
    {"relu", engine::relu_forward, engine::relu_backward},
    {"sigmoid", engine::sigmoid_forward, engine::sigmoid_backward},
    {"tanh", engine::tanh_forward, engine::tanh_backward},
    {"silu", engine::silu_forward, engine::silu_backward},
    {"softplus", engine::softplus_forward, engine::softplus_backward},
};

}  // namespace

void bind_activation(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    for (const Activation& act : kPlainActivations) {
        const std::string fwd = std::string(act.name) + "_forward", bwd = std::string(act.name) + "_backward";
        m.def(fwd.c_str(), [fwd, act](py::handle x) { return run_forward(fwd, x, act.forward); }, arg("x"),
              ("y = " + std::string(act.name) + "(x), element-wise").c_str());
        m.def(bwd.c_str(), [bwd, act](py::handle dy, py::handle x, py::handle y) {
            return run_backward(bwd, dy, x, y, act.backward);
        }, arg("dy"), arg("x"), arg("y"), "dx = dy * f'(x), given x and y = f(x)");
    }
    m.def("leaky_relu_forward", [](py::handle x, float negative_slope) {
        return run_forward("leaky_relu_forward", x, [=](float* y, const float* xp, int64_t n) {
            engine::leaky_relu_forward(y, xp, n, negative_slope);
        });
    }, arg("x"), arg("negative_slope") = 0.2f, "y = x if x > 0 else negative_slope * x");
    m.def("leaky_relu_backward", [](py::handle dy, py::handle x, py::handle y, float negative_slope) {
        return run_backward("leaky_relu_backward", dy, x, y, [=](float* dx, const float* d, const float* xp,
                                                                  const float* yp, int64_t n) {
            engine::leaky_relu_backward(dx, d, xp, yp, n, negative_slope);
        });
    }, arg("dy"), arg("x"), arg("y"), arg("negative_slope") = 0.2f, "dx = dy * (1 if x > 0 else negative_slope)");
    m.def("elu_forward", [](py::handle x, float alpha) {
        return run_forward("elu_forward", x, [=](float* y, const float* xp, int64_t n) {
            engine::elu_forward(y, xp, n, alpha);
        });
    }, arg("x"), arg("alpha") = 1.0f, "y = x if x > 0 else alpha * (exp(x) - 1)");
    m.def("elu_backward", [](py::handle dy, py::handle x, py::handle y, float alpha) {
        return run_backward("elu_backward", dy, x, y, [=](float* dx, const float* d, const float* xp, const float* yp,
                                                          int64_t n) { engine::elu_backward(dx, d, xp, yp, n, alpha); });
    }, arg("dy"), arg("x"), arg("y"), arg("alpha") = 1.0f, "dx = dy * (1 if x > 0 else y + alpha)");
    m.def("gelu_forward", [](py::handle x, bool approximate) {
        return run_forward("gelu_forward", x, [=](float* y, const float* xp, int64_t n) {
            engine::gelu_forward(y, xp, n, approximate);
        });
    }, arg("x"), arg("approximate") = false, "y = x * Phi(x) (tanh approximation if approximate)");
    m.def("gelu_backward", [](py::handle dy, py::handle x, py::handle y, bool approximate) {
        return run_backward("gelu_backward", dy, x, y, [=](float* dx, const float* d, const float* xp, const float* yp,
                                                           int64_t n) { engine::gelu_backward(dx, d, xp, yp, n, approximate); });
    }, arg("dy"), arg("x"), arg("y"), arg("approximate") = false, "dx = dy * gelu'(x)");
}

}  // namespace engine::bind

// csrc/bind_cpu/bind_layernorm.cpp: layer normalisation (and RMS scaling) over the last axis, and its gradient,
// as engine/ref/layernorm.py; kernels in csrc/layernorm.cpp.
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

// gamma or beta: None, or a float32 array of shape (D,).
Array optional_row(const std::string& where, const char* name, py::handle obj, int64_t D, const float** ptr) {
    if (obj.is_none()) {
        *ptr = nullptr;
        return Array();
    }
    Array a = input(obj, where, name);
    ENGINE_CHECK(a.ndim() == 1 && a.shape(0) == D, where.c_str(), "expected ", name, " of shape (", D,
                 ",) for x of shape (..., ", D, "). Received: ", name, ".shape=", shape_str(shape_of(a)));
    *ptr = a.data();
    return a;
}

Array layer_norm_input(const std::string& where, py::handle x_obj) {
    Array x = input(x_obj, where, "x");
    ENGINE_CHECK(x.ndim() >= 1 && x.shape(x.ndim() - 1) > 0, where.c_str(),
                 "expected x of shape (..., D) with D >= 1. Received: x.shape=", shape_str(shape_of(x)));
    return x;
}

}  // namespace

void bind_layernorm(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("layer_norm_forward", [](py::handle x_obj, py::handle gamma_obj, py::handle beta_obj, float epsilon,
                                   bool rms) -> py::tuple {
        const std::string where = "layer_norm_forward";
        Array x = layer_norm_input(where, x_obj);
        const int64_t D = x.shape(x.ndim() - 1), N = x.size() / D;
        const float *gamma, *beta;
        Array ga = optional_row(where, "gamma", gamma_obj, D, &gamma);
        Array ba = optional_row(where, "beta", beta_obj, D, &beta);
        const Shape rows(x.shape(), x.shape() + x.ndim() - 1);
        Array y = cache_aligned(shape_of(x)), mean = cache_aligned(rows), rstd = cache_aligned(rows);
        {
            py::gil_scoped_release nogil;
            engine::layer_norm_forward(y.mutable_data(), mean.mutable_data(), rstd.mutable_data(), x.data(), gamma,
                                       beta, N, D, epsilon, rms);
        }
        return py::make_tuple(y, mean, rstd);
    }, arg("x"), arg("gamma") = py::none(), arg("beta") = py::none(), arg("epsilon") = 1e-3f,
          arg("rms_scaling") = false,
          "y, mean, rstd = layer_norm_forward(x, gamma, beta, epsilon, rms_scaling); over the last axis of x");
    m.def("layer_norm_backward", [](py::handle dy_obj, py::handle x_obj, py::handle mean_obj, py::handle rstd_obj,
                                    py::handle gamma_obj, bool rms) -> py::tuple {
        const std::string where = "layer_norm_backward";
        Array x = layer_norm_input(where, x_obj);
        const int64_t D = x.shape(x.ndim() - 1), N = x.size() / D;
        const float* gamma;
        Array ga = optional_row(where, "gamma", gamma_obj, D, &gamma);
        Array dy = input(dy_obj, where, "dy"), mean = input(mean_obj, where, "mean"),
              rstd = input(rstd_obj, where, "rstd");
        const Shape rows(x.shape(), x.shape() + x.ndim() - 1);
        check_shape(where, "dy", dy, shape_of(x));
        check_shape(where, "mean", mean, rows);
        check_shape(where, "rstd", rstd, rows);
        Array dx = cache_aligned(shape_of(x)), dgamma = cache_aligned(Shape{D}), dbeta = cache_aligned(Shape{D});
        {
            py::gil_scoped_release nogil;
            engine::layer_norm_backward(dx.mutable_data(), dgamma.mutable_data(), dbeta.mutable_data(), dy.data(),
                                        x.data(), mean.data(), rstd.data(), gamma, N, D, rms);
        }
        return py::make_tuple(dx, dgamma, dbeta);
    }, arg("dy"), arg("x"), arg("mean"), arg("rstd"), arg("gamma") = py::none(), arg("rms_scaling") = false,
          "dx, dgamma, dbeta = layer_norm_backward(dy, x, mean, rstd, gamma, rms_scaling)");
}

}  // namespace engine::bind

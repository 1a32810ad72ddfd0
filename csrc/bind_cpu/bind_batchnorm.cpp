// csrc/bind_cpu/bind_batchnorm.cpp: batch normalisation per channel of one axis, forward (training updates the
// moving statistics in place) and backward, as engine/ref/batchnorm.py; kernels in csrc/batchnorm.cpp.
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

// x as (A, C, B) around axis, as engine/ref/batchnorm.py's _view.
AxisView norm_view(const std::string& where, const Array& x, const py::object& axis) {
    ENGINE_CHECK(x.ndim() >= 1, where.c_str(), "expected x with at least 1 dimension. Received: x.shape=()");
    return axis_view(where, x, axis);
}

Array channel_array(const std::string& where, const char* name, py::handle obj, int64_t C) {
    Array a = input(obj, where, name);
    ENGINE_CHECK(a.ndim() == 1 && a.shape(0) == C, where.c_str(), "expected ", name, " of shape (", C,
                 ",), one value per channel of the normalised axis. Received: ", name, ".shape=", shape_str(shape_of(a)));
    return a;
}

float* channel_state(const std::string& where, const char* name, py::handle obj, int64_t C) {
    float* p = in_place(where, name, obj, {}, false);
    const Shape shape = shape_of(py::reinterpret_borrow<py::array>(obj));
    ENGINE_CHECK(shape == Shape{C}, where.c_str(), "expected ", name, " of shape (", C,
                 ",), one value per channel of the normalised axis. Received: ", name, ".shape=", shape_str(shape));
    return p;
}

}  // namespace

void bind_batchnorm(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("batchnorm_forward", [](py::handle x_obj, py::handle gamma_obj, py::handle beta_obj, py::handle mm_obj,
                                  py::handle mv_obj, double momentum, double epsilon, bool training,
                                  const py::object& axis) -> py::tuple {
        const std::string where = "batchnorm_forward";
        Array x = input(x_obj, where, "x");
        const AxisView v = norm_view(where, x, axis);
        Array gamma = channel_array(where, "gamma", gamma_obj, v.D), beta = channel_array(where, "beta", beta_obj, v.D);
        float* moving_mean = channel_state(where, "moving_mean", mm_obj, v.D);
        float* moving_var = channel_state(where, "moving_var", mv_obj, v.D);
        ENGINE_CHECK(epsilon > 0, where.c_str(), "expected epsilon > 0. Received: epsilon=", epsilon);
        ENGINE_CHECK(!training || v.A * v.B > 0, where.c_str(), "training needs at least one value per channel to take "
                     "statistics from. Received: x.shape=", shape_str(shape_of(x)));
        Array y = cache_aligned(shape_of(x)), mean = cache_aligned(Shape{v.D}), inv_std = cache_aligned(Shape{v.D});
        {
            py::gil_scoped_release nogil;
            engine::batchnorm_forward(y.mutable_data(), mean.mutable_data(), inv_std.mutable_data(), moving_mean,
                                      moving_var, x.data(), gamma.data(), beta.data(), v.A, v.D, v.B, momentum, epsilon,
                                      training);
        }
        return py::make_tuple(y, mean, inv_std);
    }, arg("x"), arg("gamma"), arg("beta"), arg("moving_mean"), arg("moving_var"), arg("momentum") = 0.99,
          arg("epsilon") = 1e-3, arg("training") = true, arg("axis") = -1,
          "y, mean, inv_std = batchnorm_forward(...); training updates moving_mean and moving_var in place");
    m.def("batchnorm_backward", [](py::handle dy_obj, py::handle x_obj, py::handle gamma_obj, py::handle mean_obj,
                                   py::handle inv_std_obj, bool training, const py::object& axis) -> py::tuple {
        const std::string where = "batchnorm_backward";
        Array dy = input(dy_obj, where, "dy"), x = input(x_obj, where, "x");
        check_same_shape(where, "dy", dy, "x", x);
        const AxisView v = norm_view(where, x, axis);
        Array gamma = channel_array(where, "gamma", gamma_obj, v.D), mean = channel_array(where, "mean", mean_obj, v.D);
        Array inv_std = channel_array(where, "inv_std", inv_std_obj, v.D);
        Array dx = cache_aligned(shape_of(x)), dgamma = cache_aligned(Shape{v.D}), dbeta = cache_aligned(Shape{v.D});
        {
            py::gil_scoped_release nogil;
            engine::batchnorm_backward(dx.mutable_data(), dgamma.mutable_data(), dbeta.mutable_data(), dy.data(),
                                       x.data(), gamma.data(), mean.data(), inv_std.data(), v.A, v.D, v.B, training);
        }
        return py::make_tuple(dx, dgamma, dbeta);
    }, arg("dy"), arg("x"), arg("gamma"), arg("mean"), arg("inv_std"),
          arg("training") = true, arg("axis") = -1, "dx, dgamma, dbeta = batchnorm_backward(...)");
}

}  // namespace engine::bind

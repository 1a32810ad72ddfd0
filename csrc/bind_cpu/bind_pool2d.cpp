// csrc/bind_cpu/bind_pool2d.cpp: max and average pooling over windows, and global pooling over whole images,
// forward and backward, as engine/ref/pool2d.py; kernels in csrc/pool2d.cpp (windows) and csrc/reduce.cpp
// (global pooling).
#include <string>
#include <tuple>

#include "args.h"
#include "families.h"
#include "window.h"

namespace engine::bind {

namespace {

// Pooling: x and its window, checked as in engine/ref/pool2d.py. channels_first runs as N * C one-channel
// NHWC images (no transpose needed).
struct PoolArgs {
    Array x;
    bool first;
    engine::Window2d g;
    Shape out;
};

PoolArgs pool_args(const std::string& where, py::handle x_obj, const py::object& pool_size, const py::object& strides,
                   const py::object& padding, const py::object& data_format) {
    PoolArgs a{input(x_obj, where, "x"), false, {}, {}};
    const auto [PH, PW] = int_pair(where, "pool_size", pool_size);
    const py::object step = strides.is_none() ? py::object(py::make_tuple(PH, PW)) : strides;
    int_pair(where, "strides", step);
    if (!py::isinstance<py::str>(padding) || (padding.cast<std::string>() != "valid" && padding.cast<std::string>() != "same"))
        throw std::invalid_argument(where + ": expected padding to be 'valid' or 'same'. Received: padding=" +
                                    std::string(py::repr(padding)));
    a.first = channels_first(where, data_format);
    check_image(where, a.x, a.first);
    a.g = window_geometry(where, a.x, a.first, PH, PW, step, padding, py::make_tuple(1, 1), "pool");
    a.out = a.first ? Shape{a.g.N, a.g.C, a.g.OH, a.g.OW} : Shape{a.g.N, a.g.OH, a.g.OW, a.g.C};
    if (a.first) {
        a.g.N *= a.g.C;
        a.g.C = 1;
    }
    return a;
}

Array pool_dy(const std::string& where, py::handle dy_obj, const PoolArgs& a) {
    Array dy = input(dy_obj, where, "dy");
    check_shape(where, "dy", dy, a.out, kForwardOutput);
    return dy;
}

using Argmax = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// Global pooling: the reduce kernels (csrc/reduce.cpp) over the image axes, x seen as (N, H * W, C) for
// channels_last or (N * C, H * W, 1) for channels_first, as in engine/ref/pool2d.py.
struct GlobalView { int64_t A, R, B; Shape out, keep; };

GlobalView global_view(const std::string& where, const py::array& x, const py::object& data_format) {
    const bool first = channels_first(where, data_format);
    check_image(where, x, first);
    const int64_t N = x.shape(0), C = first ? x.shape(1) : x.shape(3);
    const int64_t R = first ? x.shape(2) * x.shape(3) : x.shape(1) * x.shape(2);
    return {first ? N * C : N, R, first ? 1 : C, Shape{N, C}, first ? Shape{N, C, 1, 1} : Shape{N, 1, 1, C}};
}

Array global_dy(const std::string& where, py::handle dy_obj, const GlobalView& v, bool keepdims) {
    Array dy = input(dy_obj, where, "dy");
    ENGINE_CHECK(shape_of(dy) == v.out || shape_of(dy) == v.keep, where.c_str(), "expected dy of shape ",
                 shape_str(keepdims ? v.keep : v.out), kForwardOutput, ". Received: dy.shape=",
                 shape_str(shape_of(dy)));
    return dy;
}

}  // namespace

void bind_pool2d(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("maxpool2d_forward", [](py::handle x_obj, const py::object& pool_size, const py::object& strides,
                                  const py::object& padding, const py::object& data_format) -> py::tuple {
        PoolArgs a = pool_args("maxpool2d_forward", x_obj, pool_size, strides, padding, data_format);
        Array y = cache_aligned(a.out);
        Argmax argmax(a.out);
        {
            py::gil_scoped_release nogil;
            engine::maxpool2d_forward(y.mutable_data(), argmax.mutable_data(), a.x.data(), a.g);
        }
        return py::make_tuple(y, argmax);
    }, arg("x"), arg("pool_size") = py::make_tuple(2, 2), arg("strides") = py::none(), arg("padding") = "valid",
          arg("data_format") = "channels_last",
          "y, argmax = maxpool2d_forward(x, ...); argmax: int32 positions h * W + w (the first maximum)");
    m.def("maxpool2d_backward", [](py::handle dy_obj, py::handle x_obj, py::handle argmax_obj,
                                   const py::object& pool_size, const py::object& strides, const py::object& padding,
                                   const py::object& data_format) -> Array {
        const std::string where = "maxpool2d_backward";
        PoolArgs a = pool_args(where, x_obj, pool_size, strides, padding, data_format);
        Array dy = input(dy_obj, where, "dy");
        const bool is_int32 = py::isinstance<py::array>(argmax_obj) &&
                              py::reinterpret_borrow<py::array>(argmax_obj).dtype().is(py::dtype::of<int32_t>());
        if (!is_int32)
            throw py::type_error(where + ": expected argmax to be the int32 array from maxpool2d_forward. "
                                 "Received: argmax.dtype=" + dtype_or_type(argmax_obj));
        Argmax argmax = Argmax::ensure(argmax_obj);
        pool_dy(where, dy, a);
        check_shape(where, "argmax", argmax, a.out, kForwardOutput);
        const int32_t* index = argmax.data();
        Array dx = cache_aligned(shape_of(a.x));
        int64_t outside;
        {
            py::gil_scoped_release nogil;
            outside = engine::maxpool2d_backward(dx.mutable_data(), dy.data(), index, a.g);
        }
        if (outside > 0) {
            const int64_t first = engine::maxpool2d_argmax_outside(index, a.g);
            engine::fail(where.c_str(), "expected each argmax value to be a position h * W + w inside its output's ",
                         "pooling window, as maxpool2d_forward returns it. Received: ", outside,
                         " value(s) outside, the first ", index[first], " at flat index ", first);
        }
        return dx;
    }, arg("dy"), arg("x"), arg("argmax"),
          arg("pool_size") = py::make_tuple(2, 2), arg("strides") = py::none(), arg("padding") = "valid",
          arg("data_format") = "channels_last", "dx: each dy added at its argmax");
    m.def("avgpool2d_forward", [](py::handle x_obj, const py::object& pool_size, const py::object& strides,
                                  const py::object& padding, const py::object& data_format) -> Array {
        PoolArgs a = pool_args("avgpool2d_forward", x_obj, pool_size, strides, padding, data_format);
        Array y = cache_aligned(a.out);
        {
            py::gil_scoped_release nogil;
            engine::avgpool2d_forward(y.mutable_data(), a.x.data(), a.g);
        }
        return y;
    }, arg("x"), arg("pool_size") = py::make_tuple(2, 2), arg("strides") = py::none(), arg("padding") = "valid",
          arg("data_format") = "channels_last",
          "y = mean over the real pixels of each window");
    m.def("avgpool2d_backward", [](py::handle dy_obj, py::handle x_obj, const py::object& pool_size,
                                   const py::object& strides, const py::object& padding,
                                   const py::object& data_format) -> Array {
        const std::string where = "avgpool2d_backward";
        PoolArgs a = pool_args(where, x_obj, pool_size, strides, padding, data_format);
        Array dy = pool_dy(where, dy_obj, a);
        Array dx = cache_aligned(shape_of(a.x));
        {
            py::gil_scoped_release nogil;
            engine::avgpool2d_backward(dx.mutable_data(), dy.data(), a.g);
        }
        return dx;
    }, arg("dy"), arg("x"), arg("pool_size") = py::make_tuple(2, 2), arg("strides") = py::none(),
          arg("padding") = "valid", arg("data_format") = "channels_last",
          "dx: each dy spread evenly over the real pixels of its window");

    for (auto [name, is_max, doc] : {std::tuple<const char*, bool, const char*>{
                                         "global_avgpool2d_forward", false, "y = mean over H and W (reduce kernels)"},
                                     {"global_maxpool2d_forward", true, "y = max over H and W (reduce kernels)"}}) {
        const std::string where = name;
        m.def(name, [where, is_max = is_max](py::handle x_obj, const py::object& data_format, bool keepdims) -> Array {
            Array x = input(x_obj, where, "x");
            const GlobalView v = global_view(where, x, data_format);
            ENGINE_CHECK(!is_max || v.R > 0 || v.A * v.B == 0, where.c_str(), "expected images of at least one pixel "
                         "(the max of nothing is undefined). Received: x.shape=", shape_str(shape_of(x)));
            Array y = cache_aligned(keepdims ? v.keep : v.out);
            {
                py::gil_scoped_release nogil;
                (is_max ? engine::max_forward : engine::mean_forward)(y.mutable_data(), x.data(), v.A, v.R, v.B);
            }
            return y;
        }, arg("x"), arg("data_format") = "channels_last", arg("keepdims") = false, doc);
    }
    m.def("global_avgpool2d_backward", [](py::handle dy_obj, py::handle x_obj, const py::object& data_format,
                                          bool keepdims) -> Array {
        const std::string where = "global_avgpool2d_backward";
        Array x = input(x_obj, where, "x");
        const GlobalView v = global_view(where, x, data_format);
        Array dy = global_dy(where, dy_obj, v, keepdims);
        Array dx = cache_aligned(shape_of(x));
        {
            py::gil_scoped_release nogil;
            engine::mean_backward(dx.mutable_data(), dy.data(), v.A, v.R, v.B);
        }
        return dx;
    }, arg("dy"), arg("x"),
          arg("data_format") = "channels_last", arg("keepdims") = false, "dx = dy / (H * W) at every pixel");
    m.def("global_maxpool2d_backward", [](py::handle dy_obj, py::handle x_obj, py::handle y_obj,
                                          const py::object& data_format, bool keepdims) -> Array {
        const std::string where = "global_maxpool2d_backward";
        Array x = input(x_obj, where, "x");
        const GlobalView v = global_view(where, x, data_format);
        Array dy = global_dy(where, dy_obj, v, keepdims), y = input(y_obj, where, "y");
        ENGINE_CHECK(y.size() == v.A * v.B, where.c_str(), "expected y of shape ", shape_str(keepdims ? v.keep : v.out),
                     kForwardOutput, ". Received: y.shape=", shape_str(shape_of(y)));
        Array dx = cache_aligned(shape_of(x));
        {
            py::gil_scoped_release nogil;
            engine::max_backward(dx.mutable_data(), dy.data(), x.data(), y.data(), v.A, v.R, v.B);
        }
        return dx;
    }, arg("dy"), arg("x"), arg("y"), arg("data_format") = "channels_last", arg("keepdims") = false,
          "dx = dy / k at the k pixels equal to the max (Keras' reduce_max rule)");
}

}  // namespace engine::bind

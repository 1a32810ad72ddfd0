// csrc/bind_cpu/bind_conv2d.cpp: 2-D convolution, forward (and the ladder's rungs) and backward, as
// engine/ref/conv2d.py; kernels in csrc/conv2d.cpp and csrc/conv2d_winograd.cpp, which work in NHWC:
// channels_first arrays are transposed on the way in and out here.
#include <string>

#include "args.h"
#include "families.h"
#include "window.h"

namespace engine::bind {

namespace {

// An NCHW array as a new NHWC one (or the reverse: `to_first`); `a` is (N, C, S) or (N, S, C), S = H * W.
Array swap_layout(const Array& a, int64_t N, int64_t C, int64_t S, bool to_first, const Shape& shape) {
    Array out = cache_aligned(shape);
    py::gil_scoped_release nogil;
    if (to_first)
        engine::transpose_inner(out.mutable_data(), a.data(), N, S, C);
    else
        engine::transpose_inner(out.mutable_data(), a.data(), N, C, S);
    return out;
}

Array nhwc_of(const Array& x, bool first) {
    if (!first) return x;
    return swap_layout(x, x.shape(0), x.shape(1), x.shape(2) * x.shape(3), false,
                       Shape{x.shape(0), x.shape(2), x.shape(3), x.shape(1)});
}

Array layout_of(const Array& y, bool first) {                    // y is NHWC
    if (!first) return y;
    return swap_layout(y, y.shape(0), y.shape(3), y.shape(1) * y.shape(2), true,
                       Shape{y.shape(0), y.shape(3), y.shape(1), y.shape(2)});
}

struct ConvArgs {
    Array x, kernel;
    bool first;
    engine::Window2d g;
    int64_t F;
};

ConvArgs conv_args(const std::string& where, py::handle x_obj, py::handle k_obj, const py::handle& strides,
                   const py::handle& padding, const py::handle& dilation, const py::handle& data_format) {
    ConvArgs a{input(x_obj, where, "x"), input(k_obj, where, "kernel"), false, {}, 0};
    a.first = channels_first(where, data_format);
    check_image(where, a.x, a.first);
    ENGINE_CHECK(a.kernel.ndim() == 4, where.c_str(), "expected kernel of shape (KH, KW, C, F). Received: kernel.shape=",
                 shape_str(shape_of(a.kernel)));
    const int64_t C = a.first ? a.x.shape(1) : a.x.shape(3);
    ENGINE_CHECK(a.kernel.shape(2) == C, where.c_str(), "expected kernel.shape[2] to equal the ", C,
                 " input channels of x. Received: kernel.shape=", shape_str(shape_of(a.kernel)), ", x.shape=",
                 shape_str(shape_of(a.x)));
    a.g = window_geometry(where, a.x, a.first, a.kernel.shape(0), a.kernel.shape(1), strides, padding, dilation,
                          "kernel");
    a.F = a.kernel.shape(3);
    return a;
}

using ConvRung = void (*)(float*, const float*, const float*, const float*, const engine::Window2d&, int64_t);

// conv2d_forward and the conv2d rungs: one adapter, the kernel and its name as arguments.
void def_conv2d(py::module_& m, const char* name, ConvRung rung, const char* doc) {
    const std::string where = name;
    m.def(name, [where, rung](py::handle x_obj, py::handle k_obj, py::handle bias_obj, const py::object& strides,
                              const py::object& padding, const py::object& dilation,
                              const py::object& data_format) -> Array {
        ConvArgs a = conv_args(where, x_obj, k_obj, strides, padding, dilation, data_format);
        const engine::Window2d& g = a.g;
        Array bias;
        if (!bias_obj.is_none()) {
            bias = input(bias_obj, where, "bias");
            ENGINE_CHECK(bias.ndim() == 1 && bias.shape(0) == a.F, where.c_str(), "expected bias of shape (", a.F,
                         ",), one value per filter. Received: bias.shape=", shape_str(shape_of(bias)));
        }
        Array xs = nhwc_of(a.x, a.first);
        Array y = cache_aligned(Shape{g.N, g.OH, g.OW, a.F});
        {
            py::gil_scoped_release nogil;
            rung(y.mutable_data(), xs.data(), a.kernel.data(), bias_obj.is_none() ? nullptr : bias.data(), g, a.F);
        }
        return layout_of(y, a.first);
    }, py::arg("x"), py::arg("kernel"), py::arg("bias") = py::none(), py::arg("strides") = py::make_tuple(1, 1),
          py::arg("padding") = "valid", py::arg("dilation_rate") = py::make_tuple(1, 1),
          py::arg("data_format") = "channels_last", doc);
}

}  // namespace

void bind_conv2d(py::module_& m, py::module_& ladder) {
    using py::arg;
    def_conv2d(m, "conv2d_forward", engine::conv2d_forward,
               "y = conv2d(x, kernel) + bias; x: (N, H, W, C) or (N, C, H, W), kernel: (KH, KW, C, F). Winograd "
               "F(2x2, 3x3) (rung v3) for 3x3 kernels, strides 1, at least 8 channels and filters and an output of at "
               "least 2x2; im2col + GEMM (rung v2) for every other shape");
    m.def("conv2d_backward", [](py::handle dy_obj, py::handle x_obj, py::handle k_obj, const py::object& strides,
                                const py::object& padding, const py::object& dilation, const py::object& data_format,
                                bool input_grad) -> py::tuple {
        const std::string where = "conv2d_backward";
        ConvArgs a = conv_args(where, x_obj, k_obj, strides, padding, dilation, data_format);
        const engine::Window2d& g = a.g;
        Array dy = input(dy_obj, where, "dy");
        const Shape expected = a.first ? Shape{g.N, a.F, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, a.F};
        check_shape(where, "dy", dy, expected, kForwardOutput);
        Array xs = nhwc_of(a.x, a.first), dys = nhwc_of(dy, a.first);
        Array dx = cache_aligned(input_grad ? Shape{g.N, g.H, g.W, g.C} : Shape{0});
        Array dkernel = cache_aligned(shape_of(a.kernel)), dbias = cache_aligned(Shape{a.F});
        {
            py::gil_scoped_release nogil;
            engine::conv2d_backward(input_grad ? dx.mutable_data() : nullptr, dkernel.mutable_data(),
                                    dbias.mutable_data(), dys.data(), xs.data(), a.kernel.data(), g, a.F);
        }
        return py::make_tuple(input_grad ? py::object(layout_of(dx, a.first)) : py::object(py::none()), dkernel, dbias);
    }, arg("dy"), arg("x"), arg("kernel"), arg("strides") = py::make_tuple(1, 1), arg("padding") = "valid",
          arg("dilation_rate") = py::make_tuple(1, 1), arg("data_format") = "channels_last", arg("input_grad") = true,
          "dx, dkernel, dbias = conv2d_backward(dy, x, kernel, ...); dx is None if not input_grad. Winograd where "
          "conv2d_forward runs it; elsewhere dkernel = im2col(x)^T @ dy and dx = col2im(dy @ kernel^T), block by "
          "block");

    def_conv2d(ladder, "conv2d_forward_v1", engine::conv2d_forward_v1,
               "The direct convolution: nested loops, one thread (same arguments as conv2d_forward)");
    def_conv2d(ladder, "conv2d_forward_v2", engine::conv2d_forward_v2,
               "im2col in cache-sized blocks + the packed GEMM (same arguments as conv2d_forward)");
    def_conv2d(ladder, "conv2d_forward_v3", engine::conv2d_forward_v3,
               "Winograd F(2x2, 3x3): 3x3 kernels, strides 1 (any dilation), at least 8 channels and filters, an "
               "output of at least 2x2 (same arguments as conv2d_forward)");
}

}  // namespace engine::bind

// csrc/bind_cpu/bind_resize.cpp: resizing images (UpSampling2D's 'nearest' and 'bilinear') and its gradient, as
// engine/ref/resize.py; kernels in csrc/resize.cpp.
#include <algorithm>
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

// engine/ref/_check.py resize_args: x (N, H, W, C), interpolation 'nearest' or 'bilinear', size (OH, OW) > 0.
bool resize_args(const std::string& where, const py::array& x, const py::handle& size, const py::handle& mode,
                 int64_t& OH, int64_t& OW) {
    ENGINE_CHECK(x.ndim() == 4, where.c_str(), "expected x of shape (N, H, W, C). Received: x.shape=",
                 shape_str(shape_of(x)));
    const bool known = py::isinstance<py::str>(mode) &&
                       (mode.cast<std::string>() == "nearest" || mode.cast<std::string>() == "bilinear");
    ENGINE_CHECK(known, where.c_str(), "expected interpolation to be one of ('nearest', 'bilinear'). Received: "
                 "interpolation=", std::string(py::repr(mode)));
    const bool pair = py::isinstance<py::sequence>(size) && !py::isinstance<py::str>(size) && py::len(size) == 2;
    const bool positive = pair && index_value(size[py::int_(0)], OH) && index_value(size[py::int_(1)], OW) &&
                          OH > 0 && OW > 0;
    ENGINE_CHECK(positive, where.c_str(), "expected size (OH, OW) of positive ints. Received: size=",
                 std::string(py::repr(size)));
    return mode.cast<std::string>() == "bilinear";
}

// A new output of `shape`: zeros when the image is empty (no pixel to read or write), else filled by
// kernel(out) without the GIL.
template <class Kernel>
Array resized(const Shape& shape, bool empty, const Kernel& kernel) {
    Array out = cache_aligned(shape);
    if (empty) {
        std::fill(out.mutable_data(), out.mutable_data() + out.size(), 0.0f);
        return out;
    }
    py::gil_scoped_release nogil;
    kernel(out.mutable_data());
    return out;
}

}  // namespace

void bind_resize(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("resize_forward", [](py::handle x_obj, py::handle size, py::handle interpolation) -> Array {
        const std::string where = "resize_forward";
        Array x = input(x_obj, where, "x");
        int64_t OH = 0, OW = 0;
        const bool bilinear = resize_args(where, x, size, interpolation, OH, OW);
        const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
        return resized({N, OH, OW, C}, N * H * W * C == 0, [&](float* y) {
            engine::resize_forward(y, x.data(), N, H, W, C, OH, OW, bilinear);
        });
    }, arg("x"), arg("size"), arg("interpolation") = "nearest",
       "y (N, OH, OW, C) = x (N, H, W, C) resized to size = (OH, OW): y = A_h x A_w^T per channel, 'nearest' or "
       "'bilinear' (half-pixel centres), in two passes over whole rows");
    m.def("resize_backward", [](py::handle dy_obj, py::handle x_shape_obj, py::handle interpolation) -> Array {
        const std::string where = "resize_backward";
        Array dy = input(dy_obj, where, "dy");
        Shape x_shape;
        if (py::isinstance<py::sequence>(x_shape_obj) && !py::isinstance<py::str>(x_shape_obj))
            for (const auto& d : x_shape_obj) {
                int64_t v = -1;
                ENGINE_CHECK(index_value(d, v) && v >= 0, where.c_str(), "expected x_shape to hold sizes >= 0. "
                             "Received: x_shape=", std::string(py::repr(x_shape_obj)));
                x_shape.push_back(v);
            }
        const Shape s = shape_of(dy);
        ENGINE_CHECK(dy.ndim() == 4 && x_shape.size() == 4 && s[0] == x_shape[0] && s[3] == x_shape[3], where.c_str(),
                     "expected dy of shape (N, OH, OW, C) for x of shape ", shape_str(x_shape),
                     ". Received: dy.shape=", shape_str(s));
        const py::tuple size = py::make_tuple(s[1], s[2]);
        int64_t OH = 0, OW = 0;
        const bool bilinear = resize_args(where, cache_aligned({0, x_shape[1], x_shape[2], x_shape[3]}), size,
                                          interpolation, OH, OW);
        const int64_t N = x_shape[0], H = x_shape[1], W = x_shape[2], C = x_shape[3];
        return resized(x_shape, N * H * W * C == 0, [&](float* dx) {
            engine::resize_backward(dx, dy.data(), N, H, W, C, OH, OW, bilinear);
        });
    }, arg("dy"), arg("x_shape"), arg("interpolation") = "nearest",
       "dx (x_shape) = A_h^T dy A_w: each output pixel's gradient goes back to the input pixels it read, with "
       "their weights (the forward's taps, transposed)");
}

}  // namespace engine::bind

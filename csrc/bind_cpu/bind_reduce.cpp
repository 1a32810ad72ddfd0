// csrc/bind_cpu/bind_reduce.cpp: sum, mean and max over any set of axes, and their gradients, as
// engine/ref/reduce.py; kernels in csrc/reduce.cpp, which see x as (A, R, B) with R the reduced extent.
#include <algorithm>
#include <string>
#include <vector>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

// How to see x as (A, R, B) for a reduction over `axis` (None, an int, or a sequence of ints). When the
// reduced axes are not adjacent, x is first transposed to (kept axes..., reduced axes...): `perm`.
struct ReducePlan {
    int64_t A = 1, R = 1, B = 1;
    std::vector<int64_t> perm;                   // empty: no transpose needed
    Shape out, keep;                             // result shape without / with keepdims
};

constexpr const char* kAxes = "None, an int or a tuple of ints";

ReducePlan reduce_plan(const std::string& where, const py::array& x, const py::object& axis) {
    const Shape s = shape_of(x);
    const int64_t ndim = static_cast<int64_t>(s.size());
    std::vector<bool> reduced(ndim, axis.is_none());
    if (!axis.is_none()) {
        std::vector<int64_t> axes;
        if (int64_t one = 0; index_value(axis, one)) {
            axes.push_back(one);
        } else if (py::isinstance<py::sequence>(axis) && !py::isinstance<py::str>(axis)) {
            for (const auto& item : axis) axes.push_back(axis_int(where, item, axis, kAxes));
        } else {
            throw py::type_error(where + ": expected axis to be None, an int or a tuple of ints. Received: axis=" +
                                 std::string(py::repr(axis)));
        }
        for (int64_t a : axes) {
            ENGINE_CHECK(a >= -ndim && a < ndim, where.c_str(), "expected axis in [", -ndim, ", ", ndim,
                         ") for an array of ", ndim, " dimensions. Received: axis=", std::string(py::repr(axis)));
            const int64_t k = a < 0 ? a + ndim : a;
            ENGINE_CHECK(!reduced[k], where.c_str(), "expected each axis once. Received: axis=",
                         std::string(py::repr(axis)));
            reduced[k] = true;
        }
    }
    ReducePlan p;
    int64_t first = ndim, last = -1;
    for (int64_t d = 0; d < ndim; d++) {
        p.keep.push_back(reduced[d] ? 1 : s[d]);
        if (!reduced[d]) p.out.push_back(s[d]);
        if (reduced[d]) first = std::min(first, d), last = std::max(last, d);
    }
    bool adjacent = true;
    for (int64_t d = first; d <= last; d++) adjacent = adjacent && reduced[d];
    if (adjacent) {
        for (int64_t d = 0; d < ndim; d++) (reduced[d] ? p.R : (d < first ? p.A : p.B)) *= s[d];
        return p;
    }
    for (int64_t pass = 0; pass < 2; pass++)     // kept axes first, then the reduced ones
        for (int64_t d = 0; d < ndim; d++)
            if (reduced[d] == (pass == 1)) p.perm.push_back(d);
    for (int64_t d = 0; d < ndim; d++) (reduced[d] ? p.R : p.A) *= s[d];
    return p;
}

// x as (A, R, B), transposed into a contiguous copy when the plan says so.
Array planned(const Array& x, const ReducePlan& p) {
    if (p.perm.empty()) return x;
    return Array::ensure(x.attr("transpose")(py::cast(p.perm)));
}

// Undo planned() on a gradient computed in the (A, R, B) layout.
Array unplanned(Array dx, const Shape& x_shape, const ReducePlan& p) {
    if (p.perm.empty()) return dx;
    Shape permuted;
    for (int64_t d : p.perm) permuted.push_back(x_shape[d]);
    std::vector<int64_t> inverse(p.perm.size());
    for (size_t i = 0; i < p.perm.size(); i++) inverse[p.perm[i]] = static_cast<int64_t>(i);
    return Array::ensure(dx.reshape(permuted).attr("transpose")(py::cast(inverse)));
}

using ReduceForward = void (*)(float*, const float*, int64_t, int64_t, int64_t);
using ReduceBackward = void (*)(float*, const float*, int64_t, int64_t, int64_t);

// sum_forward, mean_forward and max_forward (after its own check).
Array run_reduce_forward(const std::string& where, ReduceForward kernel, py::handle x_obj, const py::object& axis,
                         bool keepdims) {
    Array x = input(x_obj, where, "x");
    const ReducePlan p = reduce_plan(where, x, axis);
    Array xp = planned(x, p);
    Array y = cache_aligned(keepdims ? p.keep : p.out);
    {
        py::gil_scoped_release nogil;
        kernel(y.mutable_data(), xp.data(), p.A, p.R, p.B);
    }
    return y;
}

// dy has the reduced shape (with or without keepdims); dx gets the shape of x.
Array check_dy(const std::string& where, py::handle dy_obj, const ReducePlan& p) {
    Array dy = input(dy_obj, where, "dy");
    ENGINE_CHECK(shape_of(dy) == p.out || shape_of(dy) == p.keep, where.c_str(), "expected dy of shape ",
                 shape_str(p.out), " or ", shape_str(p.keep), kForwardOutput, ". Received: dy.shape=",
                 shape_str(shape_of(dy)));
    return dy;
}

// sum_backward and mean_backward: the gradient does not depend on x's values, only on its shape.
Array run_reduce_backward(const std::string& where, ReduceBackward kernel, py::handle dy_obj, py::handle x_obj,
                          const py::object& axis) {
    Array x = input(x_obj, where, "x");
    const ReducePlan p = reduce_plan(where, x, axis);
    Array dy = check_dy(where, dy_obj, p);
    Array dx = cache_aligned(Shape{p.A * p.R * p.B});
    {
        py::gil_scoped_release nogil;
        kernel(dx.mutable_data(), dy.data(), p.A, p.R, p.B);
    }
    return unplanned(dx, shape_of(x), p).reshape(shape_of(x));
}

}  // namespace

void bind_reduce(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("sum_forward", [](py::handle x, const py::object& axis, bool keepdims) {
        return run_reduce_forward("sum_forward", engine::sum_forward, x, axis, keepdims);
    }, arg("x"), arg("axis") = py::none(), arg("keepdims") = false, "y = x.sum(axis, keepdims)");
    m.def("sum_backward", [](py::handle dy, py::handle x, const py::object& axis, bool keepdims) {
        return run_reduce_backward("sum_backward", engine::sum_backward, dy, x, axis);
    }, arg("dy"), arg("x"), arg("axis") = py::none(), arg("keepdims") = false, "dx = dy spread over the reduced axes");
    m.def("mean_forward", [](py::handle x, const py::object& axis, bool keepdims) {
        return run_reduce_forward("mean_forward", engine::mean_forward, x, axis, keepdims);
    }, arg("x"), arg("axis") = py::none(), arg("keepdims") = false, "y = x.mean(axis, keepdims)");
    m.def("mean_backward", [](py::handle dy, py::handle x, const py::object& axis, bool keepdims) {
        return run_reduce_backward("mean_backward", engine::mean_backward, dy, x, axis);
    }, arg("dy"), arg("x"), arg("axis") = py::none(), arg("keepdims") = false, "dx = dy / R spread over the reduced axes");

    m.def("max_forward", [](py::handle x_obj, const py::object& axis, bool keepdims) -> Array {
        const std::string where = "max_forward";
        Array x = input(x_obj, where, "x");
        const ReducePlan p = reduce_plan(where, x, axis);
        ENGINE_CHECK(p.R > 0 || p.A * p.B == 0, where.c_str(),
                     "cannot take the max over an empty axis: it has no identity. Received: x.shape=",
                     shape_str(shape_of(x)), ", axis=", std::string(py::repr(axis)));
        return run_reduce_forward(where, engine::max_forward, x, axis, keepdims);
    }, arg("x"), arg("axis") = py::none(), arg("keepdims") = false, "y = x.max(axis, keepdims); NaN propagates");
    m.def("max_backward", [](py::handle dy_obj, py::handle x_obj, py::handle y_obj, const py::object& axis,
                             bool keepdims) -> Array {
        const std::string where = "max_backward";
        Array x = input(x_obj, where, "x");
        const ReducePlan p = reduce_plan(where, x, axis);
        Array dy = check_dy(where, dy_obj, p);
        Array y = input(y_obj, where, "y");
        check_shape(where, "y", y, shape_of(dy), kForwardOutput);
        Array xp = planned(x, p);
        Array dx = cache_aligned(Shape{p.A * p.R * p.B});
        {
            py::gil_scoped_release nogil;
            engine::max_backward(dx.mutable_data(), dy.data(), xp.data(), y.data(), p.A, p.R, p.B);
        }
        return unplanned(dx, shape_of(x), p).reshape(shape_of(x));
    }, arg("dy"), arg("x"), arg("y"), arg("axis") = py::none(), arg("keepdims") = false,
          "dx = dy / k at the k entries equal to the max, 0 elsewhere");
}

}  // namespace engine::bind

// csrc/bind_cpu.cpp: the only CPU file that sees Python. It builds engine._cpu, whose functions have the
// names, arguments and return values of engine/ref/*.py. Each adapter: check the arrays (dtype, shape),
// make them contiguous, allocate the outputs, release the GIL, call the kernel from csrc/kernels.h.
// Errors: a wrong dtype or type raises TypeError; a wrong shape or value raises ValueError (the kernels'
// ENGINE_CHECK throws std::invalid_argument, which pybind11 turns into ValueError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace py = pybind11;
using Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Shape = std::vector<py::ssize_t>;

namespace {

// ------------------------------------------------------------------------------------------ helpers

std::string shape_str(const Shape& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

int64_t product(Shape::const_iterator first, Shape::const_iterator last) {
    return std::accumulate(first, last, int64_t{1}, std::multiplies<int64_t>());
}

// A new float32 array whose data starts on a 64-byte boundary (NumPy only promises 16). Every kernel output is
// made this way: a 16-byte offset made every other 32-byte store of the AVX2 loops straddle two cache lines
// (tanh's backward ran 1.2x PyTorch's time on 4M values), and the recurrent kernels' threads write neighbouring
// bands of every row, which must not share cache lines. A view into a slightly larger array, which it keeps
// alive as its base.
Array cache_aligned(const Shape& shape) {
    const int64_t n = product(shape.begin(), shape.end());
    Array whole(Shape{static_cast<py::ssize_t>(n + 16)});
    float* p = whole.mutable_data();
    const auto skip = static_cast<int64_t>((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(float));
    return Array(shape, p + skip, whole);
}

// A float32 NumPy array, made C-contiguous (copied only when it is not). Anything else: TypeError.
Array input(const py::handle& obj, const std::string& where, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(where + ": expected " + name + " to be a float32 numpy array. Received: type(" +
                             name + ")=" + std::string(py::str(py::type::of(obj).attr("__name__"))));
    py::array arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<float>()))
        throw py::type_error(where + ": expected " + name + " to be a float32 array. Received: " + name +
                             ".dtype=" + std::string(py::str(arr.dtype())));
    return Array::ensure(arr);
}

void check_same_shape(const std::string& where, const char* name, const py::array& a, const char* other,
                      const py::array& b) {
    ENGINE_CHECK(shape_of(a) == shape_of(b), where.c_str(), "expected ", name, " to have the shape of ", other, " ",
                 shape_str(shape_of(b)), ". Received: ", name, ".shape=", shape_str(shape_of(a)));
}

// An axis given as a Python or NumPy integer (not a bool, which Python also counts as an int). `expected`
// describes what the function takes; `whole` is the axis argument as the caller passed it.
int64_t axis_int(const std::string& where, const py::handle& obj, const py::object& whole, const char* expected) {
    if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
        throw py::type_error(where + ": expected axis to be " + expected + ". Received: axis=" +
                             std::string(py::repr(whole)));
    return py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr())).cast<int64_t>();
}

int64_t normalize_axis(const std::string& where, int64_t axis, int64_t ndim) {
    if (ndim == 0 && (axis == 0 || axis == -1)) return 0;          // a 0-d array has one axis-like slot
    ENGINE_CHECK(axis >= -ndim && axis < ndim, where.c_str(), "expected axis in [", -ndim, ", ", ndim,
                 ") for an array of ", ndim, " dimensions. Received: axis=", axis);
    return axis < 0 ? axis + ndim : axis;
}

// ------------------------------------------------------------------------------------------ matmul

// op(a) @ op(b) for 2-D operands or stacks of them; one operand may be 2-D and shared by the stack.
struct MatmulShape {
    int64_t batch, a_step, b_step, M, N, K;
    bool a_shared, b_shared;
    Shape out;
};

MatmulShape matmul_shape(const std::string& where, const py::array& a, const py::array& b, bool ta, bool tb) {
    const Shape as = shape_of(a), bs = shape_of(b);
    ENGINE_CHECK(as.size() >= 2 && bs.size() >= 2, where.c_str(),
                 "expected a and b with at least 2 dimensions (use engine.ops.matmul for vectors). Received: a.shape=",
                 shape_str(as), ", b.shape=", shape_str(bs));
    const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    ENGINE_CHECK(a_batch.empty() || b_batch.empty() || a_batch == b_batch, where.c_str(),
                 "expected equal batch dimensions, or one operand 2-D. Received: a.shape=", shape_str(as),
                 ", b.shape=", shape_str(bs));
    MatmulShape s;
    s.M = ta ? as.back() : as[as.size() - 2];
    s.K = ta ? as[as.size() - 2] : as.back();
    const int64_t kb = tb ? bs.back() : bs[bs.size() - 2];
    s.N = tb ? bs[bs.size() - 2] : bs.back();
    ENGINE_CHECK(s.K == kb, where.c_str(), "expected the inner dimensions to match, got K=", s.K, " from a and K=", kb,
                 " from b. Received: a.shape=", shape_str(as), ", b.shape=", shape_str(bs), ", trans_a=",
                 ta ? "True" : "False", ", trans_b=", tb ? "True" : "False");
    const Shape& batch_dims = a_batch.empty() ? b_batch : a_batch;
    s.batch = product(batch_dims.begin(), batch_dims.end());
    s.a_shared = a_batch.empty();
    s.b_shared = b_batch.empty();
    s.a_step = s.a_shared ? 0 : s.M * s.K;
    s.b_step = s.b_shared ? 0 : s.K * s.N;
    s.out = batch_dims;
    s.out.push_back(s.M);
    s.out.push_back(s.N);
    return s;
}

Array py_matmul_forward(py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b) {
    const std::string where = "matmul_forward";
    Array a = input(a_obj, where, "a"), b = input(b_obj, where, "b");
    const MatmulShape s = matmul_shape(where, a, b, trans_a, trans_b);
    Array c = cache_aligned(s.out);
    {
        py::gil_scoped_release nogil;
        engine::matmul_forward_batched(c.mutable_data(), a.data(), b.data(), s.batch, s.a_step, s.b_step, s.M * s.N, s.M,
                                       s.N, s.K, trans_a, trans_b);
    }
    return c;
}

// With C = op(A) op(B):  d op(A) = dC op(B)^T  and  d op(B) = op(A)^T dC. Each gradient is itself one
// batched product of dC with the other operand as stored; a shared (2-D) operand sums over the stack.
py::tuple py_matmul_backward(py::handle dc_obj, py::handle a_obj, py::handle b_obj, bool ta, bool tb) {
    const std::string where = "matmul_backward";
    Array dc = input(dc_obj, where, "dc"), a = input(a_obj, where, "a"), b = input(b_obj, where, "b");
    const MatmulShape s = matmul_shape(where, a, b, ta, tb);
    ENGINE_CHECK(shape_of(dc) == s.out, where.c_str(), "expected dc of shape ", shape_str(s.out),
                 " (the forward output). Received: dc.shape=", shape_str(shape_of(dc)));
    Array da = cache_aligned(shape_of(a)), db = cache_aligned(shape_of(b));
    const int64_t M = s.M, N = s.N, K = s.K, dc_step = M * N;
    const int64_t da_step = s.a_shared ? 0 : M * K, db_step = s.b_shared ? 0 : K * N;
    {
        py::gil_scoped_release nogil;
        if (!ta)   // dA (M, K) = dC (M, N) @ op(B)^T
            engine::matmul_forward_batched(da.mutable_data(), dc.data(), b.data(), s.batch, dc_step, s.b_step, da_step,
                                           M, K, N, false, !tb);
        else       // dA stored (K, M) = op(B) (K, N) @ dC^T
            engine::matmul_forward_batched(da.mutable_data(), b.data(), dc.data(), s.batch, s.b_step, dc_step, da_step,
                                           K, M, N, tb, true);
        if (!tb)   // dB (K, N) = op(A)^T (K, M) @ dC
            engine::matmul_forward_batched(db.mutable_data(), a.data(), dc.data(), s.batch, s.a_step, dc_step, db_step,
                                           K, N, M, !ta, false);
        else       // dB stored (N, K) = dC^T (N, M) @ op(A)
            engine::matmul_forward_batched(db.mutable_data(), dc.data(), a.data(), s.batch, dc_step, s.a_step, db_step,
                                           N, K, M, true, ta);
    }
    return py::make_tuple(da, db);
}

using Rung = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t);

Array py_matmul_rung(const std::string& where, Rung rung, py::handle a_obj, py::handle b_obj) {
    Array a = input(a_obj, where, "a"), b = input(b_obj, where, "b");
    ENGINE_CHECK(a.ndim() == 2 && b.ndim() == 2, where.c_str(), "expected 2-D a and b. Received: a.shape=",
                 shape_str(shape_of(a)), ", b.shape=", shape_str(shape_of(b)));
    const MatmulShape s = matmul_shape(where, a, b, false, false);
    Array c = cache_aligned(s.out);
    {
        py::gil_scoped_release nogil;
        if (s.K == 0)
            std::fill(c.mutable_data(), c.mutable_data() + s.M * s.N, 0.0f);
        else
            rung(c.mutable_data(), a.data(), b.data(), s.M, s.N, s.K);
    }
    return c;
}

Array py_bias_add_forward(py::handle x_obj, py::handle bias_obj) {
    const std::string where = "bias_add_forward";
    Array x = input(x_obj, where, "x"), bias = input(bias_obj, where, "bias");
    ENGINE_CHECK(x.ndim() >= 1 && bias.ndim() == 1 && bias.shape(0) == x.shape(x.ndim() - 1), where.c_str(),
                 "expected bias of shape (D,) for x of shape (..., D). Received: x.shape=", shape_str(shape_of(x)),
                 ", bias.shape=", shape_str(shape_of(bias)));
    Array y = cache_aligned(shape_of(x));
    const int64_t D = bias.shape(0), N = D ? x.size() / D : 0;
    {
        py::gil_scoped_release nogil;
        engine::bias_add_forward(y.mutable_data(), x.data(), bias.data(), N, D);
    }
    return y;
}

py::tuple py_bias_add_backward(py::handle dy_obj) {
    const std::string where = "bias_add_backward";
    Array dy = input(dy_obj, where, "dy");
    ENGINE_CHECK(dy.ndim() >= 1, where.c_str(), "expected dy of shape (..., D). Received: dy.shape=",
                 shape_str(shape_of(dy)));
    const int64_t D = dy.shape(dy.ndim() - 1), N = D ? dy.size() / D : 0;
    Array dbias = cache_aligned(Shape{D});
    {
        py::gil_scoped_release nogil;
        engine::bias_add_backward(dbias.mutable_data(), dy.data(), N, D);
    }
    return py::make_tuple(dy, dbias);            // dx = dy: the add passes the gradient through
}

// ------------------------------------------------------------------------------------------ dense

// The activation names the fused dense kernels take, and the parameter each one uses.
engine::Act activation_by_name(const std::string& where, const std::string& name, float negative_slope, float alpha,
                               float* param) {
    static const std::pair<const char*, engine::Act> names[] = {
        {"linear", engine::Act::linear}, {"relu", engine::Act::relu}, {"leaky_relu", engine::Act::leaky_relu},
        {"sigmoid", engine::Act::sigmoid}, {"tanh", engine::Act::tanh}, {"elu", engine::Act::elu},
        {"gelu", engine::Act::gelu}, {"gelu_approximate", engine::Act::gelu_tanh}, {"silu", engine::Act::silu},
        {"softplus", engine::Act::softplus}};
    for (const auto& [n, act] : names)
        if (name == n) {
            *param = act == engine::Act::leaky_relu ? negative_slope : alpha;
            return act;
        }
    engine::fail(where.c_str(), "expected activation in ['linear', 'relu', 'leaky_relu', 'sigmoid', 'tanh', 'elu', "
                 "'gelu', 'gelu_approximate', 'silu', 'softplus']. Received: activation='", name, "'");
}

struct DenseShape { int64_t N, D, U; Shape out; };

DenseShape dense_shape(const std::string& where, const py::array& x, const py::array& w) {
    ENGINE_CHECK(x.ndim() >= 1 && w.ndim() == 2 && x.shape(x.ndim() - 1) == w.shape(0), where.c_str(),
                 "expected x of shape (..., D) and w of shape (D, U). Received: x.shape=", shape_str(shape_of(x)),
                 ", w.shape=", shape_str(shape_of(w)));
    DenseShape s{0, w.shape(0), w.shape(1), shape_of(x)};
    s.N = s.D ? x.size() / s.D : product(s.out.begin(), s.out.end() - 1);
    s.out.back() = s.U;
    return s;
}

py::tuple py_dense_forward(py::handle x_obj, py::handle w_obj, py::handle bias_obj, const std::string& activation,
                           float negative_slope, float alpha) {
    const std::string where = "dense_forward";
    Array x = input(x_obj, where, "x"), w = input(w_obj, where, "w");
    const DenseShape s = dense_shape(where, x, w);
    const bool has_bias = !bias_obj.is_none();
    Array bias;                                  // an empty array when there is no bias: never read then
    if (has_bias) {
        bias = input(bias_obj, where, "bias");
        ENGINE_CHECK(bias.ndim() == 1 && bias.shape(0) == s.U, where.c_str(), "expected bias of shape (", s.U,
                     ",). Received: bias.shape=", shape_str(shape_of(bias)));
    }
    float param = 0.0f;
    const engine::Act act = activation_by_name(where, activation, negative_slope, alpha, &param);
    Array y = cache_aligned(s.out);
    Array z = engine::activation_needs_input(act, param) ? Array(s.out) : y;
    {
        py::gil_scoped_release nogil;
        engine::dense_forward(y.mutable_data(), z.is(y) ? nullptr : z.mutable_data(), x.data(), w.data(),
                              has_bias ? bias.data() : nullptr, s.N, s.D, s.U, act, param);
    }
    return py::make_tuple(y, z);
}

py::tuple py_dense_backward(py::handle dy_obj, py::handle x_obj, py::handle w_obj, py::handle z_obj, py::handle y_obj,
                            const std::string& activation, bool use_bias, float negative_slope, float alpha) {
    const std::string where = "dense_backward";
    Array dy = input(dy_obj, where, "dy"), x = input(x_obj, where, "x"), w = input(w_obj, where, "w"),
          z = input(z_obj, where, "z"), y = input(y_obj, where, "y");
    const DenseShape s = dense_shape(where, x, w);
    ENGINE_CHECK(shape_of(dy) == s.out, where.c_str(), "expected dy of shape ", shape_str(s.out),
                 " (the forward output). Received: dy.shape=", shape_str(shape_of(dy)));
    check_same_shape(where, "y", y, "dy", dy);
    check_same_shape(where, "z", z, "dy", dy);
    float param = 0.0f;
    const engine::Act act = activation_by_name(where, activation, negative_slope, alpha, &param);
    Array dx = cache_aligned(shape_of(x)), dw = cache_aligned(shape_of(w));
    py::object dbias = py::none();
    Array dbias_array;
    if (use_bias) {
        dbias_array = Array(Shape{s.U});
        dbias = dbias_array;
    }
    {
        py::gil_scoped_release nogil;
        engine::dense_backward(dx.mutable_data(), dw.mutable_data(), use_bias ? dbias_array.mutable_data() : nullptr,
                               dy.data(), x.data(), w.data(), z.data(), y.data(), s.N, s.D, s.U, act, param);
    }
    return py::make_tuple(dx, dw, dbias);
}

// ------------------------------------------------------------------------------------------ activations

using Forward = std::function<void(float*, const float*, int64_t)>;
using Backward = std::function<void(float*, const float*, const float*, const float*, int64_t)>;

Array run_forward(const std::string& where, py::handle x_obj, const Forward& kernel) {
    Array x = input(x_obj, where, "x");
    Array y = cache_aligned(shape_of(x));
    {
        py::gil_scoped_release nogil;
        kernel(y.mutable_data(), x.data(), x.size());
    }
    return y;
}

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

// ------------------------------------------------------------------------------------------ softmax

// x viewed as (A, D, B) around `axis`.
struct AxisView { int64_t A, D, B; };

AxisView axis_view(const std::string& where, const py::array& x, const py::object& axis_obj) {
    const Shape s = shape_of(x);
    const int64_t ax = normalize_axis(where, axis_int(where, axis_obj, axis_obj, "an int"), static_cast<int64_t>(s.size()));
    if (s.empty()) return {1, 1, 1};
    return {product(s.begin(), s.begin() + ax), s[ax], product(s.begin() + ax + 1, s.end())};
}

using AxisForward = void (*)(float*, const float*, int64_t, int64_t, int64_t);
using AxisBackward = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t);

Array run_axis_forward(const std::string& where, AxisForward kernel, py::handle x_obj, const py::object& axis) {
    Array x = input(x_obj, where, "x");
    const AxisView v = axis_view(where, x, axis);
    Array y = cache_aligned(shape_of(x));
    {
        py::gil_scoped_release nogil;
        if (x.size() > 0) kernel(y.mutable_data(), x.data(), v.A, v.D, v.B);
    }
    return y;
}

Array run_axis_backward(const std::string& where, AxisBackward kernel, py::handle dy_obj, py::handle y_obj,
                        const py::object& axis) {
    Array dy = input(dy_obj, where, "dy"), y = input(y_obj, where, "y");
    check_same_shape(where, "dy", dy, "y", y);
    const AxisView v = axis_view(where, y, axis);
    Array dx = cache_aligned(shape_of(y));
    {
        py::gil_scoped_release nogil;
        if (y.size() > 0) kernel(dx.mutable_data(), dy.data(), y.data(), v.A, v.D, v.B);
    }
    return dx;
}

// ------------------------------------------------------------------------------------------ reductions

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
        if (PyIndex_Check(axis.ptr()) && !PyBool_Check(axis.ptr())) {
            axes.push_back(axis_int(where, axis, axis, kAxes));
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

Array py_max_forward(py::handle x_obj, const py::object& axis, bool keepdims) {
    const std::string where = "max_forward";
    Array x = input(x_obj, where, "x");
    const ReducePlan p = reduce_plan(where, x, axis);
    ENGINE_CHECK(p.R > 0 || p.A * p.B == 0, where.c_str(),
                 "cannot take the max over an empty axis: it has no identity. Received: x.shape=",
                 shape_str(shape_of(x)), ", axis=", std::string(py::repr(axis)));
    return run_reduce_forward(where, engine::max_forward, x, axis, keepdims);
}

using ReduceBackward = void (*)(float*, const float*, int64_t, int64_t, int64_t);

// dy has the reduced shape (with or without keepdims); dx gets the shape of x.
Array check_dy(const std::string& where, py::handle dy_obj, const ReducePlan& p) {
    Array dy = input(dy_obj, where, "dy");
    ENGINE_CHECK(shape_of(dy) == p.out || shape_of(dy) == p.keep, where.c_str(), "expected dy of shape ",
                 shape_str(p.out), " or ", shape_str(p.keep), " (the forward output). Received: dy.shape=",
                 shape_str(shape_of(dy)));
    return dy;
}

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

Array py_max_backward(py::handle dy_obj, py::handle x_obj, py::handle y_obj, const py::object& axis) {
    const std::string where = "max_backward";
    Array x = input(x_obj, where, "x");
    const ReducePlan p = reduce_plan(where, x, axis);
    Array dy = check_dy(where, dy_obj, p);
    Array y = input(y_obj, where, "y");
    ENGINE_CHECK(shape_of(y) == shape_of(dy), where.c_str(), "expected y of shape ", shape_str(shape_of(dy)),
                 " (the forward output). Received: y.shape=", shape_str(shape_of(y)));
    Array xp = planned(x, p);
    Array dx = cache_aligned(Shape{p.A * p.R * p.B});
    {
        py::gil_scoped_release nogil;
        engine::max_backward(dx.mutable_data(), dy.data(), xp.data(), y.data(), p.A, p.R, p.B);
    }
    return unplanned(dx, shape_of(x), p).reshape(shape_of(x));
}

// ------------------------------------------------------------------------------------------ losses

using Labels = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

void check_rows(const std::string& where, const Array& logits) {
    ENGINE_CHECK(logits.ndim() == 2 && logits.shape(1) > 0, where.c_str(),
                 "expected logits of shape (N, C) with C >= 1. Received: logits.shape=", shape_str(shape_of(logits)));
}

void check_dloss(const std::string& where, const Array& dloss, const Array& rows) {
    ENGINE_CHECK(dloss.ndim() == 1 && dloss.shape(0) == rows.shape(0), where.c_str(), "expected dloss of shape (",
                 rows.shape(0), ",). Received: dloss.shape=", shape_str(shape_of(dloss)));
}

// Class ids: an int64 array of shape (N,), every value in [0, C).
Labels class_ids(const std::string& where, py::handle obj, const Array& logits) {
    if (!py::isinstance<py::array>(obj) || !py::reinterpret_borrow<py::array>(obj).dtype().is(py::dtype::of<int64_t>()))
        throw py::type_error(where + ": expected labels to be an int64 numpy array. Received: labels.dtype=" +
                             (py::isinstance<py::array>(obj) ? std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype()))
                                                             : std::string(py::str(py::type::of(obj).attr("__name__")))));
    Labels labels = Labels::ensure(obj);
    const int64_t N = logits.shape(0), C = logits.shape(1);
    ENGINE_CHECK(labels.ndim() == 1 && labels.shape(0) == N, where.c_str(), "expected labels of shape (", N,
                 ",), one class id per row. Received: labels.shape=", shape_str(shape_of(labels)));
    const int64_t* l = labels.data();
    for (int64_t n = 0; n < N; n++)
        ENGINE_CHECK(l[n] >= 0 && l[n] < C, where.c_str(), "expected class ids in [0, ", C, "). Received: a label of ",
                     l[n]);
    return labels;
}

py::tuple py_softmax_cross_entropy_forward(py::handle logits_obj, py::handle targets_obj) {
    const std::string where = "softmax_cross_entropy_forward";
    Array logits = input(logits_obj, where, "logits");
    check_rows(where, logits);
    Array targets = input(targets_obj, where, "targets");
    check_same_shape(where, "targets", targets, "logits", logits);
    const int64_t N = logits.shape(0), C = logits.shape(1);
    Array loss = cache_aligned(Shape{N}), probs = cache_aligned(shape_of(logits));
    {
        py::gil_scoped_release nogil;
        engine::softmax_cross_entropy_forward(loss.mutable_data(), probs.mutable_data(), logits.data(), targets.data(),
                                              N, C);
    }
    return py::make_tuple(loss, probs);
}

Array py_softmax_cross_entropy_backward(py::handle dloss_obj, py::handle probs_obj, py::handle targets_obj) {
    const std::string where = "softmax_cross_entropy_backward";
    Array dloss = input(dloss_obj, where, "dloss"), probs = input(probs_obj, where, "probs"),
          targets = input(targets_obj, where, "targets");
    check_same_shape(where, "targets", targets, "probs", probs);
    check_rows(where, probs);
    check_dloss(where, dloss, probs);
    Array dlogits = cache_aligned(shape_of(probs));
    {
        py::gil_scoped_release nogil;
        engine::softmax_cross_entropy_backward(dlogits.mutable_data(), dloss.data(), probs.data(), targets.data(),
                                               probs.shape(0), probs.shape(1));
    }
    return dlogits;
}

py::tuple py_sparse_softmax_cross_entropy_forward(py::handle logits_obj, py::handle labels_obj) {
    const std::string where = "sparse_softmax_cross_entropy_forward";
    Array logits = input(logits_obj, where, "logits");
    check_rows(where, logits);
    Labels labels = class_ids(where, labels_obj, logits);
    const int64_t N = logits.shape(0), C = logits.shape(1);
    Array loss = cache_aligned(Shape{N}), probs = cache_aligned(shape_of(logits));
    {
        py::gil_scoped_release nogil;
        engine::sparse_softmax_cross_entropy_forward(loss.mutable_data(), probs.mutable_data(), logits.data(),
                                                     labels.data(), N, C);
    }
    return py::make_tuple(loss, probs);
}

Array py_sparse_softmax_cross_entropy_backward(py::handle dloss_obj, py::handle probs_obj, py::handle labels_obj) {
    const std::string where = "sparse_softmax_cross_entropy_backward";
    Array dloss = input(dloss_obj, where, "dloss"), probs = input(probs_obj, where, "probs");
    check_rows(where, probs);
    Labels labels = class_ids(where, labels_obj, probs);
    check_dloss(where, dloss, probs);
    Array dlogits = cache_aligned(shape_of(probs));
    {
        py::gil_scoped_release nogil;
        engine::sparse_softmax_cross_entropy_backward(dlogits.mutable_data(), dloss.data(), probs.data(),
                                                      labels.data(), probs.shape(0), probs.shape(1));
    }
    return dlogits;
}

Array py_sigmoid_cross_entropy_forward(py::handle logits_obj, py::handle targets_obj) {
    const std::string where = "sigmoid_cross_entropy_forward";
    Array logits = input(logits_obj, where, "logits"), targets = input(targets_obj, where, "targets");
    check_same_shape(where, "targets", targets, "logits", logits);
    Array loss = cache_aligned(shape_of(logits));
    {
        py::gil_scoped_release nogil;
        engine::sigmoid_cross_entropy_forward(loss.mutable_data(), logits.data(), targets.data(), logits.size());
    }
    return loss;
}

Array py_sigmoid_cross_entropy_backward(py::handle dloss_obj, py::handle logits_obj, py::handle targets_obj) {
    const std::string where = "sigmoid_cross_entropy_backward";
    Array dloss = input(dloss_obj, where, "dloss"), logits = input(logits_obj, where, "logits"),
          targets = input(targets_obj, where, "targets");
    check_same_shape(where, "targets", targets, "logits", logits);
    check_same_shape(where, "dloss", dloss, "logits", logits);
    Array dlogits = cache_aligned(shape_of(logits));
    {
        py::gil_scoped_release nogil;
        engine::sigmoid_cross_entropy_backward(dlogits.mutable_data(), dloss.data(), logits.data(), targets.data(),
                                               logits.size());
    }
    return dlogits;
}

// ------------------------------------------------------------------------------------------ optimizers

// A parameter or slot updated in place: it must be the caller's own float32, C-contiguous, writeable
// array (a converted copy would swallow the update), shaped like the parameter. None gives nullptr.
float* in_place(const std::string& where, const char* name, py::handle obj, const Shape& shape, bool optional) {
    if (optional && obj.is_none()) return nullptr;
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(where + ": expected " + name + " to be a float32 numpy array. Received: type(" + name +
                             ")=" + std::string(py::str(py::type::of(obj).attr("__name__"))));
    py::array arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<float>()))
        throw py::type_error(where + ": expected " + name + " to be a float32 array. Received: " + name + ".dtype=" +
                             std::string(py::str(arr.dtype())));
    if (!arr.writeable())
        throw py::type_error(where + ": expected " + name + " to be writeable (it is updated in place)");
    if (!(arr.flags() & py::array::c_style))
        throw py::type_error(where + ": expected " + name + " to be C-contiguous (it is updated in place)");
    ENGINE_CHECK(shape.empty() || shape_of(arr) == shape, where.c_str(), "expected ", name,
                 " of the parameter's shape ", shape_str(shape), ". Received: ", name, ".shape=",
                 shape_str(shape_of(arr)));
    return static_cast<float*>(arr.mutable_data());
}

// The parameter, its gradient (any float32 array of its shape) and the value count.
struct Update {
    float* param;
    Array grad;
    Shape shape;
    int64_t n;
};

Update update_args(const std::string& where, py::handle param_obj, py::handle grad_obj) {
    Update u;
    u.param = in_place(where, "param", param_obj, {}, false);
    u.shape = shape_of(py::reinterpret_borrow<py::array>(param_obj));
    u.grad = input(grad_obj, where, "grad");
    check_same_shape(where, "grad", u.grad, "param", py::reinterpret_borrow<py::array>(param_obj));
    u.n = product(u.shape.begin(), u.shape.end());
    return u;
}

// ------------------------------------------------------------------------------------------ embedding

using Ids = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// Token ids: any integer numpy array (converted to int64), every value in [0, num_rows).
Ids token_ids(const std::string& where, const py::handle& obj, int64_t num_rows) {
    const bool integer = py::isinstance<py::array>(obj) &&
                         std::string("iu").find(py::reinterpret_borrow<py::array>(obj).dtype().kind()) != std::string::npos;
    if (!integer)
        throw py::type_error(where + ": expected ids to be an integer numpy array. Received: ids.dtype=" +
                             (py::isinstance<py::array>(obj) ? std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype()))
                                                             : std::string(py::str(py::type::of(obj).attr("__name__")))));
    Ids ids = Ids::ensure(obj);
    const int64_t* p = ids.data();
    for (py::ssize_t i = 0; i < ids.size(); i++)
        ENGINE_CHECK(p[i] >= 0 && p[i] < num_rows, where.c_str(), "expected token ids in [0, ", num_rows,
                     "). Received: a token id of ", p[i]);
    return ids;
}

Array py_embedding_forward(py::handle ids_obj, py::handle table_obj) {
    const std::string where = "embedding_forward";
    Array table = input(table_obj, where, "table");
    ENGINE_CHECK(table.ndim() == 2, where.c_str(), "expected table of shape (V, D). Received: table.shape=",
                 shape_str(shape_of(table)));
    Ids ids = token_ids(where, ids_obj, table.shape(0));
    Shape out = shape_of(ids);
    out.push_back(table.shape(1));
    Array y = cache_aligned(out);
    {
        py::gil_scoped_release nogil;
        engine::embedding_forward(y.mutable_data(), table.data(), ids.data(), ids.size(), table.shape(1));
    }
    return y;
}

Array py_embedding_backward(py::handle dy_obj, py::handle ids_obj, py::object num_rows_obj) {
    const std::string where = "embedding_backward";
    Array dy = input(dy_obj, where, "dy");
    const bool integer = PyIndex_Check(num_rows_obj.ptr()) && !PyBool_Check(num_rows_obj.ptr());
    const int64_t num_rows = integer ? num_rows_obj.cast<int64_t>() : -1;
    ENGINE_CHECK(num_rows >= 0, where.c_str(), "expected num_rows to be an int >= 0. Received: num_rows=",
                 std::string(py::repr(num_rows_obj)));
    Ids ids = token_ids(where, ids_obj, num_rows);
    const Shape expected = shape_of(ids), dy_shape = shape_of(dy);
    ENGINE_CHECK(dy.ndim() >= 1 && Shape(dy_shape.begin(), dy_shape.end() - 1) == expected, where.c_str(),
                 "expected dy of shape ids.shape + (D,). Received: dy.shape=", shape_str(shape_of(dy)),
                 ", ids.shape=", shape_str(expected));
    const int64_t D = dy.shape(dy.ndim() - 1);
    Array dtable = cache_aligned(Shape{num_rows, D});
    {
        py::gil_scoped_release nogil;
        engine::embedding_backward(dtable.mutable_data(), dy.data(), ids.data(), ids.size(), num_rows, D);
    }
    return dtable;
}

// ------------------------------------------------------------------------------------------ attention

using Bytes = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// The arrays of one attention call, checked, contiguous and kept alive, and the kernel's view of them.
struct AttentionCall {
    Array q, k, v, bias;
    Bytes mask;
    engine::AttentionArgs args{};
};

// A mask or bias must be 4-D, (1|B, 1|N, 1|T, S); its strides over B, N, T are 0 where it broadcasts.
void attention_extent(const std::string& where, const char* name, const py::array& a, const engine::AttentionArgs& g,
                      int64_t* strides) {
    const Shape s = shape_of(a);
    const int64_t full[4] = {g.B, g.N, g.T, g.S};
    bool ok = s.size() == 4 && s[3] == g.S;
    for (int d = 0; ok && d < 3; d++) ok = s[d] == 1 || s[d] == full[d];
    ENGINE_CHECK(ok, where.c_str(), "expected ", name, " of shape (1|B, 1|N, 1|T, S) = (1|", g.B, ", 1|", g.N, ", 1|",
                 g.T, ", ", g.S, "). Received: ", name, ".shape=", shape_str(s));
    strides[2] = s[2] == 1 ? 0 : g.S;
    strides[1] = s[1] == 1 ? 0 : s[2] * g.S;
    strides[0] = s[0] == 1 ? 0 : s[1] * s[2] * g.S;
}

AttentionCall attention_call(const std::string& where, py::handle q_obj, py::handle k_obj, py::handle v_obj,
                             py::handle mask_obj, py::handle bias_obj, py::handle scale_obj, bool causal) {
    AttentionCall c;
    c.q = input(q_obj, where, "q");
    c.k = input(k_obj, where, "k");
    c.v = input(v_obj, where, "v");
    for (auto [name, a] : {std::pair<const char*, Array*>{"q", &c.q}, {"k", &c.k}, {"v", &c.v}})
        ENGINE_CHECK(a->ndim() == 4, where.c_str(), "expected ", name, " of rank 4, (B, T or S, heads, head size). ",
                     "Received: ", name, ".shape=", shape_str(shape_of(*a)));
    const Shape qs = shape_of(c.q), ks = shape_of(c.k), vs = shape_of(c.v);
    engine::AttentionArgs& g = c.args;
    g.B = qs[0], g.T = qs[1], g.N = qs[2], g.H = qs[3], g.S = ks[1], g.K = ks[2], g.HV = vs[3];
    ENGINE_CHECK(ks[0] == g.B && ks[3] == g.H && vs[0] == ks[0] && vs[1] == ks[1] && vs[2] == ks[2] && g.K > 0 &&
                     g.N % g.K == 0 && g.S > 0 && g.H > 0,
                 where.c_str(), "expected k (B, S, K, H) and v (B, S, K, HV) for q (B, T, N, H), with S >= 1, H >= 1 ",
                 "and N a multiple of K. Received: q.shape=", shape_str(qs), ", k.shape=", shape_str(ks),
                 ", v.shape=", shape_str(vs));
    if (!mask_obj.is_none()) {
        const bool is_bool = py::isinstance<py::array>(mask_obj) &&
                             py::reinterpret_borrow<py::array>(mask_obj).dtype().kind() == 'b';
        if (!is_bool)
            throw py::type_error(where + ": expected mask to be a bool numpy array. Received: mask.dtype=" +
                                 (py::isinstance<py::array>(mask_obj)
                                      ? std::string(py::str(py::reinterpret_borrow<py::array>(mask_obj).dtype()))
                                      : std::string(py::str(py::type::of(mask_obj).attr("__name__")))));
        attention_extent(where, "mask", py::reinterpret_borrow<py::array>(mask_obj), g, g.mask_strides);
        c.mask = Bytes::ensure(mask_obj.attr("view")(py::dtype::of<uint8_t>()));
        g.mask = c.mask.data();
    }
    if (!bias_obj.is_none()) {
        c.bias = input(bias_obj, where, "bias");
        attention_extent(where, "bias", c.bias, g, g.bias_strides);
        g.bias = c.bias.data();
    }
    g.scale = scale_obj.is_none() ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.H)))
                                  : scale_obj.cast<float>();
    g.causal = causal;
    return c;
}

using AttentionRung = void (*)(float*, float*, float*, const float*, const float*, const float*,
                               const engine::AttentionArgs&);

// An output of shape (B, N, T, S) that is computed only on request: (the array or None, its data or nullptr).
std::pair<py::object, float*> optional_scores(bool wanted, const engine::AttentionArgs& g) {
    if (!wanted) return {py::none(), nullptr};
    Array a = cache_aligned(Shape{g.B, g.N, g.T, g.S});
    float* data = a.mutable_data();
    return {a, data};
}

py::tuple py_attention_forward(const std::string& where, AttentionRung rung, py::handle q, py::handle k, py::handle v,
                               py::handle mask, py::handle bias, py::handle scale, bool is_causal, bool return_weights) {
    AttentionCall c = attention_call(where, q, k, v, mask, bias, scale, is_causal);
    const engine::AttentionArgs& g = c.args;
    Array o = cache_aligned(Shape{g.B, g.T, g.N, g.HV}), lse = cache_aligned(Shape{g.B, g.N, g.T});
    auto [weights, w] = optional_scores(return_weights, g);
    {
        py::gil_scoped_release nogil;
        rung(o.mutable_data(), lse.mutable_data(), w, c.q.data(), c.k.data(), c.v.data(), g);
    }
    return py::make_tuple(o, lse, weights);
}

py::tuple py_attention_backward(py::handle do_obj, py::handle q, py::handle k, py::handle v, py::handle o_obj,
                                py::handle lse_obj, py::handle mask, py::handle bias, py::handle scale, bool is_causal,
                                bool bias_grad) {
    const std::string where = "attention_backward";
    AttentionCall c = attention_call(where, q, k, v, mask, bias, scale, is_causal);
    const engine::AttentionArgs& g = c.args;
    Array dout = input(do_obj, where, "do"), o = input(o_obj, where, "o"), lse = input(lse_obj, where, "lse");
    for (auto [name, a, shape] : {std::tuple<const char*, Array*, Shape>{"do", &dout, Shape{g.B, g.T, g.N, g.HV}},
                                  {"o", &o, Shape{g.B, g.T, g.N, g.HV}}, {"lse", &lse, Shape{g.B, g.N, g.T}}})
        ENGINE_CHECK(shape_of(*a) == shape, where.c_str(), "expected ", name, " of shape ", shape_str(shape),
                     ". Received: ", name, ".shape=", shape_str(shape_of(*a)));
    Array dq = cache_aligned(shape_of(c.q)), dk = cache_aligned(shape_of(c.k)), dv = cache_aligned(shape_of(c.v));
    auto [dbias, db] = optional_scores(bias_grad, g);
    {
        py::gil_scoped_release nogil;
        engine::attention_backward(dq.mutable_data(), dk.mutable_data(), dv.mutable_data(), db, dout.data(), c.q.data(),
                                   c.k.data(), c.v.data(), o.data(), lse.data(), g);
    }
    return py::make_tuple(dq, dk, dv, dbias);
}

void def_attention(py::module_& m, const char* name, AttentionRung rung, const char* doc) {
    const std::string where = name;
    m.def(name, [where, rung](py::handle q, py::handle k, py::handle v, py::handle mask, py::handle bias,
                              py::handle scale, bool is_causal, bool return_weights) {
        return py_attention_forward(where, rung, q, k, v, mask, bias, scale, is_causal, return_weights);
    }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask") = py::none(), py::arg("bias") = py::none(),
          py::arg("scale") = py::none(), py::arg("is_causal") = false, py::arg("return_weights") = false, doc);
}

// ------------------------------------------------------------------------------------------ layer norm

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

py::tuple py_layer_norm_forward(py::handle x_obj, py::handle gamma_obj, py::handle beta_obj, float epsilon, bool rms) {
    const std::string where = "layer_norm_forward";
    Array x = layer_norm_input(where, x_obj);
    const int64_t D = x.shape(x.ndim() - 1), N = x.size() / D;
    const float *gamma, *beta;
    Array ga = optional_row(where, "gamma", gamma_obj, D, &gamma), ba = optional_row(where, "beta", beta_obj, D, &beta);
    const Shape rows(x.shape(), x.shape() + x.ndim() - 1);
    Array y = cache_aligned(shape_of(x)), mean = cache_aligned(rows), rstd = cache_aligned(rows);
    {
        py::gil_scoped_release nogil;
        engine::layer_norm_forward(y.mutable_data(), mean.mutable_data(), rstd.mutable_data(), x.data(), gamma, beta, N,
                                   D, epsilon, rms);
    }
    return py::make_tuple(y, mean, rstd);
}

py::tuple py_layer_norm_backward(py::handle dy_obj, py::handle x_obj, py::handle mean_obj, py::handle rstd_obj,
                                 py::handle gamma_obj, bool rms) {
    const std::string where = "layer_norm_backward";
    Array x = layer_norm_input(where, x_obj);
    const int64_t D = x.shape(x.ndim() - 1), N = x.size() / D;
    const float* gamma;
    Array ga = optional_row(where, "gamma", gamma_obj, D, &gamma);
    Array dy = input(dy_obj, where, "dy"), mean = input(mean_obj, where, "mean"), rstd = input(rstd_obj, where, "rstd");
    const Shape rows(x.shape(), x.shape() + x.ndim() - 1);
    for (auto [name, a, shape] : {std::tuple<const char*, Array*, Shape>{"dy", &dy, shape_of(x)}, {"mean", &mean, rows},
                                  {"rstd", &rstd, rows}})
        ENGINE_CHECK(shape_of(*a) == shape, where.c_str(), "expected ", name, " of shape ", shape_str(shape),
                     ". Received: ", name, ".shape=", shape_str(shape_of(*a)));
    Array dx = cache_aligned(shape_of(x)), dgamma = cache_aligned(Shape{D}), dbeta = cache_aligned(Shape{D});
    {
        py::gil_scoped_release nogil;
        engine::layer_norm_backward(dx.mutable_data(), dgamma.mutable_data(), dbeta.mutable_data(), dy.data(), x.data(),
                                    mean.data(), rstd.data(), gamma, N, D, rms);
    }
    return py::make_tuple(dx, dgamma, dbeta);
}

// ------------------------------------------------------------------------------------------ attention ladder

// Rungs of the softmax ladder (over rows of a 2-D x) and of the attention ladder, in engine._cpu.ladder.
void def_attention_ladder(py::module_& ladder) {
    using SoftmaxRung = void (*)(float*, const float*, int64_t, int64_t);
    for (auto [name, rung] : {std::pair<const char*, SoftmaxRung>{"softmax_forward_v1", engine::softmax_forward_v1},
                              {"softmax_forward_v2", engine::softmax_forward_v2}}) {
        const std::string where = name;
        ladder.def(name, [where, rung = rung](py::handle x_obj) {
            Array x = input(x_obj, where, "x");
            ENGINE_CHECK(x.ndim() == 2 && x.shape(1) > 0, where.c_str(),
                         "expected x of shape (N, D) with D >= 1. Received: x.shape=", shape_str(shape_of(x)));
            Array y = cache_aligned(shape_of(x));
            py::gil_scoped_release nogil;
            rung(y.mutable_data(), x.data(), x.shape(0), x.shape(1));
            return y;
        }, py::arg("x"), "y = softmax(x) along the last axis; x: (N, D)");
    }
    def_attention(ladder, "attention_forward_v1", engine::attention_forward_v1,
                  "naive rung: o, lse, weights = attention_forward_v1(q, k, v, ...), full score matrix per head");
    def_attention(ladder, "attention_forward_v2", engine::attention_forward,
                  "fused rung (= attention_forward): tiles and an online softmax");
}

// ------------------------------------------------------------------------------------------ rnn

// Shapes of a recurrent kernel's arguments, checked as engine/ref/rnn.py's _check does, with its messages.
struct RnnShape {
    int64_t N, T, D, U, G;
    std::string gu() const { return G > 1 ? std::to_string(G) + "U" : "U"; }
};

RnnShape rnn_shape(const std::string& where, int64_t G, const Array& x, const Array& rk) {
    ENGINE_CHECK(x.ndim() == 3, where.c_str(), "expected x of shape (N, T, D). Received: x.shape=",
                 shape_str(shape_of(x)));
    RnnShape s{x.shape(0), x.shape(1), x.shape(2), rk.ndim() == 2 ? rk.shape(0) : 0, G};
    ENGINE_CHECK(rk.ndim() == 2 && rk.shape(1) == G * rk.shape(0), where.c_str(), "expected recurrent_kernel of shape (U, ",
                 s.gu(), "). Received: recurrent_kernel.shape=", shape_str(shape_of(rk)));
    return s;
}

// A float32 array of the shape named by `dims` (letters N, T, D, U, GU or 2, space-separated).
Array rnn_input(const std::string& where, const RnnShape& s, const char* name, py::handle obj, const std::string& dims) {
    Array a = input(obj, where, name);
    Shape expected;
    std::string label = "(";
    std::istringstream words(dims);
    for (std::string d; words >> d;) {
        expected.push_back(d == "N" ? s.N : d == "T" ? s.T : d == "D" ? s.D : d == "U" ? s.U : d == "GU" ? s.G * s.U : 2);
        label += (label.size() > 1 ? ", " : "") + (d == "GU" ? s.gu() : d);
    }
    label += expected.size() == 1 ? ",)" : ")";
    ENGINE_CHECK(shape_of(a) == expected, where.c_str(), "expected ", name, " of shape ", label, " = ", shape_str(expected),
                 ". Received: ", name, ".shape=", shape_str(shape_of(a)));
    return a;
}

// mask (N, T) and recurrent_mask (N, U): None gives no array (a null pointer for the kernel).
using OptionalArray = std::optional<Array>;

std::pair<OptionalArray, OptionalArray> rnn_masks(const std::string& where, const RnnShape& s, py::handle mask,
                                                  py::handle rmask) {
    OptionalArray m, r;
    if (!mask.is_none()) m = rnn_input(where, s, "mask", mask, "N T");
    if (!rmask.is_none()) r = rnn_input(where, s, "recurrent_mask", rmask, "N U");
    return {m, r};
}

const float* data_or_null(const OptionalArray& a) { return a ? a->data() : nullptr; }

engine::RnnActivation rnn_activation(const std::string& where, const char* name, const py::object& value) {
    const std::pair<const char*, engine::RnnActivation> known[] = {
        {"linear", engine::RnnActivation::linear}, {"relu", engine::RnnActivation::relu},
        {"sigmoid", engine::RnnActivation::sigmoid}, {"tanh", engine::RnnActivation::tanh}};
    if (py::isinstance<py::str>(value))
        for (const auto& [n, code] : known)
            if (value.cast<std::string>() == n) return code;
    engine::fail(where.c_str(), "expected ", name, " in ('linear', 'relu', 'sigmoid', 'tanh'). Received: ", name, "=",
                 std::string(py::repr(value)));
}

py::tuple py_lstm_forward(py::handle x_obj, py::handle h0_obj, py::handle c0_obj, py::handle kernel_obj,
                          py::handle rk_obj, py::handle bias_obj, py::handle mask_obj, py::handle rmask_obj,
                          const py::object& activation, const py::object& recurrent_activation, bool save) {
    const std::string where = "lstm_forward";
    Array x = input(x_obj, where, "x"), rk = input(rk_obj, where, "recurrent_kernel");
    const RnnShape s = rnn_shape(where, 4, x, rk);
    Array h0 = rnn_input(where, s, "h0", h0_obj, "N U"), c0 = rnn_input(where, s, "c0", c0_obj, "N U");
    Array kernel = rnn_input(where, s, "kernel", kernel_obj, "D GU"), bias = rnn_input(where, s, "bias", bias_obj, "GU");
    auto [mask, rmask] = rnn_masks(where, s, mask_obj, rmask_obj);
    const auto act = rnn_activation(where, "activation", activation);
    const auto ract = rnn_activation(where, "recurrent_activation", recurrent_activation);
    Array y = cache_aligned(Shape{s.N, s.T, s.U});
    Array h = cache_aligned(Shape{s.N, s.U});
    Array c = cache_aligned(Shape{s.N, s.U});
    Array gates = cache_aligned(Shape{s.N, s.T, 4 * s.U});
    Array cells = cache_aligned(save ? Shape{s.N, s.T, s.U} : Shape{0});
    {
        py::gil_scoped_release nogil;
        engine::lstm_forward(y.mutable_data(), h.mutable_data(), c.mutable_data(), gates.mutable_data(),
                             save ? cells.mutable_data() : nullptr, x.data(), h0.data(), c0.data(), kernel.data(),
                             rk.data(), bias.data(), data_or_null(mask), data_or_null(rmask), s.N, s.T, s.D, s.U, act,
                             ract);
    }
    if (!save) return py::make_tuple(y, h, c);
    return py::make_tuple(y, h, c, gates, cells);
}

py::tuple py_lstm_backward(py::handle dy_obj, py::handle dh_obj, py::handle dc_obj, py::handle x_obj, py::handle h0_obj,
                           py::handle c0_obj, py::handle kernel_obj, py::handle rk_obj, py::handle mask_obj,
                           py::handle rmask_obj, py::handle y_obj, py::handle gates_obj, py::handle cells_obj,
                           const py::object& activation, const py::object& recurrent_activation) {
    const std::string where = "lstm_backward";
    Array x = input(x_obj, where, "x"), rk = input(rk_obj, where, "recurrent_kernel");
    const RnnShape s = rnn_shape(where, 4, x, rk);
    Array dy = rnn_input(where, s, "dy", dy_obj, "N T U"), dh = rnn_input(where, s, "dh", dh_obj, "N U");
    Array dc = rnn_input(where, s, "dc", dc_obj, "N U"), h0 = rnn_input(where, s, "h0", h0_obj, "N U");
    Array c0 = rnn_input(where, s, "c0", c0_obj, "N U"), kernel = rnn_input(where, s, "kernel", kernel_obj, "D GU");
    Array y = rnn_input(where, s, "y", y_obj, "N T U"), gates = rnn_input(where, s, "gates", gates_obj, "N T GU");
    Array cells = rnn_input(where, s, "cells", cells_obj, "N T U");
    auto [mask, rmask] = rnn_masks(where, s, mask_obj, rmask_obj);
    const auto act = rnn_activation(where, "activation", activation);
    const auto ract = rnn_activation(where, "recurrent_activation", recurrent_activation);
    Array dx = cache_aligned(shape_of(x));
    Array dh0 = cache_aligned(Shape{s.N, s.U});
    Array dc0 = cache_aligned(Shape{s.N, s.U});
    Array dkernel = cache_aligned(shape_of(kernel));
    Array drk = cache_aligned(shape_of(rk));
    Array dbias = cache_aligned(Shape{4 * s.U});
    {
        py::gil_scoped_release nogil;
        engine::lstm_backward(dx.mutable_data(), dh0.mutable_data(), dc0.mutable_data(), dkernel.mutable_data(),
                              drk.mutable_data(), dbias.mutable_data(), dy.data(), dh.data(), dc.data(), x.data(),
                              h0.data(), c0.data(), kernel.data(), rk.data(), data_or_null(mask), data_or_null(rmask),
                              y.data(), gates.data(), cells.data(), s.N, s.T, s.D, s.U, act, ract);
    }
    return py::make_tuple(dx, dh0, dc0, dkernel, drk, dbias);
}

py::tuple py_gru_forward(py::handle x_obj, py::handle h0_obj, py::handle kernel_obj, py::handle rk_obj,
                         py::handle bias_obj, py::handle mask_obj, py::handle rmask_obj, const py::object& activation,
                         const py::object& recurrent_activation, bool save) {
    const std::string where = "gru_forward";
    Array x = input(x_obj, where, "x"), rk = input(rk_obj, where, "recurrent_kernel");
    const RnnShape s = rnn_shape(where, 3, x, rk);
    Array h0 = rnn_input(where, s, "h0", h0_obj, "N U"), kernel = rnn_input(where, s, "kernel", kernel_obj, "D GU");
    Array bias = rnn_input(where, s, "bias", bias_obj, "2 GU");
    auto [mask, rmask] = rnn_masks(where, s, mask_obj, rmask_obj);
    const auto act = rnn_activation(where, "activation", activation);
    const auto ract = rnn_activation(where, "recurrent_activation", recurrent_activation);
    Array y = cache_aligned(Shape{s.N, s.T, s.U});
    Array h = cache_aligned(Shape{s.N, s.U});
    Array gates = cache_aligned(Shape{s.N, s.T, 3 * s.U});
    Array rech = cache_aligned(save ? Shape{s.N, s.T, s.U} : Shape{0});
    {
        py::gil_scoped_release nogil;
        engine::gru_forward(y.mutable_data(), h.mutable_data(), gates.mutable_data(),
                            save ? rech.mutable_data() : nullptr, x.data(), h0.data(), kernel.data(), rk.data(),
                            bias.data(), data_or_null(mask), data_or_null(rmask), s.N, s.T, s.D, s.U, act, ract);
    }
    if (!save) return py::make_tuple(y, h);
    return py::make_tuple(y, h, gates, rech);
}

py::tuple py_gru_backward(py::handle dy_obj, py::handle dh_obj, py::handle x_obj, py::handle h0_obj,
                          py::handle kernel_obj, py::handle rk_obj, py::handle mask_obj, py::handle rmask_obj,
                          py::handle y_obj, py::handle gates_obj, py::handle rech_obj, const py::object& activation,
                          const py::object& recurrent_activation) {
    const std::string where = "gru_backward";
    Array x = input(x_obj, where, "x"), rk = input(rk_obj, where, "recurrent_kernel");
    const RnnShape s = rnn_shape(where, 3, x, rk);
    Array dy = rnn_input(where, s, "dy", dy_obj, "N T U"), dh = rnn_input(where, s, "dh", dh_obj, "N U");
    Array h0 = rnn_input(where, s, "h0", h0_obj, "N U"), kernel = rnn_input(where, s, "kernel", kernel_obj, "D GU");
    Array y = rnn_input(where, s, "y", y_obj, "N T U"), gates = rnn_input(where, s, "gates", gates_obj, "N T GU");
    Array rech = rnn_input(where, s, "recurrent_h", rech_obj, "N T U");
    auto [mask, rmask] = rnn_masks(where, s, mask_obj, rmask_obj);
    const auto act = rnn_activation(where, "activation", activation);
    const auto ract = rnn_activation(where, "recurrent_activation", recurrent_activation);
    Array dx = cache_aligned(shape_of(x));
    Array dh0 = cache_aligned(Shape{s.N, s.U});
    Array dkernel = cache_aligned(shape_of(kernel));
    Array drk = cache_aligned(shape_of(rk));
    Array dbias = cache_aligned(Shape{2, 3 * s.U});
    {
        py::gil_scoped_release nogil;
        engine::gru_backward(dx.mutable_data(), dh0.mutable_data(), dkernel.mutable_data(), drk.mutable_data(),
                             dbias.mutable_data(), dy.data(), dh.data(), x.data(), h0.data(), kernel.data(), rk.data(),
                             data_or_null(mask), data_or_null(rmask), y.data(), gates.data(), rech.data(), s.N, s.T,
                             s.D, s.U, act, ract);
    }
    return py::make_tuple(dx, dh0, dkernel, drk, dbias);
}

py::tuple py_simple_rnn_forward(py::handle x_obj, py::handle h0_obj, py::handle kernel_obj, py::handle rk_obj,
                                py::handle bias_obj, py::handle mask_obj, py::handle rmask_obj,
                                const py::object& activation) {
    const std::string where = "simple_rnn_forward";
    Array x = input(x_obj, where, "x"), rk = input(rk_obj, where, "recurrent_kernel");
    const RnnShape s = rnn_shape(where, 1, x, rk);
    Array h0 = rnn_input(where, s, "h0", h0_obj, "N U"), kernel = rnn_input(where, s, "kernel", kernel_obj, "D GU");
    Array bias = rnn_input(where, s, "bias", bias_obj, "GU");
    auto [mask, rmask] = rnn_masks(where, s, mask_obj, rmask_obj);
    const auto act = rnn_activation(where, "activation", activation);
    Array y = cache_aligned(Shape{s.N, s.T, s.U});
    Array h = cache_aligned(Shape{s.N, s.U});
    {
        py::gil_scoped_release nogil;
        engine::simple_rnn_forward(y.mutable_data(), h.mutable_data(), x.data(), h0.data(), kernel.data(), rk.data(),
                                   bias.data(), data_or_null(mask), data_or_null(rmask), s.N, s.T, s.D, s.U, act);
    }
    return py::make_tuple(y, h);
}

py::tuple py_simple_rnn_backward(py::handle dy_obj, py::handle dh_obj, py::handle x_obj, py::handle h0_obj,
                                 py::handle kernel_obj, py::handle rk_obj, py::handle mask_obj, py::handle rmask_obj,
                                 py::handle y_obj, const py::object& activation) {
    const std::string where = "simple_rnn_backward";
    Array x = input(x_obj, where, "x"), rk = input(rk_obj, where, "recurrent_kernel");
    const RnnShape s = rnn_shape(where, 1, x, rk);
    Array dy = rnn_input(where, s, "dy", dy_obj, "N T U"), dh = rnn_input(where, s, "dh", dh_obj, "N U");
    Array h0 = rnn_input(where, s, "h0", h0_obj, "N U"), kernel = rnn_input(where, s, "kernel", kernel_obj, "D GU");
    Array y = rnn_input(where, s, "y", y_obj, "N T U");
    auto [mask, rmask] = rnn_masks(where, s, mask_obj, rmask_obj);
    const auto act = rnn_activation(where, "activation", activation);
    Array dx = cache_aligned(shape_of(x));
    Array dh0 = cache_aligned(Shape{s.N, s.U});
    Array dkernel = cache_aligned(shape_of(kernel));
    Array drk = cache_aligned(shape_of(rk));
    Array dbias = cache_aligned(Shape{s.U});
    {
        py::gil_scoped_release nogil;
        engine::simple_rnn_backward(dx.mutable_data(), dh0.mutable_data(), dkernel.mutable_data(), drk.mutable_data(),
                                    dbias.mutable_data(), dy.data(), dh.data(), x.data(), h0.data(), kernel.data(),
                                    rk.data(), data_or_null(mask), data_or_null(rmask), y.data(), s.N, s.T, s.D, s.U, act);
    }
    return py::make_tuple(dx, dh0, dkernel, drk, dbias);
}

// ------------------------------------------------------------------------------------------ conv2d, pool2d

// A positive int or a pair of positive ints (strides, dilation_rate, pool_size), as in engine/ref/conv2d.py.
std::pair<int64_t, int64_t> int_pair(const std::string& where, const char* name, const py::handle& obj) {
    const auto bad = [&] {
        return std::invalid_argument(where + ": expected " + name + " to be a positive int or a pair of positive ints. "
                                     "Received: " + name + "=" + std::string(py::repr(obj)));
    };
    const auto positive = [&](const py::handle& v) {
        if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr())) throw bad();
        const int64_t k = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr())).cast<int64_t>();
        if (k <= 0) throw bad();
        return k;
    };
    if (PyIndex_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
        const int64_t k = positive(obj);
        return {k, k};
    }
    if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj) || py::len(obj) != 2) throw bad();
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    return {positive(seq[0]), positive(seq[1])};
}

bool channels_first(const std::string& where, const py::handle& data_format) {
    if (py::isinstance<py::str>(data_format)) {
        const std::string s = data_format.cast<std::string>();
        if (s == "channels_last" || s == "channels_first") return s == "channels_first";
    }
    throw std::invalid_argument(where + ": expected data_format to be 'channels_last' or 'channels_first'. Received: "
                                "data_format=" + std::string(py::repr(data_format)));
}

void check_image(const std::string& where, const py::array& x, bool first) {
    ENGINE_CHECK(x.ndim() == 4, where.c_str(), "expected x of shape ", first ? "(N, C, H, W)" : "(N, H, W, C)",
                 " for data_format='", first ? "channels_first" : "channels_last", "'. Received: x.shape=",
                 shape_str(shape_of(x)));
}

// (before, after) zero padding along each axis: 'valid', 'same' or ((top, bottom), (left, right)).
struct Padding { std::string mode; int64_t top = 0, bottom = 0, left = 0, right = 0; };

Padding padding_arg(const std::string& where, const py::handle& obj) {
    const auto bad = [&] {
        return std::invalid_argument(where + ": expected padding to be 'valid', 'same' or ((top, bottom), (left, right)) "
                                     "of non-negative ints. Received: padding=" + std::string(py::repr(obj)));
    };
    Padding p;
    if (py::isinstance<py::str>(obj)) {
        p.mode = obj.cast<std::string>();
        if (p.mode != "valid" && p.mode != "same") throw bad();
        return p;
    }
    std::vector<int64_t> values;
    if (!py::isinstance<py::sequence>(obj) || py::len(obj) != 2) throw bad();
    for (const auto& pair : obj) {
        if (py::isinstance<py::str>(pair) || !py::isinstance<py::sequence>(pair) || py::len(pair) != 2) throw bad();
        for (const auto& v : pair) {
            if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr())) throw bad();
            values.push_back(py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr())).cast<int64_t>());
            if (values.back() < 0) throw bad();
        }
    }
    p.mode = "explicit";
    p.top = values[0], p.bottom = values[1], p.left = values[2], p.right = values[3];
    return p;
}

// (out, pad_before) along one axis, as axis_geometry in engine/ref/conv2d.py.
std::pair<int64_t, int64_t> axis_geometry(int64_t size, int64_t k, int64_t stride, int64_t dilation, const Padding& p,
                                          bool rows, int64_t* after) {
    const int64_t span = (k - 1) * dilation + 1;
    if (p.mode == "same") {
        const int64_t out = (size + stride - 1) / stride;
        const int64_t total = std::max<int64_t>((out - 1) * stride + span - size, 0);
        *after = total - total / 2;
        return {out, total / 2};
    }
    const int64_t before = rows ? p.top : p.left;
    *after = rows ? p.bottom : p.right;
    return {(size + before + *after - span) / stride + 1, before};
}

// The Window2d of an image x (already checked to be 4-D) for a window of KH x KW: argument checks, 'same'
// arithmetic and the window-fits check, with the reference's words. NCHW is described as NHWC.
engine::Window2d window_geometry(const std::string& where, const py::array& x, bool first, int64_t KH, int64_t KW,
                                 const py::handle& strides, const py::handle& padding, const py::handle& dilation,
                                 const char* what) {
    const auto [SH, SW] = int_pair(where, "strides", strides);
    const auto [DH, DW] = int_pair(where, "dilation_rate", dilation);
    const Padding p = padding_arg(where, padding);
    engine::Window2d g{};
    g.N = x.shape(0);
    g.C = first ? x.shape(1) : x.shape(3);
    g.H = first ? x.shape(2) : x.shape(1);
    g.W = first ? x.shape(3) : x.shape(2);
    g.KH = KH, g.KW = KW, g.SH = SH, g.SW = SW, g.DH = DH, g.DW = DW;
    int64_t bottom = 0, right = 0;
    std::tie(g.OH, g.pad_top) = axis_geometry(g.H, KH, SH, DH, p, true, &bottom);
    std::tie(g.OW, g.pad_left) = axis_geometry(g.W, KW, SW, DW, p, false, &right);
    const int64_t span_h = (KH - 1) * DH + 1, span_w = (KW - 1) * DW + 1;
    const int64_t Hp = g.H + g.pad_top + bottom, Wp = g.W + g.pad_left + right;
    ENGINE_CHECK(span_h <= Hp && span_w <= Wp, where.c_str(), "the ", what, " window (", span_h, ", ", span_w,
                 ") (dilation included) is larger than the padded input (", Hp, ", ", Wp, "). Received: x.shape=",
                 shape_str(shape_of(x)), ", ", what, "_size=(", KH, ", ", KW, "), padding=",
                 std::string(py::repr(padding)), ", dilation_rate=", std::string(py::repr(dilation)));
    return g;
}

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

Array py_conv2d_forward(const std::string& where, ConvRung rung, py::handle x_obj, py::handle k_obj,
                        py::handle bias_obj, const py::object& strides, const py::object& padding,
                        const py::object& dilation, const py::object& data_format) {
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
}

py::tuple py_conv2d_backward(py::handle dy_obj, py::handle x_obj, py::handle k_obj, const py::object& strides,
                             const py::object& padding, const py::object& dilation, const py::object& data_format,
                             bool input_grad) {
    const std::string where = "conv2d_backward";
    ConvArgs a = conv_args(where, x_obj, k_obj, strides, padding, dilation, data_format);
    const engine::Window2d& g = a.g;
    Array dy = input(dy_obj, where, "dy");
    const Shape expected = a.first ? Shape{g.N, a.F, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, a.F};
    ENGINE_CHECK(shape_of(dy) == expected, where.c_str(), "expected dy of shape ", shape_str(expected),
                 " (the forward output). Received: dy.shape=", shape_str(shape_of(dy)));
    Array xs = nhwc_of(a.x, a.first), dys = nhwc_of(dy, a.first);
    Array dx = cache_aligned(input_grad ? Shape{g.N, g.H, g.W, g.C} : Shape{0});
    Array dkernel = cache_aligned(shape_of(a.kernel)), dbias = cache_aligned(Shape{a.F});
    {
        py::gil_scoped_release nogil;
        engine::conv2d_backward(input_grad ? dx.mutable_data() : nullptr, dkernel.mutable_data(), dbias.mutable_data(),
                                dys.data(), xs.data(), a.kernel.data(), g, a.F);
    }
    return py::make_tuple(input_grad ? py::object(layout_of(dx, a.first)) : py::object(py::none()), dkernel, dbias);
}

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
    ENGINE_CHECK(shape_of(dy) == a.out, where.c_str(), "expected dy of shape ", shape_str(a.out),
                 " (the forward output). Received: dy.shape=", shape_str(shape_of(dy)));
    return dy;
}

using Argmax = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

py::tuple py_maxpool2d_forward(py::handle x_obj, const py::object& pool_size, const py::object& strides,
                               const py::object& padding, const py::object& data_format) {
    PoolArgs a = pool_args("maxpool2d_forward", x_obj, pool_size, strides, padding, data_format);
    Array y = cache_aligned(a.out);
    Argmax argmax(a.out);
    {
        py::gil_scoped_release nogil;
        engine::maxpool2d_forward(y.mutable_data(), argmax.mutable_data(), a.x.data(), a.g);
    }
    return py::make_tuple(y, argmax);
}

Array py_maxpool2d_backward(py::handle dy_obj, py::handle x_obj, py::handle argmax_obj, const py::object& pool_size,
                            const py::object& strides, const py::object& padding, const py::object& data_format) {
    const std::string where = "maxpool2d_backward";
    PoolArgs a = pool_args(where, x_obj, pool_size, strides, padding, data_format);
    Array dy = input(dy_obj, where, "dy");
    const bool is_int32 = py::isinstance<py::array>(argmax_obj) &&
                          py::reinterpret_borrow<py::array>(argmax_obj).dtype().is(py::dtype::of<int32_t>());
    if (!is_int32)
        throw py::type_error(where + ": expected argmax to be the int32 array from maxpool2d_forward. Received: argmax.dtype=" +
                             (py::isinstance<py::array>(argmax_obj)
                                  ? std::string(py::str(py::reinterpret_borrow<py::array>(argmax_obj).dtype()))
                                  : std::string(py::str(py::type::of(argmax_obj).attr("__name__")))));
    Argmax argmax = Argmax::ensure(argmax_obj);
    pool_dy(where, dy, a);
    ENGINE_CHECK(shape_of(argmax) == a.out, where.c_str(), "expected argmax of shape ", shape_str(a.out),
                 " (the forward output). Received: argmax.shape=", shape_str(shape_of(argmax)));
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
                     "pooling window, as maxpool2d_forward returns it. Received: ", outside, " value(s) outside, the ",
                     "first ", index[first], " at flat index ", first);
    }
    return dx;
}

Array py_avgpool2d_forward(py::handle x_obj, const py::object& pool_size, const py::object& strides,
                           const py::object& padding, const py::object& data_format) {
    PoolArgs a = pool_args("avgpool2d_forward", x_obj, pool_size, strides, padding, data_format);
    Array y = cache_aligned(a.out);
    {
        py::gil_scoped_release nogil;
        engine::avgpool2d_forward(y.mutable_data(), a.x.data(), a.g);
    }
    return y;
}

Array py_avgpool2d_backward(py::handle dy_obj, py::handle x_obj, const py::object& pool_size, const py::object& strides,
                            const py::object& padding, const py::object& data_format) {
    const std::string where = "avgpool2d_backward";
    PoolArgs a = pool_args(where, x_obj, pool_size, strides, padding, data_format);
    Array dy = pool_dy(where, dy_obj, a);
    Array dx = cache_aligned(shape_of(a.x));
    {
        py::gil_scoped_release nogil;
        engine::avgpool2d_backward(dx.mutable_data(), dy.data(), a.g);
    }
    return dx;
}

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
                 shape_str(keepdims ? v.keep : v.out), " (the forward output). Received: dy.shape=",
                 shape_str(shape_of(dy)));
    return dy;
}

Array py_global_pool2d_forward(const std::string& where, bool is_max, py::handle x_obj, const py::object& data_format,
                               bool keepdims) {
    Array x = input(x_obj, where, "x");
    const GlobalView v = global_view(where, x, data_format);
    ENGINE_CHECK(!is_max || v.R > 0 || v.A * v.B == 0, where.c_str(), "expected images of at least one pixel (the max "
                 "of nothing is undefined). Received: x.shape=", shape_str(shape_of(x)));
    Array y = cache_aligned(keepdims ? v.keep : v.out);
    {
        py::gil_scoped_release nogil;
        (is_max ? engine::max_forward : engine::mean_forward)(y.mutable_data(), x.data(), v.A, v.R, v.B);
    }
    return y;
}

Array py_global_avgpool2d_backward(py::handle dy_obj, py::handle x_obj, const py::object& data_format, bool keepdims) {
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
}

Array py_global_maxpool2d_backward(py::handle dy_obj, py::handle x_obj, py::handle y_obj, const py::object& data_format,
                                   bool keepdims) {
    const std::string where = "global_maxpool2d_backward";
    Array x = input(x_obj, where, "x");
    const GlobalView v = global_view(where, x, data_format);
    Array dy = global_dy(where, dy_obj, v, keepdims), y = input(y_obj, where, "y");
    ENGINE_CHECK(y.size() == v.A * v.B, where.c_str(), "expected y of shape ", shape_str(keepdims ? v.keep : v.out),
                 " (the forward output). Received: y.shape=", shape_str(shape_of(y)));
    Array dx = cache_aligned(shape_of(x));
    {
        py::gil_scoped_release nogil;
        engine::max_backward(dx.mutable_data(), dy.data(), x.data(), y.data(), v.A, v.R, v.B);
    }
    return dx;
}

// ------------------------------------------------------------------------------------------ batchnorm

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

py::tuple py_batchnorm_forward(py::handle x_obj, py::handle gamma_obj, py::handle beta_obj, py::handle mm_obj,
                               py::handle mv_obj, double momentum, double epsilon, bool training, const py::object& axis) {
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
        engine::batchnorm_forward(y.mutable_data(), mean.mutable_data(), inv_std.mutable_data(), moving_mean, moving_var,
                                  x.data(), gamma.data(), beta.data(), v.A, v.D, v.B, momentum, epsilon, training);
    }
    return py::make_tuple(y, mean, inv_std);
}

py::tuple py_batchnorm_backward(py::handle dy_obj, py::handle x_obj, py::handle gamma_obj, py::handle mean_obj,
                                py::handle inv_std_obj, bool training, const py::object& axis) {
    const std::string where = "batchnorm_backward";
    Array dy = input(dy_obj, where, "dy"), x = input(x_obj, where, "x");
    check_same_shape(where, "dy", dy, "x", x);
    const AxisView v = norm_view(where, x, axis);
    Array gamma = channel_array(where, "gamma", gamma_obj, v.D), mean = channel_array(where, "mean", mean_obj, v.D);
    Array inv_std = channel_array(where, "inv_std", inv_std_obj, v.D);
    Array dx = cache_aligned(shape_of(x)), dgamma = cache_aligned(Shape{v.D}), dbeta = cache_aligned(Shape{v.D});
    {
        py::gil_scoped_release nogil;
        engine::batchnorm_backward(dx.mutable_data(), dgamma.mutable_data(), dbeta.mutable_data(), dy.data(), x.data(),
                                   gamma.data(), mean.data(), inv_std.data(), v.A, v.D, v.B, training);
    }
    return py::make_tuple(dx, dgamma, dbeta);
}

}  // namespace

// ------------------------------------------------------------------------------------------ module

PYBIND11_MODULE(_cpu, m) {
    m.doc() = "C++/OpenMP kernels; each mirrors engine.ref by name, arguments and return values.";
    using py::arg;

    m.def("set_num_threads", &engine::set_num_threads, arg("n"), "Set the OpenMP team size for every kernel.");
    m.def("get_num_threads", &engine::get_num_threads, "The OpenMP team size the kernels use.");
    m.def("keep_freed_memory", &engine::keep_freed_memory, arg("trim_threshold_bytes"),
          "Serve blocks up to 32 MiB from the heap and keep up to trim_threshold_bytes of freed heap mapped "
          "(glibc's mallopt); False where the C library is not glibc.");
    m.def("simd_detected", [] { return engine::simd_name(engine::simd_detected()); },
          "The widest SIMD path this CPU supports: 'avx512', 'avx2' or 'portable'.");
    m.def("simd_path", [] { return engine::simd_name(engine::simd_active()); },
          "The SIMD path the kernels use now.");
    m.def("set_simd", [](const std::string& name) {
        for (auto path : {engine::Simd::portable, engine::Simd::avx2, engine::Simd::avx512})
            if (name == engine::simd_name(path)) return engine::set_simd(path);
        engine::fail("set_simd", "expected one of 'avx512', 'avx2', 'portable'. Received: path='", name, "'");
    }, arg("path"), "Force a SIMD path no wider than the CPU's (for tests and teaching).");

    m.def("matmul_forward", &py_matmul_forward, arg("a"), arg("b"), arg("trans_a") = false, arg("trans_b") = false,
          "c = op(a) @ op(b); a: (..., M, K) or (..., K, M) if trans_a; b: (..., K, N) or (..., N, K) if trans_b");
    m.def("matmul_backward", &py_matmul_backward, arg("dc"), arg("a"), arg("b"), arg("trans_a") = false,
          arg("trans_b") = false, "da, db = matmul_backward(dc, a, b, trans_a, trans_b)");
    m.def("dense_forward", &py_dense_forward, arg("x"), arg("w"), arg("bias") = py::none(),
          arg("activation") = "linear", arg("negative_slope") = 0.2f, arg("alpha") = 1.0f,
          "y, z = dense_forward(x, w, bias, activation): y = act(x @ w + bias); z = x @ w + bias (or y itself when "
          "the activation's derivative can be read from y)");
    m.def("dense_backward", &py_dense_backward, arg("dy"), arg("x"), arg("w"), arg("z"), arg("y"),
          arg("activation") = "linear", arg("use_bias") = true, arg("negative_slope") = 0.2f, arg("alpha") = 1.0f,
          "dx, dw, dbias = dense_backward(dy, x, w, z, y, activation, use_bias)");
    m.def("bias_add_forward", &py_bias_add_forward, arg("x"), arg("bias"), "y = x + bias; x: (..., D), bias: (D,)");
    m.def("bias_add_backward", &py_bias_add_backward, arg("dy"), "dx, dbias = bias_add_backward(dy)");

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

    m.def("softmax_forward", [](py::handle x, const py::object& axis) {
        return run_axis_forward("softmax_forward", engine::softmax_forward, x, axis);
    }, arg("x"), arg("axis") = py::int_(-1), "y = exp(x - max) / sum(exp(x - max)) along axis");
    m.def("softmax_backward", [](py::handle dy, py::handle y, const py::object& axis) {
        return run_axis_backward("softmax_backward", engine::softmax_backward, dy, y, axis);
    }, arg("dy"), arg("y"), arg("axis") = py::int_(-1), "dx = y * (dy - sum(dy * y)) along axis");
    m.def("log_softmax_forward", [](py::handle x, const py::object& axis) {
        return run_axis_forward("log_softmax_forward", engine::log_softmax_forward, x, axis);
    }, arg("x"), arg("axis") = py::int_(-1), "y = x - max - log(sum(exp(x - max))) along axis");
    m.def("log_softmax_backward", [](py::handle dy, py::handle y, const py::object& axis) {
        return run_axis_backward("log_softmax_backward", engine::log_softmax_backward, dy, y, axis);
    }, arg("dy"), arg("y"), arg("axis") = py::int_(-1), "dx = dy - exp(y) * sum(dy) along axis");

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
    m.def("max_forward", &py_max_forward, arg("x"), arg("axis") = py::none(), arg("keepdims") = false,
          "y = x.max(axis, keepdims); NaN propagates");
    m.def("max_backward", [](py::handle dy, py::handle x, py::handle y, const py::object& axis, bool keepdims) {
        return py_max_backward(dy, x, y, axis);
    }, arg("dy"), arg("x"), arg("y"), arg("axis") = py::none(), arg("keepdims") = false,
          "dx = dy / k at the k entries equal to the max, 0 elsewhere");

    m.def("softmax_cross_entropy_forward", &py_softmax_cross_entropy_forward, arg("logits"), arg("targets"),
          "loss, probs = softmax_cross_entropy_forward(logits, targets); logits, targets: (N, C)");
    m.def("softmax_cross_entropy_backward", &py_softmax_cross_entropy_backward, arg("dloss"), arg("probs"),
          arg("targets"), "dlogits = dloss[:, None] * (probs * sum(targets) - targets)");
    m.def("sparse_softmax_cross_entropy_forward", &py_sparse_softmax_cross_entropy_forward, arg("logits"),
          arg("labels"), "loss, probs = sparse_softmax_cross_entropy_forward(logits, labels); labels: (N,) int64");
    m.def("sparse_softmax_cross_entropy_backward", &py_sparse_softmax_cross_entropy_backward, arg("dloss"),
          arg("probs"), arg("labels"), "dlogits = dloss[:, None] * (probs - onehot(labels))");
    m.def("sigmoid_cross_entropy_forward", &py_sigmoid_cross_entropy_forward, arg("logits"), arg("targets"),
          "loss = max(z, 0) - z t + log1p(exp(-|z|)), element-wise");
    m.def("sigmoid_cross_entropy_backward", &py_sigmoid_cross_entropy_backward, arg("dloss"), arg("logits"),
          arg("targets"), "dlogits = dloss * (sigmoid(z) - t)");

    m.def("sgd_update", [](py::handle param, py::handle grad, py::handle velocity, double lr, double momentum,
                           bool nesterov, double weight_decay) {
        const std::string where = "sgd_update";
        Update u = update_args(where, param, grad);
        float* vel = in_place(where, "velocity", velocity, u.shape, true);
        py::gil_scoped_release nogil;
        engine::sgd_update(u.param, u.grad.data(), vel, u.n, lr, momentum, nesterov, weight_decay);
    }, arg("param"), arg("grad"), arg("velocity"), arg("lr"), arg("momentum") = 0.0, arg("nesterov") = false,
          arg("weight_decay") = 0.0, "In place: param -= lr * grad, or the momentum / Nesterov form");
    m.def("adam_update", [](py::handle param, py::handle grad, py::handle m_obj, py::handle v_obj, py::handle v_hat_obj,
                            double lr, double beta_1, double beta_2, double epsilon, int64_t step, double weight_decay) {
        const std::string where = "adam_update";
        Update u = update_args(where, param, grad);
        float* m_ = in_place(where, "m", m_obj, u.shape, false);
        float* v_ = in_place(where, "v", v_obj, u.shape, false);
        float* v_hat = in_place(where, "v_hat", v_hat_obj, u.shape, true);
        ENGINE_CHECK(step >= 1, where.c_str(), "expected step >= 1 (updates count from 1). Received: step=", step);
        py::gil_scoped_release nogil;
        engine::adam_update(u.param, u.grad.data(), m_, v_, v_hat, u.n, lr, beta_1, beta_2, epsilon, step, weight_decay);
    }, arg("param"), arg("grad"), arg("m"), arg("v"), arg("v_hat"), arg("lr"), arg("beta_1"), arg("beta_2"),
          arg("epsilon"), arg("step"), arg("weight_decay") = 0.0, "In place: one Adam (or AMSGrad) step");
    m.def("rmsprop_update", [](py::handle param, py::handle grad, py::handle velocity, py::handle average_grad,
                               py::handle momentum_buf, double lr, double rho, double momentum, double epsilon,
                               double weight_decay) {
        const std::string where = "rmsprop_update";
        Update u = update_args(where, param, grad);
        float* vel = in_place(where, "velocity", velocity, u.shape, false);
        float* avg = in_place(where, "average_grad", average_grad, u.shape, true);
        float* mom = in_place(where, "momentum_buf", momentum_buf, u.shape, true);
        py::gil_scoped_release nogil;
        engine::rmsprop_update(u.param, u.grad.data(), vel, avg, mom, u.n, lr, rho, momentum, epsilon, weight_decay);
    }, arg("param"), arg("grad"), arg("velocity"), arg("average_grad"), arg("momentum_buf"), arg("lr"), arg("rho"),
          arg("momentum"), arg("epsilon"), arg("weight_decay") = 0.0, "In place: one RMSprop step");
    m.def("adagrad_update", [](py::handle param, py::handle grad, py::handle accumulator, double lr, double epsilon,
                               double weight_decay) {
        const std::string where = "adagrad_update";
        Update u = update_args(where, param, grad);
        float* acc = in_place(where, "accumulator", accumulator, u.shape, false);
        py::gil_scoped_release nogil;
        engine::adagrad_update(u.param, u.grad.data(), acc, u.n, lr, epsilon, weight_decay);
    }, arg("param"), arg("grad"), arg("accumulator"), arg("lr"), arg("epsilon"), arg("weight_decay") = 0.0,
          "In place: one Adagrad step");

    m.def("embedding_forward", &py_embedding_forward, arg("ids"), arg("table"),
          "y = table[ids]; ids: (...) integers in [0, V), table: (V, D) -> y: (..., D)");
    m.def("embedding_backward", &py_embedding_backward, arg("dy"), arg("ids"), arg("num_rows"),
          "dtable (V, D): each dy row added at its id (repeats accumulate, in order)");

    def_attention(m, "attention_forward", engine::attention_forward,
                  "o, lse, weights = attention_forward(q, k, v, mask=None, bias=None, scale=None, is_causal=False, "
                  "return_weights=False); q (B, T, N, H), k (B, S, K, H), v (B, S, K, HV)");
    m.def("attention_backward", &py_attention_backward, arg("do"), arg("q"), arg("k"), arg("v"), arg("o"), arg("lse"),
          arg("mask") = py::none(), arg("bias") = py::none(), arg("scale") = py::none(), arg("is_causal") = false,
          arg("bias_grad") = false, "dq, dk, dv, dbias = attention_backward(do, q, k, v, o, lse, ...)");
    m.def("layer_norm_forward", &py_layer_norm_forward, arg("x"), arg("gamma") = py::none(), arg("beta") = py::none(),
          arg("epsilon") = 1e-3f, arg("rms_scaling") = false,
          "y, mean, rstd = layer_norm_forward(x, gamma, beta, epsilon, rms_scaling); over the last axis of x");
    m.def("layer_norm_backward", &py_layer_norm_backward, arg("dy"), arg("x"), arg("mean"), arg("rstd"),
          arg("gamma") = py::none(), arg("rms_scaling") = false,
          "dx, dgamma, dbeta = layer_norm_backward(dy, x, mean, rstd, gamma, rms_scaling)");
    m.def("lstm_forward", &py_lstm_forward, arg("x"), arg("h0"), arg("c0"), arg("kernel"), arg("recurrent_kernel"),
          arg("bias"), arg("mask") = py::none(), arg("recurrent_mask") = py::none(), arg("activation") = "tanh",
          arg("recurrent_activation") = "sigmoid", arg("save") = true,
          "y, h, c, gates, cells = lstm_forward(x, h0, c0, kernel, ...); save=False: y, h, c only (inference)");
    m.def("lstm_backward", &py_lstm_backward, arg("dy"), arg("dh"), arg("dc"), arg("x"), arg("h0"), arg("c0"),
          arg("kernel"), arg("recurrent_kernel"), arg("mask"), arg("recurrent_mask"), arg("y"), arg("gates"),
          arg("cells"), arg("activation") = "tanh", arg("recurrent_activation") = "sigmoid",
          "dx, dh0, dc0, dkernel, drecurrent_kernel, dbias = lstm_backward(...)");
    m.def("gru_forward", &py_gru_forward, arg("x"), arg("h0"), arg("kernel"), arg("recurrent_kernel"), arg("bias"),
          arg("mask") = py::none(), arg("recurrent_mask") = py::none(), arg("activation") = "tanh",
          arg("recurrent_activation") = "sigmoid", arg("save") = true,
          "y, h, gates, recurrent_h = gru_forward(x, h0, kernel, ...); save=False: y, h only (inference)");
    m.def("gru_backward", &py_gru_backward, arg("dy"), arg("dh"), arg("x"), arg("h0"), arg("kernel"),
          arg("recurrent_kernel"), arg("mask"), arg("recurrent_mask"), arg("y"), arg("gates"), arg("recurrent_h"),
          arg("activation") = "tanh", arg("recurrent_activation") = "sigmoid",
          "dx, dh0, dkernel, drecurrent_kernel, dbias = gru_backward(...)");
    m.def("simple_rnn_forward", &py_simple_rnn_forward, arg("x"), arg("h0"), arg("kernel"), arg("recurrent_kernel"),
          arg("bias"), arg("mask") = py::none(), arg("recurrent_mask") = py::none(), arg("activation") = "tanh",
          "y, h = simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, ...)");
    m.def("simple_rnn_backward", &py_simple_rnn_backward, arg("dy"), arg("dh"), arg("x"), arg("h0"), arg("kernel"),
          arg("recurrent_kernel"), arg("mask"), arg("recurrent_mask"), arg("y"), arg("activation") = "tanh",
          "dx, dh0, dkernel, drecurrent_kernel, dbias = simple_rnn_backward(...)");

    m.def("conv2d_forward", [](py::handle x, py::handle kernel, py::handle bias, const py::object& strides,
                               const py::object& padding, const py::object& dilation_rate, const py::object& data_format) {
        return py_conv2d_forward("conv2d_forward", engine::conv2d_forward, x, kernel, bias, strides, padding,
                                 dilation_rate, data_format);
    }, arg("x"), arg("kernel"), arg("bias") = py::none(), arg("strides") = py::make_tuple(1, 1),
          arg("padding") = "valid", arg("dilation_rate") = py::make_tuple(1, 1), arg("data_format") = "channels_last",
          "y = conv2d(x, kernel) + bias by im2col + GEMM; x: (N, H, W, C) or (N, C, H, W), kernel: (KH, KW, C, F)");
    m.def("conv2d_backward", &py_conv2d_backward, arg("dy"), arg("x"), arg("kernel"), arg("strides") = py::make_tuple(1, 1),
          arg("padding") = "valid", arg("dilation_rate") = py::make_tuple(1, 1), arg("data_format") = "channels_last",
          arg("input_grad") = true,
          "dx, dkernel, dbias = conv2d_backward(dy, x, kernel, ...): col2im for dx (None if not input_grad), one GEMM "
          "for dkernel");
    m.def("maxpool2d_forward", &py_maxpool2d_forward, arg("x"), arg("pool_size") = py::make_tuple(2, 2),
          arg("strides") = py::none(), arg("padding") = "valid", arg("data_format") = "channels_last",
          "y, argmax = maxpool2d_forward(x, ...); argmax: int32 positions h * W + w (the first maximum)");
    m.def("maxpool2d_backward", &py_maxpool2d_backward, arg("dy"), arg("x"), arg("argmax"),
          arg("pool_size") = py::make_tuple(2, 2), arg("strides") = py::none(), arg("padding") = "valid",
          arg("data_format") = "channels_last", "dx: each dy added at its argmax");
    m.def("avgpool2d_forward", &py_avgpool2d_forward, arg("x"), arg("pool_size") = py::make_tuple(2, 2),
          arg("strides") = py::none(), arg("padding") = "valid", arg("data_format") = "channels_last",
          "y = mean over the real pixels of each window");
    m.def("avgpool2d_backward", &py_avgpool2d_backward, arg("dy"), arg("x"), arg("pool_size") = py::make_tuple(2, 2),
          arg("strides") = py::none(), arg("padding") = "valid", arg("data_format") = "channels_last",
          "dx: each dy spread evenly over the real pixels of its window");
    m.def("global_avgpool2d_forward", [](py::handle x, const py::object& data_format, bool keepdims) {
        return py_global_pool2d_forward("global_avgpool2d_forward", false, x, data_format, keepdims);
    }, arg("x"), arg("data_format") = "channels_last", arg("keepdims") = false, "y = mean over H and W (reduce kernels)");
    m.def("global_avgpool2d_backward", &py_global_avgpool2d_backward, arg("dy"), arg("x"),
          arg("data_format") = "channels_last", arg("keepdims") = false, "dx = dy / (H * W) at every pixel");
    m.def("global_maxpool2d_forward", [](py::handle x, const py::object& data_format, bool keepdims) {
        return py_global_pool2d_forward("global_maxpool2d_forward", true, x, data_format, keepdims);
    }, arg("x"), arg("data_format") = "channels_last", arg("keepdims") = false, "y = max over H and W (reduce kernels)");
    m.def("global_maxpool2d_backward", &py_global_maxpool2d_backward, arg("dy"), arg("x"), arg("y"),
          arg("data_format") = "channels_last", arg("keepdims") = false,
          "dx = dy / k at the k pixels equal to the max (Keras' reduce_max rule)");
    m.def("batchnorm_forward", &py_batchnorm_forward, arg("x"), arg("gamma"), arg("beta"), arg("moving_mean"),
          arg("moving_var"), arg("momentum") = 0.99, arg("epsilon") = 1e-3, arg("training") = true, arg("axis") = -1,
          "y, mean, inv_std = batchnorm_forward(...); training updates moving_mean and moving_var in place");
    m.def("batchnorm_backward", &py_batchnorm_backward, arg("dy"), arg("x"), arg("gamma"), arg("mean"), arg("inv_std"),
          arg("training") = true, arg("axis") = -1, "dx, dgamma, dbeta = batchnorm_backward(...)");

    py::module_ ladder = m.def_submodule("ladder", "Every rung of the kernel ladders, callable by name.");
    const std::pair<const char*, Rung> rungs[] = {
        {"matmul_forward_v1", engine::matmul_forward_v1}, {"matmul_forward_v2", engine::matmul_forward_v2},
        {"matmul_forward_v3", engine::matmul_forward_v3}, {"matmul_forward_v4", engine::matmul_forward_v4}};
    for (const auto& [name, rung] : rungs) {
        const std::string where = name;
        ladder.def(name, [where, rung = rung](py::handle a, py::handle b) { return py_matmul_rung(where, rung, a, b); },
                   arg("a"), arg("b"), "c = a @ b; a: (M, K), b: (K, N)");
    }
    ladder.def("fma_peak", [](int64_t iterations, int repeats) {
        py::gil_scoped_release nogil;
        return engine::fma_peak_gflops(iterations, repeats);
    }, arg("iterations") = int64_t{1} << 22, arg("repeats") = 5,
       "GFLOP/s of independent multiply-adds on every thread, active SIMD path: the best of `repeats` runs");
    def_attention_ladder(ladder);
    const std::pair<const char*, ConvRung> conv_rungs[] = {{"conv2d_forward_v1", engine::conv2d_forward_v1},
                                                           {"conv2d_forward_v2", engine::conv2d_forward_im2col},
                                                           {"conv2d_forward_v3", engine::conv2d_forward_winograd}};
    const char* conv_docs[] = {"The direct convolution: nested loops, one thread (same arguments as conv2d_forward)",
                               "im2col in cache-sized blocks + the packed GEMM (same arguments as conv2d_forward)",
                               "Winograd F(2x2, 3x3): 3x3 kernels, strides 1 (any dilation), at least 8 channels and "
                               "filters (same arguments as conv2d_forward)"};
    for (int r = 0; r < 3; r++) {
        const std::string where = conv_rungs[r].first;
        ladder.def(conv_rungs[r].first, [where, rung = conv_rungs[r].second](
                       py::handle x, py::handle kernel, py::handle bias, const py::object& strides,
                       const py::object& padding, const py::object& dilation_rate, const py::object& data_format) {
            return py_conv2d_forward(where, rung, x, kernel, bias, strides, padding, dilation_rate, data_format);
        }, arg("x"), arg("kernel"), arg("bias") = py::none(), arg("strides") = py::make_tuple(1, 1),
                   arg("padding") = "valid", arg("dilation_rate") = py::make_tuple(1, 1),
                   arg("data_format") = "channels_last", conv_docs[r]);
    }
}

// csrc/bind_cpu/args.h (namespace engine::bind): the argument checks every family's adapters share, with the
// words of engine/ref/_check.py. An adapter takes Python objects, turns each array argument into a float32
// C-contiguous Array (input) or checks one the kernel updates in place (in_place), checks the shapes, makes
// its outputs with cache_aligned, releases the GIL and calls the kernel.
// Errors: a wrong dtype or type raises TypeError (py::type_error); a wrong shape or value raises ValueError
// (ENGINE_CHECK and fail throw std::invalid_argument, which pybind11 turns into ValueError).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>                    // every file sees the same type casters (reduce casts a vector)

#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "../common.h"
#include "../kernels.h"

namespace engine::bind {

namespace py = pybind11;
using Array = py::array_t<float, py::array::c_style | py::array::forcecast>;
using Shape = std::vector<py::ssize_t>;

inline std::string shape_str(const Shape& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

inline Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

inline int64_t product(Shape::const_iterator first, Shape::const_iterator last) {
    return std::accumulate(first, last, int64_t{1}, std::multiplies<int64_t>());
}

// A new float32 array whose data starts on a 64-byte boundary (NumPy only promises 16). Every kernel output is
// made this way: a 16-byte offset made every other 32-byte store of the AVX2 loops straddle two cache lines
// (tanh's backward ran 1.2x PyTorch's time on 4M values), and the recurrent kernels' threads write neighbouring
// bands of every row, which must not share cache lines. A view into a slightly larger array, which it keeps
// alive as its base.
inline Array cache_aligned(const Shape& shape) {
    const int64_t n = product(shape.begin(), shape.end());
    Array whole(Shape{static_cast<py::ssize_t>(n + 16)});
    float* p = whole.mutable_data();
    const auto skip = static_cast<int64_t>((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(float));
    return Array(shape, p + skip, whole);
}

// For a message about an argument of the wrong type: the name of obj's type.
inline std::string type_name(const py::handle& obj) {
    return std::string(py::str(py::type::of(obj).attr("__name__")));
}

// For a message about an array of the wrong dtype: obj's dtype, or the name of its type when it is no array.
inline std::string dtype_or_type(const py::handle& obj) {
    if (!py::isinstance<py::array>(obj)) return type_name(obj);
    return std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype()));
}

// obj itself, when it is a float32 NumPy array. Anything else: TypeError.
inline py::array float32_array(const py::handle& obj, const std::string& where, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(where + ": expected " + name + " to be a float32 numpy array. Received: type(" +
                             name + ")=" + type_name(obj));
    py::array arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<float>()))
        throw py::type_error(where + ": expected " + name + " to be a float32 array. Received: " + name +
                             ".dtype=" + std::string(py::str(arr.dtype())));
    return arr;
}

// A float32 NumPy array, made C-contiguous (copied only when it is not). Anything else: TypeError.
inline Array input(const py::handle& obj, const std::string& where, const char* name) {
    return Array::ensure(float32_array(obj, where, name));
}

inline void check_same_shape(const std::string& where, const char* name, const py::array& a, const char* other,
                             const py::array& b) {
    ENGINE_CHECK(shape_of(a) == shape_of(b), where.c_str(), "expected ", name, " to have the shape of ", other, " ",
                 shape_str(shape_of(b)), ". Received: ", name, ".shape=", shape_str(shape_of(a)));
}

// What the messages say of an argument a backward gets from its forward.
constexpr const char* kForwardOutput = " (the forward output)";

// a must have the shape `expected`; `note` (kForwardOutput, say) follows the shape in the message.
inline void check_shape(const std::string& where, const char* name, const py::array& a, const Shape& expected,
                        const char* note = "") {
    ENGINE_CHECK(shape_of(a) == expected, where.c_str(), "expected ", name, " of shape ", shape_str(expected), note,
                 ". Received: ", name, ".shape=", shape_str(shape_of(a)));
}

// A parameter or slot updated in place: it must be the caller's own float32, C-contiguous, writeable
// array (a converted copy would swallow the update), shaped like the parameter. None gives nullptr.
inline float* in_place(const std::string& where, const char* name, py::handle obj, const Shape& shape, bool optional) {
    if (optional && obj.is_none()) return nullptr;
    py::array arr = float32_array(obj, where, name);
    if (!arr.writeable())
        throw py::type_error(where + ": expected " + name + " to be writeable (it is updated in place)");
    if (!(arr.flags() & py::array::c_style))
        throw py::type_error(where + ": expected " + name + " to be C-contiguous (it is updated in place)");
    ENGINE_CHECK(shape.empty() || shape_of(arr) == shape, where.c_str(), "expected ", name,
                 " of the parameter's shape ", shape_str(shape), ". Received: ", name, ".shape=",
                 shape_str(shape_of(arr)));
    return static_cast<float*>(arr.mutable_data());
}

// `obj` as an int64 when it is one integer: a Python or NumPy integer, not a bool (which Python also counts as an
// int). False for anything else, without a Python error left set: a NumPy array passes PyIndex_Check and then
// refuses in PyNumber_Index (which returns NULL), and an int past int64 overflows.
inline bool index_value(const py::handle& obj, int64_t& out) {
    if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr())) return false;
    PyObject* number = PyNumber_Index(obj.ptr());
    if (number == nullptr) {
        PyErr_Clear();
        return false;
    }
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (overflow != 0 || (value == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
    }
    out = value;
    return true;
}

// An axis given as one integer (index_value). `expected` describes what the function takes; `whole` is the
// axis argument as the caller passed it.
inline int64_t axis_int(const std::string& where, const py::handle& obj, const py::object& whole,
                        const char* expected) {
    int64_t axis = 0;
    if (!index_value(obj, axis))
        throw py::type_error(where + ": expected axis to be " + expected + ". Received: axis=" +
                             std::string(py::repr(whole)));
    return axis;
}

inline int64_t normalize_axis(const std::string& where, int64_t axis, int64_t ndim) {
    if (ndim == 0 && (axis == 0 || axis == -1)) return 0;          // a 0-d array has one axis-like slot
    ENGINE_CHECK(axis >= -ndim && axis < ndim, where.c_str(), "expected axis in [", -ndim, ", ", ndim,
                 ") for an array of ", ndim, " dimensions. Received: axis=", axis);
    return axis < 0 ? axis + ndim : axis;
}

// x viewed as (A, D, B) around one `axis` (softmax, batch norm).
struct AxisView { int64_t A, D, B; };

inline AxisView axis_view(const std::string& where, const py::array& x, const py::object& axis_obj) {
    const Shape s = shape_of(x);
    const int64_t ax = normalize_axis(where, axis_int(where, axis_obj, axis_obj, "an int"), static_cast<int64_t>(s.size()));
    if (s.empty()) return {1, 1, 1};
    return {product(s.begin(), s.begin() + ax), s[ax], product(s.begin() + ax + 1, s.end())};
}

}  // namespace engine::bind

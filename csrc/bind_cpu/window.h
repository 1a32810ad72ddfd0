// csrc/bind_cpu/window.h (namespace engine::bind): the window arguments conv2d and pool2d share (strides,
// dilation_rate, padding, data_format, a pool_size) and the Window2d they make, checked with the words of
// engine/ref/conv2d.py's geometry helpers, which engine/ref/pool2d.py imports too.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "args.h"

namespace engine::bind {

// A positive int or a pair of positive ints (strides, dilation_rate, pool_size), as in engine/ref/conv2d.py.
inline std::pair<int64_t, int64_t> int_pair(const std::string& where, const char* name, const py::handle& obj) {
    const auto bad = [&] {
        return std::invalid_argument(where + ": expected " + name + " to be a positive int or a pair of positive ints. "
                                     "Received: " + name + "=" + std::string(py::repr(obj)));
    };
    const auto positive = [&](const py::handle& v) {
        int64_t k = 0;
        if (!index_value(v, k) || k <= 0) throw bad();
        return k;
    };
    if (int64_t k = 0; index_value(obj, k)) {
        if (k <= 0) throw bad();
        return {k, k};
    }
    if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj) || py::len(obj) != 2) throw bad();
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    return {positive(seq[0]), positive(seq[1])};
}

inline bool channels_first(const std::string& where, const py::handle& data_format) {
    if (py::isinstance<py::str>(data_format)) {
        const std::string s = data_format.cast<std::string>();
        if (s == "channels_last" || s == "channels_first") return s == "channels_first";
    }
    throw std::invalid_argument(where + ": expected data_format to be 'channels_last' or 'channels_first'. Received: "
                                "data_format=" + std::string(py::repr(data_format)));
}

inline void check_image(const std::string& where, const py::array& x, bool first) {
    ENGINE_CHECK(x.ndim() == 4, where.c_str(), "expected x of shape ", first ? "(N, C, H, W)" : "(N, H, W, C)",
                 " for data_format='", first ? "channels_first" : "channels_last", "'. Received: x.shape=",
                 shape_str(shape_of(x)));
}

// (before, after) zero padding along each axis: 'valid', 'same' or ((top, bottom), (left, right)).
struct Padding { std::string mode; int64_t top = 0, bottom = 0, left = 0, right = 0; };

inline Padding padding_arg(const std::string& where, const py::handle& obj) {
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
            int64_t k = 0;
            if (!index_value(v, k) || k < 0) throw bad();
            values.push_back(k);
        }
    }
    p.mode = "explicit";
    p.top = values[0], p.bottom = values[1], p.left = values[2], p.right = values[3];
    return p;
}

// (out, pad_before) along one axis, as axis_geometry in engine/ref/conv2d.py.
inline std::pair<int64_t, int64_t> axis_geometry(int64_t size, int64_t k, int64_t stride, int64_t dilation,
                                                 const Padding& p, bool rows, int64_t* after) {
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
inline engine::Window2d window_geometry(const std::string& where, const py::array& x, bool first, int64_t KH,
                                        int64_t KW, const py::handle& strides, const py::handle& padding,
                                        const py::handle& dilation, const char* what) {
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

}  // namespace engine::bind

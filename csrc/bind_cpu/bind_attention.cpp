// csrc/bind_cpu/bind_attention.cpp: softmax and log-softmax along an axis, scaled dot-product attention, and
// the rungs of both ladders, as engine/ref/attention.py; kernels in csrc/attention.cpp (softmax),
// csrc/attention_fused.cpp, csrc/attention_fused_backward.cpp and csrc/attention_ladder.cpp (attention).
#include <cmath>
#include <string>
#include <utility>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

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
                                 dtype_or_type(mask_obj));
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

// An output of shape (B, N, T, S) that is computed only on request: (the array or None, its data or nullptr).
std::pair<py::object, float*> optional_scores(bool wanted, const engine::AttentionArgs& g) {
    if (!wanted) return {py::none(), nullptr};
    Array a = cache_aligned(Shape{g.B, g.N, g.T, g.S});
    float* data = a.mutable_data();
    return {a, data};
}

using AttentionRung = void (*)(float*, float*, float*, const float*, const float*, const float*,
                               const engine::AttentionArgs&);

// attention_forward and the attention rungs: one adapter, the kernel and its name as arguments.
void def_attention(py::module_& m, const char* name, AttentionRung rung, const char* doc) {
    const std::string where = name;
    m.def(name, [where, rung](py::handle q, py::handle k, py::handle v, py::handle mask, py::handle bias,
                              py::handle scale, bool is_causal, bool return_weights) -> py::tuple {
        AttentionCall c = attention_call(where, q, k, v, mask, bias, scale, is_causal);
        const engine::AttentionArgs& g = c.args;
        Array o = cache_aligned(Shape{g.B, g.T, g.N, g.HV}), lse = cache_aligned(Shape{g.B, g.N, g.T});
        auto [weights, w] = optional_scores(return_weights, g);
        {
            py::gil_scoped_release nogil;
            rung(o.mutable_data(), lse.mutable_data(), w, c.q.data(), c.k.data(), c.v.data(), g);
        }
        return py::make_tuple(o, lse, weights);
    }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask") = py::none(), py::arg("bias") = py::none(),
          py::arg("scale") = py::none(), py::arg("is_causal") = false, py::arg("return_weights") = false, doc);
}

using AxisForward = void (*)(float*, const float*, int64_t, int64_t, int64_t);
using AxisBackward = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t);

// softmax_forward and log_softmax_forward: x viewed as (A, D, B) around `axis`.
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

// Their backwards, from dy and the forward output y.
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

}  // namespace

void bind_attention(py::module_& m, py::module_& ladder) {
    using py::arg;
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

    def_attention(m, "attention_forward", engine::attention_forward_v2,
                  "o, lse, weights = attention_forward(q, k, v, mask=None, bias=None, scale=None, is_causal=False, "
                  "return_weights=False); q (B, T, N, H), k (B, S, K, H), v (B, S, K, HV)");
    m.def("attention_backward", [](py::handle do_obj, py::handle q, py::handle k, py::handle v, py::handle o_obj,
                                   py::handle lse_obj, py::handle mask, py::handle bias, py::handle scale,
                                   bool is_causal, bool bias_grad) -> py::tuple {
        const std::string where = "attention_backward";
        AttentionCall c = attention_call(where, q, k, v, mask, bias, scale, is_causal);
        const engine::AttentionArgs& g = c.args;
        Array dout = input(do_obj, where, "do"), o = input(o_obj, where, "o"), lse = input(lse_obj, where, "lse");
        check_shape(where, "do", dout, Shape{g.B, g.T, g.N, g.HV});
        check_shape(where, "o", o, Shape{g.B, g.T, g.N, g.HV});
        check_shape(where, "lse", lse, Shape{g.B, g.N, g.T});
        Array dq = cache_aligned(shape_of(c.q)), dk = cache_aligned(shape_of(c.k)), dv = cache_aligned(shape_of(c.v));
        auto [dbias, db] = optional_scores(bias_grad, g);
        {
            py::gil_scoped_release nogil;
            engine::attention_backward(dq.mutable_data(), dk.mutable_data(), dv.mutable_data(), db, dout.data(),
                                       c.q.data(), c.k.data(), c.v.data(), o.data(), lse.data(), g);
        }
        return py::make_tuple(dq, dk, dv, dbias);
    }, arg("do"), arg("q"), arg("k"), arg("v"), arg("o"), arg("lse"), arg("mask") = py::none(),
          arg("bias") = py::none(), arg("scale") = py::none(), arg("is_causal") = false, arg("bias_grad") = false,
          "dq, dk, dv, dbias = attention_backward(do, q, k, v, o, lse, ...)");

    // The softmax ladder's rungs work on the rows of a 2-D x.
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
        }, arg("x"), "y = softmax(x) along the last axis; x: (N, D)");
    }
    def_attention(ladder, "attention_forward_v1", engine::attention_forward_v1,
                  "naive rung: o, lse, weights = attention_forward_v1(q, k, v, ...), full score matrix per head");
    def_attention(ladder, "attention_forward_v2", engine::attention_forward_v2,
                  "fused rung (= attention_forward): tiles and an online softmax");
}

}  // namespace engine::bind

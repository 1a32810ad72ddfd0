// csrc/bind_cpu/bind_matmul.cpp: matmul (forward, backward, the ladder's rungs), the dense layer (the product
// with a bias + activation epilogue) and the bias add, as engine/ref/matmul.py; kernels in csrc/matmul.cpp.
#include <algorithm>
#include <string>
#include <utility>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

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

using Rung = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t);

}  // namespace

void bind_matmul(py::module_& m, py::module_& ladder) {
    using py::arg;
    m.def("matmul_forward", [](py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b) -> Array {
        const std::string where = "matmul_forward";
        Array a = input(a_obj, where, "a"), b = input(b_obj, where, "b");
        const MatmulShape s = matmul_shape(where, a, b, trans_a, trans_b);
        Array c = cache_aligned(s.out);
        {
            py::gil_scoped_release nogil;
            engine::matmul_forward_batched(c.mutable_data(), a.data(), b.data(), s.batch, s.a_step, s.b_step, s.M * s.N,
                                           s.M, s.N, s.K, trans_a, trans_b);
        }
        return c;
    }, arg("a"), arg("b"), arg("trans_a") = false, arg("trans_b") = false,
          "c = op(a) @ op(b); a: (..., M, K) or (..., K, M) if trans_a; b: (..., K, N) or (..., N, K) if trans_b");

    // With C = op(A) op(B):  d op(A) = dC op(B)^T  and  d op(B) = op(A)^T dC. Each gradient is itself one
    // batched product of dC with the other operand as stored; a shared (2-D) operand sums over the stack.
    m.def("matmul_backward", [](py::handle dc_obj, py::handle a_obj, py::handle b_obj, bool ta, bool tb) -> py::tuple {
        const std::string where = "matmul_backward";
        Array dc = input(dc_obj, where, "dc"), a = input(a_obj, where, "a"), b = input(b_obj, where, "b");
        const MatmulShape s = matmul_shape(where, a, b, ta, tb);
        check_shape(where, "dc", dc, s.out, kForwardOutput);
        Array da = cache_aligned(shape_of(a)), db = cache_aligned(shape_of(b));
        const int64_t M = s.M, N = s.N, K = s.K, dc_step = M * N;
        const int64_t da_step = s.a_shared ? 0 : M * K, db_step = s.b_shared ? 0 : K * N;
        {
            py::gil_scoped_release nogil;
            if (!ta)   // dA (M, K) = dC (M, N) @ op(B)^T
                engine::matmul_forward_batched(da.mutable_data(), dc.data(), b.data(), s.batch, dc_step, s.b_step,
                                               da_step, M, K, N, false, !tb);
            else       // dA stored (K, M) = op(B) (K, N) @ dC^T
                engine::matmul_forward_batched(da.mutable_data(), b.data(), dc.data(), s.batch, s.b_step, dc_step,
                                               da_step, K, M, N, tb, true);
            if (!tb)   // dB (K, N) = op(A)^T (K, M) @ dC
                engine::matmul_forward_batched(db.mutable_data(), a.data(), dc.data(), s.batch, s.a_step, dc_step,
                                               db_step, K, N, M, !ta, false);
            else       // dB stored (N, K) = dC^T (N, M) @ op(A)
                engine::matmul_forward_batched(db.mutable_data(), dc.data(), a.data(), s.batch, dc_step, s.a_step,
                                               db_step, N, K, M, true, ta);
        }
        return py::make_tuple(da, db);
    }, arg("dc"), arg("a"), arg("b"), arg("trans_a") = false, arg("trans_b") = false,
          "da, db = matmul_backward(dc, a, b, trans_a, trans_b)");

    m.def("dense_forward", [](py::handle x_obj, py::handle w_obj, py::handle bias_obj, const std::string& activation,
                              float negative_slope, float alpha) -> py::tuple {
        const std::string where = "dense_forward";
        Array x = input(x_obj, where, "x"), w = input(w_obj, where, "w");
        const DenseShape s = dense_shape(where, x, w);
        const bool has_bias = !bias_obj.is_none();
        Array bias;                              // an empty array when there is no bias: never read then
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
    }, arg("x"), arg("w"), arg("bias") = py::none(), arg("activation") = "linear", arg("negative_slope") = 0.2f,
          arg("alpha") = 1.0f,
          "y, z = dense_forward(x, w, bias, activation): y = act(x @ w + bias); z = x @ w + bias (or y itself when "
          "the activation's derivative can be read from y)");

    m.def("dense_backward", [](py::handle dy_obj, py::handle x_obj, py::handle w_obj, py::handle z_obj,
                               py::handle y_obj, const std::string& activation, bool use_bias, float negative_slope,
                               float alpha) -> py::tuple {
        const std::string where = "dense_backward";
        Array dy = input(dy_obj, where, "dy"), x = input(x_obj, where, "x"), w = input(w_obj, where, "w"),
              z = input(z_obj, where, "z"), y = input(y_obj, where, "y");
        const DenseShape s = dense_shape(where, x, w);
        check_shape(where, "dy", dy, s.out, kForwardOutput);
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
            engine::dense_backward(dx.mutable_data(), dw.mutable_data(),
                                   use_bias ? dbias_array.mutable_data() : nullptr, dy.data(), x.data(), w.data(),
                                   z.data(), y.data(), s.N, s.D, s.U, act, param);
        }
        return py::make_tuple(dx, dw, dbias);
    }, arg("dy"), arg("x"), arg("w"), arg("z"), arg("y"), arg("activation") = "linear", arg("use_bias") = true,
          arg("negative_slope") = 0.2f, arg("alpha") = 1.0f,
          "dx, dw, dbias = dense_backward(dy, x, w, z, y, activation, use_bias)");

    m.def("bias_add_forward", [](py::handle x_obj, py::handle bias_obj) -> Array {
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
    }, arg("x"), arg("bias"), "y = x + bias; x: (..., D), bias: (D,)");

    m.def("bias_add_backward", [](py::handle dy_obj) -> py::tuple {
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
        return py::make_tuple(dy, dbias);        // dx = dy: the add passes the gradient through
    }, arg("dy"), "dx, dbias = bias_add_backward(dy)");

    const std::pair<const char*, Rung> rungs[] = {
        {"matmul_forward_v1", engine::matmul_forward_v1}, {"matmul_forward_v2", engine::matmul_forward_v2},
        {"matmul_forward_v3", engine::matmul_forward_v3}, {"matmul_forward_v4", engine::matmul_forward_v4}};
    for (const auto& [name, rung] : rungs) {
        const std::string where = name;
        ladder.def(name, [where, rung = rung](py::handle a_obj, py::handle b_obj) -> Array {
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
        }, arg("a"), arg("b"), "c = a @ b; a: (M, K), b: (K, N)");
    }
}

}  // namespace engine::bind

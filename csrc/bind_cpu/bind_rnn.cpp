// csrc/bind_cpu/bind_rnn.cpp: LSTM, GRU and SimpleRNN over whole sequences, forward and backward through time,
// as engine/ref/rnn.py; kernels in csrc/lstm.cpp, csrc/gru.cpp and csrc/simple_rnn.cpp (csrc/rnn.h).
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

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

}  // namespace

void bind_rnn(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("lstm_forward", [](py::handle x_obj, py::handle h0_obj, py::handle c0_obj, py::handle kernel_obj,
                             py::handle rk_obj, py::handle bias_obj, py::handle mask_obj, py::handle rmask_obj,
                             const py::object& activation, const py::object& recurrent_activation,
                             bool save) -> py::tuple {
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
                                 rk.data(), bias.data(), data_or_null(mask), data_or_null(rmask), s.N, s.T, s.D, s.U,
                                 act, ract);
        }
        if (!save) return py::make_tuple(y, h, c);
        return py::make_tuple(y, h, c, gates, cells);
    }, arg("x"), arg("h0"), arg("c0"), arg("kernel"), arg("recurrent_kernel"), arg("bias"), arg("mask") = py::none(),
          arg("recurrent_mask") = py::none(), arg("activation") = "tanh", arg("recurrent_activation") = "sigmoid",
          arg("save") = true,
          "y, h, c, gates, cells = lstm_forward(x, h0, c0, kernel, ...); save=False: y, h, c only (inference)");
    m.def("lstm_backward", [](py::handle dy_obj, py::handle dh_obj, py::handle dc_obj, py::handle x_obj,
                              py::handle h0_obj, py::handle c0_obj, py::handle kernel_obj, py::handle rk_obj,
                              py::handle mask_obj, py::handle rmask_obj, py::handle y_obj, py::handle gates_obj,
                              py::handle cells_obj, const py::object& activation,
                              const py::object& recurrent_activation) -> py::tuple {
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
                                  h0.data(), c0.data(), kernel.data(), rk.data(), data_or_null(mask),
                                  data_or_null(rmask), y.data(), gates.data(), cells.data(), s.N, s.T, s.D, s.U, act,
                                  ract);
        }
        return py::make_tuple(dx, dh0, dc0, dkernel, drk, dbias);
    }, arg("dy"), arg("dh"), arg("dc"), arg("x"), arg("h0"), arg("c0"), arg("kernel"), arg("recurrent_kernel"),
          arg("mask"), arg("recurrent_mask"), arg("y"), arg("gates"), arg("cells"), arg("activation") = "tanh",
          arg("recurrent_activation") = "sigmoid",
          "dx, dh0, dc0, dkernel, drecurrent_kernel, dbias = lstm_backward(...)");
    m.def("gru_forward", [](py::handle x_obj, py::handle h0_obj, py::handle kernel_obj, py::handle rk_obj,
                            py::handle bias_obj, py::handle mask_obj, py::handle rmask_obj,
                            const py::object& activation, const py::object& recurrent_activation,
                            bool save) -> py::tuple {
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
    }, arg("x"), arg("h0"), arg("kernel"), arg("recurrent_kernel"), arg("bias"), arg("mask") = py::none(),
          arg("recurrent_mask") = py::none(), arg("activation") = "tanh", arg("recurrent_activation") = "sigmoid",
          arg("save") = true,
          "y, h, gates, recurrent_h = gru_forward(x, h0, kernel, ...); save=False: y, h only (inference)");
    m.def("gru_backward", [](py::handle dy_obj, py::handle dh_obj, py::handle x_obj, py::handle h0_obj,
                             py::handle kernel_obj, py::handle rk_obj, py::handle mask_obj, py::handle rmask_obj,
                             py::handle y_obj, py::handle gates_obj, py::handle rech_obj, const py::object& activation,
                             const py::object& recurrent_activation) -> py::tuple {
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
                                 dbias.mutable_data(), dy.data(), dh.data(), x.data(), h0.data(), kernel.data(),
                                 rk.data(), data_or_null(mask), data_or_null(rmask), y.data(), gates.data(),
                                 rech.data(), s.N, s.T, s.D, s.U, act, ract);
        }
        return py::make_tuple(dx, dh0, dkernel, drk, dbias);
    }, arg("dy"), arg("dh"), arg("x"), arg("h0"), arg("kernel"), arg("recurrent_kernel"), arg("mask"),
          arg("recurrent_mask"), arg("y"), arg("gates"), arg("recurrent_h"), arg("activation") = "tanh",
          arg("recurrent_activation") = "sigmoid",
          "dx, dh0, dkernel, drecurrent_kernel, dbias = gru_backward(...)");
    m.def("simple_rnn_forward", [](py::handle x_obj, py::handle h0_obj, py::handle kernel_obj, py::handle rk_obj,
                                   py::handle bias_obj, py::handle mask_obj, py::handle rmask_obj,
                                   const py::object& activation) -> py::tuple {
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
            engine::simple_rnn_forward(y.mutable_data(), h.mutable_data(), x.data(), h0.data(), kernel.data(),
                                       rk.data(), bias.data(), data_or_null(mask), data_or_null(rmask), s.N, s.T, s.D,
                                       s.U, act);
        }
        return py::make_tuple(y, h);
    }, arg("x"), arg("h0"), arg("kernel"), arg("recurrent_kernel"), arg("bias"), arg("mask") = py::none(),
          arg("recurrent_mask") = py::none(), arg("activation") = "tanh",
          "y, h = simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, ...)");
    m.def("simple_rnn_backward", [](py::handle dy_obj, py::handle dh_obj, py::handle x_obj, py::handle h0_obj,
                                    py::handle kernel_obj, py::handle rk_obj, py::handle mask_obj, py::handle rmask_obj,
                                    py::handle y_obj, const py::object& activation) -> py::tuple {
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
            engine::simple_rnn_backward(dx.mutable_data(), dh0.mutable_data(), dkernel.mutable_data(),
                                        drk.mutable_data(), dbias.mutable_data(), dy.data(), dh.data(), x.data(),
                                        h0.data(), kernel.data(), rk.data(), data_or_null(mask), data_or_null(rmask),
                                        y.data(), s.N, s.T, s.D, s.U, act);
        }
        return py::make_tuple(dx, dh0, dkernel, drk, dbias);
    }, arg("dy"), arg("dh"), arg("x"), arg("h0"), arg("kernel"), arg("recurrent_kernel"), arg("mask"),
          arg("recurrent_mask"), arg("y"), arg("activation") = "tanh",
          "dx, dh0, dkernel, drecurrent_kernel, dbias = simple_rnn_backward(...)");
}

}  // namespace engine::bind

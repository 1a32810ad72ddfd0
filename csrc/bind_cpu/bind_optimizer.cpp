// csrc/bind_cpu/bind_optimizer.cpp: the optimizer updates, each applied in place to the caller's parameter
// and slot arrays, as engine/ref/optimizer.py; kernels in csrc/optimizer.cpp.
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

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

}  // namespace

void bind_optimizer(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
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
}

}  // namespace engine::bind

// csrc/bind_cpu/bind_loss.cpp: the cross-entropy losses, each fused with its softmax or sigmoid, and their
// gradients, as engine/ref/loss.py; kernels in csrc/loss.cpp.
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

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
                             dtype_or_type(obj));
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

}  // namespace

void bind_loss(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("softmax_cross_entropy_forward", [](py::handle logits_obj, py::handle targets_obj) -> py::tuple {
        const std::string where = "softmax_cross_entropy_forward";
        Array logits = input(logits_obj, where, "logits");
        check_rows(where, logits);
        Array targets = input(targets_obj, where, "targets");
        check_same_shape(where, "targets", targets, "logits", logits);
        const int64_t N = logits.shape(0), C = logits.shape(1);
        Array loss = cache_aligned(Shape{N}), probs = cache_aligned(shape_of(logits));
        {
            py::gil_scoped_release nogil;
            engine::softmax_cross_entropy_forward(loss.mutable_data(), probs.mutable_data(), logits.data(),
                                                  targets.data(), N, C);
        }
        return py::make_tuple(loss, probs);
    }, arg("logits"), arg("targets"),
          "loss, probs = softmax_cross_entropy_forward(logits, targets); logits, targets: (N, C)");
    m.def("softmax_cross_entropy_backward", [](py::handle dloss_obj, py::handle probs_obj,
                                               py::handle targets_obj) -> Array {
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
    }, arg("dloss"), arg("probs"), arg("targets"), "dlogits = dloss[:, None] * (probs * sum(targets) - targets)");

    m.def("sparse_softmax_cross_entropy_forward", [](py::handle logits_obj, py::handle labels_obj) -> py::tuple {
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
    }, arg("logits"), arg("labels"),
          "loss, probs = sparse_softmax_cross_entropy_forward(logits, labels); labels: (N,) int64");
    m.def("sparse_softmax_cross_entropy_backward", [](py::handle dloss_obj, py::handle probs_obj,
                                                      py::handle labels_obj) -> Array {
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
    }, arg("dloss"), arg("probs"), arg("labels"), "dlogits = dloss[:, None] * (probs - onehot(labels))");

    m.def("sigmoid_cross_entropy_forward", [](py::handle logits_obj, py::handle targets_obj) -> Array {
        const std::string where = "sigmoid_cross_entropy_forward";
        Array logits = input(logits_obj, where, "logits"), targets = input(targets_obj, where, "targets");
        check_same_shape(where, "targets", targets, "logits", logits);
        Array loss = cache_aligned(shape_of(logits));
        {
            py::gil_scoped_release nogil;
            engine::sigmoid_cross_entropy_forward(loss.mutable_data(), logits.data(), targets.data(), logits.size());
        }
        return loss;
    }, arg("logits"), arg("targets"), "loss = max(z, 0) - z t + log1p(exp(-|z|)), element-wise");
    m.def("sigmoid_cross_entropy_backward", [](py::handle dloss_obj, py::handle logits_obj,
                                               py::handle targets_obj) -> Array {
        const std::string where = "sigmoid_cross_entropy_backward";
        Array dloss = input(dloss_obj, where, "dloss"), logits = input(logits_obj, where, "logits"),
              targets = input(targets_obj, where, "targets");
        check_same_shape(where, "targets", targets, "logits", logits);
        check_same_shape(where, "dloss", dloss, "logits", logits);
        Array dlogits = cache_aligned(shape_of(logits));
        {
            py::gil_scoped_release nogil;
            engine::sigmoid_cross_entropy_backward(dlogits.mutable_data(), dloss.data(), logits.data(),
                                                   targets.data(), logits.size());
        }
        return dlogits;
    }, arg("dloss"), arg("logits"), arg("targets"), "dlogits = dloss * (sigmoid(z) - t)");
}

}  // namespace engine::bind

// csrc/bind_cpu/bind_embedding.cpp: the embedding lookup and its gradient, as engine/ref/embedding.py; kernels
// in csrc/embedding.cpp (which trust every id to be in range: checked here).
#include <string>

#include "args.h"
#include "families.h"

namespace engine::bind {

namespace {

using Ids = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// Token ids: any integer numpy array (converted to int64), every value in [0, num_rows).
Ids token_ids(const std::string& where, const py::handle& obj, int64_t num_rows) {
    const bool integer = py::isinstance<py::array>(obj) &&
                         std::string("iu").find(py::reinterpret_borrow<py::array>(obj).dtype().kind()) != std::string::npos;
    if (!integer)
        throw py::type_error(where + ": expected ids to be an integer numpy array. Received: ids.dtype=" +
                             dtype_or_type(obj));
    Ids ids = Ids::ensure(obj);
    const int64_t* p = ids.data();
    for (py::ssize_t i = 0; i < ids.size(); i++)
        ENGINE_CHECK(p[i] >= 0 && p[i] < num_rows, where.c_str(), "expected token ids in [0, ", num_rows,
                     "). Received: a token id of ", p[i]);
    return ids;
}

}  // namespace

void bind_embedding(py::module_& m, py::module_& /* no ladder */) {
    using py::arg;
    m.def("embedding_forward", [](py::handle ids_obj, py::handle table_obj) -> Array {
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
    }, arg("ids"), arg("table"), "y = table[ids]; ids: (...) integers in [0, V), table: (V, D) -> y: (..., D)");
    m.def("embedding_backward", [](py::handle dy_obj, py::handle ids_obj, py::object num_rows_obj) -> Array {
        const std::string where = "embedding_backward";
        Array dy = input(dy_obj, where, "dy");
        int64_t num_rows = -1;
        if (!index_value(num_rows_obj, num_rows)) num_rows = -1;
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
    }, arg("dy"), arg("ids"), arg("num_rows"),
          "dtable (V, D): each dy row added at its id (repeats accumulate, in order)");
}

}  // namespace engine::bind

// csrc/bind_cpu/module.cpp: engine._cpu, the only CPU module that sees Python. Its functions have the names,
// arguments and return values of engine/ref/*.py; engine._cpu.ladder holds every rung of the kernel ladders
// (engine/ladder.py). Each kernel family binds its own functions (bind_<family>.cpp, listed in families.h);
// the checks they share are in args.h.
#include <pybind11/pybind11.h>

#include "families.h"

PYBIND11_MODULE(_cpu, m) {
    using namespace engine::bind;
    m.doc() = "C++/OpenMP kernels; each mirrors engine.ref by name, arguments and return values.";
    pybind11::module_ ladder = m.def_submodule("ladder", "Every rung of the kernel ladders, callable by name.");
    for (auto bind_family : {bind_runtime, bind_matmul, bind_activation, bind_attention, bind_reduce, bind_loss,
                             bind_optimizer, bind_embedding, bind_layernorm, bind_rnn, bind_conv2d, bind_pool2d,
                             bind_batchnorm, bind_resize})
        bind_family(m, ladder);
}

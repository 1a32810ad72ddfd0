"""Embedding benchmarks: the gather forward and the scatter-add backward for a batch of 32 sequences of 50
token ids into a (10000, 128) table, for ref, cpu, plain NumPy (table[ids], np.add.at) and PyTorch
(F.embedding and its dense backward) when installed. Each validates once against the reference, then times.
Rates: Gelem/s = output elements (ids * D) per second.

    OMP_NUM_THREADS=2 pytest bench/bench_embedding.py --benchmark-only --benchmark-group-by=group
"""
import types

import numpy as np
import pytest

from _util import IMPLS, backend_or_skip, random_f32, timed
from engine import ref

N, T, V, D = 32, 50, 10000, 128


def _plain(name):
    """numpy and torch with the engine's embedding signatures (the other kernels come from _util)."""
    k = types.SimpleNamespace()
    if name == "numpy":
        k.embedding_forward = lambda ids, table: table[ids]

        def backward(dy, ids, num_rows):
            dtable = np.zeros((num_rows, dy.shape[-1]), dy.dtype)
            np.add.at(dtable, ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))
            return dtable
        k.embedding_backward = backward
    else:
        import torch
        k.embedding_forward = torch.nn.functional.embedding
        k.embedding_backward = lambda dy, ids, num_rows: torch.ops.aten.embedding_dense_backward(dy, ids, num_rows,
                                                                                                  -1, False)
    return k


def _kernels(impl):
    kernels = backend_or_skip(impl)
    if impl in ("numpy", "torch"):
        return kernels, _plain(impl)
    return kernels, kernels.kernels


@pytest.mark.parametrize("impl", IMPLS)
def test_embedding_forward(benchmark, impl):
    kernels, k = _kernels(impl)
    ids = np.random.default_rng(0).integers(0, V, size=(N, T))
    table = random_f32(V, D, seed=1)
    args = kernels.prepare(ids, table)
    np.testing.assert_array_equal(kernels.to_numpy(k.embedding_forward(*args)), ref.embedding_forward(ids, table))
    timed(benchmark, k.embedding_forward, *args, group="embedding_forward", row=f"{N}x{T} ids, {V}x{D}",
          impl=impl, work=N * T * D, unit="Gelem/s", row_name="shape")


@pytest.mark.parametrize("impl", IMPLS)
def test_embedding_backward(benchmark, impl):
    kernels, k = _kernels(impl)
    ids = np.random.default_rng(0).integers(0, V, size=(N, T))
    dy = random_f32(N, T, D, seed=2)
    dyk, idsk = kernels.prepare(dy, ids)
    out = kernels.to_numpy(k.embedding_backward(dyk, idsk, V))
    np.testing.assert_allclose(out, ref.embedding_backward(dy, ids, V), rtol=1e-5, atol=1e-6)
    timed(benchmark, k.embedding_backward, dyk, idsk, V, group="embedding_backward", row=f"{N}x{T} ids, {V}x{D}",
          impl=impl, work=N * T * D, unit="Gelem/s", row_name="shape")

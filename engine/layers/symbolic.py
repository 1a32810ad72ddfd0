"""Symbolic recording: what a layer does when it is called on engine.layers.Input, to build a functional model.

Input(shape) stands for data that does not exist yet: its `.output` is a KerasTensor, a symbolic tensor with a
shape (None where the size is unknown, the batch first) and a dtype. Calling a layer on a KerasTensor records
the call (a Node: the layer, its arguments with KerasTensors where tensors go, its outputs) and returns new
KerasTensors. Model(inputs, outputs) collects the nodes between them in order; calling the model replays
them on real tensors.

How a call learns its output shape: the layer is built from the symbolic shapes, then run twice, without
gradients, on zeros in which every unknown size is 2 and then 3 (the "probes"). An output size that differs
between the two probes depends on an unknown size, so it is None.

This module sits below the layers (engine/layers/base.py calls it from Layer.__call__); the model that
replays the recorded nodes is engine/functional.py.
"""
import itertools

import numpy as np

from .. import serialization
from ..tensor import Tensor, no_grad

_PROBE_SIZES = (2, 3)
_node_ids = itertools.count()          # creation order: a node always comes after the nodes it reads from


class KerasTensor:
    """A symbolic tensor: the shape (None where unknown) and dtype of a value a functional model will compute,
    and how: by `node` (output number `index`), or as the model's input (`input_layer`)."""

    def __init__(self, shape, dtype="float32", node=None, index=0, input_layer=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))
        self.node, self.index, self.input_layer = node, index, input_layer

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def name(self):
        return self.input_layer.name if self.node is None else f"{self.node.layer.name}:{self.index}"

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, dtype=None, copy=None):
        raise TypeError("KerasTensor: a symbolic tensor has no values; it only describes the input or output of "
                        "a layer in a functional model. Build the model with layers (Dense, Add, ...), then call "
                        "the model on data.")

    def _merge(self, other, layer_name, symbol):
        if not isinstance(_symbolic(other), KerasTensor):
            raise TypeError(f"KerasTensor: `{symbol}` joins two symbolic tensors (it becomes a {layer_name} layer). "
                            f"Received: {type(other).__name__}. Wrap constants in a layer instead")
        merge = serialization.get_registered_object(layer_name)       # engine.layers.merging, by name
        return merge()([self, other])

    def __add__(self, other): return self._merge(other, "Add", "+")
    def __sub__(self, other): return self._merge(other, "Subtract", "-")
    def __mul__(self, other): return self._merge(other, "Multiply", "*")


class Node:
    """One recorded layer call: layer(*args, **kwargs) -> outputs. args and kwargs hold KerasTensors where
    tensors go; `single` says whether the layer returned one tensor (or a tuple of them)."""

    def __init__(self, layer, args, kwargs, outputs, single):
        self.layer, self.args, self.kwargs, self.outputs, self.single = layer, args, kwargs, outputs, single
        self.id = next(_node_ids)

    def inputs(self):
        return [t for t in _flatten((self.args, self.kwargs)) if isinstance(t, KerasTensor)]


# ------------------------------------------------------------------------------------------ recording calls


def _flatten(value):
    """Every leaf of nested lists, tuples and dicts."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _flatten(item)]
    return [value]


def map_leaves(value, fn):
    """value with fn applied to every leaf of its nested lists, tuples and dicts."""
    if isinstance(value, (list, tuple)):
        return type(value)(map_leaves(item, fn) for item in value)
    if isinstance(value, dict):
        return {key: map_leaves(item, fn) for key, item in value.items()}
    return fn(value)


def _symbolic(leaf):
    """An InputLayer stands for its KerasTensor (the one whose input_layer it is); anything else is itself."""
    output = getattr(leaf, "output", None) if not isinstance(leaf, (KerasTensor, Tensor, np.ndarray)) else None
    return output if isinstance(output, KerasTensor) and output.input_layer is leaf else leaf


def is_symbolic(inputs, args=(), kwargs=None):
    """True when a layer call gets a KerasTensor (or an Input) anywhere in its arguments."""
    return any(isinstance(_symbolic(leaf), KerasTensor) for leaf in _flatten((inputs, args, kwargs or {})))


def shape_of(value):
    """The shape of a tensor, array, KerasTensor or Input (batch first), or a list of them for a list."""
    value = map_leaves(value, _symbolic)
    if isinstance(value, (list, tuple)):
        return [shape_of(item) for item in value]
    return tuple(np.shape(value) if not hasattr(value, "shape") else value.shape)


def _probe(value, size):
    """value with every KerasTensor replaced by zeros of its shape, unknown sizes set to `size`."""
    def fill(leaf):
        if not isinstance(leaf, KerasTensor):
            return leaf
        array = np.zeros(tuple(size if d is None else d for d in leaf.shape), dtype=leaf.dtype)
        return array if array.dtype.kind in "iub" else Tensor._wrap(array)
    return map_leaves(value, fill)


def call_symbolic(layer, inputs, args, kwargs, training):
    """Record layer(inputs, *args, **kwargs) in the graph and return its output KerasTensor(s)."""
    call_args = map_leaves((inputs,) + tuple(args), _symbolic)
    call_kwargs = map_leaves(dict(kwargs), _symbolic)
    if not layer.built:                        # from the symbolic shapes: a Dense on an unknown size fails here
        layer._maybe_build(shape_of(call_args[0]))
    results = []
    with no_grad():
        for size in _PROBE_SIZES:
            out = layer(*_probe(call_args, size), **dict(_probe(call_kwargs, size), training=False))
            results.append(list(out) if isinstance(out, (list, tuple)) else [out])
    single = not isinstance(out, (list, tuple))
    if training is not None:
        call_kwargs["training"] = training
    node = Node(layer, call_args, call_kwargs, [], single)
    for i, (first, second) in enumerate(zip(*results)):
        if not isinstance(first, Tensor) or first.ndim != second.ndim:
            raise TypeError(f"{layer.name}: a layer in a functional model must return tensors of a fixed rank. "
                            f"Received: {type(first).__name__}")
        shape = tuple(a if a == b else None for a, b in zip(first.shape, second.shape))
        node.outputs.append(KerasTensor(shape, first.dtype, node=node, index=i))
    return node.outputs[0] if single else tuple(node.outputs)

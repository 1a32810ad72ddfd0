"""engine.functional: Keras' functional API, for models that are graphs of layers (residual connections,
several inputs) rather than one stack.

    inputs = Input(shape=(16,))
    h = Dense(16, activation='relu')(inputs)
    x = Add()([inputs, h])                      # a residual connection (or simply inputs + h)
    outputs = Dense(1)(LayerNormalization()(x))
    model = Model(inputs, outputs)              # a Functional model: compile, fit, evaluate, predict, save

Input(shape) stands for data that does not exist yet: its `.output` is a KerasTensor, a symbolic tensor with a
shape (None where the size is unknown, the batch first) and a dtype. Calling a layer on a KerasTensor records
the call (a Node: the layer, its arguments with KerasTensors where tensors go, its outputs) and returns new
KerasTensors. Model(inputs, outputs) collects the nodes between them in order; calling the model replays
them on real tensors.

How a call learns its output shape: the layer is built from the symbolic shapes, then run twice, without
gradients, on zeros in which every unknown size is 2 and then 3 (the "probes"). An output size that differs
between the two probes depends on an unknown size, so it is None.
"""
import itertools

import numpy as np

from .layers.core import InputLayer
from .models import Model, _as_array
from .saving import deserialize_layer, register_serializable
from .tensor import Tensor, no_grad

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
        from .layers import merging
        if not isinstance(other, (KerasTensor, InputLayer)):
            raise TypeError(f"KerasTensor: `{symbol}` joins two symbolic tensors (it becomes a {layer_name} layer). "
                            f"Received: {type(other).__name__}. Wrap constants in a layer instead")
        return getattr(merging, layer_name)()([self, other])

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


def _map(value, fn):
    """value with fn applied to every leaf of its nested lists, tuples and dicts."""
    if isinstance(value, (list, tuple)):
        return type(value)(_map(item, fn) for item in value)
    if isinstance(value, dict):
        return {key: _map(item, fn) for key, item in value.items()}
    return fn(value)


def _symbolic(leaf):
    return leaf.output if isinstance(leaf, InputLayer) else leaf


def is_symbolic(inputs, args=(), kwargs=None):
    """True when a layer call gets a KerasTensor (or an Input) anywhere in its arguments."""
    return any(isinstance(leaf, (KerasTensor, InputLayer)) for leaf in _flatten((inputs, args, kwargs or {})))


def shape_of(value):
    """The shape of a tensor, array, KerasTensor or Input (batch first), or a list of them for a list."""
    value = _map(value, _symbolic)
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
    return _map(value, fill)


def call_symbolic(layer, inputs, args, kwargs, training):
    """Record layer(inputs, *args, **kwargs) in the graph and return its output KerasTensor(s)."""
    call_args = _map((inputs,) + tuple(args), _symbolic)
    call_kwargs = _map(dict(kwargs), _symbolic)
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


# ------------------------------------------------------------------------------------------ the model


class _Batch:
    """The arrays of a model with several inputs, indexed together: batch[index] picks the same samples
    from each, len(batch) is the number of samples (what fit, evaluate and predict need)."""

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return _Batch(a[index] for a in self.arrays)


@register_serializable()
class Functional(Model):
    """A model that is a graph of layers: Model(inputs, outputs), with inputs from Input(...) (one, or a list)
    and outputs the KerasTensors that layers called on them returned (one, or a list)."""

    _rebuilds_layers = True                    # saving: from_config gets custom_objects, rebuilds every layer

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._nested_inputs = isinstance(inputs, (list, tuple))
        self._input_tensors = [_symbolic(t) for t in (inputs if self._nested_inputs else [inputs])]
        for t in self._input_tensors:
            if not isinstance(t, KerasTensor) or t.input_layer is None:
                raise TypeError(f"Functional: expected `inputs` made by engine.layers.Input(...). "
                                f"Received: {type(t).__name__}")
        self._nested_outputs = isinstance(outputs, (list, tuple))
        self._output_tensors = [_symbolic(t) for t in (outputs if self._nested_outputs else [outputs])]
        for t in self._output_tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Functional: expected `outputs` to be KerasTensors returned by layers called on "
                                f"the inputs. Received: {type(t).__name__}")
        self._nodes = self._order_nodes()
        self._layers = []
        for node in self._nodes:
            if all(node.layer is not seen for seen in self._layers):
                self._layers.append(node.layer)
                self._sublayers.append(node.layer)
        self._list_input = len(self._input_tensors) > 1 or self._nested_inputs
        self.built = True

    def _order_nodes(self):
        """The nodes between the inputs and the outputs, in the order they were recorded (so each comes after the
        nodes it takes tensors from, and the layers are listed as the code wrote them)."""
        order, seen = [], set()
        known = {id(t) for t in self._input_tensors}

        def visit(tensor):
            if tensor.node is None:
                if id(tensor) not in known:
                    raise ValueError(f"Functional: expected every Input the outputs depend on to be in `inputs`. "
                                     f"Received: outputs that need Input '{tensor.name}', which is not")
                return
            if id(tensor.node) in seen:
                return
            seen.add(id(tensor.node))
            for t in tensor.node.inputs():
                visit(t)
            order.append(tensor.node)
        for t in self._output_tensors:
            visit(t)
        return sorted(order, key=lambda node: node.id)

    # ---- structure
    @property
    def inputs(self):
        return list(self._input_tensors)

    @property
    def outputs(self):
        return list(self._output_tensors)

    @property
    def layers(self):
        """The input layers, then every other layer in the order the graph runs them (as Keras lists them)."""
        return [t.input_layer for t in self._input_tensors] + list(self._layers)

    def get_layer(self, name):
        """The layer called `name`."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}. Layers: {[layer.name for layer in self.layers]}")

    def compute_output_shape(self, input_shape):
        shapes = [t.shape for t in self._output_tensors]
        return shapes if self._nested_outputs else shapes[0]

    def _summary_rows(self):
        rows = [(f"{t.input_layer.name} (InputLayer)", t.shape, 0, True) for t in self._input_tensors]
        for node in self._nodes:
            shape = node.outputs[0].shape if len(node.outputs) == 1 else [t.shape for t in node.outputs]
            rows.append((f"{node.layer.name} ({type(node.layer).__name__})", shape, node.layer.count_params(),
                         node.layer.trainable))
        return rows

    # ---- running
    def _input_arrays(self, where, x):
        if not self._list_input:
            return super()._input_arrays(where, x)
        n = len(self._input_tensors)
        if isinstance(x, _Batch):
            return x
        if not isinstance(x, (list, tuple)) or len(x) != n:
            raise ValueError(f"{where}: expected x to be a list of {n} arrays, one per input of the model "
                             f"({[t.name for t in self._input_tensors]}). Received: {type(x).__name__}"
                             f"{' of length ' + str(len(x)) if isinstance(x, (list, tuple)) else ''}")
        arrays = [_as_array(where, f"x[{i}]", a) for i, a in enumerate(x)]
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"{where}: expected every input array to hold the same number of samples. "
                             f"Received: lengths {[len(a) for a in arrays]}")
        return _Batch(arrays)

    def _require_compiled(self, where):
        if self._nested_outputs:
            raise ValueError(f"{where}: training needs one loss per output, and engine supports one output. "
                             f"Received: a model with outputs={[t.name for t in self._output_tensors]}; build it "
                             f"with Model(inputs, output) for training (predict works with several outputs)")
        super()._require_compiled(where)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x as NumPy arrays: one array, or a list with several outputs."""
        if not self._nested_outputs:
            return super().predict(x, batch_size, verbose, steps, callbacks)
        inputs = self._input_tensors if self._nested_inputs else self._input_tensors[0]
        return [Functional(inputs, t).predict(x, batch_size, verbose, steps, callbacks) for t in self._output_tensors]

    def __call__(self, inputs, training=None, **kwargs):
        if isinstance(inputs, _Batch):
            inputs = inputs.arrays
        return super().__call__(inputs, training=training, **kwargs)

    def call(self, inputs, training=None):
        given = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(given) != len(self._input_tensors):
            raise ValueError(f"{self.name}: expected {len(self._input_tensors)} inputs. Received: {len(given)}")
        values = {}
        for t, value in zip(self._input_tensors, given):
            expected = t.shape[1:]
            if value.ndim != len(t.shape) or any(e is not None and e != d for e, d in zip(expected, value.shape[1:])):
                raise ValueError(f"{self.name}: expected input '{t.name}' of shape {t.shape}. "
                                 f"Received: shape={tuple(value.shape)}")
            values[id(t)] = value
        fill = lambda leaf: values[id(leaf)] if isinstance(leaf, KerasTensor) else leaf   # noqa: E731
        for node in self._nodes:
            kwargs = _map(node.kwargs, fill)
            kwargs.setdefault("training", training)
            out = node.layer(*_map(node.args, fill), **kwargs)
            for t, value in zip(node.outputs, [out] if node.single else out):
                values[id(t)] = value
        outputs = [values[id(t)] for t in self._output_tensors]
        return outputs if self._nested_outputs else outputs[0]

    # ---- saving
    def get_config(self):
        """The graph as JSON: the input layers, the layers, and the calls (nodes) in order; a tensor in a
        call's arguments is written {"input": i} or {"node": n, "output": j}."""
        where = {}
        for i, t in enumerate(self._input_tensors):
            where[id(t)] = {"input": i}
        for n, node in enumerate(self._nodes):
            for j, t in enumerate(node.outputs):
                where[id(t)] = {"node": n, "output": j}

        def encode(value, layer):
            if isinstance(value, KerasTensor):
                return {"tensor": where[id(value)]}
            if isinstance(value, tuple):
                return {"tuple": [encode(v, layer) for v in value]}
            if isinstance(value, list):
                return [encode(v, layer) for v in value]
            if isinstance(value, dict):
                return {"dict": {k: encode(v, layer) for k, v in value.items()}}
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            raise TypeError(f"{self.name}.get_config: the call of layer '{layer.name}' has an argument that is "
                            f"not a tensor or a plain value ({type(value).__name__}); pass arrays as model inputs")
        layer_index = {id(layer): i for i, layer in enumerate(self._layers)}
        return {"name": self.name, "trainable": self.trainable,
                "input_layers": [t.input_layer.get_config() for t in self._input_tensors],
                "nested_inputs": self._nested_inputs, "nested_outputs": self._nested_outputs,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self._layers],
                "nodes": [{"layer": layer_index[id(node.layer)], "args": encode(list(node.args), node.layer),
                           "kwargs": encode(node.kwargs, node.layer)} for node in self._nodes],
                "outputs": [where[id(t)] for t in self._output_tensors]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild the graph: new input layers and layers, then every call replayed on KerasTensors."""
        config = dict(config)
        inputs = [InputLayer.from_config(c).output for c in config.pop("input_layers")]
        layers = [deserialize_layer(spec, custom_objects, "Functional.from_config") for spec in config.pop("layers")]
        made = []

        def find(ref):
            return inputs[ref["input"]] if "input" in ref else made[ref["node"]][ref["output"]]

        def decode(value):
            if isinstance(value, list):
                return [decode(v) for v in value]
            if isinstance(value, dict):
                if "tensor" in value:
                    return find(value["tensor"])
                if "tuple" in value:
                    return tuple(decode(v) for v in value["tuple"])
                return {k: decode(v) for k, v in value["dict"].items()}
            return value
        for node in config.pop("nodes"):
            out = layers[node["layer"]](*decode(node["args"]), **decode(node["kwargs"]))
            made.append(list(out) if isinstance(out, (list, tuple)) else [out])
        outputs = [find(ref) for ref in config.pop("outputs")]
        nested_in, nested_out = config.pop("nested_inputs"), config.pop("nested_outputs")
        return cls(inputs if nested_in else inputs[0], outputs if nested_out else outputs[0], **config)


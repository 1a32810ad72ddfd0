"""engine.functional: Keras' functional API, for models that are graphs of layers (residual connections,
several inputs) rather than one stack.

    inputs = Input(shape=(16,))
    h = Dense(16, activation='relu')(inputs)
    x = Add()([inputs, h])                      # a residual connection (or simply inputs + h)
    outputs = Dense(1)(LayerNormalization()(x))
    model = Model(inputs, outputs)              # a Functional model: compile, fit, evaluate, predict, save

The symbolic half (KerasTensor, Node, recording a layer call) is in engine/layers/symbolic.py, below the
layers that record their calls; this file holds the model that replays them.
"""
from . import serialization
from .layers.core import InputLayer
from .layers.symbolic import KerasTensor, _symbolic, map_leaves
# The one import that runs both ways with models.py: Functional is a Model, and Model(inputs, outputs) (in
# Model.__new__) makes a Functional, as Keras does, so models.py imports this module when that call is made.
from .models import Model, _as_array

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


class Functional(Model):
    """A model that is a graph of layers: Model(inputs, outputs), with inputs from Input(...) (one, or a list)
    and outputs the KerasTensors that layers called on them returned (one, or a list)."""

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
            kwargs = map_leaves(node.kwargs, fill)
            kwargs.setdefault("training", training)
            out = node.layer(*map_leaves(node.args, fill), **kwargs)
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
        layers = [serialization.deserialize(spec, custom_objects, "Functional.from_config") for spec in config.pop("layers")]
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


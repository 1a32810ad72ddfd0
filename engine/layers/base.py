"""The Layer base class: Keras 3's contract.

    __init__(**kwargs)   check the hyperparameters (nothing is known about the input yet)
    build(input_shape)   create the weights with add_weight, now that the input shape is known
    call(inputs, training=None)   compute the output from Tensors, with engine.ops
    get_config()         the constructor arguments, so Layer.from_config(config) rebuilds the layer

Masks (Keras semantics): a layer with supports_masking = True passes a mask on to its output through
compute_mask (by default unchanged); a layer whose call takes a `mask` argument receives the mask of its
input. Embedding(mask_zero=True) makes the mask and the recurrent layers skip the padded steps.

Calling a layer (`layer(x)`) converts x to a Tensor, builds the layer on first use, runs call, and
collects the activity regularization. Weights are Tensors with requires_grad=True, so a loss computed
from the output can be backpropagated into them: `loss.backward()` fills `layer.kernel.grad`. Called on a
symbolic input (engine.layers.Input), a layer records the call for a functional model (engine/layers/symbolic.py).
"""
import inspect
import weakref

import numpy as np

from .. import activations, initializers, ops, regularizers, serialization
from ..tensor import Tensor, no_grad
from . import symbolic
from ._args import shape_arg

_OPTION_KINDS = {"activation": activations, "initializer": initializers, "regularizer": regularizers}


def _option_kind(name):
    kind = next((k for k in _OPTION_KINDS if name.endswith(k)), None)
    if kind is None:
        raise ValueError(f"Layer option names end with one of {sorted(_OPTION_KINDS)}. Received: {name!r}")
    return kind

_name_counts = {}
_masks = weakref.WeakKeyDictionary()            # Tensor -> its Keras mask (a bool array), as Keras' _keras_mask


def get_mask(tensor):
    """The mask a layer attached to its output tensor (Embedding(mask_zero=True) makes one), or None:
    a bool array, True where a time step holds data, False where it is padding."""
    return _masks.get(tensor) if isinstance(tensor, Tensor) else None


def set_mask(tensor, mask):
    """Attach `mask` (or None: remove it) to `tensor`, for the layers it is passed to next."""
    if mask is None:
        _masks.pop(tensor, None)
    else:
        _masks[tensor] = np.asarray(mask, dtype=bool)


def _unique_name(prefix):
    """'dense', then 'dense_1', 'dense_2', ... as Keras names layers."""
    count = _name_counts.get(prefix, 0)
    _name_counts[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def clear_session():
    """Restart the automatic layer names ('dense', 'dense_1', ...)."""
    _name_counts.clear()


_calls_in_progress = []      # the layers whose call is running, outermost first: only the outermost clears losses


def _is_structure(inputs, list_input):
    """Whether a call's inputs are a structure of tensors (passed to call as they are) rather than the data of
    one tensor: a dict, or a list/tuple whose items are tensors or arrays (a list of numbers is data)."""
    if isinstance(inputs, dict):
        return True
    if not isinstance(inputs, (list, tuple)) or not inputs:
        return False
    return list_input or all(isinstance(item, (Tensor, np.ndarray, list, tuple, dict)) and
                             (not isinstance(item, (list, tuple)) or _is_structure(item, False)) for item in inputs)


def _as_input(leaf):
    """A leaf of a structured input as a Tensor (integer and bool arrays, ids and masks, stay arrays)."""
    if isinstance(leaf, Tensor) or (isinstance(leaf, np.ndarray) and leaf.dtype.kind in "iub"):
        return leaf
    return ops.convert_to_tensor(leaf)


class Layer(serialization.Registered):
    """Base class of every layer. Subclass it and override build and call (and get_config when the
    constructor takes arguments) to write your own."""

    supports_masking = False
    registry_kind = "layer"                    # engine's own layer and model classes: load_model finds them by name

    def __init__(self, trainable=True, name=None, dtype=None, input_shape=None, input_dim=None,
                 activity_regularizer=None, **kwargs):
        self.__dict__.setdefault("_sublayers", [])
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unrecognized keyword arguments: {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: expected `name` to be a non-empty string. Received: name={name!r}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: only float32 layers are supported. Received: dtype={dtype!r}")
        self.name = name or _unique_name(serialization.snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        self.built = False
        self._weights = []                       # (Tensor, regularizer) in creation order
        self._losses = []                        # activity penalties from the latest call
        self._set_options(activity_regularizer=activity_regularizer)
        if input_dim is not None:
            input_shape = (input_dim,)
        self._input_shape_arg = None if input_shape is None else shape_arg(type(self).__name__, input_shape,
                                                                             "input_shape")

    def __setattr__(self, key, value):
        # Layers kept as attributes (in a subclassed Model, or a block of layers) are tracked, so their
        # weights are this layer's weights too.
        tracked = self.__dict__.setdefault("_sublayers", [])     # also before Layer.__init__ has run
        items = value if isinstance(value, (list, tuple)) and key != "_sublayers" else (value,)
        for item in items:
            if isinstance(item, Layer) and item is not self and all(item is not t for t in tracked):
                tracked.append(item)
        object.__setattr__(self, key, value)

    # ---- the contract
    def build(self, input_shape):
        self.built = True

    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__}: a Layer subclass must implement call(inputs)")

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape (batch dimension None); by default found by running the
        layer once on a batch of one."""
        batch = tuple(1 if d is None else d for d in input_shape)
        with no_grad():
            out = self(np.zeros(batch, dtype=np.float32), training=False)
        return (None,) + tuple(out.shape[1:])

    def compute_mask(self, inputs, mask=None):
        """The mask of the output, given the input and its mask: by default the input's mask."""
        return mask

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        """{'input_shape': the shape the layer was built with, or None}: what build_from_config needs."""
        shape = getattr(self, "_build_shape", None)
        if shape is None and self.built and self._input_shape_arg is not None:
            shape = (None,) + tuple(self._input_shape_arg)
        return {"input_shape": shape}

    def build_from_config(self, config):
        """Create the weights from get_build_config()'s input shape (as Keras does when it loads a model)."""
        shape = config.get("input_shape")
        if shape is not None:
            self._maybe_build(tuple(shape))

    # ---- Keras options that name a function: activations, initializers, regularizers
    def _set_options(self, **options):
        """Store each option as an attribute of the same name, resolved by what its name ends with:
        '...activation' by activations.get, '..._initializer' by initializers.get, '..._regularizer' by
        regularizers.get (so a string, a callable or a config dict is accepted as Keras accepts it)."""
        for name, value in options.items():
            setattr(self, name, _OPTION_KINDS[_option_kind(name)].get(value))

    def _options_config(self, *names):
        """The named options, serialized for get_config (the inverse of _set_options)."""
        return {name: _OPTION_KINDS[_option_kind(name)].serialize(getattr(self, name)) for name in names}

    # ---- calling
    _list_input = False            # True for layers that take a list of tensors (Add, Concatenate, ...)

    def __call__(self, inputs, *args, training=None, **kwargs):
        if symbolic.is_symbolic(inputs, args, kwargs):           # building a functional model: record the call
            return symbolic.call_symbolic(self, inputs, args, kwargs, training)
        if _is_structure(inputs, self._list_input):            # a list, tuple or dict reaches call as it is
            x = symbolic.map_leaves(inputs, _as_input)
            self._maybe_build(symbolic.map_leaves(x, lambda t: tuple(t.shape)) if not isinstance(x, tuple)
                              else [tuple(t.shape) for t in x])
        else:
            x = inputs if isinstance(inputs, Tensor) else ops.convert_to_tensor(inputs)
            self._maybe_build(tuple(x.shape))
        outermost = not _calls_in_progress
        if outermost:                                            # add_loss and activity penalties of this call
            self._clear_losses()
        _calls_in_progress.append(self)
        try:
            return self._call_and_mask(x, args, kwargs, training)
        finally:
            _calls_in_progress.pop()

    def _call_and_mask(self, x, args, kwargs, training):
        if self._accepts_training():
            kwargs["training"] = training
        mask = kwargs.pop("mask", None)
        mask = get_mask(x) if mask is None else np.asarray(ops.to_array(mask), dtype=bool)
        if mask is not None and "mask" in self._call_parameters():
            kwargs["mask"] = mask
        out = self.call(x, *args, **kwargs)
        if self.supports_masking:
            first = out[0] if isinstance(out, (list, tuple)) else out
            out_mask = self.compute_mask(x, mask)
            set_mask(first, out_mask[0] if isinstance(out_mask, (list, tuple)) else out_mask)
        if self.activity_regularizer is not None:
            self.add_loss(self.activity_regularizer(out))             # unscaled, as in Keras 3
        return out

    # ---- losses made in call
    def add_loss(self, loss):
        """Add a scalar to the training loss, from inside call (a VAE's KL term, a penalty): fit adds every
        loss its layers added during the forward pass. They are cleared when the next forward pass starts."""
        value = ops.convert_to_tensor(loss)
        if value.size != 1:
            raise ValueError(f"{self.name}.add_loss: expected a scalar loss (one value). Received: shape={value.shape}")
        self._losses.append(ops.reshape(value, ()))

    def _clear_losses(self):
        self._losses = []
        for layer in self._sublayers:
            layer._clear_losses()

    def zero_grad(self):
        """Forget the gradients of every weight (weight.grad = None), before the next loss.backward()."""
        for weight in self.weights:
            weight.grad = None

    def _maybe_build(self, input_shape):
        """Build on first use, from the shape of the input (a list of shapes for a list input)."""
        if not self.built:
            self._build_shape = input_shape            # saved models rebuild from it
            self.build(input_shape)
            self.built = True

    def _call_parameters(self):
        cached = type(self).__dict__.get("_call_parameter_names")
        if cached is None:
            cached = frozenset(inspect.signature(self.call).parameters)
            setattr(type(self), "_call_parameter_names", cached)
        return cached

    def _accepts_training(self):
        cached = type(self).__dict__.get("_call_takes_training")
        if cached is None:
            params = inspect.signature(self.call).parameters
            cached = "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
            setattr(type(self), "_call_takes_training", cached)
        return cached

    # ---- weights
    def add_weight(self, shape=None, initializer="glorot_uniform", dtype=None, trainable=True, regularizer=None,
                   name=None):
        """Create a weight Tensor of `shape`, drawn by `initializer`; trainable weights require gradients."""
        shape = () if shape is None else shape_arg(f"{type(self).__name__}.add_weight", shape, "shape")
        value = initializers.get(initializer)(shape, dtype="float32")
        weight = Tensor._wrap(np.ascontiguousarray(value, dtype=np.float32))
        weight.requires_grad = bool(trainable)
        weight.name = f"{self.name}/{name or 'weight'}"     # shown in error messages and saved files
        self._weights.append((weight, regularizers.get(regularizer), bool(trainable)))
        return weight

    @property
    def weights(self):
        """Every weight of this layer and the layers it holds, in creation order."""
        own = [w for w, _, _ in self._weights]
        return own + [w for layer in self._sublayers for w in layer.weights if all(w is not o for o in own)]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        own = [w for w, _, trainable in self._weights if trainable]
        return own + [w for layer in self._sublayers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        trainable = self.trainable_weights
        return [w for w in self.weights if all(w is not t for t in trainable)]

    @property
    def losses(self):
        """Regularization penalties: weight regularizers of trainable weights and the activity
        regularization of the latest call, for this layer and the ones it holds."""
        out = [reg(w) for w, reg, _ in self._weights if reg is not None and self.trainable]
        out += self._losses
        for layer in self._sublayers:
            out += layer.losses
        return out

    def get_weights(self):
        """Copies of the weights as NumPy arrays, in Keras order (Dense: [kernel, bias])."""
        return [w.data.copy() for w in self.weights]

    def set_weights(self, weights):
        """Load NumPy arrays into the weights, in get_weights() order; shapes must match."""
        current = self.weights
        if len(weights) != len(current):
            raise ValueError(f"{self.name}: set_weights expected a list of {len(current)} arrays. "
                             f"Received: {len(weights)} arrays")
        arrays = [np.asarray(w) for w in weights]
        for w, a in zip(current, arrays):
            if a.shape != w.shape:
                raise ValueError(f"{self.name}: set_weights expected an array of shape {w.shape} for weight "
                                 f"'{w.name}'. Received: shape={a.shape}")
        for w, a in zip(current, arrays):
            np.copyto(w.data, a, casting="unsafe")          # in place: optimizers keep tracking it

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

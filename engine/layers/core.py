"""Core layers: Input, Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, GaussianNoise, Flatten, Lambda.
Shapes: N batch, D input features, U units."""
import inspect
import numbers

import numpy as np

from .. import activations, ops, random, serialization
from ._args import fraction, positive_int, shape_arg
from .base import Layer
from .symbolic import KerasTensor


class InputLayer(Layer):
    """Declares the input shape (without the batch dimension): the first item of a Sequential model, or the
    input of a functional model (calling a layer on it records the call; `.output` is its KerasTensor).
    dtype: float32 (default), an integer type for token ids, or bool for masks."""

    def __init__(self, shape=None, batch_size=None, name=None, dtype=None, **kwargs):
        if shape is None:
            raise ValueError("InputLayer: expected `shape`, the input shape without the batch dimension "
                             "(for example shape=(8,)). Received: shape=None")
        super().__init__(name=name, input_shape=shape_arg("InputLayer", shape, "shape"), **kwargs)
        self.shape = self._input_shape_arg
        self.batch_size = batch_size
        try:
            kind = np.dtype(dtype or "float32")
        except TypeError:
            kind = None
        if kind is None or kind.kind not in "fiub":
            raise ValueError(f"InputLayer: expected a float, integer or bool dtype. Received: dtype={dtype!r}")
        self.input_dtype = str(kind)
        self.output = KerasTensor((batch_size,) + self.shape, self.input_dtype, input_layer=self)

    def call(self, inputs):
        return inputs

    # In a functional model an Input stands for its KerasTensor: `inputs + h` is Add()([inputs, h]).
    def __add__(self, other): return self.output + other
    def __sub__(self, other): return self.output - other
    def __mul__(self, other): return self.output * other

    def get_config(self):
        config = {"name": self.name, "shape": list(self.shape), "batch_size": self.batch_size}
        if self.input_dtype != "float32":
            config["dtype"] = self.input_dtype
        return config


def Input(shape=None, batch_size=None, name=None, dtype=None):
    """The input of a model: `Sequential([Input(shape=(8,)), Dense(4)])`, or a functional model's
    `inputs = Input(shape=(8,)); outputs = Dense(4)(inputs); Model(inputs, outputs)`."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype)


class Dense(Layer):
    """Fully connected layer: y = activation(x @ kernel + bias).    Input (..., D) -> output (..., U).

    kernel (D, U) and bias (U,) are stored in Keras' layout, so weights move between Keras and engine."""

    supports_masking = True                  # a mask on the input passes through to the output

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = positive_int("Dense", "units", units)
        self.use_bias = bool(use_bias)
        self._set_options(activation=activation, kernel_initializer=kernel_initializer,
                          bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                          bias_regularizer=bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': expected an input of shape (batch, ..., features) with a known "
                             f"feature size. Received: input_shape={tuple(input_shape)}")
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, name="kernel")     # (D, U)
        self.bias = self.add_weight((self.units,), self.bias_initializer, regularizer=self.bias_regularizer,
                                    name="bias") if self.use_bias else None                  # (U,)
        self.built = True

    def call(self, inputs):
        if inputs.ndim < 2 or inputs.shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"Dense '{self.name}': expected input with last dimension {self.kernel.shape[0]} "
                             f"(the layer was built for it). Received: input.shape={inputs.shape}")
        fused = activations.dense_kernel_name(self.activation)
        if fused is not None:                    # one kernel: GEMM, bias and activation together
            name, params = fused
            return ops.dense(inputs, self.kernel, self.bias, name, **params)          # (..., U)
        return self.activation(ops.dense(inputs, self.kernel, self.bias))            # softmax, custom ones

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                **self._options_config("activation", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                                       "bias_regularizer")}


class Activation(Layer):
    """Applies an activation function: Activation('relu')."""

    supports_masking = True                  # a mask on the input passes through to the output

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_options(activation=activation)

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), **self._options_config("activation")}


class ReLU(Layer):
    """max(x, 0), with Keras' options: x < threshold gives negative_slope * (x - threshold); the output is
    capped at max_value."""

    supports_masking = True                  # a mask on the input passes through to the output

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"ReLU: expected max_value >= 0 or None. Received: max_value={max_value}")
        if negative_slope < 0:
            raise ValueError(f"ReLU: expected negative_slope >= 0. Received: negative_slope={negative_slope}")
        if threshold < 0:
            raise ValueError(f"ReLU: expected threshold >= 0. Received: threshold={threshold}")
        self.max_value, self.negative_slope, self.threshold = max_value, float(negative_slope), float(threshold)

    def call(self, inputs):
        x = inputs - self.threshold if self.threshold else inputs
        if self.negative_slope:
            y = ops.leaky_relu(x, self.negative_slope)
        else:
            y = ops.relu(x)
        if self.threshold:
            y = ops.where(inputs.data >= self.threshold, inputs, y)
        if self.max_value is not None:
            y = ops.minimum(y, float(self.max_value))
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(Layer):
    """x if x > 0 else negative_slope * x (Keras' default slope for this layer is 0.3)."""

    supports_masking = True                  # a mask on the input passes through to the output

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if negative_slope < 0:
            raise ValueError(f"LeakyReLU: expected negative_slope >= 0. Received: negative_slope={negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class Softmax(Layer):
    """softmax along axis (the last by default)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        return ops.softmax(inputs, self.axis)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dropout(Layer):
    """During training, zero each input with probability `rate` and scale the rest by 1 / (1 - rate),
    so the expected value is unchanged; at inference, pass the input through. rate = 1 drops everything."""

    supports_masking = True                  # a mask on the input passes through to the output

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.noise_shape, self.seed = fraction("Dropout", "rate", rate), noise_shape, seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        shape = inputs.shape if self.noise_shape is None else tuple(
            n if s is None else s for n, s in zip(inputs.shape, self.noise_shape))
        if self.rate == 1:                       # everything dropped
            return inputs * np.zeros(shape, dtype=np.float32)
        rng = self._rng or random.generator()
        keep = (rng.random(shape) >= self.rate).astype(np.float32) / np.float32(1 - self.rate)
        return inputs * keep

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def call(self, inputs):
        if inputs.ndim < 1:
            raise ValueError(f"Flatten '{self.name}': expected an input with a batch dimension. "
                             f"Received: input.shape={inputs.shape}")
        return ops.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else int(np.prod(rest)))


class GaussianNoise(Layer):
    """During training, add noise drawn from N(0, stddev^2) to every input (a regulariser, and the "noise
    added" of a denoising model); at inference, pass the input through."""

    supports_masking = True

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or not 0 <= stddev < float("inf"):
            raise ValueError(f"GaussianNoise: expected `stddev` >= 0 and finite. Received: stddev={stddev!r}")
        self.stddev, self.seed = float(stddev), seed
        self.seed_generator = random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.stddev == 0:
            return inputs
        return inputs + random.normal(inputs.shape, stddev=self.stddev, dtype=inputs.dtype, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class Lambda(Layer):
    """A function of tensors as a layer: Lambda(lambda x: ops.square(x)), or Lambda(fn, arguments={...}) to pass
    keyword arguments. A list input reaches the function as a list. The function may take `mask` and
    `training`. output_shape (a shape without the batch, or a function of the input shape) saves the
    probe run that otherwise finds it.

    Saving: engine never stores code in a file, so a Lambda is saved with its function's name; load it with
    custom_objects={'name': function} (a lambda has no name: use def)."""

    _list_input = True

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: expected `function` to be callable. Received: {type(function).__name__}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Lambda: expected `arguments` to be a dict. Received: {type(arguments).__name__}")
        if mask is not None and not callable(mask):
            raise TypeError(f"Lambda: expected `mask` to be None or a function. Received: {type(mask).__name__}")
        self.function, self.arguments, self.mask = function, dict(arguments or {}), mask
        self.output_shape_arg = output_shape if output_shape is None or callable(output_shape) else \
            shape_arg("Lambda", output_shape, "output_shape")
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):          # a builtin without a signature takes neither
            params = {}
        self._takes = {name for name in ("mask", "training") if name in params}

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if "mask" in self._takes:
            kwargs["mask"] = mask
        if "training" in self._takes:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.mask(inputs, mask) if self.mask is not None else mask

    def compute_output_shape(self, input_shape):
        if callable(self.output_shape_arg):
            return tuple(self.output_shape_arg(input_shape))
        if self.output_shape_arg is not None:
            batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
            return (batch,) + tuple(self.output_shape_arg)
        return super().compute_output_shape(input_shape)

    def get_config(self):
        name = getattr(self.function, "__name__", None)
        if name is None or name == "<lambda>":
            raise ValueError(f"Lambda '{self.name}': a lambda cannot be saved, since engine never stores code in a "
                             f"file. Define the function with def (it is saved by name) and load the model with "
                             f"custom_objects={{'name': function}}")
        if callable(self.output_shape_arg) or self.mask is not None:
            raise ValueError(f"Lambda '{self.name}': an output_shape or mask function cannot be saved; give "
                             f"output_shape as a tuple, or wrap the code in a Layer subclass")
        return {**super().get_config(), "function": name, "arguments": self.arguments,
                "output_shape": None if self.output_shape_arg is None else list(self.output_shape_arg)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        name = config.pop("function")
        function = serialization.get_registered_object(name, kind="function")
        if not callable(function):
            raise ValueError(f"Lambda: the function {name!r} is not known. Pass custom_objects={{'{name}': {name}}} "
                             f"to load_model (or use custom_object_scope)")
        return cls(function, **config)

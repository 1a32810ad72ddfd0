"""CNN layers: the Layer contract (check_layer: shapes, compute_output_shape, get_config round trip) for every
option of Conv2D, Conv1D, the pooling layers, BatchNormalization, ZeroPadding2D and Reshape; each layer vs a
NumPy formula in Keras' weight layout; summary() shapes; BatchNormalization's moving statistics (training vs
inference, save/load); bad input naming the layer and the argument; the Lab 9.2 CNN trained to a stated
accuracy; the IDX reader; the geometry helper; the tour's CNN section."""
import gzip
import re
import runpy
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import layers, ops, visualize
from engine.datasets import mnist
from engine.models import Sequential, load_model

from checks import check_layer, random_f32

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def np_conv2d(x, kernel, bias, strides, dilation, pads):
    """Direct NumPy convolution of NHWC x with Keras' (KH, KW, C, F) kernel; pads = (top, bottom, left, right)."""
    xp = np.pad(x.astype(np.float64), ((0, 0), pads[:2], pads[2:], (0, 0)))
    KH, KW, _, F = kernel.shape
    (SH, SW), (DH, DW) = strides, dilation
    OH = (xp.shape[1] - (KH - 1) * DH - 1) // SH + 1
    OW = (xp.shape[2] - (KW - 1) * DW - 1) // SW + 1
    y = np.zeros((x.shape[0], OH, OW, F))
    for i in range(OH):
        for j in range(OW):
            patch = xp[:, i * SH:i * SH + (KH - 1) * DH + 1:DH, j * SW:j * SW + (KW - 1) * DW + 1:DW, :]
            y[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return y + (0 if bias is None else bias)


# ------------------------------------------------------------------------------------------ contract

CONV2D = {
    "default": ({"filters": 4, "kernel_size": 3}, (2, 7, 9, 3), (2, 5, 7, 4)),
    "same_strided": ({"filters": 2, "kernel_size": (3, 2), "strides": 2, "padding": "same"}, (2, 7, 9, 3), (2, 4, 5, 2)),
    "dilated": ({"filters": 3, "kernel_size": 3, "dilation_rate": (2, 1), "padding": "SAME"}, (1, 8, 8, 2), (1, 8, 8, 3)),
    "channels_first": ({"filters": 5, "kernel_size": 2, "data_format": "channels_first", "strides": (1, 2)},
                       (2, 3, 6, 7), (2, 5, 5, 3)),
    "no_bias_act": ({"filters": 4, "kernel_size": 1, "use_bias": False, "activation": "relu"}, (3, 4, 4, 6), (3, 4, 4, 4)),
    "groups": ({"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same"}, (2, 5, 5, 6), (2, 5, 5, 4)),
    "init_reg": ({"filters": 2, "kernel_size": 3, "kernel_initializer": "he_normal", "bias_initializer": "ones",
                  "kernel_regularizer": "l2", "bias_regularizer": "l1", "activity_regularizer": "l2"},
                 (2, 5, 5, 1), (2, 3, 3, 2)),
}


@pytest.mark.parametrize("option", CONV2D)
def test_conv2d_contract_and_keras_formula(option):
    kwargs, in_shape, out_shape = CONV2D[option]
    layer, x, y = check_layer(layers.Conv2D, kwargs, in_shape, out_shape)
    weights = layer.get_weights()
    kernel = weights[0]
    groups = kwargs.get("groups", 1)
    assert kernel.shape == layer.kernel_size + (in_shape[-1 if layer.data_format == "channels_last" else 1] // groups,
                                                kwargs["filters"])
    xs = x if layer.data_format == "channels_last" else x.transpose(0, 2, 3, 1)
    pads = engine.ref.conv2d.geometry("t", xs.shape, layer.kernel_size, layer.strides, layer.padding,
                                      layer.dilation_rate, "channels_last")[5]
    bias = weights[1] if layer.use_bias else None
    cin, fout = kernel.shape[2], kwargs["filters"] // groups
    expect = np.concatenate([np_conv2d(xs[..., g * cin:(g + 1) * cin], kernel[..., g * fout:(g + 1) * fout],
                                       None if bias is None else bias[g * fout:(g + 1) * fout], layer.strides,
                                       layer.dilation_rate, pads) for g in range(groups)], axis=-1)
    if kwargs.get("activation") == "relu":
        expect = np.maximum(expect, 0)
    got = y.numpy() if layer.data_format == "channels_last" else y.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-5)
    if "kernel_regularizer" in kwargs:
        assert len(layer.losses) == 3


def test_conv1d_contract_and_causal_padding():
    layer, x, y = check_layer(layers.Conv1D, {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
                              (2, 10, 4), (2, 10, 3))
    kernel, bias = layer.get_weights()                                   # Keras' (K, C, F)
    assert kernel.shape == (3, 4, 3)
    expect = np_conv2d(x[:, None], kernel[None], bias, (1, 1), (1, 2), (0, 0, 4, 0))[:, 0]
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-4, atol=1e-5)
    # causal: changing the last time step leaves every earlier output alone
    x2 = x.copy()
    x2[:, -1] += 10
    np.testing.assert_array_equal(layer(x2).numpy()[:, :-1], y.numpy()[:, :-1])
    check_layer(layers.Conv1D, {"filters": 2, "kernel_size": 4, "strides": 3, "padding": "same", "groups": 2},
                (3, 11, 4), (3, 4, 2))
    first, xf, yf = check_layer(layers.Conv1D, {"filters": 2, "kernel_size": 3, "data_format": "channels_first"},
                                (2, 4, 9), (2, 2, 7))
    kernel, bias = first.get_weights()
    expect = np_conv2d(xf.transpose(0, 2, 1)[:, None], kernel[None], bias, (1, 1), (1, 1), (0, 0, 0, 0))[:, 0]
    np.testing.assert_allclose(yf.numpy(), expect.transpose(0, 2, 1), rtol=1e-4, atol=1e-5)


def test_ops_pool_sequences_and_pad():
    x = random_f32(2, 9, 3)                                              # (N, L, C)
    np.testing.assert_array_equal(ops.max_pool(x, 3).numpy(), x.reshape(2, 3, 3, 3).max(axis=2))
    np.testing.assert_allclose(ops.average_pool(x, 2, 1).numpy(), (x[:, 1:] + x[:, :-1]) / 2, rtol=1e-6)
    t = engine.tensor(random_f32(2, 3), requires_grad=True)
    padded = ops.pad(t, ((1, 0), (2, 2)), constant_values=7.0)
    assert padded.shape == (3, 7) and padded.numpy()[0, 0] == 7.0
    ops.sum(padded * padded).backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * t.numpy())
    with pytest.raises(ValueError, match="pad: engine pads with a constant only"):
        ops.pad(t, 1, mode="reflect")


POOLING = [
    (layers.MaxPooling2D, {}, (2, 7, 9, 3), (2, 3, 4, 3)),
    (layers.MaxPooling2D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 9, 3), (2, 4, 5, 3)),
    (layers.AveragePooling2D, {"pool_size": (2, 3), "strides": 1}, (2, 5, 5, 2), (2, 4, 3, 2)),
    (layers.AveragePooling2D, {"padding": "same", "data_format": "channels_first"}, (2, 3, 5, 5), (2, 3, 3, 3)),
    (layers.GlobalAveragePooling2D, {}, (2, 5, 4, 3), (2, 3)),
    (layers.GlobalMaxPooling2D, {"keepdims": True}, (2, 5, 4, 3), (2, 1, 1, 3)),
    (layers.GlobalMaxPooling2D, {"data_format": "channels_first"}, (2, 3, 5, 4), (2, 3)),
    (layers.ZeroPadding2D, {"padding": ((1, 2), (0, 3))}, (2, 4, 4, 3), (2, 7, 7, 3)),
    (layers.ZeroPadding2D, {"padding": 2, "data_format": "channels_first"}, (1, 3, 4, 4), (1, 3, 8, 8)),
    (layers.ZeroPadding2D, {"padding": (1, 0)}, (1, 4, 4, 1), (1, 6, 4, 1)),
    (layers.Reshape, {"target_shape": (3, -1)}, (2, 4, 3), (2, 3, 4)),
    (layers.BatchNormalization, {}, (8, 3, 3, 4), (8, 3, 3, 4)),
    (layers.BatchNormalization, {"axis": 1, "momentum": 0.9, "epsilon": 1e-5, "center": False, "scale": False},
     (4, 3, 5, 5), (4, 3, 5, 5)),
]


@pytest.mark.parametrize("cls, kwargs, in_shape, out_shape", POOLING,
                         ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(POOLING)])
def test_other_layers_contract(cls, kwargs, in_shape, out_shape):
    layer, x, y = check_layer(cls, kwargs, in_shape, out_shape)
    if cls is layers.MaxPooling2D and not kwargs:
        np.testing.assert_array_equal(y.numpy(), x[:, :6, :8].reshape(2, 3, 2, 4, 2, 3).max(axis=(2, 4)))
    if cls is layers.GlobalAveragePooling2D:
        np.testing.assert_allclose(y.numpy(), x.mean(axis=(1, 2)), rtol=1e-6)
    if cls is layers.ZeroPadding2D and kwargs["padding"] == ((1, 2), (0, 3)):
        np.testing.assert_array_equal(y.numpy()[:, 1:5, 0:4], x)
        assert y.numpy().sum() == pytest.approx(x.sum(), rel=1e-5)


def test_aliases_are_the_keras_classes():
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool2D is layers.AveragePooling2D
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.GlobalMaxPool2D is layers.GlobalMaxPooling2D
    layers.clear_session()
    assert [layers.Conv2D(1, 1).name, layers.MaxPooling2D().name, layers.BatchNormalization().name,
            layers.GlobalAveragePooling2D().name, layers.ZeroPadding2D().name] == \
        ["conv2d", "max_pooling2d", "batch_normalization", "global_average_pooling2d", "zero_padding2d"]


def test_layer_gradients_reach_every_weight():
    x = engine.tensor(random_f32(4, 6, 6, 2), requires_grad=True)
    stack = [layers.ZeroPadding2D(1), layers.Conv2D(3, 3, strides=2, activation="tanh"), layers.BatchNormalization(),
             layers.AveragePooling2D(2, padding="same"), layers.Conv2D(2, 1, groups=1), layers.GlobalMaxPooling2D()]
    y = x
    for layer in stack:
        y = layer(y, training=True)
    ops.sum(ops.square(y)).backward()
    for layer in stack:
        for w in layer.trainable_weights:
            assert w.grad is not None and np.abs(w.grad.numpy()).sum() > 0, w.name
    assert x.grad is not None and x.grad.shape == x.shape


# ------------------------------------------------------------------------------------------ summary, saving


def lab_model(input_shape=(28, 28, 1)):
    from runpy import run_path
    return run_path(str(EXAMPLES / "cnn_digits.py"))["build_model"](input_shape)


def test_summary_shows_every_output_shape(capsys):
    layers.clear_session()
    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.ZeroPadding2D(((1, 0), (2, 1))),
                        layers.Conv2D(8, (5, 3), strides=(2, 1), dilation_rate=(1, 2), padding="valid"),
                        layers.BatchNormalization(), layers.MaxPooling2D(3, strides=2, padding="same"),
                        layers.Conv2D(4, 3, padding="same", data_format="channels_last"),
                        layers.AveragePooling2D((2, 1)), layers.GlobalAveragePooling2D(keepdims=True),
                        layers.Reshape((-1,)), layers.Dense(3)])
    model.summary()
    out = capsys.readouterr().out
    for shape in ["(None, 29, 31, 1)", "(None, 13, 27, 8)", "(None, 13, 27, 8)", "(None, 7, 14, 8)", "(None, 7, 14, 4)",
                  "(None, 3, 14, 4)", "(None, 1, 1, 4)", "(None, 4)", "(None, 3)"]:
        assert shape in out, shape
    assert "Non-trainable params: 16" in out                            # moving_mean, moving_variance of 8
    assert model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0).shape == (2, 3)


def test_lab_model_summary_on_mnist_shapes(capsys):
    layers.clear_session()
    lab_model().summary()
    out = capsys.readouterr().out
    for shape in ["(None, 28, 28, 32)", "(None, 14, 14, 32)", "(None, 14, 14, 64)", "(None, 7, 7, 64)",
                  "(None, 3136)", "(None, 128)", "(None, 10)"]:
        assert shape in out
    assert "Total params: 421,642" in out         # 320 + 18,496 + 401,536 + 1,290 (Keras prints the same)


def test_batch_normalization_statistics_training_inference_and_saving(tmp_path):
    engine.set_seed(0)
    model = Sequential([layers.Input(shape=(4, 4, 2)), layers.Conv2D(3, 3, padding="same"),
                        layers.BatchNormalization(momentum=0.5), layers.Flatten(), layers.Dense(1)])
    bn = model.layers[1]
    assert [w.name.split("/")[-1] for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name.split("/")[-1] for w in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    x = random_f32(16, 4, 4, 2, seed=1) * 3 + 1
    conv_out = model.layers[0](x).numpy().reshape(-1, 3).astype(np.float64)
    model.predict(x, verbose=0)                                          # inference: no update
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(3))
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, np.zeros((16, 1), np.float32))               # one training step: one update
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.5 * conv_out.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.5 + 0.5 * conv_out.var(0), rtol=1e-5)
    model.fit(x, np.ones((16, 1), np.float32), epochs=3, batch_size=4, verbose=0)
    before = model.predict(x, verbose=0)
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.layers[1].moving_variance.numpy(), bn.moving_variance.numpy())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)
    bn.trainable = False                                                 # a frozen layer runs in inference mode
    frozen = bn.moving_mean.numpy().copy()
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, np.zeros((16, 1), np.float32))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), frozen)


def test_cnn_save_and_load_round_trip(tmp_path):
    engine.set_seed(1)
    model = lab_model((8, 8, 1))
    x = random_f32(6, 8, 8, 1)
    model.fit(x, np.arange(6) % 10, epochs=1, verbose=0)
    model.save(tmp_path / "cnn.keras")
    loaded = load_model(tmp_path / "cnn.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ------------------------------------------------------------------------------------------ bad input

BAD_LAYERS = [
    (lambda: layers.Conv2D(4, 3, strides=0), "Conv2D: expected strides to be a positive int or a tuple of 2 positive "
     "ints. Received: strides=0"),
    (lambda: layers.Conv2D(4, (3, -1)), "Conv2D: expected kernel_size to be a positive int or a tuple of 2 positive "
     "ints. Received: kernel_size=(3, -1)"),
    (lambda: layers.Conv2D(0, 3), "Conv2D: `filters` must be a positive int. Received: filters=0"),
    (lambda: layers.Conv2D(4, 3, padding="full"), "Conv2D: expected padding to be one of 'valid', 'same'. "
     "Received: padding='full'"),
    (lambda: layers.Conv2D(4, 3, padding="causal"), "Conv2D: expected padding to be one of 'valid', 'same'. "
     "Received: padding='causal'"),
    (lambda: layers.Conv2D(4, 3, data_format="NHWC"), "Conv2D: expected data_format to be 'channels_last' or "
     "'channels_first'. Received: data_format='NHWC'"),
    (lambda: layers.Conv2D(4, 3, groups=3), "Conv2D: expected groups to be a positive int that divides filters=4. "
     "Received: groups=3"),
    (lambda: layers.MaxPooling2D(pool_size=(2, 0)), "MaxPooling2D: expected pool_size to be a positive int or a tuple "
     "of 2 positive ints. Received: pool_size=(2, 0)"),
    (lambda: layers.AveragePooling2D(strides=-1), "AveragePooling2D: expected strides to be a positive int or a tuple "
     "of 2 positive ints. Received: strides=-1"),
    (lambda: layers.BatchNormalization(momentum=1.5), "BatchNormalization: expected `momentum` in [0, 1]. "
     "Received: momentum=1.5"),
    (lambda: layers.ZeroPadding2D(-1), "ZeroPadding2D: expected padding to be a non-negative int, a tuple of 2 "
     "(rows, columns) or ((top, bottom), (left, right)). Received: padding=-1"),
    (lambda: layers.Reshape((2, -1, -1)), "Reshape: expected target_shape to be a tuple of positive ints, at most one "
     "of them -1. Received: target_shape=(2, -1, -1)"),
]


@pytest.mark.parametrize("make, message", BAD_LAYERS, ids=[m[:30] for _, m in BAD_LAYERS])
def test_bad_hyperparameters(make, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        make()


def test_bad_inputs_name_the_layer_and_the_argument():
    conv = layers.Conv2D(4, 5, name="c1")
    with pytest.raises(ValueError, match=re.escape(
            "Conv2D 'c1': expected kernel_size=(5, 5) with dilation_rate=(1, 1) (a window of 5 along one axis) to fit "
            "the input (3, 3) with padding='valid', which gives 3 there. Received: input_shape=(2, 3, 3, 1)")):
        conv(random_f32(2, 3, 3, 1))
    with pytest.raises(ValueError, match=re.escape("Conv2D 'c2': expected an input of rank 4 (batch, height, width, "
                                                   "channels). Received: input_shape=(2, 8, 8)")):
        layers.Conv2D(4, 3, name="c2")(random_f32(2, 8, 8))
    built = layers.Conv2D(4, 3, name="c3")
    built(random_f32(1, 6, 6, 3))
    with pytest.raises(ValueError, match=re.escape("Conv2D 'c3': expected an input of rank 4 with 3 channels on axis "
                                                   "-1 (the layer was built for it). Received: input.shape=(1, 6, 6, 2)")):
        built(random_f32(1, 6, 6, 2))
    with pytest.raises(ValueError, match=re.escape("MaxPooling2D 'p': expected pool_size=(3, 3) with dilation_rate=(1, "
                                                   "1) (a window of 3 along one axis) to fit the input (2, 2) with "
                                                   "padding='valid'")):
        layers.MaxPooling2D(3, name="p")(random_f32(1, 2, 2, 1))
    with pytest.raises(ValueError, match=re.escape("Conv1D 'c4': expected an input of rank 3 (batch, length, channels). "
                                                   "Received: input_shape=(2, 8, 8, 1)")):
        layers.Conv1D(2, 3, name="c4")(random_f32(2, 8, 8, 1))
    bn = layers.BatchNormalization(name="bn")
    bn(random_f32(2, 3))
    with pytest.raises(ValueError, match=re.escape("BatchNormalization 'bn': expected an input with 3 values on axis "
                                                   "-1 (the layer was built for it). Received: input.shape=(2, 4)")):
        bn(random_f32(2, 4))
    with pytest.raises(ValueError, match=re.escape("Reshape 'r': expected target_shape=(5,) to hold the 6 values of one "
                                                   "sample. Received: input_shape=(2, 6)")):
        layers.Reshape((5,), name="r")(random_f32(2, 6))
    with pytest.raises(ValueError, match=re.escape("to fit the input (1, 1) with padding='valid', which gives 1 "
                                                   "there. Received: input_shape=(None, 1, 1, 2)")):
        Sequential([layers.Input(shape=(3, 3, 1)), layers.Conv2D(2, 3), layers.MaxPooling2D()])   # fails when built


# ------------------------------------------------------------------------------------------ training


def test_lab_cnn_on_digits_reaches_98_percent(capsys):
    pytest.importorskip("sklearn")
    accuracy = runpy.run_path(str(EXAMPLES / "cnn_digits.py"))["main"]()      # the script's settings, seed 0
    assert accuracy >= 0.98
    out = capsys.readouterr().out
    assert "receptive field" in out and "(None, 2, 2, 64)" in out


def test_lab_cnn_trains_the_same_on_mnist_idx_files(tmp_path, capsys):
    """The --mnist path on a small IDX folder of 28x28 images: two classes, an easy shape each."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300).astype(np.uint8)
    images = (rng.random((300, 28, 28)) * 40).astype(np.uint8)
    images[labels == 0, 6:22, 13:15] = 255                               # a vertical bar
    images[labels == 1, 13:15, 6:22] = 255                               # a horizontal bar
    for name, a in (("train-images-idx3-ubyte.gz", images[:200]), ("train-labels-idx1-ubyte.gz", labels[:200]),
                    ("t10k-images-idx3-ubyte", images[200:]), ("t10k-labels-idx1-ubyte", labels[200:])):
        mnist.write_idx(tmp_path / name, a)
    accuracy = runpy.run_path(str(EXAMPLES / "cnn_digits.py"))["main"](epochs=2, mnist=str(tmp_path))
    assert accuracy >= 0.95
    assert "(None, 7, 7, 64)" in capsys.readouterr().out


def test_training_is_the_same_for_one_and_two_threads(threads):
    results = []
    for n in (1, 2):
        threads(n)
        engine.set_seed(3)
        model = lab_model((8, 8, 1))
        model.fit(random_f32(64, 8, 8, 1), np.arange(64) % 10, epochs=2, batch_size=16, verbose=0)
        results.append([w.numpy().copy() for w in model.weights])
    assert all(np.array_equal(a, b) for a, b in zip(*results))


# ------------------------------------------------------------------------------------------ IDX files


def _idx_bytes(code, shape, payload):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def test_read_idx_reads_the_format_byte_by_byte(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "img").write_bytes(_idx_bytes(0x08, images.shape, images.tobytes()))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "img"), images)
    values = np.array([1.5, -2.25, 3e6], dtype=np.float32)
    (tmp_path / "f.gz").write_bytes(gzip.compress(_idx_bytes(0x0D, (3,), values.astype(">f4").tobytes())))
    got = mnist.read_idx(tmp_path / "f.gz")
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, values)
    ints = np.array([[1, -70000], [2 ** 30, 5]], dtype=np.int32)
    (tmp_path / "i").write_bytes(_idx_bytes(0x0C, (2, 2), ints.astype(">i4").tobytes()))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "i"), ints)
    for dtype in (np.uint8, np.int16, np.float64):
        a = (np.arange(6) * 3).astype(dtype).reshape(3, 2)
        mnist.write_idx(tmp_path / "w.gz", a)
        np.testing.assert_array_equal(mnist.read_idx(tmp_path / "w.gz"), a)


def test_read_idx_rejects_broken_files(tmp_path):
    (tmp_path / "a").write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"x")
    with pytest.raises(ValueError, match="read_idx: expected an IDX file, which starts with two zero bytes"):
        mnist.read_idx(tmp_path / "a")
    (tmp_path / "b").write_bytes(_idx_bytes(0x07, (1,), b"x"))
    with pytest.raises(ValueError, match=r"read_idx: expected an element type code in .*Received: 0x7"):
        mnist.read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(_idx_bytes(0x08, (2, 3), b"12345"))
    with pytest.raises(ValueError, match=r"read_idx: expected 6 bytes of data for shape \(2, 3\) of uint8. "
                                         r"Received: 5 bytes"):
        mnist.read_idx(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="mnist.load_data: expected 'train-images-idx3-ubyte'"):
        mnist.load_data(tmp_path)


def test_load_data_finds_plain_gzipped_and_dotted_names(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    y = np.arange(5, dtype=np.uint8)
    mnist.write_idx(tmp_path / "train-images.idx3-ubyte", x)
    mnist.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y)
    mnist.write_idx(tmp_path / "t10k-images-idx3-ubyte", x[:2])
    mnist.write_idx(tmp_path / "t10k-labels-idx1-ubyte", y[:2])
    (x_train, y_train), (x_test, y_test) = mnist.load_data(tmp_path)
    np.testing.assert_array_equal(x_train, x)
    np.testing.assert_array_equal(y_test, y[:2])
    assert x_train.dtype == np.uint8 and x_test.shape == (2, 28, 28)


# ------------------------------------------------------------------------------------------ seeing the geometry


def test_explain_fills_in_the_formula():
    text = str(visualize.explain(layers.Conv2D(8, 3, strides=2, padding="same", name="c"), (28, 28, 1)))
    assert "padding='same': out = ceil(n / s) = ceil(28 / 2) = 14" in text
    assert "zeros added = max((out - 1) * s + span - n, 0) = max(13 * 2 + 3 - 28, 0) = 1: 0 before, 1 after" in text
    assert "output shape: (None, 14, 14, 8)" in text
    g = visualize.explain(layers.MaxPooling2D((2, 3)), (None, 7, 9, 4))
    assert g.output_shape == (None, 3, 3, 4)
    assert "out = floor((n - span) / s) + 1 = floor((9 - 3) / 3) + 1 = 3" in str(g)
    dilated = str(visualize.explain(layers.Conv2D(1, 3, dilation_rate=2), (9, 9, 1)))
    assert "span = (k - 1) * d + 1 = (3 - 1) * 2 + 1 = 5" in dilated and "spaced 2 and 2 apart" in dilated
    assert "padding='causal': span - 1 = 2 zeros before" in str(visualize.explain(
        layers.Conv1D(1, 3, padding="causal"), (6, 2)))
    with pytest.raises(TypeError, match="visualize: expected a convolution or pooling layer"):
        visualize.explain(layers.Dense(3), (4,))


def test_footprint_draws_the_window():
    text = visualize.footprint(layers.Conv2D(1, 3, dilation_rate=2, padding="same", name="d"), (5, 5, 1), output=(0, 0))
    rows = text.splitlines()[1:-1]
    assert len(rows) == 9 and all(len(r.split()) == 9 for r in rows)     # 5 + 2 * 2 padding on each axis
    grid = [r.split() for r in rows]
    assert grid[0][0] == "+" and grid[2][2] == "#" and grid[4][4] == "#" and grid[2][3] == "."
    assert sum(cell in "#+" for row in grid for cell in row) == 9
    many = visualize.footprint(layers.MaxPooling2D(2, strides=1), (3, 3, 1), output=[(0, 0), (1, 1)])
    assert "1 1 ." in many and "1 * 2" in many


def test_plot_footprint_needs_matplotlib_and_says_so(monkeypatch):
    layer = layers.Conv2D(1, 3, padding="same")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(RuntimeError, match="plot_footprint: matplotlib is not installed. Install it with"):
        visualize.plot_footprint(layer, (5, 5, 1))


def test_plot_footprint_draws_a_figure():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    ax = visualize.plot_footprint(layers.Conv2D(1, 3, strides=2, padding="same"), (6, 6, 1), output=[(0, 0), (1, 1)])
    assert ax.get_images()[0].get_array().shape == (7, 7)


def test_receptive_fields_of_the_lab_model():
    text = visualize.receptive_fields(lab_model())
    lines = text.splitlines()
    assert lines[1].split()[-6:] == ["3", "x", "3", "1", "x", "1"]       # conv2d: 3 x 3, jump 1 x 1
    assert "10 x 10" in lines[4] and "4 x 4" in lines[4]                # after the second pooling
    assert lines[5].split()[-2:] == ["all", "-"]


def test_tour_cnn_section(capsys):
    from engine import tour
    assert tour.main(["cnn"]) == 0
    out = capsys.readouterr().out
    assert "cpu.conv2d_forward" in out and "cpu.maxpool2d_forward" in out
    assert "ceil(" in out and "#" in out


def test_one_training_step_agrees_on_ref_and_cpu():
    """The same seeded step of the Lab model on the NumPy reference and on the C++ kernels."""
    x, y = random_f32(8, 8, 8, 1, seed=4), np.arange(8) % 10
    weights = {}
    for name in ("ref", "cpu"):
        with engine.use_backend(name):
            engine.set_seed(5)
            model = lab_model((8, 8, 1))
            model.layers[-2].rate = 0.0                                  # no dropout: the same step exactly
            with engine.trace() as calls:
                model.train_on_batch(x, y)
            assert f"{name}.conv2d_backward" in calls and f"{name}.maxpool2d_backward" in calls
            weights[name] = [w.numpy().copy() for w in model.weights]
    for a, b in zip(weights["ref"], weights["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

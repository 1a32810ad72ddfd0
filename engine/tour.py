"""python -m engine.tour: a guided run through what the engine can do, printing each step and the kernel
that ran it. `python -m engine.tour --list` lists the sections; `python -m engine.tour loss` runs one.

Sections follow the lecture: a neuron's forward pass, activation functions, the loss, one step of
gradient descent computed by autograd and checked against the formula, a dense network trained with
model.fit on a real regression data set, and attention (the "je t' aime" table, multi-head attention,
layer normalisation, a residual block).


model.fit on a real regression data set, and recurrent networks (an RNN step by hand, an LSTM's gates).


model.fit on a real regression data set, and a convolutional network: convolution with padding, strides and
dilation, max pooling, and a small image classifier.
"""
import math
import sys

import numpy as np

import engine
from engine import backend, ops


def _heading(title):
    print(f"\n=== {title} " + "=" * max(0, 74 - len(title)))


def _kernels(calls):
    """'cpu.matmul_forward, cpu.bias_add_forward' from a trace, each name once, in order."""
    return ", ".join(dict.fromkeys(calls)) or "(none)"


def neuron():
    _heading("1. A neuron: multiply, then add")
    x = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)        # one example, three inputs
    w = np.array([[0.8], [0.2], [-0.5]], dtype=np.float32)    # three weights, one neuron
    b = np.array([0.1], dtype=np.float32)
    by_hand = sum(float(x[0, i] * w[i, 0]) for i in range(3)) + float(b[0])
    print(f"inputs x = {[float(f'{v:g}') for v in x[0]]}, weights w = {[float(f'{v:g}') for v in w[:, 0]]}, "
          f"bias b = {b[0]:g}")
    print("by hand:  z = " + " + ".join(f"({x[0, i]:g})({w[i, 0]:g})" for i in range(3)) + f" + {b[0]:g} = {by_hand:g}")
    with engine.trace() as calls:
        z = ops.bias_add(ops.matmul(x, w), b)
    print(f"engine:   z = bias_add(matmul(x, w), b) = {z.item():g}      kernels: {_kernels(calls)}")

    x4 = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]], dtype=np.float32)
    w2 = np.array([[0.8, -0.3], [0.2, 0.9], [-0.5, 0.4]], dtype=np.float32)
    with engine.trace() as calls:
        hidden = ops.relu(ops.bias_add(ops.matmul(x4, w2), np.zeros(2, np.float32)))
        out = ops.matmul(hidden, np.array([[1.0], [-1.0]], dtype=np.float32))
    print(f"a layer of 2 neurons for 2 examples, then one output neuron:\n  hidden = relu(x @ W + b) = "
          f"{hidden.numpy().tolist()}\n  output = hidden @ v = {out.numpy()[:, 0].tolist()}      "
          f"kernels: {_kernels(calls)}")


def activations():
    _heading("2. Activation functions")
    z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=np.float32)
    print(f"z = {z.tolist()}")
    for name, fn in [("linear", ops.linear), ("relu", ops.relu), ("sigmoid", ops.sigmoid), ("tanh", ops.tanh),
                     ("leaky_relu", ops.leaky_relu), ("elu", ops.elu), ("gelu", ops.gelu), ("silu", ops.silu),
                     ("softplus", ops.softplus), ("softmax", ops.softmax)]:
        with engine.trace() as calls:
            y = fn(z)
        print(f"  {name:<10} {np.array2string(y.numpy(), precision=3, suppress_small=True):<44} "
              f"kernel: {_kernels(calls)}")
    print("softmax turns scores into probabilities: they sum to "
          f"{float(ops.softmax(z).numpy().sum()):.6f}")


# Ten actual values and a model's predictions; the squared errors add up to 5046, so MSE = 504.6.
ACTUAL = [120, 95, 140, 80, 160, 110, 130, 70, 150, 100]
PREDICTED = [111, 73, 122, 106, 172, 74, 126, 103, 180, 94]


def loss():
    _heading("3. The loss: mean squared error, worked example")
    y, y_hat = np.array(ACTUAL, np.float32), np.array(PREDICTED, np.float32)
    print(f"{'actual':>8} {'predicted':>10} {'error':>7} {'error^2':>8}")
    for a, p in zip(ACTUAL, PREDICTED):
        print(f"{a:>8} {p:>10} {a - p:>7} {(a - p) ** 2:>8}")
    with engine.trace() as calls:
        squared = ops.square(ops.subtract(y, y_hat))
        total = ops.sum(squared)
        mse = ops.mean(squared)
    print(f"total squared error = {total.item():g}, MSE = {total.item():g} / {len(ACTUAL)} = {mse.item():g}"
          f"      kernels: {_kernels(calls)} (subtract and square run on NumPy)")


def gradient_descent():
    _heading("4. One step of gradient descent: w' = w - lr * dE/dw")
    x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    y = np.array([3.0, 5.0, 7.0, 9.0], dtype=np.float32)       # the truth is y = 2x + 1
    w = engine.tensor(0.5, requires_grad=True)
    b = engine.tensor(0.0, requires_grad=True)
    lr = 0.05
    print(f"model y_hat = w * x + b on x = {x.tolist()}, y = {y.tolist()}; start w = {w.item()}, b = {b.item()}")
    with engine.trace() as calls:
        error = ops.mean(ops.square(w * x + b - y))             # E = mean((y_hat - y)^2)
        error.backward()                                        # autograd: dE/dw, dE/db
    print(f"E = {error.item():.4f}      kernels: {_kernels(calls)}")
    y_hat = w.item() * x + b.item()
    formula_dw = float(np.mean(2 * (y_hat - y) * x))            # chain rule by hand
    formula_db = float(np.mean(2 * (y_hat - y)))
    print(f"dE/dw: autograd {w.grad.item():.4f}, formula mean(2 (y_hat - y) x) = {formula_dw:.4f}")
    print(f"dE/db: autograd {b.grad.item():.4f}, formula mean(2 (y_hat - y))   = {formula_db:.4f}")
    new_w, new_b = w.item() - lr * w.grad.item(), b.item() - lr * b.grad.item()
    new_error = float(np.mean((new_w * x + new_b - y) ** 2))
    print(f"w' = {w.item()} - {lr} * {w.grad.item():.4f} = {new_w:.4f};  b' = {new_b:.4f};  "
          f"E falls from {error.item():.4f} to {new_error:.4f}")
    assert abs(w.grad.item() - formula_dw) < 1e-4 and new_error < error.item()


def _regression_data(rows=442, features=10):
    """(X, y, description): scikit-learn's diabetes data when it is installed, else a nonlinear problem
    of the same size generated here: y = 2 x0 + x1^2 - 1.5 |x2| + x3 x4 + noise."""
    try:
        from sklearn.datasets import load_diabetes
    except ImportError:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((rows, features))
        y = 2 * X[:, 0] + X[:, 1] ** 2 - 1.5 * np.abs(X[:, 2]) + X[:, 3] * X[:, 4] + 0.5 * rng.standard_normal(rows)
        return X, y, (f"a generated data set ({rows} rows, {features} features; install scikit-learn for the "
                      "diabetes data)")
    X, y = load_diabetes(return_X_y=True)
    return X, y, f"scikit-learn's diabetes data ({len(X)} patients, {X.shape[1]} features)"


def _sparkline(values, low, high):
    """One character per value, from ▁ (low) to █ (high)."""
    bars = "▁▂▃▄▅▆▇█"
    span = (high - low) or 1.0
    return "".join(bars[min(7, int((v - low) / span * 8))] for v in values)


def dense_network(epochs=100):
    _heading("5. A dense network learns a regression: Sequential, compile, fit")
    from .layers import Dense
    from .models import Sequential

    X, y, description = _regression_data()
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)      # standardized features
    y = ((y - y.mean()) / y.std()).astype(np.float32)                   # standardized target: var(y) = 1
    n_cols = X.shape[1]
    print(f"data: {description};\n      features and target standardized, so predicting the mean scores MSE = 1")
    engine.set_seed(0)
    model = Sequential()                                                # the lecture's code, line for line
    model.add(Dense(15, activation="relu", input_shape=(n_cols,)))
    model.add(Dense(5, activation="relu"))
    model.add(Dense(1, activation="linear"))
    model.compile(optimizer="adam", loss="mse", metrics=["mse"])
    model.summary()
    with engine.trace() as calls:
        history = model.fit(X, y, validation_split=0.25, epochs=epochs, batch_size=32, verbose=0).history
    train_loss, val_loss = history["loss"], history["val_loss"]
    n_train = math.floor(0.75 * len(X))                                 # fit keeps the first 75% for training
    print(f"model.fit(X, y, validation_split=0.25, epochs={epochs}, batch_size=32): "
          f"the first {n_train} rows train, the last {len(X) - n_train} validate")
    print(f"{'epoch':>7} {'loss':>8} {'val_loss':>9}")
    for epoch in sorted(set(range(0, epochs, max(1, epochs // 10))) | {epochs - 1}):
        print(f"{epoch + 1:>7} {train_loss[epoch]:>8.4f} {val_loss[epoch]:>9.4f}")
    low, high = min(train_loss + val_loss), max(train_loss + val_loss)     # one scale for both lines
    step = max(1, epochs // 50)
    print(f"loss     {_sparkline(train_loss[::step], low, high)}   (one mark per {step} epochs)")
    print(f"val_loss {_sparkline(val_loss[::step], low, high)}")
    best = int(np.argmin(val_loss))
    print(f"the training loss fell from {train_loss[0]:.4f} to {train_loss[-1]:.4f}; the validation loss was "
          f"lowest at epoch {best + 1} ({val_loss[best]:.4f}) and ended at {val_loss[-1]:.4f}")
    if val_loss[-1] > 1.05 * val_loss[best]:
        print("past that epoch the network fits the noise of its training rows: overfitting "
              "(engine.callbacks.EarlyStopping would stop near there)")
    print(f"kernels: {_kernels(calls)}")


def matmul():
    _heading("6. Matrix multiply: the kernel ladder, naive loops to the speed of the hardware")
    from engine import ladder
    print("Every dense layer is a matrix product. Each rung below computes the same C = A @ B; each adds one idea.")
    print("All of them are callable: engine.ladder.run('matmul', 'v3', a, b). The times are medians of repeated runs.\n")
    rows = ladder.print_table("matmul", n=256, min_time=0.1)
    best = rows[-1]
    print(f"\nfrom the naive loops to the packed micro-kernel: {best['gflops'] / rows[1]['gflops']:.0f}x faster; "
          f"the last rung runs at {best['of_ref']:.0%} of NumPy's (OpenBLAS) speed. It is what engine.ops.matmul and "
          "Dense use.")
    print("\nThe CPU picks the widest SIMD path it has; engine.set_simd('avx2') forces a narrower one. The same rung")
    print("on each path (ENGINE_SIMD=avx2 runs the whole engine on it):\n")
    ladder.paths_table("matmul", "v4", n=256, min_time=0.1)


def attention():
    _heading("9. Attention: which input word each output word looks at")
    from .layers import Add, Dense, Input, LayerNormalization, MultiHeadAttention
    from .models import Model
    from .visualize import render_attention

    english, french = ["I", "love", "you"], ["je", "t'", "aime"]
    keys = np.eye(3, dtype=np.float32)                       # one key per English word (head size 3)
    values = np.array([[1, 0], [0, 1], [1, 1]], np.float32)  # what each English word passes on
    # Each French word's query points at the word it translates; its length sets how sure it is.
    wanted = {"je": ("I", 0.94), "t'": ("you", 0.88), "aime": ("love", 0.95)}
    queries = np.zeros((3, 3), np.float32)
    for row, word in enumerate(french):
        target, weight = wanted[word]
        score = math.log(2 * weight / (1 - weight))          # softmax([s, 0, 0])[0] = weight
        queries[row, english.index(target)] = score * math.sqrt(3)       # the scores are divided by sqrt(3)
    print("scores = q k^T / sqrt(d): one row per French word (query), one column per English word (key);")
    print("weights = softmax of each row; output = weights @ values")
    with engine.trace() as calls:
        weights = ops.softmax(ops.matmul(queries, keys.T) / math.sqrt(3))
        fused = ops.dot_product_attention(queries[None, :, None], keys[None, :, None], values[None, :, None])
    print(render_attention(weights.numpy(), french, english))
    print(f"'t'' puts {weights.numpy()[1, 2]:.2f} of its attention on 'you'; the fused kernel gives the same output "
          f"{np.abs(fused.numpy()[0, :, 0] - weights.numpy() @ values).max():.0e} apart")
    print(f"kernels: {_kernels(calls)}")
    print("(examples/transformer_translation.py trains a model that learns this table by itself)")

    engine.set_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)    # 2 sentences, 5 words, 8 features
    mha = MultiHeadAttention(num_heads=4, key_dim=2)
    with engine.trace() as calls:
        out, scores = mha(x, x, return_attention_scores=True, use_causal_mask=True)
    print(f"\nMultiHeadAttention(num_heads=4, key_dim=2) on (batch 2, 5 steps, 8 features): output {out.shape}, "
          f"attention scores {scores.shape} (batch, heads, queries, keys)")
    names = ", ".join(f"{w.name.split('/', 1)[1]} {w.shape}" for w in mha.weights)
    print(f"weights in Keras' layout: {names}")
    print(f"with use_causal_mask, step 0 sees only itself: {np.round(scores.numpy()[0, 0, 0], 2).tolist()}; "
          f"kernels: {_kernels(calls)}")

    y = ops.layer_normalization(x, axis=-1, epsilon=1e-3)
    print(f"LayerNormalization: each step's features get mean {float(y.numpy().mean(-1).max()):+.1e} and "
          f"std {float(y.numpy().std(-1).mean()):.3f}")

    inputs = Input(shape=(5, 8))
    attended = MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    block = LayerNormalization()(Add()([inputs, attended]))              # residual connection, then norm
    model = Model(inputs, Dense(8)(block), name="one_block")
    print("\na residual block as a functional model: x + attention(x), layer norm, dense")
    model.summary()

    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 300, 2, 16)).astype(np.float32) for _ in range(3))
    naive = backend.get("cpu").ladder.attention_forward_v1(q, k, v) if backend.available("cpu") else None
    tiled = ops.dot_product_attention(q, k, v, is_causal=False).numpy()
    if naive is not None:
        print(f"attention ladder: the naive rung (full 300 x 300 score matrix per head) and the fused one agree to "
              f"{np.abs(naive[0] - tiled).max():.0e}; at 4096 steps a score matrix is {4096 * 4096 * 4 / 2**20:.0f} "
              f"MiB per head, while a fused tile is 96 x 96 ({96 * 96 * 4 // 1024} KiB)")


def recurrent(epochs=4):
    _heading("8. Recurrent networks: a state carried through time, and the LSTM's gates")
    from .layers import LSTM, Dense, SimpleRNN
    from .models import Sequential

    x = np.array([[[1.0], [0.5], [-1.0]]], dtype=np.float32)            # one sequence, 3 steps, 1 feature
    rnn = SimpleRNN(2, return_sequences=True)
    rnn.build(x.shape)
    w, r, b = (np.array([[0.5, -0.4]], np.float32), np.array([[0.6, 0.2], [-0.3, 0.8]], np.float32),
               np.array([0.1, 0.0], np.float32))
    rnn.set_weights([w, r, b])
    fmt = lambda v: "[" + ", ".join(f"{float(a):+.4f}" for a in v) + "]"           # noqa: E731
    print("SimpleRNN: each neuron gets the input and every neuron's previous state: h_t = tanh(x_t W + h_{t-1} R + b)")
    h = np.zeros((1, 2), np.float32)
    for t in range(3):
        h = np.tanh(x[:, t] @ w + h @ r + b)
        print(f"  by hand, t={t}: x_t = {x[0, t, 0]:+.1f} -> h_t = {fmt(h[0])}")
    with engine.trace() as calls:
        y = rnn(x)
    print(f"  engine:  h_0, h_1, h_2 = {', '.join(fmt(v) for v in y.numpy()[0])}      kernels: {_kernels(calls)}")

    # An LSTM learns to recall the token of step 0 after 20 steps of noise tokens.
    rng = np.random.default_rng(0)
    n, lag, classes = 1024, 20, 4
    labels = rng.integers(0, classes, n)
    tokens = rng.integers(classes, classes + 5, size=(n, lag + 1))
    tokens[:, 0] = labels
    seqs = np.eye(classes + 5, dtype=np.float32)[tokens]                  # one-hot: (1024, 21, 9)
    engine.set_seed(0)
    lstm = LSTM(16)
    model = Sequential([lstm, Dense(classes, activation="softmax")])
    model.compile(optimizer=engine.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with engine.trace() as calls:
        history = model.fit(seqs, labels, epochs=epochs, batch_size=32, verbose=0).history
    print(f"\nLSTM(16) recalls the token of step 0 after {lag} steps of noise (chance: 1 in {classes}); accuracy by "
          f"epoch: {[round(a, 2) for a in history['accuracy']]}      kernels: "
          f"{_kernels(c for c in calls if 'lstm' in c)}")
    trace = lstm.trace_gates(seqs[:256])                             # every gate, every step, 256 sequences
    final = trace["cell"][:, -1]                                     # (256, 16): what each unit remembers
    means = np.stack([final[labels[:256] == k].mean(axis=0) for k in range(classes)])
    unit = int(np.argmax(means.std(axis=0) / (final.std(axis=0) + 1e-6)))   # the unit that tells tokens apart
    print(f"unit {unit} holds the token best. Its gates, averaged over the sequences of each token, step by "
          f"step (0 = closed, 1 = open):")
    for k in range(classes):
        rows = labels[:256] == k
        line = "  ".join(f"{name[0]} {_sparkline(trace[name][rows, :, unit].mean(axis=0), 0.0, 1.0)}"
                         for name in ("input", "forget", "output"))
        cell = trace["cell"][rows, :, unit].mean(axis=0)
        print(f"  token {k}: {line}   cell c: {cell[0]:+.2f} at step 0 -> {cell[-1]:+.2f} at step {lag}")
    print("i: the input gate decides what the step writes into the cell; f: the forget gate how much of the cell "
          "it keeps;\no: the output gate how much of the cell the output shows. engine.layers.plot_gates(trace) "
          "draws them all.")


def cnn(epochs=12):
    _heading("7. Convolution, padding, strides, dilation, pooling: a CNN reads digits")
    from . import visualize
    from .layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from .models import Sequential

    image = np.zeros((1, 6, 6, 1), np.float32)
    image[0, :, 3:, 0] = 1.0                                            # dark left half, bright right half
    edge = np.array([-1, 0, 1], np.float32).reshape(1, 3, 1, 1)         # (KH, KW, C, F): left-to-right change
    print("a 6x6 image with a vertical edge, and the kernel [-1 0 1] that finds it (the kernel scans the image):")
    for padding, strides, dilation in [("valid", 1, 1), ("same", 1, 1), ("same", 2, 1), ("valid", 1, 2)]:
        with engine.trace() as calls:
            y = ops.conv(image, edge, strides=strides, padding=padding, dilation_rate=dilation)
        print(f"  padding={padding!r:<8} strides={strides} dilation_rate={dilation}: output {y.shape[1:3]}, "
              f"first row {y.numpy()[0, 0, :, 0].tolist()}      kernel: {_kernels(calls)}")
    layer = Conv2D(1, 3, strides=2, padding="same")
    print(visualize.explain(layer, (7, 7, 1)))
    print(visualize.footprint(layer, (7, 7, 1), output=(1, 2)))
    x = np.array([[1, 3, 2, 1], [4, 2, 0, 1], [5, 1, 7, 3], [0, 2, 3, 3]], np.float32).reshape(1, 4, 4, 1)
    with engine.trace() as calls:
        pooled = ops.max_pool(x, 2)
    print(f"max pooling 2x2 keeps each window's largest value: {x[0, :, :, 0].tolist()} -> "
          f"{pooled.numpy()[0, :, :, 0].tolist()}      kernel: {_kernels(calls)}")

    X, y, description = _digit_images()
    order = np.random.default_rng(0).permutation(len(X))                 # the file is sorted by writer: mix it
    X, y = X[order], y[order]
    engine.set_seed(0)
    split = int(0.8 * len(X))
    model = Sequential([Input(shape=X.shape[1:]), Conv2D(16, 3, padding="same", activation="relu"), MaxPooling2D(),
                        Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(), Flatten(),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    print(visualize.receptive_fields(model))
    with engine.trace() as calls:
        history = model.fit(X[:split], y[:split], epochs=epochs, batch_size=32, verbose=0).history
    accuracy = model.evaluate(X[split:], y[split:], verbose=0)[1]
    print(f"{description}: after {epochs} epochs the training accuracy is {history['accuracy'][-1]:.3f}, "
          f"on {len(X) - split} held-out images {accuracy:.3f}")
    print(f"kernels: {_kernels(c for c in calls if 'conv' in c or 'pool' in c)}")


def _digit_images():
    """(X (N, 8, 8, 1) in [0, 1], y, description): scikit-learn's digits, or generated bars when it is missing."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, 600)
        X = rng.random((600, 8, 8, 1), dtype=np.float32) * 0.3
        for i, label in enumerate(y):                                   # class c: a bar at row or column c % 8
            X[i, label % 8, :, 0] += 1.0 if label < 8 else 0.0
            X[i, :, label % 8, 0] += 1.0 if label >= 8 else 0.0
        return X, y, "generated 8x8 bar images (install scikit-learn for the digits)"
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32).reshape(-1, 8, 8, 1), y, "scikit-learn's 8x8 digits"


SECTIONS = {"neuron": neuron, "activations": activations, "loss": loss, "gradient_descent": gradient_descent,
            "dense_network": dense_network, "matmul": matmul, "cnn": cnn, "recurrent": recurrent,
            "attention": attention}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--list", "-l"):
        print("\n".join(SECTIONS))
        return 0
    unknown = [name for name in argv if name not in SECTIONS]
    if unknown:
        print(f"engine.tour: unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    info = engine.info()
    print(f"engine {info['version']}: backend '{info['backend']}', {info['num_threads']} threads, "
          f"SIMD path '{info['simd']}'")
    for name in argv or SECTIONS:
        SECTIONS[name]()
    print("\nNext: read engine/ref/ (the math), engine/tensor.py and engine/ops.py (autograd), csrc/ (the kernels).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

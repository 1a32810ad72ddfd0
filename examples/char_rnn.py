"""A character-level language model: an LSTM reads Shakespeare's sonnets one character at a time and learns
to predict the next one; then it writes (the lecture's "autocompletion": type the start, the network goes on).

Data: examples/data/sonnets.txt (22 sonnets, public domain, about 14 KB). Each character is a token id;
training windows of 64 characters (every 16th start) learn every next character at once:

    Embedding(vocab, 32) -> LSTM(192, return_sequences=True) -> Dense(vocab)      logits for every step
    compile(optimizer=Adam(0.005), loss=SparseCategoricalCrossentropy(from_logits=True))
    fit(..., callbacks=[EarlyStopping(patience=3, restore_best_weights=True)])

14 KB is little text: after about ten epochs the network starts to memorise the training sonnets (its loss
keeps falling while the loss on the held-out last tenth rises), so EarlyStopping keeps the weights of the
best held-out epoch.

Writing feeds one character at a time, carrying the LSTM's state with initial_state / return_state (no
re-reading of the prompt), and samples each next character from softmax(logits / temperature): low
temperatures pick the likeliest characters, high ones take more risks. The loss is in nats per character;
a model that only knew how often each letter occurs would score its entropy (about 3.1 here).

    python examples/char_rnn.py            # about half a minute on two cores
"""
import time
from pathlib import Path

import numpy as np

import engine
from engine import callbacks, layers, losses, optimizers
from engine.models import Sequential

TEXT = Path(__file__).resolve().parent / "data" / "sonnets.txt"


def load(path=TEXT):
    """(text, chars, ids): the text, its sorted characters, and the text as int64 ids into chars."""
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return text, chars, np.array([index[c] for c in text], dtype=np.int64)


def windows(ids, length=64, stride=16):
    """Inputs (n, length) and next-character targets (n, length): each target is the input shifted by one."""
    starts = np.arange(0, len(ids) - length - 1, stride)
    x = np.stack([ids[s:s + length] for s in starts])
    y = np.stack([ids[s + 1:s + length + 1] for s in starts])
    return x, y


def unigram_entropy(ids):
    """Nats per character of the best guess that ignores context: the letter frequencies' entropy."""
    p = np.bincount(ids) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def build(vocab, units=192):
    model = Sequential([layers.Embedding(vocab, 32), layers.LSTM(units, return_sequences=True),
                        layers.Dense(vocab)])
    model.compile(optimizer=optimizers.Adam(0.005), loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def generate(model, chars, prompt, length=200, temperature=0.6, seed=0):
    """Continue `prompt` by `length` characters, one at a time. A twin of the trained LSTM with
    return_state=True (the same weights) hands its state from one call to the next."""
    index = {c: i for i, c in enumerate(chars)}
    embedding, lstm, dense = model.layers
    stepper = layers.LSTM(lstm.units, return_sequences=True, return_state=True)
    stepper.build((None, None, embedding.output_dim))
    stepper.set_weights(lstm.get_weights())
    rng = np.random.default_rng(seed)
    ids, state, out = np.array([[index[c] for c in prompt]]), None, []
    with engine.no_grad():
        for _ in range(length):
            y, h, c = stepper(embedding(ids), initial_state=state)   # the prompt first, then one character
            state = [h, c]
            logits = dense(y).numpy()[0, -1].astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            nxt = int(rng.choice(len(chars), p=p / p.sum()))
            out.append(chars[nxt])
            ids = np.array([[nxt]])
    return prompt + "".join(out)


def main(epochs=30, units=192, prompts=("Shall I compare thee", "When I do count the"), length=240, verbose=1):
    engine.set_seed(0)
    text, chars, ids = load()
    split = int(0.9 * len(ids))                                      # the last tenth checks generalisation
    x, y = windows(ids[:split])
    x_val, y_val = windows(ids[split:], stride=32)
    print(f"{len(text)} characters, {len(chars)} distinct; {len(x)} training windows of {x.shape[1]}; "
          f"letter-frequency baseline: {unigram_entropy(ids[:split]):.2f} nats/char")
    model = build(len(chars), units)
    start = time.perf_counter()
    stop = callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(x_val, y_val), callbacks=[stop],
                        verbose=0).history
    seconds = time.perf_counter() - start
    ran = len(history["loss"])
    if verbose:
        for epoch in range(ran):
            print(f"  epoch {epoch + 1:>3}: loss {history['loss'][epoch]:.3f}, val_loss {history['val_loss'][epoch]:.3f}")
    best = int(np.argmin(history["val_loss"]))
    print(f"trained {ran} epochs in {seconds:.1f} s; kept epoch {best + 1}: loss {history['loss'][best]:.2f} "
          f"nats/char, held-out {history['val_loss'][best]:.2f} (perplexity {np.exp(history['val_loss'][best]):.1f})")
    samples = {}
    for prompt in prompts:
        for temperature in (0.5, 1.0):
            sample = generate(model, chars, prompt, length, temperature)
            samples[(prompt, temperature)] = sample
            print(f"\n--- '{prompt}', temperature {temperature}:\n{sample}")
    return {"history": history, "best_val_loss": history["val_loss"][best], "baseline": unigram_entropy(ids[:split]),
            "samples": samples, "chars": chars, "seconds": seconds}


if __name__ == "__main__":
    main()

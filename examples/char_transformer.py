"""A tiny character-level GPT: a decoder-only transformer learns the bundled sonnets (examples/data/sonnets.txt)
one character at a time, then writes new text in their style.

Each training example is a window of `context` characters; the target is the same window shifted by one, so
every position learns to predict the next character from the ones before it (the decoder's causal mask keeps
it from looking ahead). Generation feeds the model its own output: predict, sample a character, append, repeat.

    python examples/char_transformer.py                   # about a minute on 2 cores
    python examples/char_transformer.py --epochs 10 --temperature 0.6
"""
import argparse
import math
import time
from pathlib import Path

import numpy as np

import engine
from engine.layers import Dense, Embedding, Input, PositionEmbedding, TransformerDecoder
from engine.models import Model

TEXT = Path(__file__).resolve().parent / "data" / "sonnets.txt"


def load_text(path=TEXT):
    """The text, and its characters as ids with the lookup tables."""
    text = Path(path).read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return text, np.array([index[c] for c in text], np.int64), chars, index


def windows(ids, context, stride):
    """(inputs, targets): windows of `context` ids, and the same windows one character later."""
    starts = np.arange(0, len(ids) - context - 1, stride)
    x = np.stack([ids[s:s + context] for s in starts])
    y = np.stack([ids[s + 1:s + context + 1] for s in starts])
    return x, y


def build_model(vocab, context, dim=64, heads=4, blocks=2):
    """Token embedding + learned positions, `blocks` causal decoder blocks (no encoder), a softmax over the
    characters at every position."""
    chars = Input(shape=(None,), dtype="int64", name="characters")
    x = Embedding(vocab, dim)(chars)
    x = x + PositionEmbedding(context)(x)
    for _ in range(blocks):
        x = TransformerDecoder(intermediate_dim=4 * dim, num_heads=heads, dropout=0.1)(x)
    next_char = Dense(vocab, activation="softmax")(x)
    return Model(chars, next_char, name="char_gpt")


def generate(model, prompt, index, chars, context, length=300, temperature=0.8, seed=0):
    """Extend `prompt` by `length` characters, sampling each from the model's prediction (sharpened or
    flattened by temperature: below 1 picks likely characters more often)."""
    rng = np.random.default_rng(seed)
    ids = [index[c] for c in prompt]
    for _ in range(length):
        window = np.array([ids[-context:]], np.int64)
        probs = model.predict(window, verbose=0)[0, -1].astype(np.float64)
        logits = np.log(np.maximum(probs, 1e-12)) / temperature
        p = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return "".join(chars[i] for i in ids)


def main(epochs=4, context=64, stride=3, batch_size=32, temperature=0.8, length=300, seed=0, verbose=1,
         prompt="Shall I compare thee", learning_rate=2e-3):
    engine.set_seed(seed)
    text, ids, chars, index = load_text()
    x, y = windows(ids, context, stride)
    counts = np.bincount(ids, minlength=len(chars)) / len(ids)
    unigram = float(-(counts * np.log(np.maximum(counts, 1e-12))).sum())       # loss of guessing by frequency
    model = build_model(len(chars), context)
    model.compile(optimizer=engine.optimizers.Adam(learning_rate=learning_rate), loss="sparse_categorical_crossentropy")
    if verbose:
        print(f"{len(text)} characters, {len(chars)} distinct; {len(x)} windows of {context}; "
              f"{model.count_params():,} parameters")
        print(f"predicting by character frequency alone scores a loss of {unigram:.3f} nats")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose and 2)
    seconds = time.perf_counter() - start
    loss = history.history["loss"]
    sample = generate(model, prompt, index, chars, context, length, temperature, seed)
    if verbose:
        print(f"trained in {seconds:.0f}s: loss {loss[0]:.3f} -> {loss[-1]:.3f} nats per character "
              f"(perplexity {math.exp(loss[-1]):.1f} of {len(chars)} characters)")
        print(f"\n--- generated (temperature {temperature}) ---\n{sample}")
    return {"loss": loss, "unigram": unigram, "sample": sample, "chars": chars, "seconds": seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--length", type=int, default=300)
    args = parser.parse_args()
    main(epochs=args.epochs, temperature=args.temperature, length=args.length)

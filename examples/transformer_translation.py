"""A tiny English -> French translator: an encoder-decoder transformer learns three-word sentences, and its
cross-attention shows which English word each French word looks at (the lecture's "je t' aime" table).

The language is generated here: subject, verb, object ("I love you", "she sees them") in English; in French
the object pronoun moves before the verb ("je t' aime", "elle les voit"), takes the elided form before a
vowel (t', m', l'), and the verb agrees with the subject. So the second French word must look at the third
English word, and the third at the second: the attention lines cross.

    python examples/transformer_translation.py            # trains in a few seconds, prints the table
    python examples/transformer_translation.py --plot     # also saves attention.png (needs matplotlib)

20% of the sentences are held out; the model translates them without having seen them.
"""
import argparse
import itertools
import time

import numpy as np

import engine
from engine.layers import Dense, Embedding, Input, PositionEmbedding, TransformerDecoder, TransformerEncoder
from engine.models import Model
from engine.visualize import attention_weights, plot_attention, render_attention

SUBJECTS = {"I": "je", "you": "tu", "he": "il", "she": "elle", "we": "nous", "they": "ils"}
OBJECTS = {"me": ("me", "m'"), "you": ("te", "t'"), "him": ("le", "l'"), "her": ("la", "l'"), "us": ("nous", "nous"),
           "them": ("les", "les")}       # (before a consonant, before a vowel)
VERBS = {   # English verb: French forms for je, tu, il, elle, nous, ils
    "love": ("aime", "aimes", "aime", "aime", "aimons", "aiment"),
    "see": ("vois", "vois", "voit", "voit", "voyons", "voient"),
    "hear": ("entends", "entends", "entend", "entend", "entendons", "entendent"),
    "know": ("connais", "connais", "connaît", "connaît", "connaissons", "connaissent"),
    "help": ("aide", "aides", "aide", "aide", "aidons", "aident"),
}
PAD, START = "<pad>", "<start>"


def sentence_pairs():
    """Every (English, French) pair of the toy language: 6 subjects x 5 verbs x 6 objects = 180."""
    pairs = []
    for (subject, je), verb, (obj, clitics) in itertools.product(SUBJECTS.items(), VERBS, OBJECTS.items()):
        english_verb = verb + "s" if subject in ("he", "she") else verb
        form = VERBS[verb][list(SUBJECTS).index(subject)]
        clitic = clitics[1] if form[0] in "aeiou" else clitics[0]
        pairs.append(([subject, english_verb, obj], [je, clitic, form]))
    return pairs


def vocabulary(sentences, extra):
    words = list(extra)
    for sentence in sentences:
        words += [w for w in sentence if w not in words]
    return {w: i for i, w in enumerate(words)}


def build_model(source_size, target_size, dim=32, heads=2, hidden=64, length=3):
    """Embedding + learned positions -> TransformerEncoder; the decoder reads the French words so far the same
    way, attends to itself (causal) and to the encoder, and a Dense softmax picks the next French word."""
    english = Input(shape=(length,), dtype="int64", name="english")
    french_so_far = Input(shape=(length,), dtype="int64", name="french_so_far")
    x = Embedding(source_size, dim)(english)
    x = x + PositionEmbedding(length)(x)
    encoded = TransformerEncoder(hidden, heads, name="encoder")(x)
    y = Embedding(target_size, dim)(french_so_far)
    y = y + PositionEmbedding(length)(y)
    y = TransformerDecoder(hidden, heads, name="decoder")(y, encoded)
    next_word = Dense(target_size, activation="softmax")(y)
    return Model([english, french_so_far], next_word, name="translator")


def translate(model, english_ids, start_id, length=3):
    """Greedy decoding: feed the French words predicted so far, take the most likely next one."""
    french = np.zeros((len(english_ids), length), np.int64)
    french[:, 0] = start_id
    out = np.zeros((len(english_ids), length), np.int64)
    for t in range(length):
        probs = model.predict([english_ids, french], verbose=0)      # (N, length, vocabulary)
        out[:, t] = probs[:, t].argmax(axis=-1)
        if t + 1 < length:
            french[:, t + 1] = out[:, t]
    return out


def main(epochs=80, seed=0, plot=False, verbose=1):
    engine.set_seed(seed)
    pairs = sentence_pairs()
    source = vocabulary([e for e, _ in pairs], [PAD])
    target = vocabulary([f for _, f in pairs], [PAD, START])
    X = np.array([[source[w] for w in e] for e, _ in pairs], np.int64)          # (180, 3) English ids
    Y = np.array([[target[w] for w in f] for _, f in pairs], np.int64)          # (180, 3) French ids
    teacher = np.concatenate([np.full((len(Y), 1), target[START]), Y[:, :-1]], axis=1)   # French shifted right
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:len(X) // 5], order[len(X) // 5:]

    model = build_model(len(source), len(target))
    model.compile(optimizer=engine.optimizers.Adam(learning_rate=3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if verbose:
        model.summary()
    start = time.perf_counter()
    history = model.fit([X[train], teacher[train]], Y[train], epochs=epochs, batch_size=16, verbose=0)
    seconds = time.perf_counter() - start

    inverse = {i: w for w, i in target.items()}
    predicted = translate(model, X[test], target[START])
    exact = float(np.mean(np.all(predicted == Y[test], axis=1)))
    if verbose:
        print(f"trained {epochs} epochs on {len(train)} sentences in {seconds:.1f}s: loss "
              f"{history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}")
        print(f"held-out sentences translated exactly: {exact:.0%} of {len(test)}")
        for i in range(4):
            english = " ".join(pairs[test[i]][0])
            print(f"  {english:<18} -> {' '.join(inverse[j] for j in predicted[i])}")

    # Where does each French word look? The cross-attention of the decoder, for "I love you".
    i = next(k for k, (e, _) in enumerate(pairs) if e == ["I", "love", "you"])
    weights = attention_weights(model, [X[i:i + 1], teacher[i:i + 1]], "decoder/cross_attention")[0]
    mean = weights.mean(axis=0)                                              # (3 French, 3 English), heads averaged
    english, french = pairs[i]
    if verbose:
        print("\ncross-attention for 'I love you' -> 'je t' aime' (rows: French words, columns: English words;")
        print("the mean over the heads; each row sums to 1):")
        print(render_attention(mean, french, english))
        for row, word in enumerate(french):
            print(f"  '{word}' looks most at '{english[int(mean[row].argmax())]}' ({mean[row].max():.2f})")
    if plot:
        plot_attention(weights, french, english, title="je t' aime <- I love you", filename="attention.png")
        if verbose:
            print("saved attention.png")
    return {"history": history.history, "exact": exact, "attention": mean, "english": english, "french": french}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--plot", action="store_true", help="save the attention heat map to attention.png")
    args = parser.parse_args()
    main(epochs=args.epochs, plot=args.plot)

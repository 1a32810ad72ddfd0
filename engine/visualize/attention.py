"""engine.visualize.attention: seeing where a model looks.

    weights = attention_weights(model, x, "transformer_decoder/cross_attention")   # (batch, heads, T, S)
    print(render_attention(weights[0], french_words, english_words))               # a table in the terminal
    plot_attention(weights[0], french_words, english_words, filename="attention.png")   # heat maps (matplotlib)

attention_weights runs the model once, without gradients, and keeps the softmax weights that one attention
layer computed: for each head, a (queries x keys) table whose rows sum to 1. In a translation model's
cross-attention the rows are the output words and the columns the input words, as in the lecture's
"je t' aime" table, where "t'" puts most of its weight on "you".
"""
import numpy as np

from ..layers.attention import MultiHeadAttention
from ..layers.base import Layer
from ..tensor import no_grad


def _children(layer):
    return list(getattr(layer, "layers", None) or []) + [s for s in layer._sublayers
                                                         if all(s is not c for c in getattr(layer, "layers", None) or [])]


def _named(root, name):
    """The first layer called `name` below root (depth first), or None."""
    for child in _children(root):
        if child.name == name:
            return child
        found = _named(child, name)
        if found is not None:
            return found
    return None


def _attention_layers(root):
    found = [root] if isinstance(root, MultiHeadAttention) else []
    for child in _children(root):
        found += _attention_layers(child)
    return found


def find_attention(model, layer):
    """The MultiHeadAttention that `layer` names in `model`: the layer itself, a layer name, or a path of names
    ('transformer_decoder/cross_attention'). A layer holding exactly one attention layer stands for it."""
    if isinstance(layer, Layer):
        target = layer
    elif isinstance(layer, str):
        target = model
        for part in layer.split("/"):
            found = None if target is None else _named(target, part)
            if found is None:
                raise ValueError(f"attention_weights: no layer named {part!r} in {target.name!r}. Received: "
                                 f"layer={layer!r}")
            target = found
    else:
        raise TypeError(f"attention_weights: expected `layer` to be a Layer or a name. Received: {type(layer).__name__}")
    candidates = _attention_layers(target)
    if len(candidates) != 1:
        names = [c.name for c in candidates]
        raise ValueError(f"attention_weights: expected `layer` to name one attention layer; {target.name!r} holds "
                         f"{len(candidates)}: {names}. Name one of them, e.g. layer='{target.name}/{names[0] if names else '...'}'")
    return candidates[0]


def attention_weights(model, inputs, layer):
    """Run model(inputs) (no gradients, training=False) and return the attention weights of every head of the
    attention layer `layer` (see find_attention) for it: a NumPy array (batch, heads, queries, keys), each row
    summing to 1."""
    attention = find_attention(model, layer)
    attention.keep_scores, attention.last_attention_scores = True, None
    try:
        with no_grad():
            model(inputs, training=False)
    finally:
        attention.keep_scores = False
    if attention.last_attention_scores is None:
        raise ValueError(f"attention_weights: running the model did not call {attention.name!r}")
    return attention.last_attention_scores


def _heads(weights, where):
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        return w[None]
    if w.ndim != 3:
        raise ValueError(f"{where}: expected weights of one example, (queries, keys) or (heads, queries, keys); "
                         f"pick one example with weights[i]. Received: weights.shape={w.shape}")
    return w


def _labels(tokens, count, where, name):
    if tokens is None:
        return [str(i) for i in range(count)]
    tokens = [str(t) for t in tokens]
    if len(tokens) != count:
        raise ValueError(f"{where}: expected {count} {name} (one per {'row' if name == 'query_tokens' else 'column'}). "
                         f"Received: {len(tokens)}")
    return tokens


_SHADES = " ░▒▓█"


def render_attention(weights, query_tokens=None, key_tokens=None, digits=2):
    """The weights as text tables, one per head: a row per query token, a column per key token, each cell the
    weight and a shade (blank to █) so the strong links stand out in a terminal."""
    where = "render_attention"
    w = _heads(weights, where)
    rows = _labels(query_tokens, w.shape[1], where, "query_tokens")
    cols = _labels(key_tokens, w.shape[2], where, "key_tokens")
    first = max([len(r) for r in rows] + [6])
    width = max([len(c) for c in cols] + [digits + 3])
    lines = []
    for h, table in enumerate(w):
        if len(w) > 1:
            lines.append(f"head {h}")
        lines.append(" " * first + "".join(f" {c:>{width}} " for c in cols))
        for label, row in zip(rows, table):
            cells = "".join(f" {v:>{width}.{digits}f}" + _SHADES[min(4, int(max(v, 0.0) * 5))] for v in row)
            lines.append(f"{label:<{first}}{cells}")
        if h < len(w) - 1:
            lines.append("")
    return "\n".join(lines)


def plot_attention(weights, query_tokens=None, key_tokens=None, title=None, filename=None, cmap="viridis",
                   annotate=None):
    """Heat maps of the weights, one per head, with the query tokens down the side and the key tokens along the
    bottom; annotate writes each weight in its cell (by default when the table is at most 12 x 12). Returns the
    matplotlib Figure, saved to `filename` when given. Needs matplotlib (pip install matplotlib);
    render_attention shows the same numbers as text."""
    where = "plot_attention"
    w = _heads(weights, where)
    rows = _labels(query_tokens, w.shape[1], where, "query_tokens")
    cols = _labels(key_tokens, w.shape[2], where, "key_tokens")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_attention needs matplotlib: pip install matplotlib (or pip install -e '.[examples]'). "
                          "render_attention(weights, ...) prints the same weights as a text table.") from None
    annotate = max(w.shape[1:]) <= 12 if annotate is None else annotate
    heads = len(w)
    fig = Figure(figsize=(1.2 + 0.55 * len(cols) * heads + 0.4 * heads, 1.2 + 0.5 * len(rows)), layout="constrained")
    axes = fig.subplots(1, heads, squeeze=False)[0]
    for h, ax in enumerate(axes):
        image = ax.imshow(w[h], cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=45 if max(len(c) for c in cols) > 3 else 0, ha="right"
                      if max(len(c) for c in cols) > 3 else "center")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_title(f"head {h}" if heads > 1 else (title or "attention weights"), fontsize=10)
        if annotate:
            for i in range(w.shape[1]):
                for j in range(w.shape[2]):
                    ax.text(j, i, f"{w[h, i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if w[h, i, j] > 0.6 else "white")
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    if title and heads > 1:
        fig.suptitle(title)
    if filename is not None:
        fig.savefig(filename, dpi=120)
    return fig

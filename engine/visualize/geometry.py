"""engine.visualize.geometry: seeing the geometry of convolution and pooling: where the output shape comes from, what one output pixel
sees, and how the view widens through a stack of layers.

    from engine import visualize
    print(visualize.explain(Conv2D(8, 3, strides=2, padding='same'), (28, 28, 1)))   # the formulas, numbers in
    print(visualize.footprint(Conv2D(8, 3, dilation_rate=2), (7, 7, 1), output=(1, 2)))   # the window as text
    visualize.plot_footprint(layer, (7, 7, 1), output=(1, 2))                          # ... as a figure
    print(visualize.receptive_fields(model))                                          # layer by layer

The arithmetic is Keras' (and engine/ref/conv2d.py's), per spatial axis, with k the kernel (or pool) size,
s the stride and d the dilation:
    span  = (k - 1) * d + 1                                  the input pixels one window covers
    valid: out = floor((n - span) / s) + 1                   no padding
    same:  out = ceil(n / s); zeros added = max((out - 1) * s + span - n, 0), the smaller half first
    causal (Conv1D): span - 1 zeros before the sequence, out = n / s rounded up
Output pixel i reads input pixels i * s - before + j * d for j = 0 .. k - 1 (those outside are padding).
matplotlib is optional: only plot_footprint needs it, and imports it when called.
"""
from ..layers.conv import _Conv
from ..layers.pooling import _Pooling2D
from ..ref.conv2d import axis_geometry

_AXES = ("height", "width")


class Geometry:
    """What explain() found: per spatial axis the sizes, padding and output size, plus the text."""

    def __init__(self, layer, input_shape, axes, output_shape, text):
        self.layer, self.input_shape, self.axes, self.output_shape, self.text = layer, input_shape, axes, \
            output_shape, text

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"<Geometry {type(self.layer).__name__} {self.input_shape} -> {self.output_shape}>"


def _window(layer):
    """(kind, window, strides, dilation, padding) of a convolution or pooling layer."""
    if isinstance(layer, _Conv):
        return "kernel_size", layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding
    if isinstance(layer, _Pooling2D):
        return "pool_size", layer.pool_size, layer.strides, (1,) * len(layer.pool_size), layer.padding
    raise TypeError(f"visualize: expected a convolution or pooling layer (Conv2D, Conv1D, MaxPooling2D, "
                    f"AveragePooling2D). Received: {type(layer).__name__}")


def _full_shape(layer, input_shape):
    """input_shape with the batch dimension (None) added when it was given without one."""
    rank = len(_window(layer)[1])
    shape = tuple(input_shape)
    if len(shape) == rank + 1:
        shape = (None,) + shape
    if len(shape) != rank + 2:
        raise ValueError(f"visualize: expected an input shape of {rank + 1} sizes (without the batch) or "
                         f"{rank + 2} (with it) for {type(layer).__name__}. Received: input_shape={tuple(input_shape)}")
    return shape


def _spatial(layer, shape):
    return shape[1:-1] if layer.data_format == "channels_last" else shape[2:]


def _axis(n, k, s, d, padding):
    """One axis: a dict of the geometry and the lines that explain it."""
    span = (k - 1) * d + 1
    lines = [f"span = (k - 1) * d + 1 = ({k} - 1) * {d} + 1 = {span}"]
    if padding == "same":
        out, before, after = axis_geometry(n, k, s, d, "same")
        need = (out - 1) * s + span - n
        lines.append(f"padding='same': out = ceil(n / s) = ceil({n} / {s}) = {out}")
        lines.append(f"zeros added = max((out - 1) * s + span - n, 0) = max({out - 1} * {s} + {span} - {n}, 0) = "
                     f"{max(need, 0)}: {before} before, {after} after")
    elif padding == "causal":
        out, before, after = axis_geometry(n, k, s, d, (span - 1, 0))
        lines.append(f"padding='causal': span - 1 = {span - 1} zeros before; out = floor((n + {span - 1} - span) / s) "
                     f"+ 1 = floor(({n} + {span - 1} - {span}) / {s}) + 1 = {out}")
    else:
        out, before, after = axis_geometry(n, k, s, d, "valid")
        lines.append(f"padding='valid': out = floor((n - span) / s) + 1 = floor(({n} - {span}) / {s}) + 1 = {out}")
    return {"n": n, "k": k, "s": s, "d": d, "span": span, "out": out, "before": before, "after": after}, lines


def explain(layer, input_shape):
    """The output shape and receptive field of a Conv2D, Conv1D or pooling layer on input_shape (with or
    without the batch dimension), as a Geometry whose str() is the explanation with the numbers filled in."""
    kind, window, strides, dilation, padding = _window(layer)
    shape = _full_shape(layer, input_shape)
    sizes = _spatial(layer, shape)
    if any(n is None for n in sizes):
        raise ValueError(f"visualize.explain: expected known spatial sizes. Received: input_shape={shape}")
    output_shape = layer.compute_output_shape(shape)                     # raises when the window does not fit
    names = _AXES if len(sizes) == 2 else ("length",)
    text = [f"{type(layer).__name__} '{layer.name}': {kind}={tuple(window)}, strides={tuple(strides)}, "
            f"dilation_rate={tuple(dilation)}, padding='{padding}', input {shape}"]
    axes = []
    for name, n, k, s, d in zip(names, sizes, window, strides, dilation):
        geometry, lines = _axis(n, k, s, d, padding)
        axes.append(geometry)
        text.append(f"  {name} (n = {n}, k = {k}, s = {s}, d = {d}):")
        text += [f"    {line}" for line in lines]
    text.append(f"  output shape: {output_shape}")
    spans = " x ".join(str(a["span"]) for a in axes)
    taps = " x ".join(str(a["k"]) for a in axes)
    text.append(f"  receptive field: each output value reads a {spans} {'patch' if len(axes) == 2 else 'stretch'} of "
                f"this layer's input "
                f"({taps} taps{', spaced ' + ' and '.join(str(d) for d in dilation) + ' apart' if max(dilation) > 1 else ''})"
                f"; neighbouring outputs are {' and '.join(str(s) for s in strides)} input pixels apart")
    return Geometry(layer, shape, axes, output_shape, "\n".join(text))


def _grid(layer, input_shape, outputs):
    """The padded input as rows of cells: for each cell, whether it is padding and which outputs read it."""
    g = explain(layer, input_shape)
    axes = g.axes if len(g.axes) == 2 else [{"n": 1, "k": 1, "s": 1, "d": 1, "span": 1, "out": 1, "before": 0,
                                             "after": 0}] + g.axes
    rows = axes[0]["before"] + axes[0]["n"] + axes[0]["after"]
    cols = axes[1]["before"] + axes[1]["n"] + axes[1]["after"]
    readers = [[[] for _ in range(cols)] for _ in range(rows)]
    for index, out in enumerate(outputs):
        out = tuple(out) if isinstance(out, (tuple, list)) else (0, out)
        if len(out) == 1:
            out = (0,) + out
        if not all(0 <= o < a["out"] for o, a in zip(out, axes)):
            raise ValueError(f"visualize: expected an output position inside the output "
                             f"{tuple(a['out'] for a in axes)}. Received: output={out}")
        for i in range(axes[0]["k"]):
            for j in range(axes[1]["k"]):
                r = out[0] * axes[0]["s"] + i * axes[0]["d"]             # in padded coordinates
                c = out[1] * axes[1]["s"] + j * axes[1]["d"]
                readers[r][c].append(index)
    padding = [[not (axes[0]["before"] <= r < axes[0]["before"] + axes[0]["n"] and
                     axes[1]["before"] <= c < axes[1]["before"] + axes[1]["n"]) for c in range(cols)]
               for r in range(rows)]
    return g, readers, padding


def _outputs(output):
    return [output] if output is None or not isinstance(output, list) else output


def footprint(layer, input_shape, output=(0, 0)):
    """The input grid (with its padding ring) as text, marking the pixels that output pixel `output` reads.
    `output` may be a list of positions: the first is marked 1, the second 2, ... ('*' where they overlap).
    Legend: '.' an input pixel, ':' a zero of the padding, '#' / digit a pixel the window reads, '+' a
    padding zero it reads."""
    outputs = _outputs(output)
    g, readers, padding = _grid(layer, input_shape, outputs)
    lines = [f"{type(layer).__name__} '{layer.name}' on a {' x '.join(str(a['n']) for a in g.axes)} input "
             f"(padding='{layer.padding}', shown as ':'), output{'s' if len(outputs) > 1 else ''} "
             f"{', '.join(str(tuple(o) if isinstance(o, (tuple, list)) else o) for o in outputs)}:"]
    for row_readers, row_padding in zip(readers, padding):
        cells = []
        for who, pad in zip(row_readers, row_padding):
            if not who:
                cells.append(":" if pad else ".")
            elif pad:
                cells.append("+")
            elif len(set(who)) > 1:
                cells.append("*")
            else:
                cells.append("#" if len(outputs) == 1 else str(who[0] + 1))
        lines.append("  " + " ".join(cells))
    lines.append("legend: . input  : padding  " + ("# read" if len(outputs) == 1 else "1-9 read by that output  * by several")
                 + "  + padding read")
    return "\n".join(lines)


def plot_footprint(layer, input_shape, output=(0, 0), ax=None):
    """footprint() as a matplotlib figure: input pixels light, padding grey, the cells each output reads in
    color. Returns the Axes. Needs matplotlib (pip install matplotlib)."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
    except ImportError:
        raise RuntimeError("plot_footprint: matplotlib is not installed. Install it with `pip install matplotlib` "
                           "(or pip install -e '.[examples]'), or use visualize.footprint(...) for the text "
                           "version.") from None
    import numpy as np
    outputs = _outputs(output)
    g, readers, padding = _grid(layer, input_shape, outputs)
    image = np.array([[1 + min(len(set(who)), 1) * (2 + who[0] if who else 0) if who else (0 if pad else 1)
                       for who, pad in zip(rw, rp)] for rw, rp in zip(readers, padding)], dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.4 * image.shape[1] + 1, 0.4 * image.shape[0] + 1))
    colors = ["#bbbbbb", "#f4f4f4", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
    ax.imshow(image, cmap=ListedColormap(colors[:max(3, int(image.max()) + 1)]), vmin=0,
              vmax=max(2, int(image.max())))
    ax.set_xticks(np.arange(-0.5, image.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, image.shape[0], 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    ax.set_title(f"{type(layer).__name__}: {g.axes[-1]['k']}-wide window, strides {tuple(layer.strides)}, "
                 f"padding '{layer.padding}'", fontsize=9)
    return ax


def receptive_fields(model, input_shape=None):
    """For each layer of a Sequential model: its output shape, the receptive field of one of its output pixels
    on the model's input (r = r_before + (span - 1) * jump_before) and the jump between neighbouring outputs
    (jump = jump_before * stride), as text. Layers without a window keep both."""
    shape = tuple(input_shape) if input_shape is not None else (None,) + tuple(model._input_shape_arg or ())
    if len(shape) < 2:
        raise ValueError("visualize.receptive_fields: the model's input shape is unknown: pass input_shape")
    if shape[0] is not None:
        shape = (None,) + shape
    field, jump = [1, 1], [1, 1]                             # per spatial axis (a 1-D layer uses the first)
    lines = [f"{'layer':<34} {'output shape':<22} {'receptive field':>15} {'jump':>7}"]
    for layer in model.layers:
        shape = layer.compute_output_shape(shape)
        if isinstance(layer, (_Conv, _Pooling2D)):
            _, window, strides, dilation, _ = _window(layer)
            for a, (k, s, d) in enumerate(zip(window, strides, dilation)):
                field[a] += (k - 1) * d * jump[a]
                jump[a] *= s
        rank = len(shape) - 2
        seen = " x ".join(map(str, field[:rank])) if rank > 0 else "all"      # after Flatten: every input
        lines.append(f"{layer.name + ' (' + type(layer).__name__ + ')':<34} {str(shape):<22} {seen:>15} "
                     f"{' x '.join(map(str, jump[:rank])) if rank > 0 else '-':>7}")
    return "\n".join(lines)

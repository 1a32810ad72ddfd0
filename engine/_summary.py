"""model.summary(): Keras' table of layers, output shapes and parameter counts."""


def _shape_str(shape):
    return "?" if shape is None else str(tuple(shape))


def _rows(model):
    """(name (type), output shape, params, trainable) for each layer, with output shapes propagated from the
    model's input shape when it is known."""
    if hasattr(model, "_summary_rows"):                  # a functional model knows its graph's shapes
        return model._summary_rows()
    layers = getattr(model, "layers", None)
    if layers is None:                                   # a subclassed model: its tracked layers, shapes unknown
        return [(f"{l.name} ({type(l).__name__})", None, l.count_params(), l.trainable) for l in model._sublayers]
    shape = None
    if model._input_shape_arg is not None:
        shape = (None,) + tuple(model._input_shape_arg)
    rows = []
    for layer in layers:
        if shape is not None:
            try:
                shape = layer.compute_output_shape(shape)
            except (ValueError, TypeError):
                shape = None
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, layer.count_params(), layer.trainable))
    return rows


def _bytes(count):
    size = count * 4.0                                   # float32
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def summary_lines(model, width=78, show_trainable=False):
    rows = _rows(model)
    cols = [int(width * 0.42), int(width * 0.32), width - int(width * 0.42) - int(width * 0.32) - 4]
    if model.built or all(r[1] is not None for r in rows):
        total = model.count_params()
        trainable = sum(w.size for w in model.trainable_weights)
    else:
        total = trainable = sum(r[2] for r in rows)

    def line(left, mid, right, fill):
        return left + mid.join(fill * c for c in cols) + right

    def cells(a, b, c):
        if len(a) > cols[0] - 2:                         # a long name (batch_normalization_1 (BatchNormalization)) is cut
            a = a[:cols[0] - 3] + "…"
        return "┃ " + a.ljust(cols[0] - 1) + "┃ " + b.ljust(cols[1] - 1) + "┃ " + c.rjust(cols[2] - 2) + " ┃"

    out = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━"), cells("Layer (type)", "Output Shape", "Param #"),
           line("┡", "╇", "┩", "━")]
    for i, (name, shape, params, layer_trainable) in enumerate(rows):
        label = name + ("" if layer_trainable or not show_trainable else " [frozen]")
        name, sep, kind = label.partition(" (")
        if len(label) > cols[0] - 2 and sep:              # too wide: the type goes on a second line, as Keras does
            out.append(cells(name, _shape_str(shape), str(params)).replace("┃", "│"))
            out.append(cells("(" + kind, "", "").replace("┃", "│"))
        else:
            out.append(cells(label, _shape_str(shape), str(params)).replace("┃", "│"))
        out.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
    if not rows:
        out.append(line("└", "┴", "┘", "─"))
    out += [f" Total params: {total:,} ({_bytes(total)})", f" Trainable params: {trainable:,} ({_bytes(trainable)})",
            f" Non-trainable params: {total - trainable:,} ({_bytes(total - trainable)})"]
    return out

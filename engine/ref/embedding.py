"""NumPy reference for the embedding family: look rows of a table up by integer id, and send the gradient
back to the rows that were looked up. The spec that csrc/embedding.cpp must match.

Dimensions: V rows of the table (the vocabulary, Keras' input_dim), D features per row (output_dim);
"..." is any shape of ids (batch, time, ...). Ids are integers in [0, V); they get no gradient.
"""
import numpy as np

from ._check import embedding_ids, floats, shape_str


def embedding_forward(ids, table):
    """y[..., :] = table[ids[...], :].    ids: (...) integers in [0, V), table: (V, D) -> y: (..., D)"""
    floats("embedding_forward", "table", table)
    if table.ndim != 2:
        raise ValueError(f"embedding_forward: expected table of shape (V, D). Received: table.shape="
                         f"{shape_str(table.shape)}")
    return table[embedding_ids("embedding_forward", ids, table.shape[0])]


def embedding_backward(dy, ids, num_rows):
    """dtable[v, :] = sum of dy[..., :] over every position whose id is v (a repeated id adds up; rows
    never looked up get 0). The only gradient: ids are not differentiable.
    dy: (..., D), ids: (...), num_rows: V -> dtable: (V, D)"""
    floats("embedding_backward", "dy", dy)
    if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or num_rows < 0:
        raise ValueError(f"embedding_backward: expected num_rows to be an int >= 0. Received: num_rows={num_rows!r}")
    ids = embedding_ids("embedding_backward", ids, num_rows)
    if dy.shape[:-1] != ids.shape or dy.ndim == 0:
        raise ValueError(f"embedding_backward: expected dy of shape ids.shape + (D,). "
                         f"Received: dy.shape={shape_str(dy.shape)}, ids.shape={shape_str(ids.shape)}")
    dtable = np.zeros((num_rows, dy.shape[-1]), dtype=dy.dtype)
    np.add.at(dtable, ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))   # in order of position: repeats accumulate
    return dtable

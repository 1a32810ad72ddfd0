"""MNIST from IDX files: a reader (and writer) of the IDX format, and load_data for a folder of the four MNIST
files, as keras.datasets.mnist.load_data returns them. Nothing is downloaded: point it at the files.

The IDX format (Yann LeCun's, used by MNIST and Fashion-MNIST), all integers big-endian:
    bytes 0-1   0x00 0x00
    byte  2     the element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     the number of dimensions, d
    then        d sizes, each a 4-byte unsigned integer
    then        the values, row-major, each big-endian
MNIST's images are 'train-images-idx3-ubyte' (60000, 28, 28) uint8 and its labels 'train-labels-idx1-ubyte'
(60000,) uint8, and the same with 't10k' for the 10000 test images. Files ending in '.gz' (as MNIST ships
them) are read through gzip.
"""
import gzip
import os
import struct

import numpy as np

TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
         0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _open(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"                    # gzip's magic number, whatever the file is called
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path):
    """The array stored in the IDX file at `path` (gzip-compressed or not), in native byte order."""
    path = os.fspath(path)
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"read_idx: expected an IDX file, which starts with two zero bytes. "
                         f"Received: {path!r} starting with {data[:4]!r}")
    code, ndim = data[2], data[3]
    if code not in TYPES:
        raise ValueError(f"read_idx: expected an element type code in {[hex(c) for c in TYPES]}. "
                         f"Received: {hex(code)} in {path!r}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: {path!r} is truncated: its header names {ndim} dimensions but the file has "
                         f"{len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"read_idx: expected {expected} bytes of data for shape {tuple(shape)} of {dtype.name}. "
                         f"Received: {len(data) - header} bytes in {path!r}")
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))             # a native-order copy that owns its data


def write_idx(path, array):
    """Write `array` (of a type IDX has) to `path` in the IDX format; gzip-compressed when path ends in '.gz'."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"write_idx: expected an array of uint8, int8, int16, int32, float32 or float64. "
                        f"Received: dtype={array.dtype}")
    big = TYPES[codes[native]]
    payload = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        np.ascontiguousarray(array, dtype=big).tobytes()
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def _find(folder, stem):
    """The file for `stem` in folder: 'stem', 'stem.gz', or the dotted variant 'train-images.idx3-ubyte'."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"mnist.load_data: expected {stem!r} (or {stem + '.gz'!r}) in {folder!r}. Download the "
                            f"four MNIST IDX files into that folder (they are not fetched here)")


def load_data(path):
    """((x_train, y_train), (x_test, y_test)) from the folder `path` holding MNIST's four IDX files: images
    (N, 28, 28) uint8 and labels (N,) uint8, as keras.datasets.mnist.load_data returns them."""
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"mnist.load_data: expected a folder with the MNIST IDX files. Received: path={folder!r}")
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"mnist.load_data: expected {split} images (N, H, W) and labels (N,) of one length. "
                             f"Received: images {x.shape}, labels {y.shape}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])

"""engine.saving: save and load whole models ('.keras') and weights ('.weights.npz'), never with pickle.

    model.save('model.keras');            model = engine.saving.load_model('model.keras')
    model.save_weights('m.weights.npz');  model.load_weights('m.weights.npz')

Both files are zip archives (deflate) of JSON and raw arrays; each array is one '.npy' member written by
np.save(allow_pickle=False) and read back by np.load(allow_pickle=False), so loading a file never runs
code from it. A '.keras' file is engine's own format: it has Keras' suffix and a zip layout like Keras 3's,
but Keras cannot read it (nor engine a Keras file).

    metadata.json          {"format": "engine.model" | "engine.weights", "format_version": 1,
                            "engine_version", "weights": [{"name", "shape", "dtype"}, ...],
                            "optimizer": optimizer.get_state meta or null}
    config.json            {"class_name", "config": model.get_config(), "build_shape",
                            "compile_config"}                        (model files only)
    weights/00000.npy ...  model.weights, in order
    optimizer/00000.npy    the optimizer's slot arrays, in get_state order (model files only)

Writes are atomic: the archive is written to a temporary file in the target's directory and moved over
the target with os.replace, so a failed save leaves any earlier file untouched. Loads check the whole
file before changing the model.
"""
import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from . import random, serialization
from ._version import __version__

MODEL_FORMAT = "engine.model"
WEIGHTS_FORMAT = "engine.weights"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".keras"
WEIGHTS_SUFFIX = ".weights.npz"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)         # fixed member timestamps: the same model gives the same bytes

# The class registry (register_serializable, custom_object_scope, get_registered_object) lives in
# engine/serialization.py, below the layers; it is re-exported here, where Keras users look for it.
register_serializable = serialization.register_serializable
custom_object_scope = serialization.custom_object_scope
get_registered_object = serialization.get_registered_object
get_custom_objects = serialization.get_custom_objects


# --------------------------------------------------------------------------------------------- writing


def _check_path(where, filepath, suffixes, noun):
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"{where}: expected `filepath` to be a str or path. Received: filepath={filepath!r}")
    path = os.fspath(filepath)
    if not path.endswith(suffixes):
        hint = ""
        if path.endswith(".h5"):
            hint = (" engine writes a zip of .npy arrays, not HDF5, so it uses '.weights.npz' for weights and "
                    "'.keras' for whole models.")
        elif WEIGHTS_SUFFIX in suffixes and path.endswith(".npz"):
            hint = " Name weights files '<name>.weights.npz'."
        expected = " or ".join(repr(s) for s in suffixes)
        raise ValueError(f"{where}: expected {noun} ending in {expected}.{hint} Received: filepath={path!r}")
    return path


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write_archive(where, path, members, overwrite):
    """Write {member name: bytes, or a callable returning bytes} as a zip at `path`, atomically: a
    temporary file beside the target, then os.replace. On any error the temporary file is removed and an
    existing target is left as it was."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"{where}: expected `overwrite` to be True or False. Received: overwrite={overwrite!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{where}: expected a file path, not a directory. Received: filepath={path!r}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{where}: {path!r} exists and overwrite=False. Pass overwrite=True to replace it, "
                              f"or choose another name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{where}: the directory {directory!r} does not exist. Create it first. "
                                f"Received: filepath={path!r}")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, content in members.items():
                    data = content() if callable(content) else content
                    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _json_bytes(obj):
    return json.dumps(obj, indent=1, allow_nan=True).encode("utf-8")


def _array_members(prefix, arrays):
    """{'prefix/00000.npy': lazily serialized array} in order (np.save runs inside the atomic write)."""
    return {f"{prefix}/{i:05d}.npy": (lambda a=a: _npy_bytes(a)) for i, a in enumerate(arrays)}


def _weights_metadata(weights):
    return [{"name": getattr(w, "name", None), "shape": list(w.shape), "dtype": str(w.data.dtype)} for w in weights]


def build_shape(model):
    """The input shape the model was built with (batch dimension None), or None for an unbuilt model."""
    shape = model.get_build_config().get("input_shape") if model.built else None
    if shape is None:
        return None
    return [None] + [int(d) for d in shape[1:]]


def write_state(where, path, model, fmt, metadata=None, members=None, optimizer=True, overwrite=True):
    """Write a model's state as an engine zip at `path`, atomically: metadata.json ({"format": fmt,
    "format_version", "engine_version", **metadata, "weights", and with optimizer=True "optimizer" and
    "optimizer_arrays"}), the extra `members` ({name: bytes}), weights/00000.npy ... and (optimizer=True)
    the optimizer's slot arrays. save_model, save_weights and BackupAndRestore all write through here."""
    weights = model.weights
    head = {"format": fmt, "format_version": FORMAT_VERSION, "engine_version": __version__, **(metadata or {}),
            "weights": _weights_metadata(weights)}
    opt_arrays = []
    if optimizer:
        opt_meta = None
        if getattr(model, "optimizer", None) is not None and getattr(model, "compiled", True):
            opt_meta, opt_arrays = model.optimizer.get_state(model.trainable_weights)
        head.update({"optimizer": opt_meta, "optimizer_arrays": len(opt_arrays)})
    out = {"metadata.json": _json_bytes(head), **(members or {})}
    out.update(_array_members("weights", [w.data for w in weights]))
    if optimizer:
        out.update(_array_members("optimizer", opt_arrays))
    _write_archive(where, path, out, overwrite)


def save_model(model, filepath, overwrite=True):
    """Save the architecture (get_config), the weights, the compile settings and the optimizer state to a
    '.keras' file (engine's zip format; Keras cannot read it). load_model(filepath) rebuilds the model;
    training continued after loading gives bitwise the same weights as training continued without saving."""
    where = "save_model"
    path = _check_path(where, filepath, (MODEL_SUFFIX,), "a model file")
    model_config = {"class_name": type(model).__name__, "config": model.get_config(),   # raises before any write
                    "build_shape": build_shape(model), "compile_config": getattr(model, "_compile_config", None)}
    try:
        config = _json_bytes(model_config)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where}: the model's config must hold only JSON values (str, numbers, lists, dicts, "
                        f"None); check get_config() of custom layers. ({err})") from None
    write_state(where, path, model, MODEL_FORMAT, members={"config.json": config},
                overwrite=overwrite)


def save_weights(model, filepath, overwrite=True):
    """Save model.weights (in order) to a '.weights.npz' file: a zip of .npy arrays plus metadata.json
    (np.load can list it too). load_weights puts them back into a model of the same architecture."""
    where = "save_weights"
    path = _check_path(where, filepath, (WEIGHTS_SUFFIX,), "a weights file")
    write_state(where, path, model, WEIGHTS_FORMAT, optimizer=False, overwrite=overwrite)


# --------------------------------------------------------------------------------------------- reading


_NOUNS = {MODEL_FORMAT: "engine model", WEIGHTS_FORMAT: "engine weights", "engine.backup": "engine backup"}


class _Archive:
    """A checked, read-only view of an engine zip file. Every problem is a ValueError naming the file."""

    def __init__(self, where, path, formats):
        self.where, self.path = where, path
        self.noun = " or ".join(_NOUNS.get(f, f) for f in formats)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{where}: no such file: {path!r}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{where}: expected a file, not a directory. Received: filepath={path!r}")
        try:
            with open(path, "rb") as f:
                data = f.read()
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            self.fail("it is not a zip archive (the file may be truncated or of another kind)")
        self.metadata = self.json("metadata.json")
        fmt = self.metadata.get("format") if isinstance(self.metadata, dict) else None
        if fmt not in formats:
            self.fail(f"its metadata says format={fmt!r}; expected {' or '.join(repr(f) for f in formats)}")
        self.format = fmt
        version = self.metadata.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION or version < 1:
            self.fail(f"it has format_version={version!r}; this engine reads version {FORMAT_VERSION} "
                      f"(a newer engine may have written it)")

    def fail(self, why):
        raise ValueError(f"{self.where}: {self.path!r} is not an {self.noun} file: {why}") from None

    def read(self, name):
        try:
            return self.zip.read(name)
        except KeyError:
            self.fail(f"the member {name!r} is missing")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as err:
            self.fail(f"the member {name!r} is damaged ({err})")

    def json(self, name):
        try:
            return json.loads(self.read(name).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self.fail(f"{name} is not valid JSON ({err})")

    def array(self, name):
        try:
            return np.load(io.BytesIO(self.read(name)), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            self.fail(f"{name} is not a readable .npy array ({err})")

    def count(self, key):
        """metadata[key] as an int >= 0 (missing or null: 0)."""
        value = self.metadata.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"metadata.json has {key}={value!r}; expected an int >= 0")
        return value

    def arrays(self, prefix, count):
        return [self.array(f"{prefix}/{i:05d}.npy") for i in range(count)]

    def weight_arrays(self):
        entries = self.metadata.get("weights")
        if not isinstance(entries, list):
            self.fail("metadata.json has no list of weights")
        return self.arrays("weights", len(entries))


class State:
    """What an engine zip holds of a model's state, read and checked by read_state: `metadata` (the dict of
    metadata.json), `weights` (arrays in model.weights order), `optimizer` (the optimizer's get_state meta,
    or None) and `optimizer_arrays`. `fail(why)` raises the ValueError that names the file."""

    def __init__(self, archive, optimizer):
        self.archive, self.metadata, self.fail = archive, archive.metadata, archive.fail
        self.where, self.path = archive.where, archive.path
        self.weights = archive.weight_arrays()
        self.optimizer = self.metadata.get("optimizer") if optimizer else None
        self.optimizer_arrays = [] if self.optimizer is None else \
            archive.arrays("optimizer", archive.count("optimizer_arrays"))

    def check_weights(self, model):
        """Raise ValueError unless the weights fit model.weights one for one (count and shapes)."""
        weights = model.weights
        where, path, arrays = self.where, self.path, self.weights
        if len(arrays) != len(weights):
            raise ValueError(f"{where}: {path!r} was saved from a model with {len(arrays)} weights; this model "
                             f"has {len(weights)}. Load it into a model of the same architecture (and build the "
                             f"model first: call it on data or call model.build(input_shape))")
        for w, a in zip(weights, arrays):
            if a.dtype.kind not in "fiu":
                raise ValueError(f"{where}: {path!r} holds a {a.dtype} array for weight {w.name!r}; expected numbers")
            if tuple(a.shape) != tuple(w.shape):
                raise ValueError(f"{where}: {path!r} holds an array of shape {tuple(a.shape)} for weight "
                                 f"{w.name!r}, which has shape {tuple(w.shape)}. Received: a model of another "
                                 f"architecture")

    def restore_optimizer(self, model):
        """Put the optimizer state into model.optimizer (checked completely before anything changes)."""
        if self.optimizer is not None:
            model.optimizer.set_state(model.trainable_weights, self.optimizer, self.optimizer_arrays)


def read_state(where, path, formats, optimizer=True):
    """Open the engine zip at `path` (one of `formats`) and read its state (a State), checking the archive,
    its metadata and every array before the caller changes anything."""
    return State(_Archive(where, path, formats), optimizer)


def load_weights(model, filepath):
    """Load weights saved by save_weights ('.weights.npz') or save_model ('.keras') into `model`, which
    must have the same architecture and be built. The file is checked completely before any weight
    changes: on any error the model is left as it was."""
    where = "load_weights"
    path = _check_path(where, filepath, (WEIGHTS_SUFFIX, MODEL_SUFFIX), "a weights or model file")
    state = read_state(where, path, (MODEL_FORMAT,) if path.endswith(MODEL_SUFFIX) else (WEIGHTS_FORMAT,),
                       optimizer=False)
    if not model.built and state.weights:
        raise ValueError(f"{where}: the model is not built yet, so it has no weights to load into. Build it "
                         f"first: call it on a batch of data or call model.build(input_shape)")
    state.check_weights(model)
    model.set_weights(state.weights)


def deserialize_layer(spec, custom_objects=None, where="load_model"):
    """A layer or model from {'class_name', 'config'} (engine.serialization.deserialize)."""
    return serialization.deserialize(spec, custom_objects, where)


def build_from_shape(model, shape):
    """Create a rebuilt model's weights from the input shape it was saved with (None: leave it unbuilt)."""
    if shape is not None:
        model.build_from_config({"input_shape": tuple(shape)})


def _deserialize_compile(where, compile_config, custom_objects):
    """compile() arguments from the stored compile_config."""
    from . import losses, metrics, optimizers
    known = {**serialization.get_custom_objects(), **(custom_objects or {})}
    optimizer = optimizers.deserialize(compile_config.get("optimizer"), custom_objects=known)
    loss_spec = compile_config.get("loss")
    loss = None
    if isinstance(loss_spec, dict):
        class_name = loss_spec.get("class_name")
        try:
            if class_name == "LossFunctionWrapper":        # a custom function, stored by name
                raise ValueError(class_name)
            loss = losses.deserialize(loss_spec)
        except ValueError:
            name = loss_spec.get("config", {}).get("name") if class_name == "LossFunctionWrapper" else class_name
            custom = get_registered_object(name, custom_objects, kind="loss")
            if custom is None:
                raise ValueError(f"{where}: the model was compiled with the custom loss {name!r}. Pass "
                                 f"custom_objects={{'{name}': {name}}} to load_model, or compile=False") from None
            loss = custom.from_config(loss_spec.get("config", {})) if isinstance(custom, type) else custom
    restored = []
    for m in compile_config.get("metrics") or []:
        if isinstance(m, dict):
            cls = get_registered_object(m.get("class_name"), custom_objects, kind="metric")
            if not isinstance(cls, type):
                raise ValueError(f"{where}: unknown metric class {m.get('class_name')!r}. Pass it in custom_objects")
            restored.append(cls(**m.get("config", {})))
            continue
        try:
            metrics.check(m)
            restored.append(m)
        except ValueError:
            custom = get_registered_object(m, custom_objects, kind="metric")
            if custom is None:
                raise ValueError(f"{where}: the model was compiled with the custom metric {m!r}. Pass "
                                 f"custom_objects={{'{m}': {m}}}, or compile=False") from None
            restored.append(custom)
    return {"optimizer": optimizer, "loss": loss, "metrics": restored}


def load_model(filepath, custom_objects=None, compile=True):
    """Rebuild a model saved by save_model: architecture, weights and (compile=True) the compiled loss,
    metrics and optimizer with its state. Custom classes come from custom_objects ({'Name': cls}) or from
    @register_serializable. Loading does not consume the engine's random draws (engine.random)."""
    where = "load_model"
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"{where}: expected custom_objects to be a dict {{name: class}}. "
                        f"Received: {type(custom_objects).__name__}")
    if isinstance(filepath, (str, os.PathLike)) and os.fspath(filepath).endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"{where}: {os.fspath(filepath)!r} is a weights file; it has no architecture. Build the "
                         f"model and call model.load_weights(filepath) instead")
    path = _check_path(where, filepath, (MODEL_SUFFIX,), "a model file")
    state = read_state(where, path, (MODEL_FORMAT,))
    spec = state.archive.json("config.json")
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or \
            not isinstance(spec.get("config"), dict):
        state.fail("config.json has no class_name and config")

    draws = random.get_state()                # building draws initial weights; keep the caller's sequence
    try:
        model = deserialize_layer({"class_name": spec["class_name"], "config": spec["config"]}, custom_objects, where)
        build_from_shape(model, spec.get("build_shape"))
    finally:
        random.set_state(draws)
    state.check_weights(model)
    model.set_weights(state.weights)
    compile_config = spec.get("compile_config")
    if compile and compile_config is not None:
        model.compile(**_deserialize_compile(where, compile_config, custom_objects))
        state.restore_optimizer(model)
    return model

"""engine.serialization: the class registry that turns a saved name back into a class, and the one
lookup every by-name option uses.

    Dense(4, activation='relu')            'relu' is looked up in the activations' table
    {"class_name": "Dense", "config": {...}}   deserialize() finds Dense in the registry and calls from_config

The registry is filled as classes are defined, never by importing them: Layer.__init_subclass__ (so every
layer and model class, engine's own and yours) and the option libraries (initializers, regularizers,
losses, metrics, optimizers) call `register_builtin` for engine's classes. Your own classes are found
through, in this order:
    custom_objects={'Name': cls}            passed to load_model (or deserialize)
    with custom_object_scope({'Name': cls}):   for every load inside the block, as in Keras
    @register_serializable()                once, when the class is defined
This module sits below everything that is saved: it imports nothing from engine, so layers, models, the
option libraries and saving can all use it without an import running upward.
"""
import contextlib
import inspect
import re

_BUILTIN = {}                   # kind -> {class name: class}: engine's own classes, registered as they are defined
_REGISTERED = {}                # name given to register_serializable -> class
_REGISTERED_BY_CLASS_NAME = {}  # cls.__name__ -> class (configs store type(obj).__name__)
_SCOPES = []                    # the dicts of the custom_object_scope blocks now open, innermost last
_LOADING = []                   # the `where` of the deserialize calls in progress: nested entries report the outer one


def snake_case(name):
    """Keras' rule: 'Dense' -> 'dense', 'ReLU' -> 're_lu', 'BatchNormalization' -> 'batch_normalization'."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# --------------------------------------------------------------------------------------------- registry


def register_builtin(kind, cls, *aliases):
    """Record one of engine's own public classes under its name and `aliases` (kind: 'layer', 'loss',
    'metric', ...). Called where the class is defined; a class of another package, or a private base
    class (a name starting with '_'), is left alone."""
    if cls.__module__.split(".")[0] == "engine" and not cls.__name__.startswith("_"):
        table = _BUILTIN.setdefault(kind, {})
        for name in (cls.__name__,) + aliases:
            table[name] = cls
    return cls


class Registered:
    """Base of the classes a saved file names (layers, models, initializers, regularizers, losses, metrics,
    optimizers): defining a subclass in engine registers it under `registry_kind`."""

    registry_kind = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_builtin(cls.registry_kind, cls)


def builtin_classes(kind):
    """{name: class} of engine's own classes of `kind` ('layer' includes the models)."""
    return dict(_BUILTIN.get(kind, {}))


def register_serializable(name=None):
    """Class decorator: make a custom Layer or Model loadable by load_model without custom_objects.

        @engine.saving.register_serializable()
        class Scale(Layer): ...

    The class is found by `name` (default: the class name). It must rebuild from its get_config()
    through from_config (Layer.from_config calls cls(**config))."""
    if isinstance(name, type):                # used bare: @register_serializable
        return register_serializable()(name)
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"register_serializable: expected `name` to be a non-empty string or None. "
                         f"Received: name={name!r}")

    def decorator(cls):
        if not isinstance(cls, type):
            raise TypeError(f"register_serializable: expected a class. Received: {type(cls).__name__}")
        _REGISTERED[name or cls.__name__] = cls
        _REGISTERED_BY_CLASS_NAME[cls.__name__] = cls
        return cls
    return decorator


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Inside the block, every load finds the classes and functions of `custom_objects` ({'Name': obj})
    as if they were passed to it, nested loads included (a Sequential rebuilding its layers)."""
    if not isinstance(custom_objects, dict):
        raise TypeError(f"custom_object_scope: expected a dict {{name: class}}. "
                        f"Received: {type(custom_objects).__name__}")
    _SCOPES.append(custom_objects)
    try:
        yield custom_objects
    finally:
        _SCOPES.pop()


def get_custom_objects():
    """The custom objects in force now: the open scopes and the registered classes, {name: obj}."""
    found = {**_REGISTERED_BY_CLASS_NAME, **_REGISTERED}
    for scope in _SCOPES:
        found.update(scope)
    return found


def get_registered_object(name, custom_objects=None, kind="layer"):
    """The class saved under `name`: engine's built-in classes of `kind` first, then custom_objects, the
    open custom_object_scope blocks and the register_serializable registry; None when none has it."""
    tables = (_BUILTIN.get(kind, {}), custom_objects or {}, *reversed(_SCOPES), _REGISTERED, _REGISTERED_BY_CLASS_NAME)
    for table in tables:
        if name in table:
            return table[name]
    return None


# --------------------------------------------------------------------------------------------- deserialize


def _from_config(where, cls, config, custom_objects):
    """cls.from_config(config), passing custom_objects to a from_config that takes them."""
    try:
        if "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(config, custom_objects=custom_objects)
        return cls.from_config(config)
    except DeserializationError:
        raise                                   # an inner entry's error names the entry itself
    except (TypeError, ValueError) as err:
        raise DeserializationError(f"{where}: could not rebuild {cls.__name__} from its config ({err}). A custom "
                                   f"class needs get_config() to return its constructor arguments (or its own "
                                   f"from_config)") from None


class DeserializationError(ValueError):
    """A saved entry that cannot be turned back into an object (a ValueError, as Keras raises)."""


def deserialize(spec, custom_objects=None, where=None):
    """A layer or model from {'class_name', 'config'} (as get_config lists them): the class is looked up,
    then rebuilt by its from_config, with custom_objects in force for the entries nested in it. Errors
    name `where` (default: the outermost load in progress, else 'deserialize')."""
    where = where or (_LOADING[0] if _LOADING else "deserialize")
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise DeserializationError(f"{where}: expected a layer entry {{'class_name', 'config'}}. Received: {spec!r}")
    class_name = spec["class_name"]
    cls = get_registered_object(class_name, custom_objects)
    if cls is None:
        raise DeserializationError(
            f"{where}: unknown class {class_name!r}. If it is a custom layer or model, pass "
            f"custom_objects={{'{class_name}': {class_name}}} to load_model, or decorate the class with "
            f"@engine.saving.register_serializable()")
    _LOADING.append(where)
    try:
        with custom_object_scope(dict(custom_objects or {})):
            return _from_config(where, cls, dict(spec.get("config") or {}), custom_objects)
    finally:
        _LOADING.pop()


def serialize(obj):
    """{'class_name', 'config'} of a layer or model: what deserialize turns back into it."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


# --------------------------------------------------------------------------------------------- by-name options


def lookup(where, identifier, argument, alternatives, names, classes=None, any_case=False):
    """What a by-name option (an activation, initializer, regularizer, loss, metric, optimizer) names:
        a name in `names` (any case with any_case=True) or a class name in `classes`  ->  that entry
        a config {'class_name', 'config'} of one of `classes`  ->  classes[class_name].from_config(config)
    Anything else raises the one ValueError every option library words the same way:
        "<where>: expected one of [names], <alternatives>. Received: <argument>=<identifier>"
    """
    classes = classes or {}
    if isinstance(identifier, str):
        key = identifier.lower() if any_case else identifier
        if key in names:
            return names[key]
        if identifier in classes:
            return classes[identifier]
    if isinstance(identifier, dict) and identifier.get("class_name") in classes:
        return classes[identifier["class_name"]].from_config(identifier.get("config") or {})
    case = " (any case)" if any_case else ""
    raise ValueError(f"{where}: expected one of {sorted(names)}{case}, {alternatives}. "
                     f"Received: {argument}={identifier!r}")

"""Keras's config protocol, kept by everything fastcnn saves by its config: ``get_config()``
returns the constructor's arguments as JSON-friendly values, ``from_config(config)`` rebuilds
the object from them, and ``serialize`` names the class.

Classes are found again by name: fastcnn's own layers and models register themselves here, a
user's classes through ``register_keras_serializable`` or the ``custom_objects`` that loading
takes. A name found nowhere is refused; nothing in a config is ever imported or executed.
"""
import contextlib
import math
import threading


class Configurable:
    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} has no config: a subclass of "
                                  f"{Configurable.__name__} defines get_config")

    @classmethod
    def from_config(cls, config):
        return cls(**checked_config(config, cls.__name__))


_BUILTIN = {}  # name -> fastcnn class
_REGISTERED = {}  # "package>name" -> a user's class
_scope = threading.local()
_budget = threading.local()


def register_builtin(cls):
    _BUILTIN[cls.__name__] = cls
    return cls


def registered_name(cls):
    """The name a config gives ``cls``: its registered "package>name", or its class name."""
    return cls.__dict__.get("_registered_name", cls.__name__)


def register_keras_serializable(package="Custom", name=None):
    """Class decorator, Keras's: saved configs name the class "package>name" (name defaults to
    the class name), and loading finds it by that name."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"Expected package to be a string without '>', received {package!r}")

    def register(cls):
        key = f"{package}>{name or cls.__name__}"
        if key in _REGISTERED and _REGISTERED[key] is not cls:
            raise ValueError(f"{key!r} is already registered to {_REGISTERED[key]!r}")
        cls._registered_name = key
        _REGISTERED[key] = cls
        return cls

    return register


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Let ``deserialize`` find the classes in ``custom_objects`` ({name: class}) meanwhile."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"Expected custom_objects to be a dict of classes, received "
                        f"{type(custom_objects).__name__}")
    previous = getattr(_scope, "objects", {})
    _scope.objects = {**previous, **(custom_objects or {})}
    try:
        yield
    finally:
        _scope.objects = previous


def get_class(class_name):
    """The class a config names, or a ValueError that says how to make it known."""
    if isinstance(class_name, str):
        scoped = getattr(_scope, "objects", {})
        for table, key in ((scoped, class_name), (scoped, class_name.split(">")[-1]),
                           (_REGISTERED, class_name), (_BUILTIN, class_name)):
            cls = table.get(key)
            if isinstance(cls, type):
                return cls
    raise ValueError(f"Unknown class {class_name!r}: pass it in custom_objects, or register it "
                     "with fastcnn.saving.register_keras_serializable")


def get_function(name):
    """The function (a custom loss, say) a config names, from custom_objects or
    register_keras_serializable, or a ValueError that says how to make it known."""
    if isinstance(name, str):
        scoped = getattr(_scope, "objects", {})
        for table, key in ((scoped, name), (scoped, name.split(">")[-1]), (_REGISTERED, name)):
            fn = table.get(key)
            if callable(fn) and not isinstance(fn, type):
                return fn
    raise ValueError(f"Unknown function {name!r}: pass it in custom_objects, or register it "
                     "with fastcnn.saving.register_keras_serializable")


def checked_config(config, owner, required=(), lists=()):
    """``config``, once it is a dict that holds every key of ``required`` and a list under each
    key of ``lists``: what a from_config needs before it reads anything."""
    if not isinstance(config, dict):
        raise TypeError(f"Expected {owner}'s config to be a dict, received "
                        f"{type(config).__name__}")
    missing = [key for key in (*required, *lists) if key not in config]
    if missing:
        raise ValueError(f"Expected {owner}'s config to hold the keys "
                         f"{sorted({*required, *lists})}, received {sorted(config)}: missing "
                         f"{missing}")
    for key in lists:
        if not isinstance(config[key], list):
            raise ValueError(f"Expected {owner}'s config to hold a list under {key!r}, received "
                             f"{type(config[key]).__name__}")
    return config


def serialize(obj):
    """{"class_name": ..., "config": {...}} of an object with a ``get_config``."""
    if not callable(getattr(obj, "get_config", None)):
        raise TypeError(f"Expected an object with a get_config method, received {obj!r:.200}")
    return {"class_name": registered_name(type(obj)), "config": obj.get_config()}


def deserialize(entry):
    """The object ``serialize`` described."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"Expected {{'class_name': ..., 'config': {{...}}}}, received {entry!r:.200}")
    return get_class(entry.get("class_name")).from_config(entry["config"])


@contextlib.contextmanager
def weight_budget(values):
    """Meanwhile, on this thread, refuse any weight that would bring the values created in the
    block above ``values``: a model built from a file creates no more weights than it holds."""
    previous = getattr(_budget, "left", None)
    _budget.left = values
    try:
        yield
    finally:
        _budget.left = previous


def claim_weight(shape):
    """Count a weight of ``shape`` against the budget, before it is allocated."""
    left = getattr(_budget, "left", None)
    if left is None:
        return
    size = math.prod(shape)
    if size > left:
        raise ValueError(f"Expected weights of at most {left} more values, as many as the file "
                         f"holds, received a weight of shape {shape}")
    _budget.left = left - max(size, 0)

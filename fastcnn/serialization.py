"""Keras's config protocol, kept by everything fastcnn saves by its config: ``get_config()``
returns the constructor's arguments as JSON-friendly values, ``from_config(config)`` rebuilds
the object from them, and ``serialize`` names the class.

Classes are found again by name: fastcnn's own layers and models register themselves here, a
user's classes through ``register_keras_serializable`` or the ``custom_objects`` that loading
takes. A name found nowhere is refused; nothing in a config is ever imported or executed.
"""
import contextlib
import threading


class Configurable:
    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} has no config: a subclass of "
                                  f"{Configurable.__name__} defines get_config")

    @classmethod
    def from_config(cls, config):
        return cls(**check_config(config, cls))


def check_config(config, receiver):
    """``config`` if it is a dict, as every from_config (the ``receiver``, a class or a
    function) takes."""
    if not isinstance(config, dict):
        name = (f"{receiver.__name__}.from_config" if isinstance(receiver, type)
                else receiver.__qualname__)
        raise TypeError(f"Expected {name} to receive a config dict, received "
                        f"{config!r:.200}")
    return config


_BUILTIN = {}  # name -> fastcnn class
_REGISTERED = {}  # "package>name" -> a user's class
_scope = threading.local()


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

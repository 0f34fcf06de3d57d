"""Keras's config protocol, kept by everything fastcnn saves by its config: ``get_config()``
returns the constructor's arguments as JSON-friendly values, ``from_config(config)`` rebuilds
the object from them, and ``serialize`` names the class."""


class Configurable:
    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def serialize(obj):
    """{"class_name": ..., "config": {...}} of an object with a ``get_config``."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}

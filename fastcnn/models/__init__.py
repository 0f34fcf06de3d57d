"""Models: ``Model`` (functional, ``Model(inputs, outputs)``, or subclassed, with a ``call``)
and ``Sequential``, a linear stack that is a special case of the functional graph."""
from ..saving import load_model
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]

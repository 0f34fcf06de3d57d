"""Optimizers with Keras 3's defaults, update rules and options; each update runs in a kernel."""
import sys

from .. import schedules
from .adam import Adam, Adamax, AdamW, Nadam
from .adaptive import Adadelta, Adagrad, RMSprop
from .base import Optimizer
from .lion import Lion
from .sgd import SGD

# Keras scripts write ``from keras.optimizers.schedules import ExponentialDecay``; registering
# the module under that dotted name makes the import work, schedules living in fastcnn.schedules.
sys.modules[__name__ + ".schedules"] = schedules

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Nadam", "Optimizer",
           "RMSprop", "SGD", "get", "schedules"]

OPTIMIZERS = {cls.__name__.lower(): cls for cls in (Adadelta, Adagrad, Adam, AdamW, Adamax, Lion,
                                                    Nadam, RMSprop, SGD)}


def get(identifier):
    """An Optimizer as given, or a new one with Keras's defaults from its name ("adam")."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(OPTIMIZERS)} "
                     "or an Optimizer")

"""InputLayer, the source of a model's input tensor, and ``Input``, which returns that tensor."""
import itertools

from ..engine.tensor import KerasTensor, Node, normalize_batch_shape
from .arguments import normalize_shape
from .base import Layer


class InputLayer(Layer):
    """The source of a model's input tensor; ``Input`` returns that tensor."""

    is_input = True

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 **kwargs):
        super().__init__(name=name or _unique_input_name(), dtype=dtype, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ValueError("Expected shape (or batch_shape) for an Input, received "
                                 "shape=None")
            shape = normalize_shape(shape, "shape", allow_none=True)
            if batch_size is not None:
                batch_size = normalize_shape(batch_size, "batch_size")[0]
            batch_shape = (batch_size, *shape)
        elif shape is not None or batch_size is not None:
            raise ValueError("Expected either shape (and batch_size) or batch_shape, received both")
        self.batch_shape = normalize_batch_shape(batch_shape, "batch_shape")
        if len(self.batch_shape) < 2:
            raise ValueError(f"Expected an input of at least one value per sample, received "
                             f"batch_shape={batch_shape!r}")
        self.built = True
        Node(self, [], KerasTensor(self.batch_shape, name=self.name))

    @property
    def shape(self):
        """The shape of one sample (batch axis excluded)."""
        return self.batch_shape[1:]

    def __call__(self, *args, **kwargs):
        raise TypeError(f"InputLayer {self.name!r} is a model's input and cannot be called; use "
                        "the tensor that keras.Input returns")

    def get_config(self):
        return {**super().get_config(), "batch_shape": self.batch_shape}


_input_counter = itertools.count()


def _unique_input_name():
    index = next(_input_counter)
    return "input_layer" if index == 0 else f"input_layer_{index}"


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
    """A symbolic tensor for a model's input: ``shape`` excludes the batch axis (None for a
    size that may vary), ``batch_shape`` includes it. Call layers on it, then pass it to
    ``Model(inputs, outputs)`` or start a ``Sequential`` with it."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                      name=name).output

"""The Layer contract shared by every layer, and the Input placeholder."""
import itertools
import numbers
import re
from collections import defaultdict

import numpy as np

from .._ops.checks import as_kernel_array, check_array, check_index_range
from .._ops.workspace import Workspace
from ..serialization import Configurable

_name_counters = defaultdict(itertools.count)


def _snake_case(name):
    """Keras's default layer names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def normalize_tuple(value, name, allow_zero=False):
    """An int or a pair of ints -> a pair of positive ints, or a ValueError naming ``name``."""
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = None
    lowest = 0 if allow_zero else 1
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
            or min(pair) < lowest):
        raise ValueError(f"Expected {name} to be an int or a pair of ints >= {lowest}, "
                         f"received {name}={value!r}")
    return tuple(int(v) for v in pair)


def normalize_shape(shape, name):
    """A non-empty tuple of positive ints (an int is a 1-tuple), or a ValueError naming ``name``."""
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        dims = ()
    if not dims or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                           for d in dims):
        raise ValueError(f"Expected {name} to be a tuple of positive ints, received {name}={shape!r}")
    return tuple(int(d) for d in dims)


def normalize_seed(seed):
    """None or a non-negative int, as numpy's generators take it."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"Expected seed to be None or a non-negative int, received seed={seed!r}")
    return None if seed is None else int(seed)


def normalize_padding(padding):
    value = padding.lower() if isinstance(padding, str) else padding
    if value not in ("valid", "same"):
        raise ValueError(f'Expected padding "valid" or "same", received padding={padding!r}')
    return value


class Layer(Configurable):
    """Base of all layers.

    Subclasses create weights in ``build(input_shape)`` with ``add_weight``, and implement
    ``compute_output_shape``, ``forward(x, training)`` and ``backward(dy, need_dx)``. Shapes
    exclude the batch axis. ``forward`` may return a buffer that the next call overwrites, and
    ``backward`` fills ``self.grads`` (one array per weight, in ``self.weights`` order).
    """

    def __init__(self, name=None, trainable=True, dtype="float32"):
        if name is None:
            base = _snake_case(type(self).__name__)
            index = next(_name_counters[base])
            name = base if index == 0 else f"{base}_{index}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"Expected name to be a non-empty string, received name={name!r}")
        if np.dtype(dtype) != np.float32:
            raise ValueError(f'Expected dtype "float32", received dtype={dtype!r}')
        self.name = name
        self.trainable = bool(trainable)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self.weights = []
        self.grads = []  # aligned with weights; non-trainable weights keep a zero gradient
        self._weight_names = []
        self._weight_trainable = []
        self.workspace = Workspace()

    # -- building --------------------------------------------------------------------------
    def build(self, input_shape):
        self.input_shape = normalize_shape(input_shape, "input_shape")
        output_shape = tuple(self.compute_output_shape(self.input_shape))
        if any(d < 1 for d in output_shape):
            raise ValueError(f"Layer {self.name!r} maps input shape {self.input_shape} to "
                             f"{output_shape}: the feature map shrinks below one pixel")
        # Refused here, before any array of these shapes exists: the kernels index one sample
        # with 32-bit ints.
        check_index_range((None, *self.input_shape), f"layer {self.name!r} input")
        check_index_range((None, *output_shape), f"layer {self.name!r} output")
        self.output_shape = output_shape
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    def _check_image_input(self, input_shape):
        """Refuse inputs that are not one image, (height, width, channels), per sample."""
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects inputs of shape "
                             f"(height, width, channels), received {input_shape}")

    def add_weight(self, name, shape, initializer, trainable=True):
        from .. import initializers
        value = initializers.initialize(initializer, shape)
        self.weights.append(value)
        self.grads.append(np.zeros_like(value))
        self._weight_names.append(name)
        self._weight_trainable.append(trainable)
        return value

    # -- running ---------------------------------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def __call__(self, x, training=False):
        """Run the layer eagerly on a batch (building it on first use) and return a new array."""
        x = check_array(x, "x")
        if x.ndim < 2 or x.size == 0:
            raise ValueError(f"Expected x with a batch axis and at least one value, received "
                             f"shape {x.shape}")
        if not self.built:
            self.build(x.shape[1:])
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"Expected x of shape (batch, *{self.input_shape}) for layer "
                             f"{self.name!r}, received {x.shape}")
        x = as_kernel_array(x, "x", dtype=np.float32)
        return np.array(self.forward(x, training=training))

    # -- Keras contract --------------------------------------------------------------------
    @property
    def trainable_weights(self):
        return [w for w, t in zip(self.weights, self._weight_trainable) if t and self.trainable]

    @property
    def trainable_grads(self):
        """The gradients of ``trainable_weights``, in the same order."""
        return [g for g, t in zip(self.grads, self._weight_trainable) if t and self.trainable]

    @property
    def non_trainable_weights(self):
        return [w for w, t in zip(self.weights, self._weight_trainable) if not (t and self.trainable)]

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"Layer {self.name!r} expects {len(self.weights)} weight arrays, "
                             f"received {len(weights)}")
        arrays = []
        for name, current, new in zip(self._weight_names, self.weights, weights):
            new = np.asarray(new)
            if new.shape != current.shape:
                raise ValueError(f"Layer {self.name!r} weight {name!r} expects shape {current.shape}, "
                                 f"received {new.shape}")
            if new.dtype.kind not in "fiu":
                raise TypeError(f"Layer {self.name!r} weight {name!r} expects real numbers, "
                                f"received dtype {new.dtype}")
            arrays.append(new)
        for current, new in zip(self.weights, arrays):
            current[...] = new

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32"}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class RandomTransformLayer(Layer):
    """Base of the layers that transform their input at random during training and are the
    identity otherwise (Dropout, RandomFlip, RandomTranslation).

    Each draws from ``self.rng``, which the model replaces at every epoch start, so a seeded fit,
    and a resumed one, draws the same transforms. ``forward`` sets ``_active`` to whether it
    transformed its input; ``_transform_backward(dy)`` is the gradient through that transform.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = normalize_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    def _transform_backward(self, dy):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        if not self._active:
            return dy
        return self._transform_backward(dy)


class InputLayer(Layer):
    """Declares the input shape of a Sequential model; it has no weights and is not listed."""

    def __init__(self, shape=None, batch_size=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.shape = normalize_shape(shape, "shape")
        self.batch_size = batch_size

    def __call__(self, x, training=False):
        raise TypeError(f"InputLayer {self.name!r} declares a model's input and cannot be called "
                        "on data; start a Sequential model with it")

    def get_config(self):
        return {**super().get_config(), "shape": self.shape, "batch_size": self.batch_size}


def Input(shape=None, batch_size=None, name=None):
    """Keras's ``Input``: in fastcnn, the input declaration that starts a Sequential model."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name)

"""What the applications share: Keras's ``weights``/``input_tensor``/``input_shape``/
``include_top``/``pooling``/``classes`` arguments, checked alike, and the classifier head."""
import numbers

from .. import layers
from .._ops.checks import positive_int
from ..engine.tensor import KerasTensor
from ..layers.activation import normalize_activation
from ..models import Model

POOLINGS = (None, "avg", "max")


def check_weights(weights):
    """None (random initialisation) or the path of a weights file; no pretrained weights ship."""
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError("Received weights='imagenet', but fastcnn ships no pretrained weights: "
                         "pass weights=None to initialise at random, or the path of a weights "
                         "file written by model.save_weights")
    if weights is not None and not isinstance(weights, str):
        raise TypeError(f"Expected weights to be None or a file path, received {weights!r}")
    return weights


def image_input(input_tensor, input_shape, default_shape, min_size):
    """The model's input tensor: ``input_tensor`` when given (an ``Input``), else a new Input of
    ``input_shape`` (height, width, channels), or of ``default_shape`` when that is None.
    Images smaller than ``min_size`` on a side are refused, as Keras refuses them."""
    if input_tensor is not None:
        if not isinstance(input_tensor, KerasTensor) or not input_tensor.node.operation.is_input:
            raise ValueError("Expected input_tensor to be a tensor made by fastcnn.Input, "
                             f"received {input_tensor!r}")
        shape = input_tensor.shape[1:]
    else:
        shape = default_shape if input_shape is None else input_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3 or not all(isinstance(d, numbers.Integral)
                                                    and not isinstance(d, bool) and d > 0
                                                    for d in shape)):
        raise ValueError("Expected input_shape to be (height, width, channels) of positive ints, "
                         f"received input_shape={input_shape!r}")
    if min(shape[:2]) < min_size:
        raise ValueError(f"Expected input_shape of at least {min_size}x{min_size} pixels, "
                         f"received input_shape={shape}")
    return input_tensor if input_tensor is not None else layers.Input(shape=shape)


def check_head(include_top, pooling, classes, classifier_activation):
    if not isinstance(include_top, bool):
        raise TypeError(f"Expected include_top to be a bool, received {include_top!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"Expected pooling to be one of {POOLINGS}, received {pooling!r}")
    if include_top:
        positive_int(classes, "classes")
        normalize_activation(classifier_activation)


def classifier_top(x, include_top, pooling, classes, classifier_activation):
    """Global average pooling and a Dense classifier (include_top), else the feature maps,
    pooled when ``pooling`` is "avg" or "max"."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def finish(inputs, outputs, name, weights):
    """The functional model, with its weights loaded from ``weights`` when that is a path."""
    model = Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model

"""U-Net (Ronneberger et al., 2015) for per-pixel classification: a contracting path of
``depth`` levels (two 3x3 relu convolutions, then 2x2 max pooling, doubling the filters at each
level), a bottleneck, and an expanding path that upsamples with 2x2 transposed convolutions of
stride 2 and concatenates the contracting path's maps at the same resolution. "same" padding
keeps the output the size of the input."""
from .. import layers
from .._ops.checks import positive_int
from ..layers.activation import normalize_activation
from .builder import check_weights, finish, image_input


def _twice(x, filters, batch_norm, name):
    """Two 3x3 convolutions with relu (BatchNormalization before each relu with batch_norm)."""
    for i in (1, 2):
        if batch_norm:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              name=f"{name}_conv{i}")(x)
            x = layers.Activation("relu", name=f"{name}_relu{i}")(
                layers.BatchNormalization(name=f"{name}_bn{i}")(x))
        else:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"{name}_conv{i}")(x)
    return x


def UNet(input_shape=(128, 128, 3), depth=4, filters=64, classes=1,
         classifier_activation="auto", batch_norm=False, weights=None, input_tensor=None,
         name="unet"):
    """A U-Net with ``depth`` poolings (default 4, as in the paper) and ``filters`` filters at the
    first level (default 64, as in the paper), for images of ``input_shape`` (default
    (128, 128, 3); height and width must divide by 2**depth). The output has ``classes``
    channels at the input's resolution; ``classifier_activation="auto"`` is a sigmoid for one
    class (binary masks, with binary cross-entropy) and a softmax over the channels otherwise."""
    check_weights(weights)
    depth, filters = positive_int(depth, "depth"), positive_int(filters, "filters")
    classes = positive_int(classes, "classes")
    if depth > 16:  # 2**depth pixels a side at least: beyond any image
        raise ValueError(f"Expected depth to be at most 16, received depth={depth}")
    if classifier_activation == "auto":
        classifier_activation = "sigmoid" if classes == 1 else "softmax"
    normalize_activation(classifier_activation)
    inputs = image_input(input_tensor, input_shape, None, min_size=2**depth)
    height, width = inputs.shape[1:3]
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"Expected the input's height and width to divide by 2**depth = "
                         f"{2**depth}, received input_shape={inputs.shape[1:]}")
    skips, x = [], inputs
    for level in range(depth):
        x = _twice(x, filters * 2**level, batch_norm, f"down{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = _twice(x, filters * 2**depth, batch_norm, "bottleneck")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same",
                                   name=f"up{level + 1}_upsample")(x)
        x = layers.Concatenate(name=f"up{level + 1}_concat")([x, skips[level]])
        x = _twice(x, filters * 2**level, batch_norm, f"up{level + 1}")
    outputs = layers.Conv2D(classes, 1, activation=classifier_activation, name="mask")(x)
    return finish(inputs, outputs, name, weights)

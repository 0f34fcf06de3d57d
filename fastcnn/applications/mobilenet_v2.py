"""MobileNetV2 (Sandler et al., 2018) as Keras builds it: inverted residual blocks of a 1x1
expansion, a 3x3 depthwise convolution and a linear 1x1 projection, each followed by
BatchNormalization, with relu6 after the first two. The layer names are Keras's."""
import numbers

from .. import layers
from .builder import check_head, check_weights, classifier_top, finish, image_input

# (expansion, filters, repeats, first stride) of each group of blocks.
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value, divisor=8):
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), and never
    more than 10% below ``value``: the channel counts MobileNets use for a width ``alpha``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _bn(name):
    return layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=name)


def _stride2_padding(height, width):
    """The zero padding in front of a stride-2 3x3 "valid" depthwise convolution: one pixel on
    the bottom/right, and one on the top/left too where the side is even, so that the output is
    the input halved (rounded up) with the window centred as TensorFlow's "same" centres it."""
    return ((1 - height % 2, 1), (1 - width % 2, 1))


def _inverted_residual(x, expansion, stride, filters, block_id):
    c_in = x.shape[-1]
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    y = x
    if block_id:
        y = layers.Conv2D(expansion * c_in, 1, padding="same", use_bias=False,
                          name=f"{prefix}expand")(y)
        y = layers.ReLU(6.0, name=f"{prefix}expand_relu")(_bn(f"{prefix}expand_BN")(y))
    if stride == 2:
        y = layers.ZeroPadding2D(_stride2_padding(*y.shape[1:3]), name=f"{prefix}pad")(y)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}depthwise")(y)
    y = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(_bn(f"{prefix}depthwise_BN")(y))
    y = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(y)
    y = _bn(f"{prefix}project_BN")(y)
    if stride == 1 and c_in == filters:
        return layers.Add(name=f"{prefix}add")([x, y])
    return y


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights=None, input_tensor=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    """MobileNetV2 with Keras's arguments. ``alpha`` scales every layer's width (Keras's
    pretrained sizes are 0.35, 0.5, 0.75, 1.0, 1.3 and 1.4; any positive value builds).
    ``input_shape`` defaults to (224, 224, 3); images must be at least 32x32."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not 0 < alpha <= 1e3:
        raise ValueError(f"Expected alpha to be a positive number, received alpha={alpha!r}")
    check_weights(weights)
    check_head(include_top, pooling, classes, classifier_activation)
    inputs = image_input(input_tensor, input_shape, (224, 224, 3), min_size=32)
    x = layers.Conv2D(make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False,
                      name="Conv1")(inputs)
    x = layers.ReLU(6.0, name="Conv1_relu")(_bn("bn_Conv1")(x))
    block_id = 0
    for expansion, filters, repeats, stride in BLOCKS:
        for i in range(repeats):
            x = _inverted_residual(x, expansion, stride if i == 0 else 1,
                                   make_divisible(int(filters * alpha)), block_id)
            block_id += 1
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = layers.ReLU(6.0, name="out_relu")(_bn("Conv_1_bn")(x))
    outputs = classifier_top(x, include_top, pooling, classes, classifier_activation)
    return finish(inputs, outputs, name or f"mobilenetv2_{alpha:0.2f}_{inputs.shape[1]}", weights)

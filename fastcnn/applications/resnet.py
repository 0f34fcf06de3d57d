"""Residual networks (He et al., 2016): ResNet-20 and ResNet-56 as the paper builds them for
32x32 CIFAR images, and ResNet-18 for ImageNet-style inputs of 64x64 pixels and more.

Each convolution is followed by BatchNormalization; residual blocks add their input (through a
1x1 convolution and BatchNormalization where the block changes the stride or the width) before
the final relu.
"""
from .. import layers
from .builder import check_head, check_weights, classifier_top, finish, image_input


def _conv_bn(x, filters, kernel_size, strides, name, activation="relu"):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_relu")(x) if activation else x


def _basic_block(x, filters, strides, name):
    """Two 3x3 convolutions and the shortcut, added, then relu."""
    y = _conv_bn(x, filters, 3, strides, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", activation=None)
    if strides != 1 or x.shape[-1] != filters:
        x = _conv_bn(x, filters, 1, strides, f"{name}_0", activation=None)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def _stages(x, widths, blocks):
    """``blocks`` basic blocks per width; each stage after the first halves the resolution."""
    for stage, filters in enumerate(widths):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, f"conv{stage + 2}_block{block + 1}")
    return x


def _cifar_resnet(blocks, name, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation):
    check_weights(weights)
    check_head(include_top, pooling, classes, classifier_activation)
    inputs = image_input(input_tensor, input_shape, (32, 32, 3), min_size=8)
    x = _conv_bn(inputs, 16, 3, 1, "conv1")
    x = _stages(x, (16, 32, 64), blocks)
    outputs = classifier_top(x, include_top, pooling, classes, classifier_activation)
    return finish(inputs, outputs, name, weights)


def ResNet20(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="resnet20"):
    """ResNet-20 for CIFAR-10: a 3x3 convolution of 16 filters, three stages of three basic
    blocks of 16, 32 and 64 filters, global average pooling and a Dense classifier (about 0.27M
    parameters). ``input_shape`` defaults to (32, 32, 3)."""
    return _cifar_resnet(3, name, include_top, weights, input_tensor, input_shape, pooling,
                         classes, classifier_activation)


def ResNet56(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name="resnet56"):
    """ResNet-56 for CIFAR-10: ResNet-20 with nine basic blocks per stage (about 0.86M
    parameters)."""
    return _cifar_resnet(9, name, include_top, weights, input_tensor, input_shape, pooling,
                         classes, classifier_activation)


def ResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet18"):
    """ResNet-18: a 7x7 convolution of 64 filters with stride 2 and 3x3 max pooling with stride
    2, four stages of two basic blocks of 64, 128, 256 and 512 filters, global average pooling
    and a Dense classifier (about 11.7M parameters with 1000 classes). ``input_shape`` defaults
    to (224, 224, 3); it is meant for images of 64x64 pixels and more (at least 32x32)."""
    check_weights(weights)
    check_head(include_top, pooling, classes, classifier_activation)
    inputs = image_input(input_tensor, input_shape, (224, 224, 3), min_size=32)
    x = _conv_bn(inputs, 64, 7, 2, "conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _stages(x, (64, 128, 256, 512), 2)
    outputs = classifier_top(x, include_top, pooling, classes, classifier_activation)
    return finish(inputs, outputs, name, weights)

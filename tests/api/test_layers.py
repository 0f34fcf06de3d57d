"""Every layer through one helper: output shape, parameter count, one training step, config;
the layer registry and its aliases."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from conftest import check_layer


LAYER_CASES = {
    "conv_valid": (lambda: layers.Conv2D(4, 3, activation="relu"), (7, 6, 2), (5, 4, 4), 3 * 3 * 2 * 4 + 4),
    "conv_same_strided": (lambda: layers.Conv2D(5, (2, 3), strides=2, padding="same"), (7, 6, 3), (4, 3, 5), 2 * 3 * 3 * 5 + 5),
    "conv_tanh_nobias": (lambda: layers.Conv2D(3, 1, activation="tanh", use_bias=False), (4, 4, 2), (4, 4, 3), 6),
    "maxpool": (lambda: layers.MaxPooling2D(), (6, 5, 2), (3, 2, 2), 0),
    "maxpool_same": (lambda: layers.MaxPooling2D(3, strides=2, padding="same"), (7, 7, 2), (4, 4, 2), 0),
    "avgpool": (lambda: layers.AveragePooling2D(2, padding="same"), (5, 5, 3), (3, 3, 3), 0),
    "dense_relu": (lambda: layers.Dense(6, activation="relu"), (5,), (6,), 36),
    "dense_sigmoid": (lambda: layers.Dense(4, activation="sigmoid"), (5,), (4,), 24),
    "flatten": (lambda: layers.Flatten(), (3, 2, 2), (12,), 0),
    "dropout": (lambda: layers.Dropout(0.25), (8,), (8,), 0),
    "activation_tanh": (lambda: layers.Activation("tanh"), (6,), (6,), 0),
    "activation_softmax": (lambda: layers.Activation("softmax"), (6,), (6,), 0),
    "relu": (lambda: layers.ReLU(), (3, 3, 2), (3, 3, 2), 0),
    "activation_sigmoid": (lambda: layers.Activation("sigmoid"), (6,), (6,), 0),
    "activation_relu": (lambda: layers.Activation("relu"), (3, 3, 2), (3, 3, 2), 0),
    "activation_linear": (lambda: layers.Activation("linear"), (6,), (6,), 0),
    "sumpool": (lambda: layers.SumPooling2D((2, 3), strides=(1, 2), padding="same"), (5, 6, 2), (5, 3, 2), 0),
    "global_avgpool": (lambda: layers.GlobalAveragePooling2D(), (4, 5, 3), (3,), 0),
    "global_maxpool_keepdims": (lambda: layers.GlobalMaxPooling2D(keepdims=True), (4, 5, 3), (1, 1, 3), 0),
    "batchnorm_nhwc": (lambda: layers.BatchNormalization(momentum=0.5), (4, 4, 3), (4, 4, 3), 4 * 3),
    "batchnorm_dense_noscale": (lambda: layers.BatchNormalization(scale=False), (5,), (5,), 3 * 5),
    "zeropad": (lambda: layers.ZeroPadding2D(((1, 0), (2, 1))), (3, 4, 2), (4, 7, 2), 0),
    "random_flip": (lambda: layers.RandomFlip("horizontal", seed=1), (4, 4, 2), (4, 4, 2), 0),
    "random_translation": (lambda: layers.RandomTranslation(0.25, (-0.25, 0.5), fill_mode="nearest"), (4, 4, 2), (4, 4, 2), 0),
}


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_contract(name):
    check_layer(*LAYER_CASES[name])


def test_keras_weight_shapes():
    conv, dense = layers.Conv2D(32, (3, 5)), layers.Dense(10)
    conv.build((None, 28, 28, 3))
    dense.build((None, 1600))
    assert [w.shape for w in conv.get_weights()] == [(3, 5, 3, 32), (32,)]
    assert [w.shape for w in dense.get_weights()] == [(1600, 10), (10,)]


@pytest.mark.parametrize("make,message", [
    (lambda: layers.Conv2D(-3, 3), "filters=-3"),
    (lambda: layers.Conv2D(8, 0), "kernel_size=0"),
    (lambda: layers.Conv2D(8, 3, strides=(1, -1)), "strides=(1, -1)"),
    (lambda: layers.Conv2D(8, 3, padding="full"), "padding='full'"),
    (lambda: layers.Conv2D(8, 3, activation="swishy"), "swishy"),
    (lambda: layers.MaxPooling2D(pool_size=0), "pool_size=0"),
    (lambda: layers.Dense(0), "units=0"),
    (lambda: layers.Dropout(1.0), "rate=1.0"),
])
def test_bad_arguments_name_the_value(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_feature_map_below_one_pixel_raises():
    with pytest.raises(ValueError, match="below one pixel"):
        fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 1)), layers.Conv2D(4, 3),
                            layers.MaxPooling2D(2), layers.Conv2D(4, 3)])


def test_layer_forward_matches_reference_through_ops():
    """A Conv2D with relu equals the reference conv followed by max(0, .)."""
    from fastcnn import _reference as ref
    layer = layers.Conv2D(7, 3, padding="same", activation="relu")
    x = np.random.default_rng(1).standard_normal((2, 9, 8, 3)).astype(np.float32)
    y = layer(x)
    expected = np.zeros(y.shape, np.float32)
    ref.conv2d_forward(x, layer.kernel, layer.bias, expected, None, 1, 1, 1, 1, True, 1, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


LAYERS_BEYOND_THE_CORE = ["BatchNormalization", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                          "RandomFlip", "RandomTranslation", "SumPooling2D", "ZeroPadding2D"]


def test_layers_beyond_the_core_are_exported_and_rebuild_from_config():
    assert set(LAYERS_BEYOND_THE_CORE) <= set(layers.__all__)
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.GlobalMaxPool2D is layers.GlobalMaxPooling2D
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 3)), layers.RandomFlip("horizontal", seed=1),
        layers.RandomTranslation((-0.1, 0.2), 0.1, fill_mode="wrap"),
        layers.ZeroPadding2D(((1, 0), (0, 1))), layers.Conv2D(4, 3),
        layers.BatchNormalization(momentum=0.9, center=False), layers.SumPooling2D(2),
        layers.GlobalMaxPooling2D(keepdims=True), layers.GlobalAveragePooling2D()])
    config = model.get_config()
    clone = fastcnn.Sequential.from_config(config)
    assert clone.get_config() == config
    assert [type(l).__name__ for l in clone.layers][1:] == [
        "RandomTranslation", "ZeroPadding2D", "Conv2D", "BatchNormalization", "SumPooling2D",
        "GlobalMaxPooling2D", "GlobalAveragePooling2D"]
    assert all(fastcnn.serialization.get_class(name).__name__ == name
               for name in LAYERS_BEYOND_THE_CORE)

"""LayerNormalization, GroupNormalization, SpatialDropout2D, GaussianNoise and GaussianDropout as
Keras 3 defines them: the layer contract, Keras's formulas and weight shapes, training-only
noise, seeds, thread counts, refusals and saving."""
import math

import numpy as np
import pytest

import fastcnn
from conftest import (call_layer, check_layer, check_weight_gradients, reloaded, step_names,
                      training_plan)
from fastcnn import layers

CASES = {  # name: (make_layer, input_shape, output_shape, n_params)
    "layer_norm": (lambda: layers.LayerNormalization(), (5, 6, 4), (5, 6, 4), 8),
    "layer_norm_axes": (lambda: layers.LayerNormalization(axis=[1, 2, 3]), (3, 4, 2), (3, 4, 2),
                        48),
    "layer_norm_no_center": (lambda: layers.LayerNormalization(center=False), (7,), (7,), 7),
    "group_norm": (lambda: layers.GroupNormalization(groups=2), (5, 5, 4), (5, 5, 4), 8),
    "instance_norm": (lambda: layers.GroupNormalization(groups=-1, scale=False), (4, 4, 6),
                      (4, 4, 6), 6),
    "spatial_dropout": (lambda: layers.SpatialDropout2D(0.3, seed=1), (5, 5, 3), (5, 5, 3), 0),
    "gaussian_noise": (lambda: layers.GaussianNoise(0.1, seed=2), (6,), (6,), 0),
    "gaussian_dropout": (lambda: layers.GaussianDropout(0.2, seed=3), (4, 4, 2), (4, 4, 2), 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_contract(name):
    check_layer(*CASES[name])


def images(shape=(3, 4, 5, 6), seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 1).astype(np.float32)


def set_random_affine(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.set_weights([(1 + 0.5 * rng.standard_normal(w.shape)).astype(np.float32)
                       for w in layer.get_weights()])
    return layer.get_weights()


def test_layer_norm_follows_keras_formula_with_gamma_over_the_axes_in_axis_order():
    """axis=[3, 1] on NHWC: statistics over (H, C) per (sample, W); gamma and beta of shape
    (C, H), which Keras reshapes (not transposes) to broadcast as (1, H, 1, C)."""
    x = images()
    layer = layers.LayerNormalization(axis=[3, 1])
    layer.build(x.shape)
    assert layer.gamma.shape == layer.beta.shape == (6, 4)
    gamma, beta = set_random_affine(layer)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(1, 3), keepdims=True), x64.var(axis=(1, 3), keepdims=True)
    want = ((x64 - mean) / np.sqrt(var + 1e-3) * gamma.reshape(1, 4, 1, 6)
            + beta.reshape(1, 4, 1, 6))
    for training in (False, True):  # no moving statistics: the same in both modes
        np.testing.assert_allclose(layer(x, training=training), want, rtol=1e-5, atol=1e-5)


def test_group_norm_follows_keras_formula():
    x = images((2, 3, 4, 8))
    layer = layers.GroupNormalization(groups=4, epsilon=0.01)
    layer.build(x.shape)
    gamma, beta = set_random_affine(layer)
    grouped = x.astype(np.float64).reshape(2, 3, 4, 4, 2)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    want = ((grouped - mean) / np.sqrt(var + 0.01)).reshape(x.shape) * gamma + beta
    np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-5)


def test_keras_defaults():
    ln, gn = layers.LayerNormalization(), layers.GroupNormalization()
    assert (ln.axis, ln.epsilon, ln.center, ln.scale) == (-1, 1e-3, True, True)
    assert (gn.groups, gn.axis, gn.epsilon, gn.center, gn.scale) == (32, -1, 1e-3, True, True)
    gn.build((None, 8, 8, 64))
    assert [w.shape for w in gn.get_weights()] == [(64,), (64,)]
    assert gn._weight_names == ["gamma", "beta"]


@pytest.mark.parametrize("cls", [layers.LayerNormalization, layers.GroupNormalization])
def test_regularizers_round_trip_through_the_config(cls):
    layer = cls(gamma_regularizer="l2", beta_regularizer={"class_name": "L2",
                                                          "config": {"l2": 0.5}})
    config = layer.get_config()
    assert config["gamma_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}
    assert config["beta_regularizer"] == {"class_name": "L2", "config": {"l2": 0.5}}
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("make", [lambda: layers.LayerNormalization(axis=[1, 3]),
                                  lambda: layers.GroupNormalization(groups=3)])
def test_weight_gradients_match_central_differences(make):
    fastcnn.utils.set_random_seed(5)
    layer = make()
    model = fastcnn.Sequential([fastcnn.Input((4, 5, 6)), layers.Conv2D(6, 3, padding="same"),
                                layer])
    set_random_affine(layer)
    x = images((2, 4, 5, 6))
    upstream = np.random.default_rng(3).standard_normal((2, 4, 5, 6)).astype(np.float32)
    check_weight_gradients(model, [x], [upstream], [*layer._weights, model.layers[0].kernel])


NOISE = {"spatial_dropout": lambda seed: layers.SpatialDropout2D(0.5, seed=seed),
         "gaussian_noise": lambda seed: layers.GaussianNoise(0.5, seed=seed),
         "gaussian_dropout": lambda seed: layers.GaussianDropout(0.5, seed=seed)}


@pytest.mark.parametrize("name", sorted(NOISE))
def test_noise_only_in_training(name):
    x, dy = images(), images(seed=1)
    layer = NOISE[name](0)
    y, dx, _ = call_layer(layer, x, dy, training=False)
    assert np.array_equal(y, x) and np.array_equal(dx, dy)
    assert np.array_equal(layer(x), x)  # a call defaults to inference
    y, dx, _ = call_layer(layer, x, dy, training=True)
    assert not np.array_equal(y, x)
    if name == "gaussian_noise":
        np.testing.assert_array_equal(dx, dy)  # added noise passes the gradient through
    else:  # multiplicative noise: the gradient is dy times the same factors
        np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(NOISE))
def test_noise_is_seeded(name):
    x = images()
    a, b, other = NOISE[name](7), NOISE[name](7), NOISE[name](8)
    first = a(x, training=True)
    assert np.array_equal(first, b(x, training=True))
    assert not np.array_equal(first, other(x, training=True))
    assert not np.array_equal(first, a(x, training=True))  # each call draws afresh


@pytest.mark.parametrize("name", ["spatial_dropout", "gaussian_dropout"])
def test_dropout_variants_are_not_fused_as_dropout(name):
    """They are Dropouts with other noise: the fused conv + pool step, which applies Dropout's
    mask, must leave them as steps of their own."""
    model = fastcnn.Sequential([fastcnn.Input((8, 8, 3)), layers.Conv2D(4, 3),
                                layers.MaxPooling2D(), NOISE[name](0), layers.Flatten(),
                                layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    assert step_names(training_plan(model)) == ["ConvMaxPoolStep", type(model.layers[2]).__name__,
                                                "Flatten", "Dense"]


def test_zero_rate_or_stddev_is_the_identity_in_training():
    x = images()
    for layer in (layers.SpatialDropout2D(0.0), layers.GaussianNoise(0.0),
                  layers.GaussianDropout(0.0)):
        assert np.array_equal(layer(x, training=True), x)


def test_spatial_dropout_drops_feature_maps():
    x = np.abs(images((8, 4, 4, 16))) + 0.1
    y = layers.SpatialDropout2D(0.5, seed=4)(x, training=True)
    zero = y == 0
    assert np.array_equal(zero, np.broadcast_to(zero[:, :1, :1, :], x.shape))
    assert zero.any() and not zero.all()
    np.testing.assert_allclose(y[~zero], 2 * x[~zero], rtol=1e-6)


def test_gaussian_dropout_noise_has_keras_stddev():
    """Multiplicative noise of mean 1 and standard deviation sqrt(rate / (1 - rate)); five
    standard errors of the sample size."""
    rate, n = 0.3, 100_000
    factors = layers.GaussianDropout(rate, seed=1)(np.ones((10, n // 10), np.float32),
                                                   training=True).astype(np.float64)
    std = math.sqrt(rate / (1 - rate))
    assert abs(factors.mean() - 1) < 5 * std / math.sqrt(n)
    assert abs(factors.var() - std**2) < 5 * std**2 * math.sqrt(2 / (n - 1))


def small_model():
    fastcnn.utils.set_random_seed(11)
    model = fastcnn.Sequential([
        fastcnn.Input((16, 16, 8)), layers.Conv2D(8, 3, padding="same"),
        layers.LayerNormalization(), layers.GroupNormalization(4), layers.SpatialDropout2D(0.3),
        layers.GaussianNoise(0.2), layers.GaussianDropout(0.2), layers.Flatten(),
        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fastcnn.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    return model


def trained_weights(threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16, 16, 8)).astype(np.float32)  # 32768 values per layer call
    y = rng.integers(0, 3, 32)
    try:
        fastcnn.set_num_threads(threads)
        model = small_model()
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    finally:
        fastcnn.set_num_threads(None)
    return model.get_weights()


def test_training_is_bitwise_the_same_with_one_and_two_threads():
    for a, b in zip(trained_weights(1), trained_weights(2), strict=True):
        assert np.array_equal(a, b)


def test_a_model_with_every_layer_saves_and_loads(tmp_path):
    model = small_model()
    copy = reloaded(model, images((2, 16, 16, 8)), tmp_path)
    assert [type(layer).__name__ for layer in copy.layers] == \
        [type(layer).__name__ for layer in model.layers]
    assert [layer.get_config() for layer in copy.layers] == \
        [layer.get_config() for layer in model.layers]


@pytest.mark.parametrize("make,exc,fragment", [
    (lambda: layers.SpatialDropout2D(1.0), ValueError, "rate"),
    (lambda: layers.SpatialDropout2D(-0.1), ValueError, "rate"),
    (lambda: layers.SpatialDropout2D(0.5, data_format="channels_first"), ValueError,
     "data_format"),
    (lambda: layers.GaussianDropout(1.0), ValueError, "rate"),
    (lambda: layers.GaussianDropout(float("nan")), ValueError, "rate"),
    (lambda: layers.GaussianNoise(-0.1), ValueError, "stddev"),
    (lambda: layers.GaussianNoise(1.5), ValueError, "stddev"),
    (lambda: layers.GaussianNoise("0.1"), ValueError, "stddev"),
    (lambda: layers.LayerNormalization(axis="last"), TypeError, "axis"),
    (lambda: layers.LayerNormalization(axis=[]), TypeError, "axis"),
    (lambda: layers.LayerNormalization(rms_scaling=True), ValueError, "rms_scaling"),
    (lambda: layers.LayerNormalization(epsilon=0), ValueError, "epsilon"),
    (lambda: layers.GroupNormalization(groups=0), ValueError, "groups"),
    (lambda: layers.GroupNormalization(groups=2.5), ValueError, "groups"),
    (lambda: layers.GroupNormalization(epsilon=-1), ValueError, "epsilon"),
])
def test_bad_arguments_are_refused(make, exc, fragment):
    with pytest.raises(exc, match=fragment):
        make()


@pytest.mark.parametrize("layer,shape,fragment", [
    (lambda: layers.LayerNormalization(axis=0), (None, 4, 5), "axis"),
    (lambda: layers.LayerNormalization(axis=3), (None, 4, 5), "axis"),
    (lambda: layers.LayerNormalization(axis=[1, -2]), (None, 4, 5), "axis"),
    (lambda: layers.LayerNormalization(axis=1), (None, None, 5), "axes"),
    (lambda: layers.GroupNormalization(groups=4), (None, 3, 3, 6), "groups"),
    (lambda: layers.GroupNormalization(groups=8), (None, 3, 3, 6), "groups"),
    (lambda: layers.GroupNormalization(groups=2, axis=1), (None, 4, 4, 6), "axis"),
    (lambda: layers.SpatialDropout2D(0.5), (None, 4, 6), "height, width, channels"),
])
def test_bad_input_shapes_are_refused(layer, shape, fragment):
    with pytest.raises(ValueError, match=fragment):
        layer().compute_output_shape(shape)


def test_built_normalisation_refuses_other_sizes():
    ln, gn = layers.LayerNormalization(), layers.GroupNormalization(2)
    ln.build((None, 4, 6))
    gn.build((None, 4, 6))
    for layer in (ln, gn):
        with pytest.raises(ValueError, match="built"):
            layer.compute_output_shape((None, 4, 8))

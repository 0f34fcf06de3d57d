"""Behaviour of BatchNormalization, the augmentation layers, ZeroPadding2D and the sum and
global pooling layers (the shared contract runs in test_layers.LAYER_CASES)."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers

NEW_LAYERS = ["BatchNormalization", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "RandomFlip",
              "RandomTranslation", "SumPooling2D", "ZeroPadding2D"]


def built(layer, input_shape):
    layer.build(input_shape)
    return layer


# ---- BatchNormalization ----------------------------------------------------------------------

def random_bn(c, rng, **kwargs):
    bn = built(layers.BatchNormalization(**kwargs), (5, 4, c))
    bn.set_weights([1 + 0.3 * rng.standard_normal(c), rng.standard_normal(c),
                    rng.standard_normal(c), rng.uniform(0.5, 2, c)])
    return bn


def test_batchnorm_weights_in_keras_order():
    bn = built(layers.BatchNormalization(), (6, 6, 3))
    assert bn._weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.tolist() for w in bn.get_weights()] == [[1] * 3, [0] * 3, [0] * 3, [1] * 3]
    assert bn.trainable_weights == bn.weights[:2] and bn.non_trainable_weights == bn.weights[2:]
    assert len(bn.trainable_grads) == 2
    no_scale = built(layers.BatchNormalization(scale=False), (3,))
    assert no_scale._weight_names == ["beta", "moving_mean", "moving_variance"]
    bare = built(layers.BatchNormalization(center=False, scale=False), (3,))
    assert bare._weight_names == ["moving_mean", "moving_variance"] and not bare.trainable_weights


def test_batchnorm_training_uses_batch_statistics(rng):
    bn = random_bn(3, rng)
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    x = (rng.standard_normal((8, 5, 4, 3)) * 3 + 2).astype(np.float32)
    y = bn(x, training=True).astype(np.float64)
    mean, var = x.mean(axis=(0, 1, 2), dtype=np.float64), x.var(axis=(0, 1, 2), dtype=np.float64)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-4, atol=1e-4)
    # per channel, (y - beta) / gamma has mean 0 and (almost, by epsilon) unit variance
    np.testing.assert_allclose(((y - beta) / gamma).mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean, moving_mean * 0.99 + mean * 0.01, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, moving_var * 0.99 + var * 0.01, rtol=1e-5)


def test_batchnorm_inference_uses_moving_statistics_and_keeps_them(rng):
    bn = random_bn(3, rng)
    before = bn.get_weights()
    gamma, beta, moving_mean, moving_var = before
    x = rng.standard_normal((4, 5, 4, 3)).astype(np.float32)
    y = bn(x, training=False)
    np.testing.assert_allclose(y, (x - moving_mean) / np.sqrt(moving_var + 1e-3) * gamma + beta,
                               rtol=1e-5, atol=1e-5)
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_moving_statistics_follow_the_formula_over_steps(rng):
    bn = built(layers.BatchNormalization(momentum=0.7), (4,))
    mean, var = np.zeros(4), np.ones(4)
    for _ in range(3):
        x = (rng.standard_normal((16, 4)) * 2 - 1).astype(np.float32)
        bn(x, training=True)
        mean = mean * 0.7 + x.mean(axis=0, dtype=np.float64) * 0.3
        var = var * 0.7 + x.var(axis=0, dtype=np.float64) * 0.3  # biased, as Keras
    np.testing.assert_allclose(bn.moving_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, var, rtol=1e-5)


def test_frozen_batchnorm_runs_in_inference_mode(rng):
    """Keras 3: a non-trainable BatchNormalization uses and keeps its moving statistics."""
    bn = random_bn(3, rng, trainable=False)
    before = bn.get_weights()
    x = rng.standard_normal((4, 5, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(bn(x, training=True), bn(x, training=False))
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (7, 3)])
def test_batchnorm_matches_torch(training, shape, rng):
    torch = pytest.importorskip("torch")
    c = shape[-1]
    bn = random_bn(c, rng) if len(shape) == 4 else built(layers.BatchNormalization(), (c,))
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y = bn.forward(x, training=training).copy()
    dx = bn.backward(dy).copy()

    # torch wants channels second: view NHWC / NC as (rows, C), which batch_norm accepts
    tx = torch.tensor(x.reshape(-1, c), dtype=torch.float64, requires_grad=True)
    tg = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.batch_norm(
        tx, torch.tensor(moving_mean, dtype=torch.float64), torch.tensor(moving_var, dtype=torch.float64),
        tg, tb, training=training, momentum=0.01, eps=1e-3)
    (ty * torch.tensor(dy.reshape(-1, c), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y.reshape(-1, c), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx.reshape(-1, c), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.grads[0], tg.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.grads[1], tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_batchnorm_trains_after_conv_and_dense():
    fastcnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 1)).astype(np.float32) * 5 + 3
    y = (x.mean(axis=(1, 2, 3)) > 3).astype(np.int64)
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.Flatten(), layers.Dense(8), layers.BatchNormalization(), layers.Activation("relu"),
        layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    conv_bn = model.layers[1]
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(conv_bn.moving_mean, 0) and not np.allclose(conv_bn.moving_variance, 1)
    assert len(model.trainable_weights) == 1 + 2 + 2 + 2 + 2  # conv, bn, dense, bn, dense
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 24 " in lines[0]  # 2 * (4 + 8) moving statistics


def test_batchnorm_without_scale_and_center_normalises_only(rng):
    bn = built(layers.BatchNormalization(center=False, scale=False, epsilon=1e-6), (5,))
    x = rng.standard_normal((9, 5)).astype(np.float32)
    y = bn(x, training=True)
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6), rtol=1e-4, atol=1e-5)
    dx = bn.backward(np.ones_like(y))  # a constant gradient vanishes through normalisation
    np.testing.assert_allclose(dx, 0, atol=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.BatchNormalization(momentum=1.5), "momentum=1.5"),
    (lambda: layers.BatchNormalization(epsilon=0), "epsilon=0"),
    (lambda: layers.BatchNormalization(axis=[1, 2]), r"axis=\[1, 2\]"),
    (lambda: layers.BatchNormalization(gamma_initializer="twos"), "twos"),
    (lambda: built(layers.BatchNormalization(axis=1), (4, 4, 3)), "axis=-1 or axis=3 .* received axis=1"),
])
def test_batchnorm_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_batchnorm_accepts_the_positive_last_axis():
    assert built(layers.BatchNormalization(axis=3), (4, 4, 2)).output_shape == (4, 4, 2)
    assert built(layers.BatchNormalization(axis=1), (7,)).output_shape == (7,)


# ---- augmentation ----------------------------------------------------------------------------

def images(rng, n=64, h=5, w=6, c=2):
    return rng.standard_normal((n, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("make", [lambda: layers.RandomFlip(seed=0),
                                  lambda: layers.RandomTranslation(0.5, 0.5, seed=0)])
def test_augmentation_is_identity_at_inference(make, rng):
    layer = make()
    x = images(rng)
    assert layer.forward(x, training=False) is x
    assert layer.backward(x) is x
    np.testing.assert_array_equal(layer(x), x)


@pytest.mark.parametrize("mode,allowed", [
    ("horizontal", {(False, False), (False, True)}),
    ("vertical", {(False, False), (True, False)}),
    ("horizontal_and_vertical", {(False, False), (False, True), (True, False), (True, True)}),
])
def test_random_flip_flips_exactly(mode, allowed, rng):
    layer = layers.RandomFlip(mode, seed=1)
    x = images(rng)
    y = layer(x, training=True)
    seen = set()
    for image, flipped in zip(x, y):
        matches = [(v, h) for v in (False, True) for h in (False, True)
                   if np.array_equal(flipped, image[::-1 if v else 1, ::-1 if h else 1])]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == allowed  # 64 images see every allowed flip


def test_random_flip_backward_flips_the_gradient_back(rng):
    layer = layers.RandomFlip(seed=2)
    x = images(rng)
    y = layer.forward(x, training=True).copy()
    dy = images(rng)
    dx = layer.backward(dy)
    np.testing.assert_allclose((y * dy).sum(dtype=np.float64), (x * dx).sum(dtype=np.float64),
                               rtol=1e-5)
    # a flip is its own inverse: the gradient of y itself flips back onto x
    np.testing.assert_array_equal(layer.backward(y), x)


def shifted(image, dh, dw, fill):
    """image moved down by dh and right by dw, uncovered cells set to fill."""
    h, w = image.shape[:2]
    out = np.full_like(image, fill)
    out[max(dh, 0):h + min(dh, 0), max(dw, 0):w + min(dw, 0)] = \
        image[max(-dh, 0):h - max(dh, 0), max(-dw, 0):w - max(dw, 0)]
    return out


def test_random_translation_shifts_whole_pixels_within_range(rng):
    layer = layers.RandomTranslation((-0.2, 0.4), 0.5, fill_mode="constant", fill_value=-7.0, seed=3)
    x = images(rng, h=5, w=6)
    y = layer(x, training=True)
    seen = set()
    for image, moved in zip(x, y):
        matches = [(dh, dw) for dh in range(-1, 3) for dw in range(-3, 4)
                   if np.array_equal(moved, shifted(image, dh, dw, -7.0))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10  # and actually random


def test_random_translation_nearest_fill_repeats_the_edge(rng):
    layer = layers.RandomTranslation((0.4, 0.4), (0.0, 0.0), fill_mode="nearest", seed=0)
    x = images(rng, n=2, h=5, w=3)
    y = layer(x, training=True)  # every image moves down by exactly 2 rows
    np.testing.assert_array_equal(y[:, 2:], x[:, :3])
    np.testing.assert_array_equal(y[:, :2], np.repeat(x[:, :1], 2, axis=1))


@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect", "wrap"])
def test_random_translation_backward_is_the_adjoint(fill_mode, rng):
    layer = layers.RandomTranslation(0.6, 0.6, fill_mode=fill_mode, seed=4)
    x = images(rng, n=8)
    y = layer.forward(x, training=True).copy()
    dy = images(rng, n=8)
    dx = layer.backward(dy)
    np.testing.assert_allclose((y * dy).sum(dtype=np.float64), (x * dx).sum(dtype=np.float64),
                               rtol=1e-5)


def test_augmentation_follows_the_models_epoch_rng(rng):
    """Two seeded fits draw the same transforms, so they end with the same weights."""
    x = images(rng, n=16)
    y = rng.integers(0, 3, 16)
    weights = []
    for _ in range(2):
        fastcnn.utils.set_random_seed(5)
        model = fastcnn.Sequential([fastcnn.Input(shape=x.shape[1:]), layers.RandomFlip(),
                                    layers.RandomTranslation(0.3, 0.3), layers.Flatten(),
                                    layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.RandomFlip("diagonal"), "mode='diagonal'"),
    (lambda: layers.RandomTranslation(1.5, 0.1), "height_factor=1.5"),
    (lambda: layers.RandomTranslation(-0.2, 0.1), "height_factor=-0.2"),
    (lambda: layers.RandomTranslation(0.1, (0.3, 0.1)), r"width_factor=\(0.3, 0.1\)"),
    (lambda: layers.RandomTranslation(0.1, (0.1, 0.2, 0.3)), "width_factor"),
    (lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="mirror"), "fill_mode='mirror'"),
    (lambda: layers.RandomTranslation(0.1, 0.1, fill_value="0"), "fill_value='0'"),
])
def test_augmentation_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---- ZeroPadding2D ---------------------------------------------------------------------------

@pytest.mark.parametrize("padding,pads", [
    (1, ((1, 1), (1, 1))),
    ((2, 0), ((2, 2), (0, 0))),
    (((0, 3), (1, 2)), ((0, 3), (1, 2))),
])
def test_zero_padding_matches_numpy_pad(padding, pads, rng):
    layer = layers.ZeroPadding2D(padding)
    assert layer.padding == pads
    x = images(rng, n=3)
    y = layer(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), *pads, (0, 0))))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (top, _), (left, _) = pads
    np.testing.assert_array_equal(layer.backward(dy),
                                  dy[:, top:top + x.shape[1], left:left + x.shape[2]])


def test_zero_padding_handles_a_smaller_last_batch(rng):
    layer = layers.ZeroPadding2D(1)
    layer(images(rng, n=8))
    x = images(rng, n=3)
    np.testing.assert_array_equal(layer(x), np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))


@pytest.mark.parametrize("padding", [-1, (1, -2), ((1, 2), 3), ((1, 2, 3), (1, 2)), "same"])
def test_zero_padding_bad_arguments(padding):
    with pytest.raises(ValueError, match=r"Expected padding .* received padding="):
        layers.ZeroPadding2D(padding)


# ---- sum and global pooling ------------------------------------------------------------------

def test_sum_pooling_sums_windows(rng):
    x = images(rng, n=2, h=4, w=6)
    y = layers.SumPooling2D(2)(x)
    np.testing.assert_allclose(y, x.reshape(2, 2, 2, 3, 2, 2).sum(axis=(2, 4)), rtol=1e-6)


def test_sum_pooling_backward_gives_each_cell_the_full_gradient():
    layer = layers.SumPooling2D(2, strides=1)
    layer(np.zeros((1, 3, 3, 1), np.float32))
    dx = layer.backward(np.ones((1, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_layers(keepdims, rng):
    x = images(rng, n=3)
    shape = (3, 1, 1, 2) if keepdims else (3, 2)
    avg = layers.GlobalAveragePooling2D(keepdims=keepdims)
    np.testing.assert_allclose(avg(x), x.mean(axis=(1, 2)).reshape(shape), rtol=1e-5)
    top = layers.GlobalMaxPooling2D(keepdims=keepdims)
    np.testing.assert_array_equal(top(x), x.max(axis=(1, 2)).reshape(shape))
    dx = top.backward(np.ones(shape, np.float32))
    np.testing.assert_array_equal(dx, (x == x.max(axis=(1, 2), keepdims=True)).astype(np.float32))
    np.testing.assert_allclose(avg.backward(np.ones(shape, np.float32)), 1 / 30, rtol=1e-6)
    with pytest.raises(ValueError, match="keepdims=1"):
        layers.GlobalAveragePooling2D(keepdims=1)


# ---- registry and configs --------------------------------------------------------------------

def test_new_layers_are_exported_and_rebuild_from_config():
    assert set(NEW_LAYERS) <= set(layers.__all__)
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
    assert all(layers.get(name).__name__ == name for name in NEW_LAYERS)

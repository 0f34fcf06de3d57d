"""RandomFlip and RandomTranslation: exact whole-pixel transforms in training, the identity at
inference, adjoint backward passes, and draws from the model's epoch RNG (the contract every
layer meets runs in test_layers.LAYER_CASES)."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from conftest import call_layer, images


@pytest.mark.parametrize("make", [lambda: layers.RandomFlip(seed=0),
                                  lambda: layers.RandomTranslation(0.5, 0.5, seed=0)])
def test_augmentation_is_identity_at_inference(make, rng):
    layer = make()
    x = images(rng)
    y, dx, _ = call_layer(layer, x, x, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, x)
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
    dy = images(rng)
    y, dx, _ = call_layer(layer, x, dy, rng=np.random.default_rng(2))
    np.testing.assert_allclose((y * dy).sum(dtype=np.float64), (x * dx).sum(dtype=np.float64),
                               rtol=1e-5)
    # a flip is its own inverse: the gradient of y itself flips back onto x
    _, back, _ = call_layer(layer, x, y, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(back, x)


def shifted(image, dh, dw, fill):
    """image moved down by dh and right by dw, uncovered cells set to fill."""
    h, w = image.shape[:2]
    out = np.full_like(image, fill)
    out[max(dh, 0):h + min(dh, 0), max(dw, 0):w + min(dw, 0)] = \
        image[max(-dh, 0):h - max(dh, 0), max(-dw, 0):w - max(dw, 0)]
    return out


def test_random_translation_shifts_whole_pixels_within_range(rng):
    layer = layers.RandomTranslation((-0.2, 0.4), 0.5, fill_mode="constant", interpolation="nearest",
                                     fill_value=-7.0, seed=3)
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
    layer = layers.RandomTranslation((0.4, 0.4), (0.0, 0.0), fill_mode="nearest",
                                     interpolation="nearest", seed=0)
    x = images(rng, n=2, h=5, w=3)
    y = layer(x, training=True)  # every image moves down by exactly 2 rows
    np.testing.assert_array_equal(y[:, 2:], x[:, :3])
    np.testing.assert_array_equal(y[:, :2], np.repeat(x[:, :1], 2, axis=1))


@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect", "wrap"])
def test_random_translation_backward_is_the_adjoint(fill_mode, rng):
    layer = layers.RandomTranslation(0.6, 0.6, fill_mode=fill_mode, seed=4)
    x = images(rng, n=8)
    dy = images(rng, n=8)
    y, dx, _ = call_layer(layer, x, dy)
    np.testing.assert_allclose((y * dy).sum(dtype=np.float64), (x * dx).sum(dtype=np.float64),
                               rtol=1e-5)


def test_augmentation_follows_the_models_epoch_rng(rng):
    """Two seeded fits draw the same transforms, so they end with the same weights."""
    x = images(rng, n=16)
    y = rng.integers(0, 3, 16)
    weights = []
    for _ in range(2):
        fastcnn.utils.set_random_seed(5)
        model = fastcnn.Sequential([
            fastcnn.Input(shape=x.shape[1:]), layers.RandomFlip(), layers.RandomTranslation(0.3, 0.3),
            layers.RandomRotation(0.1), layers.RandomZoom(0.2),
            layers.RandomContrast(0.2, value_range=(-4, 4)),
            layers.RandomBrightness(0.1, value_range=(-4, 4)), layers.RandomCrop(4, 5),
            layers.Flatten(), layers.Dense(3, activation="softmax")])
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

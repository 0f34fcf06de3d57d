"""The resampling, preprocessing and augmentation layers: the layer contract, Keras 3.15's
formulas, torch as the oracle of UpSampling2D, training-only behaviour, gradients (adjoints of
the linear transforms), seeds, thread counts and argument checks."""
import json

import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from conftest import call_layer, check_layer, images

CASES = {
    "upsampling_nearest": (lambda: layers.UpSampling2D(), (3, 4, 2), (6, 8, 2), 0),
    "upsampling_bilinear": (lambda: layers.UpSampling2D((2, 3), interpolation="bilinear"),
                            (3, 4, 2), (6, 12, 2), 0),
    "resizing": (lambda: layers.Resizing(5, 3), (4, 6, 2), (5, 3, 2), 0),
    "resizing_crop_nearest": (lambda: layers.Resizing(3, 3, "nearest", crop_to_aspect_ratio=True),
                              (4, 6, 2), (3, 3, 2), 0),
    "resizing_pad": (lambda: layers.Resizing(4, 4, pad_to_aspect_ratio=True, fill_value=1.0),
                     (2, 6, 2), (4, 4, 2), 0),
    "center_crop": (lambda: layers.CenterCrop(2, 3), (4, 5, 2), (2, 3, 2), 0),
    "center_crop_resizes": (lambda: layers.CenterCrop(6, 3), (4, 5, 2), (6, 3, 2), 0),
    "rescaling": (lambda: layers.Rescaling(0.5, offset=0.1), (4, 4, 2), (4, 4, 2), 0),
    "rescaling_channels": (lambda: layers.Rescaling([1.0, 2.0], [0.0, -1.0]), (3, 3, 2), (3, 3, 2), 0),
    "rescaling_dense": (lambda: layers.Rescaling(3.0), (5,), (5,), 0),
    "random_crop": (lambda: layers.RandomCrop(3, 3, seed=1), (5, 5, 2), (3, 3, 2), 0),
    "random_rotation": (lambda: layers.RandomRotation(0.1, seed=1), (5, 5, 2), (5, 5, 2), 0),
    "random_zoom": (lambda: layers.RandomZoom(0.2, (-0.1, 0.3), fill_mode="constant", seed=1),
                    (5, 4, 2), (5, 4, 2), 0),
    "random_translation_bilinear": (lambda: layers.RandomTranslation(0.2, 0.3, fill_mode="wrap"),
                                    (4, 4, 2), (4, 4, 2), 0),
    "random_contrast": (lambda: layers.RandomContrast(0.3, value_range=(-5, 5), seed=1),
                        (4, 4, 2), (4, 4, 2), 0),
    "random_brightness": (lambda: layers.RandomBrightness(0.1, value_range=(-5, 5), seed=1),
                          (4, 4, 2), (4, 4, 2), 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_image_layer_contract(name):
    check_layer(*CASES[name])


RANDOM_LAYERS = {
    "rotation": lambda: layers.RandomRotation(0.2, seed=2),
    "zoom": lambda: layers.RandomZoom(0.3, seed=2),
    "translation": lambda: layers.RandomTranslation(0.3, 0.3, seed=2),
    "contrast": lambda: layers.RandomContrast(0.5, value_range=(-3, 3), seed=2),
    "brightness": lambda: layers.RandomBrightness(0.3, value_range=(-3, 3), seed=2),
}


@pytest.mark.parametrize("name", sorted(RANDOM_LAYERS))
def test_augmentation_only_in_training(name, rng):
    x = images(rng)
    y, dx, _ = call_layer(RANDOM_LAYERS[name](), x, 2 * x, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, 2 * x)
    y, _, _ = call_layer(RANDOM_LAYERS[name](), x, x, training=True)
    assert not np.allclose(y, x)


@pytest.mark.parametrize("name", sorted(RANDOM_LAYERS))
def test_augmentation_is_seeded(name, rng):
    x = images(rng)
    a, b = RANDOM_LAYERS[name](), RANDOM_LAYERS[name]()
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))
    assert not np.array_equal(a(x, training=True), RANDOM_LAYERS[name]()(x, training=True)[::-1])


LINEAR = {  # layers whose output is a linear map of the input (zero fill, no clipping)
    "upsampling_bilinear": lambda: layers.UpSampling2D((3, 2), interpolation="bilinear"),
    "resizing_pad": lambda: layers.Resizing(7, 3, pad_to_aspect_ratio=True),
    "center_crop": lambda: layers.CenterCrop(3, 4),
    "center_crop_resizes": lambda: layers.CenterCrop(9, 4),
    "random_crop": lambda: layers.RandomCrop(3, 2, seed=0),
    "rotation": lambda: layers.RandomRotation(0.3, fill_mode="constant", seed=0),
    "zoom_nearest": lambda: layers.RandomZoom(0.4, fill_mode="reflect", interpolation="nearest",
                                              seed=0),
    "translation_wrap": lambda: layers.RandomTranslation(0.4, 0.4, fill_mode="wrap", seed=0),
    "contrast": lambda: layers.RandomContrast((0.5, 0.9), value_range=(-1e3, 1e3), seed=0),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
@pytest.mark.parametrize("training", [True, False])
def test_backward_is_the_adjoint(name, training, rng):
    """For a linear y = A x, backward(dy) = A^T dy: <A x, dy> = <x, A^T dy>."""
    x = images(rng, n=8, h=5, w=6, c=2)
    layer = LINEAR[name]()
    probe = rng.standard_normal((8, *layer.compute_output_shape(x.shape)[1:])).astype(np.float32)
    y, dx, _ = call_layer(layer, x, probe, training, rng=np.random.default_rng(1))
    np.testing.assert_allclose(np.sum(y * probe, dtype=np.float64), np.sum(x * dx, dtype=np.float64),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling_matches_torch(interpolation, rng):
    torch = pytest.importorskip("torch")
    x = images(rng, n=3, h=5, w=4, c=3)
    dy = images(rng, n=3, h=10, w=12, c=3)
    y, dx, _ = call_layer(layers.UpSampling2D((2, 3), interpolation=interpolation), x, dy)
    t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    mode = {"mode": "nearest"} if interpolation == "nearest" else {"mode": "bilinear",
                                                                   "align_corners": False}
    out = torch.nn.functional.interpolate(t, scale_factor=(2, 3), **mode)
    (out * torch.tensor(dy.transpose(0, 3, 1, 2))).sum().backward()
    np.testing.assert_allclose(y, out.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, t.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def test_rescaling_formula(rng):
    x = images(rng, c=3)
    np.testing.assert_allclose(layers.Rescaling(1 / 255)(x), x / 255, rtol=1e-6)
    np.testing.assert_allclose(layers.Rescaling([1, 2, 3], offset=-1.0)(x),
                               x * np.array([1, 2, 3], np.float32) - 1, rtol=1e-6)


def test_center_crop_slices_or_smart_resizes(rng):
    x = images(rng, h=7, w=6)
    np.testing.assert_array_equal(layers.CenterCrop(3, 2)(x), x[:, 2:5, 2:4])
    # taller than the input: the centred window of aspect 9:4 (7 rows, 3 columns) resized, as
    # Resizing(crop_to_aspect_ratio=True) does
    np.testing.assert_array_equal(layers.CenterCrop(9, 4)(x),
                                  layers.Resizing(9, 4, crop_to_aspect_ratio=True)(x))


def test_random_crop_one_window_per_batch_in_training_and_smart_resize_otherwise(rng):
    x = images(rng, n=16, h=7, w=6)
    layer = layers.RandomCrop(3, 2, seed=5)
    y = layer(x, training=True)
    found = [(top, left) for top in range(5) for left in range(5)
             if np.array_equal(y, x[:, top:top + 3, left:left + 2])]
    assert len(found) == 1  # one window, the same for every image
    windows = set()
    for _ in range(20):  # drawn afresh at each call
        y = layer(x[:1], training=True)
        windows |= {(t, l) for t in range(5) for l in range(5)
                    if np.array_equal(y, x[:1, t:t + 3, l:l + 2])}
    assert len(windows) > 3
    smart = layers.Resizing(3, 2, crop_to_aspect_ratio=True)(x)
    np.testing.assert_array_equal(layer(x, training=False), smart)
    np.testing.assert_array_equal(layers.RandomCrop(7, 6)(x, training=True), x)  # not larger


def test_random_contrast_follows_keras(rng):
    """Keras 3.15: c ~ U(1 - lo, 1 + hi) per image ((0, f) for a number f), then
    (x - mean over height and width) * c + mean, clipped to value_range."""
    x = images(rng, n=8) * 50 + 120
    for factor, (lo, hi) in ((0.4, (1.0, 1.4)), ((0.3, 0.5), (0.7, 1.5))):
        y, _, _ = call_layer(layers.RandomContrast(factor), x, x, rng=np.random.default_rng(9))
        c = np.random.default_rng(9).uniform(lo, hi, 8)[:, None, None, None]
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        np.testing.assert_allclose(y, np.clip((x - mean) * c + mean, 0, 255), rtol=1e-5, atol=1e-3)


def test_random_brightness_follows_keras(rng):
    """Keras: delta ~ U(-f, f) * (high - low) per image, added and clipped to value_range; the
    gradient passes where nothing was clipped."""
    x = images(rng, n=8) * 0.4 + 0.5
    y, dx, _ = call_layer(layers.RandomBrightness(0.2, value_range=(0, 1)), x, np.ones_like(x),
                          rng=np.random.default_rng(4))
    delta = np.random.default_rng(4).uniform(-0.2, 0.2, 8)[:, None, None, None]
    np.testing.assert_allclose(y, np.clip(x + delta, 0, 1), rtol=1e-6, atol=1e-7)
    unclipped = (x + delta >= 0) & (x + delta <= 1)
    assert not unclipped.all()
    np.testing.assert_array_equal(dx, unclipped.astype(np.float32))


def test_random_rotation_quarter_turn_and_zoom_formula(rng):
    x = images(rng, n=4, h=5, w=5)
    y = layers.RandomRotation((0.25, 0.25), interpolation="nearest")(x, training=True)
    np.testing.assert_array_equal(y, np.rot90(x, k=1, axes=(1, 2)))  # counter-clockwise
    # Keras's zoom reads input column zx * j + (w - 1) / 2 * (1 - zx): for zx = 0.5 on 5
    # columns 1, 1.5, 2, 2.5, 3, which round (halves away from zero) to 1, 2, 2, 3, 3
    zoomed = layers.RandomZoom((-0.5, -0.5), interpolation="nearest")(x, training=True)
    read = [1, 2, 2, 3, 3]
    np.testing.assert_array_equal(zoomed, x[:, read][:, :, read])


@pytest.mark.parametrize("name", sorted(CASES))
def test_layers_are_bitwise_equal_on_1_and_2_threads(name, rng):
    make, input_shape = CASES[name][0], CASES[name][1]
    if len(input_shape) != 3:
        pytest.skip("not an image layer")
    x = rng.standard_normal((16, 48, 48, input_shape[-1])).astype(np.float32)
    results = []
    for threads in (1, 2):
        fastcnn.set_num_threads(threads)
        try:
            layer = make()
            probe = np.random.default_rng(7).standard_normal(
                (16, *layer.compute_output_shape(x.shape)[1:])).astype(np.float32)
            results.append(call_layer(layer, x, probe, True, rng=np.random.default_rng(3))[:2])
        finally:
            fastcnn.set_num_threads(None)
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.UpSampling2D(0), "size=0"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: layers.Resizing(0, 3), "height"),
    (lambda: layers.Resizing(3, 3, interpolation="area"), "interpolation='area'"),
    (lambda: layers.Resizing(3, 3, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     "pad_to_aspect_ratio"),
    (lambda: layers.Resizing(3, 3, fill_mode="reflect"), "fill_mode='reflect'"),
    (lambda: layers.Resizing(3, 3, fill_value="0"), "fill_value='0'"),
    (lambda: layers.Resizing(3, 3, antialias=True), "antialias=True"),
    (lambda: layers.CenterCrop(2, -1), "width"),
    (lambda: layers.RandomCrop(2.5, 2), "height"),
    (lambda: layers.Rescaling("x"), "scale='x'"),
    (lambda: layers.Rescaling(1.0, offset=[1, None]), "offset"),
    (lambda: layers.RandomRotation(1.5), "factor=1.5"),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), "fill_mode='mirror'"),
    (lambda: layers.RandomRotation(0.1, interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: layers.RandomZoom((-1.0, 0.2)), "height_factor"),
    (lambda: layers.RandomZoom(0.2, width_factor=2), "width_factor=2"),
    (lambda: layers.RandomTranslation(0.1, 0.1, interpolation="cubic"), "interpolation='cubic'"),
    (lambda: layers.RandomContrast(1.5), "factor=1.5"),
    (lambda: layers.RandomContrast((-0.2, 0.5)), "factor"),
    (lambda: layers.RandomContrast(0.2, value_range=(1, 0)), r"value_range=\(1, 0\)"),
    (lambda: layers.RandomBrightness(0.2, value_range=5), "value_range=5"),
    (lambda: layers.RandomBrightness("0.2"), "factor='0.2'"),
])
def test_image_layers_refuse_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_image_layers_refuse_inputs_that_are_not_images():
    for layer in (layers.UpSampling2D(), layers.Resizing(2, 2), layers.RandomRotation(0.1),
                  layers.RandomContrast(0.1), layers.CenterCrop(1, 1)):
        with pytest.raises(ValueError, match="height, width, channels"):
            layer.compute_output_shape((None, 4, 4))
    with pytest.raises(ValueError, match="one value per channel"):
        layers.Rescaling([1.0, 2.0]).compute_output_shape((None, 4, 3))


def test_model_of_image_layers_saves_and_loads(rng, tmp_path):
    from conftest import reloaded
    x = images(rng, n=4, h=8, w=8, c=2)
    model = fastcnn.Sequential([
        fastcnn.Input(shape=x.shape[1:]), layers.Rescaling([0.5, 2.0], offset=0.1),
        layers.RandomRotation((-0.1, 0.2), fill_mode="wrap", seed=1),
        layers.RandomZoom(0.2, 0.1, interpolation="nearest"), layers.RandomContrast((0.1, 0.2)),
        layers.RandomBrightness(0.1, value_range=[-4, 4]), layers.RandomCrop(6, 7),
        layers.CenterCrop(5, 5), layers.UpSampling2D((1, 2), interpolation="bilinear"),
        layers.Resizing(4, 6, pad_to_aspect_ratio=True, fill_value=-1.0), layers.Flatten(),
        layers.Dense(3)])
    copy = reloaded(model, x, tmp_path)
    as_saved = lambda m: json.loads(json.dumps([layer.get_config() for layer in m.layers]))
    assert as_saved(copy) == as_saved(model)

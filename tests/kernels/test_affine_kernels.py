"""The affine resampling kernels (RandomRotation, RandomZoom, RandomTranslation) and the
intensity kernels (Rescaling, RandomBrightness, RandomContrast): TensorFlow's fill modes on
known coordinates, exact cases, adjoints, float64 finite differences and thread counts."""
import numpy as np
import pytest

from fastcnn._ops import intensity, remap
from conftest import numeric_grad

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def shift(n, dy, dx):
    """Transforms that move every image's content down by dy and right by dx."""
    return np.tile([1.0, 0.0, -dx, 0.0, 1.0, -dy], (n, 1))


def row_of(values, fill_mode, dx, interpolation="nearest", fill_value=-1.0):
    x = np.asarray(values, np.float64).reshape(1, 1, -1, 1)
    return remap.affine2d_forward(x, shift(1, 0, dx), fill_mode, interpolation, fill_value).ravel()


def test_fill_modes_of_whole_pixel_shifts():
    """abcd moved right by 2 (each output j reads column j - 2) in each fill mode, and moved
    left by 5, past the whole row: TensorFlow's reflect mirrors with the edge repeated, wrap
    tiles, nearest repeats the edge."""
    abcd = [1, 2, 3, 4]
    np.testing.assert_array_equal(row_of(abcd, "constant", 2), [-1, -1, 1, 2])
    np.testing.assert_array_equal(row_of(abcd, "nearest", 2), [1, 1, 1, 2])
    np.testing.assert_array_equal(row_of(abcd, "reflect", 2), [2, 1, 1, 2])
    np.testing.assert_array_equal(row_of(abcd, "wrap", 2), [3, 4, 1, 2])
    # reads columns 5..8 of a b c d | d c b a | a b c d
    np.testing.assert_array_equal(row_of(abcd, "reflect", -5), [3, 2, 1, 1])
    np.testing.assert_array_equal(row_of(abcd, "constant", -5), [-1, -1, -1, -1])


def test_bilinear_half_pixel_shift_blends_neighbours_and_the_fill_value():
    # Each output j reads column j - 0.5: the mean of columns j - 1 and j, the fill beyond.
    np.testing.assert_allclose(row_of([2, 4, 8], "constant", 0.5, "bilinear", 10.0), [6, 3, 6])
    np.testing.assert_allclose(row_of([2, 4, 8], "nearest", 0.5, "bilinear"), [2, 3, 6])


def test_quarter_turn_is_exact(rng):
    """A rotation by 90 degrees about the centre of a square image moves pixels exactly."""
    x = rng.standard_normal((1, 5, 5, 2))
    c = 2.0  # the centre
    # output (i, j) reads column c + (i - c) = i and row c - (j - c) = 4 - j
    t = np.array([[0.0, 1.0, 0.0, -1.0, 0.0, 2 * c]])
    for interpolation in ("nearest", "bilinear"):
        np.testing.assert_allclose(remap.affine2d_forward(x, t, "constant", interpolation),
                                   np.rot90(x, k=-1, axes=(1, 2)), atol=1e-12)


def random_transforms(rng, n):
    angle, zoom = rng.uniform(-3, 3, n), rng.uniform(0.6, 1.4, n)
    return np.stack([zoom * np.cos(angle), -zoom * np.sin(angle), rng.uniform(-6, 6, n),
                     zoom * np.sin(angle), zoom * np.cos(angle), rng.uniform(-6, 6, n)], axis=1)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_affine_backward_is_the_adjoint_and_the_gradient(fill_mode, interpolation, rng):
    x = rng.standard_normal((3, 5, 4, 2))
    t = random_transforms(rng, 3)
    dy = rng.standard_normal(x.shape)
    forward = lambda: remap.affine2d_forward(x, t, fill_mode, interpolation, 0.0)
    dx = remap.affine2d_backward(dy, t, fill_mode, interpolation)
    np.testing.assert_allclose((forward() * dy).sum(), (x * dx).sum(), rtol=1e-12)
    np.testing.assert_allclose(dx, numeric_grad(lambda: float((forward() * dy).sum()), x),
                               rtol=1e-6, atol=1e-8)


def test_affine_threads_are_bitwise_equal(rng):
    x = rng.standard_normal((8, 30, 28, 8)).astype(np.float32)
    t = random_transforms(rng, 8)
    for fill_mode in FILL_MODES:
        for interpolation in ("nearest", "bilinear"):
            runs = [(remap.affine2d_forward(x, t, fill_mode, interpolation, 0.5, n_threads=k),
                     remap.affine2d_backward(x, t, fill_mode, interpolation, n_threads=k))
                    for k in (1, 2, 3)]
            for out, dx in runs[1:]:
                assert np.array_equal(out, runs[0][0]) and np.array_equal(dx, runs[0][1])


@pytest.mark.parametrize("call,message", [
    (lambda: remap.affine2d_forward(np.zeros((2, 3, 3, 1)), np.zeros((1, 6))), "transforms"),
    (lambda: remap.affine2d_forward(np.zeros((1, 3, 3, 1)), [[np.nan] * 6]), "finite transforms"),
    (lambda: remap.affine2d_forward(np.zeros((1, 3, 3, 1)), np.zeros((1, 6)), "mirror"), "fill_mode='mirror'"),
    (lambda: remap.affine2d_forward(np.zeros((1, 3, 3, 1)), np.zeros((1, 6)), "wrap", "bicubic"),
     "interpolation='bicubic'"),
    (lambda: remap.affine2d_forward(np.zeros((1, 3, 3, 1)), np.zeros((1, 6)), fill_value=np.inf), "fill_value"),
])
def test_affine_refuses_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_channel_means_refuses_images_without_positions():
    with pytest.raises(ValueError, match="values to average"):
        intensity.channel_means(np.zeros((2, 3, 0, 4)))


def test_intensity_clips_and_passes_gradients_only_where_it_did_not(rng):
    x = np.array([[[-2.0, 0.5], [1.0, 3.0]]])  # (1, 2, 2)
    y = intensity.intensity_forward(x, [2.0, 1.0], [0.5, 0.0], -1.0, 2.0)
    np.testing.assert_array_equal(y, [[[-1.0, 0.5], [2.0, 2.0]]])  # -3.5, 0.5, 2.5, 3.0 clipped
    dx = intensity.intensity_backward(np.ones_like(x), x, [2.0, 1.0], [0.5, 0.0], -1.0, 2.0)
    np.testing.assert_array_equal(dx, [[[0.0, 1.0], [0.0, 0.0]]])
    x = rng.standard_normal((3, 4, 5, 2))
    np.testing.assert_allclose(intensity.channel_means(x), x.mean(axis=(1, 2)), rtol=1e-12)


def test_intensity_threads_are_bitwise_equal(rng):
    x = rng.standard_normal((4, 60, 50, 3)).astype(np.float32)
    scale, shift = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    runs = [(intensity.intensity_forward(x, scale, shift, -1, 1, n_threads=k),
             intensity.intensity_backward(x, x, scale, shift, -1, 1, n_threads=k),
             intensity.channel_means(x, n_threads=k)) for k in (1, 2, 3)]
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert np.array_equal(a, b)

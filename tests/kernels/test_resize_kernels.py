"""The resize kernels (Keras's half-pixel resize) against torch, which computes the same
resampling: F.interpolate(mode="bilinear", align_corners=False) without antialias is half-pixel
bilinear, and mode="nearest-exact" picks the row min(floor((i + 0.5) * H / OH), H - 1), as
TensorFlow's half-pixel nearest does. Also the adjoint, float64 finite differences, threads and
the aspect-ratio crop and pad."""
import numpy as np
import pytest

from fastcnn._ops import resize
from conftest import numeric_grad

SHAPES = [((2, 5, 7, 3), (11, 4)), ((1, 8, 8, 2), (16, 16)), ((3, 9, 13, 1), (4, 5)),
          ((1, 1, 1, 2), (3, 2)), ((2, 6, 3, 2), (6, 3)), ((1, 10, 4, 1), (3, 17))]
TORCH_MODES = {"bilinear": dict(mode="bilinear", align_corners=False),
               "nearest": dict(mode="nearest-exact")}


@pytest.mark.parametrize("shape,size", SHAPES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_matches_torch(shape, size, interpolation, dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(dtype)
    probe = rng.standard_normal((shape[0], *size, shape[3])).astype(dtype)
    t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    out = torch.nn.functional.interpolate(t, size=size, **TORCH_MODES[interpolation])
    (out * torch.tensor(probe.transpose(0, 3, 1, 2))).sum().backward()
    tol = 2e-6 if dtype == np.float32 else 1e-6  # float32 weights either way, as TensorFlow's
    np.testing.assert_allclose(resize.resize2d_forward(x, size, interpolation),
                               out.detach().numpy().transpose(0, 2, 3, 1), rtol=tol, atol=tol)
    np.testing.assert_allclose(resize.resize2d_backward(probe, shape, size, interpolation),
                               t.grad.numpy().transpose(0, 2, 3, 1), rtol=tol, atol=tol)


def test_nearest_picks_the_half_pixel_row_in_float32():
    """Row i of a nearest resize from H to OH reads min(floor((i + 0.5) * (H / OH)), H - 1), in
    float32: H=10 to OH=3 reads rows 1, 5, 8 (in exact arithmetic the middle one would be 4)."""
    x = np.arange(10, dtype=np.float32).reshape(1, 10, 1, 1)
    np.testing.assert_array_equal(resize.resize2d_forward(x, (3, 1), "nearest").ravel(), [1, 5, 8])
    for h in range(1, 30):
        for oh in range(1, 30):
            x = np.arange(h, dtype=np.float32).reshape(1, h, 1, 1)
            scale = np.float32(h) / np.float32(oh)
            want = np.minimum(np.floor((np.arange(oh, dtype=np.float32) + np.float32(0.5)) * scale), h - 1)
            np.testing.assert_array_equal(resize.resize2d_forward(x, (oh, 1), "nearest").ravel(), want)


def test_integer_upsampling_repeats_and_bilinear_keeps_the_mean_of_constants(rng):
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(resize.resize2d_forward(x, (6, 12), "nearest"),
                                  x.repeat(2, axis=1).repeat(3, axis=2))
    np.testing.assert_allclose(resize.resize2d_forward(np.full((1, 3, 5, 1), 7.0), (8, 2)), 7.0)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("aspect", [{}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}])
def test_resize_gradient_finite_differences(interpolation, aspect, rng):
    x = rng.standard_normal((2, 5, 3, 2))
    probe = rng.standard_normal((2, 4, 6, 2))
    loss = lambda: float((resize.resize2d_forward(x, (4, 6), interpolation, fill_value=0.3,
                                                  **aspect) * probe).sum())
    np.testing.assert_allclose(resize.resize2d_backward(probe, x.shape, (4, 6), interpolation, **aspect),
                               numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_aspect_ratio_crop_and_pad_follow_keras():
    """Keras's crop takes the centred window int(W * th / tw) rows high; its pad adds
    int((int(W * th / tw) - H) / 2) rows of fill_value above and below."""
    x = np.arange(8 * 4, dtype=np.float32).reshape(1, 8, 4, 1)
    # 8x4 to 4x4: crop the centred 4x4 window (rows 2..5), which is already the target size
    cropped = resize.resize2d_forward(x, (4, 4), "nearest", crop_to_aspect_ratio=True)
    np.testing.assert_array_equal(cropped, x[:, 2:6])
    # 2x4 to 4x4: one row of fill above and below, and the 4x4 is already the target size
    y = np.arange(8, dtype=np.float32).reshape(1, 2, 4, 1)
    padded = resize.resize2d_forward(y, (4, 4), "nearest", pad_to_aspect_ratio=True, fill_value=-1)
    np.testing.assert_array_equal(padded[0, :, :, 0], [[-1] * 4, [0, 1, 2, 3], [4, 5, 6, 7], [-1] * 4])


def test_resize_threads_are_bitwise_equal(rng):
    x = rng.standard_normal((3, 37, 29, 16)).astype(np.float32)
    dy = rng.standard_normal((3, 50, 23, 16)).astype(np.float32)
    for interpolation in ("bilinear", "nearest"):
        runs = [(resize.resize2d_forward(x, (50, 23), interpolation, n_threads=t),
                 resize.resize2d_backward(dy, x.shape, (50, 23), interpolation, n_threads=t))
                for t in (1, 2, 3)]
        for out, dx in runs[1:]:
            assert np.array_equal(out, runs[0][0]) and np.array_equal(dx, runs[0][1])
    one = rng.standard_normal((1, 64, 64, 8)).astype(np.float32)  # one image: rows split
    assert np.array_equal(resize.resize2d_backward(one, (1, 32, 32, 8), (64, 64), n_threads=1),
                          resize.resize2d_backward(one, (1, 32, 32, 8), (64, 64), n_threads=3))


@pytest.mark.parametrize("call,message", [
    (lambda: resize.resize2d_forward(np.zeros((1, 2, 2, 1)), (2, 2), "bicubic"), "interpolation='bicubic'"),
    (lambda: resize.resize2d_forward(np.zeros((1, 2, 2, 1)), (2, 2), np.zeros(9)), "interpolation"),
    (lambda: resize.resize2d_forward(np.zeros((1, 2, 2, 1)), (0, 2)), "height"),
    (lambda: resize.resize2d_forward(np.zeros((1, 2, 2, 1)), (2,)), "size"),
    (lambda: resize.resize2d_forward(np.zeros((1, 2, 2, 1)), (2, 2), fill_value=np.nan), "fill_value"),
    (lambda: resize.resize2d_forward(np.zeros((1, 2, 2, 1)), (2, 2), "bilinear", True, True),
     "crop_to_aspect_ratio"),
    (lambda: resize.resize2d_backward(np.zeros((1, 3, 2, 1)), (1, 2, 2, 1), (2, 2)), "dy of shape"),
])
def test_resize_refuses_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()

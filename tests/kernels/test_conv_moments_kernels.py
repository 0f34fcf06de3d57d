"""conv2d_forward's and depthwise_forward's moments: the partial sums of batch normalisation's
statistics, summed by the conv as it writes its output. They are those of
batchnorm_forward_training's own pass, bit for bit, for any thread count, so that a training BN
step fed them gives the same bits."""
import numpy as np
import pytest

from fastcnn._ops import conv, depthwise, normalization
from conftest import bn_params

# (x shape, filters, strides, padding): the chunk is half an image (32x32x16), one image
# (16x16x32), two images (8x8x64, the last chunk short with 5 images) and whole images of an
# odd pixel count (7x7).
SHAPES = [((3, 32, 32, 8), 16, (1, 1), "same"), ((4, 16, 16, 16), 32, (1, 1), "same"),
          ((5, 16, 16, 16), 64, (2, 2), "same"), ((3, 9, 9, 4), 8, (1, 1), "valid")]


def case(shape, filters, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    kernel = (rng.standard_normal((3, 3, shape[-1], filters)) * 0.2).astype(dtype)
    return x, kernel


def depthwise_case(shape, filters, dtype, seed=0):
    """x and a depthwise kernel with filters / channels filters per channel."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    kernel = (rng.standard_normal((3, 3, shape[-1], filters // shape[-1])) * 0.2).astype(dtype)
    return x, kernel


FORWARDS = {"conv": (case, conv.conv2d_forward), "depthwise": (depthwise_case,
                                                              depthwise.depthwise_forward)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, filters, strides, padding", SHAPES)
@pytest.mark.parametrize("layer", FORWARDS)
def test_moments_are_the_statistics_pass_bitwise_for_any_thread_count(shape, filters, strides,
                                                                     padding, dtype, layer):
    make, forward = FORWARDS[layer]
    x, kernel = make(shape, filters, dtype)
    bias = np.linspace(2, 3, filters).astype(dtype)  # a mean far from 0
    plain = forward(x, kernel, bias, strides, padding, n_threads=1)
    gamma, beta, moving_mean, moving_var = bn_params(np.random.default_rng(1), filters, dtype)

    def train(z, moments):
        mm, mv = moving_mean.copy(), moving_var.copy()
        y, mean, inv_std = normalization.batchnorm_forward_training(
            z, gamma, beta, mm, mv, 0.9, 1e-3, relu=True, partial=moments,
            moments_given=moments is not None, n_threads=2)
        return y, mean, inv_std, mm, mv

    want = train(plain, None)
    for n_threads in (1, 2, 3):
        moments = np.full(normalization.batchnorm_partial_shape(plain.shape), np.nan)
        z = forward(x, kernel, bias, strides, padding, n_threads=n_threads, moments=moments)
        np.testing.assert_array_equal(z, plain)
        for got, expected in zip(train(z, moments), want):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("layer", FORWARDS)
def test_moments_of_an_empty_batch_are_empty(layer):
    make, forward = FORWARDS[layer]
    x, kernel = make((0, 4, 4, 2), 4, np.float32)
    moments = np.empty((0, 2, 4))
    z = forward(x, kernel, None, (1, 1), "same", moments=moments)
    assert z.shape == (0, 4, 4, 4)


def test_depthwise_moments_are_refused_in_a_wrong_buffer():
    x, kernel = depthwise_case((2, 6, 6, 2), 4, np.float32)
    for moments in (np.empty((3, 2, 4)),
                    np.empty(normalization.batchnorm_partial_shape((2, 6, 6, 4)), np.float32)):
        with pytest.raises(ValueError, match="moments"):
            depthwise.depthwise_forward(x, kernel, None, (1, 1), "same", moments=moments)


def test_moments_are_refused_where_the_kernels_cannot_sum_them():
    x, kernel = case((2, 6, 6, 2), 4, np.float32)
    with pytest.raises(ValueError, match="moments"):
        conv.conv2d_forward(x, kernel, None, (1, 1), "same", moments=np.empty((3, 2, 4)))
    with pytest.raises(ValueError, match="moments=None"):
        conv.conv2d_forward(x, kernel, None, (1, 1), "same", dilation_rate=(2, 2),
                            moments=np.empty((1, 2, 4)))
    with pytest.raises(ValueError, match="moments"):
        conv.conv2d_forward(x, kernel, None, (1, 1), "same",
                            moments=np.empty(normalization.batchnorm_partial_shape((2, 6, 6, 4)),
                                             np.float32))


def test_kernel_refuses_chunks_that_cut_images_unevenly():
    from fastcnn._ext import conv as conv_ext
    x, kernel = case((2, 6, 6, 2), 4, np.float32)
    out = np.empty((2, 6, 6, 4), np.float32)
    with pytest.raises(ValueError, match="chunk_rows"):
        conv_ext.conv2d_forward(x, kernel, None, out, np.empty((3, 2, 4)), 1, 1, 1, 1, False, 25,
                                1)
    with pytest.raises(ValueError, match="moments of shape"):
        conv_ext.conv2d_forward(x, kernel, None, out, np.empty((3, 2, 4)), 1, 1, 1, 1, False, 36,
                                1)


def test_depthwise_kernel_refuses_chunks_that_cut_images_unevenly():
    from fastcnn._ext import depthwise as depthwise_ext
    x, kernel = depthwise_case((2, 6, 6, 2), 4, np.float32)
    out = np.empty((2, 6, 6, 4), np.float32)
    with pytest.raises(ValueError, match="chunk_rows"):
        depthwise_ext.depthwise_forward(x, kernel, None, out, 1, 1, 1, 1, 1, 1, 0, 1,
                                        np.empty((3, 2, 4)), 25)
    with pytest.raises(ValueError, match="moments of shape"):
        depthwise_ext.depthwise_forward(x, kernel, None, out, 1, 1, 1, 1, 1, 1, 0, 1,
                                        np.empty((3, 2, 4)), 36)


def test_moments_given_needs_the_partial_sums():
    x = np.ones((4, 3), np.float32)
    gamma, beta, mm, mv = bn_params(np.random.default_rng(0), 3, np.float32)
    with pytest.raises(ValueError, match="partial"):
        normalization.batchnorm_forward_training(x, gamma, beta, mm, mv, 0.9, 1e-3,
                                                 moments_given=True)

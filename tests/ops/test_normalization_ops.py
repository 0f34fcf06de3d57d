"""The batch-normalisation wrappers: results independent of the thread count, and shapes and
dtypes checked."""
import numpy as np
import pytest

from fastcnn._ops import normalization as normalization_ops
from conftest import bn_params


@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_ops_ignore_thread_count(relu, rng):
    """Through the ops room, whose chunking depends on the shape only."""
    x = rng.standard_normal((64, 9, 9, 8)).astype(np.float32)
    res = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        gamma, beta, mm, mv = bn_params(np.random.default_rng(0), 8, np.float32)
        y, mean, inv_std = normalization_ops.batchnorm_forward_training(
            x, gamma, beta, mm, mv, 0.99, 1e-3, residual=res, relu=relu, n_threads=threads)
        dgamma, dbeta = np.empty(8, np.float32), np.empty(8, np.float32)
        dx, dres = normalization_ops.batchnorm_backward(
            x, y, gamma, beta, mean, inv_std, True, dgamma, dbeta, residual=res, relu=relu,
            need_dres=True, n_threads=threads)
        results.append((y, mm, mv, dx, dres, dgamma, dbeta))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_batchnorm_ops_check_shapes_and_dtypes(rng):
    x = rng.standard_normal((5, 3)).astype(np.float32)
    gamma, beta, mm, mv = bn_params(rng, 3, np.float32)
    with pytest.raises(ValueError, match=r"gamma to be a contiguous float32 array of shape \(3,\)"):
        normalization_ops.batchnorm_forward_training(x, gamma[:2], beta, mm, mv, 0.9, 1e-3)
    with pytest.raises(ValueError, match="moving_var .* float64"):  # updated in place: no copies
        normalization_ops.batchnorm_forward_training(x, gamma, beta, mm, mv.astype(np.float64), 0.9, 1e-3)
    with pytest.raises(ValueError, match=r"Expected residual of shape \(5, 3\)"):
        normalization_ops.batchnorm_forward_training(x, gamma, beta, mm, mv, 0.9, 1e-3,
                                                     residual=x[:4])

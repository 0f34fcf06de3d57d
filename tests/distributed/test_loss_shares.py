"""A loss on one process's share of a batch (``forward_backward(..., batch=whole)``): its rows
of the per-sample losses and of the gradient are bitwise the whole batch's, sample weights
included; a loss whose divisor needs every process's samples is refused. No MPI needed."""
import numpy as np
import pytest

from fastcnn import losses, ops
from fastcnn.ops.loss_function import LossFunctionWrapper

N, SHARES = 10, ((0, 4), (4, 10))


def _outputs(shape, labels=False, seed=0):
    rng = np.random.default_rng(seed)
    y_pred = rng.random((N, *shape)).astype(np.float32) + 0.05
    y_pred /= y_pred.sum(axis=-1, keepdims=True)
    y_true = rng.integers(0, shape[-1], (N, *shape[:-1])) if labels else \
        np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], (N, *shape[:-1]))]
    return y_pred, y_true


def _run(loss, y_pred, y_true, weights, rows, batch=None):
    grad = np.empty_like(y_pred[rows])
    values = np.empty(len(grad), y_pred.dtype)
    loss.forward_backward(y_pred[rows], loss.check_targets(y_true[rows], y_pred.shape[1:]), False,
                          grad, values, sample_weight=None if weights is None else weights[rows],
                          batch=batch)
    return grad, values


def _mse_per_sample(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


CASES = [
    (losses.CategoricalCrossentropy(), (3,), False),
    (losses.CategoricalCrossentropy(reduction="sum"), (3,), False),
    (losses.SparseCategoricalCrossentropy(), (4, 5), True),  # per-position outputs
    (losses.MeanSquaredError(reduction="mean"), (2, 3), False),
    (losses.Dice(axis=(1,)), (3,), False),  # one Dice loss per sample
    (LossFunctionWrapper(_mse_per_sample), (3,), False),
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("loss, shape, labels", CASES, ids=lambda c: getattr(c, "name", None))
def test_shares_give_their_rows_of_the_whole_batch(loss, shape, labels, weighted):
    y_pred, y_true = _outputs(shape, labels)
    weights = 1 + np.arange(N, dtype=np.float32) % 3 if weighted else None
    grad, values = _run(loss, y_pred, y_true, weights, slice(None))
    for start, stop in SHARES:
        share_grad, share_values = _run(loss, y_pred, y_true, weights, slice(start, stop), N)
        assert share_grad.tobytes() == grad[start:stop].tobytes()
        assert share_values.tobytes() == values[start:stop].tobytes()


@pytest.mark.parametrize("loss, weighted, says", [
    (losses.MeanSquaredError(reduction="mean_with_sample_weight"), True,
     "mean_with_sample_weight"),
    (losses.SparseCategoricalCrossentropy(ignore_class=0), False, "ignore_class"),
    (losses.Dice(), False, "axis=None"),
    (LossFunctionWrapper(lambda t, p: ops.mean(ops.square(t - p))), False, "one loss per sample"),
], ids=["mean_with_sample_weight", "ignore_class", "dice", "one_number"])
def test_a_divisor_that_needs_every_share_is_refused(loss, weighted, says):
    labels = isinstance(loss, losses.SparseCategoricalCrossentropy)
    y_pred, y_true = _outputs((3,), labels)
    weights = np.ones(N, np.float32) if weighted else None
    _run(loss, y_pred, y_true, weights, slice(0, 4))  # a whole batch is fine
    with pytest.raises(ValueError, match=says):
        _run(loss, y_pred, y_true, weights, slice(0, 4), N)


def test_mean_with_sample_weight_without_weights_is_a_mean():
    loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    y_pred, y_true = _outputs((3,))
    grad, values = _run(loss, y_pred, y_true, None, slice(None))
    share_grad, share_values = _run(loss, y_pred, y_true, None, slice(4, 10), N)
    assert share_grad.tobytes() == grad[4:].tobytes()
    assert share_values.tobytes() == values[4:].tobytes()

"""The metrics' counting kernels, through their checked wrappers: against counts written out
directly, exact for 0/1 weights, and bitwise the same for 1, 2 and 3 threads."""
import numpy as np
import pytest

from fastcnn._ops import metrics as metric_ops

AUC_THRESHOLDS = np.array([-1e-7, *np.arange(1, 199) / 199, 1 + 1e-7])


def direct_confusion(y_pred, y_true, weight, thresholds):
    """(tp, fp, tn, fn) (L, T) by comparing every prediction with every threshold."""
    above = y_pred[:, :, None] > thresholds  # (N, L, T)
    w, y = weight[:, :, None].astype(np.float64), y_true[:, :, None].astype(np.float64)
    return ((above * w * y).sum(0), (above * w * (1 - y)).sum(0),
            (~above * w * (1 - y)).sum(0), (~above * w * y).sum(0))


@pytest.mark.parametrize("thresholds", [
    AUC_THRESHOLDS, np.array([0.5]), np.array([0.9, 0.1, 0.5, 0.5]),  # unsorted, repeated
    np.array([-np.inf, 0.3]), np.linspace(0, 1, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_confusion_counts_every_comparison(thresholds, dtype, rng):
    y_pred = rng.random((3000, 3)).astype(dtype)
    y_pred[:200, 0] = np.linspace(0, 1, 200)  # scores on and around the thresholds
    y_pred[:50, 1] = thresholds[rng.integers(0, len(thresholds), 50)]
    y_pred[50, 1], y_pred[51, 1], y_pred[52, 1] = np.nan, np.inf, -np.inf
    y_true = (rng.random((3000, 3)) > 0.4).astype(dtype)
    weight = rng.integers(0, 3, (3000, 3)).astype(dtype)  # integer weights: exact sums
    got = metric_ops.threshold_confusion(y_pred, y_true, weight, thresholds)
    want = direct_confusion(y_pred, y_true, weight, thresholds)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_threshold_confusion_soft_labels_split_their_weight(rng):
    y_pred, y_true = rng.random((20, 1)), rng.random((20, 1))
    weight = rng.random((20, 1))
    tp, fp, tn, fn = metric_ops.threshold_confusion(y_pred, y_true, weight, [0.5])
    want = direct_confusion(y_pred, y_true, weight, np.array([0.5]))
    np.testing.assert_allclose(np.stack([tp, fp, tn, fn]), np.stack(want), rtol=1e-12)
    np.testing.assert_allclose(tp + fp + tn + fn, weight.sum())


def test_top_k_hits_counts_ties_as_in_the_top_k():
    scores = np.array([[0.1, 0.5, 0.5, 0.2], [0.9, 0.1, 0.1, 0.1], [np.nan, 1, 2, 3]])
    for k, targets, want in [(1, [1, 0, 3], [1, 1, 1]), (1, [2, 1, 0], [1, 0, 0]),
                             (2, [3, 1, 2], [0, 1, 1]), (3, [3, 3, 0], [1, 1, 0]),
                             (9, [0, 1, 2], [1, 1, 1])]:
        np.testing.assert_array_equal(metric_ops.top_k_hits(scores, targets, k), want)


def test_confusion_matrix_sums_weights_by_cell(rng):
    labels, predicted = rng.integers(0, 5, 10_000), rng.integers(0, 5, 10_000)
    weight = rng.integers(0, 4, 10_000).astype(np.float32)
    want = np.zeros((5, 5))
    np.add.at(want, (labels, predicted), weight)
    np.testing.assert_array_equal(metric_ops.confusion_matrix(labels, predicted, weight, 5), want)


def test_counts_do_not_depend_on_the_thread_count(rng):
    y_pred = rng.random((200_000, 2)).astype(np.float32)
    y_true = rng.random((200_000, 2)).astype(np.float32)  # soft: rounding would show
    weight = rng.random((200_000, 2)).astype(np.float32)
    labels, predicted = rng.integers(0, 7, 300_000), rng.integers(0, 7, 300_000)
    scores, targets = rng.random((60_000, 10)), rng.integers(0, 10, 60_000)
    runs = [(metric_ops.threshold_confusion(y_pred, y_true, weight, AUC_THRESHOLDS, n),
             metric_ops.confusion_matrix(labels, predicted, weight.reshape(-1)[:300_000], 7, n),
             metric_ops.top_k_hits(scores, targets, 3, n)) for n in (1, 2, 3)]
    for run in runs[1:]:
        for got, want in zip(run, runs[0]):
            for g, w in zip(got, want):
                assert np.array_equal(g, w)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: metric_ops.top_k_hits(np.zeros((2, 3)), [0, 3], 1), ValueError, r"in \[0, 3\)"),
    (lambda: metric_ops.top_k_hits(np.zeros((2, 3)), [0.5, 1], 1), ValueError, "fractional"),
    (lambda: metric_ops.top_k_hits(np.zeros((2, 3)), [0, 1], 0), ValueError, "k to be"),
    (lambda: metric_ops.top_k_hits(np.zeros((2, 3)), [0], 1), ValueError, "targets of shape"),
    (lambda: metric_ops.threshold_confusion(np.zeros((2, 1)), np.zeros((2, 1)),
                                            np.ones((2, 1)), [np.nan]), ValueError, "NaN"),
    (lambda: metric_ops.threshold_confusion(np.zeros((2, 1)), np.zeros((3, 1)),
                                            np.ones((2, 1)), [0.5]), ValueError, "y_true"),
    (lambda: metric_ops.confusion_matrix([0, 5], [0, 1], [1, 1], 5), ValueError,
     r"labels in \[0, 5\)"),
    (lambda: metric_ops.confusion_matrix([0, 1], [0, -1], [1, 1], 5), ValueError,
     "predictions in"),
    (lambda: metric_ops.confusion_matrix([0, 1], [0, 1], [1], 5), ValueError, "weight"),
])
def test_bad_arguments_are_refused(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()

"""Keras's accuracy metrics as (correct, total) counts, per position on image outputs, and the
rules by which "accuracy" resolves to one of them."""
import numpy as np
import pytest

from fastcnn import losses, metrics


@pytest.mark.parametrize("shape", [(12, 1), (12, 3), (4, 5, 6, 1), (4, 5, 6, 2)])
def test_binary_accuracy_counts_every_value(shape, rng):
    y_pred = rng.random(shape)
    y_true = (rng.random(shape) > 0.5).astype(np.float32)
    y_true.flat[0] = 0.5  # a target that is neither 0 nor 1 never matches
    for threshold in (0.5, 0.3):
        expected = sum(float(t) == float(p > threshold) for t, p in zip(y_true.flat, y_pred.flat))
        assert metrics.binary_accuracy(y_true, y_pred, threshold) == (expected, y_pred.size)
    if shape[-1] == 1:  # targets without the axis of one unit
        assert metrics.binary_accuracy(y_true[..., 0], y_pred) == \
            metrics.binary_accuracy(y_true, y_pred)


@pytest.mark.parametrize("shape", [(20, 4), (3, 5, 6, 4)])
def test_categorical_accuracies_count_positions(shape, rng):
    y_pred = rng.random(shape)
    y_pred[(0,) * (len(shape) - 1)] = [0.7, 0.2, 0.7, 0.1]  # a tie: the first maximum wins
    labels = rng.integers(0, 4, shape[:-1])
    labels[(0,) * (len(shape) - 1)] = 0
    positions = labels.size
    rows, row_labels = y_pred.reshape(-1, 4), labels.reshape(-1)
    expected = sum(int(np.argmax(row) == label) for row, label in zip(rows, row_labels))
    assert 0 < expected < positions
    assert metrics.sparse_categorical_accuracy(labels, y_pred) == (expected, positions)
    assert metrics.sparse_categorical_accuracy(labels[..., None], y_pred) == (expected, positions)
    assert metrics.sparse_categorical_accuracy(labels.astype(np.float32), y_pred) == \
        (expected, positions)
    onehot = np.eye(4)[labels]
    assert metrics.categorical_accuracy(onehot, y_pred) == (expected, positions)


def test_metric_targets_are_checked(rng):
    y_pred = rng.random((2, 4, 5, 3))
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4, 5\) for sparse_categorical"):
        metrics.sparse_categorical_accuracy(np.zeros((2, 4)), y_pred)
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4, 5, 3\) for categorical"):
        metrics.categorical_accuracy(np.zeros((2, 4, 5)), y_pred)
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4, 5, 3\) for binary"):
        metrics.binary_accuracy(np.zeros((2, 5, 4, 3)), y_pred)


def _binary_threshold(count):
    """The threshold of a resolved binary accuracy, seen from its counts: an output of 0.3 with a
    target of 1 is right under threshold 0 and wrong under 0.5."""
    assert count.func is metrics.binary_accuracy
    right = count(np.ones((1, 1)), np.full((1, 1), 0.3))[0]
    return 0.0 if right else 0.5


@pytest.mark.parametrize("loss,output_shape,target_shape", [
    (losses.BinaryCrossentropy(), (1,), ()),          # a one-unit sigmoid, targets (N,)
    (losses.BinaryCrossentropy(), (1,), (1,)),
    (losses.MeanSquaredError(), (1,), (1,)),          # one unit, whatever the loss
    (losses.BinaryCrossentropy(), (5,), (5,)),        # multi-label
    (losses.BinaryCrossentropy(), (8, 8, 1), (8, 8, 1)),  # per-pixel masks
    (losses.BinaryCrossentropy(), (8, 8, 3), (8, 8, 3)),
    (losses.MeanSquaredError(), (8, 8, 1), (8, 8, 1)),
])
def test_binary_resolution(loss, output_shape, target_shape):
    count = metrics.resolve_accuracy(loss, output_shape, target_shape)
    assert _binary_threshold(count) == 0.5


def test_binary_threshold_on_logits_is_zero():
    for output_shape in [(1,), (4,), (8, 8, 1)]:
        count = metrics.resolve_accuracy(losses.BinaryCrossentropy(from_logits=True),
                                         output_shape, output_shape)
        assert _binary_threshold(count) == 0.0


@pytest.mark.parametrize("loss,output_shape,target_shape,expected", [
    (losses.SparseCategoricalCrossentropy(), (10,), (), "sparse"),          # labels (N,)
    (losses.SparseCategoricalCrossentropy(), (10,), (1,), "sparse"),        # labels (N, 1)
    (losses.SparseCategoricalCrossentropy(), (8, 8, 4), (8, 8), "sparse"),  # per-pixel labels
    (losses.SparseCategoricalCrossentropy(), (8, 8, 4), (8, 8, 1), "sparse"),
    (losses.MulticlassHinge(), (10,), (), "sparse"),
    (losses.CategoricalCrossentropy(), (10,), (10,), "categorical"),        # one-hot
    (losses.CategoricalCrossentropy(), (8, 8, 4), (8, 8, 4), "categorical"),
    (losses.MeanSquaredError(), (10,), (10,), "categorical"),
    (losses.CategoricalHinge(), (10,), (10,), "categorical"),
])
def test_categorical_resolution(loss, output_shape, target_shape, expected):
    count = metrics.resolve_accuracy(loss, output_shape, target_shape)
    assert count is {"sparse": metrics.sparse_categorical_accuracy,
                     "categorical": metrics.categorical_accuracy}[expected]


def test_resolved_metric_takes_the_checked_targets(rng):
    """The shapes given to resolve_accuracy are those check_targets returns, the arrays the
    resolved function then counts: the count matches the argmax formula."""
    y_pred = rng.random((3, 4, 5, 6))
    labels = rng.integers(0, 6, (3, 4, 5, 1))
    for loss, y in [(losses.SparseCategoricalCrossentropy(), labels),
                    (losses.CategoricalCrossentropy(), np.eye(6)[labels[..., 0]])]:
        checked = loss.check_targets(y, y_pred.shape[1:])
        count = metrics.resolve_accuracy(loss, y_pred.shape[1:], checked.shape[1:])
        correct, total = count(checked, y_pred)
        assert total == 60
        assert correct == np.count_nonzero(y_pred.argmax(axis=-1) == labels[..., 0])

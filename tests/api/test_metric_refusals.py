"""Regressions from the fuzzer's sweep of fastcnn.metrics, fastcnn.optimizers, the schedules and
the TensorBoard callback (tests/api/fuzz.py --under ...): each call here once raised a raw
exception (AttributeError, IndexError, OverflowError, a bare NotImplementedError), hung, or
allocated far more memory than its argument called for, and must now be refused with ValueError
or TypeError naming the argument, or work as Keras does."""
import io
import time

import fuzz
import numpy as np
import pytest

from fastcnn import callbacks, metrics, optimizers, schedules

VAST = 10**400  # an int too large for a float
# A view of 2**43 values that costs no memory: a copy of it fits on no machine.
HUGE_VIEW = np.broadcast_to(np.float32(0.5), (2**40, 8))

FUNCTIONS = [metrics.accuracy, metrics.accuracy_metrics.binary_accuracy,
             metrics.accuracy_metrics.categorical_accuracy,
             metrics.accuracy_metrics.sparse_categorical_accuracy,
             metrics.top_k_categorical_accuracy, metrics.sparse_top_k_categorical_accuracy,
             metrics.mean_squared_error, metrics.mean_absolute_error,
             metrics.mean_absolute_percentage_error, metrics.mean_squared_logarithmic_error,
             metrics.cosine_similarity]


# ---- y_true and y_pred that are no arrays of numbers ---------------------------------------

@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.__name__)
@pytest.mark.parametrize("bad", ["bogus", {"a": 1}, [None, None], object()],
                         ids=["str", "dict", "nones", "object"])
def test_metric_functions_refuse_targets_that_hold_no_numbers(fn, bad):
    """Once AttributeError ('str' object has no attribute 'shape')."""
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    with pytest.raises(TypeError, match="Expected y_true to hold real numbers"):
        fn(bad, y)
    with pytest.raises(TypeError, match="Expected y_pred to hold real numbers"):
        fn(y, bad)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda fn: fn.__name__)
def test_metric_functions_take_lists_as_keras_does(fn):
    """Lists are arrays to Keras's functions: the same values as from arrays."""
    y_true = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    if "sparse" in fn.__name__:
        y_true = np.array([0, 1, 2, 0])
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]],
                      np.float32)
    np.testing.assert_array_equal(fn(y_true.tolist(), y_pred.tolist()), fn(y_true, y_pred))


@pytest.mark.parametrize("fn", [metrics.accuracy_metrics.categorical_accuracy,
                                metrics.accuracy_metrics.sparse_categorical_accuracy,
                                metrics.top_k_categorical_accuracy,
                                metrics.sparse_top_k_categorical_accuracy],
                         ids=lambda fn: fn.__name__)
def test_categorical_functions_refuse_a_scalar_prediction(fn):
    """Once IndexError (the classes' axis of a 0-d array)."""
    with pytest.raises(ValueError, match="last axis of classes"):
        fn(np.array(0.0), np.array(0.0))


@pytest.mark.parametrize("metric", [metrics.Accuracy(), metrics.AUC(), metrics.Precision(),
                                    metrics.FBetaScore(), metrics.R2Score(), metrics.IoU(3, [0]),
                                    metrics.RootMeanSquaredError(), metrics.CosineSimilarity()],
                         ids=lambda m: type(m).__name__)
def test_metric_objects_refuse_targets_that_hold_no_numbers(metric):
    with pytest.raises(TypeError, match="y_true"):
        metric.update_state("bogus", np.zeros((2, 3)))


# ---- the abstract base ------------------------------------------------------------------

@pytest.mark.parametrize("method", ["update_state", "result"])
def test_the_metric_base_says_what_a_subclass_must_define(method):
    """Once a NotImplementedError without a message."""
    with pytest.raises(NotImplementedError, match="a subclass of Metric defines update_state "
                                                  "and result"):
        getattr(metrics.Metric(), method)()


# ---- ints too large for a float, or for a C integer --------------------------------------

@pytest.mark.parametrize("make", [
    lambda: metrics.FBetaScore(beta=VAST),
    lambda: metrics.BinaryIoU(threshold=VAST),
    lambda: metrics.Variable((), VAST, "float32", "v"),
    lambda: metrics.Variable((2,), None, "float32", "v").assign(VAST),
    lambda: metrics.Variable((2,), None, "float32", "v").assign_add(VAST),
    lambda: metrics.MeanIoU(num_classes=2**70),
    lambda: metrics.Variable((2**70,), None, "float32", "v"),
    lambda: metrics.CosineSimilarity(axis=2**70),
    lambda: metrics.cosine_similarity(np.ones((2, 3)), np.ones((2, 3)), axis=2**70),
    lambda: metrics.IoU(3, [0], axis=2**70),
    lambda: optimizers.Nadam().u_product(-2**63),
], ids=["fbeta_beta", "binary_iou_threshold", "variable_initializer", "variable_assign",
        "variable_assign_add", "mean_iou_classes", "variable_shape", "cosine_axis",
        "cosine_function_axis", "iou_axis", "nadam_step"])
def test_vast_ints_are_refused(make):
    """Once OverflowError (float() of the int, or NumPy's C long)."""
    with pytest.raises((ValueError, TypeError), match="Expected"):
        make()


def test_top_k_of_a_vast_k_counts_every_class():
    """Once OverflowError in the kernel's argument; any k from the number of classes up
    finds every target."""
    y_true = np.eye(3, dtype=np.float32)[[0, 1, 2]]
    y_pred = np.random.default_rng(0).random((3, 3)).astype(np.float32)
    for k in (3, 2**40, 2**70):
        np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(y_true, y_pred, k=k),
                                      np.ones(3))


# ---- hangs: a loop or a list as long as an argument -------------------------------------

@pytest.mark.parametrize("make", [
    lambda: metrics.AUC(num_thresholds=2**70),
    lambda: metrics.SensitivityAtSpecificity(0.5, num_thresholds=2**63),
    lambda: metrics.PrecisionAtRecall(0.5, num_thresholds=VAST),
], ids=["auc", "sensitivity", "precision_at_recall"])
def test_a_vast_number_of_thresholds_is_refused_at_once(make):
    started = time.perf_counter()
    with pytest.raises(ValueError, match="num_thresholds to fit in memory"):
        make()
    assert time.perf_counter() - started < 1


def test_evenly_spaced_thresholds_are_keras_values():
    """Computed as whole arrays, the thresholds are still Keras's (i + 1) / (n - 1)."""
    n = 201
    expected = [-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7]
    assert metrics.AUC(num_thresholds=n).thresholds == expected


def test_nadam_momentum_product_at_any_step():
    """Once a loop of step iterations (a hang at step 2**63: the product sticks at the smallest
    subnormal rather than reaching 0). The product of u_t = beta_1 (1 - 0.96^t / 2)."""
    nadam = optimizers.Nadam(beta_1=0.9)
    expected = 1.0
    for step in range(1, 2001):
        expected *= 0.9 * (1 - 0.5 * 0.96**step)
        assert nadam.u_product(step) == pytest.approx(expected, rel=1e-13, abs=0)
    started = time.perf_counter()
    assert nadam.u_product(2**63) == 0.0
    assert nadam.u_product(VAST) == 0.0
    assert time.perf_counter() - started < 1


# ---- arrays where a string, a number or a list was expected -----------------------------

@pytest.mark.parametrize("make, name", [
    (lambda: metrics.AUC(curve=np.zeros((2, 2))), "curve"),
    (lambda: metrics.AUC(summation_method=HUGE_VIEW), "summation_method"),
    (lambda: metrics.R2Score(class_aggregation=HUGE_VIEW), "class_aggregation"),
    (lambda: metrics.FBetaScore(average=np.array(["micro"])), "average"),
    (lambda: metrics.TruePositives(thresholds=HUGE_VIEW), "thresholds"),
    (lambda: metrics.AUC(thresholds=[[0.5]]), "thresholds"),
    (lambda: metrics.AUC(label_weights=HUGE_VIEW), "label_weights"),
    (lambda: metrics.BinaryIoU(target_class_ids=HUGE_VIEW), "target_class_ids"),
    (lambda: metrics.Variable(HUGE_VIEW, None, "float32", "v"), "shape"),
    (lambda: callbacks.TensorBoard(update_freq=HUGE_VIEW), "update_freq"),
], ids=["auc_curve", "auc_summation", "r2_aggregation", "fbeta_average", "thresholds",
        "nested_thresholds", "label_weights", "target_class_ids", "variable_shape",
        "tensorboard_update_freq"])
def test_an_array_is_not_compared_or_listed_element_by_element(make, name):
    """Once MemoryError (``array in (...)`` compares every element; ``list(array)`` lists its
    rows) or a hang."""
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: schedules.PiecewiseConstantDecay(HUGE_VIEW, [0.1, 0.2]), "boundaries"),
    (lambda: schedules.PiecewiseConstantDecay([1], "ab"), "values"),
    (lambda: optimizers.SGD().apply([np.zeros(2, np.float32)], HUGE_VIEW), "grads"),
    (lambda: metrics.LossMetric.from_config(HUGE_VIEW), "config"),
], ids=["boundaries", "values", "grads", "loss_metric_config"])
def test_what_must_be_a_list_or_dict_is_not_iterated_when_it_is_not(make, name):
    with pytest.raises(TypeError, match=name):
        make()


def test_piecewise_constant_decay_takes_lists_tuples_and_vectors():
    for boundaries in ([10, 20], (10, 20), np.array([10, 20])):
        schedule = schedules.PiecewiseConstantDecay(boundaries, [1.0, 0.5, 0.1])
        assert [schedule(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]


@pytest.mark.parametrize("update", [
    lambda: metrics.Mean().update_state(HUGE_VIEW),
    lambda: metrics.Accuracy().update_state(HUGE_VIEW, HUGE_VIEW),
    lambda: metrics.mean_squared_error(HUGE_VIEW, HUGE_VIEW),
    lambda: metrics.sparse_categorical_accuracy(HUGE_VIEW[..., 0], HUGE_VIEW),
], ids=["mean", "accuracy", "mse", "training_counts"])
def test_inputs_whose_float64_copy_fits_nowhere_are_refused(update):
    """Broadcast views cost nothing until the metric copies them."""
    with pytest.raises(ValueError, match="to fit in memory"):
        update()


# ---- the sweep itself --------------------------------------------------------------------

def test_a_sweep_of_these_modules_is_clean():
    """A short run of the long ones (fuzz.py --only public_call --under fastcnn.metrics ...)."""
    report = fuzz.run(calls=300, seed=20261206, only="public_call", stream=io.StringIO(),
                      under=("fastcnn.metrics", "fastcnn.optimizers", "fastcnn.schedules",
                             "fastcnn.callbacks.TensorBoard"))
    text = fuzz.format_report(report)
    assert report["calls"] == 300, text
    assert not report["crashes"] and not report["counts"]["internal"], text
    assert not report["counts"]["fuzzer-bug"] and not report["counts"]["memory"], text

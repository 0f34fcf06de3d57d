"""fastcnn.metrics' objects: the Metric protocol, the weighted means (accuracies, regression
errors, losses as metrics), get() of every name and alias, resolve() for compile, and configs.

Each value is checked against its formula written out here: a weighted mean is sum(w v) /
sum(w) over the predictions."""
import numpy as np
import pytest

from fastcnn import losses, metrics


def weighted_mean(values, weights):
    values, weights = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    return (values * weights).sum() / weights.sum()


def test_mean_is_the_weighted_mean_and_resets():
    m = metrics.Mean()
    assert m.result() == 0.0 and m.name == "mean" and m.dtype == "float32"
    m.update_state([1.0, 2.0, 3.0])
    m.update_state([[5.0, 7.0]])  # one sample of two values: its mean
    assert m.result() == pytest.approx((1 + 2 + 3 + 6) / 4)
    m.reset_state()
    m.update_state([1.0, 2.0, 3.0], sample_weight=[1.0, 0.0, 3.0])
    assert m.result() == pytest.approx(10 / 4)
    assert isinstance(m.result(), float)


def test_sum_is_the_weighted_sum(rng):
    values, weights = rng.random((4, 3)), rng.random(4)
    m = metrics.Sum()
    m.update_state(values, weights)
    m.update_state([1.0, 2.0])
    assert m.result() == pytest.approx((values * weights[:, None]).sum() + 3)
    assert metrics.get("sum").name == "sum"
    m.reset_state()
    assert m.result() == 0.0


def test_per_value_weights_give_the_weighted_mean_over_every_value(rng):
    values, weights = rng.random((4, 3, 5)), rng.random((4, 3, 5))
    m = metrics.Mean()
    m.update_state(values, weights)
    assert m.result() == pytest.approx(weighted_mean(values, weights))
    per_sample = metrics.Mean()
    per_sample.update_state(values, weights[:, 0, 0])
    assert per_sample.result() == pytest.approx(
        weighted_mean(values.reshape(4, -1).mean(1), weights[:, 0, 0]))
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(values, np.ones(3))


class PositivesAbove(metrics.Metric):
    """A metric written as Keras's guide writes one: state in variables, no reset_state."""

    def __init__(self, cut=0.5, name="positives_above", **kwargs):
        super().__init__(name=name, **kwargs)
        self.cut = cut
        self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")
        self.seen = self.add_weight(name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        above = (np.asarray(y_pred) > self.cut) & (np.asarray(y_true) == 1)
        self.hits.assign_add(np.sum(above))
        self.seen.assign(self.seen + len(y_pred))

    def result(self):
        return self.hits / np.maximum(self.seen, 1)

    def get_config(self):
        return {**super().get_config(), "cut": self.cut}


def test_a_keras_style_subclass_keeps_its_state_in_variables():
    m = PositivesAbove(cut=0.4)
    assert float(m([1, 0, 1, 1], [0.5, 0.9, 0.3, 0.8])) == 0.5
    assert float(m([1], [0.6])) == pytest.approx(3 / 5)
    assert [v.name for v in m.variables] == ["hits", "seen"] and m.hits.numpy() == 3
    m.reset_state()
    assert float(m.hits) == 0 and float(m.seen) == 0 and m.dtype == "float32"
    clone = metrics.deserialize(metrics.serialize(m), custom_objects={"PositivesAbove":
                                                                      PositivesAbove})
    assert type(clone) is PositivesAbove and clone.cut == 0.4 and clone.name == m.name

    class Forgetful(metrics.Metric):
        def __init__(self):
            self.total = self.add_variable()

    with pytest.raises(RuntimeError, match=r"super\(\).__init__\(\)"):
        Forgetful()


def test_call_updates_then_returns_the_running_result():
    m = metrics.BinaryAccuracy()
    assert m([[1], [0]], [[0.9], [0.8]]) == 0.5
    assert m([[1], [1]], [[0.9], [0.8]]) == 0.75  # over both batches, as Keras 3


@pytest.mark.parametrize("shape", [(12, 1), (12, 3), (4, 5, 6, 2)])
def test_binary_accuracy_thresholds_every_value(shape, rng):
    y_pred, y_true = rng.random(shape), (rng.random(shape) > 0.5).astype(np.float32)
    for threshold in (0.5, 0.3):
        want = np.mean([t == float(p > threshold) for t, p in zip(y_true.flat, y_pred.flat)])
        m = metrics.BinaryAccuracy(threshold=threshold)
        assert m(y_true, y_pred) == pytest.approx(want)
    if shape[-1] == 1:  # targets without the axis of one unit
        assert metrics.BinaryAccuracy()(y_true[..., 0], y_pred) == \
            metrics.BinaryAccuracy()(y_true, y_pred)
        # the function form matches the ranks as the metric does
        np.testing.assert_array_equal(metrics.binary_accuracy(y_true[..., 0], y_pred),
                                      metrics.binary_accuracy(y_true, y_pred))


@pytest.mark.parametrize("shape", [(20, 4), (3, 5, 6, 4)])
def test_categorical_accuracies_and_top_k(shape, rng):
    y_pred = rng.random(shape)
    first = (0,) * (len(shape) - 1)
    y_pred[first] = [0.7, 0.2, 0.7, 0.1]  # a tie for the largest: the first wins
    labels = rng.integers(0, 4, shape[:-1])
    labels[first] = 0
    rows, flat = y_pred.reshape(-1, 4), labels.reshape(-1)
    onehot = np.eye(4)[labels]
    want = np.mean([np.argmax(r) == t for r, t in zip(rows, flat)])
    assert metrics.SparseCategoricalAccuracy()(labels, y_pred) == pytest.approx(want)
    assert metrics.SparseCategoricalAccuracy()(labels[..., None], y_pred) == pytest.approx(want)
    assert metrics.CategoricalAccuracy()(onehot, y_pred) == pytest.approx(want)
    for k in (1, 2, 3):  # in the top k: fewer than k outputs above the target's
        want_k = np.mean([(r > r[t]).sum() < k for r, t in zip(rows, flat)])
        assert metrics.SparseTopKCategoricalAccuracy(k=k)(labels, y_pred) == pytest.approx(want_k)
        assert metrics.TopKCategoricalAccuracy(k=k)(onehot, y_pred) == pytest.approx(want_k)
    assert metrics.TopKCategoricalAccuracy()(onehot, y_pred) == 1.0  # k=5 >= 4 classes
    ids = np.argsort(-y_pred, axis=-1, kind="stable")[..., :3]  # best first, ties to the first
    for k in (1, 2, 3):
        want_k = np.mean([t in row[:k] for row, t in zip(ids.reshape(-1, 3), flat)])
        m = metrics.SparseTopKCategoricalAccuracy(k=k, from_sorted_ids=True)
        assert m(labels, ids) == pytest.approx(want_k)


def test_accuracy_compares_exactly():
    assert metrics.Accuracy()([[1], [2], [3], [4]], [[0], [2], [3], [4]]) == 0.75


def test_targets_of_the_wrong_shape_are_refused(rng):
    y_pred = rng.random((2, 4, 5, 3))
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4, 5\)"):
        metrics.SparseCategoricalAccuracy().update_state(np.zeros((2, 4)), y_pred)
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4, 5, 3\)"):
        metrics.CategoricalAccuracy().update_state(np.zeros((2, 5, 4, 3)), y_pred)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        metrics.SparseTopKCategoricalAccuracy().update_state(np.full((2, 4, 5), 3), y_pred)
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryAccuracy(threshold=float("nan"))
    with pytest.raises(ValueError, match="dtype"):
        metrics.Mean(dtype="int32")


def test_regression_errors(rng):
    y_true, y_pred, w = rng.random((6, 4)), rng.random((6, 4)), rng.random(6)
    d = y_pred - y_true
    cases = [(metrics.MeanSquaredError(), (d ** 2).mean(1)),
             (metrics.MeanAbsoluteError(), np.abs(d).mean(1))]
    for m, per_sample in cases:
        assert m(y_true, y_pred) == pytest.approx(per_sample.mean())
        m.reset_state()
        assert m(y_true, y_pred, sample_weight=w) == pytest.approx(weighted_mean(per_sample, w))
    rmse = metrics.RootMeanSquaredError()
    assert rmse(y_true, y_pred, w) == pytest.approx(np.sqrt(weighted_mean((d ** 2).mean(1), w)))
    y_true[0, 0] = 0.0  # |y_true| below 1e-7 counts as 1e-7
    mape = 100 * (np.abs(y_pred - y_true) / np.maximum(np.abs(y_true), 1e-7)).mean(1)
    assert metrics.MeanAbsolutePercentageError()(y_true, y_pred) == pytest.approx(mape.mean())
    msle = ((np.log(1 + y_pred) - np.log(1 + np.maximum(y_true, 1e-7))) ** 2).mean(1)
    assert metrics.MeanSquaredLogarithmicError()(y_true, y_pred, w) == \
        pytest.approx(weighted_mean(msle, w))
    cosines = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(y_true, y_pred)]
    assert metrics.CosineSimilarity()(y_true, y_pred) == pytest.approx(np.mean(cosines))
    assert metrics.CosineSimilarity(axis=0)(y_true, y_pred) == pytest.approx(np.mean(
        [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(y_true.T, y_pred.T)]))


@pytest.mark.parametrize("aggregation,sk_name", [
    ("uniform_average", "uniform_average"), ("variance_weighted_average", "variance_weighted"),
    (None, "raw_values")])
def test_r2_score(aggregation, sk_name, rng):
    y_true = rng.random((40, 3)) * [1, 2, 3]
    y_pred, w = y_true + rng.standard_normal((40, 3)) * 0.3, rng.random(40)
    m = metrics.R2Score(class_aggregation=aggregation)
    for part in np.array_split(np.arange(40), 3):
        m.update_state(y_true[part], y_pred[part], w[part])
    mean = (w[:, None] * y_true).sum(0) / w.sum()
    raw = 1 - (w[:, None] * (y_true - y_pred) ** 2).sum(0) / (w[:, None] * (y_true - mean) ** 2
                                                              ).sum(0)
    total = (w[:, None] * (y_true - mean) ** 2).sum(0)
    want = {"uniform_average": raw.mean(), "variance_weighted_average":
            (raw * total).sum() / total.sum(), None: raw}[aggregation]
    np.testing.assert_allclose(m.result(), want, rtol=1e-10)
    assert metrics.deserialize(metrics.serialize(m)).get_config() == m.get_config()
    sk = pytest.importorskip("sklearn.metrics")
    np.testing.assert_allclose(m.result(), sk.r2_score(y_true, y_pred, sample_weight=w,
                                                       multioutput=sk_name), rtol=1e-10)
    adjusted = metrics.R2Score(class_aggregation=aggregation, num_regressors=4)
    adjusted.update_state(y_true, y_pred, w)
    n = y_true.size  # every target value counts, as in Keras
    np.testing.assert_allclose(adjusted.result(), 1 - (1 - np.asarray(want)) * (n - 1) /
                               (n - 4 - 1), rtol=1e-10)
    with pytest.warns(UserWarning, match="degrees of freedom"):
        metrics.R2Score(num_regressors=200)(y_true[:2], y_pred[:2])


def test_losses_as_metrics_average_the_per_sample_losses(rng):
    logits = rng.standard_normal((8, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels, w = rng.integers(0, 5, 8), rng.random(8)
    per_sample = -np.log(probs[np.arange(8), labels])
    m = metrics.SparseCategoricalCrossentropy(from_logits=True)
    assert m(labels, logits, sample_weight=w) == pytest.approx(weighted_mean(per_sample, w),
                                                               rel=1e-5)
    assert metrics.CategoricalCrossentropy()(np.eye(5)[labels], probs) == \
        pytest.approx(per_sample.mean(), rel=1e-5)
    p, t = rng.random((8, 3)), (rng.random((8, 3)) > 0.5).astype(float)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(1)
    assert metrics.BinaryCrossentropy()(t, p) == pytest.approx(bce.mean(), rel=1e-5)
    custom = metrics.get(losses.MeanSquaredError())
    assert isinstance(custom, metrics.LossMetric)
    assert custom(t, p) == pytest.approx(((p - t) ** 2).mean(), rel=1e-5)
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(labels, logits, sample_weight=np.ones((8, 5)))


def make_batch(rng, metric):
    """Targets and outputs suiting a metric class."""
    name = type(metric).__name__
    if "Sparse" in name:
        return rng.integers(0, 4, 10), rng.random((10, 4))
    if name in ("Accuracy",):
        return rng.integers(0, 3, (10, 1)), rng.integers(0, 3, (10, 1))
    return np.eye(4)[rng.integers(0, 4, 10)], rng.random((10, 4)) * 0.98 + 0.01


EVERY_MEAN_METRIC = [metrics.Accuracy, metrics.BinaryAccuracy, metrics.CategoricalAccuracy,
                     metrics.SparseCategoricalAccuracy, metrics.TopKCategoricalAccuracy,
                     metrics.SparseTopKCategoricalAccuracy, metrics.MeanSquaredError,
                     metrics.MeanAbsoluteError, metrics.RootMeanSquaredError,
                     metrics.MeanAbsolutePercentageError, metrics.MeanSquaredLogarithmicError,
                     metrics.CosineSimilarity,
                     metrics.CategoricalCrossentropy, metrics.SparseCategoricalCrossentropy,
                     metrics.BinaryCrossentropy, metrics.CategoricalHinge]


@pytest.mark.parametrize("cls", EVERY_MEAN_METRIC, ids=lambda c: c.__name__)
def test_batches_accumulate_as_one_batch_and_configs_round_trip(cls, rng):
    batches = [make_batch(rng, cls()) for _ in range(3)]
    weights = [rng.random(10) for _ in batches]
    split, whole = cls(), cls()
    for (y, p), w in zip(batches, weights):
        split.update_state(y, p, sample_weight=w)
    whole.update_state(np.concatenate([b[0] for b in batches]),
                       np.concatenate([b[1] for b in batches]), np.concatenate(weights))
    assert split.result() == pytest.approx(whole.result(), rel=1e-6)
    clone = metrics.deserialize(metrics.serialize(split))
    assert type(clone) is cls and clone.get_config() == split.get_config()
    split.reset_state()
    assert split.result() == 0.0


# Keras's names: each class's name, its snake-case name, and the aliases.
NAMES = {
    "accuracy": metrics.Accuracy, "acc": metrics.Accuracy, "Accuracy": metrics.Accuracy,
    "binary_accuracy": metrics.BinaryAccuracy, "BinaryAccuracy": metrics.BinaryAccuracy,
    "categorical_accuracy": metrics.CategoricalAccuracy,
    "sparse_categorical_accuracy": metrics.SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": metrics.TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": metrics.SparseTopKCategoricalAccuracy,
    "precision": metrics.Precision, "Precision": metrics.Precision, "recall": metrics.Recall,
    "auc": metrics.AUC, "AUC": metrics.AUC, "f1_score": metrics.F1Score,
    "F1Score": metrics.F1Score, "f_beta_score": metrics.FBetaScore,
    "mean_squared_error": metrics.MeanSquaredError, "mse": metrics.MeanSquaredError,
    "MSE": metrics.MeanSquaredError, "mean_absolute_error": metrics.MeanAbsoluteError,
    "mae": metrics.MeanAbsoluteError, "MAE": metrics.MeanAbsoluteError,
    "root_mean_squared_error": metrics.RootMeanSquaredError, "mean": metrics.Mean,
    "mape": metrics.MeanAbsolutePercentageError, "MAPE": metrics.MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": metrics.MeanAbsolutePercentageError,
    "msle": metrics.MeanSquaredLogarithmicError, "MSLE": metrics.MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": metrics.MeanSquaredLogarithmicError,
    "cosine_similarity": metrics.CosineSimilarity, "true_positives": metrics.TruePositives,
    "false_positives": metrics.FalsePositives, "true_negatives": metrics.TrueNegatives,
    "false_negatives": metrics.FalseNegatives, "TruePositives": metrics.TruePositives,
    "r2_score": metrics.R2Score,
    "binary_crossentropy": metrics.BinaryCrossentropy, "bce": metrics.BinaryCrossentropy,
    "BCE": metrics.BinaryCrossentropy,
    "categorical_crossentropy": metrics.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": metrics.SparseCategoricalCrossentropy,
    "categorical_hinge": metrics.CategoricalHinge,
}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_get_knows_every_name(name):
    metric = metrics.get(name)
    assert type(metric) is NAMES[name]
    # a class name gives the default name, any other name keeps its spelling
    class_name = isinstance(getattr(metrics, name, None), type)
    assert metric.name == (NAMES[name]().name if class_name else name)


def test_get_of_objects_classes_functions_and_losses():
    m = metrics.AUC()
    assert metrics.get(m) is m
    assert type(metrics.get(metrics.Recall)) is metrics.Recall
    loss_metric = metrics.get("multiclass_hinge")  # a loss name
    assert isinstance(loss_metric, metrics.LossMetric) and loss_metric.name == "multiclass_hinge"

    def halves(y_true, y_pred):
        return np.abs(y_true - y_pred) / 2

    wrapped = metrics.get(halves)
    assert type(wrapped) is metrics.MeanMetricWrapper and wrapped.name == "halves"
    assert wrapped([[1.0], [3.0]], [[0.0], [0.0]]) == 1.0
    config = metrics.serialize(wrapped)
    clone = metrics.deserialize(config, custom_objects={"halves": halves})
    assert clone([[1.0], [3.0]], [[0.0], [0.0]]) == 1.0
    with pytest.raises(ValueError, match="custom_objects"):
        metrics.deserialize(config)
    with pytest.raises(ValueError, match="Unknown metric 'f2'"):
        metrics.get("f2")
    with pytest.raises(TypeError, match="Expected a metric"):
        metrics.get(3)


def threshold_of(metric):
    """A resolved binary accuracy's threshold, seen through its value: an output of 0.3 with a
    target of 1 is right under threshold 0 and wrong under 0.5."""
    assert type(metric) is metrics.BinaryAccuracy
    return 0.0 if metric(np.ones((1, 1)), np.full((1, 1), 0.3)) == 1.0 else 0.5


@pytest.mark.parametrize("loss,output_shape,target_shape,kind", [
    (losses.BinaryCrossentropy(), (1,), (), "binary"),          # a one-unit sigmoid
    (losses.BinaryCrossentropy(), (1,), (1,), "binary"),
    (losses.MeanSquaredError(), (1,), (1,), "binary"),          # one unit, whatever the loss
    (losses.BinaryCrossentropy(), (5,), (5,), "binary"),        # multi-label
    (losses.BinaryCrossentropy(), (8, 8, 1), (8, 8, 1), "binary"),
    (losses.BinaryCrossentropy(), (8, 8, 3), (8, 8, 3), "binary"),
    (losses.MeanSquaredError(), (8, 8, 1), (8, 8, 1), "binary"),  # per-pixel masks
    (losses.BinaryCrossentropy(from_logits=True), (4,), (4,), "binary"),
    (losses.SparseCategoricalCrossentropy(), (10,), (), "sparse"),
    (losses.SparseCategoricalCrossentropy(), (10,), (1,), "sparse"),
    (losses.SparseCategoricalCrossentropy(from_logits=True), (8, 8, 4), (8, 8), "sparse"),
    (losses.SparseCategoricalCrossentropy(), (8, 8, 4), (8, 8, 1), "sparse"),
    (losses.MulticlassHinge(), (10,), (), "sparse"),
    (losses.CategoricalCrossentropy(), (10,), (10,), "categorical"),
    (losses.CategoricalCrossentropy(from_logits=True), (8, 8, 4), (8, 8, 4), "categorical"),
    (losses.MeanSquaredError(), (3,), (3,), "categorical"),
])
@pytest.mark.parametrize("written", ["accuracy", "acc", "Accuracy", "crossentropy", "ce"])
def test_resolve_picks_the_variant_and_keeps_the_name(loss, output_shape, target_shape, kind,
                                                       written):
    metric = metrics.resolve(written, loss, output_shape, target_shape)
    assert metric.name == written
    if written.lower() in ("accuracy", "acc"):
        want = {"binary": metrics.BinaryAccuracy, "sparse": metrics.SparseCategoricalAccuracy,
                "categorical": metrics.CategoricalAccuracy}[kind]
        assert type(metric) is want
        if kind == "binary":
            assert threshold_of(metric) == (0.0 if loss.from_logits else 0.5)
    else:
        want = {"binary": metrics.BinaryCrossentropy,
                "sparse": metrics.SparseCategoricalCrossentropy,
                "categorical": metrics.CategoricalCrossentropy}[kind]
        assert type(metric) is want and metric.loss.from_logits == loss.from_logits


def test_resolved_accuracy_takes_the_checked_targets(rng):
    """The shapes given to resolve are those check_targets returns, the arrays the resolved
    metric then takes: its value matches the argmax formula."""
    y_pred = rng.random((3, 4, 5, 6))
    labels = rng.integers(0, 6, (3, 4, 5, 1))
    for loss, y in [(losses.SparseCategoricalCrossentropy(), labels),
                    (losses.CategoricalCrossentropy(), np.eye(6)[labels[..., 0]])]:
        checked = loss.check_targets(y, y_pred.shape[1:])
        metric = metrics.resolve("accuracy", loss, y_pred.shape[1:], checked.shape[1:])
        assert metric(checked, y_pred) == pytest.approx(
            np.count_nonzero(y_pred.argmax(axis=-1) == labels[..., 0]) / 60)


def test_resolve_names_other_metrics_as_written():
    loss = losses.CategoricalCrossentropy()
    assert metrics.resolve("mae", loss, (3,), (3,)).name == "mae"
    auc = metrics.resolve("AUC", loss, (3,), (3,))
    assert type(auc) is metrics.AUC and auc.name == "AUC"
    m = metrics.Precision(name="p")
    assert metrics.resolve(m, loss, (3,), (3,)) is m and m.name == "p"
    with pytest.raises(TypeError, match="Loss"):
        metrics.resolve("acc", "categorical_crossentropy", (3,), (3,))

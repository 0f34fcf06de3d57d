"""Precision, Recall, AUC, F1Score/FBetaScore and MeanIoU: against their formulas written out
here, and against scikit-learn where it is installed."""
import numpy as np
import pytest

from fastcnn import metrics


def counts_at(y_true, y_pred, weight, threshold):
    """Weighted (tp, fp, tn, fn): a prediction is positive when it exceeds the threshold."""
    pos = y_pred > threshold
    return ((weight * pos * y_true).sum(), (weight * pos * (1 - y_true)).sum(),
            (weight * ~pos * (1 - y_true)).sum(), (weight * ~pos * y_true).sum())


def binary_data(rng, n=500):
    y_true = (rng.random(n) > 0.6).astype(np.float64)
    y_pred = np.clip(0.4 * y_true + 0.6 * rng.random(n), 0, 1)
    return y_true, y_pred, rng.random(n)


@pytest.mark.parametrize("thresholds", [None, 0.3, [0.2, 0.5, 0.8]])
def test_precision_and_recall_at_thresholds(thresholds, rng):
    y_true, y_pred, w = binary_data(rng)
    p = metrics.Precision(thresholds=thresholds)
    r = metrics.Recall(thresholds=thresholds)
    p.update_state(y_true, y_pred, w)
    r.update_state(y_true, y_pred, w)
    ts = [0.5] if thresholds is None else np.atleast_1d(thresholds)
    want_p = [tp / (tp + fp) for tp, fp, _, _ in (counts_at(y_true, y_pred, w, t) for t in ts)]
    want_r = [tp / (tp + fn) for tp, _, _, fn in (counts_at(y_true, y_pred, w, t) for t in ts)]
    if len(ts) == 1:
        assert isinstance(p.result(), float)
        assert p.result() == pytest.approx(want_p[0]) and r.result() == pytest.approx(want_r[0])
    else:
        np.testing.assert_allclose(p.result(), want_p)
        np.testing.assert_allclose(r.result(), want_r)


def test_precision_recall_match_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    y_true, y_pred, w = binary_data(rng)
    for metric, fn in [(metrics.Precision(), sk.precision_score),
                       (metrics.Recall(), sk.recall_score)]:
        metric.update_state(y_true[:, None], y_pred[:, None], w)
        assert metric.result() == pytest.approx(fn(y_true, y_pred > 0.5, sample_weight=w))


def test_precision_recall_top_k_and_class_id():
    y_true = np.array([[0, 0, 1, 1], [1, 0, 0, 0]], np.float64)
    y_pred = np.array([[0.1, 0.9, 0.8, 0.8], [0.6, 0.6, 0.1, 0.0]])
    # top 2 of each row, ties to the first: row 0 keeps 1 and 2, row 1 keeps 0 and 1
    p = metrics.Precision(top_k=2)
    assert p(y_true, y_pred) == pytest.approx(2 / 4)
    r = metrics.Recall(top_k=2)
    assert r(y_true, y_pred) == pytest.approx(2 / 3)
    assert metrics.Precision(class_id=2)(y_true, y_pred) == 1.0  # column 2: 0.8 > 0.5, a hit
    assert metrics.Recall(class_id=3, top_k=2)(y_true, y_pred) == 0.0  # 0.8 lost the tie
    assert metrics.Precision()(np.zeros(3), np.zeros(3)) == 0.0  # no positives: 0, as Keras
    with pytest.raises(ValueError, match="class_id"):
        metrics.Precision(class_id=4).update_state(y_true, y_pred)
    with pytest.raises(ValueError, match=r"thresholds in \[0, 1\]"):
        metrics.Recall(thresholds=[0.5, 1.5])


def roc_area(y_true, y_pred, weight, thresholds):
    """Trapezoids under (false positive rate, true positive rate) at the thresholds."""
    c = np.array([counts_at(y_true, y_pred, weight, t) for t in thresholds])
    tp, fp, tn, fn = c.T
    x, y = fp / (fp + tn), tp / (tp + fn)
    return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2))


def test_auc_roc_is_the_trapezoid_area_and_matches_sklearn(rng):
    y_true, y_pred, w = binary_data(rng)
    y_pred = np.round(y_pred * 10) / 10  # on the thresholds of num_thresholds=11
    auc = metrics.AUC(num_thresholds=11)
    auc.update_state(y_true, y_pred, w)
    assert auc.thresholds[0] == -1e-7 and auc.thresholds[-1] == 1 + 1e-7
    assert auc.result() == pytest.approx(roc_area(y_true, y_pred, w, auc.thresholds))
    sk = pytest.importorskip("sklearn.metrics")
    # Every distinct score has its own threshold, so the trapezoids are sklearn's exactly.
    assert auc.result() == pytest.approx(sk.roc_auc_score(y_true, y_pred, sample_weight=w))
    fine = metrics.AUC(num_thresholds=1000)
    y_true, y_pred, w = binary_data(rng, 3000)
    fine.update_state(y_true, y_pred, w)
    assert fine.result() == pytest.approx(sk.roc_auc_score(y_true, y_pred, sample_weight=w),
                                          abs=2e-3)


def test_auc_summations_and_pr_interpolation(rng):
    y_true, y_pred, w = binary_data(rng, 300)
    thresholds = metrics.AUC(num_thresholds=20).thresholds
    c = np.array([counts_at(y_true, y_pred, w, t) for t in thresholds])
    tp, fp, _, fn = c.T
    recall, precision = tp / (tp + fn), np.divide(tp, tp + fp, out=np.zeros(20),
                                                  where=tp + fp > 0)
    for method, height in [("minoring", np.minimum), ("majoring", np.maximum)]:
        auc = metrics.AUC(num_thresholds=20, curve="PR", summation_method=method)
        auc.update_state(y_true, y_pred, w)
        want = np.sum((recall[:-1] - recall[1:]) * height(precision[:-1], precision[1:]))
        assert auc.result() == pytest.approx(want)
    # Davis-Goadrich: along a strip tp grows linearly in p = tp + fp; precision tp/p integrated
    # over recall = tp / positives, numerically here with fine steps.
    want = 0.0
    for i in range(19):
        a, b = (tp[i + 1], tp[i + 1] + fp[i + 1]), (tp[i], tp[i] + fp[i])
        if b[1] - a[1] <= 0:
            continue
        steps = np.linspace(a[1], b[1], 20001)
        t_along = a[0] + (b[0] - a[0]) * (steps - a[1]) / (b[1] - a[1])
        prec = np.divide(t_along, steps, out=np.zeros_like(steps), where=steps > 0)
        want += np.sum(np.diff(t_along) * (prec[1:] + prec[:-1]) / 2) / (tp[0] + fn[0])
    auc = metrics.AUC(num_thresholds=20, curve="PR")
    auc.update_state(y_true, y_pred, w)
    assert auc.result() == pytest.approx(want, rel=1e-4)


def test_auc_multi_label_label_weights_and_logits(rng):
    y_true = (rng.random((200, 3)) > 0.5).astype(float)
    y_pred = np.clip(0.3 * y_true + 0.7 * rng.random((200, 3)), 0, 1)
    per_label = []
    for j in range(3):
        one = metrics.AUC(num_thresholds=50)
        one.update_state(y_true[:, j], y_pred[:, j])
        per_label.append(one.result())
    multi = metrics.AUC(num_thresholds=50, multi_label=True)
    assert multi(y_true, y_pred) == pytest.approx(np.mean(per_label))
    weighted = metrics.AUC(num_thresholds=50, multi_label=True, label_weights=[1, 0, 3])
    assert weighted(y_true, y_pred) == pytest.approx((per_label[0] + 3 * per_label[2]) / 4)
    pooled = metrics.AUC(num_thresholds=50, label_weights=[1, 0, 3])  # one curve, 1:0:3
    flat = metrics.AUC(num_thresholds=50)
    flat.update_state(y_true, y_pred, np.broadcast_to([1.0, 0.0, 3.0], (200, 3)))
    assert pooled(y_true, y_pred) == pytest.approx(flat.result())
    with pytest.raises(ValueError, match="one per label weight"):
        weighted.update_state(y_true[:, :2], y_pred[:, :2])
    with pytest.raises(ValueError, match="multi-label"):
        multi.update_state(y_true[:, 0], y_pred[:, 0])
    logits = np.log(y_pred + 1e-3) - np.log1p(1e-3 - y_pred)
    assert metrics.AUC(num_thresholds=50, from_logits=True)(y_true, logits) == pytest.approx(
        metrics.AUC(num_thresholds=50)(y_true, 1 / (1 + np.exp(-logits))))


@pytest.mark.parametrize("make", [
    lambda: metrics.Precision(thresholds=[0.3, 0.6]), lambda: metrics.Recall(top_k=2),
    lambda: metrics.AUC(num_thresholds=30), lambda: metrics.AUC(curve="PR", multi_label=True),
    lambda: metrics.F1Score(average="macro"), lambda: metrics.F1Score(threshold=0.4),
    lambda: metrics.FBetaScore(beta=2.0, average="weighted"),
    lambda: metrics.MeanIoU(4, sparse_y_pred=False),
], ids=["precision", "recall_top_k", "auc", "auc_pr_multi", "f1_macro", "f1_threshold",
        "fbeta_weighted", "mean_iou"])
def test_batches_accumulate_as_one_batch_reset_and_round_trip(make, rng):
    y_true = np.eye(4)[rng.integers(0, 4, 90)]
    y_pred = rng.random((90, 4))
    w = rng.random(90)
    if isinstance(make(), metrics.MeanIoU):
        y_true = y_true.argmax(1)
    split, whole = make(), make()
    for part in np.array_split(np.arange(90), 3):
        split.update_state(y_true[part], y_pred[part], w[part])
    whole.update_state(y_true, y_pred, w)
    np.testing.assert_allclose(split.result(), whole.result(), rtol=1e-12)
    clone = metrics.deserialize(metrics.serialize(split))
    assert clone.get_config() == split.get_config()
    clone.update_state(y_true, y_pred, w)
    np.testing.assert_allclose(clone.result(), whole.result(), rtol=1e-12)
    split.reset_state()
    split.update_state(y_true[:10], y_pred[:10], w[:10])
    fresh = make()
    fresh.update_state(y_true[:10], y_pred[:10], w[:10])
    np.testing.assert_allclose(split.result(), fresh.result())


def f_beta(tp, fp, fn, beta):
    p, r = tp / (tp + fp), tp / (tp + fn)
    return (1 + beta ** 2) * p * r / (beta ** 2 * p + r)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_f_scores(average, rng):
    labels = rng.integers(0, 4, 300)
    y_true, y_pred, w = np.eye(4)[labels], rng.random((300, 4)), rng.random(300)
    y_pred[labels == 0, 0] += 0.3
    chosen = np.eye(4)[y_pred.argmax(1)]  # threshold None: the row's largest
    wt = w[:, None]
    tp, fp = (wt * chosen * y_true).sum(0), (wt * chosen * (1 - y_true)).sum(0)
    fn = (wt * (1 - chosen) * y_true).sum(0)
    for beta in (1.0, 0.5):
        m = metrics.FBetaScore(average=average, beta=beta)
        got = m(y_true, y_pred, sample_weight=w)
        per_class = f_beta(tp, fp, fn, beta)
        want = {None: per_class, "micro": f_beta(tp.sum(), fp.sum(), fn.sum(), beta),
                "macro": per_class.mean(),
                "weighted": (per_class * (w @ y_true) / w.sum()).sum()}[average]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    sk = pytest.importorskip("sklearn.metrics")
    f1 = metrics.F1Score(average=average, threshold=0.6)
    got = f1(y_true, y_pred, sample_weight=w)
    want = sk.f1_score(y_true, y_pred > 0.6, average=average, sample_weight=w, zero_division=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_f_score_arguments_are_checked():
    with pytest.raises(ValueError, match="average"):
        metrics.F1Score(average="samples")
    with pytest.raises(ValueError, match="beta"):
        metrics.FBetaScore(beta=0)
    with pytest.raises(ValueError, match="threshold"):
        metrics.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="samples, classes"):
        metrics.F1Score().update_state(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def test_mean_iou_against_its_formula_and_sklearn(rng):
    y_true, y_pred = rng.integers(0, 5, (6, 8, 8)), rng.integers(0, 5, (6, 8, 8))
    y_pred[y_true == 1] = 1
    w = rng.random(6)
    m = metrics.MeanIoU(num_classes=5)
    m.update_state(y_true, y_pred, w)
    cm = np.zeros((5, 5))
    np.add.at(cm, (y_true.ravel(), y_pred.ravel()), np.repeat(w, 64))
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert m.result() == pytest.approx(iou.mean(), rel=1e-6)
    sk = pytest.importorskip("sklearn.metrics")
    want = sk.jaccard_score(y_true.ravel(), y_pred.ravel(), average="macro",
                            sample_weight=np.repeat(w, 64))
    assert m.result() == pytest.approx(want, rel=1e-6)


def test_mean_iou_ignores_a_class_and_takes_scores():
    y_true = np.array([[0, 1, 255, 2]])
    scores = np.eye(3)[[[0, 1, 0, 0]]]  # predicted classes 0, 1, 0, 0
    m = metrics.MeanIoU(num_classes=3, ignore_class=255, sparse_y_pred=False)
    m.update_state(y_true, scores)
    # class 0: tp 1, union 2 (the 2 predicted as 0); class 1: 1/1; class 2: 0/1
    assert m.result() == pytest.approx((0.5 + 1 + 0) / 3, rel=1e-6)
    assert metrics.MeanIoU(3)(np.zeros(0, int), np.zeros(0, int)) == 0.0
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        metrics.MeanIoU(3).update_state([[0, 3]], [[0, 1]])


def test_confusion_counts_at_thresholds(rng):
    y_true, y_pred, w = binary_data(rng)
    for i, cls in enumerate([metrics.TruePositives, metrics.FalsePositives,
                             metrics.TrueNegatives, metrics.FalseNegatives]):
        assert cls()(y_true, y_pred, w) == pytest.approx(counts_at(y_true, y_pred, w, 0.5)[i])
        many = cls(thresholds=[0.2, 0.7])(y_true, y_pred)
        np.testing.assert_array_equal(many, [counts_at(y_true, y_pred, 1, t)[i]
                                             for t in (0.2, 0.7)])
        clone = metrics.deserialize(metrics.serialize(cls(thresholds=0.3)))
        assert clone.get_config()["thresholds"] == 0.3


def test_iou_of_chosen_classes_binary_and_one_hot(rng):
    y_true, y_pred = rng.integers(0, 4, 400), rng.integers(0, 4, 400)
    cm = np.zeros((4, 4))
    np.add.at(cm, (y_true, y_pred), 1)
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert metrics.IoU(4, [1, 3])(y_true, y_pred) == pytest.approx(iou[[1, 3]].mean(), rel=1e-6)
    assert metrics.IoU(4, 2)(y_true, y_pred) == pytest.approx(iou[2], rel=1e-6)
    onehot, scores = np.eye(4)[y_true], np.eye(4)[y_pred] + 0.1
    assert metrics.OneHotIoU(4, [0, 2])(onehot, scores) == pytest.approx(iou[[0, 2]].mean(),
                                                                          rel=1e-6)
    assert metrics.OneHotMeanIoU(4)(onehot, scores) == pytest.approx(iou.mean(), rel=1e-6)
    labels, probs = rng.integers(0, 2, 300), rng.random(300)
    predicted = (probs > 0.3).astype(int)
    binary = [((labels == c) & (predicted == c)).sum() / ((labels == c) | (predicted == c)).sum()
              for c in (0, 1)]
    assert metrics.BinaryIoU(threshold=0.3)(labels, probs) == pytest.approx(np.mean(binary),
                                                                             rel=1e-6)
    assert metrics.BinaryIoU([1], threshold=0.3)(labels, probs) == pytest.approx(binary[1],
                                                                                 rel=1e-6)
    for m in (metrics.IoU(4, [1, 3], ignore_class=0), metrics.BinaryIoU([0], threshold=0.2),
              metrics.OneHotIoU(3, [2]), metrics.OneHotMeanIoU(3, sparse_y_pred=True)):
        clone = metrics.deserialize(metrics.serialize(m))
        assert type(clone) is type(m) and clone.get_config() == m.get_config()
    with pytest.raises(ValueError, match="target_class_ids"):
        metrics.IoU(3, [3])


@pytest.mark.parametrize("cls,bound_rate,best_rate", [
    (metrics.SensitivityAtSpecificity, "specificity", "sensitivity"),
    (metrics.SpecificityAtSensitivity, "sensitivity", "specificity"),
    (metrics.PrecisionAtRecall, "sensitivity", "precision"),
    (metrics.RecallAtPrecision, "precision", "sensitivity"),
])
def test_best_rate_where_another_reaches_a_bound(cls, bound_rate, best_rate, rng):
    y_true, y_pred, w = binary_data(rng)
    thresholds = metrics.AUC(num_thresholds=50).thresholds  # the same spacing
    rates = {"sensitivity": [], "specificity": [], "precision": []}
    for t in thresholds:
        tp, fp, tn, fn = counts_at(y_true, y_pred, w, t)
        rates["sensitivity"].append(tp / (tp + fn))
        rates["specificity"].append(tn / (tn + fp))
        rates["precision"].append(tp / (tp + fp) if tp + fp else 0.0)
    for bound in (0.3, 0.8, 0.95):
        feasible = [b for a, b in zip(rates[bound_rate], rates[best_rate]) if a >= bound]
        m = cls(bound, num_thresholds=50)
        assert m(y_true, y_pred, w) == pytest.approx(max(feasible, default=0.0))
        clone = metrics.deserialize(metrics.serialize(m))
        assert clone.get_config() == m.get_config()
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        cls(1.5)

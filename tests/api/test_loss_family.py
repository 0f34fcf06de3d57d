"""The loss family of Keras 3: each loss against its formula (float64 NumPy, restated here) and
against PyTorch where it has the loss; reduction and sample_weight; label smoothing; gradients
of forward_backward by finite differences; function forms, names and configs; custom Loss
subclasses; and fit with each loss."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses
from conftest import numeric_grad

EPS = 1e-7


def _probabilities(rng, shape):
    p = rng.uniform(0.05, 1, shape)
    return p / p.sum(axis=-1, keepdims=True)


# name -> (loss, y_pred, y_true, the loss of each sample by the formula)
def formula_cases(rng):
    z = rng.standard_normal((6, 4)) * 2
    t = rng.random((6, 4))
    p = _probabilities(rng, (6, 4))
    onehot = np.eye(4)[rng.integers(0, 4, 6)]
    b = rng.uniform(0.02, 0.98, (6, 4))
    sig = 1 / (1 + np.exp(-z))
    counts = np.floor(t * 5)

    def bfce(prob, target, gamma, alpha=None):
        c = np.clip(prob, EPS, 1 - EPS)
        bce = -(target * np.log(c) + (1 - target) * np.log(1 - c))
        p_t = target * prob + (1 - target) * (1 - prob)
        w = 1 if alpha is None else target * alpha + (1 - target) * (1 - alpha)
        return (w * (1 - p_t) ** gamma * bce).mean(axis=-1)

    def cfce(prob, target, alpha, gamma):
        o = np.clip(prob / prob.sum(axis=-1, keepdims=True), EPS, 1 - EPS)
        return (alpha * (1 - o) ** gamma * -target * np.log(o)).sum(axis=-1)

    return {
        "mae": (losses.MeanAbsoluteError(), z, t, np.abs(z - t).mean(axis=-1)),
        "huber": (losses.Huber(delta=0.7), z, t,
                  np.where(np.abs(z - t) <= 0.7, (z - t) ** 2 / 2,
                           0.7 * np.abs(z - t) - 0.7 ** 2 / 2).mean(axis=-1)),
        "log_cosh": (losses.LogCosh(), z, t, np.log(np.cosh(z - t)).mean(axis=-1)),
        "kld": (losses.KLDivergence(), p, _probabilities(rng, (6, 4)), None),
        "poisson": (losses.Poisson(), b * 3, counts,
                    (b * 3 - counts * np.log(b * 3 + EPS)).mean(axis=-1)),
        "cce_smoothed": (losses.CategoricalCrossentropy(label_smoothing=0.2), p, onehot,
                         -((onehot * 0.8 + 0.2 / 4) * np.log(p)).sum(axis=-1)),
        "cce_logits_smoothed": (
            losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), z, onehot,
            -((onehot * 0.9 + 0.1 / 4) * (z - np.log(np.exp(z).sum(-1, keepdims=True))))
            .sum(axis=-1)),
        "bce_smoothed": (losses.BinaryCrossentropy(label_smoothing=0.3), b, np.round(t),
                         -((np.round(t) * 0.7 + 0.15) * np.log(b) +
                           (1 - (np.round(t) * 0.7 + 0.15)) * np.log(1 - b)).mean(axis=-1)),
        "cfce": (losses.CategoricalFocalCrossentropy(alpha=0.4, gamma=1.5), p, onehot,
                 cfce(p, onehot, 0.4, 1.5)),
        "cfce_logits": (losses.CategoricalFocalCrossentropy(alpha=[0.1, 0.2, 0.3, 0.4],
                                                            from_logits=True), z, onehot,
                        cfce(np.exp(z) / np.exp(z).sum(-1, keepdims=True), onehot,
                             np.array([0.1, 0.2, 0.3, 0.4]), 2.0)),
        "bfce": (losses.BinaryFocalCrossentropy(gamma=2.0), b, np.round(t),
                 bfce(b, np.round(t), 2.0)),
        "bfce_balanced_logits": (
            losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=0.5,
                                           from_logits=True, label_smoothing=0.1), z, t,
            bfce(sig, t * 0.9 + 0.05, 0.5, alpha=0.3)),
        "dice_per_sample": (losses.Dice(axis=(1,)), b, np.round(t),
                            1 - 2 * (b * np.round(t)).sum(-1) /
                            (b.sum(-1) + np.round(t).sum(-1) + EPS)),
    }


CASES = sorted(formula_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("case", CASES)
def test_each_loss_is_its_formula(case, rng):
    loss, y_pred, y_true, expected = formula_cases(rng)[case]
    if case == "kld":
        tc, pc = np.clip(y_true, EPS, 1), np.clip(y_pred, EPS, 1)
        expected = (tc * np.log(tc / pc)).sum(axis=-1)
    loss.dtype = "float64"  # the formula in double precision
    loss.reduction = "none"
    np.testing.assert_allclose(loss(y_true, y_pred), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_gradient_of_batch_loss_finite_differences(case, reduction, rng):
    """forward_backward's gradient is that of the mean of its per-sample shares, which is the
    batch loss of the reduction, sample weights included."""
    loss, y_pred, y_true, _ = formula_cases(rng)[case]
    loss.reduction = reduction
    y_true = loss.check_targets(y_true, y_pred.shape[1:]).astype(np.float64)
    weights = rng.uniform(0.1, 2, len(y_pred))
    shares, grad = np.empty(len(y_pred)), np.empty_like(y_pred)

    def batch_loss():
        loss.forward_backward(y_pred, y_true, False, np.empty_like(y_pred), shares, weights)
        return shares.mean()

    loss.forward_backward(y_pred, y_true, False, grad, shares, weights)
    loss.dtype = "float64"
    value = loss(y_true, y_pred, sample_weight=weights)
    assert shares.mean() == pytest.approx(value, rel=1e-12)
    # central differences lose about 1e-16 |loss| / 1e-6 to rounding
    np.testing.assert_allclose(grad, numeric_grad(batch_loss, y_pred), rtol=1e-6,
                               atol=1e-9 * max(1.0, abs(value)))


def test_reductions_and_sample_weights(rng):
    """Keras's reductions of the weighted losses: sum / count ("sum_over_batch_size", "mean"),
    sum, sum / sum of weights, or the weighted losses themselves ("none")."""
    y_pred, y_true = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    w = rng.uniform(0, 2, 5)
    per_sample = np.abs(y_pred - y_true).mean(axis=-1)
    expected = {"sum_over_batch_size": (per_sample * w).sum() / 5, "mean": (per_sample * w).sum() / 5,
                "sum": (per_sample * w).sum(),
                "mean_with_sample_weight": (per_sample * w).sum() / w.sum()}
    for reduction, value in expected.items():
        loss = losses.MeanAbsoluteError(reduction=reduction, dtype="float64")
        assert loss(y_true, y_pred, sample_weight=w) == pytest.approx(value, rel=1e-12)
    for reduction in ("none", None):
        loss = losses.MeanAbsoluteError(reduction=reduction, dtype="float64")
        np.testing.assert_allclose(loss(y_true, y_pred, sample_weight=w), per_sample * w)
    assert losses.MeanAbsoluteError(dtype="float64")(y_true, y_pred) == \
        pytest.approx(per_sample.mean(), rel=1e-12)


def test_sample_weights_per_position(rng):
    """Outputs (samples, positions, classes): one weight per sample covers its positions, or
    one per position; sum_over_batch_size divides by samples * positions."""
    y_pred = rng.standard_normal((4, 3, 2))
    labels = rng.integers(0, 2, (4, 3))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    logp = y_pred - np.log(np.exp(y_pred).sum(-1, keepdims=True))
    each = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    w = rng.uniform(0, 2, (4, 3))
    assert loss(labels, y_pred, sample_weight=w) == pytest.approx((each * w).sum() / 12)
    assert loss(labels, y_pred, sample_weight=w[:, 0]) == \
        pytest.approx((each * w[:, :1]).sum() / 12)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\) or \(4, 3\)"):
        loss(labels, y_pred, sample_weight=np.ones(5))


def test_keras_documented_values():
    """The values Keras's documentation gives for its examples."""
    t, p = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    assert losses.CategoricalCrossentropy()(np.array(t), np.array(p)) == pytest.approx(1.177, abs=1e-3)
    assert losses.CategoricalCrossentropy()(np.array(t), np.array(p), sample_weight=np.array(
        [0.3, 0.7])) == pytest.approx(0.814, abs=1e-3)
    assert losses.CategoricalCrossentropy(reduction="sum")(t, p) == pytest.approx(2.354, abs=1e-3)
    assert losses.CategoricalFocalCrossentropy()(t, p) == pytest.approx(0.23315276, rel=1e-5)
    np.testing.assert_allclose(losses.binary_focal_crossentropy(
        [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], gamma=2), [0.330, 0.206], atol=1e-3)
    assert losses.huber([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]).mean() == \
        pytest.approx(0.155, abs=1e-3)
    assert losses.log_cosh([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]).mean() == \
        pytest.approx(0.108, abs=1e-3)
    y_true = [[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]]
    y_pred = [[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]]
    np.testing.assert_allclose(losses.dice(y_true, y_pred, axis=(1, 2, 3)), [0.5, 0.75757575],
                               rtol=1e-6)
    assert float(losses.dice(y_true, y_pred)) == pytest.approx(0.6164384, rel=1e-6)


def test_dice_over_the_batch_is_one_loss(rng):
    p, t = rng.uniform(0.05, 0.95, (4, 3, 2)), np.round(rng.random((4, 3, 2)))
    whole = 1 - 2 * (p * t).sum() / (p.sum() + t.sum() + EPS)
    loss = losses.Dice(dtype="float64")
    assert loss(t, p) == pytest.approx(whole)
    w = rng.uniform(0.5, 2, 4)
    assert loss(t, p, sample_weight=w) == pytest.approx(whole * w.mean())
    shares, grad = np.empty(4), np.empty_like(p)

    def batch_loss():
        loss.forward_backward(p, t, False, np.empty_like(p), shares)
        return shares.mean()

    loss.forward_backward(p, t, False, grad, shares)
    np.testing.assert_allclose(shares, whole)
    np.testing.assert_allclose(grad, numeric_grad(batch_loss, p), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="axis=None or all the axes but the batch axis"):
        losses.Dice(axis=(1,))(t, p)


def test_torch_oracle(rng):
    torch = pytest.importorskip("torch")
    tt = lambda a: torch.tensor(a, dtype=torch.float64)
    z, t = rng.standard_normal((8, 5)) * 2, rng.standard_normal((8, 5))
    want = torch.nn.HuberLoss(delta=0.6)(tt(z), tt(t)).item()
    assert losses.Huber(0.6, dtype="float64")(t, z) == pytest.approx(want, rel=1e-12)
    p, q = _probabilities(rng, (8, 5)), _probabilities(rng, (8, 5))
    want = torch.nn.KLDivLoss(reduction="sum")(tt(np.log(p)), tt(q)).item() / 8
    assert losses.KLDivergence(dtype="float64")(q, p) == pytest.approx(want, rel=1e-9)
    rate, counts = rng.uniform(0.1, 3, (8, 5)), rng.poisson(1.5, (8, 5)).astype(float)
    want = torch.nn.PoissonNLLLoss(log_input=False, eps=1e-7)(tt(rate), tt(counts)).item()
    assert losses.Poisson(dtype="float64")(counts, rate) == pytest.approx(want, rel=1e-9)
    labels = rng.integers(0, 5, 8)
    want = torch.nn.CrossEntropyLoss(label_smoothing=0.2)(tt(z), torch.tensor(labels)).item()
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2, dtype="float64")(
        np.eye(5)[labels], z)
    assert got == pytest.approx(want, rel=1e-9)
    want = torch.nn.L1Loss()(tt(z), tt(t)).item()
    assert losses.MeanAbsoluteError(dtype="float64")(t, z) == pytest.approx(want, rel=1e-12)
    # torchvision's sigmoid focal loss, restated: alpha-balanced (1 - p_t)^gamma BCE
    logits, target = tt(z), tt(np.round(rng.random((8, 5))))
    prob = torch.sigmoid(logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    focal = (0.25 * target + 0.75 * (1 - target)) * (1 - p_t) ** 2 * bce
    got = losses.BinaryFocalCrossentropy(apply_class_balancing=True, from_logits=True,
                                         dtype="float64")(target.numpy(), z)
    assert got == pytest.approx(focal.mean().item(), rel=1e-6)


def test_names_aliases_and_function_forms(rng):
    for name, cls in [("mae", losses.MeanAbsoluteError), ("huber", losses.Huber),
                      ("kld", losses.KLDivergence), ("log_cosh", losses.LogCosh),
                      ("logcosh", losses.LogCosh), ("poisson", losses.Poisson),
                      ("dice", losses.Dice), ("huber_loss", losses.Huber),
                      ("categorical_focal_crossentropy", losses.CategoricalFocalCrossentropy),
                      ("binary_focal_crossentropy", losses.BinaryFocalCrossentropy),
                      ("MeanAbsoluteError", losses.MeanAbsoluteError)]:
        assert type(losses.get(name)) is cls
    assert type(losses.get(losses.mean_absolute_error)) is losses.MeanAbsoluteError
    assert losses.mae is losses.mean_absolute_error and losses.kld is losses.kl_divergence
    y_pred, y_true = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    np.testing.assert_allclose(losses.huber(y_true, y_pred, 0.5),
                               losses.Huber(0.5, reduction="none")(y_true, y_pred))
    with pytest.raises(ValueError, match="Unknown loss"):
        losses.get("not_a_loss")


@pytest.mark.parametrize("cls", losses.CLASSES)
def test_config_round_trip(cls):
    options = {losses.Huber: {"delta": 2.5}, losses.Dice: {"axis": (1, 2)},
               losses.CategoricalFocalCrossentropy: {"alpha": [0.2, 0.8], "gamma": 1.0},
               losses.BinaryFocalCrossentropy: {"apply_class_balancing": True, "alpha": 0.4},
               losses.CategoricalCrossentropy: {"label_smoothing": 0.1, "from_logits": True},
               losses.BinaryCrossentropy: {"label_smoothing": 0.2}}.get(cls, {})
    loss = cls(reduction="sum", name="mine", **options)
    again = losses.get(losses.serialize(loss))
    assert type(again) is cls and again.get_config() == loss.get_config()
    assert again.reduction == "sum" and again.name == "mine"
    assert cls.from_config(loss.get_config()).get_config() == loss.get_config()


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="reduction to be one of"):
        losses.MeanSquaredError(reduction="average")
    with pytest.raises(ValueError, match=r"label_smoothing in \[0, 1\]"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="axis=-1"):
        losses.BinaryCrossentropy(axis=1)
    with pytest.raises(ValueError, match="delta > 0"):
        losses.Huber(delta=-1)


class QuarticError(losses.Loss):
    def call(self, y_true, y_pred):
        return np.mean((y_pred - y_true) ** 4, axis=-1)

    def gradient(self, y_true, y_pred):
        return 4 * (y_pred - y_true) ** 3 / y_pred.shape[-1]


def test_custom_loss_subclass(rng):
    y_pred, y_true = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = QuarticError(reduction="sum", dtype="float64")
    assert loss(y_true, y_pred) == pytest.approx(((y_pred - y_true) ** 4).mean(-1).sum())
    shares, grad = np.empty(4), np.empty_like(y_pred)

    def batch_loss():
        loss.forward_backward(y_pred, y_true, False, np.empty_like(y_pred), shares)
        return shares.mean()

    loss.forward_backward(y_pred, y_true, False, grad, shares)
    np.testing.assert_allclose(grad, numeric_grad(batch_loss, y_pred), rtol=1e-6, atol=1e-9)

    class NoGradient(losses.Loss):
        def call(self, y_true, y_pred):
            return np.abs(y_pred - y_true).sum(axis=-1)

    with pytest.raises(NotImplementedError, match="gradient"):
        NoGradient()(y_true, y_pred)


def _fit_losses(loss, x, y, output_units, activation, epochs=8):
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([fastcnn.Input(shape=(x.shape[1],)),
                                layers.Dense(8, activation="relu"),
                                layers.Dense(output_units, activation=activation)])
    model.compile(fastcnn.optimizers.Adam(0.01), loss=loss)
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return before, history.history["loss"][-1], model.evaluate(x, y, verbose=0)


FIT_CASES = {
    "mae": ("linear", "regression"), "huber": ("linear", "regression"),
    "log_cosh": ("linear", "regression"), "poisson": ("softplus", "counts"),
    "kld": ("softmax", "distribution"), "categorical_focal_crossentropy": ("softmax", "onehot"),
    "binary_focal_crossentropy": ("sigmoid", "binary"), "dice": ("sigmoid", "binary"),
    "custom": ("linear", "regression"),
    "smoothed_cce": ("softmax", "onehot"), "smoothed_bce": ("sigmoid", "binary"),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_lowers_each_loss(case, rng):
    activation, kind = FIT_CASES[case]
    x = rng.standard_normal((96, 4)).astype(np.float32)
    score = x @ rng.standard_normal((4, 3))
    y = {"regression": score, "counts": np.floor(np.exp(score / 3)),
         "distribution": np.exp(score) / np.exp(score).sum(-1, keepdims=True),
         "onehot": np.eye(3)[score.argmax(-1)], "binary": (score > 0).astype(float)}[kind]
    loss = {"custom": QuarticError(),
            "smoothed_cce": losses.CategoricalCrossentropy(label_smoothing=0.1),
            "smoothed_bce": losses.BinaryCrossentropy(label_smoothing=0.1)}.get(case, case)
    before, last_epoch, after = _fit_losses(loss, x, y, 3, activation)
    assert np.isfinite(last_epoch) and after < 0.8 * before


def test_model_with_new_loss_saves_and_loads(rng, tmp_path):
    x = rng.standard_normal((16, 4)).astype(np.float32)
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(2)])
    model.compile("sgd", loss=losses.Huber(delta=0.3, reduction="sum"))
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = fastcnn.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, losses.Huber)
    assert loaded.loss.get_config() == model.loss.get_config()


def test_sparse_ignore_class(rng):
    """Keras's ignore_class: those positions have no loss and no gradient; "sum_over_batch_size"
    averages over the other positions, "sum" sums them."""
    logits = rng.standard_normal((3, 4, 5))
    labels = rng.integers(0, 5, (3, 4))
    labels[0, 1] = labels[2, 3] = 255
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    each = -np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0] * valid
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255,
                                                dtype="float64")
    assert loss(labels, logits) == pytest.approx(each.sum() / valid.sum(), rel=1e-12)
    loss.reduction = "sum"
    assert loss(labels, logits) == pytest.approx(each.sum(), rel=1e-12)
    loss.reduction = "sum_over_batch_size"
    shares, grad = np.empty(3), np.empty_like(logits)

    def batch_loss():
        loss.forward_backward(logits, labels, False, np.empty_like(logits), shares)
        return shares.mean()

    loss.forward_backward(logits, labels, False, grad, shares)
    assert shares.mean() == pytest.approx(each.sum() / valid.sum(), rel=1e-12)
    assert not grad[0, 1].any() and not grad[2, 3].any()
    np.testing.assert_allclose(grad, numeric_grad(batch_loss, logits), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"labels in \[0, 5\) \(or ignore_class=255\)"):
        loss(np.full((3, 4), 7), logits)
    assert losses.SparseCategoricalCrossentropy(ignore_class=-1).get_config()["ignore_class"] == -1


def test_one_sample_without_a_batch_axis():
    """Keras's losses take one sample's outputs (K,): its loss, unreduced or reduced alike."""
    assert losses.MeanSquaredError()([0.0, 1.0], [1.0, 1.0]) == pytest.approx(0.5)
    assert float(losses.mean_absolute_error([0.0, 1.0], [1.0, 1.0])) == pytest.approx(0.5)
    assert losses.SparseCategoricalCrossentropy()(1, [0.1, 0.9]) == pytest.approx(-np.log(0.9))

"""The losses (MSE, binary cross-entropy, categorical and multiclass hinge, and cross-entropy on
outputs of any rank): float64 gradient checks, Keras's formulas, a PyTorch oracle, the kernels'
rows, and accuracy in the model."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses
from fastcnn._ops import loss as loss_ops
from conftest import numeric_grad


def _loss_and_grad(loss, y_pred, y_true):
    grad, rows = np.empty_like(y_pred), np.empty(len(y_pred), y_pred.dtype)
    loss.forward_backward(y_pred, y_true, False, grad, rows)
    return rows.mean(), grad


GRADIENT_CASES = {
    "mse": lambda rng: (losses.MeanSquaredError(), rng.standard_normal((4, 3)),
                        rng.standard_normal((4, 3))),
    "bce": lambda rng: (losses.BinaryCrossentropy(), rng.uniform(0.05, 0.95, (4, 3)),
                        rng.random((4, 3))),
    "bce_logits": lambda rng: (losses.BinaryCrossentropy(from_logits=True),
                               rng.standard_normal((4, 3)) * 3, rng.random((4, 3))),
    "categorical_hinge": lambda rng: (losses.CategoricalHinge(), rng.standard_normal((6, 4)) * 0.3,
                                      np.eye(4)[rng.integers(0, 4, 6)]),
    "multiclass_hinge": lambda rng: (losses.MulticlassHinge(), rng.standard_normal((6, 4)),
                                     rng.integers(0, 4, 6)),
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradient_finite_differences(case, rng):
    loss, y_pred, y_true = GRADIENT_CASES[case](rng)
    _, grad = _loss_and_grad(loss, y_pred, y_true)
    numeric = numeric_grad(lambda: float(_loss_and_grad(loss, y_pred, y_true)[0]), y_pred)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    if "hinge" in case:  # the check says nothing unless some margins are active
        assert np.count_nonzero(grad) > 2


def test_hinge_margins_away_from_kinks(rng):
    """Guards the gradient check above: no hinge there sits within 1e-4 of its kink."""
    for case in ("categorical_hinge", "multiclass_hinge"):
        loss, y_pred, y_true = GRADIENT_CASES[case](rng)
        if case == "multiclass_hinge":
            rows = np.arange(len(y_pred))
            margins = y_pred - y_pred[rows, y_true][:, None] + 1
            margins[rows, y_true] = 10
        else:
            margins = ((1 - y_true) * y_pred).max(axis=1) - (y_true * y_pred).sum(axis=1) + 1
        assert np.all(np.abs(margins) > 1e-4)


def test_mse_is_keras_formula(rng):
    p, t = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 3))
    expected = np.mean(np.mean((p - t) ** 2, axis=-1))
    assert losses.get("mse")(t, p) == pytest.approx(expected, rel=1e-6)
    assert losses.get("mean_squared_error")(t, p) == pytest.approx(expected, rel=1e-6)


def test_binary_crossentropy_is_keras_formula(rng):
    p, t = rng.random((6, 2)).astype(np.float32), rng.random((6, 2)).astype(np.float32)
    p[0, 0], p[1, 1] = 0.0, 1.0
    clipped = np.clip(p.astype(np.float64), np.float32(1e-7), np.float32(1 - 1e-7))
    expected = np.mean(-np.mean(t * np.log(clipped) + (1 - t) * np.log(1 - clipped), axis=-1))
    assert losses.BinaryCrossentropy()(t, p) == pytest.approx(expected, rel=1e-6)
    _, grad = _loss_and_grad(losses.BinaryCrossentropy(), p, t)
    assert grad[0, 0] == 0 and grad[1, 1] == 0  # no gradient through the clip


def test_binary_crossentropy_from_logits_is_stable():
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], np.float32)
    t = np.array([[0.0, 1.0, 0.5, 0.0, 1.0]], np.float32)
    loss = losses.BinaryCrossentropy(from_logits=True)
    expected = np.mean([0.0, 50.0, np.log(2), 50.0, 0.0])
    assert loss(t, z) == pytest.approx(expected, rel=1e-6)
    _, grad = _loss_and_grad(loss, z, t)
    np.testing.assert_allclose(grad * 5, [[0, -1, 0, 1, 0]], atol=1e-7)


def test_categorical_hinge_is_keras_formula(rng):
    p = rng.standard_normal((7, 4)).astype(np.float32)
    t = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 7)]
    pos, neg = np.sum(t * p, axis=-1), np.max((1 - t) * p, axis=-1)
    expected = np.mean(np.maximum(0.0, neg - pos + 1.0))
    assert losses.CategoricalHinge()(t, p) == pytest.approx(expected, rel=1e-6)


def test_multiclass_hinge_is_svm_loss_for_labels_and_one_hot(rng):
    s = rng.standard_normal((9, 5)).astype(np.float32)
    y = rng.integers(0, 5, 9)
    expected = np.mean([sum(max(0.0, s[i, j] - s[i, y[i]] + 1) for j in range(5) if j != y[i])
                        for i in range(9)])
    loss = losses.get("multiclass_hinge")
    assert loss(y, s) == pytest.approx(expected, rel=1e-6)
    assert loss(y[:, None], s) == pytest.approx(expected, rel=1e-6)
    assert loss(np.eye(5)[y], s) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="one-hot"):
        loss(np.full((9, 5), 0.2), s)
    with pytest.raises(ValueError, match=r"labels in \[0, 5\)"):
        loss(np.full(9, 5), s)


def test_torch_oracle(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def torch_value_and_grad(fn, y_pred, *args):
        z = torch.tensor(y_pred, requires_grad=True)
        value = fn(z, *args)
        value.backward()
        return value.item(), z.grad.numpy()

    p, t = rng.uniform(0.01, 0.99, (8, 3)), rng.random((8, 3))
    cases = [
        (losses.MeanSquaredError(), p, t, lambda z: F.mse_loss(z, torch.tensor(t))),
        (losses.BinaryCrossentropy(), p, t,
         lambda z: F.binary_cross_entropy(z, torch.tensor(t))),
        (losses.BinaryCrossentropy(from_logits=True), p * 8 - 4, t,
         lambda z: F.binary_cross_entropy_with_logits(z, torch.tensor(t))),
    ]
    scores, labels = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    # torch divides each sample's hinge sum by the number of classes
    cases.append((losses.MulticlassHinge(), scores, labels,
                  lambda z: F.multi_margin_loss(z, torch.tensor(labels)) * 5))
    for loss, y_pred, y_true, torch_fn in cases:
        value, grad = _loss_and_grad(loss, y_pred, y_true)
        torch_value, torch_grad = torch_value_and_grad(torch_fn, y_pred)
        assert value == pytest.approx(torch_value, rel=1e-12), loss.name
        np.testing.assert_allclose(grad, torch_grad, rtol=1e-10, atol=1e-14)


def test_registry_names_and_config():
    assert type(losses.get("mse")) is losses.MeanSquaredError
    for cls in (losses.MeanSquaredError, losses.BinaryCrossentropy, losses.CategoricalHinge,
                losses.MulticlassHinge):
        loss = cls()
        assert type(losses.get(loss.name)) is cls
        assert type(loss)(**loss.get_config()).get_config() == loss.get_config()
    assert losses.BinaryCrossentropy(from_logits=True).get_config()["from_logits"] is True


def test_targets_are_checked():
    with pytest.raises(ValueError, match=r"shape \(samples, 3\) for mean_squared_error"):
        losses.get("mse")(np.zeros((4, 2)), np.zeros((4, 3)))
    # one output unit takes (samples,) targets too
    p = np.array([[0.2], [0.9]], np.float32)
    assert losses.get("binary_crossentropy")([0, 1], p) == pytest.approx(
        losses.get("binary_crossentropy")([[0], [1]], p))


def _binary_model(activation, loss, seed=0):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([fastcnn.Input(shape=(2,)), layers.Dense(1, activation=activation)])
    model.compile(optimizer=fastcnn.optimizers.SGD(0.5), loss=loss, metrics=["accuracy"])
    return model


def _binary_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)


@pytest.mark.parametrize("activation,loss", [
    ("sigmoid", "binary_crossentropy"),
    (None, losses.BinaryCrossentropy(from_logits=True)),
    ("sigmoid", "mse"),
])
def test_binary_accuracy_for_one_output_unit(activation, loss):
    x, y = _binary_data()
    model = _binary_model(activation, loss)
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss_value, accuracy = model.evaluate(x, y, verbose=0)
    out = model.predict(x, verbose=0)[:, 0]
    threshold = 0.0 if activation is None else 0.5
    assert accuracy == pytest.approx(np.mean((out > threshold) == y))
    assert accuracy > 0.9


@pytest.mark.parametrize("loss", ["mse", "categorical_hinge", "multiclass_hinge"])
def test_multiclass_losses_train_with_argmax_accuracy(loss):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 90)
    x = (rng.standard_normal((90, 3)) * 0.3 + 2 * np.eye(3)[labels]).astype(np.float32)
    fastcnn.utils.set_random_seed(2)
    model = fastcnn.Sequential([fastcnn.Input(shape=(3,)), layers.Dense(3)])
    model.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    y = fastcnn.utils.to_categorical(labels, 3)
    history = model.fit(x, y, batch_size=15, epochs=10, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy == pytest.approx(np.mean(model.predict(x, verbose=0).argmax(axis=1) == labels))
    assert accuracy > 0.9


# ---- outputs of any rank: per-position losses ------------------------------------------------

def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _torch_value_and_grad(torch, fn, y_pred):
    z = torch.tensor(y_pred, requires_grad=True)
    value = fn(z)
    value.backward()
    return value.item(), z.grad.numpy()


@pytest.mark.parametrize("from_logits", [True, False])
def test_per_pixel_cross_entropy_matches_torch(from_logits, rng):
    """Sparse and categorical cross-entropy on (N, H, W, C): torch's cross_entropy over the class
    axis, averaged over every pixel of every sample, for the value and the gradient; on
    probabilities, torch's negative log-likelihood of them."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z = rng.standard_normal((3, 4, 5, 6))
    labels = rng.integers(0, 6, (3, 4, 5))
    y_pred = z if from_logits else _softmax(z)
    to_nchw = (0, 3, 1, 2)
    if from_logits:
        def torch_fn(t):
            return F.cross_entropy(t.permute(to_nchw), torch.tensor(labels))
    else:
        def torch_fn(t):
            return F.nll_loss(torch.log(t / t.sum(-1, keepdim=True)).permute(to_nchw).contiguous(),
                              torch.tensor(labels))
    torch_value, torch_grad = _torch_value_and_grad(torch, torch_fn, y_pred)
    onehot = np.eye(6)[labels]
    for loss, y_true in [(losses.SparseCategoricalCrossentropy(from_logits), labels),
                         (losses.SparseCategoricalCrossentropy(from_logits), labels[..., None]),
                         (losses.CategoricalCrossentropy(from_logits), onehot)]:
        y = loss.check_targets(y_true, y_pred.shape[1:])
        grad, per_sample = np.empty_like(y_pred), np.empty(3)
        loss.forward_backward(y_pred, y, False, grad, per_sample)
        assert per_sample.mean() == pytest.approx(torch_value, rel=1e-12), loss.name
        np.testing.assert_allclose(grad, torch_grad, rtol=1e-10, atol=1e-15)
        per_pixel = -np.log(np.take_along_axis(_softmax(z), labels[..., None], -1))
        np.testing.assert_allclose(per_sample, per_pixel.mean(axis=(1, 2, 3)), rtol=1e-12)
        assert loss(y_true, y_pred) == pytest.approx(torch_value, rel=1e-6)  # float32
    # the fused path (logits from a softmax layer) is the from_logits path
    if not from_logits:
        loss = losses.SparseCategoricalCrossentropy()
        grad, per_sample = np.empty_like(z), np.empty(3)
        loss.forward_backward(z, labels, True, grad, per_sample)
        value, expected = _torch_value_and_grad(
            torch, lambda t: F.cross_entropy(t.permute(to_nchw), torch.tensor(labels)), z)
        assert per_sample.mean() == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-15)


def _keras_bce(t, p, from_logits):
    """Keras's binary cross-entropy per position: the mean over the last axis."""
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p), axis=-1)


IMAGE_CASES = {
    "mse": (losses.MeanSquaredError(),
            lambda t, p: np.mean((p - t) ** 2, axis=-1)),
    "bce": (losses.BinaryCrossentropy(), lambda t, p: _keras_bce(t, p, False)),
    "bce_logits": (losses.BinaryCrossentropy(from_logits=True),
                   lambda t, p: _keras_bce(t, p, True)),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
@pytest.mark.parametrize("units", [1, 3])
def test_image_losses_are_keras_formulas(case, units, rng):
    """MSE and binary cross-entropy on (N, H, W, units): Keras's per-position formula, averaged
    over the positions of a sample, then over the batch; the gradient by finite differences."""
    loss, formula = IMAGE_CASES[case]
    shape = (2, 3, 4, units)
    y_pred = rng.uniform(0.05, 0.95, shape) if case == "bce" else rng.standard_normal(shape) * 2
    y_true = rng.random(shape).astype(np.float32)  # the targets a loss consumes
    expected = formula(y_true.astype(np.float64), y_pred)  # (N, H, W)
    y = loss.check_targets(y_true, shape[1:])
    grad, per_sample = np.empty_like(y_pred), np.empty(2)
    loss.forward_backward(y_pred, y, False, grad, per_sample)
    np.testing.assert_allclose(per_sample, expected.mean(axis=(1, 2)), rtol=1e-12)

    def mean_loss():
        out = np.empty(2)
        loss.forward_backward(y_pred, y, False, np.empty_like(y_pred), out)
        return out.mean()
    # atol: central differences of losses of order 1 round at about 1e-16 / 1e-6
    np.testing.assert_allclose(grad, numeric_grad(mean_loss, y_pred), rtol=1e-6, atol=1e-9)
    assert loss(y_true, y_pred.astype(np.float32)) == pytest.approx(expected.mean(), rel=1e-5)
    if units == 1:  # targets without the axis of one unit, as Keras squeezes them
        assert loss(y_true[..., 0], y_pred) == loss(y_true, y_pred)


LOSS_CLASSES = [losses.MeanSquaredError(), losses.BinaryCrossentropy(),
                losses.BinaryCrossentropy(from_logits=True), losses.CategoricalCrossentropy(),
                losses.CategoricalCrossentropy(from_logits=True),
                losses.SparseCategoricalCrossentropy(),
                losses.SparseCategoricalCrossentropy(from_logits=True),
                losses.CategoricalHinge(), losses.MulticlassHinge()]


def _targets_for(loss, labels, n_classes, rng):
    if isinstance(loss, (losses.SparseCategoricalCrossentropy, losses.MulticlassHinge)):
        return labels
    if isinstance(loss, (losses.CategoricalCrossentropy, losses.CategoricalHinge)):
        return np.eye(n_classes, dtype=np.float32)[labels]
    return rng.random((*labels.shape, n_classes)).astype(np.float32)


@pytest.mark.parametrize("loss", LOSS_CLASSES,
                         ids=lambda loss: f"{loss.name}-from_logits={loss.from_logits}")
def test_any_rank_is_the_rows_of_the_last_axis(loss, rng):
    """(N, H, W, C) outputs give the same gradient as their (N*H*W, C) rows, bitwise, and each
    sample's loss is the mean of its rows' losses."""
    labels = rng.integers(0, 4, (3, 2, 5))
    y_pred = rng.uniform(0.05, 0.95, (3, 2, 5, 4)).astype(np.float32)
    y_true = _targets_for(loss, labels, 4, rng)
    y = loss.check_targets(y_true, y_pred.shape[1:])
    grad, per_sample = np.empty_like(y_pred), np.empty(3, np.float32)
    loss.forward_backward(y_pred, y, False, grad, per_sample)
    rows = y_pred.reshape(30, 4)
    y_rows = loss.check_targets(y_true.reshape(30, *y_true.shape[3:]), 4)
    row_grad, row_loss = np.empty_like(rows), np.empty(30, np.float32)
    loss.forward_backward(rows, y_rows, False, row_grad, row_loss)
    np.testing.assert_array_equal(grad.reshape(30, 4), row_grad)
    np.testing.assert_allclose(per_sample, row_loss.reshape(3, 10).mean(axis=1), rtol=1e-6)
    assert loss(y_true, y_pred) == pytest.approx(float(row_loss.mean(dtype=np.float64)), rel=1e-6)


KERNEL_CALLS = {  # (loss, its from_logits): the _ops call it makes
    (losses.CategoricalCrossentropy, True): loss_ops.softmax_cross_entropy,
    (losses.SparseCategoricalCrossentropy, True): loss_ops.sparse_softmax_cross_entropy,
    (losses.BinaryCrossentropy, False): loss_ops.binary_crossentropy,
    (losses.BinaryCrossentropy, True):
        lambda z, y, s: loss_ops.binary_crossentropy(z, y, s, from_logits=True),
    (losses.MeanSquaredError, False): loss_ops.mean_squared_error,
    (losses.CategoricalHinge, False): loss_ops.categorical_hinge,
    (losses.MulticlassHinge, False): loss_ops.multiclass_hinge,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(KERNEL_CALLS, key=str),
                         ids=lambda case: f"{case[0].name}-from_logits={case[1]}")
def test_rank_two_is_one_kernel_call(case, dtype, rng):
    """(N, K) outputs are the kernels' rows with grad_scale 1/N: loss and gradient bitwise as
    the kernel gives them, so training on them is unchanged."""
    cls, from_logits = case
    loss = cls(from_logits=True) if from_logits else cls()
    labels = rng.integers(0, 5, 9)
    y_pred = rng.uniform(0.05, 0.95, (9, 5)).astype(dtype)
    y = loss.check_targets(_targets_for(loss, labels, 5, rng), (5,))
    grad, per_sample = np.empty_like(y_pred), np.empty(9, dtype)
    loss.forward_backward(y_pred, y, False, grad, per_sample)
    expected_loss, expected_grad = KERNEL_CALLS[case](y_pred, y, 1.0 / 9)
    np.testing.assert_array_equal(per_sample, expected_loss)
    np.testing.assert_array_equal(grad, expected_grad)
    if cls in (losses.CategoricalCrossentropy, losses.SparseCategoricalCrossentropy):
        # the model's call after a softmax layer, on its logits: the same kernel
        cls().forward_backward(y_pred, y, True, grad, per_sample)
        np.testing.assert_array_equal(per_sample, expected_loss)
        np.testing.assert_array_equal(grad, expected_grad)


def test_targets_of_images_are_checked(rng):
    y_pred = rng.random((2, 4, 5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"labels y of shape \(samples, 4, 5\) or "
                                         r"\(samples, 4, 5, 1\) for sparse_categorical"):
        losses.get("sparse_categorical_crossentropy")(np.zeros((2, 4)), y_pred)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        losses.get("sparse_categorical_crossentropy")(np.full((2, 4, 5), 3), y_pred)
    with pytest.raises(ValueError, match=r"one-hot targets y of shape \(samples, 4, 5, 3\)"):
        losses.get("categorical_crossentropy")(np.zeros((2, 4, 5)), y_pred)
    with pytest.raises(ValueError, match=r"shape \(samples, 4, 5, 3\) for mean_squared_error, "
                                         r"received shape \(2, 5, 4, 3\)"):
        losses.get("mse")(np.zeros((2, 5, 4, 3)), y_pred)
    with pytest.raises(ValueError, match=r"shape \(samples, 4, 5, 1\) or \(samples, 4, 5\) "
                                         "for binary_crossentropy"):
        losses.get("binary_crossentropy")(np.zeros((2, 4, 5, 3)), y_pred[..., :1])
    with pytest.raises(ValueError, match=r"labels y of shape \(samples,\) or \(samples, 1\)"):
        losses.get("sparse_categorical_crossentropy")(np.zeros((2, 3)), y_pred[:, 0, 0])
    with pytest.raises(ValueError, match=r"Expected y_true for y_pred of shape \(2, 4, 5, 3\)"):
        losses.get("mse").forward_backward(y_pred, np.zeros((2, 5, 4, 3), np.float32), False,
                                           np.empty_like(y_pred), np.empty(2, np.float32))
    # a Dense output's shape may be given as its number of units
    labels = np.array([0, 2])
    loss = losses.get("sparse_categorical_crossentropy")
    np.testing.assert_array_equal(loss.check_targets(labels, 3), loss.check_targets(labels, (3,)))

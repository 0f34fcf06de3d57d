"""The losses (MSE, binary cross-entropy, categorical and multiclass hinge): float64 gradient
checks, Keras's formulas, a PyTorch oracle, and accuracy in the model."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses
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

"""train_on_batch, test_on_batch and predict_on_batch: one step of fit, one batch of evaluate
and of predict, as Keras defines them."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers


def _model():
    fastcnn.utils.set_random_seed(5)
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(8, activation="relu"),
                                layers.Dropout(0.4), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(2)
    return rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 3, 16)


def test_train_on_batch_is_one_step_of_fit_bitwise():
    x, y = _data()
    a, b = _model(), _model()
    logs = a.train_on_batch(x, y, return_dict=True)
    history = b.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
    assert logs == {k: v[0] for k, v in history.history.items()}
    # the next call continues the first epoch's dropout stream, as fit's second step would
    a.train_on_batch(x, y)
    b2 = _model()
    b2.fit(np.concatenate([x, x]), np.concatenate([y, y]), batch_size=16, shuffle=False,
           verbose=0)
    for u, v in zip(a.get_weights(), b2.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


def test_train_on_batch_returns_as_evaluate_does_and_takes_weights():
    x, y = _data()
    model = _model()
    loss, acc = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    w = np.linspace(0, 1, 16)
    a, b = _model(), _model()
    a.train_on_batch(x, y, class_weight={0: 2.0, 1: 0.5})
    b.train_on_batch(x, y, sample_weight=np.array([2.0, 0.5, 1.0])[y])
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
    assert a.test_on_batch(x, y, sample_weight=w)[0] != a.test_on_batch(x, y)[0]


def test_test_and_predict_on_batch_equal_evaluate_and_predict():
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0)
    assert model.test_on_batch(x, y, return_dict=True) == model.evaluate(
        x, y, batch_size=16, return_dict=True, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, batch_size=16,
                                                                          verbose=0))
    with pytest.raises(TypeError, match="Expected arrays for one batch"):
        model.predict_on_batch(iter([x]))


def test_a_metric_object_reports_each_batch_alone():
    x, y = _data()
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=[fastcnn.metrics.SparseCategoricalAccuracy(name="hits")])
    first = model.test_on_batch(x[:8], y[:8], return_dict=True)["hits"]
    second = model.test_on_batch(x[8:], y[8:], return_dict=True)["hits"]
    probs = model.predict(x, verbose=0)
    assert (first, second) == (np.mean(probs[:8].argmax(1) == y[:8]),
                               np.mean(probs[8:].argmax(1) == y[8:]))


def test_fit_ends_with_the_optimizer_finalize_variable_values():
    """As Keras: an optimizer with finalize_variable_values (EMA weights) gets the trainable
    weights once fit ends."""
    x, y = _data()
    model = _model()
    seen = []
    model.optimizer.finalize_variable_values = lambda weights: seen.append(
        [id(w) for w in weights])
    model.fit(x, y, epochs=2, verbose=0)
    assert seen == [[id(w) for w in model.trainable_weights]]

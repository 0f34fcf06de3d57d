"""compile(weighted_metrics=...) as in Keras: those metrics are weighed by the sample weights
(and by the class weights, which become sample weights), while ``metrics`` ignore both. Each is
logged under its name; one whose name a metric of ``metrics`` has already is logged as
"weighted_<name>" (after the output's name in a model with several outputs)."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers

N, CLASSES = 24, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 5)).astype(np.float32)
    return x, rng.integers(0, CLASSES, N), rng.uniform(0.1, 3, N).astype(np.float32)


def _model(**compile_args):
    fastcnn.utils.set_random_seed(2)
    model = fastcnn.Sequential([fastcnn.Input((5,)), layers.Dense(CLASSES, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", **compile_args)
    return model


def _accuracies(model, x, y, weights):
    """(accuracy, weighted accuracy: sum(w * correct) / sum(w)) of the model's predictions."""
    correct = (model.predict(x, verbose=0).argmax(axis=-1) == y).astype(np.float64)
    return correct.mean(), np.sum(weights * correct) / np.sum(weights)


def test_a_metric_in_both_lists_is_logged_twice_the_weighted_one_as_weighted_name():
    x, y, w = _data()
    model = _model(metrics=["acc"], weighted_metrics=["acc"])
    logs = model.evaluate(x, y, sample_weight=w, batch_size=5, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "acc", "weighted_acc"}
    plain, weighted = _accuracies(model, x, y, w)
    assert plain != pytest.approx(weighted)  # the data tells them apart
    np.testing.assert_allclose(logs["acc"], plain, rtol=1e-12)
    np.testing.assert_allclose(logs["weighted_acc"], weighted, rtol=1e-6)
    # evaluate's list: the loss, then the metrics, then the weighted metrics
    _, acc, weighted_acc = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert (acc, weighted_acc) == (logs["acc"], logs["weighted_acc"])


def test_names_taken_twice_are_numbered_as_keras_numbers_them():
    x, y, w = _data()
    model = _model(metrics=["acc", fastcnn.metrics.SparseCategoricalAccuracy(name="acc")],
                   weighted_metrics=["acc", fastcnn.metrics.SparseCategoricalAccuracy(name="acc")])
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert [k for k in logs if k != "loss"] == ["acc", "acc_1", "weighted_acc", "weighted_acc_1"]
    plain, weighted = _accuracies(model, x, y, w)
    np.testing.assert_allclose([logs["acc_1"], logs["weighted_acc_1"]], [plain, weighted],
                               rtol=1e-6)


def test_a_weighted_metric_alone_keeps_its_name_and_without_weights_is_the_plain_one():
    x, _, w = _data()
    target = np.random.default_rng(3).standard_normal((N, 2)).astype(np.float32)
    fastcnn.utils.set_random_seed(2)
    model = fastcnn.Sequential([fastcnn.Input((5,)), layers.Dense(2)])
    model.compile("sgd", "mse", weighted_metrics=["mae"])
    per_sample = np.mean(np.abs(model.predict(x, verbose=0) - target), axis=-1)
    logs = model.evaluate(x, target, sample_weight=w, batch_size=7, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae"}
    np.testing.assert_allclose(logs["mae"], np.sum(w * per_sample) / np.sum(w), rtol=1e-6)
    logs = model.evaluate(x, target, batch_size=7, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["mae"], per_sample.mean(), rtol=1e-6)


def test_class_weights_weigh_the_weighted_metrics_of_a_training_batch():
    """train_on_batch's logs come from the predictions before its update; class_weight gives
    each sample its class's weight, which the weighted accuracy uses and the plain one not."""
    x, y, _ = _data()
    class_weight = {0: 0.5, 1: 4.0, 2: 1.0}
    model = _model(metrics=["acc"], weighted_metrics=["acc"])
    plain, weighted = _accuracies(model, x, y, np.array([class_weight[c] for c in y]))
    logs = model.train_on_batch(x, y, class_weight=class_weight, return_dict=True)
    np.testing.assert_allclose(logs["acc"], plain, rtol=1e-12)
    np.testing.assert_allclose(logs["weighted_acc"], weighted, rtol=1e-6)


def test_validation_logs_the_weighted_metric_with_the_validation_weights():
    x, y, w = _data()
    xv, yv, wv = _data(seed=1)
    model = _model(metrics=["acc"], weighted_metrics=["acc"])
    history = model.fit(x, y, sample_weight=w, validation_data=(xv, yv, wv), batch_size=8,
                        verbose=0).history
    assert set(history) == {"loss", "acc", "weighted_acc", "val_loss", "val_acc",
                            "val_weighted_acc"}
    plain, weighted = _accuracies(model, xv, yv, wv)
    np.testing.assert_allclose(history["val_acc"][0], plain, rtol=1e-12)
    np.testing.assert_allclose(history["val_weighted_acc"][0], weighted, rtol=1e-6)


def test_per_pixel_weights_weigh_a_per_pixel_metric():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    y = rng.integers(0, 2, (4, 3, 3))
    w = rng.uniform(0, 2, (4, 3, 3)).astype(np.float32)
    fastcnn.utils.set_random_seed(2)
    model = fastcnn.Sequential([fastcnn.Input((3, 3, 2)), layers.Conv2D(2, 1,
                                                                       activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", weighted_metrics=["acc"])
    correct = model.predict(x, verbose=0).argmax(axis=-1) == y
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["acc"], np.sum(w * correct) / np.sum(w), rtol=1e-6)


def test_two_outputs_name_each_metric_after_its_output():
    inputs = fastcnn.Input((5,))
    a = layers.Dense(CLASSES, activation="softmax", name="a")(inputs)
    b = layers.Dense(CLASSES, activation="softmax", name="b")(inputs)
    model = fastcnn.Model(inputs, [a, b])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics={"a": ["acc"]},
                  weighted_metrics=[["acc"], ["acc"]])
    x, y, w = _data()
    logs = model.evaluate(x, [y, y], sample_weight=w, verbose=0, return_dict=True)
    assert list(logs)[:3] == ["a_acc", "a_weighted_acc", "b_acc"]
    correct = (model.predict(x, verbose=0)[0].argmax(axis=-1) == y)
    np.testing.assert_allclose(logs["a_weighted_acc"], np.sum(w * correct) / np.sum(w),
                               rtol=1e-6)


def test_weighted_metrics_are_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match=r"Expected weighted_metrics to be a list"):
        _model(weighted_metrics="acc")
    with pytest.raises(ValueError, match="Unknown metric"):
        _model(weighted_metrics=["no_such_metric"])
    x, y, w = _data()
    model = _model(metrics=["acc"], weighted_metrics=["acc"])
    model.save(tmp_path / "m.keras")
    loaded = fastcnn.saving.load_model(tmp_path / "m.keras")
    assert loaded.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True) == \
        model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)

"""fit, evaluate and predict on arrays read one batch at a time, Python generators, iterables and
PyDatasets, with Keras's sample_weight, class_weight, steps_per_epoch and validation_freq."""
import threading

import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.data_adapters import StepError


def _model(seed=0, units=3, optimizer="sgd"):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(8, activation="relu"),
                                layers.Dropout(0.3), layers.Dense(units, activation="softmax")])
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["acc"])
    return model


def _data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


class Batches(fastcnn.utils.PyDataset):
    """The batches of (x, y) in order, counting its epochs."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[sl], self.y[sl]

    def on_epoch_end(self):
        self.epochs_ended += 1


# -- the sources -------------------------------------------------------------------------------
def test_uint8_arrays_train_as_their_float32_values():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6)).astype(np.uint8)
    y = rng.integers(0, 3, 40)
    a, b = _model(), _model()
    a.fit(x, y, batch_size=8, epochs=2, verbose=0)
    b.fit(x.astype(np.float32), y, batch_size=8, epochs=2, verbose=0)
    assert _same_weights(a, b)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x.astype(np.float32),
                                                                        verbose=0))


@pytest.mark.parametrize("workers", [1, 3])
def test_a_pydataset_trains_as_the_same_batches_of_arrays(workers):
    x, y = _data()
    a, b = _model(), _model()
    dataset = Batches(x, y, 8, workers=workers, max_queue_size=2)
    history = a.fit(dataset, epochs=3, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert _same_weights(a, b)
    assert dataset.epochs_ended == 3 and len(history.history["loss"]) == 3
    assert a.evaluate(dataset, verbose=0) == b.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_array_equal(a.predict(dataset, verbose=0), b.predict(x, verbose=0))


def test_a_generator_with_steps_per_epoch_takes_that_many_batches_each_epoch():
    x, y = _data()
    served = []

    def forever():
        while True:
            for i in range(5):
                served.append(i)
                yield x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]

    a, b = _model(), _model()
    history = a.fit(forever(), steps_per_epoch=5, epochs=2, verbose=0)
    b.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert _same_weights(a, b)
    # one batch ahead at most: the prefetching thread may have asked for the next
    assert served[:10] == list(range(5)) * 2 and len(served) <= 11
    assert len(history.history["loss"]) == 2


class Iterable:
    """Not its own iterator: each iter() starts over, as a list would (a list itself is data:
    one array per model input)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def test_an_iterable_of_batches_starts_over_every_epoch():
    x, y = _data()
    batches = Iterable([(x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10)])
    a, b = _model(), _model()
    a.fit(batches, epochs=2, verbose=0)
    b.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    assert _same_weights(a, b)


def test_a_generator_without_steps_runs_to_its_end_then_fails_clearly():
    x, y = _data()
    model = _model()
    batches = ((x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10))
    model.fit(batches, epochs=1, verbose=0)  # one pass: four batches
    batches = ((x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10))
    with pytest.raises(ValueError, match=r"ran out of data at step 0 of epoch 2"):
        model.fit(batches, epochs=2, verbose=0)


def test_a_generator_that_ends_early_names_the_step():
    x, y = _data()

    def short():
        for i in range(3):
            yield x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]

    with pytest.raises(ValueError, match=r"ran out of data at step 3 of epoch 1: expected "
                                         r"steps_per_epoch=5"):
        _model().fit(short(), steps_per_epoch=5, epochs=1, verbose=0)


def test_a_generator_that_raises_names_the_step():
    x, y = _data()

    def broken():
        yield x[:8], y[:8]
        yield x[8:16], y[8:16]
        raise KeyError("lost file")

    with pytest.raises(StepError, match=r"raised KeyError: 'lost file' \(at step 2 of epoch 1\)"):
        _model().fit(broken(), steps_per_epoch=4, verbose=0)


def test_a_batch_of_the_wrong_shape_names_the_step():
    x, y = _data()

    def bad():
        yield x[:8], y[:8]
        yield x[8:16, :5], y[8:16]

    with pytest.raises(ValueError, match=r"Expected x of shape .*received \(8, 5\).*step 1 of "
                                         r"epoch 1"):
        _model().fit(bad(), steps_per_epoch=2, verbose=0)


def test_an_endless_generator_stops_with_the_fit():
    x, y = _data()
    threads = threading.active_count()

    def forever():
        while True:
            yield x[:8], y[:8]

    class Stop(fastcnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = batch == 2

    _model().fit(forever(), steps_per_epoch=100, epochs=5, callbacks=[Stop()], verbose=0)
    assert threading.active_count() == threads


def test_a_pydataset_must_say_how_many_batches_it_holds():
    class NoLength(fastcnn.utils.PyDataset):
        def __getitem__(self, i):
            return np.zeros((2, 6), np.float32), np.zeros(2)

    with pytest.raises(TypeError, match="must define __len__"):
        _model().fit(NoLength(), verbose=0)


def test_pydataset_arguments_are_checked():
    with pytest.raises(ValueError, match="workers"):
        Batches(*_data(), 8, workers=0)
    with pytest.raises(ValueError, match="max_queue_size"):
        Batches(*_data(), 8, max_queue_size=0)
    dataset = Batches(*_data(), 8, use_multiprocessing=True)
    assert dataset.use_multiprocessing and dataset.workers == 1 and dataset.num_batches == 5


# -- weights -----------------------------------------------------------------------------------
def test_sample_weight_weighs_each_loss_and_divides_by_the_batch_size():
    """Keras's sum_over_batch_size: sum(w_i * loss_i) / n, in the logged loss and its
    gradient; one SGD step on a softmax regression checked against the hand computation."""
    x, y = _data(12)
    w = np.arange(12, dtype=np.float32) / 4
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(3, activation="softmax")])
    model.compile(fastcnn.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    kernel, bias = (v.astype(np.float64) for v in model.get_weights())
    z = x @ kernel + bias
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    losses = -np.log(p[np.arange(12), y])
    assert model.evaluate(x, y, sample_weight=w, batch_size=12, verbose=0) == pytest.approx(
        (w * losses).sum() / 12, rel=1e-6)
    history = model.fit(x, y, sample_weight=w, batch_size=12, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx((w * losses).sum() / 12, rel=1e-6)
    dz = (p - np.eye(3)[y]) * w[:, None] / 12
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.5 * x.T @ dz, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], bias - 0.5 * dz.sum(0), rtol=1e-5,
                               atol=1e-6)


def test_class_weight_is_the_sample_weight_of_each_sample_class():
    x, y = _data()
    class_weight = {0: 0.5, 1: 2.0}  # class 2 is not named: it weighs 1
    a, b = _model(), _model()
    a.fit(x, y, class_weight=class_weight, batch_size=8, epochs=2, verbose=0)
    b.fit(x, y, sample_weight=np.array([0.5, 2.0, 1.0])[y], batch_size=8, epochs=2, verbose=0)
    assert _same_weights(a, b)
    onehot = fastcnn.utils.to_categorical(y, 3)
    c = _model()
    c.compile("sgd", "categorical_crossentropy")
    c.fit(x, onehot, class_weight=class_weight, batch_size=8, epochs=2, verbose=0)
    assert _same_weights(a, c)


def test_weights_in_a_generator_batch_and_refusals():
    x, y = _data()
    w = np.linspace(0, 2, 40).astype(np.float32)
    a, b = _model(), _model()
    a.fit(Iterable([(x[i:i + 8], y[i:i + 8], w[i:i + 8]) for i in range(0, 40, 8)]), epochs=1,
          verbose=0)
    b.fit(x, y, sample_weight=w, batch_size=8, shuffle=False, verbose=0)
    assert _same_weights(a, b)
    with pytest.raises(ValueError, match="class_weight or sample_weight, received both"):
        _model().fit(x, y, sample_weight=w, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(40,\)"):
        _model().fit(x, y, sample_weight=w[:5], verbose=0)
    with pytest.raises(ValueError, match="class_weight's keys"):
        _model().fit(x, y, class_weight={-1: 1.0}, verbose=0)


# -- validation and callbacks ------------------------------------------------------------------
def test_validation_freq_validates_at_the_epochs_it_names():
    x, y = _data()
    seen = []
    record = fastcnn.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch + 1, "val_loss" in logs)))
    history = _model().fit(x, y, validation_data=(x[:10], y[:10]), validation_freq=2, epochs=4,
                           callbacks=[record], verbose=0)
    assert seen == [(1, False), (2, True), (3, False), (4, True)]
    assert len(history.history["val_loss"]) == 2
    seen.clear()
    _model().fit(x, y, validation_split=0.25, validation_freq=[1, 3], epochs=3,
                 callbacks=[record], verbose=0)
    assert seen == [(1, True), (2, False), (3, True)]


def test_validation_steps_batch_size_and_a_validation_pydataset():
    x, y = _data()
    batches = []

    class Count(fastcnn.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            batches.append(batch)

    model = _model()
    model.fit(x, y, validation_data=(x, y), validation_batch_size=20, epochs=1,
              callbacks=[Count()], verbose=0)
    assert batches == [0, 1]
    batches.clear()
    history = model.fit(x, y, validation_data=Batches(x, y, 8), validation_steps=3, epochs=1,
                        callbacks=[Count()], verbose=0)
    assert batches == [0, 1, 2]
    assert history.history["val_loss"][0] == model.evaluate(x[:24], y[:24], batch_size=8,
                                                             verbose=0)[0]


def test_logs_are_dicts_named_as_written_and_evaluate_and_predict_fire_their_hooks():
    x, y = _data()
    calls = []

    class Record(fastcnn.callbacks.Callback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                def hook(*args):
                    assert isinstance(args[-1], dict), (name, args)
                    calls.append(name)
                return hook
            return super().__getattribute__(name)

    model = _model()
    history = model.fit(x, y, validation_split=0.25, epochs=1, batch_size=10,
                        callbacks=[Record()], verbose=0)
    assert set(history.history) == {"acc", "loss", "val_acc", "val_loss"}
    assert {"on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
            "on_test_begin", "on_test_batch_end", "on_test_end", "on_epoch_end",
            "on_train_end"} <= set(calls)
    calls.clear()
    logs = model.evaluate(x, y, callbacks=[Record()], return_dict=True, verbose=0)
    assert set(logs) == {"acc", "loss"}
    assert calls[0] == "on_test_begin" and calls[-1] == "on_test_end"
    assert calls.count("on_test_batch_end") == 2
    calls.clear()
    model.predict(x, batch_size=16, callbacks=[Record()], verbose=0)
    assert calls == ["on_predict_begin"] + ["on_predict_batch_begin",
                                            "on_predict_batch_end"] * 3 + ["on_predict_end"]


# -- metric objects ----------------------------------------------------------------------------
def test_compile_takes_metric_objects_and_names_per_output_each_reset_per_epoch():
    """Keras's logs: each metric named as written (the output's name first when the model has
    several), its result over the epoch's batches, and the validation's from a state of its
    own."""
    x, y = _data()
    inputs = fastcnn.Input((6,))
    hidden = layers.Dense(8, activation="relu")(inputs)
    out_a = layers.Dense(3, activation="softmax", name="a")(hidden)
    out_b = layers.Dense(1, activation="sigmoid", name="b")(hidden)
    model = fastcnn.Model(inputs, [out_a, out_b])
    auc = fastcnn.metrics.get("mae")
    model.compile("sgd", ["sparse_categorical_crossentropy", "binary_crossentropy"],
                  metrics=[["acc", "crossentropy"], ["accuracy", auc]])
    yb = (y == 1).astype(np.float32)
    history = model.fit(x, [y, yb], validation_data=(x[:10], [y[:10], yb[:10]]), epochs=2,
                        batch_size=40, shuffle=False, verbose=0)
    assert set(history.history) == {
        "loss", "a_loss", "b_loss", "a_acc", "a_crossentropy", "b_accuracy", "b_mae",
        *("val_" + k for k in ("loss", "a_loss", "b_loss", "a_acc", "a_crossentropy",
                               "b_accuracy", "b_mae"))}
    # one batch an epoch: each epoch's metrics are those of the weights before its step
    probs_a, probs_b = model.predict(x, verbose=0)
    logs = model.evaluate(x, [y, yb], batch_size=40, return_dict=True, verbose=0)
    assert logs["a_acc"] == np.mean(probs_a.argmax(1) == y)
    assert logs["b_accuracy"] == np.mean((probs_b[:, 0] > 0.5) == yb)
    assert logs["b_mae"] == pytest.approx(np.mean(np.abs(probs_b[:, 0] - yb)), rel=1e-6)
    assert logs["a_crossentropy"] == pytest.approx(
        -np.mean(np.log(probs_a[np.arange(40), y])), rel=1e-5)
    val = model.evaluate(x[:10], [y[:10], yb[:10]], return_dict=True, verbose=0)
    assert history.history["val_a_acc"][-1] == val["a_acc"]
    assert history.history["val_b_mae"][-1] == val["b_mae"]


def test_a_model_compiled_with_metric_objects_saves_and_loads(tmp_path):
    x, y = _data()
    yb = (y == 1).astype(np.float32)
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=["acc", fastcnn.metrics.MeanAbsoluteError(name="err")])
    model.fit(x, yb, verbose=0)
    model.save(tmp_path / "m.keras")
    copy = fastcnn.models.load_model(tmp_path / "m.keras")
    assert copy.evaluate(x, yb, return_dict=True, verbose=0) == model.evaluate(
        x, yb, return_dict=True, verbose=0)

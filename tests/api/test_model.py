"""The Sequential API: construction, compile/fit/evaluate/predict, callbacks, weights, config."""
import io

import numpy as np
import pytest

import fastcnn
from fastcnn import callbacks, layers
from conftest import step_names, toy_data, training_plan


def small_model(seed=0):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential()
    model.add(fastcnn.Input(shape=(8, 8, 1)))
    model.add(layers.Conv2D(4, 3, activation="relu"))
    model.add(layers.MaxPooling2D(2))
    model.add(layers.Flatten())
    model.add(layers.Dropout(0.2))
    model.add(layers.Dense(3, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_convnet_parameter_count_and_summary(capsys):
    model = fastcnn.applications.convnet()
    assert model.count_params() == 34_826
    model.summary()
    text = capsys.readouterr().out
    assert "34,826" in text and "(None, 11, 11, 64)" in text and "conv2d" in text


def test_fit_returns_history_with_keras_keys():
    model = small_model()
    x, y = toy_data(60)
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0]
    # the last epoch's val_loss is what evaluate reports on the held-out tail
    val_loss, val_acc = model.evaluate(x[45:], y[45:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_acc)


def test_evaluate_and_predict():
    model = small_model()
    model.compile(optimizer=fastcnn.optimizers.Adam(0.02), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = toy_data(60)
    model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    loss, acc = model.evaluate(x, y, batch_size=7, verbose=0)
    probs = model.predict(x, batch_size=11, verbose=0)
    assert probs.shape == (60, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    expected_loss = -np.mean(np.log(probs[y.astype(bool)]))
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    assert acc == pytest.approx(np.mean(probs.argmax(1) == y.argmax(1)))
    assert acc > 0.9
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_sparse_labels_match_one_hot():
    x, y = toy_data(60)
    dense_model, sparse_model = small_model(5), small_model(5)
    sparse_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    dense_model.fit(x, y, batch_size=10, epochs=2, verbose=0)
    sparse_model.fit(x, y.argmax(1), batch_size=10, epochs=2, verbose=0)
    for a, b in zip(dense_model.get_weights(), sparse_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_callbacks_hooks_and_stop_training():
    events = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin {epoch}")
        def on_train_batch_begin(self, batch, logs=None): events.append(f"batch_begin {batch}")
        def on_train_batch_end(self, batch, logs=None):
            events.append(f"batch_end {batch}")
            if batch == 1 and self.params["epochs"] == 5:
                self.model.stop_training = True
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end {epoch} {sorted(logs)}")
        def on_train_end(self, logs=None): events.append("train_end")

    model = small_model()
    x, y = toy_data(40)
    model.fit(x, y, batch_size=20, epochs=2, verbose=0, callbacks=[Recorder()])
    assert events == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0",
                      "batch_begin 1", "batch_end 1", "epoch_end 0 ['accuracy', 'loss']",
                      "epoch_begin 1", "batch_begin 0", "batch_end 0", "batch_begin 1",
                      "batch_end 1", "epoch_end 1 ['accuracy', 'loss']", "train_end"]
    events.clear()
    history = model.fit(x, y, batch_size=10, epochs=5, verbose=0, callbacks=[Recorder()])
    assert events[-1] == "train_end" and len(history.history["loss"]) == 1
    assert "batch_begin 2" not in events


def test_initial_epoch_runs_the_remaining_epochs():
    model = small_model()
    x, y = toy_data(60)
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3]


def test_seeded_fits_are_bitwise_identical():
    x, y = toy_data(60)
    runs = []
    for _ in range(2):
        model = small_model(seed=11)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        runs.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_one_and_two_threads_train_identically():
    x, y = toy_data(60)
    runs = []
    try:
        for threads in (1, 2):
            fastcnn.set_num_threads(threads)
            model = small_model(seed=4)
            model.fit(x, y, batch_size=30, epochs=2, verbose=0)
            runs.append(model.get_weights())
    finally:
        fastcnn.set_num_threads(None)
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_weights_and_config_round_trip():
    model = small_model()
    x, y = toy_data(60)
    model.fit(x, y, epochs=1, verbose=0)
    clone = fastcnn.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="expects 4 weight arrays, received 3"):
        clone.set_weights(model.get_weights()[:3])
    bad = model.get_weights()
    bad[0] = bad[0][:2]
    with pytest.raises(ValueError, match="Expected shape"):
        clone.set_weights(bad)


def test_progress_bar_per_epoch_when_not_a_terminal(capsys):
    model = small_model()
    x, y = toy_data(60)
    model.fit(x, y, batch_size=16, epochs=2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("4/4 ") and "ms/step" in lines[1] and "loss:" in lines[1]
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_redraws_in_place_on_a_terminal(monkeypatch):
    from fastcnn import progbar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(progbar, "REDRAW_INTERVAL", 0)
    stream = Terminal()
    bar = progbar.Progbar(3, stream)
    for step in (1, 2, 3):
        bar.update(step, {"loss": 0.5})
    bar.finish({"loss": 0.25})
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.count("\n") == 1
    assert "1/3" in text and "ETA" in text and "3/3" in text and "loss: 0.2500" in text


def test_compile_rejects_unknown_names():
    model = small_model()
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw2'"):
        model.compile(optimizer="adamw2", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="Unknown loss 'hinge2'"):
        model.compile(optimizer="sgd", loss="hinge2")


@pytest.mark.parametrize("kwargs,message", [
    ({"batch_size": 0}, "batch_size=0"),
    ({"epochs": -1}, "epochs=-1"),
    ({"validation_split": 1.0}, "validation_split=1.0"),
])
def test_fit_rejects_bad_arguments(kwargs, message):
    model = small_model()
    x, y = toy_data(60)
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, verbose=0, **kwargs)


def test_fit_rejects_bad_arrays():
    model = small_model()
    x, y = toy_data(60)
    with pytest.raises(ValueError, match="same length"):
        model.fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match=r"shape \(samples, \*\(8, 8, 1\)\)"):
        model.fit(x[:, :7], y, verbose=0)
    with pytest.raises(ValueError, match="one-hot"):
        model.fit(x, y[:, :2], verbose=0)


def test_to_categorical_matches_keras():
    np.testing.assert_array_equal(fastcnn.utils.to_categorical([0, 2, 1], 3),
                                  np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert fastcnn.utils.to_categorical(np.array([[1], [0]])).shape == (2, 2)


def test_relu_pool_fusion_gives_the_unfused_gradients():
    """Activation(relu) -> MaxPool, where the pool applies the relu's backward, and Conv(relu) ->
    MaxPool, which runs as one fused step, train bitwise like a stack where a rate-0 Dropout keeps
    the relu's backward a separate pass."""
    x, y = toy_data(60)
    runs = []
    for middle in ([layers.Activation("relu")], [], [layers.Activation("relu"), layers.Dropout(0.0)]):
        fastcnn.utils.set_random_seed(8)
        model = fastcnn.Sequential([
            fastcnn.Input(shape=(8, 8, 1)),
            layers.Conv2D(4, 3, activation=None if middle else "relu"), *middle,
            layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        plan = training_plan(model)
        pool_step = next((s for s in plan.steps if s.layer is model.layers[-3]), None)
        assert bool(pool_step and pool_step.flags.get("apply_input_relu_grad")) == \
            (len(middle) == 1)
        assert (step_names(plan)[0] == "ConvMaxPoolStep") == (not middle)
        model.fit(x, y, batch_size=20, epochs=2, verbose=0, shuffle=False)
        runs.append(model.get_weights())
    for run in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], run))

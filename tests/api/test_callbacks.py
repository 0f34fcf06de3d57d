"""EarlyStopping, LearningRateScheduler, ReduceLROnPlateau, CSVLogger and LambdaCallback follow
Keras's semantics, on tiny synthetic models."""
import csv

import numpy as np
import pytest

import fastcnn
from fastcnn import callbacks, layers, optimizers


def tiny_model(optimizer=None, seed=0):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([fastcnn.Input(shape=(3,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer or optimizers.SGD(0.1), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def tiny_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, fastcnn.utils.to_categorical((x[:, 0] > 0).astype(int), 2)


def replay(callback, values, monitor="val_loss", model=None):
    """Drive the callback's epoch hooks with scripted monitor values, as fit would; returns the
    epoch after which it stopped training, or None."""
    model = model or tiny_model()
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    stopped = None
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 0.0, monitor: value})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return stopped


# ---- EarlyStopping ---------------------------------------------------------------------------

def test_early_stopping_patience():
    assert replay(callbacks.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.96, 0.97]) == 3
    assert replay(callbacks.EarlyStopping(), [1.0, 0.9, 0.8, 0.85, 0.7]) == 3
    assert replay(callbacks.EarlyStopping(patience=5), [1.0, 1.1, 1.2]) is None


def test_early_stopping_min_delta_and_mode():
    es = callbacks.EarlyStopping(min_delta=0.05, patience=1)
    assert replay(es, [1.0, 0.99, 0.5]) == 1  # 0.01 better is not better enough
    assert es.best == 1.0
    # "auto" maximises accuracies
    assert replay(callbacks.EarlyStopping("val_accuracy", patience=1), [0.5, 0.6, 0.55],
                  monitor="val_accuracy") == 2
    assert replay(callbacks.EarlyStopping("val_loss", mode="max", patience=1), [1.0, 2.0, 1.5]) == 2
    with pytest.raises(ValueError, match=r"Expected mode .*, received mode='up'"):
        callbacks.EarlyStopping(mode="up")


def test_early_stopping_baseline():
    """Improving epochs that miss the baseline do not restart the wait (Keras 3)."""
    values = [1.0, 0.9, 0.8, 0.85]
    assert replay(callbacks.EarlyStopping(patience=2, baseline=0.5), values) == 3
    assert replay(callbacks.EarlyStopping(patience=2), values) is None


def test_early_stopping_start_from_epoch():
    es = callbacks.EarlyStopping(patience=0, start_from_epoch=2)
    assert replay(es, [1.0, 2.0, 3.0, 4.0]) == 3
    assert es.best == 3.0


def test_early_stopping_missing_monitor_warns():
    with pytest.warns(UserWarning, match="val_missing"):
        assert replay(callbacks.EarlyStopping("val_missing"), [1.0, 2.0]) is None


def test_early_stopping_in_fit_restores_the_best_weights():
    x, y = tiny_data()
    model = tiny_model()
    snapshots = []
    record = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    # with a huge min_delta no epoch after the first counts as an improvement
    es = callbacks.EarlyStopping(monitor="loss", min_delta=10, patience=2,
                                 restore_best_weights=True)
    history = model.fit(x, y, batch_size=8, epochs=10, verbose=0, callbacks=[record, es])
    assert history.epoch == [0, 1, 2] and es.stopped_epoch == 2 and es.best_epoch == 0
    for restored, best in zip(model.get_weights(), snapshots[0]):
        np.testing.assert_array_equal(restored, best)
    assert not np.array_equal(snapshots[0][0], snapshots[2][0])


def test_early_stopping_restores_even_without_stopping(capsys):
    model = tiny_model()
    es = callbacks.EarlyStopping(patience=5, restore_best_weights=True, verbose=1)
    es.set_model(model)
    es.on_train_begin()
    for epoch, value in enumerate([1.0, 0.5, 0.7]):
        model.layers[0].kernel[...] = epoch
        es.on_epoch_end(epoch, {"val_loss": value})
    es.on_train_end()
    np.testing.assert_array_equal(model.layers[0].kernel, 1)
    out = capsys.readouterr().out
    assert "best epoch: 2" in out and "early stopping" not in out


# ---- LearningRateScheduler -------------------------------------------------------------------

def test_learning_rate_scheduler_sets_and_logs_the_rate(capsys):
    x, y = tiny_data()
    model = tiny_model(optimizers.SGD(0.2))
    seen = []
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr,
                                                verbose=1)
    spy = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(model.optimizer.learning_rate))
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[scheduler, spy])
    assert seen == pytest.approx([0.2, 0.1, 0.05])
    assert history.history["learning_rate"] == pytest.approx([0.2, 0.1, 0.05])
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.1." in capsys.readouterr().out


def test_learning_rate_scheduler_takes_the_one_argument_form():
    model = tiny_model()
    scheduler = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    scheduler.set_model(model)
    scheduler.on_epoch_begin(4)
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_learning_rate_scheduler_rejects_bad_schedules():
    model = tiny_model()
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: "fast")
    scheduler.set_model(model)
    with pytest.raises(ValueError, match="Expected the schedule to return a float"):
        scheduler.on_epoch_begin(0)
    with pytest.raises(TypeError, match="Expected schedule to be callable"):
        callbacks.LearningRateScheduler(0.1)


# ---- ReduceLROnPlateau -----------------------------------------------------------------------

def test_reduce_lr_on_plateau_patience_and_cooldown():
    model = tiny_model(optimizers.SGD(0.1))
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)
    logged = []
    reduce.set_model(model)
    reduce.on_train_begin()
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]):
        logs = {"val_loss": value}
        reduce.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    # reduced after epochs 2 and 6; the log shows the rate the epoch trained with
    assert logged == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_reduce_lr_on_plateau_respects_min_lr_and_min_delta():
    model = tiny_model(optimizers.SGD(0.1))
    reduce = callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1,
                                         min_lr=0.08, min_delta=0.01)
    replay(reduce, [0.5, 0.505, 0.6, 0.6], monitor="val_accuracy", model=model)
    assert model.optimizer.learning_rate == 0.08  # floored at min_lr, then left there


def test_reduce_lr_on_plateau_in_fit():
    x, y = tiny_data()
    model = tiny_model(optimizers.SGD(0.1))
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", min_delta=10, patience=1, factor=0.5)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[reduce])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_reduce_lr_on_plateau_arguments():
    with pytest.raises(ValueError, match=r"Expected factor in \(0, 1\), received factor=1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)
    model = tiny_model(optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)))
    with pytest.raises(TypeError, match="schedule"):  # as in Keras, a schedule is not settable
        replay(callbacks.ReduceLROnPlateau(patience=0), [1.0, 1.0], model=model)


# ---- CSVLogger -------------------------------------------------------------------------------

def read_csv(path, separator=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=separator))


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    path = tmp_path / "log.csv"
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[callbacks.CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1"]
    for i, row in enumerate(rows[1:]):
        assert [float(v) for v in row[1:]] == [history.history[k][i] for k in rows[0][1:]]
    assert path.read_bytes().count(b"\r\n") == 3  # the csv module's excel dialect, as in Keras


def test_csv_logger_appends_and_fills_missing_validation(tmp_path):
    x, y = tiny_data()
    model = tiny_model()
    path = tmp_path / "log.csv"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, separator=";")])
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    rows = read_csv(path, ";")
    # without validation Keras still writes val_ columns, as NA
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(rows) == 4 and [row[0] for row in rows[1:]] == ["0", "0", "1"]
    assert all(row[3:] == ["NA", "NA"] for row in rows[1:])
    with pytest.raises(ValueError, match="Expected separator to be a one-character string"):
        callbacks.CSVLogger(path, separator=";;")


# ---- LambdaCallback --------------------------------------------------------------------------

def test_lambda_callback_calls_each_hook():
    x, y = tiny_data(16)
    events = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
        on_train_batch_begin=lambda batch, logs: events.append(f"batch_begin {batch}"),
        on_train_batch_end=lambda batch, logs: events.append(f"batch_end {batch} {sorted(logs)}"),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"),
        on_batch_end=lambda batch, logs: events.append("legacy"))
    tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert events == ["train_begin", "epoch_begin 0", "batch_begin 0",
                      "batch_end 0 ['accuracy', 'loss']", "legacy", "batch_begin 1",
                      "batch_end 1 ['accuracy', 'loss']", "legacy",
                      "epoch_end 0 ['accuracy', 'loss']", "train_end"]


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(TypeError, match="naming Callback hooks, received on_epoch_ending"):
        callbacks.LambdaCallback(on_epoch_ending=print)
    with pytest.raises(TypeError, match="Expected on_epoch_end to be callable"):
        callbacks.LambdaCallback(on_epoch_end=3)


# ---- the progress bar --------------------------------------------------------------------------

@pytest.mark.parametrize("verbose", [1, 2])
def test_progress_bar_is_silent_without_stdout(monkeypatch, verbose):
    # pythonw and some services run with sys.stdout None; print() is then a no-op, and so is
    # the bar, in fit, evaluate and predict alike.
    x, y = tiny_data()
    model = tiny_model()
    monkeypatch.setattr("sys.stdout", None)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=verbose, validation_split=0.25,
                        callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr, verbose=1)])
    assert len(history.history["loss"]) == 2
    assert np.isfinite(model.evaluate(x, y, verbose=verbose)).all()
    assert model.predict(x, verbose=verbose).shape == (24, 2)

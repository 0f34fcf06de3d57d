"""ModelCheckpoint (Keras semantics, atomic files that survive SIGKILL) and TerminateOnNaN."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastcnn
from fastcnn import callbacks, layers
from fastcnn.models import load_model
from fastcnn.saving import InvalidSaveFileError
from conftest import child_env


def make_model(seed=0):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 1)), layers.Conv2D(2, 3),
                                layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def noise_data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 6, 6, 1)).astype(np.float32),
            fastcnn.utils.to_categorical(rng.integers(0, 3, n), 3))


class FakeModel:
    """Records what a checkpoint asks it to save."""

    def __init__(self):
        self.saved = []

    def save(self, filepath, overwrite=True):
        self.saved.append(("model", filepath))

    def save_weights(self, filepath, overwrite=True):
        self.saved.append(("weights", filepath))


def run_epochs(checkpoint, logs_per_epoch):
    model = FakeModel()
    checkpoint.set_model(model)
    for epoch, logs in enumerate(logs_per_epoch):
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, logs)
    return model.saved


# -- ModelCheckpoint -----------------------------------------------------------------------
def test_formats_filepath_with_one_based_epoch_and_logs(tmp_path):
    model = make_model()
    x, y = noise_data()
    pattern = str(tmp_path / "new_dir" / "ckpt-{epoch:02d}-{val_loss:.3f}.keras")
    history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0,
                        callbacks=[callbacks.ModelCheckpoint(pattern)])
    expected = [f"ckpt-{e + 1:02d}-{v:.3f}.keras" for e, v in enumerate(history.history["val_loss"])]
    assert sorted(os.listdir(tmp_path / "new_dir")) == expected
    for epoch, name in enumerate(expected, start=1):
        assert load_model(tmp_path / "new_dir" / name).optimizer.iterations == 3 * epoch
    np.testing.assert_array_equal(load_model(tmp_path / "new_dir" / expected[-1]).predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_save_weights_only_writes_weights_files(tmp_path):
    model = make_model()
    x, y = noise_data()
    path = tmp_path / "last.weights.npz"
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(path, save_weights_only=True)])
    other = make_model(seed=5)
    other.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), model.get_weights()))
    with pytest.raises(InvalidSaveFileError, match="weights file"):
        load_model(path)


def test_save_freq_counts_batches_across_epochs(tmp_path):
    model = make_model()
    x, y = noise_data(24)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.keras"), save_freq=2)])
    assert sorted(os.listdir(tmp_path)) == ["e1-b2.keras", "e2-b1.keras", "e2-b3.keras"]
    assert load_model(tmp_path / "e2-b1.keras").optimizer.iterations == 4


@pytest.mark.parametrize("kwargs,values,saved_epochs", [
    ({}, [0.5, 0.7, 0.4, 0.4], [1, 3]),                          # auto on val_loss: min
    ({"monitor": "val_accuracy"}, [0.5, 0.7, 0.4, 0.8], [1, 2, 4]),  # auto on an accuracy: max
    ({"mode": "max"}, [0.5, 0.7, 0.4, 0.8], [1, 2, 4]),
    ({"mode": "min", "initial_value_threshold": 0.45}, [0.5, 0.7, 0.4, 0.3], [3, 4]),
    ({}, [float("nan"), 0.2, float("nan")], [2]),
])
def test_save_best_only(kwargs, values, saved_epochs):
    checkpoint = callbacks.ModelCheckpoint("best-{epoch}.keras", save_best_only=True, **kwargs)
    monitor = kwargs.get("monitor", "val_loss")
    saved = run_epochs(checkpoint, [{monitor: v} for v in values])
    assert saved == [("model", f"best-{e}.keras") for e in saved_epochs]


def test_verbose_messages_and_missing_monitor(capsys):
    checkpoint = callbacks.ModelCheckpoint("m.keras", save_best_only=True, verbose=1)
    assert run_epochs(checkpoint, [{"val_loss": 0.5}, {"val_loss": 0.6}]) == [("model", "m.keras")]
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to 0.50000, saving model to m.keras" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out
    with pytest.warns(UserWarning, match="only with val_loss available, skipping"):
        assert run_epochs(checkpoint, [{"loss": 0.1}]) == []
    plain = callbacks.ModelCheckpoint("w.npz", save_weights_only=True, verbose=1)
    assert run_epochs(plain, [{"loss": 0.1}]) == [("weights", "w.npz")]
    assert "Epoch 1: saving model to w.npz" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs,message", [
    ({"mode": "best"}, "mode='best'"),
    ({"save_freq": 0}, "save_freq=0"),
    ({"save_freq": "batch"}, "save_freq='batch'"),
    ({"save_freq": True}, "save_freq=True"),
])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        callbacks.ModelCheckpoint("m.keras", **kwargs)


def test_unknown_filepath_field_names_the_available_ones():
    checkpoint = callbacks.ModelCheckpoint("m-{val_acc:.2f}.keras")
    with pytest.raises(ValueError,
                       match=r"filepath='m-\{val_acc:.2f\}.keras'.*'epoch', 'loss'.*val_acc"):
        run_epochs(checkpoint, [{"loss": 0.1}])


@pytest.mark.parametrize("filepath,message", [
    ("m-{0}.keras", r"names such as \{epoch\}.*received \{0\}"),
    ("m-{}.keras", r"names such as \{epoch\}.*received \{\}"),
    ("m-{epoch.real}.keras", r"received \{epoch.real\}"),
    ("m-{loss[0]}.keras", r"received \{loss\[0\]\}"),
    ("m-{epoch.keras", "valid format template"),
    ("m-epoch}.keras", "valid format template"),
    ("m-{epoch:999999999d}.keras", "width of at most 255, received 999999999"),
    ("m-{epoch:0999999999}.keras", "width of at most 255, received 999999999"),
    ("m-{loss:.999999999f}.keras", "precision of at most 255, received 999999999"),
    ("m-{loss:{epoch}}.keras", "valid format for the field 'loss'"),
    ("m-{loss!x}.keras", "valid format for the field 'loss'"),
    ("m-{loss:d}.keras", "suit an int epoch and batch and float logs"),
])
def test_filepath_syntax_is_checked_when_built(filepath, message):
    with pytest.raises(ValueError, match=message):
        callbacks.ModelCheckpoint(filepath)


@pytest.mark.parametrize("filepath,kwargs,field", [
    ("m-{val_acc:.2f}.keras", {}, "val_acc"),
    ("m-{val_loss:.2f}.keras", {}, "val_loss"),                # no validation data
    ("m-{epoch}-{batch}.keras", {}, "batch"),                  # batches only with an int save_freq
    ("m-{learning_rate}.keras", {}, "learning_rate"),          # no callback logs it
    ("m-{batch}-{val_loss}.keras", {"save_freq": 2}, "val_loss"),  # validation ends an epoch
])
def test_filepath_fields_are_checked_before_the_first_batch(tmp_path, filepath, kwargs, field):
    model = make_model()
    x, y = noise_data()
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / filepath), **kwargs)
    with pytest.raises(ValueError, match=rf"'epoch', 'loss'.*received the field '{field}'"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[checkpoint])
    assert model.optimizer.iterations == 0 and os.listdir(tmp_path) == []


def test_filepath_may_name_every_log_fit_writes(tmp_path):
    model = make_model()
    x, y = noise_data()
    pattern = "{epoch}-{loss:.2f}-{accuracy:.2f}-{val_loss:.2f}-{val_accuracy:.2f}-{learning_rate}"
    history = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(), callbacks.ModelCheckpoint(str(tmp_path / pattern))])
    logs = history.history
    assert sorted(os.listdir(tmp_path)) == [
        pattern.format(epoch=e + 1, **{k: v[e] for k, v in logs.items()}) for e in range(2)]


def test_filepath_names_the_outputs_of_a_multi_output_model(tmp_path):
    inputs = fastcnn.Input(shape=(3,))
    model = fastcnn.Model(inputs, [layers.Dense(2, activation="softmax", name="a")(inputs),
                                   layers.Dense(1, name="b")(inputs)])
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], []])
    x = np.ones((8, 3), np.float32)
    y = [fastcnn.utils.to_categorical(np.arange(8) % 2, 2), np.zeros((8, 1), np.float32)]
    fit = lambda pattern: model.fit(x, y, epochs=1, verbose=0, callbacks=[  # noqa: E731
        callbacks.ModelCheckpoint(str(tmp_path / pattern), save_weights_only=True)])
    fit("{a_loss:.2f}-{b_loss:.2f}-{a_accuracy:.2f}.weights.npz")
    assert len(os.listdir(tmp_path)) == 1
    with pytest.raises(ValueError, match="received the field 'b_accuracy'"):
        fit("{b_accuracy}.weights.npz")


# -- TerminateOnNaN ------------------------------------------------------------------------
def test_terminate_on_nan_stops_a_fit_on_nan_data_cleanly(capsys):
    model = make_model()
    x, y = noise_data(32)
    x[20] = np.nan  # in the third batch of 8
    history = model.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert model.stop_training and model.optimizer.iterations == 3
    assert history.epoch == [0] and np.isnan(history.history["loss"][0])
    assert capsys.readouterr().out == "Batch 2: Invalid loss, terminating training\n"


def test_terminate_on_nan_also_stops_on_infinity_and_not_otherwise():
    model = FakeModel()
    model.stop_training = False
    terminate = callbacks.TerminateOnNaN()
    terminate.set_model(model)
    terminate.on_train_batch_end(0, {"loss": 1e30})
    terminate.on_train_batch_end(1, {})
    assert not model.stop_training
    terminate.on_train_batch_end(2, {"loss": float("inf")})
    assert model.stop_training


# -- SIGKILL at random moments -------------------------------------------------------------
# A fork server: it imports fastcnn once (never running a kernel) and then forks one training
# child per trial, so a trial costs a fork instead of an interpreter start. Children use one
# thread, which also keeps OpenMP clear of fork. The server, which alone may reap a child and so
# free its pid, is the one that sends SIGKILL.
SERVER = textwrap.dedent(r"""
    import json, os, signal, sys, traceback
    import numpy as np
    import fastcnn
    from fastcnn import callbacks, layers

    def make_model():
        return fastcnn.Sequential([fastcnn.Input(shape=(12, 12, 1)),
                                   layers.Conv2D(8, 3, activation="relu"), layers.Flatten(),
                                   layers.Dense(10, activation="softmax")])

    def train(filepath, kind):
        fastcnn.utils.set_random_seed(0)
        model = make_model()  # about 60 kB of weights and Adam slots to write every epoch
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((16, 12, 12, 1)).astype(np.float32)
        y = fastcnn.utils.to_categorical(rng.integers(0, 10, 16), 10)
        checkpoint = callbacks.ModelCheckpoint(filepath, save_weights_only=kind == "weights")
        model.fit(x, y, batch_size=8, epochs=10**6, verbose=0, callbacks=[checkpoint])

    print(json.dumps(make_model().get_config()), flush=True)
    for line in iter(sys.stdin.readline, ""):  # a trial: "<filepath>\t<kind>", later "kill"
        filepath, kind = line.rstrip("\n").split("\t")
        pid = os.fork()
        if pid == 0:  # train until killed; anything else is reported and fails the trial
            try:
                train(filepath, kind)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
            os._exit(1)
        sys.stdin.readline()
        os.kill(pid, signal.SIGKILL)
        print(os.waitpid(pid, 0)[1], flush=True)
""")
STEPS_PER_EPOCH = 2
# (checkpoint filepath, what it saves, the names it writes: group 1 is the epoch when named)
VARIANTS = [("ckpt-{epoch:06d}.keras", "model", re.compile(r"ckpt-(\d{6})\.keras")),
            ("ckpt.keras", "model", re.compile(r"ckpt\.keras()")),
            ("ckpt-{epoch:06d}.weights.npz", "weights", re.compile(r"ckpt-(\d{6})\.weights\.npz"))]
TEMP = re.compile(r"\.ckpt.*\.[0-9a-f]{8}\.tmp")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the training children are forked")
def test_sigkill_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    """Kill a training child mid-fit >= 20 times; the newest checkpoint must always load, and its
    optimizer step count must be the one its epoch implies (no stale or torn content)."""
    rng = np.random.default_rng()
    trials, temps_left, start = 40, 0, time.monotonic()
    with open(tmp_path / "server.log", "w+") as log:
        server = subprocess.Popen([sys.executable, "-c", SERVER], env={**child_env(), "OMP_NUM_THREADS": "1"},
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            architecture = json.loads(server.stdout.readline() or "null")
            assert architecture, log.seek(0) or log.read()
            for trial in range(trials):
                pattern, kind, checkpoint_name = VARIANTS[trial % len(VARIANTS)]
                directory = tmp_path / f"trial{trial}"
                directory.mkdir()
                server.stdin.write(f"{directory / pattern}\t{kind}\n")
                server.stdin.flush()
                deadline = time.monotonic() + 30
                while not any(checkpoint_name.fullmatch(n) for n in os.listdir(directory)):
                    assert time.monotonic() < deadline, log.seek(0) or log.read()
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.1))
                server.stdin.write("kill\n")
                server.stdin.flush()
                status = int(server.stdout.readline())
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
                    log.seek(0) or log.read()

                names = os.listdir(directory)
                checkpoints = sorted(n for n in names if checkpoint_name.fullmatch(n))
                temps = [n for n in names if TEMP.fullmatch(n)]
                assert sorted(checkpoints + temps) == sorted(names), names
                temps_left += bool(temps)
                newest = directory / checkpoints[-1]
                if kind == "weights":
                    fastcnn.Sequential.from_config(architecture).load_weights(newest)
                    continue
                model = load_model(newest)
                epoch = checkpoint_name.fullmatch(checkpoints[-1]).group(1)
                steps = model.optimizer.iterations
                assert steps == int(epoch) * STEPS_PER_EPOCH if epoch else steps % STEPS_PER_EPOCH == 0
                assert np.all(np.isfinite(model.predict(np.zeros((1, 12, 12, 1), np.float32), verbose=0)))
        finally:
            server.stdin.close()
            server.wait(timeout=30)
    print(f"\n{trials} SIGKILL trials in {time.monotonic() - start:.1f} s; "
          f"{temps_left} were killed mid-write and left a temporary file")


def test_filepath_may_name_what_a_callback_declares_it_logs(tmp_path):
    class LogsWidth(callbacks.Callback):
        logged_names = ("width",)

        def on_epoch_end(self, epoch, logs=None):
            logs["width"] = 2.0 * (epoch + 1)

    model = make_model()
    x, y = noise_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[
        LogsWidth(), callbacks.ModelCheckpoint(str(tmp_path / "w{width:.0f}.keras"))])
    assert sorted(os.listdir(tmp_path)) == ["w2.keras", "w4.keras"]

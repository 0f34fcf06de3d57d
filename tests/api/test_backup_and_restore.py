"""BackupAndRestore: a fit killed with SIGKILL at some step, then run again, ends with the
weights of a fit never interrupted, bitwise: mid-epoch backups included, for arrays and
PyDatasets (shuffled), with dropout and Adam's slots to restore."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import Crash, crash_after

import fastcnn
from fastcnn import layers

EPOCHS, N, BATCH = 3, 48, 8  # 6 steps an epoch, 18 in all


class Batches(fastcnn.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__(workers=2)
        self.x, self.y = x, y

    def __len__(self):
        return N // BATCH

    def __getitem__(self, i):
        return self.x[i * BATCH:(i + 1) * BATCH], self.y[i * BATCH:(i + 1) * BATCH]


class KillAt(fastcnn.callbacks.Callback):
    """SIGKILL this process once ``step`` batches (counted over the whole fit) have ended."""

    def __init__(self, step):
        super().__init__()
        self.step, self.done = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def train(kind, backup_dir=None, save_freq="epoch", kill_at=None):
    """The weights (as lists) and history of the seeded fit."""
    fastcnn.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N, 6, 6, 1)).astype(np.uint8)
    y = rng.integers(0, 3, N)
    model = fastcnn.Sequential([fastcnn.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                                layers.Flatten(), layers.Dropout(0.3),
                                layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    callbacks = []
    if backup_dir is not None:
        callbacks.append(fastcnn.callbacks.BackupAndRestore(backup_dir, save_freq=save_freq))
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    data = (Batches(x, y),) if kind == "pydataset" else (x, y)
    kwargs = {} if kind == "pydataset" else {"batch_size": BATCH}
    history = model.fit(*data, epochs=EPOCHS, callbacks=callbacks, verbose=0, **kwargs)
    return [w.tolist() for w in model.get_weights()], history.history


def _run(kind, backup_dir, save_freq, kill_at):
    from conftest import child_env
    here = os.path.dirname(os.path.abspath(__file__))
    args = [sys.executable, __file__, kind, str(backup_dir), json.dumps(save_freq),
            json.dumps(kill_at)]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=300,
                          env=child_env(here))


@pytest.mark.parametrize("kind, save_freq, kills", [
    ("arrays", 1, [5, 9]),          # mid-epoch, twice
    ("arrays", 4, [11]),           # redoes the steps since the last backup
    ("arrays", "epoch", [8]),
    ("pydataset", 1, [3]),
])
def test_a_killed_fit_resumes_bitwise(tmp_path, kind, save_freq, kills):
    want, want_history = train(kind)
    for kill_at in kills:
        done = _run(kind, tmp_path, save_freq, kill_at)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert os.path.exists(tmp_path / "backup.npz")
    done = _run(kind, tmp_path, save_freq, None)
    assert done.returncode == 0, done.stderr
    got, history = json.loads(done.stdout)
    assert got == want
    # the resumed epochs log what the uninterrupted fit logged for them, metrics included
    last = len(history["loss"])
    assert set(history) == {"loss", "acc"}
    assert history == {k: v[EPOCHS - last:] for k, v in want_history.items()}
    assert not os.path.exists(tmp_path / "backup.npz")  # delete_checkpoint


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="save_freq"):
        fastcnn.callbacks.BackupAndRestore("dir", save_freq=0)
    with pytest.raises(ValueError, match="backup_dir"):
        fastcnn.callbacks.BackupAndRestore("")


if __name__ == "__main__":
    weights, logged = train(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]),
                            json.loads(sys.argv[4]))
    print(json.dumps([weights, logged]))


def test_a_generator_restarts_the_interrupted_epoch(tmp_path):
    """A generator cannot be rewound: the resumed fit runs the interrupted epoch in full, from
    the weights of the last backup."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 6)).astype(np.float32), rng.integers(0, 3, N)
    def forever():
        while True:
            for i in range(0, N, BATCH):
                yield x[i:i + BATCH], y[i:i + BATCH]

    class Crash(fastcnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if len(epochs_seen) == 2 and batch == 3:  # mid-epoch 1, after a backup
                raise KeyboardInterrupt

    epochs_seen = []
    record = fastcnn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epochs_seen.append(epoch))
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    backup = fastcnn.callbacks.BackupAndRestore(tmp_path, save_freq=2)
    with pytest.raises(KeyboardInterrupt):
        model.fit(forever(), steps_per_epoch=6, epochs=EPOCHS, verbose=0,
                  callbacks=[backup, record, Crash()])
    assert epochs_seen == [0, 1]
    epochs_seen.clear()
    history = model.fit(forever(), steps_per_epoch=6, epochs=EPOCHS, verbose=0,
                        callbacks=[backup, record])
    assert epochs_seen == [1, 2] and len(history.history["loss"]) == 2


def _dense_fit(optimizer, backup_dir=None, crash_at=None, metrics=("acc",)):
    """(weights, history) of a seeded fit, or None when it crashed after ``crash_at``
    batches."""
    fastcnn.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((N, 6)).astype(np.float32), rng.integers(0, 3, N)
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(8, activation="relu"),
                                layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    model.compile(optimizer(), "sparse_categorical_crossentropy", metrics=list(metrics))
    callbacks = [] if backup_dir is None else [
        fastcnn.callbacks.BackupAndRestore(backup_dir, save_freq=1)]
    callbacks.append(crash_after(crash_at))
    try:
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, callbacks=callbacks,
                            verbose=0)
    except Crash:
        return None
    return model.get_weights(), history.history


@pytest.mark.parametrize("options", [{"use_ema": True, "ema_overwrite_frequency": 4},
                                     {"gradient_accumulation_steps": 4}],
                         ids=["ema", "accumulation"])
def test_optimizer_state_of_ema_and_gradient_accumulation_comes_back(tmp_path, options):
    """The weights' moving average and the gradients summed in an unfinished accumulation
    cycle (a crash after 7 batches, within the second cycle of 4) are restored too."""
    try:
        fastcnn.optimizers.SGD(0.1, momentum=0.9, **options)
    except TypeError:
        pytest.skip("these optimizer options come with [data]'s optimizers")

    def optimizer():
        return fastcnn.optimizers.SGD(0.1, momentum=0.9, **options)

    want, _ = _dense_fit(optimizer)
    assert _dense_fit(optimizer, tmp_path, crash_at=7) is None
    got, _ = _dense_fit(optimizer, tmp_path)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


class LabelCount(fastcnn.metrics.Metric):
    """A metric written as Keras's guide writes one: state in add_variable's variables."""

    def __init__(self, name="label_count", **kwargs):
        super().__init__(name=name, **kwargs)
        self.seen = self.add_variable(shape=(3,), name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.seen.assign_add(np.bincount(np.asarray(y_true).reshape(-1), minlength=3))

    def result(self):
        return float(self.seen.value @ [1, 100, 10000])


def test_the_state_of_metrics_comes_back_mid_epoch(tmp_path):
    def metrics():
        return ["acc", "crossentropy", LabelCount()]

    want = _dense_fit(lambda: fastcnn.optimizers.Adam(), metrics=metrics())
    assert _dense_fit(lambda: fastcnn.optimizers.Adam(), tmp_path, crash_at=9,
                      metrics=metrics()) is None
    got = _dense_fit(lambda: fastcnn.optimizers.Adam(), tmp_path, metrics=metrics())
    assert got[1] == {k: v[1:] for k, v in want[1].items()}  # epochs 2 and 3, the first resumed

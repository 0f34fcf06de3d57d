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
    return subprocess.run(args, capture_output=True, text=True, timeout=300,
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

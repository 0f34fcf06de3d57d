"""BackupAndRestore with an image folder: a fit on image_dataset_from_directory's dataset (shuffled
anew each epoch, mapped, with dropout), killed with SIGKILL mid-epoch and run again, ends with
the weights of a fit never interrupted, bitwise: each epoch's order is rebuilt from the
dataset's seed and the epoch."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import child_env, write_images
from test_backup_and_restore import KillAt

import fastcnn
from fastcnn import layers

pytest.importorskip("PIL")
EPOCHS, N, BATCH = 3, 40, 8  # 5 steps an epoch, 15 in all


def train(folder, backup_dir=None, kill_at=None):
    """The weights (as lists) of the seeded fit."""
    fastcnn.utils.set_random_seed(7)
    ds = fastcnn.utils.image_dataset_from_directory(
        folder, image_size=(6, 6), color_mode="grayscale", batch_size=BATCH, seed=3,
        verbose=False).map(lambda x, y: (x / np.float32(255), y))
    model = fastcnn.Sequential([fastcnn.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                                layers.Flatten(), layers.Dropout(0.3),
                                layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    callbacks = []
    if backup_dir is not None:
        callbacks.append(fastcnn.callbacks.BackupAndRestore(backup_dir, save_freq=1))
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    model.fit(ds, epochs=EPOCHS, callbacks=callbacks, verbose=0)
    return [w.tolist() for w in model.get_weights()]


def test_a_killed_fit_on_an_image_folder_resumes_bitwise(tmp_path):
    rng = np.random.default_rng(0)
    folder = write_images(tmp_path / "data", {f"c{i % 3}/{i}.png": rng.integers(0, 256, (7, 9))
                                              for i in range(N)})
    want = train(folder)
    backup = tmp_path / "backup"
    here = os.path.dirname(os.path.abspath(__file__))
    for kill_at in (3, 8):  # mid-epoch in the first and second epochs
        done = subprocess.run([sys.executable, __file__, str(folder), str(backup),
                               json.dumps(kill_at)], capture_output=True, text=True,
                              timeout=300, env=child_env(here))
        assert done.returncode == -signal.SIGKILL, done.stderr
    done = subprocess.run([sys.executable, __file__, str(folder), str(backup), "null"],
                          capture_output=True, text=True, timeout=300, env=child_env(here))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == want


if __name__ == "__main__":
    print(json.dumps(train(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))

"""BackupAndRestore: a fit killed at any moment continues, when the same script runs again,
from its last backup, bitwise as if it had never stopped."""
import contextlib
import json
import os

import numpy as np

from ..saving import atomic_write
from .base import Callback

BACKUP_NAME = "backup.npz"


class BackupAndRestore(Callback):
    """Back up a fit to ``backup_dir`` at the end of every epoch (``save_freq="epoch"``) or every
    ``save_freq`` batches (an int), and restore the latest backup when a fit starts: the weights,
    the optimizer's slots and step count, the model's seed, the epoch and the step within it, the
    running loss and metric sums, the random streams of the dropout and augmentation layers, and
    the position in the pass over the data that epochs of ``steps_per_epoch`` share. Arrays and PyDatasets then continue from the next batch, in the order the uninterrupted
    fit would have used, so the final weights are bitwise the same. A generator's position
    cannot be saved: with one, a fit restarts the interrupted epoch from the generator's next
    batch (with the weights of the backup).

    The backup is one file, ``backup_dir/backup.npz``, written atomically (``saving.
    atomic_write``), so a kill while saving leaves the previous backup. With
    ``delete_checkpoint`` it is removed when the fit ends normally. The script that resumes must
    build and compile the same model and call fit with the same arguments.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        backup_dir = os.fspath(backup_dir)
        if not isinstance(backup_dir, str) or not backup_dir:
            raise ValueError(f"Expected backup_dir to be a folder path, received "
                             f"backup_dir={backup_dir!r:.200}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f'Expected save_freq "epoch" or an int > 0, received '
                             f'save_freq={save_freq!r:.200}')
        self.backup_dir = backup_dir
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self._path = os.path.join(backup_dir, BACKUP_NAME)
        self._batches = 0

    def _state(self):
        state = getattr(self.model, "_fit_state", None)
        if state is None:
            raise RuntimeError("BackupAndRestore works inside fit: pass it in fit's callbacks")
        return state

    def on_train_begin(self, logs=None):
        self._batches = 0
        if not os.path.exists(self._path):
            return
        model, state = self.model, self._state()
        with np.load(self._path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["state"]))
            weights = model.weights
            if meta["weights"] != len(weights):
                raise ValueError(f"Expected a backup of a model with {len(weights)} weights in "
                                 f"{self._path}, received one with {meta['weights']}")
            for k, w in enumerate(weights):
                w[...] = archive[f"weights/{k:04d}"]
            optimizer, trainable = model.optimizer, model.trainable_weights
            optimizer.iterations = meta["iterations"]
            if meta.get("calls") is not None:
                optimizer._iterations = meta["calls"]
            if meta["slots"]:
                optimizer.set_slots(trainable, [
                    [archive[f"slots/{s}/{k:04d}"] for k in range(len(trainable))]
                    for s in optimizer.slot_names])
        model.seed = meta["seed"]
        self._batches = meta["batches"]
        state.restore(meta["fit"])

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._state().snapshot())

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(self._state().epoch_end_snapshot())

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path)

    def _save(self, fit_state):
        model, optimizer = self.model, self.model.optimizer
        trainable = model.trainable_weights
        slots = optimizer.has_slots(trainable)
        arrays = {f"weights/{k:04d}": w for k, w in enumerate(model.weights)}
        if slots:
            for name, values in zip(optimizer.slot_names, optimizer.slots_for(trainable)):
                arrays.update({f"slots/{name}/{k:04d}": v for k, v in enumerate(values)})
        # An optimizer that accumulates gradients counts its calls apart from its updates
        # (``_iterations``); the calls within an unfinished cycle must come back too.
        calls = getattr(optimizer, "_iterations", None)
        meta = {"weights": len(model.weights), "iterations": int(optimizer.iterations),
                "calls": None if calls is None else int(calls),
                "slots": slots, "seed": int(model.seed), "batches": self._batches,
                "fit": fit_state}
        os.makedirs(self.backup_dir, exist_ok=True)
        with atomic_write(self._path) as f:
            np.savez(f, state=np.array(json.dumps(meta)), **arrays)

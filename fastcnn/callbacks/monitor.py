"""Callbacks that steer training from its logs: stop it (TerminateOnNaN, EarlyStopping) or
set its learning rate (LearningRateScheduler, ReduceLROnPlateau)."""
import math
import numbers
import warnings

from .._ops.checks import shown
from ..arguments import finite_float, one_of
from .base import Callback, check_monitor


class TerminateOnNaN(Callback):
    """Stop training after the first batch whose loss is NaN or infinite, as Keras does."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def _monitor_op(mode, monitor, min_delta):
    """``better(current, best)``: whether current improves on best (None: nothing yet) by more
    than min_delta. Mode "auto" maximises names containing "acc" and minimises the rest."""
    check_monitor(monitor)
    one_of(mode, ("auto", "min", "max"), "mode")  # Keras warns and falls back to "auto"
    if mode == "max" or (mode == "auto" and "acc" in monitor):
        return lambda current, best: best is None or current - min_delta > best
    return lambda current, best: best is None or current + min_delta < best


def _warn_missing(what, monitor, logs):
    warnings.warn(f"{what} is conditioned on metric `{monitor}` which is not available. "
                  f"Available metrics are: {','.join(logs)}", stacklevel=3)


class EarlyStopping(Callback):
    """Stop training once ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs, with Keras 3's rules.

    Epochs before ``start_from_epoch`` are not counted. With a ``baseline``, the wait restarts
    only on epochs that also beat it. With ``restore_best_weights``, the weights of the best
    epoch are put back when training ends, whether or not it stopped early.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        if finite_float(min_delta) is None:  # abs() of an array would copy it whole
            raise ValueError(f"Expected min_delta to be a finite number, received "
                             f"min_delta={shown(min_delta)}")
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op(mode, monitor, self.min_delta)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            _warn_missing("Early stopping", self.monitor, logs)
            return
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self.monitor_op(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.monitor_op(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``, Keras's older form), and log it as "learning_rate"."""

    logged_names = ("learning_rate",)

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"Expected schedule to be callable, received schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, optimizer.current_learning_rate())
        except TypeError:  # a one-argument schedule, as Keras also accepts
            learning_rate = self.schedule(epoch)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
            raise ValueError(f"Expected the schedule to return a float, received {learning_rate!r}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.current_learning_rate()


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` (not below ``min_lr``) once ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs, then wait ``cooldown`` epochs
    before counting again; logs "learning_rate", as Keras does."""

    logged_names = ("learning_rate",)

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        # Keras also allows factor 0, but fastcnn's learning rates must stay positive.
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor < 1:
            raise ValueError(f"Expected factor in (0, 1), received factor={factor!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.monitor_op = _monitor_op(mode, monitor, min_delta)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["learning_rate"] = optimizer.current_learning_rate()
        current = logs.get(self.monitor)
        if current is None:
            _warn_missing("Learning rate reduction", self.monitor, logs)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            old_lr = optimizer.current_learning_rate()
            if self.wait >= self.patience and old_lr > self.min_lr:
                new_lr = max(old_lr * self.factor, self.min_lr)
                optimizer.learning_rate = new_lr
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{new_lr}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0

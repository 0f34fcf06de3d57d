"""Callbacks with Keras's hooks: History, the progress bar, and the base class for your own."""
import sys

from .progbar import Progbar


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    # Keras 2 names, still used by many scripts
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls every callback's hook in order; ``on_train_batch_*`` also reach ``on_batch_*``."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Expected callbacks to be Callback instances, received {cb!r}")
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        legacy = {"on_train_batch_begin": "on_batch_begin",
                  "on_train_batch_end": "on_batch_end"}.get(hook)

        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
                if legacy:
                    getattr(cb, legacy)(*args)
        return call


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is the per-epoch list."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and a progress bar (verbose=1) or one line per epoch (verbose=2)."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.stream.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
        self._bar = Progbar(self.params["steps"], self.stream)
        if self.verbose != 1:
            self._bar.interactive = False

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(batch + 1, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        self._bar.finish(logs or {})

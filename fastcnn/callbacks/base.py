"""The callback contract and what every fit runs: Callback, CallbackList (calls the hooks),
History, the progress bar, and LambdaCallback (hooks from plain functions)."""

from ..progbar import Progbar


class Callback:
    # The names a callback adds to an epoch's logs; fit lists them in params["metrics"].
    logged_names = ()

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
    """Calls every callback's hook in order; ``on_train_batch_*`` also reach ``on_batch_*``.
    fit fires the on_train_*, on_epoch_* and (while it validates) on_test_* hooks, evaluate the
    on_test_* hooks and predict the on_predict_* hooks."""

    def __init__(self, callbacks, model, params):
        if not isinstance(callbacks, (list, tuple)):  # an array would be unpacked row by row
            raise TypeError(f"Expected callbacks to be a list of Callback instances, received "
                            f"{type(callbacks).__name__}")
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
        # Every hook gets its logs, a dict (empty when there is nothing to log), so hooks
        # written as plain functions of (logs) or (epoch, logs) work: LambdaCallback's, for one.
        arity = 2 if "epoch" in hook or "batch" in hook else 1

        def call(*args):
            if len(args) < arity:
                args += ({},)
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
        self.stream = stream
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._bar = Progbar(self.params["steps"], self.stream)
        self._bar.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
        # A generator's first epoch has no known length to draw a bar against.
        if self.verbose != 1 or self._bar.total is None:
            self._bar.interactive = False
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1
        self._bar.update(batch + 1, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self._bar.total is None:
            self._bar.total = self._steps
        self._bar.finish(logs or {})


class LambdaCallback(Callback):
    """A callback made of plain functions, with Keras's signatures: ``on_epoch_begin(epoch,
    logs)``, ``on_train_begin(logs)``, ``on_train_batch_end(batch, logs)``, ...; any other hook
    of Callback may be given by keyword."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for hook, function in hooks.items():
            if not (hook.startswith("on_") and callable(getattr(Callback, hook, None))):
                raise TypeError(f"Expected keyword arguments naming Callback hooks, "
                                f"received {hook}")
            if function is not None and not callable(function):
                raise TypeError(f"Expected {hook} to be callable, received {hook}={function!r}")
            if function is not None:
                setattr(self, hook, function)


def check_monitor(monitor):
    """``monitor``, the name of a logged quantity such as "val_loss", or a TypeError."""
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"Expected monitor to be the name of a logged quantity such as "
                        f"'val_loss', received monitor={monitor!r:.200}")
    return monitor

"""ModelCheckpoint: the model, or its weights, saved during training."""
import math
import operator
import os
import re
import string
import warnings

from ..arguments import one_of
from .base import Callback, check_monitor

# Longest width or precision a filepath field may ask for: a file name holds at most 255 bytes
# on common file systems, and "{epoch:999999999d}" would otherwise build a gigabyte string.
MAX_FIELD_WIDTH = 255
# Python's format-spec mini-language:
# [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?"
                   r"[bcdeEfFgGnosxX%]?")


def _template_fields(filepath):
    """The field names of the template ``filepath``, once its syntax is checked: named fields
    only, with a format spec and conversion that an int (epoch, batch) or float (a log) takes."""
    try:
        parsed = list(string.Formatter().parse(filepath))
    except ValueError as error:
        raise ValueError(f"Expected filepath to be a valid format template, received "
                         f"filepath={filepath!r}: {error}") from None
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or any(c in name for c in ".[]"):
            raise ValueError(f"Expected filepath's fields to be names such as {{epoch}} or "
                             f"{{val_loss}}, received {{{name}}} in filepath={filepath!r}")
        match = _SPEC.fullmatch(spec)
        if match is None or conversion not in (None, "r", "s", "a"):
            raise ValueError(f"Expected a valid format for the field {name!r}, received "
                             f"{spec!r}{'' if conversion is None else ' !' + conversion} "
                             f"in filepath={filepath!r}")
        for part in ("width", "precision"):
            if int(match[part] or 0) > MAX_FIELD_WIDTH:
                raise ValueError(f"Expected the field {name!r} of filepath={filepath!r} to have "
                                 f"a {part} of at most {MAX_FIELD_WIDTH}, received {match[part]}")
        fields.append(name)
    return fields


def _sample_values(fields):
    # Values of the types fit logs: ints for the epoch and batch, floats for everything else.
    return {f: 1 if f in ("epoch", "batch") else 0.5 for f in fields}


class ModelCheckpoint(Callback):
    """Save the model, or its weights, every epoch or every ``save_freq`` batches, as Keras does.

    ``filepath`` may hold format fields filled from the 1-based epoch, the 1-based batch (with an
    int ``save_freq``) and the logs: ``"ckpt-{epoch:02d}-{val_loss:.2f}.keras"``. Its syntax is
    checked when the callback is built (named fields only, widths and precisions up to
    ``MAX_FIELD_WIDTH``), its names at the start of fit, against the names fit will log (its
    ``params["metrics"]``; a callback that adds names to the logs lists them in its
    ``logged_names``). Each file is written atomically (``fastcnn.saving.atomic_write``),
    so a crash at any moment leaves the previous checkpoint or the complete new one. With
    ``save_best_only`` a file is written only when ``monitor`` improves; mode "auto" maximises
    names containing "acc" and minimises others.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        one_of(mode, ("auto", "min", "max"), "mode")  # Keras warns and falls back to "auto"
        by_epoch = isinstance(save_freq, str) and save_freq == "epoch"  # no elementwise ==
        if not by_epoch and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                             or save_freq < 1):
            raise ValueError(f'Expected save_freq "epoch" or an int > 0, received '
                             f'save_freq={save_freq!r}')
        self.filepath = os.fspath(filepath)
        if not isinstance(self.filepath, str):
            raise TypeError(f"Expected filepath to be a str or path, received "
                            f"{type(self.filepath).__name__}")
        self._fields = _template_fields(self.filepath)
        try:
            self.filepath.format(**_sample_values(self._fields))
        except ValueError as error:
            raise ValueError(f"Expected filepath's formats to suit an int epoch and batch and "
                             f"float logs, received filepath={self.filepath!r}: {error}") from None
        self.monitor = check_monitor(monitor)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.save_freq = save_freq
        if mode == "auto":
            mode = "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"
        self.monitor_op = operator.gt if mode == "max" else operator.lt
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = -math.inf if mode == "max" else math.inf
        self._current_epoch = 0
        self._batches_since_save = 0

    def on_train_begin(self, logs=None):
        if "metrics" not in self.params:  # driven by hand, not by fit: checked at each save
            return
        known = {"epoch", *self.params["metrics"]}
        if self.save_freq != "epoch":  # validation runs at an epoch's end, not mid-epoch
            known = {"batch"} | {n for n in known if not n.startswith("val_")}
        unknown = [f for f in self._fields if f not in known]
        if unknown:
            raise ValueError(f"Expected filepath={self.filepath!r} to name only the fields "
                             f"{sorted(known)}, received the field {unknown[0]!r}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _file_path(self, epoch, batch, logs):
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        unknown = [f for f in self._fields if f not in fields]
        if unknown:
            raise ValueError(f"Expected filepath={self.filepath!r} to name only the fields "
                             f"{sorted(fields)}, received the field {unknown[0]!r}")
        return self.filepath.format(**fields)

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._file_path(epoch, batch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.",
                              stacklevel=2)
                return
            if not self.monitor_op(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {filepath}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)

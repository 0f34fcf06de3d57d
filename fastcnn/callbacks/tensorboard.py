"""TensorBoard: losses, metrics and the learning rate as scalar summaries, and optionally the
weights as histograms, in event files that TensorBoard reads (written by _event_file, without
TensorFlow)."""
import numbers
import os

from .base import Callback
from ._event_file import EventFileWriter


class TensorBoard(Callback):
    """Keras's TensorBoard callback: run folders ``log_dir/train`` and ``log_dir/validation``.

    - Every epoch: ``epoch_<name>`` at step ``epoch`` for each training log and the learning
      rate (train/), and for each ``val_<name>`` log (validation/, the prefix removed).
    - ``update_freq="batch"`` or an int n: also ``batch_<name>`` of the training logs every n
      batches, at the step that counts the batches of the whole fit from 1.
    - ``histogram_freq`` = n > 0: every n-th epoch (from epoch 0), a histogram of each weight,
      tagged ``<layer name>/<weight name>/histogram``, in train/.
    - After an evaluation with callbacks, ``evaluation_<name>_vs_iterations`` at the
      optimizer's step count, in validation/.

    ``write_graph`` is accepted and ignored: fastcnn has no graph for TensorBoard to draw.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, numbers.Integral) \
                or histogram_freq < 0:
            raise ValueError(f"Expected histogram_freq to be an int >= 0, received "
                             f"histogram_freq={histogram_freq!r}")
        self.histogram_freq = int(histogram_freq)
        if isinstance(update_freq, str) and update_freq == "batch":
            update_freq = 1
        if not (isinstance(update_freq, str) and update_freq == "epoch") and (isinstance(update_freq, bool) or not isinstance(
                update_freq, numbers.Integral) or update_freq < 1):
            raise ValueError(f"Expected update_freq to be 'epoch', 'batch' or an int >= 1, "
                             f"received update_freq={update_freq!r}")
        self.update_freq = update_freq
        self.write_graph = write_graph
        unsupported = {"write_images": write_images, "write_steps_per_second":
                       write_steps_per_second, "profile_batch": profile_batch,
                       "embeddings_freq": embeddings_freq, "embeddings_metadata":
                       embeddings_metadata}
        used = {key: value for key, value in unsupported.items() if value}
        if used:
            raise ValueError(f"Expected TensorBoard without {sorted(used)}: fastcnn writes "
                             f"scalars and weight histograms only, received {used}")
        self._writers = {}
        self._train_step = 0

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = EventFileWriter(os.path.join(self.log_dir, run))
        return self._writers[run]

    def on_train_begin(self, logs=None):
        self._train_step = 0

    def on_train_batch_end(self, batch, logs=None):
        self._train_step += 1
        if self.update_freq != "epoch" and self._train_step % self.update_freq == 0:
            self._writer("train").add_scalars(_scalars(logs, "batch_"), self._train_step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            train["learning_rate"] = optimizer.learning_rate
        self._writer("train").add_scalars(_scalars(train, "epoch_"), epoch)
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if validation:
            self._writer("validation").add_scalars(_scalars(validation, "epoch_"), epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and logs:
            writer = self._writer("validation")
            writer.add_scalars({f"evaluation_{name}_vs_iterations": value for name, value
                                in _scalars(logs, "").items()}, optimizer.iterations)
            writer.flush()

    def _log_weights(self, epoch):
        writer = self._writer("train")
        for (owner, i), weight in zip(self.model._weight_owners(), self.model.weights):
            writer.add_histogram(f"{owner.name}/{owner._weight_names[i]}/histogram", weight, epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _scalars(logs, prefix):
    """The logs that are numbers, as floats, their names prefixed."""
    return {prefix + name: float(value) for name, value in (logs or {}).items()
            if isinstance(value, numbers.Real) and not isinstance(value, bool)}

"""Training: compile, fit, evaluate and predict, and the steps that run a model's layers.

``Trainer`` is the half of a model that trains it; a model class (``Sequential``) inherits it and
provides the layers (``layers``, ``build``, ``built``, ``input_shape``, ``trainable_weights``) and
``seed``, from which epoch e shuffles and drops out with RNG (seed, e).
"""
import numbers

import numpy as np

from . import losses as losses_module
from . import optimizers as optimizers_module
from ._ops import activation
from ._ops.checks import positive_int
from ._ops.workspace import Workspace
from .callbacks import CallbackList, History, ProgbarLogger
from .layers import MaxPooling2D, fused
from .progbar import Progbar


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f'Expected verbose in (0, 1, 2, "auto"), received verbose={verbose!r}')
    return verbose


class Trainer:
    """Keras's compile/fit/evaluate/predict for a stack of layers, run as fused steps."""

    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.stop_training = False
        self.history = None
        self._fused_softmax = False
        self._steps = []  # what runs the layers: see _configure_fusion
        self._batch = Workspace()

    # -- compile ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if isinstance(metrics, str):
            raise ValueError(f"Expected metrics to be a list such as ['accuracy'], received "
                             f"metrics={metrics!r}")
        metrics = list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f'Unknown metric {m!r}; expected "accuracy"')
        self.metrics = ["accuracy"] if metrics else []
        self._configure_fusion()

    def _configure_fusion(self):
        """Let cross-entropy consume the logits of a final softmax, in one stable kernel, run a
        Conv2D and the max pooling after it as one step (fused.Conv2DMaxPooling2D), and have the
        step after a relu apply that relu's backward in its own pass where it can: a max pooling
        or a fused step."""
        self._steps = fused.plan(self.layers)
        for layer in self.layers:
            layer.emit_logits = False
            if hasattr(layer, "relu_grad_applied_by_next"):
                layer.relu_grad_applied_by_next = False
            if hasattr(layer, "applies_input_relu_grad"):
                layer.applies_input_relu_grad = False
        for before, after in zip(self._steps, self._steps[1:]):
            if not (getattr(before, "activation", None) == "relu"
                    and hasattr(before, "relu_grad_applied_by_next")):
                continue
            if isinstance(after, MaxPooling2D):
                after.applies_input_relu_grad = True
            elif isinstance(after, fused.Conv2DMaxPooling2D):
                after.input_relu = True
            else:
                continue
            before.relu_grad_applied_by_next = True
        last = self.layers[-1] if self.layers else None
        self._fused_softmax = bool(
            last is not None and getattr(last, "activation", None) == "softmax"
            and isinstance(self.loss, (losses_module.CategoricalCrossentropy,
                                       losses_module.SparseCategoricalCrossentropy))
            and not self.loss.from_logits)
        if self._fused_softmax:
            last.emit_logits = True

    # -- input checks ----------------------------------------------------------------------
    def _check_x(self, x, name="x"):
        if x is None:
            raise ValueError(f"Expected {name} to be an array, received None")
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"Expected {name} to hold real numbers, received dtype {x.dtype}")
        if x.size == 0:
            raise ValueError(f"Expected a non-empty {name}, received shape {x.shape}")
        if not self.built:
            if self.input_shape is None:
                if x.ndim < 2:
                    raise ValueError(f"Expected {name} with a batch axis, received shape {x.shape}")
                self.build(x.shape)
            else:
                self.build((None, *self.input_shape))
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"Expected {name} of shape (samples, *{self.input_shape}), "
                             f"received {x.shape}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _check_xy(self, x, y, x_name="x", y_name="y"):
        x = self._check_x(x, x_name)
        if y is None:
            raise ValueError(f"Expected {y_name} to be an array, received None")
        y = np.asarray(y)
        if y.ndim and len(y) != len(x):  # before check_targets, which may copy y
            raise ValueError(f"Expected {x_name} and {y_name} of the same length, received "
                             f"{len(x)} and {len(y)}")
        return x, self.loss.check_targets(y, self.layers[-1].output_shape[-1])

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("The model must be compiled before training or evaluation: "
                               "call model.compile(optimizer, loss, metrics)")
        if not self.layers:
            raise ValueError("The model has no layers")

    # -- one batch -------------------------------------------------------------------------
    def _forward(self, x, training):
        for step in self._steps:
            x = step.forward(x, training=training)
        return x

    def _loss_and_grad(self, out, y):
        n = len(out)
        grad = self._batch.get("grad", out.shape)
        loss = self._batch.get("loss", (n,))
        self.loss.forward_backward(out, y, self._fused_softmax, grad, loss)
        return loss, grad

    def _correct(self, out, y):
        if out.shape[1] == 1:
            # Keras's binary accuracy for one output unit. On logits the threshold is 0, where
            # the sigmoid crosses 0.5; Keras would compare the logits with 0.5.
            threshold = 0.0 if self.loss.from_logits else 0.5
            truth = y.reshape(len(y), -1)[:, 0]
            return int(np.count_nonzero((out[:, 0] > threshold) == truth))
        predicted = out.argmax(axis=1)
        truth = y if y.ndim == 1 else y.argmax(axis=1)
        return int(np.count_nonzero(predicted == truth))

    def _regularized_kernels(self):
        """(regularizer, kernel, kernel gradient) of each trainable layer with a kernel_regularizer;
        the layers that take one create their kernel first, so its gradient is grads[0]."""
        return [(layer.kernel_regularizer, layer.kernel, layer.grads[0]) for layer in self.layers
                if getattr(layer, "kernel_regularizer", None) is not None and layer.trainable]

    @staticmethod
    def _regularization_loss(regularized):
        """The penalties that Keras adds to every batch's mean loss, in training and evaluation,
        from _regularized_kernels()."""
        return sum(reg(kernel) for reg, kernel, _ in regularized)

    def _train_step(self, x, y, trained):
        """One batch; ``trained`` is (weights, their gradients, _regularized_kernels()), listed
        once per fit: like Keras, a change of ``trainable`` takes effect at the next fit."""
        weights, grads, regularized = trained
        out = self._forward(x, training=True)
        loss, grad = self._loss_and_grad(out, y)
        penalty = self._regularization_loss(regularized)
        for i in range(len(self._steps) - 1, -1, -1):
            grad = self._steps[i].backward(grad, need_dx=i > 0)
        for reg, kernel, dkernel in regularized:
            reg.add_gradient(kernel, dkernel)
        self.optimizer.apply(weights, grads)
        return (float(loss.sum(dtype=np.float64)) + penalty * len(x),
                self._correct(out, y) if self.metrics else 0)

    def _gather(self, name, source, index):
        buf = self._batch.get(name, (len(index), *source.shape[1:]), source.dtype)
        # The indices are a permutation's, all in range; mode "raise" would buffer the output.
        return np.take(source, index, axis=0, out=buf, mode="wrap")

    def _logs(self, loss_sum, correct, seen, prefix=""):
        logs = {}
        if self.metrics:
            logs[prefix + "accuracy"] = correct / seen
        logs[prefix + "loss"] = loss_sum / seen
        return logs

    # -- fit / evaluate / predict ----------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        self._check_compiled()
        batch_size = positive_int(batch_size, "batch_size")
        epochs = positive_int(epochs, "epochs")
        verbose = _check_verbose(verbose)
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral) \
                or initial_epoch < 0:
            raise ValueError(f"Expected initial_epoch >= 0, received initial_epoch={initial_epoch!r}")
        if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
            raise ValueError(f"Expected validation_split in [0, 1), received "
                             f"validation_split={validation_split!r}")
        x, y = self._check_xy(x, y)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("Expected validation_data to be a tuple (x_val, y_val)")
            x_val, y_val = self._check_xy(*validation_data, "x_val", "y_val")
        elif validation_split > 0:
            # Keras takes the validation samples from the end, before any shuffling.
            split = int(len(x) * (1 - validation_split))
            if split < 1 or split == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no samples for "
                                 f"training or validation out of {len(x)}")
            x, x_val, y, y_val = x[:split], x[split:], y[:split], y[split:]
        else:
            x_val = None

        n = len(x)
        steps = -(-n // batch_size)
        history = History()
        extra = [ProgbarLogger(verbose)] if verbose else []
        cbs = CallbackList(list(callbacks or []) + extra + [history], self,
                           {"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        trained = (self.trainable_weights,
                   [g for layer in self.layers for g in layer.trainable_grads],
                   self._regularized_kernels())
        cbs.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            rng = np.random.default_rng([self.seed, epoch])
            for i, layer in enumerate(self.layers):
                if hasattr(layer, "rng"):
                    layer.rng = np.random.default_rng([self.seed, epoch, i + 1])
            order = rng.permutation(n) if shuffle else np.arange(n)
            cbs.on_epoch_begin(epoch)
            loss_sum, correct, seen = 0.0, 0, 0
            for step in range(steps):
                index = order[step * batch_size:(step + 1) * batch_size]
                cbs.on_train_batch_begin(step)
                batch_loss, batch_correct = self._train_step(self._gather("x", x, index),
                                                             self._gather("y", y, index), trained)
                loss_sum += batch_loss
                correct += batch_correct
                seen += len(index)
                logs = self._logs(loss_sum, correct, seen)
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if x_val is not None:
                val_loss, val_correct = self._evaluate_arrays(x_val, y_val, batch_size)
                logs.update(self._logs(val_loss, val_correct, len(x_val), prefix="val_"))
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        self.history = history
        return history

    def _evaluate_arrays(self, x, y, batch_size, bar=None):
        loss_sum, correct = 0.0, 0
        penalty = self._regularization_loss(self._regularized_kernels())
        steps = -(-len(x) // batch_size)
        for step in range(steps):
            sl = slice(step * batch_size, (step + 1) * batch_size)
            out = self._forward(x[sl], training=False)
            loss, _ = self._loss_and_grad(out, y[sl])
            loss_sum += float(loss.sum(dtype=np.float64)) + penalty * len(out)
            correct += self._correct(out, y[sl]) if self.metrics else 0
            if bar:
                seen = min((step + 1) * batch_size, len(x))
                bar.update(step + 1, self._logs(loss_sum, correct, seen))
        return loss_sum, correct

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", return_dict=False):
        """[loss, accuracy] (or the loss alone when compiled without metrics)."""
        self._check_compiled()
        batch_size = positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        x, y = self._check_xy(x, y)
        bar = Progbar(-(-len(x) // batch_size)) if verbose else None
        loss_sum, correct = self._evaluate_arrays(x, y, batch_size, bar)
        logs = self._logs(loss_sum, correct, len(x))
        if bar:
            bar.finish(logs)
        if return_dict:
            return logs
        return [logs["loss"], logs["accuracy"]] if self.metrics else logs["loss"]

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for x (probabilities after a softmax), batch by batch."""
        batch_size = positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        if not self.layers:
            raise ValueError("The model has no layers")
        x = self._check_x(x)
        result = np.empty((len(x), *self.layers[-1].output_shape), np.float32)
        steps = -(-len(x) // batch_size)
        bar = Progbar(steps) if verbose else None
        for step in range(steps):
            sl = slice(step * batch_size, (step + 1) * batch_size)
            out = self._forward(x[sl], training=False)
            if self._fused_softmax:
                activation.activation_forward("softmax", out, out=result[sl])
            else:
                result[sl] = out
            if bar:
                bar.update(step + 1, {})
        if bar:
            bar.finish({})
        return result

    def __call__(self, x, training=False):
        x = np.asarray(x)
        return self.predict(x, batch_size=max(len(x), 1) if x.ndim else 1, verbose=0)

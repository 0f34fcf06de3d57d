"""Training: compile, fit, evaluate and predict, for any model that is a graph.

``Trainer`` is the half of a model that trains it. ``Model`` inherits it and provides the graph
(``_graph_for_data``), the names of its inputs and outputs, and ``seed``, from which epoch e
shuffles and draws its random transforms with RNG (seed, e).

Each fit plans the model's graph once (``engine.plan``) and runs it in one ``Execution``;
evaluate and predict borrow executions from a pool, so several threads may call them at once.
"""
import math
import numbers
import threading

import numpy as np

from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .arguments import finite_float
from ._ops.checks import check_array, check_memory, copy_bytes, positive_int
from .callbacks import CallbackList, History, ProgbarLogger
from .engine.execution import Execution
from .engine.graph import FlatGraph, infer_shapes
from .engine.plan import make_plan
from .engine.tensor import as_data_structure, compatible_shapes, flatten, pack_like
from .progbar import Progbar

ACCURACY_NAMES = ("accuracy", "acc")


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f'Expected verbose in (0, 1, 2, "auto"), received verbose={verbose!r}')
    return verbose


def _per_output(spec, names, what, check):
    """``spec`` for each output name: one value for all, a list (one per output) or a dict
    (by output name; a missing name gets None). ``check`` validates one value."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"Expected {what} keys among the output names {names}, received "
                             f"{unknown}")
        return [check(spec[n]) if n in spec else None for n in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ValueError(f"Expected {what} to hold {len(names)} entries, one per output "
                             f"{names}, received {len(spec)}")
        return [check(s) for s in spec]
    return [check(spec)] * len(names)


def _loss(identifier):
    return None if identifier is None else losses_module.get(identifier)


def _loss_weight(weight):
    if weight is None:
        return 1.0
    value = finite_float(weight)
    if value is None:
        raise ValueError(f"Expected loss_weights of finite numbers, received {weight!r:.200}")
    return value


def _metrics_per_output(metrics):
    """Whether ``metrics`` gives each output its own list: a dict, or a list of lists."""
    return isinstance(metrics, dict) or (isinstance(metrics, (list, tuple)) and bool(metrics)
                                         and all(isinstance(m, (list, tuple)) or m is None
                                                 for m in metrics))


def _metric_names(metrics):
    """One output's metrics: a list of names, each "accuracy" or "acc"."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise ValueError(f"Expected metrics to be a list such as ['accuracy'], received "
                         f"metrics={metrics!r}")
    for m in metrics:
        if m not in ACCURACY_NAMES:
            raise ValueError(f'Unknown metric {m!r}; expected "accuracy"')
    return ["accuracy"] if metrics else []


class _Output:
    """One model output as compile configured it, and its accuracy counter once resolved."""

    def __init__(self, name, loss, weight, metrics):
        self.name, self.loss, self.weight, self.metrics = name, loss, weight, metrics
        self.count = None


class Trainer:
    """Keras's compile/fit/evaluate/predict for a model's graph."""

    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.loss_weights = None
        self.metrics = []
        self.fuse = True
        self.stop_training = False
        self.history = None
        self._fit_lock = threading.Lock()

    # -- compile ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, fuse=True):
        """As Keras's compile; ``loss``, ``loss_weights`` and ``metrics`` may be lists (one per
        output) or dicts (by output name). ``fuse=False`` runs every layer as its own step, with
        no fused kernels (for comparison: results agree within float32 round-off)."""
        optimizer = optimizers_module.get(optimizer)
        if isinstance(loss, dict):
            loss = {k: _loss(v) for k, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            loss = [_loss(v) for v in loss]
        else:
            loss = _loss(loss)
        if loss_weights is not None and not isinstance(loss_weights, (list, tuple, dict)):
            loss_weights = [loss_weights]
        for w in (loss_weights.values() if isinstance(loss_weights, dict) else loss_weights or []):
            _loss_weight(w)
        if _metrics_per_output(metrics):
            for v in (metrics.values() if isinstance(metrics, dict) else metrics):
                _metric_names(v)
        else:
            _metric_names(metrics)
        if not isinstance(fuse, bool):
            raise ValueError(f"Expected fuse to be True or False, received fuse={fuse!r}")
        if self.built:
            self._outputs_for(self._graph_for_data(None, False), loss, loss_weights, metrics)
        self.optimizer, self.loss, self.loss_weights = optimizer, loss, loss_weights
        self.metrics, self.fuse = metrics if metrics is not None else [], fuse

    def _outputs_for(self, graph, loss=None, loss_weights=None, metrics=None, use_compiled=False):
        """The _Output of each of ``graph``'s outputs, from compile's arguments."""
        if use_compiled:
            loss, loss_weights, metrics = self.loss, self.loss_weights, self.metrics
        names = self._output_names(graph)
        losses = _per_output(loss, names, "loss", lambda v: v)
        weights = _per_output(loss_weights, names, "loss_weights", _loss_weight)
        if _metrics_per_output(metrics):
            per_output = _per_output(metrics, names, "metrics", _metric_names)
        else:
            per_output = [_metric_names(metrics)] * len(names)
        if all(lo is None for lo in losses):
            raise ValueError("Expected a loss for at least one output, received none")
        return [_Output(n, lo, 1.0 if w is None else w, m or [])
                for n, lo, w, m in zip(names, losses, weights, per_output)]

    # -- data ------------------------------------------------------------------------------
    def _model_inputs(self, x, name="x", training=False, whole_outputs=False):
        """(graph, one float32 array per graph input) for the data ``x``: an array, a list (one
        per input) or a dict (by input name), and mode ``training`` (a subclassed model's
        ``call`` may differ between modes). Builds an unbuilt model for x's shapes. Refuses,
        before converting anything, data whose float32 copy (and, with ``whole_outputs``, the
        outputs for all of it, as predict returns) would not fit the available memory."""
        if x is None:
            raise ValueError(f"Expected {name} to be an array, received None")
        x = as_data_structure(x)
        arrays = [check_array(a, name) for a in flatten(x)]
        for a in arrays:
            if a.ndim < 1 or a.size == 0:
                raise ValueError(f"Expected a non-empty {name} with a batch axis, received shape "
                                 f"{a.shape}")
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"Expected every array of {name} to hold the same number of "
                             f"samples, received {[len(a) for a in arrays]}")
        graph = self._graph_for_data(pack_like(x, arrays), training)
        arrays = self._align(x, arrays, self._input_names(graph), name)
        for a, t in zip(arrays, graph.inputs):
            if not compatible_shapes(a.shape[1:], t.shape[1:]):
                raise ValueError(f"Expected {name} of shape (samples, *{t.shape[1:]}), received "
                                 f"{a.shape}")
        needs = [(f"a float32 copy of {name}", sum(copy_bytes(a, np.float32) for a in arrays))]
        if whole_outputs:
            shapes = infer_shapes(graph, [a.shape for a in arrays])
            needs.append(("the float32 outputs", sum(math.prod(s) * 4 for s in shapes)))
        check_memory(needs, name)
        return graph, [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]

    @staticmethod
    def _align(data, flat, names, name):
        """The arrays of ``data`` in the order of ``names``."""
        if isinstance(data, dict):
            if set(data) != set(names):
                raise ValueError(f"Expected {name} keys {names}, received {sorted(data)}")
            return [None if data[n] is None else np.asarray(data[n]) for n in names]
        if len(flat) != len(names):
            raise ValueError(f"Expected {name} to hold {len(names)} arrays, one for each of "
                             f"{names}, received {len(flat)}")
        return flat

    def _model_targets(self, y, graph, outputs, xs, name="y", x_name="x"):
        """One checked target array per output (None for an output without a loss)."""
        if y is None:
            raise ValueError(f"Expected {name} to be an array, received None")
        y = as_data_structure(y)
        names = [o.name for o in outputs]
        if isinstance(y, dict):  # as in Keras, an output without a loss needs no targets
            y = {**{o.name: None for o in outputs if o.loss is None}, **y}
        ys = self._align(y, [None if a is None else np.asarray(a) for a in flatten(y)], names,
                         name)
        shapes = infer_shapes(graph, [(len(xs[0]), *a.shape[1:]) for a in xs])
        checked = []
        for o, target, shape in zip(outputs, ys, shapes):
            if o.loss is None:
                checked.append(None)
                continue
            if target is None:
                raise ValueError(f"Expected {name} to hold targets for output {o.name!r}, which "
                                 "has a loss, received None")
            if target.ndim and len(target) != len(xs[0]):
                raise ValueError(f"Expected {x_name} and {name} of the same length, received "
                                 f"{len(xs[0])} and {len(target)}")
            checked.append(o.loss.check_targets(target, shape[1:]))
            if o.metrics:
                o.count = metrics_module.resolve_accuracy(o.loss, shape[1:], checked[-1].shape[1:])
        return checked

    def _check_compiled(self):
        if self.optimizer is None:
            raise RuntimeError("The model must be compiled before training or evaluation: "
                               "call model.compile(optimizer, loss, metrics)")

    # -- one batch -------------------------------------------------------------------------
    def _batch_losses(self, execution, outs, ys, outputs, sums, need_grads, penalty):
        """Add this batch's losses (the weighted sum, plus ``penalty`` per sample) and accuracy
        counts to ``sums``; returns the loss gradients (None for an output without a loss)."""
        grads, total = [], 0.0
        n = len(outs[0])
        work = execution.workspace
        for k, (o, out, y) in enumerate(zip(outputs, outs, ys)):
            if o.loss is None:
                grads.append(None)
                continue
            grad = work.get(("grad", k), out.shape)
            loss = work.get(("loss", k), (n,))
            o.loss.forward_backward(out, y, execution.logits_outputs[k], grad, loss,
                                    execution.whole_batch)
            if need_grads and o.weight != 1.0:
                np.multiply(grad, np.float32(o.weight), out=grad)
            value = float(loss.sum(dtype=np.float64))
            sums[("loss", k)] = sums.get(("loss", k), 0.0) + value
            total += o.weight * value
            if o.count is not None:
                correct, positions = o.count(y, out)
                sums[("correct", k)] = sums.get(("correct", k), 0) + correct
                sums[("total", k)] = sums.get(("total", k), 0) + positions
            grads.append(grad)
        sums["loss"] += total + penalty * n
        return grads

    def _logs(self, sums, seen, outputs, prefix=""):
        """Keras's logs: the total loss, and per output its loss and accuracy (named after the
        output when the model has several)."""
        logs = {}
        multi = len(outputs) > 1
        for k, o in enumerate(outputs):
            if o.count is not None and ("total", k) in sums:
                key = f"{o.name}_accuracy" if multi else "accuracy"
                logs[prefix + key] = sums[("correct", k)] / max(sums[("total", k)], 1)
        logs[prefix + "loss"] = sums.get("loss", 0.0) / seen
        if multi:
            for k, o in enumerate(outputs):
                if o.loss is not None:
                    logs[f"{prefix}{o.name}_loss"] = sums.get(("loss", k), 0.0) / seen
        return logs

    def _log_names(self, outputs, validation):
        """The names in the logs of fit's epochs, known before the first batch (for callbacks
        to check their arguments at on_train_begin)."""
        counted = {key: 0 for k, o in enumerate(outputs) if o.count is not None
                   for key in (("correct", k), ("total", k))}
        names = list(self._logs({"loss": 0.0, **counted}, 1, outputs))
        return names + [f"val_{n}" for n in names] if validation else names

    def _trained_owners(self):
        trained = {id(w) for w in self.trainable_weights}
        return [(o, i) for o, i in self._weight_owners() if id(o._weights[i]) in trained]

    def _regularization_loss(self):
        """The penalties that Keras adds to every batch's mean loss, in training and evaluation."""
        return sum(o._weight_regularizers[i](o._weights[i]) for o, i in self._trained_owners()
                   if o._weight_regularizers[i] is not None)

    def _train_step(self, execution, xs, ys, outputs, sums, updates):
        """One batch; ``updates`` is (regularized, constrained), listed once per fit: like
        Keras, a change of ``trainable`` takes effect at the next fit."""
        regularized, constrained = updates
        if len(xs[0]):
            outs = execution.forward(xs)
            grads = self._batch_losses(execution, outs, ys, outputs, sums, True,
                                       sum(reg(w) for reg, w, _ in regularized))
            execution.backward(grads)
        else:  # a process with no share of this batch (fastcnn.distributed)
            execution.backward_without_samples()
        for reg, w, g in regularized:
            reg.add_gradient(w, g)
        self.optimizer.apply(execution.plan.trained, execution.gradients)
        for constraint, w in constrained:
            w[...] = constraint(w)

    @staticmethod
    def _gather(execution, key, source, index):
        buf = execution.workspace.get(key, (len(index), *source.shape[1:]), source.dtype)
        # The indices are a permutation's, all in range; mode "raise" would buffer the output.
        return np.take(source, index, axis=0, out=buf, mode="wrap")

    # -- fit / evaluate / predict ----------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(f"Model {self.name!r} is already training: a second fit must wait "
                               "for the first to return")
        try:
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                             validation_data, shuffle, initial_epoch)
        finally:
            self._fit_lock.release()

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, shuffle, initial_epoch):
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
        with self._build_rollback():
            graph, xs = self._model_inputs(x, training=True)
            outputs = self._outputs_for(graph, use_compiled=True)
            ys = self._model_targets(y, graph, outputs, xs)
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise ValueError("Expected validation_data to be a tuple (x_val, y_val)")
                val_graph, xs_val = self._model_inputs(validation_data[0], "x_val")
                ys_val = self._model_targets(validation_data[1], val_graph, outputs, xs_val,
                                             "y_val", "x_val")
            elif validation_split > 0:
                # Keras takes the validation samples from the end, before any shuffling.
                split = int(len(xs[0]) * (1 - validation_split))
                if split < 1 or split == len(xs[0]):
                    raise ValueError(f"validation_split={validation_split} leaves no samples for "
                                     f"training or validation out of {len(xs[0])}")
                val_graph = self._graph_for_data(pack_like(as_data_structure(x), xs), False)
                xs, xs_val = [a[:split] for a in xs], [a[split:] for a in xs]
                ys, ys_val = ([None if a is None else a[:split] for a in ys],
                              [None if a is None else a[split:] for a in ys])
            else:
                xs_val = None
        plan = make_plan(FlatGraph(graph, True, self.trainable), self.fuse,
                         loss_outputs=[o.loss is not None for o in outputs],
                         logits_ok=self._logits_ok(graph, outputs))
        execution = Execution(plan)
        gradient_of = {id(w): g for w, g in zip(plan.trained, execution.gradients)}
        owners = [(o, i) for o, i in self._trained_owners() if id(o._weights[i]) in gradient_of]
        updates = ([(o._weight_regularizers[i], o._weights[i], gradient_of[id(o._weights[i])])
                    for o, i in owners if o._weight_regularizers[i] is not None],
                   [(o._weight_constraints[i], o._weights[i])
                    for o, i in owners if o._weight_constraints[i] is not None])

        n = len(xs[0])
        steps = -(-n // batch_size)
        share = getattr(self.optimizer, "share_batch", None)  # fastcnn.distributed's
        history = History()
        extra = [ProgbarLogger(verbose)] if verbose else []
        callbacks = list(callbacks or []) + extra + [history]
        # As in Keras 2, params["metrics"] lists every name an epoch's logs may hold.
        names = self._log_names(outputs, xs_val is not None) + [
            n for cb in callbacks for n in getattr(cb, "logged_names", ())]
        cbs = CallbackList(callbacks, self, {"epochs": epochs, "steps": steps,
                                             "verbose": verbose, "metrics": names})
        self.stop_training = False
        cbs.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            rng = np.random.default_rng([self.seed, epoch])
            execution.seed_random(self.seed, epoch)
            order = rng.permutation(n) if shuffle else np.arange(n)
            cbs.on_epoch_begin(epoch)
            sums, seen = {"loss": 0.0}, 0
            for step in range(steps):
                index = order[step * batch_size:(step + 1) * batch_size]
                if share is not None:  # this process's part of the batch
                    index = share(execution, index)
                cbs.on_train_batch_begin(step)
                batch_x = [self._gather(execution, ("x", k), a, index) for k, a in enumerate(xs)]
                batch_y = [None if a is None else self._gather(execution, ("y", k), a, index)
                           for k, a in enumerate(ys)]
                self._train_step(execution, batch_x, batch_y, outputs, sums, updates)
                seen += len(index)
                logs = self._logs(sums, max(seen, 1), outputs)
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if xs_val is not None:
                val_sums = self._evaluate_arrays(val_graph, xs_val, ys_val, outputs, batch_size)
                logs.update(self._logs(val_sums, len(xs_val[0]), outputs, prefix="val_"))
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        self.history = history
        return history

    def _logits_ok(self, graph, outputs):
        """Which outputs' losses may take a softmax's logits (cross-entropy on probabilities
        over more than one class)."""
        return [isinstance(o.loss, (losses_module.CategoricalCrossentropy,
                                    losses_module.SparseCategoricalCrossentropy))
                and not o.loss.from_logits and t.shape[-1] != 1
                for o, t in zip(outputs, graph.outputs)]

    def _evaluate_arrays(self, graph, xs, ys, outputs, batch_size, bar=None):
        pool = self._runner(graph, False, self.fuse)
        logits_ok = self._logits_ok(graph, outputs)
        execution = pool.acquire()
        try:
            sums = {"loss": 0.0}
            penalty = self._regularization_loss()
            n = len(xs[0])
            for step in range(-(-n // batch_size)):
                sl = slice(step * batch_size, (step + 1) * batch_size)
                outs = execution.forward([a[sl] for a in xs], logits_ok)
                self._batch_losses(execution, outs, [None if a is None else a[sl] for a in ys],
                                   outputs, sums, False, penalty)
                if bar:
                    bar.update(step + 1, self._logs(sums, min(sl.stop, n), outputs))
            return sums
        finally:
            pool.release(execution)

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", return_dict=False):
        """The loss, or [loss, *metrics] when the model logs more (as Keras orders them), or
        the logs dict with ``return_dict``."""
        self._check_compiled()
        batch_size = positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        with self._build_rollback():
            graph, xs = self._model_inputs(x)
            outputs = self._outputs_for(graph, use_compiled=True)
            ys = self._model_targets(y, graph, outputs, xs)
        bar = Progbar(-(-len(xs[0]) // batch_size)) if verbose else None
        logs = self._logs(self._evaluate_arrays(graph, xs, ys, outputs, batch_size, bar),
                          len(xs[0]), outputs)
        if bar:
            bar.finish(logs)
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [v for k, v in logs.items() if k != "loss"]
        return ordered if len(ordered) > 1 else ordered[0]

    def predict(self, x, batch_size=32, verbose="auto"):
        """The model's outputs for x (probabilities after a softmax), batch by batch: an array,
        or a list or dict of them as the model's outputs are structured."""
        batch_size = positive_int(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        with self._build_rollback():
            graph, xs = self._model_inputs(x, whole_outputs=True)
        pool = self._runner(graph, False, self.fuse)
        n = len(xs[0])
        steps = -(-n // batch_size)
        bar = Progbar(steps) if verbose else None
        results = None
        execution = pool.acquire()
        try:
            for step in range(steps):
                sl = slice(step * batch_size, (step + 1) * batch_size)
                outs = execution.forward([a[sl] for a in xs])
                if results is None:
                    results = [np.empty((n, *o.shape[1:]), np.float32) for o in outs]
                for result, out in zip(results, outs):
                    result[sl] = out
                if bar:
                    bar.update(step + 1, {})
        finally:
            pool.release(execution)
        if bar:
            bar.finish({})
        return pack_like(graph.output_structure, results)

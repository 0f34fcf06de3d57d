"""Training: compile, fit, evaluate and predict, for any model that is a graph.

``Trainer`` is the half of a model that trains it. ``Model`` inherits it and provides the graph
(``_graph_for_data``), the names of its inputs and outputs, and ``seed``, from which epoch e
shuffles and draws its random transforms with RNG (seed, e).

Each fit plans the model's graph once (``engine.plan``) and runs it in one ``Execution``;
evaluate and predict borrow executions from a pool, so several threads may call them at once.
"""
import copy
import functools
import math
import numbers
import threading
import warnings

import numpy as np

from . import data_adapters
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._ops import activation as activation_ops
from ._ops.checks import check_array, check_memory, copy_bytes, positive_int
from ._ops.threads import get_num_threads
from .arguments import finite_float
from .callbacks import CallbackList, History, ProgbarLogger
from .engine.execution import Execution
from .engine.graph import FlatGraph, infer_shapes
from .engine.plan import make_plan
from .engine.tensor import as_data_structure, compatible_shapes, flatten, pack_like
from .progbar import Progbar
from .step_threads import StepThreads


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


def _metric_names(metrics, what="metrics"):
    """One output's metrics (of compile's argument ``what``): a list of identifiers (names as
    ``metrics.resolve`` reads them, Metric objects, functions), each checked; a name is kept as
    written, since the logs name the metric so, and given once."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise ValueError(f"Expected {what} to be a list such as ['accuracy'], received "
                         f"{what}={metrics!r:.200}")
    for m in metrics:
        if not (isinstance(m, str) and m.lower() in RESOLVED_BY_LOSS):
            metrics_module.get(m)
    return [m for k, m in enumerate(metrics)
            if not isinstance(m, str) or m not in metrics[:k]]


# The metric names whose class follows the loss and the shapes (metrics.resolve).
RESOLVED_BY_LOSS = ("accuracy", "acc", "crossentropy", "ce")


def _metric_keys(outputs):
    """(log name, metric) of each resolved metric, named as Keras names them: as compile was
    given it (after the output's name when the model has several), metrics before weighted
    metrics; a metric whose name is taken is "<name>_1", "<name>_2"..., except a weighted
    metric, which is "weighted_<name>" first."""
    multi = len(outputs) > 1
    taken, keys = {}, []
    for weighted in (False, True):
        for o in outputs:
            resolved = o.resolved or []
            part = resolved[o.weighted_from:] if weighted else resolved[:o.weighted_from]
            for m in part:
                prefix = f"{o.name}_" if multi else ""
                key = prefix + m.name
                if key in taken and weighted:
                    key = f"{prefix}weighted_{m.name}"
                if key in taken:
                    taken[key] += 1
                    key = f"{key}_{taken[key] - 1}"
                else:
                    taken[key] = 1
                keys.append((key, m))
    return keys


def _activity_penalty(execution):
    """The activity regularizers' penalties of the last forward pass, which Keras adds to the
    loss (see engine.plan.LayerStep)."""
    return sum(getattr(ctx, "activity_penalty", 0.0) for ctx in execution.contexts)


class _Output:
    """One model output as compile configured it, and its metric objects once resolved (from
    the first targets seen: "accuracy" depends on their shape): those of ``metrics``, then
    those of ``weighted_metrics``, from index ``weighted_from`` on, which the sample weights
    (and class weights) weigh, as in Keras."""

    def __init__(self, name, loss, weight, metrics, weighted_metrics=()):
        self.name, self.loss, self.weight = name, loss, weight
        self.metrics = list(metrics) + list(weighted_metrics)
        self.weighted_from = len(metrics)
        self.resolved = None

    def fresh(self):
        """A copy with metrics of its own, reset: the validation's."""
        other = copy.copy(self)
        if self.resolved is not None:
            other.resolved = [copy.deepcopy(m) for m in self.resolved]
            for m in other.resolved:
                m.reset_state()
        return other


class Trainer:
    """Keras's compile/fit/evaluate/predict for a model's graph."""

    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.loss_weights = None
        self.metrics = []
        self.weighted_metrics = []
        self.fuse = True
        self.stop_training = False
        self.history = None
        self._fit_lock = threading.Lock()
        # Kept from fit to fit: a core another process has taken is not found again at each
        # fit of a loop of one-epoch fits (each would start with a window at every thread).
        self._step_threads = None

    # -- compile ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, fuse=True):
        """As Keras's compile; ``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics``
        may be lists (one per output) or dicts (by output name). ``metrics`` ignore the sample
        and class weights; ``weighted_metrics`` are weighed by them, and are logged under their
        names, or as Keras does under "weighted_<name>" when a metric of ``metrics`` has that
        name already. ``fuse=False`` runs every layer as its own step, with no fused kernels
        (for comparison: results agree within float32 round-off)."""
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
        for given, name in ((metrics, "metrics"), (weighted_metrics, "weighted_metrics")):
            if _metrics_per_output(given):
                for v in (given.values() if isinstance(given, dict) else given):
                    _metric_names(v, name)
            else:
                _metric_names(given, name)
        if not isinstance(fuse, bool):
            raise ValueError(f"Expected fuse to be True or False, received fuse={fuse!r}")
        if self.built:
            self._outputs_for(self._graph_for_data(None, False), loss, loss_weights, metrics,
                              weighted_metrics)
        self.optimizer, self.loss, self.loss_weights = optimizer, loss, loss_weights
        self.metrics, self.fuse = metrics if metrics is not None else [], fuse
        self.weighted_metrics = weighted_metrics if weighted_metrics is not None else []

    def _outputs_for(self, graph, loss=None, loss_weights=None, metrics=None,
                     weighted_metrics=None, use_compiled=False):
        """The _Output of each of ``graph``'s outputs, from compile's arguments."""
        if use_compiled:
            loss, loss_weights = self.loss, self.loss_weights
            metrics, weighted_metrics = self.metrics, self.weighted_metrics
        names = self._output_names(graph)
        losses = _per_output(loss, names, "loss", lambda v: v)
        weights = _per_output(loss_weights, names, "loss_weights", _loss_weight)

        def per_output(given, what):
            if _metrics_per_output(given):
                return _per_output(given, names, what, lambda v: _metric_names(v, what))
            return [_metric_names(given, what)] * len(names)

        if all(lo is None for lo in losses):
            raise ValueError("Expected a loss for at least one output, received none")
        return [_Output(n, lo, 1.0 if w is None else w, m or [], wm or [])
                for n, lo, w, m, wm in zip(names, losses, weights,
                                           per_output(metrics, "metrics"),
                                           per_output(weighted_metrics, "weighted_metrics"))]

    # -- data ------------------------------------------------------------------------------
    def _checked_inputs(self, x, name="x", training=False):
        """(structure, graph, arrays) for the data ``x``: an array, a list (one per input) or a
        dict (by input name), and mode ``training`` (a subclassed model's ``call`` may differ
        between modes); the arrays, unconverted, in the order of the graph's inputs. Builds an
        unbuilt model for x's shapes."""
        if x is None:
            raise ValueError(f"Expected {name} to be an array, received None")
        x = as_data_structure(x)
        arrays = [check_array(a, name) for a in flatten(x)]
        self._check_samples(arrays, name)
        graph = self._graph_for_data(pack_like(x, arrays), training)
        return x, graph, self._input_arrays(graph, x, arrays, name)

    @staticmethod
    def _check_samples(arrays, name):
        for a in arrays:
            if a.ndim < 1 or a.size == 0:
                raise ValueError(f"Expected a non-empty {name} with a batch axis, received shape "
                                 f"{a.shape}")
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"Expected every array of {name} to hold the same number of "
                             f"samples, received {[len(a) for a in arrays]}")

    def _input_arrays(self, graph, x, arrays, name):
        """The arrays of the structure ``x`` in the order of ``graph``'s inputs, each checked
        against its input's shape."""
        arrays = self._align(x, arrays, self._input_names(graph), name)
        for a, t in zip(arrays, graph.inputs):
            if not compatible_shapes(a.shape[1:], t.shape[1:]):
                raise ValueError(f"Expected {name} of shape (samples, *{t.shape[1:]}), received "
                                 f"{a.shape}")
        return arrays

    def _model_inputs(self, x, name="x", training=False, whole_outputs=False):
        """(graph, one float32 array per graph input) for the data ``x``, as _checked_inputs
        reads it. Refuses, before converting anything, data whose float32 copy (and, with
        ``whole_outputs``, the outputs for all of it) would not fit the available memory."""
        _, graph, arrays = self._checked_inputs(x, name, training)
        needs = [(f"a float32 copy of {name}", sum(copy_bytes(a, np.float32) for a in arrays))]
        if whole_outputs:
            needs.append(("the float32 outputs", _output_bytes(graph, arrays)))
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

    def _model_targets(self, y, graph, outputs, input_shapes, name="y", x_name="x"):
        """(one checked target array per output (None for an output without a loss), the
        outputs' shapes) for inputs of ``input_shapes``."""
        if y is None:
            raise ValueError(f"Expected {name} to be an array, received None")
        y = as_data_structure(y)
        names = [o.name for o in outputs]
        if isinstance(y, dict):  # as in Keras, an output without a loss needs no targets
            y = {**{o.name: None for o in outputs if o.loss is None}, **y}
        ys = self._align(y, [None if a is None else np.asarray(a) for a in flatten(y)], names,
                         name)
        n = input_shapes[0][0]
        shapes = infer_shapes(graph, [tuple(s) for s in input_shapes])
        checked = []
        for o, target, shape in zip(outputs, ys, shapes):
            if o.loss is None:
                checked.append(None)
                continue
            if target is None:
                raise ValueError(f"Expected {name} to hold targets for output {o.name!r}, which "
                                 "has a loss, received None")
            if target.ndim and len(target) != n:
                raise ValueError(f"Expected {x_name} and {name} of the same length, received "
                                 f"{n} and {len(target)}")
            checked.append(o.loss.check_targets(target, shape[1:]))
            if o.resolved is None:
                o.resolved = [metrics_module.resolve(m, o.loss, shape[1:], checked[-1].shape[1:])
                              for m in o.metrics]
        return checked, shapes

    def _loss_weights_for(self, ys, shapes, sample_weight, class_weight, n, outputs):
        """The loss weights of sample_weight or class_weight: None, or one entry per output,
        None for an output that is not weighed (or has no loss), else float32 weights (n,),
        one per sample, or for an output with positions (an image output (n, H, W, classes))
        possibly one per position (n, H, W), as Keras weighs each position's loss. One array
        weighs every output; a list (one entry per output) or a dict (by output name) weighs
        each its own way (see data_adapters.weights)."""
        scored = [k for k, y in enumerate(ys) if y is not None]
        names = [o.name for o in outputs]
        if class_weight is None:
            if sample_weight is None:
                return None
            if len(names) == 1 and not isinstance(sample_weight, dict):
                sample_weight = [sample_weight]  # one output: a list is its array
            given = _per_output(sample_weight, names, "sample_weight", lambda w: w)
            weights = [None] * len(names)
            for k in scored:
                if given[k] is not None:
                    name = ("sample_weight" if len(scored) == 1
                            else f"sample_weight for output {names[k]!r}")
                    weights[k] = data_adapters.sample_weights(given[k], n, shapes[k][1:-1],
                                                              name)
            return weights if any(w is not None for w in weights) else None
        if sample_weight is not None:
            raise ValueError("Expected class_weight or sample_weight, received both: give the "
                             "per-sample weights in sample_weight alone")
        if len(scored) != 1:
            raise ValueError(f"Expected class_weight with a single output that has a loss, "
                             f"received {len(scored)}")
        weights = [None] * len(names)
        weights[scored[0]] = data_adapters.class_weights(class_weight, ys[scored[0]],
                                                         shapes[scored[0]])
        return weights

    def _source(self, x, y, sample_weight, class_weight, batch_size, shuffle, training,
                targets=True, names=("x", "y"), whole_outputs=False):
        """The checked data (arrays, a generator or a PyDataset) as a _Source."""
        x_name, y_name = names
        class_weight = data_adapters.check_class_weight(class_weight)
        if data_adapters.is_batched(x):
            if y is not None or sample_weight is not None:
                raise ValueError(f"Expected no {y_name} or sample_weight with {x_name} a "
                                 f"{type(x).__name__}: its batches hold the targets and weights")
            if isinstance(x, data_adapters.PyDataset):
                adapter = data_adapters.PyDatasetAdapter(x, shuffle, x_name)
            else:
                adapter = data_adapters.GeneratorAdapter(x, x_name)
            first = adapter.peek()
            _, graph, _ = self._checked_inputs(first[0], x_name, training)
            outputs = self._outputs_for(graph, use_compiled=True) if targets else None
            source = _Source(graph, outputs, adapter, None)
            source.convert = functools.partial(self._convert_batch, source, class_weight,
                                               targets, names)
            source.convert(first)  # checks the first batch and resolves the metrics now
            return source
        structure, graph, xs = self._checked_inputs(x, x_name, training)
        outputs, ys, weights = None, [], None
        if targets:
            outputs = self._outputs_for(graph, use_compiled=True)
            ys, shapes = self._model_targets(y, graph, outputs, [a.shape for a in xs], y_name,
                                             x_name)
            weights = self._loss_weights_for(ys, shapes, sample_weight, class_weight, len(xs[0]),
                                             outputs)
        adapter = data_adapters.ArrayAdapter(xs, ys, weights, batch_size, shuffle)
        needs = [("the batch buffers", adapter.memory_bytes())]
        if whole_outputs:
            needs.append(("the float32 outputs", _output_bytes(graph, xs)))
        check_memory(needs, x_name)
        return _Source(graph, outputs, adapter, structure)

    def _convert_batch(self, source, class_weight, targets, names, batch):
        """One raw batch (x, y, sample_weight) of a generator or PyDataset as (float32 inputs,
        checked targets, loss weights)."""
        x_name, y_name = names
        x, y, sample_weight = batch
        x = as_data_structure(x)
        arrays = [check_array(a, x_name) for a in flatten(x)]
        self._check_samples(arrays, x_name)
        arrays = self._input_arrays(source.graph, x, arrays, x_name)
        xs = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        if not targets:
            return xs, None, None
        if y is None:
            raise ValueError(f"Expected batches (x, y) or (x, y, sample_weight) in {x_name}, "
                             "received x alone")
        ys, shapes = self._model_targets(y, source.graph, source.outputs, [a.shape for a in xs],
                                         y_name, x_name)
        weights = self._loss_weights_for(ys, shapes, sample_weight, class_weight, len(xs[0]),
                                         source.outputs)
        return xs, ys, weights

    def _check_compiled(self):
        if self.optimizer is None:
            raise RuntimeError("The model must be compiled before training or evaluation: "
                               "call model.compile(optimizer, loss, metrics)")

    # -- one batch -------------------------------------------------------------------------
    def _batch_losses(self, execution, outs, ys, weights, outputs, sums, need_grads, penalty):
        """Add this batch's losses (the weighted sum, plus ``penalty`` per sample) and accuracy
        counts to ``sums``; returns the loss gradients (None for an output without a loss).
        ``weights``, None or one entry per output (None, or (n,) or (n, *positions)), weighs
        each output's samples' (or positions') loss and gradient, and its weighted metrics."""
        grads, total = [], 0.0
        n = len(outs[0])
        work = execution.workspace
        for k, (o, out, y) in enumerate(zip(outputs, outs, ys)):
            if o.loss is None:
                grads.append(None)
                continue
            grad = work.get(("grad", k), out.shape)
            loss = work.get(("loss", k), (n,))
            w = None if weights is None else weights[k]
            o.loss.forward_backward(out, y, execution.logits_outputs[k], grad, loss,
                                    sample_weight=w, batch=execution.whole_batch)
            if need_grads and o.weight != 1.0:
                np.multiply(grad, np.float32(o.weight), out=grad)
            value = float(loss.sum(dtype=np.float64))
            sums[("loss", k)] = sums.get(("loss", k), 0.0) + value
            total += o.weight * value
            if o.resolved:
                # Metrics read probabilities: a softmax the loss took as logits is applied here.
                probs = (activation_ops.activation_forward(
                             "softmax", out, out=work.get(("probs", k), out.shape, out.dtype))
                         if execution.logits_outputs[k] else out)
                for i, m in enumerate(o.resolved):
                    if i >= o.weighted_from and w is not None:
                        m.update_state(y, probs, sample_weight=w)
                    else:
                        m.update_state(y, probs)
            grads.append(grad)
        sums["loss"] += total + penalty * n
        sums["seen"] = sums.get("seen", 0) + n
        return grads

    def _logs(self, sums, outputs, prefix=""):
        """Keras's logs: the total loss, and per output its loss and metrics' results, each
        metric named as in _metric_keys. A metric's result covers the batches since its last
        reset."""
        logs = {}
        multi = len(outputs) > 1
        seen = max(sums.get("seen", 0), 1)
        for key, m in _metric_keys(outputs):
            logs[prefix + key] = m.result() if sums.get("seen") else 0.0
        logs[prefix + "loss"] = sums.get("loss", 0.0) / seen
        if multi:
            for k, o in enumerate(outputs):
                if o.loss is not None:
                    logs[f"{prefix}{o.name}_loss"] = sums.get(("loss", k), 0.0) / seen
        return logs

    def _log_names(self, outputs, validation):
        """The names in the logs of fit's epochs, known before the first batch (for callbacks
        to check their arguments at on_train_begin)."""
        names = list(self._logs({"loss": 0.0}, outputs))
        return names + [f"val_{n}" for n in names] if validation else names

    def _trained_owners(self):
        trained = {id(w) for w in self.trainable_weights}
        return [(o, i) for o, i in self._weight_owners() if id(o._weights[i]) in trained]

    def _regularization_loss(self):
        """The penalties that Keras adds to every batch's mean loss, in training and evaluation."""
        return sum(o._weight_regularizers[i](o._weights[i]) for o, i in self._trained_owners()
                   if o._weight_regularizers[i] is not None)

    def _training_plan(self, graph, outputs):
        """The plan a fit runs for ``graph`` and its compiled ``outputs``."""
        return make_plan(FlatGraph(graph, True, self.trainable), self.fuse,
                         loss_outputs=[o.loss is not None for o in outputs],
                         logits_ok=self._logits_ok(graph, outputs))

    def _training_run(self, graph, outputs):
        """(execution, updates) for training ``graph``: its plan's execution, and the
        (regularized, constrained) weights, listed once: like Keras, a change of ``trainable``
        takes effect at the next fit."""
        plan = self._training_plan(graph, outputs)
        execution = Execution(plan)
        gradient_of = {id(w): g for w, g in zip(plan.trained, execution.gradients)}
        owners = [(o, i) for o, i in self._trained_owners() if id(o._weights[i]) in gradient_of]
        updates = ([(o._weight_regularizers[i], o._weights[i], gradient_of[id(o._weights[i])])
                    for o, i in owners if o._weight_regularizers[i] is not None],
                   [(o._weight_constraints[i], o._weights[i])
                    for o, i in owners if o._weight_constraints[i] is not None])
        return execution, updates

    def _train_step(self, execution, batch, outputs, sums, updates):
        """One batch (xs, ys, weights)."""
        xs, ys, weights = batch
        regularized, constrained = updates
        if len(xs[0]):
            outs = execution.forward(xs)
            grads = self._batch_losses(execution, outs, ys, weights, outputs, sums, True,
                                       sum(reg(w) for reg, w, _ in regularized)
                                       + _activity_penalty(execution))
            execution.backward(grads)
        else:  # a process with no share of this batch (fastcnn.distributed)
            execution.backward_without_samples()
        for reg, w, g in regularized:
            reg.add_gradient(w, g)
        self.optimizer.apply(execution.plan.trained, execution.gradients)
        for constraint, w in constrained:
            w[...] = constraint(w)

    # -- fit / evaluate / predict ----------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Keras's fit. ``x`` may be arrays (with targets ``y``), a Python generator or other
        iterable of batches (x, y) or (x, y, sample_weight), or a ``utils.PyDataset``; see
        ``fastcnn.data_adapters`` for how each is read. Arrays are converted to float32 one
        batch at a time, and the next batch is prepared on a background thread while the
        current one trains. ``shuffle`` reorders the samples of arrays, or the batches of a
        PyDataset, each pass over the data; ``shuffle="batch"`` (arrays) keeps each batch's
        samples and shuffles them within it. A generator's order is its own. With
        ``steps_per_epoch``, as in Keras 3, each epoch takes the next steps_per_epoch batches
        of one pass over the data, which goes on from epoch to epoch: the epoch that reaches
        the end of the arrays or PyDataset stops there, and the next one starts a new pass
        (see ``data_adapters.passes``); a generator goes on where the last epoch stopped, and
        one that runs out is an error naming the step (Keras 3 warns and stops training); an
        iterable that starts over keeps one pass going, as Keras reads a torch DataLoader (see
        ``data_adapters.generator_adapter``). ``sample_weight`` for a model with several
        outputs is one array for all, a list (one per output) or a dict by output name.
        ``validation_steps`` beyond the validation data warn and validate on all of it."""
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(f"Model {self.name!r} is already training: a second fit must wait "
                               "for the first to return")
        try:
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                             validation_data, shuffle, class_weight, sample_weight,
                             initial_epoch, steps_per_epoch, validation_steps,
                             validation_batch_size, validation_freq)
        finally:
            self._fit_lock.release()

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, shuffle, class_weight, sample_weight, initial_epoch,
             steps_per_epoch, validation_steps, validation_batch_size, validation_freq):
        self._check_compiled()
        batch_size = _batch_size(batch_size, "batch_size")
        validation_batch_size = (batch_size if validation_batch_size is None
                                 else _batch_size(validation_batch_size, "validation_batch_size"))
        epochs = positive_int(epochs, "epochs")
        verbose = _check_verbose(verbose)
        steps_per_epoch = _steps(steps_per_epoch, "steps_per_epoch")
        validation_steps = _steps(validation_steps, "validation_steps")
        validate_at = _validation_epochs(validation_freq)
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral) \
                or initial_epoch < 0:
            raise ValueError(f"Expected initial_epoch >= 0, received initial_epoch={initial_epoch!r}")
        if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
            raise ValueError(f"Expected validation_split in [0, 1), received "
                             f"validation_split={validation_split!r}")
        if isinstance(shuffle, np.bool_):
            shuffle = bool(shuffle)
        if not isinstance(shuffle, bool) and not (isinstance(shuffle, str)
                                                  and shuffle == "batch"):
            raise ValueError(f'Expected shuffle to be True, False or "batch", received '
                             f'shuffle={shuffle!r:.200}')
        with self._build_rollback():
            train = self._source(x, y, sample_weight, class_weight, batch_size, shuffle, True)
            val = None
            if validation_data is not None:
                val = self._validation_source(validation_data, validation_batch_size)
            elif validation_split > 0:
                if not isinstance(train.adapter, data_adapters.ArrayAdapter):
                    raise ValueError("Expected arrays with validation_split, received "
                                     f"{type(x).__name__}: pass validation_data instead")
                train, val = self._split(train, validation_split, batch_size,
                                         validation_batch_size, shuffle)
        execution, updates = self._training_run(train.graph, train.outputs)
        outputs = train.outputs
        if val is not None:
            val.outputs = [o.fresh() for o in outputs]
        steps = train.steps(steps_per_epoch, "steps_per_epoch", capped=False)
        passes = data_adapters.Passes(train.adapter.num_batches, steps_per_epoch)
        _warn_short_epochs(train.adapter, steps_per_epoch)
        share = getattr(self.optimizer, "share_batch", None)  # fastcnn.distributed's
        arrays = isinstance(train.adapter, data_adapters.ArrayAdapter)
        if share is not None and arrays:  # each process gathers its own share of each batch
            train.adapter.share = self.optimizer.share
        history = History()
        extra = [ProgbarLogger(verbose)] if verbose else []
        callbacks = list(callbacks or []) + extra + [history]
        # As in Keras 2, params["metrics"] lists every name an epoch's logs may hold.
        names = self._log_names(outputs, val is not None) + [
            n for cb in callbacks for n in getattr(cb, "logged_names", ())]
        params = {"epochs": epochs, "steps": steps, "verbose": verbose, "metrics": names}
        cbs = CallbackList(callbacks, self, params)
        self.stop_training = False
        state = self._fit_state = FitState(execution, outputs, train.adapter.resumable,
                                           initial_epoch, passes)
        if self._step_threads is None or self._step_threads.full != get_num_threads():
            self._step_threads = StepThreads(get_num_threads())
        step_threads = self._step_threads
        step_threads.new_fit()
        try:
            cbs.on_train_begin()
            logs = {}
            for epoch in range(state.epoch, epochs):
                execution.seed_random(self.seed, epoch)
                sums, start = state.begin_epoch(epoch)
                cbs.on_epoch_begin(epoch)
                logs = self._logs(sums, outputs)
                if train.adapter.resumable:  # read by index: from where the pass has got to
                    order_epoch, first, stop = passes.span(epoch)
                    batches = train.adapter.batches(self.seed, order_epoch, stop, first + start)
                else:  # a generator goes on by itself
                    first = 0
                    batches = train.adapter.batches(self.seed, epoch, steps, start,
                                                    go_on=steps_per_epoch is not None)
                batches = enumerate(batches, start)
                with data_adapters.Prefetcher(batches, train.prepare(epoch)) as prefetched:
                    for step, batch in prefetched:
                        if share is not None:  # this process's part of the batch
                            batch = share(execution, batch,
                                          train.adapter.batch_samples(first + step)
                                          if arrays else None)
                        cbs.on_train_batch_begin(step)
                        step_threads.run(functools.partial(self._train_step, execution, batch,
                                                           outputs, sums, updates),
                                         len(batch[0][0]))
                        state.step = step + 1
                        logs = self._logs(sums, outputs)
                        cbs.on_train_batch_end(step, logs)
                        if self.stop_training:
                            break
                if params["steps"] is None:  # a generator's length, known once read
                    params["steps"] = state.step
                passes.advance(state.step)
                if val is not None and validate_at(epoch + 1):
                    val_sums = self._evaluate_source(val, validation_steps, cbs,
                                                     name="validation_steps")
                    logs.update(self._logs(val_sums, val.outputs, prefix="val_"))
                cbs.on_epoch_end(epoch, logs)
                state.end_epoch()
                if self.stop_training:
                    break
            if hasattr(self.optimizer, "finalize_variable_values"):
                self.optimizer.finalize_variable_values(self.trainable_weights)
            cbs.on_train_end(logs)
        finally:
            self._fit_state = None
        self.history = history
        return history

    def _validation_source(self, validation_data, batch_size):
        """validation_data: a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight) of
        arrays, a generator or a PyDataset."""
        if data_adapters.is_batched(validation_data):
            return self._source(validation_data, None, None, None, batch_size, False, False,
                                names=("validation_data", "y_val"))
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("Expected validation_data to be a tuple (x_val, y_val) or (x_val, "
                             "y_val, val_sample_weight), a generator or a PyDataset")
        x_val, y_val, w_val = (*validation_data, None)[:3]
        return self._source(x_val, y_val, w_val, None, batch_size, False, False,
                            names=("x_val", "y_val"))

    def _split(self, train, validation_split, batch_size, validation_batch_size, shuffle):
        """(training, validation) sources: Keras takes the validation samples from the end,
        before any shuffling."""
        adapter = train.adapter
        split = int(adapter.n * (1 - validation_split))
        if split < 1 or split == adapter.n:
            raise ValueError(f"validation_split={validation_split} leaves no samples for "
                             f"training or validation out of {adapter.n}")

        def part(arrays, sl):
            return None if arrays is None else [None if a is None else a[sl] for a in arrays]

        head, tail = slice(None, split), slice(split, None)
        w = adapter.weights
        fit_part = data_adapters.ArrayAdapter(part(adapter.xs, head), part(adapter.ys, head),
                                              part(w, head), batch_size, shuffle)
        val_part = data_adapters.ArrayAdapter(part(adapter.xs, tail), part(adapter.ys, tail),
                                              part(w, tail), validation_batch_size)
        val_graph = self._graph_for_data(pack_like(train.structure, adapter.xs), False)
        return (_Source(train.graph, train.outputs, fit_part, train.structure),
                _Source(val_graph, train.outputs, val_part, train.structure))

    def _logits_ok(self, graph, outputs):
        """Which outputs' losses may take a softmax's logits (cross-entropy on probabilities
        over more than one class)."""
        return [isinstance(o.loss, (losses_module.CategoricalCrossentropy,
                                    losses_module.SparseCategoricalCrossentropy))
                and not o.loss.from_logits and t.shape[-1] != 1
                for o, t in zip(outputs, graph.outputs)]

    def _evaluate_source(self, source, steps, cbs, bar=None, name="steps"):
        """The loss and metric sums over ``steps`` batches of ``source`` (all, for None)."""
        graph, outputs = source.graph, source.outputs
        steps = source.steps(steps, name)
        pool = self._runner(graph, False, self.fuse)
        logits_ok = self._logits_ok(graph, outputs)
        penalty = self._regularization_loss()
        sums = {"loss": 0.0}
        _reset_metrics(outputs)
        cbs.on_test_begin()
        execution = pool.acquire()
        try:
            batches = enumerate(source.adapter.batches(self.seed, 0, steps))
            with data_adapters.Prefetcher(batches, source.prepare(0)) as prefetched:
                for step, (xs, ys, weights) in prefetched:
                    cbs.on_test_batch_begin(step)
                    outs = execution.forward(xs, logits_ok)
                    self._batch_losses(execution, outs, ys, weights, outputs, sums, False,
                                       penalty + _activity_penalty(execution))
                    logs = self._logs(sums, outputs)
                    if bar:
                        bar.update(step + 1, logs)
                    cbs.on_test_batch_end(step, logs)
        finally:
            pool.release(execution)
        cbs.on_test_end(self._logs(sums, outputs))
        return sums

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss, or [loss, *metrics] when the model logs more (as Keras orders them), or
        the logs dict with ``return_dict``. ``x`` is read as fit reads it; ``callbacks`` get
        the on_test_* hooks. ``steps`` beyond the batches of the data warn that the input ran
        out and take the batches there are, as in Keras."""
        self._check_compiled()
        batch_size = _batch_size(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        steps = _steps(steps, "steps")
        with self._build_rollback():
            source = self._source(x, y, sample_weight, None, batch_size, False, False)
        total = source.steps(steps, "steps")
        cbs = CallbackList(callbacks or [], self, {"steps": total, "verbose": verbose})
        bar = Progbar(total) if verbose and total else None
        logs = self._logs(self._evaluate_source(source, total, cbs, bar), source.outputs)
        if bar:
            bar.finish(logs)
        return self._batch_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x (probabilities after a softmax), batch by batch: an array,
        or a list or dict of them as the model's outputs are structured. Arrays are converted
        one batch at a time, so predict on a uint8 array or an np.memmap holds only a few
        batches besides its outputs. ``callbacks`` get the on_predict_* hooks. ``steps``
        beyond the batches of the data warn, as in Keras, and predict every sample there is."""
        batch_size = _batch_size(batch_size, "batch_size")
        verbose = _check_verbose(verbose)
        steps = _steps(steps, "steps")
        with self._build_rollback():
            source = self._source(x, None, None, None, batch_size, False, False, targets=False,
                                  whole_outputs=True)
        total = source.steps(steps, "steps")
        n = getattr(source.adapter, "n", None)
        if total is not None and n is not None:
            n = min(n, total * batch_size)
        cbs = CallbackList(callbacks or [], self, {"steps": total, "verbose": verbose})
        bar = Progbar(total) if verbose and total else None
        pool = self._runner(source.graph, False, self.fuse)
        results, parts, done = None, [], 0
        cbs.on_predict_begin()
        execution = pool.acquire()
        try:
            batches = enumerate(source.adapter.batches(self.seed, 0, total))
            with data_adapters.Prefetcher(batches, source.prepare(0)) as prefetched:
                for step, (xs, _, _) in prefetched:
                    cbs.on_predict_batch_begin(step)
                    outs = execution.forward(xs)
                    if n is None:  # a generator's total is known at its end
                        parts.append([np.array(o) for o in outs])
                    else:
                        if results is None:
                            results = [np.empty((n, *o.shape[1:]), np.float32) for o in outs]
                        for result, out in zip(results, outs):
                            result[done:done + len(out)] = out
                    done += len(outs[0])
                    if bar:
                        bar.update(step + 1, {})
                    cbs.on_predict_batch_end(step, {"outputs": outs})
        finally:
            pool.release(execution)
        if n is None:
            results = [np.concatenate(p) for p in zip(*parts)]
        if bar:
            bar.finish({})
        cbs.on_predict_end()
        return pack_like(source.graph.output_structure, results)

    # -- one batch, by hand -----------------------------------------------------------------
    def _batch_run(self, graph, outputs):
        """The training execution that train_on_batch reuses from call to call while the graph,
        the trained weights and the optimizer stay the same. Its random layers draw as the
        first epoch of a fit does, call after call."""
        key = (id(graph), self.fuse, id(self.optimizer),
               tuple(id(w) for w in self.trainable_weights))
        cached = getattr(self, "_batch_cache", None)
        if cached is None or cached[0] != key:
            execution, updates = self._training_run(graph, outputs)
            execution.seed_random(self.seed, 0)
            cached = self._batch_cache = (key, graph, execution, updates)
        return cached[2], cached[3]

    def _one_batch(self, x, y, sample_weight, class_weight, training, targets=True):
        with self._build_rollback():
            if data_adapters.is_batched(x):
                raise TypeError(f"Expected arrays for one batch, received {type(x).__name__}")
            source = self._source(x, y, sample_weight, class_weight, 1, False, training,
                                  targets=targets)
        if targets:  # the results are this batch's alone, as in Keras
            _reset_metrics(source.outputs)
        adapter = source.adapter
        weights = adapter.weights
        xs = [np.ascontiguousarray(a, dtype=np.float32) for a in adapter.xs]
        return source, (xs, adapter.ys, weights)

    def _batch_result(self, logs, return_dict):
        """logs as evaluate and the *_on_batch methods return them: the dict with
        ``return_dict``, else the loss, or [loss, *metrics] when there is more."""
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [v for k, v in logs.items() if k != "loss"]
        return ordered if len(ordered) > 1 else ordered[0]

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on the batch (x, y), as one step of fit: the loss (and metrics)
        of that batch, or the logs dict with ``return_dict``."""
        self._check_compiled()
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(f"Model {self.name!r} is already training")
        try:
            source, batch = self._one_batch(x, y, sample_weight, class_weight, True)
            execution, updates = self._batch_run(source.graph, source.outputs)
            share = getattr(self.optimizer, "share_batch", None)  # fastcnn.distributed's
            if share is not None:  # this process's part of the batch
                batch = share(execution, batch)
            sums = {"loss": 0.0}
            self._train_step(execution, batch, source.outputs, sums, updates)
        finally:
            self._fit_lock.release()
        return self._batch_result(self._logs(sums, source.outputs), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) of the batch (x, y), as evaluate computes them."""
        self._check_compiled()
        source, (xs, ys, weights) = self._one_batch(x, y, sample_weight, None, False)
        pool = self._runner(source.graph, False, self.fuse)
        sums = {"loss": 0.0}
        execution = pool.acquire()
        try:
            outs = execution.forward(xs, self._logits_ok(source.graph, source.outputs))
            self._batch_losses(execution, outs, ys, weights, source.outputs, sums, False,
                               self._regularization_loss())
        finally:
            pool.release(execution)
        return self._batch_result(self._logs(sums, source.outputs), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for the batch x, as predict returns them."""
        source, (xs, _, _) = self._one_batch(x, None, None, None, False, targets=False)
        return pack_like(source.graph.output_structure,
                         self._run_graph(source.graph, xs, False, self.fuse))


class _Source:
    """Checked data for one graph: its ``adapter`` of batches and how a raw batch becomes
    (float32 inputs, targets, weights): ``convert`` (None where the adapter's batches are
    ready: arrays). ``structure`` is how arrays' inputs were structured."""

    def __init__(self, graph, outputs, adapter, structure):
        self.graph, self.outputs, self.adapter, self.structure = graph, outputs, adapter, structure
        self.convert = None

    def steps(self, steps, name, capped=True):
        """The batches one pass takes: ``steps`` if given, else the adapter's count (None: a
        generator's, until it ends). ``capped`` (evaluation): like Keras, steps beyond the
        batches the data holds warn that the input ran out and take the batches there are
        (fit's epochs stop at the end of the data instead, see data_adapters.passes)."""
        count = self.adapter.num_batches
        if steps is None:
            if count is None and isinstance(self.adapter, data_adapters.PyDatasetAdapter):
                raise ValueError(f"Expected {name} with an endless PyDataset, received None")
            return count
        if capped and count is not None and steps > count:
            warnings.warn(f"{name}={steps} asks for more than the {count} batches of "
                          f"{getattr(self.adapter, 'name', 'x')}: as in Keras, the input runs "
                          f"out of data and the {count} batches it holds are used", stacklevel=3)
            return count
        return steps

    def prepare(self, epoch):
        """The function that turns (step, raw batch) into (step, batch) on the prefetching
        thread, naming the step in the errors of a batch it cannot use."""
        convert, name = self.convert, getattr(self.adapter, "name", "x")
        if convert is None:
            return lambda item: item

        def prepare(item):
            step, batch = item
            try:
                return step, convert(batch)
            except (ValueError, TypeError) as error:
                raise data_adapters.batches.at_step(error, step, epoch, name) from error
        return prepare


class FitState:
    """Where a running fit is, for callbacks that back it up and restore it
    (BackupAndRestore): the ``epoch`` and the ``step`` (batches done in it), the running loss
    and metric sums, the random streams of the execution's random layers, and the position in
    the pass over the data that epochs share with steps_per_epoch (``passes``, a
    data_adapters.Passes). ``resumable`` says whether the data can restart mid-epoch (a
    generator cannot)."""

    def __init__(self, execution, outputs, resumable, initial_epoch, passes):
        self.execution, self.outputs = execution, outputs
        self.resumable, self.passes = resumable, passes
        self.epoch, self.step = initial_epoch, 0
        self.sums = {"loss": 0.0}
        self._resume = None

    def begin_epoch(self, epoch):
        """(sums, first step) for ``epoch``, after seed_random, with the metrics reset: a
        restored mid-epoch state puts the random streams, sums and metrics back where the
        backup left them."""
        self.epoch, self.step, self.sums = epoch, 0, {"loss": 0.0}
        _reset_metrics(self.outputs)
        resume, self._resume = self._resume, None
        if resume is not None and resume["epoch"] == epoch and resume["step"] and self.resumable:
            self.step, self.sums = resume["step"], resume["sums"]
            for ctx, state in zip(self._random_contexts(), resume["random"]):
                ctx.rng.bit_generator.state = state
            for m, state in zip(self._metrics(), resume["metrics"], strict=True):
                _set_metric_state(m, state)
        return self.sums, self.step

    def end_epoch(self):
        self.epoch, self.step = self.epoch + 1, 0
        self.sums = {"loss": 0.0}

    def _metrics(self):
        return [m for o in self.outputs for m in o.resolved or ()]

    def _random_contexts(self):
        return [ctx for step, ctx in zip(self.execution.plan.steps, self.execution.contexts)
                if step.random_index is not None]

    def snapshot(self):
        """The state to back up mid-epoch: JSON values."""
        return {"epoch": self.epoch, "step": self.step,
                "sums": [[list(k) if isinstance(k, tuple) else k, v]
                         for k, v in self.sums.items()],
                "random": [ctx.rng.bit_generator.state for ctx in self._random_contexts()],
                "metrics": [_metric_state(m) for m in self._metrics()],
                "pass": self.passes.state()}

    def epoch_end_snapshot(self):
        """The state to back up once the current epoch's batches are done (and the pass has
        moved on past them): the next epoch, from its start."""
        return {"epoch": self.epoch + 1, "step": 0, "sums": [], "random": [],
                "pass": self.passes.state()}

    def restore(self, snapshot):
        """Continue from ``snapshot`` (as ``snapshot`` returned it): its epoch, and for data that
        can resume mid-epoch, its position in the pass, step, sums and random streams."""
        self.epoch = snapshot["epoch"]
        if self.resumable and snapshot.get("pass") is not None:
            self.passes.set_state(snapshot["pass"])
        self._resume = {**snapshot, "sums": {tuple(k) if isinstance(k, list) else k: v
                                              for k, v in snapshot["sums"]}}


def _reset_metrics(outputs):
    for o in outputs:
        for m in o.resolved or ():
            m.reset_state()


def _metric_state(metric):
    """A metric's state as JSON values: its number and array attributes (fastcnn's metrics
    keep their state in such attributes) and its ``variables`` (a metric written as Keras's
    guide writes one keeps it there)."""
    def array(a):
        return {"array": a.tolist(), "dtype": a.dtype.str, "shape": a.shape}

    state = {"attributes": {}, "variables": [array(v.value) for v in metric.variables]}
    for key, value in vars(metric).items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            state["attributes"][key] = array(value)
        elif isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, complex):
            state["attributes"][key] = {
                "number": value.item() if isinstance(value, np.generic) else value}
    return state


def _set_metric_state(metric, state):
    def array(value):
        return np.array(value["array"], np.dtype(value["dtype"])).reshape(value["shape"])

    for key, value in state["attributes"].items():
        setattr(metric, key, array(value) if "array" in value else value["number"])
    for variable, value in zip(metric.variables, state["variables"], strict=True):
        variable.assign(array(value))


def _warn_short_epochs(adapter, steps_per_epoch):
    """Keras's warning that the data runs out within an epoch of steps_per_epoch batches (the
    epoch then stops at the end of the data); given once per fit."""
    count = adapter.num_batches
    if steps_per_epoch is None or count is None or count % steps_per_epoch == 0:
        return
    warnings.warn(f"steps_per_epoch={steps_per_epoch} does not divide the {count} batches of "
                  f"{getattr(adapter, 'name', 'x')}: as in Keras, the epoch that reaches the end "
                  f"of the data stops there, after {count % steps_per_epoch} of them, and the "
                  f"next epoch starts a new pass over the data", stacklevel=4)


def _batch_size(value, name):
    return 32 if value is None else positive_int(value, name)


def _steps(value, name):
    return None if value is None else positive_int(value, name)


def _validation_epochs(freq):
    """Whether fit validates after the 1-based epoch e, as a function of e: every ``freq``
    epochs for an int, at the epochs listed for a list, tuple or set."""
    if isinstance(freq, (list, tuple, set, frozenset)):
        epochs = {positive_int(e, "validation_freq") for e in freq}
        return epochs.__contains__
    freq = positive_int(freq, "validation_freq")
    return lambda e: e % freq == 0


def _output_bytes(graph, arrays):
    """The bytes of the float32 outputs of ``graph`` for all of ``arrays``."""
    return sum(math.prod(s) * 4 for s in infer_shapes(graph, [a.shape for a in arrays]))

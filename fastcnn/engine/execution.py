"""Running a plan: one ``Execution`` per concurrent call, owning every buffer and context.

An execution keeps, for each step, a ``CallContext``: what that call's forward leaves for its
backward, its reusable buffers, its random generator and where its weight gradients go. Nothing
of a call is kept on the layer, so one layer may run at several places of a graph, in several
models and from several threads at once; ``ExecutionPool`` hands each concurrent caller its own
execution.
"""
import threading
import types
from collections import Counter
from contextlib import contextmanager

import numpy as np

from .._ops import merge, threads
from .._ops.workspace import BufferPool, Workspace, root


class CallContext:
    """Per call and per execution: attributes a layer's forward sets for its backward, and:

    - ``buffer(name, shape, dtype)``: a buffer reused from batch to batch; while the call's
      backward runs, and in the forward pass of a plan without backward, a buffer from the
      execution's pool instead, which other calls reuse once nothing reads it (so backward must
      not expect what forward wrote in a buffer of the same name);
    - ``scratch(name, shape, dtype)``: a buffer the call reads only until it returns: like
      ``buffer``, but in the forward pass of a plan with backward too it comes from the
      execution's pool (``scratch_pool``), which lends it again once the call has returned;
    - ``rng``: the generator a random layer draws from;
    - ``grads``: None, or one array per weight of the layer (None for a weight not trained),
      which backward overwrites with that weight's gradient;
    - planner flags: ``emit_logits`` (return the logits of a final softmax), ``defer_relu_grad``
      (leave the relu backward to the reader of the output), ``apply_input_relu_grad`` (the
      input is a relu's output: apply its backward to dX), ``batchnorm_moments`` (a linear
      Conv2D or DepthwiseConv2D read by a training BatchNormalization only: leave the partial
      sums of its statistics in ``ctx.moments``); then ``batchnorm_dx``: None, or (set by that
      normalisation's backward) what the conv's backward needs to make the normalisation's
      dx from the gradient it gets, the normalisation's dy; ``input_batchnorm``: None, or
      (a plain Conv2D whose input a training batch normalisation's output is) that
      normalisation, which the conv applies to x, its input, as it loads it;
    - ``first_sample``: the index of the batch's first sample in the whole batch it is one
      process's share of (0 for a whole batch): random masks key on the sample's index in the
      whole batch;
    - ``sum_across``: None, or (in a data-parallel fit) a callable that replaces a 1-D float64
      array, in place, by its total over the processes (the last entry of the array: this
      process's number of values summed, 0 for none); synchronized batch normalisation totals
      its statistics through it.
    """

    first_sample = 0
    sum_across = None
    emit_logits = False
    defer_relu_grad = False
    apply_input_relu_grad = False
    batchnorm_moments = False
    batchnorm_dx = None
    input_batchnorm = None
    pool = None  # the execution's BufferPool while it lends this call its buffers
    # The execution's BufferPool during a forward pass that backward follows: scratch comes
    # from it, and so does the output of a step that backward recomputes rather than keeps.
    scratch_pool = None

    def __init__(self, rng=None):
        self.rng = rng
        self.grads = None
        self._workspace = Workspace()

    def buffer(self, name, shape, dtype=np.float32):
        if self.pool is not None:
            return self.pool.take(shape, dtype)
        return self._workspace.get(name, shape, dtype)

    def scratch(self, name, shape, dtype=np.float32):
        pool = self.pool if self.pool is not None else self.scratch_pool
        if pool is not None:
            return pool.take(shape, dtype)
        return self._workspace.get(name, shape, dtype)

    @contextmanager
    def lending(self, pool):
        """Within it, the call's buffers come from ``pool``."""
        self.pool = pool
        try:
            yield
        finally:
            self.pool = None


def _holders(ctx, value):
    """The names of ``ctx``'s attributes that are ``value`` itself, or None when ctx may hold
    value's memory in another form (a view, in a container, in an object it cannot see
    into)."""
    owner, names = root(value), []
    for name, held in vars(ctx).items():
        if held is value:
            names.append(name)
        elif name != "sum_across" and _may_share(held, owner):  # the execution's, not a step's
            return None
    return names


def _may_share(held, owner):
    if isinstance(held, np.ndarray):
        return root(held) is owner
    if isinstance(held, (list, tuple)):
        return any(_may_share(h, owner) for h in held)
    if isinstance(held, dict):
        return any(_may_share(h, owner) for h in held.values())
    if isinstance(held, CallContext):
        return any(_may_share(h, owner) for h in vars(held).values())
    return not isinstance(held, _HOLDING_NO_ARRAY)


# What a context may hold that cannot hold an array: numbers, flags, names, its own workspace,
# its generator, dtypes, functions (a data-parallel fit's ``sum_across``).
_HOLDING_NO_ARRAY = (type(None), bool, int, float, str, np.generic, np.dtype, Workspace,
                     np.random.Generator, types.FunctionType, types.MethodType,
                     types.BuiltinFunctionType)


def balanced_parts(n, part, n_threads):
    """(workers, [(start, stop)...]) for a batch of ``n`` samples run in parts of at most
    ``part`` on up to ``n_threads`` threads: as many parts as the bound asks, rounded up to a
    multiple of the workers, their sizes within one sample of each other, so that the workers
    finish together. Parts of the bound itself would leave a thread idle beside a small last
    part (128 samples in parts of 97 and 31)."""
    count = -(-n // part)
    workers = min(n_threads, count)
    count = -(-count // workers) * workers
    bounds = [n * k // count for k in range(count + 1)]
    return workers, list(zip(bounds[:-1], bounds[1:]))


class Execution:
    """Buffers, contexts and (for training) weight gradients of one run of ``plan``.

    ``gradients`` is aligned with ``plan.trained``: after ``backward`` it holds their gradients,
    and ``input_gradients`` those of the inputs the plan was asked for (None for the others),
    valid until the next run.
    ``logits_outputs`` says which outputs of the last run are a softmax's logits.
    ``workspace`` holds the caller's own per-batch buffers (the batch, the loss and its
    gradient), so that those are private to the execution too.

    For data-parallel training (fastcnn.distributed), where each process runs a share of every
    batch: ``whole_batch`` (None: the inputs are the whole batch) is the batch's size, over which
    the loss gradient averages; ``share(first, whole_batch)`` places the share; ``reduce``
    (None: no other process), called as ``reduce(gradients, present)`` after each backward, sums
    the gradients of all the processes into ``gradients``; ``present`` is False for a process
    with no sample of the batch (``backward_without_samples``); ``sum_across`` (None: no other
    process) is what the steps' contexts get as theirs (see CallContext).
    """

    whole_batch = None
    reduce = None
    sum_across = None

    def __init__(self, plan):
        self.plan = plan
        self.contexts = []
        for step in plan.steps:
            ctx = CallContext(rng=step.random_layer.rng if step.random_layer else None)
            for flag, value in step.flags.items():
                setattr(ctx, flag, value)
            self.contexts.append(ctx)
        self.values = [None] * plan.n_slots
        self.logits_outputs = list(plan.logits_outputs)
        self.workspace = Workspace()
        # training drops every reference to a buffer it gives back (see _forward_keeping)
        self._pool = BufferPool(hand_back_small=bool(plan.backward_steps))
        # what the last forward pass left for backward to recompute (see _forward_keeping)
        self._kept, self._dropped, self._restore, self._uses = [], {}, {}, Counter()
        self._readers = Counter(s for step in plan.steps for s in step.inputs)
        self._readers.update(plan.output_slots)  # the caller reads the outputs
        self._helpers = []  # the executions that run sub-batches beside this one
        self.gradients = [np.zeros_like(w) for w in plan.trained]
        self.input_gradients = [None] * len(plan.input_slots)
        store = {id(w): g for w, g in zip(plan.trained, self.gradients)}
        self._additions = [[] for _ in plan.steps]  # (scratch, total) pairs added after a step
        for index in plan.backward_steps:
            step, ctx = plan.steps[index], self.contexts[index]
            routes = plan.grad_routes[index]
            if not any(routes):
                continue
            ctx.grads = []
            for w, route in zip(step.layer._weights, routes):
                if route == "add":
                    ctx.grads.append(np.zeros_like(w))
                    self._additions[index].append((ctx.grads[-1], store[id(w)]))
                else:
                    ctx.grads.append(store[id(w)] if route == "write" else None)

    def share(self, first, whole_batch):
        """The next inputs are samples [first, first + their count) of a batch of whole_batch."""
        self.whole_batch = whole_batch
        for ctx in self.contexts:
            ctx.first_sample = first
            ctx.sum_across = self.sum_across

    def backward_without_samples(self):
        """In place of forward and backward for a process with no sample of the batch: zero
        gradients, which ``reduce`` leaves out of the sum. Layers that total values over the
        processes in their own passes (``forward_without_samples(ctx, training)`` and
        ``backward_without_samples(ctx)``) take their part in those totals, in the order of the
        passes of the processes that have samples."""
        if self.sum_across is not None:
            plan = self.plan
            for step, ctx in zip(plan.steps, self.contexts):
                idle = getattr(step.layer, "forward_without_samples", None)
                if idle is not None:
                    idle(ctx, step.training)
            for index in plan.backward_steps:
                idle = getattr(plan.steps[index].layer, "backward_without_samples", None)
                if idle is not None:
                    idle(self.contexts[index])
        for g in self.gradients:
            g[...] = 0
        if self.reduce is not None:
            self.reduce(self.gradients, False)

    def seed_random(self, seed, epoch):
        """Epoch ``epoch`` of a fit seeded with ``seed``: each random step draws from RNG
        (seed, epoch, its index + 1), so a resumed fit draws what an uninterrupted one would."""
        for step, ctx in zip(self.plan.steps, self.contexts):
            if step.random_index is not None:
                ctx.rng = np.random.default_rng([seed, epoch, step.random_index])

    def forward(self, inputs, logits_ok=None):
        """The outputs for ``inputs`` (one array per input slot); they live in this execution's
        buffers until its next run. ``logits_ok`` (one bool per output; default, the plan's
        ``logits_outputs``) asks the outputs whose softmax the plan may leave out for their
        logits instead."""
        plan = self.plan
        if plan.logits_steps:
            wanted = plan.logits_outputs if logits_ok is None else logits_ok
            for k, index in plan.logits_steps.items():
                self.contexts[index].emit_logits = bool(wanted[k])
            self.logits_outputs = [bool(wanted[k]) and k in plan.logits_steps
                                   for k in range(len(plan.output_slots))]
        values = self.values
        for slot, x in zip(plan.input_slots, inputs):
            values[slot] = x
        if plan.backward_steps:  # backward reads what forward keeps
            self._forward_keeping(values)
            return [values[s] for s in plan.output_slots]
        n = len(inputs[0]) if inputs else 0
        if plan.sub_batch and n > plan.sub_batch and all(len(x) == n for x in inputs):
            return self._forward_in_parts(inputs, n, plan.sub_batch)
        self._forward_sharing_buffers(values)
        return [values[s] for s in plan.output_slots]

    def _forward_in_parts(self, inputs, n, part):
        """Forward of a batch of n samples (more than ``part``) at most ``part`` samples at a
        time (Plan.sub_batch), in parts of equal sizes (balanced_parts). The parts run on up
        to get_num_threads() threads, each with an
        execution of its own and one kernel thread, each taking the next part when it is done
        with one: a part runs every step with no barrier, which a loaded machine's time slices
        would hold back. The kernels compute each sample alone in a fixed order, so the outputs
        are the same for any thread count. Each part's outputs are copied into the batch's."""
        plan, lock = self.plan, threading.Lock()
        workers, bounds = balanced_parts(n, part, threads.effective_n_threads())
        parts = iter(bounds)
        outputs, errors = [], []
        while len(self._helpers) < workers - 1:
            self._helpers.append(Execution(plan))
        for helper in self._helpers:
            for ctx, own in zip(helper.contexts, self.contexts):
                ctx.emit_logits = own.emit_logits

        def work(execution):
            try:
                with threads.capped_threads(1):
                    while True:
                        with lock:
                            start, stop = next(parts, (None, None))
                        if start is None or errors:
                            return
                        values = execution.values
                        for slot, x in zip(plan.input_slots, inputs):
                            values[slot] = x[start:stop]
                        execution._forward_sharing_buffers(values)
                        with lock:
                            if not outputs:
                                outputs.extend(
                                    self.workspace.get(("output", k), (n, *values[s].shape[1:]),
                                                       values[s].dtype)
                                    for k, s in enumerate(plan.output_slots))
                        for out, slot in zip(outputs, plan.output_slots):
                            out[start:stop] = values[slot]
            except BaseException as error:  # re-raised on the calling thread
                errors.append(error)

        helpers = [threading.Thread(target=work, args=(helper,), daemon=True)
                   for helper in self._helpers[:workers - 1]]
        for thread in helpers:
            thread.start()
        work(self)
        for thread in helpers:
            thread.join()
        if errors:
            raise errors[0]
        return outputs

    def _forward_sharing_buffers(self, values):
        """Forward without backward: each buffer goes back to the pool once every reader of the
        values in it has run, the outputs' (read by the caller) at the next run."""
        pool = self._pool
        pool.give_back(lambda buf: False)
        reads = Counter()  # id of a buffer's owner -> reads to come of the values in it
        for step, ctx in zip(self.plan.steps, self.contexts):
            with ctx.lending(pool):
                step.forward(values, ctx)
            for slot in step.outputs:
                reads[id(root(values[slot]))] += self._readers[slot]
            for slot in step.inputs:
                reads[id(root(values[slot]))] -= 1
            pool.give_back(lambda buf: reads[id(buf)] > 0)

    def _forward_keeping(self, values):
        """Forward for backward: each call keeps what its backward reads, but scratch goes back
        to the pool after each call, and so does a recomputed output (``BatchNormStep``) once
        its forward readers have run, unless one of them holds it otherwise than as attributes
        of its context that are the value itself (``_holders``). Backward then recomputes it
        for the readers that hold it (``_restore``: step index -> [(slot, attribute names)])."""
        plan, pool = self.plan, self._pool
        pool.give_back(lambda buf: False)
        pending = {}  # id of a recomputed output's buffer -> [slot, reads to come, droppable]
        self._kept, self._dropped, restore = [], {}, {}
        for index, (step, ctx) in enumerate(zip(plan.steps, self.contexts)):
            ctx.scratch_pool = pool
            try:
                step.forward(values, ctx)
            finally:
                ctx.scratch_pool = None
            for slot, count in Counter(step.inputs).items():
                entry = pending.get(id(root(values[slot])))
                if entry is None:
                    continue
                names = _holders(ctx, values[slot]) if slot == entry[0] else None
                if names is None:  # a view of it, or it held in some other form
                    entry[2] = False
                elif names:
                    restore.setdefault(index, []).append((slot, names))
                entry[1] -= count
            for slot in step.outputs:
                entry = pending.get(id(root(values[slot])))
                if entry is not None and slot != entry[0]:  # an output that is a view of it
                    entry[2] = False
            if getattr(step, "recompute", False):
                slot = step.outputs[0]
                pending[id(root(values[slot]))] = [slot, self._readers[slot], True, index]
            for key in [k for k, entry in pending.items() if entry[1] == 0]:
                slot, _, droppable, producer = pending.pop(key)
                if droppable:  # no reference left to the buffer but the pool's
                    self._dropped[slot] = (producer, values[slot].shape, values[slot].dtype)
                    values[slot] = None
                    self._let_go(restore, slot)
                else:
                    self._kept.append(root(values[slot]))
            kept = {id(buf) for buf in self._kept}
            pool.give_back(lambda buf: id(buf) in pending or id(buf) in kept)
        self._kept += [root(values[entry[0]]) for entry in pending.values()]
        running = set(plan.backward_steps)
        self._restore = {index: [(slot, names) for slot, names in entries
                                 if slot in self._dropped]
                         for index, entries in restore.items() if index in running}
        self._uses = Counter(slot for entries in self._restore.values() for slot, _ in entries)

    def _let_go(self, restore, slot):
        """Drop the references to ``slot``'s value that the readers in ``restore`` hold."""
        for index, entries in restore.items():
            for held, names in entries:
                if held == slot:
                    for name in names:
                        setattr(self.contexts[index], name, None)

    def backward(self, output_grads):
        """Back-propagate ``output_grads`` (one per output, None where it has no loss) and fill
        ``gradients``. A value read at several places gets the sum of their gradients, added
        left to right in the fixed order of the steps (last first), when the step that made the
        value runs its backward: a step whose ``gradient_parts`` is 2 takes a gradient of two
        parts as a tuple and adds them itself, in that order, in its own first pass."""
        plan, pool = self.plan, self._pool
        parts = [[] for _ in range(plan.n_slots)]
        # id of a buffer's owner -> gradient parts not yet consumed in it, and backward passes
        # still to read a recomputed output in it; a kept output stays to the end
        reads = Counter(id(buf) for buf in self._kept)
        for slot, g in zip(plan.output_slots, output_grads):
            if g is not None:
                parts[slot].append(g)
                reads[id(root(g))] += 1
        again, uses = {}, Counter(self._uses)  # slot -> its recomputed output, reads to come
        # A step's own buffers are free once its backward has run, until the next forward
        # (the steps that read them run their backward before it), but for the outputs'.
        outputs = {id(root(self.values[s])) for s in plan.output_slots}
        for index in plan.backward_steps:
            step, ctx = plan.steps[index], self.contexts[index]
            restore = self._restore.get(index, ())
            for slot, names in restore:
                if slot not in again:
                    producer, shape, dtype = self._dropped[slot]
                    again[slot] = plan.steps[producer].output_again(self.contexts[producer],
                                                                    pool.take(shape, dtype))
                    reads[id(root(again[slot]))] += uses[slot]
                for name in names:
                    setattr(ctx, name, again[slot])
            dys = [self._gradient(s, parts[s], getattr(step, "gradient_parts", 1))
                   for s in step.outputs]
            with ctx.lending(pool):
                dxs = step.backward(dys, ctx, plan.need_dx[index])
            for slot, names in restore:
                reads[id(root(again[slot]))] -= 1
                for name in names:
                    setattr(ctx, name, None)
                uses[slot] -= 1
                if not uses[slot]:  # no reference left to the buffer but the pool's
                    del again[slot]
            for slot, dx in zip(step.inputs, dxs):
                if dx is not None and plan.needs_grad[slot]:
                    parts[slot].append(dx)
                    reads[id(root(dx))] += 1
            for slot in step.outputs:  # consumed: this step's gradients
                for g in parts[slot]:
                    reads[id(root(g))] -= 1
                parts[slot] = []
            pool.give_back(lambda buf: reads[id(buf)] > 0)
            pool.borrow(buf for buf in ctx._workspace.buffers() if id(buf) not in outputs)
            for scratch, total in self._additions[index]:
                merge.add_forward([total, scratch], out=total)
        self.input_gradients = [np.array(self._gradient(s, parts[s], 1)) if wanted else None
                                for s, wanted in zip(plan.input_slots, plan.input_grads)]
        pool.give_back(lambda buf: False)
        pool.reclaim()
        if self.reduce is not None:
            self.reduce(self.gradients, True)

    def _zeros(self, slot):
        value = self.values[slot]
        shape, dtype = (value.shape, value.dtype) if value is not None else self._dropped[slot][1:]
        buf = self._pool.take(shape, dtype)
        buf[...] = 0
        return buf

    def _gradient(self, slot, parts, taken):
        """The gradient of ``slot`` from its parts: zeros, the one part, the parts as a tuple
        for a step that takes that many, or their sum (zeros and sums in a buffer of the pool,
        which takes it back after the step that reads it)."""
        if not parts:
            return self._zeros(slot)
        if len(parts) == 1:
            return parts[0]
        if len(parts) <= taken:
            return tuple(parts)
        total = self._pool.take(parts[0].shape, parts[0].dtype)
        return merge.add_forward(parts, out=total)


class ExecutionPool:
    """Executions of one plan, each lent to one caller at a time."""

    def __init__(self, plan):
        self.plan = plan
        self._idle = []
        self._lock = threading.Lock()

    def acquire(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Execution(self.plan)

    def release(self, execution):
        with self._lock:
            self._idle.append(execution)

"""The planner: a flat graph becomes the steps that run it, and every fusion is decided here.

- **conv -> max-pool (-> dropout)**: a Conv2D (linear or relu) whose output feeds nothing but a
  "valid" MaxPooling2D runs with it as one kernel call (``ConvMaxPoolStep``). A Dropout after the
  pooling, or after a Flatten after it, joins the step when it is the pooling's only reader; the
  Flatten then runs after the step (both keep each image's values in row-major order, so they
  commute). Each image's conv output then stays in per-thread scratch.
- **batch normalisation -> (Add ->) activation**: a BatchNormalization whose output feeds
  nothing but an Activation ("relu", "relu6" or "linear"), or a two-input Add of its own shape
  whose output may feed nothing but such an Activation, runs with them as one step
  (``BatchNormStep``): one pass normalises, adds the Add's other input and applies the (capped)
  relu, and one backward computes the relu's mask, the Add's gradient for the other input and
  the normalisation's in two passes.
  In a plan with backward, a step without an Add keeps its output only while forward reads
  it: the backward of each reader that keeps it recomputes it first (one elementwise pass from
  BN's input and batch statistics, bit for bit the forward's), into a buffer of the
  execution's pool (``Execution``), so that training holds BN's input and not both.
- **conv -> batch normalisation in inference (-> Add) (-> activation)**: in a plan without a
  backward pass, a linear Conv2D or DepthwiseConv2D whose output feeds nothing but a
  BatchNormalization that uses its moving statistics runs as one conv whose kernel and bias fold
  the normalisation in (``ConvBatchNormStep``), with a relu or relu6 Activation after it fused
  in the conv's epilogue too. A Conv2D's fold also takes a two-input Add of its output's shape
  reading the BN (the first of two such folds reading one Add takes it), whose other input the
  conv kernel adds in its epilogue before the activation; a DepthwiseConv2D's BN feeding an Add
  goes to ``BatchNormStep`` instead.
- **a conv's backward makes BN's dx**: a linear plain Conv2D or DepthwiseConv2D read only by a
  training BatchNormStep sums that step's statistics in its forward (its
  ``batchnorm_moments``). A Conv2D whose kernel trains also makes the step's dx in its
  backward (``BatchNormStep.dx_by_conv``): the step runs its sums pass only and leaves what
  the dx pass needs in the conv's context, and the conv's backward makes each image's dx as
  it reads the gradient it gets: dy, or where the relu's mask needs the residual or the
  gradient comes in two parts, the normalised value's gradient, which the sums pass writes
  (it is the residual's too).
- **batch normalisation applied as the next conv loads it**: in a plan with backward, a
  training BatchNormStep without an Add whose output only a plain Conv2D reads computes its
  statistics only; the conv normalises (and rectifies) each image of the step's input as it
  loads it, in its forward and its dW (``BatchNormStep.norm_slot``), and where its kernel
  trains, its backward sums the step's gradient sums as it writes dX, the step's dy
  (``BatchNormStep.sums_by_conv``).
- **relu-gradient handoff**: a layer ending in relu whose output feeds nothing but a max pooling,
  a Conv2D or a fused conv + max-pool step leaves its relu backward to that reader, which
  applies it in its own pass (a Conv2D in its dX kernel, on each image while it is in cache).
- **elementwise chains**: op nodes of fastcnn.ops that compute elementwise on one shape
  (arithmetic, the unary functions, clip; operands of that shape, one value per row or per
  column, or Python numbers) and read no weight, each reading a value that another member made,
  run as one program (``ElementwiseStep``, engine/elementwise.py), ended by a sum or mean over
  the last axis when one reads the chain. A chain takes no member after a step outside it has
  read one of its values, so that it runs before every reader.
- **softmax + cross-entropy**: an output whose layer ends in softmax, with a cross-entropy loss on
  probabilities, emits its logits, and the loss runs the fused, stable kernel on them.

- **sub-batches in inference**: a plan without backward whose steps all compute each sample
  from that sample alone (``per_sample`` layers, none in training mode) runs a large batch in
  parts of ``Plan.sub_batch`` samples (``Execution.forward``): each kernel thread takes a part
  through every step with one kernel thread, then the next part, so that no step waits at a
  barrier (a loaded machine's time slices hold barriers back), a part's values stay in its
  core's caches from one step to the next and the buffers are those of a part. A part's
  largest value holds about ``SUB_BATCH_BYTES``, and a part at least ``MIN_SUB_BATCH``
  samples, which keeps the per-step call overhead small. The kernels compute each sample in
  the same order whatever the batch, so the outputs are bitwise those of the whole batch.

Layers say what they are to the planner through their ``fusion`` attribute; nothing else
about fusion lives outside this module. ``fuse=False`` plans every layer as its own step, which
gives the same results within float32 round-off.
"""
import math
from collections import Counter

from .._ops import conv as conv_ops
from .._ops import depthwise as depthwise_ops
from .._ops import normalization as normalization_ops
from .elementwise import ElementwiseStep

ACTIVATION_KINDS = ("conv2d", "dense", "activation")  # layers whose activation the planner moves
# What BatchNormStep applies after the normalisation (and the Add), with the relu cap of each;
# ConvBatchNormStep's conv and depthwise kernels apply the same in their epilogue.
BATCHNORM_ACTIVATIONS = {"relu": None, "relu6": 6.0, "linear": None}
SUB_BATCH_BYTES = 8 << 20  # the bytes of a sub-batch's largest value, about (see above)
MIN_SUB_BATCH = 32


class LayerStep:
    """One leaf call: ``layer.forward(x, ctx, training)`` and ``layer.backward(dy, ctx, need_dx)``."""

    def __init__(self, call, index):
        self.layer = call.layer
        self.inputs, self.single_input, self.outputs = call.inputs, call.single_input, call.outputs
        self.training, self.trainable = call.training, call.trainable
        # Random layers draw from generator (seed, epoch, index + 1) in fit, as a Sequential's
        # layer i always has.
        self.random_index = index + 1 if getattr(call.layer, "draws_random", False) else None
        self.random_layer = call.layer if self.random_index else None
        self.flags = {}  # context flags set by the planner: see CallContext
        self.conv_slot = None  # where a conv leaves its context, with batchnorm_moments
        # where the BatchNormStep whose output a conv reads leaves the normalisation for it
        self.input_norm_slot = None
        self.per_sample = (call.layer.per_sample and not call.training
                           and getattr(call.layer, "activity_regularizer", None) is None)

    def forward(self, values, ctx):
        x = values[self.inputs[0]] if self.single_input else [values[s] for s in self.inputs]
        if self.input_norm_slot is not None:
            ctx.input_batchnorm = values[self.input_norm_slot]
        y = self.layer.forward(x, ctx, self.training)
        if self.conv_slot is not None:
            values[self.conv_slot] = ctx
        if len(self.outputs) == 1:
            values[self.outputs[0]] = y
            regularizer = getattr(self.layer, "activity_regularizer", None)
            if regularizer is not None:  # Keras's penalty on the output, per sample of the batch
                ctx.activity_output = y
                ctx.activity_penalty = regularizer(y) / len(y)
            return
        for slot, value in zip(self.outputs, y):
            values[slot] = value

    def backward(self, dys, ctx, need_dx):
        regularizer = getattr(self.layer, "activity_regularizer", None)
        if regularizer is not None:
            y = ctx.activity_output
            dy = ctx.buffer("activity_dy", y.shape, y.dtype)
            dy[...] = dys[0]
            regularizer.add_gradient(y, dy, 1 / len(y))
            dys = [dy]
        dx = self.layer.backward(dys[0] if len(self.outputs) == 1 else dys, ctx, need_dx)
        if self.single_input:
            return [dx]
        return list(dx) if dx is not None else [None] * len(self.inputs)


class ConvMaxPoolStep:
    """A Conv2D and the "valid" MaxPooling2D reading it (and a Dropout after), as one call of
    the fused kernels. Backward rebuilds each image's conv gradient in scratch from the argmax
    and runs dW and dX on it while it is in cache. ``input_relu``: the conv's input is a relu's
    output whose backward this step applies to dX in the same pass."""

    single_input = True

    def __init__(self, conv_call, pool_call, dropout_call, output, dropout_index):
        self.layer, self.pool = conv_call.layer, pool_call.layer
        self.dropout = dropout_call.layer if dropout_call else None
        self.dropout_training = dropout_call.training if dropout_call else False
        self.inputs, self.outputs = conv_call.inputs, [output]
        self.trainable = conv_call.trainable
        self.random_index = dropout_index + 1 if dropout_call else None
        self.random_layer = self.dropout
        self.flags = {}
        self.input_relu = False
        self.per_sample = not self.dropout_training

    def _args(self):
        conv, pool = self.layer, self.pool
        return dict(strides=conv.strides, padding=conv.padding, pool_size=pool.pool_size,
                    pool_strides=pool.strides, relu=conv.activation == "relu")

    def forward(self, values, ctx):
        x = values[self.inputs[0]]
        shape = self.pool.compute_output_shape(self.layer.compute_output_shape(x.shape))
        ctx.x = x
        ctx.dropout = self.dropout.draw_mask(ctx, self.dropout_training) if self.dropout else None
        ctx.y, ctx.argmax = conv_ops.conv2d_maxpool_forward(
            x, self.layer.kernel, self.layer.bias, **self._args(), out=ctx.buffer("y", shape),
            argmax=ctx.buffer("argmax", shape, "int32"), dropout=ctx.dropout)
        values[self.outputs[0]] = ctx.y

    def backward(self, dys, ctx, need_dx):
        conv, x = self.layer, ctx.x
        grads = ctx.grads or [None, None]
        dw = grads[0] if grads[0] is not None else ctx.buffer("dw", conv.kernel.shape)
        db = None
        if conv.use_bias:
            db = grads[1] if grads[1] is not None else ctx.buffer("db", conv.bias.shape)
        _, dx = conv_ops.conv2d_maxpool_backward(
            x, dys[0], ctx.y, ctx.argmax, conv.kernel, **self._args(), dw=dw, db=db,
            dx=ctx.buffer("dx", x.shape) if need_dx else None, need_dx=need_dx,
            input_relu=self.input_relu, dropout=ctx.dropout)
        return [dx]


class BatchNormStep:
    """A BatchNormalization, the two-input Add reading it (if any) and the Activation after
    (if any), as one call of the fused kernels: inputs [the normalised value, the Add's other
    input], output the last member's. Its backward takes its output's gradient in two parts
    (``Execution``: a value two steps read), which its first pass adds as it reads them.

    ``recompute`` (set by the planner): in a forward pass that backward follows, the output's
    buffer comes from the execution's pool (``CallContext.scratch_pool``), and the execution
    may hand it back once the forward readers have run and have the backward of the readers
    that keep it get it again from ``output_again``. Its own backward reads x, not the output."""

    gradient_parts = 2
    recompute = False

    def __init__(self, bn_call, add_call, residual, act_call, output):
        self.layer, self.add = bn_call.layer, add_call.layer if add_call else None
        self.inputs = [bn_call.inputs[0]] + ([residual] if add_call else [])
        self.outputs = [output]
        self.training, self.trainable = bn_call.training, bn_call.trainable
        activation = act_call.layer.activation if act_call is not None else "linear"
        self.relu = activation != "linear"
        self.relu_max = BATCHNORM_ACTIVATIONS[activation]
        self.random_index = self.random_layer = None
        self.flags = {}
        self.conv_slot = None  # where the conv making the input leaves its context
        # (set by the planner) that conv's backward makes this step's dx from dy as it reads it
        self.dx_by_conv = False
        # (set by the planner) where this step leaves its normalisation for the conv reading
        # its output, which applies it as it loads its input: the output slot then holds x;
        # and whether that conv's backward sums this step's gradient sums as it writes dX
        self.norm_slot = None
        self.sums_by_conv = False
        self.per_sample = not self.training

    def forward(self, values, ctx):
        x = values[self.inputs[0]]
        residual = values[self.inputs[1]] if self.add else None
        if self.add:
            self.add.compute_output_shape([x.shape, residual.shape])  # the Add's own checks
        conv = values[self.conv_slot] if self.conv_slot is not None else None
        moments = conv.moments if conv is not None else None
        ctx.conv = conv if self.dx_by_conv else None
        if self.norm_slot is not None:
            values[self.norm_slot] = self.layer.normalisation_for_conv(
                x, ctx, self.relu, self.relu_max, moments, self.sums_by_conv)
            values[self.outputs[0]] = x
            return
        out = None
        if self.recompute and ctx.scratch_pool is not None:
            out = ctx.scratch_pool.take(x.shape, x.dtype)
        values[self.outputs[0]] = self.layer.forward_fused(x, ctx, self.training, residual,
                                                           self.relu, self.relu_max, moments, out)

    def output_again(self, ctx, out):
        """The last forward's output, bit for bit, into ``out`` (before the weights change)."""
        return self.layer.output_again(ctx, out)

    def backward(self, dys, ctx, need_dx):
        dy, dy2 = dys[0] if isinstance(dys[0], tuple) else (dys[0], None)
        if ctx.conv is not None and need_dx:
            # The conv's backward makes dx from the gradient g it gets as it reads it (dy, or
            # the normalised value's gradient, which is also the residual's), and what else it
            # reads is kept in the conv's own buffers.
            ctx.conv.batchnorm_dx, g = self.layer.input_gradient_for_conv(dy, ctx,
                                                                          ctx.conv.buffer, dy2)
            return [g, g] if self.add else [g]
        dx, dres = self.layer.backward_fused(dy, ctx, need_dx, dy2)
        return [dx, dres] if self.add else [dx]


class ConvBatchNormStep:
    """A Conv2D or DepthwiseConv2D, the inference-mode BatchNormalization reading it, the
    two-input Add reading that (if any; Conv2D only) and the Activation after (if any), as one
    conv call with the normalisation folded into its kernel and bias, folded again at every call
    since the weights may have changed between calls, and the Add's other input added in the
    kernel's epilogue: inputs [the conv's input, the Add's other input]. Plans without
    backward."""

    def __init__(self, conv_call, bn_call, add_call, residual, act_call, output):
        self.layer, self.bn = conv_call.layer, bn_call.layer
        self.add = add_call.layer if add_call is not None else None
        self.inputs = conv_call.inputs + ([residual] if add_call is not None else [])
        self.outputs = [output]
        self.trainable = False
        activation = act_call.layer.activation if act_call is not None else "linear"
        self.relu, self.relu6 = activation != "linear", activation == "relu6"
        self.depthwise = _kind(self.layer) == "depthwise2d"
        self.random_index = self.random_layer = None
        self.flags = {}
        self.per_sample = True

    def forward(self, values, ctx):
        conv, bn, x = self.layer, self.bn, values[self.inputs[0]]
        kernel = conv.kernel
        if self.depthwise:  # output channel ch * dm + m: the last two axes, flattened
            kernel = kernel.reshape(*kernel.shape[:2], 1, -1)
        kernel, bias = normalization_ops.batchnorm_fold(
            kernel, conv.bias, bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance,
            bn.epsilon, out_kernel=ctx.buffer("kernel", kernel.shape, kernel.dtype),
            out_bias=ctx.buffer("bias", bn.moving_mean.shape, kernel.dtype))
        out = ctx.buffer("y", conv.compute_output_shape(x.shape), kernel.dtype)
        residual = values[self.inputs[1]] if self.add is not None else None
        if residual is not None:
            self.add.compute_output_shape([out.shape, residual.shape])  # the Add's own checks
        if self.depthwise:
            values[self.outputs[0]] = depthwise_ops.depthwise_forward(
                x, kernel.reshape(conv.kernel.shape), bias, conv.strides, conv.padding,
                conv.dilation_rate, relu=self.relu, relu6=self.relu6, out=out)
        else:
            values[self.outputs[0]] = conv_ops.conv2d_forward(
                x, kernel, bias, conv.strides, conv.padding, relu=self.relu, relu6=self.relu6,
                out=out, residual=residual)


def _other_input(add_call, slot):
    """The input of a two-input Add other than ``slot``."""
    first, second = add_call.inputs
    return second if first == slot else first


def _same_known_shape(shapes, slots):
    """Whether the values of ``slots`` have one shape, known but for the batch axis."""
    first = shapes[slots[0]]
    return None not in first[1:] and all(shapes[s][1:] == first[1:] for s in slots[1:])


class Plan:
    """The steps of a flat graph, and what its backward pass computes.

    ``logits_outputs[k]``: output k holds the logits of a softmax fused into its loss.
    ``logits_steps``: {output k: index of the step that may return logits for it}, for an
    execution to switch per run (``Execution.forward(inputs, logits_ok)``), so that one plan
    serves both evaluate (logits into the loss) and predict (probabilities).
    ``trained``: the weights whose gradients backward computes, in first-use order.
    ``backward_steps``: indices of the steps backward runs, last first.
    ``sub_batch``: None, or the samples per part a larger batch runs in (see the module's
    docstring).
    """

    def __init__(self, flat, steps, logits_outputs, logits_steps, sub_batch=None):
        self.steps = steps
        self.sub_batch = sub_batch
        self.n_slots = flat.n_slots
        self.input_slots, self.output_slots = flat.input_slots, flat.output_slots
        self.logits_outputs, self.logits_steps = logits_outputs, logits_steps
        self.trained, self.backward_steps, self.needs_grad = [], [], []
        self.input_grads = [False] * len(self.input_slots)
        self.need_dx = [False] * len(steps)
        self.grad_routes = [None] * len(steps)  # per step: per weight None/"write"/"add"


def _kind(layer):
    # A layer with an activity regularizer runs as its own step, which penalises its output.
    if getattr(layer, "activity_regularizer", None) is not None:
        return None
    return getattr(layer, "fusion", None)


def make_plan(flat, fuse=True, loss_outputs=None, logits_ok=None, input_grads=None,
              recompute=True):
    """The plan of ``flat``. ``loss_outputs`` (one bool per output: it has a loss) asks for a
    backward pass; ``logits_ok`` (one bool per output) says which losses take softmax logits;
    ``input_grads`` (one bool per input) which inputs backward gives gradients for
    (``Execution.input_gradients``); ``recompute=False`` keeps every output for backward
    rather than recomputing those of batch normalisation steps without an Add."""
    calls = flat.calls
    uses = Counter(s for c in calls for s in c.inputs) + Counter(flat.output_slots)
    readers = {}
    for i, c in enumerate(calls):
        for s in c.inputs:
            readers.setdefault(s, []).append(i)

    def sole_reader(slot, kind):
        """The index of the call of ``kind`` that is the only use of ``slot``, or None."""
        found = readers.get(slot, [])
        if uses[slot] == 1 and len(found) == 1 and _kind(calls[found[0]].layer) == kind:
            return found[0]
        return None

    groups = {}  # index of the call a group runs at -> (conv, pool, flatten, dropout) indices
    grouped = set()
    for i, c in enumerate(calls):
        layer = c.layer
        if not (fuse and _kind(layer) == "conv2d" and layer.activation in ("relu", "linear")):
            continue
        j = sole_reader(c.outputs[0], "maxpool2d")
        if j is None or calls[j].layer.padding != "valid":
            continue
        pool_out = calls[j].outputs[0]
        flatten = sole_reader(pool_out, "flatten")
        dropout = sole_reader(calls[flatten].outputs[0] if flatten is not None else pool_out,
                              "dropout")
        if dropout is None:
            flatten = None
        members = [i, j, flatten, dropout]
        groups[max(m for m in members if m is not None)] = members
        grouped.update(m for m in members if m is not None)

    folds = {}  # index of the call a fold runs at -> (conv, batchnorm, activation) indices
    for i, c in enumerate(calls):
        if not (fuse and loss_outputs is None and _kind(c.layer) in ("conv2d", "depthwise2d")
                and c.layer.activation == "linear") or i in grouped:
            continue
        bn = sole_reader(c.outputs[0], "batchnorm")
        if bn is None or bn in grouped or (calls[bn].training and calls[bn].layer.trainable):
            continue
        end = calls[bn].outputs[0]
        add = sole_reader(end, "add")
        if add in grouped:  # the fold of the Add's other input adds this one
            add = None
        elif add is not None:
            # The conv kernel adds a residual of its output's shape in its epilogue; the
            # depthwise kernel does not, and BatchNormStep's one pass (normalise, add, relu)
            # then beats a fold, which would leave the Add and the relu a pass each.
            if (_kind(c.layer) != "conv2d" or len(calls[add].inputs) != 2
                    or not _same_known_shape(flat.shapes, calls[add].inputs)):
                continue
            end = calls[add].outputs[0]
        act = sole_reader(end, "activation")
        if act is not None and calls[act].layer.activation not in BATCHNORM_ACTIVATIONS:
            act = None  # the conv kernels fuse relu and relu6 only
        members = [m for m in (i, bn, add, act) if m is not None]
        folds[max(members)] = (i, bn, add, act)
        grouped.update(members)

    norm_groups = {}  # index of the call a group runs at -> (batchnorm, add, activation) indices
    for i, c in enumerate(calls):
        if not (fuse and _kind(c.layer) == "batchnorm") or i in grouped:
            continue
        end = c.outputs[0]
        add = sole_reader(end, "add")
        if add is not None and (len(calls[add].inputs) != 2 or add in grouped
                                or not _same_known_shape(flat.shapes, calls[add].inputs)):
            add = None  # the fused kernel adds a residual of the normalised value's own shape
        if add is not None:
            end = calls[add].outputs[0]
        act = sole_reader(end, "activation")
        if act is not None and calls[act].layer.activation not in BATCHNORM_ACTIVATIONS:
            act = None
        members = [m for m in (i, add, act) if m is not None]
        if len(members) > 1:
            norm_groups[max(members)] = (i, add, act)
            grouped.update(members)

    chains = _elementwise_chains(flat, calls, grouped) if fuse else {}
    grouped.update(m for members, _ in chains.values() for m in members)
    steps, step_of_call = [], {}
    for i, c in enumerate(calls):
        if i in chains:
            members, kinds = chains[i]
            made = {calls[m].outputs[0] for m in members}
            internal = Counter(calls[m].inputs[o[1]] for m, operands in zip(members, kinds)
                               for o in operands if o[0] == "input")
            outputs = [s for s in made if uses[s] > internal[s]
                       or _kind(calls[members[-1]].layer) == "row_sum" and s == c.outputs[0]]
            steps.append(ElementwiseStep([calls[m] for m in members], kinds,
                                         sorted(outputs)))
        elif i in folds:
            conv, bn, add, act = folds[i]
            steps.append(ConvBatchNormStep(calls[conv], calls[bn],
                                           calls[add] if add is not None else None,
                                           _other_input(calls[add], calls[bn].outputs[0])
                                           if add is not None else None,
                                           calls[act] if act is not None else None,
                                           calls[i].outputs[0]))
            step_of_call[conv] = steps[-1]
        elif i in norm_groups:
            bn, add, act = norm_groups[i]
            residual = (_other_input(calls[add], calls[bn].outputs[0]) if add is not None
                        else None)
            steps.append(BatchNormStep(calls[bn], calls[add] if add is not None else None,
                                       residual, calls[act] if act is not None else None,
                                       calls[i].outputs[0]))
            # With an Add, recomputing would need the residual alive as long as the output.
            steps[-1].recompute = recompute and loss_outputs is not None and add is None
            step_of_call[bn] = steps[-1]
        elif i in groups:
            conv, pool, flatten, dropout = groups[i]
            out = calls[dropout if dropout is not None else pool].outputs[0]
            if flatten is not None:  # the group ends at the pooling; the Flatten follows it
                out = calls[pool].outputs[0]
            step = ConvMaxPoolStep(calls[conv], calls[pool],
                                   calls[dropout] if dropout is not None else None, out, dropout)
            steps.append(step)
            step_of_call[conv] = step
            if flatten is not None:
                flat_call = calls[flatten]
                after = LayerStep(flat_call, flatten)
                after.inputs, after.outputs = [out], calls[dropout].outputs
                steps.append(after)
        elif i not in grouped:
            steps.append(LayerStep(c, i))
            step_of_call[i] = steps[-1]

    if fuse:
        _hand_off_relu_gradients(calls, step_of_call, sole_reader)
    logits_outputs, logits_steps = [False] * len(flat.output_slots), {}
    for k, slot in enumerate(flat.output_slots):
        index = next((j for j, s in enumerate(steps) if slot in s.outputs), None)
        producer = steps[index] if index is not None else None
        if (fuse and uses[slot] == 1 and isinstance(producer, LayerStep)
                and _kind(producer.layer) in ACTIVATION_KINDS
                and producer.layer.activation == "softmax"):
            logits_steps[k] = index
            if logits_ok and logits_ok[k]:
                producer.flags["emit_logits"] = True
                logits_outputs[k] = True
    sub_batch = _sub_batch(flat, steps) if fuse and loss_outputs is None else None
    plan = Plan(flat, steps, logits_outputs, logits_steps, sub_batch)
    if loss_outputs is not None:
        _plan_backward(plan, loss_outputs, input_grads or [False] * len(plan.input_slots))
    if fuse and plan.backward_steps:
        _batchnorm_moments_from_convs(plan, calls, step_of_call, sole_reader)
        _batchnorm_applied_by_convs(plan, calls, step_of_call, sole_reader)
    return plan


def _sub_batch(flat, steps):
    """The samples per part of a forward plan whose steps all run per sample and whose values
    have known sizes (see the module's docstring), else None."""
    if not all(getattr(step, "per_sample", False) for step in steps):
        return None
    shapes = [tuple(shape[1:]) for shape in flat.shapes.values()]
    if any(None in shape for shape in shapes):
        return None
    largest = max((math.prod(shape) for shape in shapes), default=1) * 4  # float32
    return max(MIN_SUB_BATCH, SUB_BATCH_BYTES // max(largest, 1))


def _elementwise_chains(flat, calls, grouped):
    """{index of the call a chain runs at: (member indices, their operand kinds)} for the
    chains of two members or more (see the module's docstring)."""
    shapes = flat.shapes
    producer = {s: i for i, c in enumerate(calls) for s in c.outputs}
    chains, chain_of, closed = [], {}, set()
    for i, c in enumerate(calls):
        kind = None if i in grouped else _kind(c.layer)
        chain = None
        if kind == "elementwise":
            domain = tuple(shapes[c.outputs[0]])
            kinds = c.layer.operand_kinds([shapes[s] for s in c.inputs], domain)
        elif kind == "row_sum":
            domain = tuple(shapes[c.inputs[0]])
            kinds = [("input", 0, "full")]
            if not c.layer.op.row_divisor(len(domain))[0]:
                kinds = None
        else:
            kinds = None
        if kinds is not None:
            for o in kinds:  # join the open chains of this shape it reads, merged as one
                g = chain_of.get(producer.get(c.inputs[o[1]])) if o[0] == "input" else None
                if (g is None or g == chain or g in closed or o[2] != "full"
                        or chains[g][0] != domain):
                    continue
                if chain is None:
                    chain = g
                    continue
                for m, k in zip(chains[g][1], chains[g][2]):
                    chain_of[m] = chain
                    chains[chain][1].append(m)
                    chains[chain][2].append(k)
                chains[g] = (domain, [], [])
            if chain is None and kind == "elementwise":
                chains.append((domain, [], []))
                chain = len(chains) - 1
        for s in c.inputs:  # a chain read by a step outside it takes no more members
            g = chain_of.get(producer.get(s))
            if g is not None and g != chain:
                closed.add(g)
        if chain is None:
            continue
        chain_of[i] = chain
        chains[chain][1].append(i)
        chains[chain][2].append(kinds)
        if kind == "row_sum":
            closed.add(chain)
    found = {}
    for _, members, kinds in chains:
        if len(members) > 1:
            order = sorted(range(len(members)), key=members.__getitem__)
            found[members[order[-1]]] = ([members[j] for j in order], [kinds[j] for j in order])
    return found


def _hand_off_relu_gradients(calls, step_of_call, sole_reader):
    for i, c in enumerate(calls):
        step = step_of_call.get(i)
        if not (isinstance(step, LayerStep) and _kind(c.layer) in ACTIVATION_KINDS
                and c.layer.activation == "relu"):
            continue
        slot = c.outputs[0]
        pool = sole_reader(slot, "maxpool2d")
        conv = sole_reader(slot, "conv2d")
        if pool is not None and isinstance(step_of_call.get(pool), LayerStep):
            step_of_call[pool].flags["apply_input_relu_grad"] = True
        elif conv is not None and isinstance(step_of_call.get(conv), ConvMaxPoolStep):
            step_of_call[conv].input_relu = True
        elif conv is not None and isinstance(step_of_call.get(conv), LayerStep):
            step_of_call[conv].flags["apply_input_relu_grad"] = True  # in its dX's epilogue
        else:
            continue
        step.flags["defer_relu_grad"] = True


def _batchnorm_moments_from_convs(plan, calls, step_of_call, sole_reader):
    """A linear plain Conv2D or DepthwiseConv2D read only by a BatchNormStep's
    BatchNormalization, which trains with the batch's statistics, sums their per-chunk partials
    as it writes its output (its ``batchnorm_moments`` flag), and leaves its context in a slot
    of its own past the graph's, which the BatchNormStep reads: the normalisation then reads its
    input once, and a Conv2D's backward may make the step's dx (``dx_by_conv``: see the
    module's docstring). Plans with a backward pass only, whose forward keeps every buffer (a
    shared forward would lend the sums' buffer to the next step)."""
    for i, c in enumerate(calls):
        conv = step_of_call.get(i)
        kind = _kind(c.layer)
        if not (isinstance(conv, LayerStep) and kind in ("conv2d", "depthwise2d")
                and c.layer.activation == "linear"):
            continue
        bn = sole_reader(c.outputs[0], "batchnorm")
        step = step_of_call.get(bn)
        if not (isinstance(step, BatchNormStep) and calls[bn].training
                and calls[bn].layer.trainable):
            continue
        conv.flags["batchnorm_moments"] = True
        conv.conv_slot = step.conv_slot = plan.n_slots
        plan.n_slots += 1
        # The conv's backward makes the normalisation's dx from the gradient it gets, as it
        # reads it for its own dW and dX (which needs the conv's kernel trained: its dW pass is
        # the one that reads it).
        routes = plan.grad_routes[plan.steps.index(conv)]
        step.dx_by_conv = kind == "conv2d" and bool(routes) and routes[0] is not None


def _batchnorm_applied_by_convs(plan, calls, step_of_call, sole_reader):
    """A training BatchNormStep without an Add whose output only a plain Conv2D reads leaves
    the normalisation (and its relu) to that conv, which applies it to the step's input as it
    loads each image, in its forward and again in its dW (``norm_slot``, ``input_norm_slot``):
    the normalised value is neither written whole nor recomputed for backward, whose dX is the
    normalisation's output gradient as before, and which also sums the step's gradient sums
    where the conv's kernel trains (``sums_by_conv``). Plans with a backward pass only, like
    the moments."""
    for i, c in enumerate(calls):
        step = step_of_call.get(i)
        if not (isinstance(step, BatchNormStep) and step.add is None and c.training
                and c.layer.trainable):
            continue
        conv = step_of_call.get(sole_reader(step.outputs[0], "conv2d"))
        if not isinstance(conv, LayerStep):
            continue
        step.norm_slot = conv.input_norm_slot = plan.n_slots
        plan.n_slots += 1
        step.recompute = False
        # The conv's one-pass backward (its kernel trains) writes the step's dy as its dX, and
        # sums the step's gradient sums of each chunk as it does.
        index = plan.steps.index(conv)
        routes = plan.grad_routes[index]
        step.sums_by_conv = (index in plan.backward_steps and plan.need_dx[index]
                             and bool(routes) and routes[0] is not None)


def _trained_weights(step):
    if not step.trainable:
        return []
    return [w for w, t in zip(step.layer._weights, step.layer._weight_trainable) if t]


def _plan_backward(plan, loss_outputs, input_grads):
    """Which steps run backward, which of their inputs need dX, and where each weight's
    gradient goes: the first step to reach a weight (backward runs last step first) writes its
    gradient, every later one adds to it, in that fixed order."""
    steps = plan.steps
    needs_grad = [False] * plan.n_slots
    plan.input_grads = [bool(g) for g in input_grads]
    for slot, wanted in zip(plan.input_slots, plan.input_grads):
        needs_grad[slot] = needs_grad[slot] or wanted
    for step in steps:
        if _trained_weights(step) or any(needs_grad[s] for s in step.inputs):
            for s in step.outputs:
                needs_grad[s] = True
    reached = [False] * plan.n_slots
    for slot, has_loss in zip(plan.output_slots, loss_outputs):
        reached[slot] = reached[slot] or bool(has_loss)
    seen = set()
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if not any(reached[s] for s in step.outputs):
            continue
        trained = _trained_weights(step)
        need_dx = any(needs_grad[s] for s in step.inputs)
        if not (trained or need_dx):
            continue
        for s in step.inputs:
            reached[s] = True
        plan.backward_steps.append(index)
        plan.need_dx[index] = need_dx
        trained_ids = {id(w) for w in trained}
        routes = []
        for w in step.layer._weights:
            if id(w) not in trained_ids:
                routes.append(None)
            elif id(w) in seen:
                routes.append("add")
            else:
                seen.add(id(w))
                plan.trained.append(w)
                routes.append("write")
        plan.grad_routes[index] = routes
    plan.needs_grad = needs_grad
    for step in steps:
        if isinstance(step, ElementwiseStep):
            step.wanted = [needs_grad[s] for s in step.inputs]

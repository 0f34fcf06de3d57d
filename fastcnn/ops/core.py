"""The machinery under every op: eager on arrays, a graph node on symbolic tensors.

An ``Op`` holds the math of one operation: ``compute(*arrays)`` (its forward, also its eager
answer), ``gradients(dy, xs, y, needed)`` (one gradient per operand, None where there is none)
and ``spec(*specs)`` (the output's shape and dtype from the operands', as Keras infers them).
Calling an op on operands of which one is symbolic (a ``KerasTensor``) records a ``Node`` whose
operation is an ``OpCall``: a leaf with forward and backward like any layer, so the engine's
planner and execution run and differentiate it. Operands that are not symbolic are constants of
the node, except the weights of the layer being traced (``tracing``): those become the call's
weights, and their gradients go where the planner routes every weight gradient.
"""
import numpy as np

from .._ops import reduce as reduce_ops
from .._ops.checks import check_memory, shown
from ..arguments import short_tuple
from ..engine.operation import Operation
from ..engine.tensor import OPERATORS, KerasTensor, Node, flatten, unique_name
from ..serialization import register_builtin
from .recording import FUNCTIONS, Replay, current_call, encode, recordable
from .tracing import current_scope

FLOAT_KINDS = "fc"
KERNEL_DTYPES = (np.float32, np.float64)  # the dtypes the Cython kernels run in


def float_dtype(dtype):
    """``dtype`` if the kernels run in it, else float32."""
    dtype = np.dtype(dtype)
    return dtype if dtype in KERNEL_DTYPES else np.dtype(np.float32)


def floating(x):
    """``x`` as an array of a kernel dtype (float32 unless it is float32 or float64)."""
    x = np.asarray(x)
    return x if x.dtype in KERNEL_DTYPES else x.astype(np.float32)


class Spec:
    """What an op knows of a symbolic operand, or of a constant: shape (None where unknown)
    and dtype."""

    __slots__ = ("dtype", "shape", "value")

    def __init__(self, shape, dtype, value=None):
        self.shape, self.dtype, self.value = tuple(shape), np.dtype(dtype), value


def spec_of(operand):
    if isinstance(operand, KerasTensor):
        return Spec(operand.shape, operand.dtype)
    if isinstance(operand, (bool, int, float)):  # Python numbers stay weakly typed, as in NumPy
        return Spec((), np.asarray(operand).dtype, operand)
    array = np.asarray(operand)
    return Spec(array.shape, array.dtype, array)


def dtype_sample(spec):
    """A value standing for ``spec`` in a dtype computation: the constant itself when it is a
    Python number (weak), else a 0-d array of the dtype."""
    if isinstance(spec.value, (bool, int, float)):
        return spec.value
    return np.zeros((), spec.dtype)


def result_dtype(fn, *specs):
    """The dtype ``fn`` gives on operands of ``specs``' dtypes, as NumPy decides it."""
    with np.errstate(all="ignore"):
        return np.asarray(fn(*(dtype_sample(s) for s in specs))).dtype


def broadcast_shapes(*shapes):
    """NumPy's broadcast of shapes that may hold None (unknown): None with 1 stays None, None
    with n is n."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for dims in zip(*[(1,) * (ndim - len(s)) + tuple(s) for s in shapes]):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"Expected shapes that broadcast together, received "
                             f"{', '.join(str(tuple(s)) for s in shapes)}")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


def unbroadcast(grad, shape):
    """``grad`` (of a broadcast result) summed back to an operand of ``shape``: the reduce
    kernel's sum over the broadcast axes for float gradients."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and grad.shape[lead + i] != 1)
    if not axes:
        return grad.reshape(shape)
    if grad.dtype in KERNEL_DTYPES and grad.size:
        return reduce_ops.reduce_forward("sum", grad, axes).reshape(shape)
    return grad.sum(axis=axes).reshape(shape)


def normalize_axis(axis, ndim, name="axis"):
    """``axis`` (an int, a sequence of ints or None) as a sorted tuple of axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    try:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else short_tuple(axis, name)
    except TypeError:
        axes = (axis,)  # refused below
    out = []
    for a in axes:
        if (not isinstance(a, (int, np.integer)) or isinstance(a, bool)
                or not -ndim <= a < max(ndim, 1)):
            raise ValueError(f"Expected {name} in [{-ndim}, {ndim}), received {name}={axis!r}")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"Expected distinct axes, received {name}={axis!r}")
    return tuple(sorted(out))


class Op:
    """The math of one operation; subclasses define ``compute``, ``spec`` and, when
    differentiable, ``gradients``. Parameters (an axis, a shape) are attributes set by the
    public function that builds the op."""

    def compute(self, *xs):
        raise NotImplementedError

    def spec(self, *specs):
        raise NotImplementedError

    def gradients(self, dy, xs, y, needed):
        """One gradient per operand of ``xs``, of that operand's shape or broadcastable to it
        (OpCall sums it back), or None; ``needed[i]``: whether operand i's is used (an op may
        skip the others)."""
        return [None] * len(xs)

    def forward_backward(self, xs, dy, needed):
        """(compute's result, gradients' result) when the output's gradient ``dy`` is known
        before the output: an op whose forward gives its gradient too runs once."""
        y = self.compute(*xs)
        return y, self.gradients(dy, xs, y, needed)

    def fusion(self, n_operands):
        """What the planner may fuse a node of this op as, on ``n_operands`` operands:
        "elementwise" (it writes itself into a program: ``emit(b, regs)`` and
        ``emit_gradients(b, dy, regs, y)``, see ops.arithmetic), "row_sum" (a sum or mean over
        the last axis, ops.reductions), or None (this default)."""

    def __call__(self, *operands):
        operands = [checked_operand(o) for o in operands]
        scope = current_scope()
        if any(isinstance(o, KerasTensor) for o in operands) or (
                scope is not None and any(scope.is_weight(o) for o in operands)):
            return record(self, operands, scope)
        return self.compute(*(_eager(o) for o in operands))


_INT64 = np.iinfo(np.int64)


def fits_in_memory(array):
    """``array``, refused when it is a broadcast view whose values would not fit in memory as
    the tensor it stands for: an op's result, or a gradient, is at least as large."""
    if 0 in array.strides and array.size > 1:
        check_memory([("its values", array.nbytes)], f"an array of shape {array.shape}")
    return array


def checked_operand(operand):
    """A symbolic tensor, a Python number or an array of real numbers (a nested list of
    numbers made one); TypeError or ValueError for anything else. A broadcast view must fit in
    memory as the tensor it stands for: the op's result, or a gradient, is at least as large."""
    if isinstance(operand, np.ndarray) and operand.dtype.kind in "biuf":
        return fits_in_memory(operand)
    if isinstance(operand, KerasTensor):
        return operand
    if isinstance(operand, (bool, float)):
        return operand
    if isinstance(operand, int):
        if not _INT64.min <= operand <= _INT64.max:
            raise ValueError(f"Expected numbers within int64's range, received {shown(operand)}")
        return operand
    if isinstance(operand, (np.generic, list, tuple)):
        try:
            array = np.asarray(operand)
        except (ValueError, TypeError, OverflowError, RecursionError):
            array = None
        if array is not None and array.dtype.kind in "biuf":
            return array if isinstance(operand, (list, tuple)) else operand
    raise TypeError(f"Expected a tensor, an array of real numbers or a number, received "
                    f"{operand!r:.100}")


def _dtype(x):
    return x.dtype if isinstance(x, np.ndarray) else np.asarray(x).dtype


def _eager(operand):
    if isinstance(operand, (bool, int, float)):
        return operand
    return np.asarray(operand)


@register_builtin
class OpCall(Operation):
    """One node of an op: its operands in order, each a node input ("input", k), a weight of a
    traced layer ("weight", j) or a constant ("constant", value). ``call``: the public function
    call that recorded it, (name, args, kwargs), when calling it again on the node's inputs
    records this node again (what a saved functional model keeps), else None."""

    def __init__(self, op, layout, weights, owners, call=None):
        super().__init__()
        self.op, self.layout, self.call = op, layout, call
        self.name = unique_name(type(op).__name__.lower())
        self._weights = weights
        self._weight_trainable = [owner._weight_trainable[i] for owner, i in owners]
        self._owners = [owner for owner, _ in owners]

    @property
    def fusion(self):
        """The op's fusion (Op.fusion) for a node that reads no weight, else None."""
        return None if self._weights else self.op.fusion(len(self.layout))

    def operand_kinds(self, shapes, domain):
        """For each operand, how a program over ``domain`` (a symbolic shape) reads it:
        ("input", k, kind) with kind "full" (``domain``'s shape), "row" (one value per row:
        ``domain[:-1] + (1,)``) or "col" (one per column), ("constant", number) for a Python
        number; None when an operand is none of these (``shapes``: the node inputs' shapes)."""
        kinds = []
        for kind, v in self.layout:
            if kind == "constant":
                if type(v) not in (int, float):  # weakly typed, as NumPy reads them
                    return None
                kinds.append(("constant", v))
                continue
            shape = tuple(shapes[v])
            if shape == domain:
                kinds.append(("input", v, "full"))
            elif domain and shape == domain[:-1] + (1,):
                kinds.append(("input", v, "row"))
            elif (domain and shape and len(shape) <= len(domain) and domain[-1] is not None
                  and shape[-1] == domain[-1] and all(d == 1 for d in shape[:-1])):
                kinds.append(("input", v, "col"))
            else:
                return None
        return kinds

    @property
    def trainable(self):
        """Frozen when a layer owning one of its weights is frozen."""
        return all(owner.trainable for owner in self._owners)

    def get_config(self):
        """The public call that recorded the node, its tensors as positions among the node's
        inputs: from_config gives what calls it again."""
        try:
            if self.call is None:
                raise TypeError("it was recorded inside another op")
            name, args, kwargs = self.call
            inputs = {id(t): k for k, t in reversed(list(enumerate(
                self._inbound_nodes[0].input_tensors)))}
            return {"function": name, "args": encode(list(args), inputs),
                    "kwargs": encode(kwargs, inputs)}
        except TypeError as e:
            raise TypeError(f"A functional model with the fastcnn.ops call {self.name} cannot be "
                            f"saved by its config ({e}): put the ops in a custom layer (saved "
                            "through register_keras_serializable or custom_objects), or save "
                            "the weights alone with save_weights") from None

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict) or config.get("function") not in FUNCTIONS:
            raise ValueError(f"Expected the config of a fastcnn.ops call, received "
                             f"{config!r:.200}")
        return Replay(FUNCTIONS[config["function"]], config.get("args", []),
                       config.get("kwargs", {}))

    def compute_output_shape(self, input_shape):
        shapes = iter(input_shape)
        specs = [Spec(next(shapes), "float32") if kind == "input" else spec_of(
            self._weights[v] if kind == "weight" else v) for kind, v in self.layout]
        spec = self.op.spec(*specs)
        return [s.shape for s in spec] if isinstance(spec, list) else spec.shape

    def _operands(self, x):
        return [x[v] if kind == "input" else self._weights[v] if kind == "weight" else
                _eager(v) for kind, v in self.layout]

    def forward(self, x, ctx, training):
        xs = self._operands(x)
        y = self.op.compute(*xs)
        ctx.xs, ctx.y = xs, y
        return y

    def _needed(self, xs, need_dx, grads):
        return [(need_dx if kind == "input" else kind == "weight" and grads is not None
                 and grads[v] is not None) and _dtype(x).kind in FLOAT_KINDS
                for (kind, v), x in zip(self.layout, xs)]

    def forward_backward(self, x, dy):
        """(forward's output, backward's input gradients) of a node that reads no weight, for
        its inputs ``x`` (a list) and the gradient ``dy`` of its output, known beforehand."""
        xs = self._operands(x)
        y, grads = self.op.forward_backward(xs, dy, self._needed(xs, True, None))
        return y, self._input_gradients(xs, grads, True, None)

    def backward(self, dy, ctx, need_dx):
        xs = ctx.xs
        grads = self.op.gradients(dy, xs, ctx.y, self._needed(xs, need_dx, ctx.grads))
        ctx.xs = ctx.y = None
        dxs = self._input_gradients(xs, grads, need_dx, ctx.grads)
        return dxs if need_dx else None

    def _input_gradients(self, xs, grads, need_dx, weight_grads):
        """The gradients of the node's inputs (None where not needed), of their shapes and
        dtypes; the weights' written into ``weight_grads``."""
        dxs = []
        for (kind, v), x, g in zip(self.layout, xs, grads):
            x = np.asarray(x)
            if g is not None and not (type(g) is np.ndarray and g.shape == x.shape
                                      and g.dtype == x.dtype):
                g = np.asarray(unbroadcast(np.asarray(g), x.shape), dtype=x.dtype)
            if kind == "input":
                dxs.append(g if need_dx and x.dtype.kind in FLOAT_KINDS else None)
            elif kind == "weight" and weight_grads is not None and weight_grads[v] is not None:
                weight_grads[v][...] = 0 if g is None else g
        return dxs


def record(op, operands, scope):
    inputs, layout, weights, owners = [], [], [], []
    call = current_call()
    for o in operands:
        if scope is not None and not isinstance(o, KerasTensor):
            o = scope.current_value(o)
        if isinstance(o, KerasTensor):
            layout.append(("input", len(inputs)))
            inputs.append(o)
            continue
        owner = scope.owner(o) if scope is not None else None
        if owner is not None:
            layout.append(("weight", len(weights)))
            weights.append(o)
            owners.append(owner)
        else:
            if isinstance(o, (list, tuple)):
                o = np.asarray(o)
            layout.append(("constant", o))
    if call is not None and [id(t) for t in flatten([call[1], call[2]])
                             if isinstance(t, KerasTensor)] != [id(t) for t in inputs]:
        call = None  # the public call's tensors are not this node's inputs
    call = OpCall(op, layout, weights, owners, call)
    specs = [Spec(inputs[v].shape, inputs[v].dtype) if kind == "input" else
             spec_of(weights[v] if kind == "weight" else v) for kind, v in layout]
    spec = op.spec(*specs)
    many = isinstance(spec, list)
    outputs = [KerasTensor(s.shape, s.dtype, name=unique_name(f"{call.name}_output"),
                           any_rank=True)
               for s in (spec if many else [spec])]
    Node(call, inputs, outputs if many else outputs[0])
    if scope is not None:
        for w in weights:
            scope.readers.setdefault(id(w), []).extend(outputs)
    return outputs if many else outputs[0]


# -- conversion ----------------------------------------------------------------------------
@recordable
def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as an array (NumPy arrays are fastcnn's tensors); a symbolic tensor as it is."""
    if isinstance(x, KerasTensor):
        if dtype is not None and np.dtype(dtype) != np.dtype(x.dtype):
            return OPERATORS["cast"](x, dtype)
        return x
    if sparse or ragged:
        raise ValueError("Expected sparse=None and ragged=None: fastcnn has dense arrays only")
    return np.asarray(x, dtype=None if dtype is None else np.dtype(dtype)).view(np.ndarray)


@recordable
def convert_to_numpy(x):
    if isinstance(x, KerasTensor):
        raise TypeError(f"A symbolic tensor ({x.name}) has no values to convert: it stands for "
                        "data while a model or layer is traced")
    if isinstance(x, np.ndarray):
        fits_in_memory(x)
    return np.array(x).view(np.ndarray)


def is_tensor(x):
    return isinstance(x, (np.ndarray, KerasTensor))

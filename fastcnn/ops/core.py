"""The machinery under every op: eager on arrays, a graph node on symbolic tensors.

An ``Op`` holds the math of one operation: ``compute(*arrays)`` (its forward, also its eager
answer), ``gradients(dy, xs, y)`` (one gradient per operand, None where there is none) and
``spec(*specs)`` (the output's shape and dtype from the operands', as Keras infers them).
Calling an op on operands of which one is symbolic (a ``KerasTensor``) records a ``Node`` whose
operation is an ``OpCall``: a leaf with forward and backward like any layer, so the engine's
planner and execution run and differentiate it. Operands that are not symbolic are constants of
the node, except the weights of the layer being traced: those become the call's weights, and
their gradients go where the planner routes every weight gradient.

``Variable`` is the weight array ``Layer.add_weight`` returns: an ndarray with Keras's
``assign``, ``assign_add`` and ``assign_sub``. Inside a traced ``call`` an assignment records a
node that writes the variable when the graph runs (after every op that read the old value);
later reads in the same ``call`` see the assigned value.
"""
import contextlib
import functools
import threading

import numpy as np

from .._ops import reduce as reduce_ops
from ..engine.operation import Operation
from ..engine.tensor import OPERATORS, KerasTensor, Node, flatten, unique_name
from ..serialization import register_builtin

FLOAT_KINDS = "fc"


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
    if grad.dtype in (np.float32, np.float64) and grad.size:
        return reduce_ops.reduce_forward("sum", grad, axes).reshape(shape)
    return grad.sum(axis=axes).reshape(shape)


def normalize_axis(axis, ndim, name="axis"):
    """``axis`` (an int, a sequence of ints or None) as a sorted tuple of axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    try:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
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

    def __call__(self, *operands):
        operands = [_checked_operand(o) for o in operands]
        scope = _scope()
        if any(isinstance(o, KerasTensor) for o in operands) or (
                scope is not None and any(scope.is_weight(o) for o in operands)):
            return _record(self, operands, scope)
        return self.compute(*(_eager(o) for o in operands))


_INT64 = np.iinfo(np.int64)


def _checked_operand(operand):
    """A symbolic tensor, a Python number or an array of real numbers (a nested list of
    numbers made one); TypeError or ValueError for anything else."""
    if isinstance(operand, (KerasTensor, np.ndarray)) and not (
            isinstance(operand, np.ndarray) and operand.dtype.kind not in "biuf"):
        return operand
    if isinstance(operand, (bool, float)):
        return operand
    if isinstance(operand, int):
        if not _INT64.min <= operand <= _INT64.max:
            raise ValueError(f"Expected numbers within int64's range, received {operand:.3g}")
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
            return {"function": name, "args": _encode(list(args), inputs),
                    "kwargs": _encode(kwargs, inputs)}
        except TypeError as e:
            raise TypeError(f"A functional model with the fastcnn.ops call {self.name} cannot be "
                            f"saved by its config ({e}): put the ops in a custom layer (saved "
                            "through register_keras_serializable or custom_objects), or save "
                            "the weights alone with save_weights") from None

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, dict) or config.get("function") not in _FUNCTIONS:
            raise ValueError(f"Expected the config of a fastcnn.ops call, received "
                             f"{config!r:.200}")
        return _Replay(_FUNCTIONS[config["function"]], config.get("args", []),
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

    def backward(self, dy, ctx, need_dx):
        xs = ctx.xs
        needed = [(need_dx if kind == "input" else kind == "weight" and ctx.grads is not None
                   and ctx.grads[v] is not None) and np.asarray(x).dtype.kind in FLOAT_KINDS
                  for (kind, v), x in zip(self.layout, xs)]
        grads = self.op.gradients(dy, xs, ctx.y, needed)
        dxs = []
        for (kind, v), x, g in zip(self.layout, xs, grads):
            if g is not None:
                g = np.asarray(unbroadcast(np.asarray(g), np.shape(x)), dtype=np.asarray(x).dtype)
            if kind == "input":
                dxs.append(g if need_dx and np.asarray(x).dtype.kind in FLOAT_KINDS else None)
            elif kind == "weight" and ctx.grads is not None and ctx.grads[v] is not None:
                ctx.grads[v][...] = 0 if g is None else g
        ctx.xs = ctx.y = None
        return dxs if need_dx else None


def _record(op, operands, scope):
    inputs, layout, weights, owners = [], [], [], []
    calls = getattr(_local, "calls", None)
    call = calls[-1] if calls else None
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


# -- the public functions, and calling them again from a saved config ----------------------
_FUNCTIONS = {}  # "module.name" -> public function (ops.arithmetic.add: "arithmetic.add")


def recordable(fn):
    """Mark a public function of fastcnn.ops: the nodes its own op calls record keep how to
    call it again, which is how a functional model with ops is saved; and NumPy's errors on
    arguments it cannot index, divide by or convert become the caller's ValueError."""
    name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls = _local.__dict__.setdefault("calls", [])
        calls.append((name, args, kwargs))
        try:
            return fn(*args, **kwargs)
        except (IndexError, ZeroDivisionError, OverflowError, KeyError) as e:
            if len(calls) > 1:  # the outermost public call reports it
                raise
            # arguments NumPy cannot index, divide by or convert (an axis out of range, a
            # size of zero, a number too large): the caller's error
            raise ValueError(f"{fn.__name__}: invalid arguments ({type(e).__name__}: "
                             f"{e})") from None
        finally:
            calls.pop()

    _FUNCTIONS[name] = wrapper
    return wrapper


class _Replay:
    """A saved op call, called on its node's input tensors like a layer."""

    def __init__(self, function, args, kwargs):
        self.function, self.args, self.kwargs = function, args, kwargs

    def __call__(self, inputs, training=None):
        inputs = flatten(inputs)
        return self.function(*_decode(self.args, inputs), **_decode(self.kwargs, inputs))


def _encode(value, inputs):
    """``value`` (an argument of a public op) as JSON; tensors as {"tensor": k}."""
    if isinstance(value, KerasTensor):
        return {"tensor": inputs[id(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_encode(v, inputs) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, inputs) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, inputs) for k, v in value.items()}}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"an array of dtype {value.dtype} has no JSON form")
        return {"array": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, slice):
        return {"slice": [_encode(v, inputs) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, (np.dtype, type)):
        return {"dtype": np.dtype(value).name}
    raise TypeError(f"an argument {value!r:.100} has no JSON form")


def _decode(value, inputs):
    if isinstance(value, list):
        return [_decode(v, inputs) for v in value]
    if not isinstance(value, dict):
        return value
    if "tensor" in value:
        return inputs[value["tensor"]]
    if "tuple" in value:
        return tuple(_decode(v, inputs) for v in value["tuple"])
    if "dict" in value:
        return {k: _decode(v, inputs) for k, v in value["dict"].items()}
    if "array" in value:
        return np.array(value["array"], dtype=value["dtype"])
    if "slice" in value:
        return slice(*_decode(value["slice"], inputs))
    if "ellipsis" in value:
        return Ellipsis
    if "dtype" in value:
        return np.dtype(value["dtype"])
    raise ValueError(f"Expected an encoded op argument, received {value!r:.100}")


# -- tracing scope -------------------------------------------------------------------------
_local = threading.local()


class TraceScope:
    """What a traced ``call`` of ``layer`` records beside its outputs: the weights it may
    read, the variables it assigns (and the nodes that read them before) and the effect
    tensors (assignments) that the traced graph must run."""

    def __init__(self, layer):
        self.layer = layer
        self.readers = {}  # id(variable) -> symbolic tensors computed from its old value
        self.assigned = {}  # id(variable) -> (variable, the symbolic tensor of its new value)
        self.effects = []

    def owner(self, value):
        """(layer, index) of ``value`` among the traced layer's weights (its sublayers'
        included), or None."""
        if not isinstance(value, np.ndarray):
            return None
        for owner, i in self.layer._weight_owners():
            if owner._weights[i] is value:
                return owner, i
        return None

    def is_weight(self, value):
        return self.owner(value) is not None

    def current_value(self, value):
        entry = self.assigned.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else value


def _scope():
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def tracing(layer):
    """While ``layer.call`` is traced: ops read its weights as weights, and assignments are
    recorded. Yields the scope, whose ``effects`` the traced graph must include."""
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(TraceScope(layer))
    try:
        yield stack[-1]
    finally:
        stack.pop()


@contextlib.contextmanager
def untraced():
    """Meanwhile, arithmetic on weights runs on arrays (a leaf layer's forward run to find its
    output shape during a trace)."""
    stack = _local.__dict__.setdefault("stack", [])
    saved = stack[:]
    stack.clear()
    try:
        yield
    finally:
        stack[:] = saved


# -- variables -----------------------------------------------------------------------------
class Assign(Op):
    """Writes its first operand into ``variable`` and returns it; the other operands only order
    it after the nodes that read the variable's old value."""

    def __init__(self, variable):
        self.variable = variable

    def compute(self, value, *after):
        self.variable[...] = value
        return np.array(self.variable, copy=True).view(np.ndarray)

    def spec(self, value, *after):
        return Spec(self.variable.shape, self.variable.dtype)

    def gradients(self, dy, xs, y, needed):
        return [dy] + [None] * (len(xs) - 1)


class Variable(np.ndarray):
    """A layer's weight: an ndarray that Keras's ``assign`` methods write in place.

    Arithmetic on a variable gives plain arrays; inside a traced ``call`` it records nodes, as
    the ops do, so that it follows the weight's values as it trains."""

    def assign(self, value):
        scope = _scope()
        if isinstance(value, KerasTensor) or (scope is not None and scope.owner(self) is not None):
            return _assign_symbolic(self, value, scope)
        value = np.asarray(value)
        if np.broadcast_shapes(value.shape, self.shape) != self.shape:
            raise ValueError(f"Expected a value of shape {self.shape} to assign, received shape "
                             f"{value.shape}")
        self[...] = value
        return self

    def assign_add(self, value):
        return self.assign(OPERATORS["add"](self._current(), value))

    def assign_sub(self, value):
        return self.assign(OPERATORS["subtract"](self._current(), value))

    def _current(self):
        scope = _scope()
        return self if scope is None else scope.current_value(self)

    @property
    def value(self):
        return self._current()

    def numpy(self):
        return np.array(self).view(np.ndarray)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        scope = _scope()
        if scope is not None and "out" not in kwargs and scope.owner(self) is not None:
            # inside a traced call: arithmetic on a weight is recorded; a write into it
            # (out=...) is an explicit assignment, made at once
            if method == "__call__" and ufunc.__name__ in OPERATORS:
                return OPERATORS[ufunc.__name__](*inputs)
            raise TypeError(f"NumPy's {ufunc.__name__}.{method} cannot be traced on a weight "
                            "inside a layer's call: use the fastcnn.ops function")
        plain = [i.view(np.ndarray) if isinstance(i, Variable) else i for i in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Variable) else o
                                  for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return array.view(np.ndarray) if array.shape else array[()]


def _assign_symbolic(variable, value, scope):
    if scope is None:
        raise ValueError("A variable can take a symbolic value only inside a layer's call, "
                         "which traces the assignment")
    after = scope.readers.pop(id(variable), [])
    previous = scope.assigned.get(id(variable))
    if previous is not None:
        after.append(previous[1])
    new = _record(Assign(variable), [_value_of_shape(value, variable), *after], None)
    scope.assigned[id(variable)] = (variable, new)
    scope.effects.append(new)
    return new


def _value_of_shape(value, variable):
    spec = spec_of(value)
    if broadcast_shapes(spec.shape, variable.shape) != variable.shape:
        raise ValueError(f"Expected a value of shape {variable.shape} to assign, received shape "
                         f"{spec.shape}")
    return value


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
    return np.array(x).view(np.ndarray)


def is_tensor(x):
    return isinstance(x, (np.ndarray, KerasTensor))

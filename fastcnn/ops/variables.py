"""``Variable``: the weight array ``Layer.add_weight`` returns, an ndarray with Keras's
``assign``, ``assign_add`` and ``assign_sub``.

Inside a traced ``call`` an assignment records an ``Assign`` node that writes the variable when
the graph runs, after every op that read the old value; later reads in the same ``call`` see
the assigned value. Arithmetic on a variable gives plain arrays, and inside a traced call it is
recorded as the ops' is.
"""
import numpy as np

from ..engine.tensor import OPERATORS, KerasTensor
from .core import Op, Spec, broadcast_shapes, checked_operand, record, spec_of
from .tracing import current_scope


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
        scope = current_scope()
        if isinstance(value, KerasTensor) or (scope is not None and scope.owner(self) is not None):
            return _assign_symbolic(self, value, scope)
        self[...] = _value_of_shape(np.asarray(checked_operand(value)), self)
        return self

    def assign_add(self, value):
        return self.assign(OPERATORS["add"](self._current(), value))

    def assign_sub(self, value):
        return self.assign(OPERATORS["subtract"](self._current(), value))

    def _current(self):
        scope = current_scope()
        return self if scope is None else scope.current_value(self)

    @property
    def value(self):
        return self._current()

    def numpy(self):
        return np.array(self).view(np.ndarray)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        scope = current_scope()
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
    new = record(Assign(variable), [_value_of_shape(value, variable), *after], None)
    scope.assigned[id(variable)] = (variable, new)
    scope.effects.append(new)
    return new


def _value_of_shape(value, variable):
    """``value``, when it broadcasts to the variable's shape."""
    shape = spec_of(value).shape
    try:
        fits = broadcast_shapes(shape, variable.shape) == variable.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"Expected a value of shape {variable.shape} to assign, received shape "
                         f"{shape}")
    return value

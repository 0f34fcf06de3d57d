"""Elementwise arithmetic with NumPy's broadcasting, and the comparisons.

Add, subtract, multiply, divide, maximum and minimum of floating operands run the merge kernels
(broadcast strides; the gradients of multiply, divide, maximum and minimum too, with their sum
over broadcast axes in the same pass; those of add and subtract are dy itself, or -dy, summed
back by the reduce kernel where broadcast). The unary functions and ``clip`` of float32 and
float64 arrays, and their gradients, run as one-op programs of the program kernel
(``_ops.program``); each op here also writes itself into a program (``emit``, and
``emit_gradients`` for its gradient), which is how the planner fuses a chain of them into one
pass (``engine.elementwise``). ``power`` of float arrays of one shape, or of a float array and a
Python number, runs as a program too, and so do the comparisons (their 1 or 0 made bool),
``mod``, ``floor_divide`` and ``where`` on such operands. Integer and bool operands, the logical
functions and ``isnan``/``isinf``/``isfinite`` are single whole-array NumPy calls. Gradients of
maximum and minimum go to the first operand at ties, as TensorFlow's do.
"""
import numbers

import numpy as np

from .._ops import merge
from .._ops import program as programs
from .core import (
    KERNEL_DTYPES,
    Op,
    Spec,
    broadcast_shapes,
    checked_operand,
    recordable,
    result_dtype,
)


def _kernel_operands(xs):
    """The operands as arrays of their common float dtype when the merge kernels can take
    them (every operand floating, or a Python number), else None."""
    dtype = np.result_type(*xs)
    if dtype not in KERNEL_DTYPES:
        return None
    return [np.asarray(x, dtype) for x in xs]


class Elementwise(Op):
    """An elementwise function of broadcast operands: ``fn`` the NumPy function, ``grad(dy,
    xs, y)`` the gradients before they are summed back over broadcast axes, ``kernel`` the merge
    kernel's op name where one exists, ``program`` its opcode in the program kernel and
    ``emit_grad(b, dy, regs, y)`` its gradient written into a program (registers of dy, the
    operands and the result; a register or None per operand)."""

    def __init__(self, fn, grad=None, kernel=None, dtype=None, program=None, emit_grad=None):
        self.fn, self.grad, self.kernel, self.dtype = fn, grad, kernel, dtype
        self.program, self.emit_grad = program, emit_grad
        self._programs = {}

    def fusion(self, n_operands):
        return "elementwise" if self.program is not None else None

    def emit(self, b, regs):
        return b.op(self.program, *regs)

    def emit_gradients(self, b, dy, regs, y):
        if self.emit_grad is None:
            return [None] * len(regs)
        return self.emit_grad(b, dy, regs, y)

    def compute(self, *xs):
        # operands of one shape: the program kernel, which reads them in place in loops
        # compiled per SIMD level; broadcast ones: the merge kernels
        if self.program is not None and _program_operands(xs) is not None:
            return run_program(self, xs)
        if self.kernel is not None:
            arrays = _kernel_operands(xs)
            if arrays is not None:
                return merge.elementwise_forward(self.kernel, arrays)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(self.fn(*xs))

    def spec(self, *specs):
        dtype = self.dtype or result_dtype(self.fn, *specs)
        return Spec(broadcast_shapes(*(s.shape for s in specs)), dtype)

    def gradients(self, dy, xs, y, needed):
        if self.grad is None:
            return [None] * len(xs)
        if self.kernel is not None and self.kernel not in ("add", "subtract") \
                and dy.dtype in KERNEL_DTYPES:
            arrays = _kernel_operands(xs)
            if arrays is not None:
                return [merge.elementwise_backward(self.kernel, dy, arrays, i) if needed[i]
                        else None for i in range(len(xs))]
        elif self.emit_grad is not None and self.kernel is None \
                and _program_operands(xs) == (dy.shape, dy.dtype):
            return run_program(self, xs, (y, dy))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.grad(dy, xs, y)

    def __repr__(self):
        return f"Elementwise({self.fn.__name__})"


def _number(x):
    """Whether ``x`` is a Python int or float, which NumPy reads as weakly typed (a NumPy
    scalar is not: np.float64 keeps its dtype)."""
    return type(x) in (int, float)


def _program_operands(xs):
    """(shape, dtype) of the operands when the program kernel can take them: float32 or
    float64 arrays of one shape and dtype, and Python numbers (which keep the arrays' dtype),
    at least one array; else None."""
    arrays = [x for x in xs if not _number(x)]
    if not arrays or not all(isinstance(x, np.ndarray) for x in arrays):
        return None
    shape, dtype = arrays[0].shape, arrays[0].dtype
    if dtype not in KERNEL_DTYPES or any(x.shape != shape or x.dtype != dtype
                                         for x in arrays[1:]):
        return None
    return shape, dtype


def run_program(op, xs, gradient=None):
    """``op`` on operands ``xs`` (as _program_operands takes them), or with ``gradient`` = (y,
    dy) its gradients (None for the numbers, and where it has none), as a program of that one
    op, made once per dtype and numbers."""
    arrays = [x for x in xs if not _number(x)]
    shape = arrays[0].shape
    dtype = next(x.dtype for x in arrays if x.dtype != bool)
    arrays = [np.ascontiguousarray(x) for x in arrays]  # (ascontiguousarray makes 0-d 1-d)
    # a bool operand (where's condition) is read as a mask: 1 or 0
    numbers = tuple([x if _number(x) else "mask" if x.dtype == bool else None for x in xs])
    key = (gradient is not None, dtype, numbers)
    made = op._programs.get(key)
    if made is None:
        made = _one_op_program(op, dtype, numbers, gradient is not None)
        if len(op._programs) < 64:
            op._programs[key] = made
    program, given = made
    if program is None:
        return [None] * len(xs)
    if gradient is not None:
        arrays += [np.ascontiguousarray(a) for a in gradient]
    outs = programs.run(program, arrays, *programs.rows_cols(shape))
    if gradient is None:
        return outs[0].reshape(shape)
    found = dict(zip(given, outs))
    return [found[i].reshape(shape) if i in found else None for i in range(len(xs))]


def _one_op_program(op, dtype, numbers, gradient):
    """(the program of ``op`` on inputs where ``numbers`` holds None (or "mask": bools) and
    constants elsewhere, or of its gradients; the operands whose gradients it gives). A bool
    result (a comparison's) is stored as a mask."""
    b = programs.Builder()
    regs = [b.input() if v is None else b.input("mask") if v == "mask" else b.constant(v)
            for v in numbers]
    if not gradient:
        result = op.emit(b, regs)
        if getattr(op, "dtype", None) == "bool":
            b.store_mask(result)
        else:
            b.store(result)
        return b.build(dtype), []
    y, dy = b.input(), b.input()
    given = []
    for i, g in enumerate(op.emit_gradients(b, dy, regs, y)):
        if g is not None and numbers[i] is None:
            b.store(g)
            given.append(i)
    return (b.build(dtype) if given else None), given


def _first_wins(compare):
    def grad(dy, xs, y):
        mask = compare(xs[0], xs[1])
        return [dy * mask, dy * ~mask]
    return grad


def _power_grad(dy, xs, y):
    a, b = xs
    da = dy * b * np.power(a, np.asarray(b) - 1)
    db = None
    if np.asarray(b).dtype.kind == "f" or isinstance(b, float):
        db = dy * y * np.log(np.where(a > 0, a, 1))  # 0 where a <= 0, as JAX's power gives
    return [da, db]


def _public(name, op, n_operands):
    """The public function ``name``, which applies ``op`` to its x (one operand) or x1, x2."""
    if n_operands == 1:
        def fn(x):
            return op(x)
    else:
        def fn(x1, x2):
            return op(x1, x2)
    fn.__name__ = fn.__qualname__ = name
    return recordable(fn)


def _first_wins_program(compare):
    """maximum's or minimum's gradient in a program, as the merge kernel gives it: to the
    second operand where it beats the first (``compare``) or is NaN, else to the first."""
    def emit(b, dy, regs, y):
        x0, x1 = regs
        second = b.op("maximum", b.op(compare, x1, x0), b.op("not_equal", x1, x1))
        zero = b.constant(0.0)
        return [b.op("where", second, zero, dy), b.op("where", second, dy, zero)]
    return emit


def _divide_program(b, dy, regs, y):
    x0, x1 = regs
    return [b.op("divide", dy, x1),
            b.op("divide", b.op("multiply", b.op("negative", dy), b.op("divide", x0, x1)), x1)]


add = _public("add", Elementwise(np.add, lambda dy, xs, y: [dy, dy], "add", program="add",
                                 emit_grad=lambda b, dy, regs, y: [dy, dy]), 2)
subtract = _public("subtract", Elementwise(
    np.subtract, lambda dy, xs, y: [dy, -dy], "subtract", program="subtract",
    emit_grad=lambda b, dy, regs, y: [dy, b.op("negative", dy)]), 2)
multiply = _public("multiply", Elementwise(
    np.multiply, lambda dy, xs, y: [dy * xs[1], dy * xs[0]], "multiply", program="multiply",
    emit_grad=lambda b, dy, regs, y: [b.op("multiply", dy, regs[1]),
                                      b.op("multiply", dy, regs[0])]), 2)
divide = _public("divide", Elementwise(
    np.true_divide, lambda dy, xs, y: [dy / xs[1], -dy * y / xs[1]], "divide", program="divide",
    emit_grad=_divide_program), 2)
true_divide = divide
def _power_program(b, dy, regs, y):
    a, e = regs
    one = b.constant(1.0)
    return [b.op("multiply", b.op("multiply", dy, e), b.op("power", a, b.op("subtract", e, one))),
            b.op("multiply", b.op("multiply", dy, y),
                 b.op("log", b.op("where", b.op("greater", a, b.constant(0.0)), a, one)))]


power = _public("power", Elementwise(np.power, _power_grad, program="power",
                                     emit_grad=_power_program), 2)
maximum = _public("maximum", Elementwise(np.maximum, _first_wins(np.greater_equal), "maximum",
                                         program="maximum",
                                         emit_grad=_first_wins_program("greater")), 2)
minimum = _public("minimum", Elementwise(np.minimum, _first_wins(np.less_equal), "minimum",
                                         program="minimum",
                                         emit_grad=_first_wins_program("less")), 2)


def _unary(name, fn, grad=None, emit_grad=None, program=None):
    """The public unary function ``name``: NumPy's ``fn``, the program kernel's opcode
    ``program`` (``name`` by default) for float arrays, and its gradient: ``grad(dy, x, y)``
    with NumPy (other dtypes), ``emit_grad(b, dy, x, y)`` written into a program (registers);
    None where it has none."""
    op = Elementwise(fn, grad and (lambda dy, xs, y: [grad(dy, xs[0], y)]),
                     program=program or name,
                     emit_grad=emit_grad and (lambda b, dy, regs, y: [emit_grad(b, dy, regs[0],
                                                                                 y)]))
    return _public(name, op, 1)


negative = _unary("negative", np.negative, lambda dy, x, y: -dy,
                  lambda b, dy, x, y: b.op("negative", dy))
square = _unary("square", np.square, lambda dy, x, y: 2 * x * dy,
                lambda b, dy, x, y: b.op("multiply", b.op("multiply", b.constant(2.0), x), dy))
sqrt = _unary("sqrt", np.sqrt, lambda dy, x, y: dy / (2 * y),
              lambda b, dy, x, y: b.op("divide", dy, b.op("multiply", b.constant(2.0), y)))
abs = _unary("abs", np.abs, lambda dy, x, y: dy * np.sign(x),
             lambda b, dy, x, y: b.op("multiply", dy, b.op("sign", x)))
absolute = abs
exp = _unary("exp", np.exp, lambda dy, x, y: dy * y,
             lambda b, dy, x, y: b.op("multiply", dy, y))
log = _unary("log", np.log, lambda dy, x, y: dy / x,
             lambda b, dy, x, y: b.op("divide", dy, x))
log1p = _unary("log1p", np.log1p, lambda dy, x, y: dy / (1 + x),
               lambda b, dy, x, y: b.op("divide", dy, b.op("add", b.constant(1.0), x)))
expm1 = _unary("expm1", np.expm1, lambda dy, x, y: dy * (y + 1),
               lambda b, dy, x, y: b.op("multiply", dy, b.op("add", y, b.constant(1.0))))
log2 = _unary("log2", np.log2, lambda dy, x, y: dy / (x * np.log(2.0)),
              lambda b, dy, x, y: b.op("divide", dy, b.op("multiply", x,
                                                          b.constant(np.log(2.0)))))
log10 = _unary("log10", np.log10, lambda dy, x, y: dy / (x * np.log(10.0)),
               lambda b, dy, x, y: b.op("divide", dy, b.op("multiply", x,
                                                           b.constant(np.log(10.0)))))
sin = _unary("sin", np.sin, lambda dy, x, y: dy * np.cos(x),
             lambda b, dy, x, y: b.op("multiply", dy, b.op("cos", x)))
cos = _unary("cos", np.cos, lambda dy, x, y: -dy * np.sin(x),
             lambda b, dy, x, y: b.op("multiply", b.op("negative", dy), b.op("sin", x)))
stop_gradient = _public("stop_gradient", Elementwise(np.positive), 1)
mod = _public("mod", Elementwise(np.mod, program="mod"), 2)
floor_divide = _public("floor_divide", Elementwise(np.floor_divide, program="floor_divide"), 2)
isnan, isinf, isfinite = (_public(name, Elementwise(getattr(np, name), dtype="bool"), 1)
                          for name in ("isnan", "isinf", "isfinite"))
sign = _unary("sign", np.sign)
floor = _unary("floor", np.floor)
_ROUND = Elementwise(np.round, program="rint")


@recordable
def round(x, decimals=0):
    if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral) or decimals != 0:
        raise ValueError(f"Expected decimals=0, received decimals={decimals!r}")
    return _ROUND(x)


class _Clip(Op):
    _caches = {}  # (bounds) -> the programs of a clip to them: each call makes a new _Clip

    def __init__(self, x_min, x_max):
        self.x_min, self.x_max = x_min, x_max
        key = (type(x_min), x_min, type(x_max), x_max) if self._numbers() else None
        self._programs = self._caches.get(key) if key is not None else {}
        if self._programs is None:
            self._programs = {}
            if len(self._caches) < 64:
                self._caches[key] = self._programs

    def _numbers(self):
        """Whether both bounds are Python numbers, which keep a float array's dtype."""
        return _number(self.x_min) and _number(self.x_max)

    def fusion(self, n_operands):
        return "elementwise" if self._numbers() else None

    def emit(self, b, regs):
        return b.op("minimum", b.op("maximum", regs[0], b.constant(self.x_min)),
                    b.constant(self.x_max))

    def emit_gradients(self, b, dy, regs, y):
        inside = b.op("multiply", b.op("greater_equal", regs[0], b.constant(self.x_min)),
                      b.op("less_equal", regs[0], b.constant(self.x_max)))
        return [b.op("multiply", dy, inside)]

    def compute(self, x):
        if self._numbers() and _program_operands([x]) is not None:
            return run_program(self, [x])
        return np.asarray(np.clip(x, self.x_min, self.x_max))

    def spec(self, x):
        return Spec(x.shape, result_dtype(lambda v: np.clip(v, self.x_min, self.x_max), x))

    def gradients(self, dy, xs, y, needed):
        x = xs[0]
        if self._numbers() and _program_operands([x]) == (dy.shape, dy.dtype):
            return run_program(self, [x], (y, dy))
        return [dy * ((x >= self.x_min) & (x <= self.x_max))]


@recordable
def clip(x, x_min, x_max):
    """Values of ``x`` limited to [x_min, x_max] (numbers); the gradient passes where x is
    inside, bounds included."""
    return _Clip(checked_operand(x_min), checked_operand(x_max))(x)


class _Where(Op):
    """Inside a fused chain, the condition is a comparison's 1 or 0 (a bool tensor from
    outside the chain runs the chain op by op). Eagerly, float values of one shape and dtype
    (or numbers) under a bool or same-dtype condition of that shape run as a program, a bool
    condition read as a mask (1 or 0)."""

    _programs = {}  # shared: each call makes a new _Where, and the key says all

    def fusion(self, n_operands):
        return "elementwise"

    def emit(self, b, regs):
        return b.op("where", *regs)

    def emit_gradients(self, b, dy, regs, y):
        zero = b.constant(0.0)
        return [None, b.op("where", regs[0], dy, zero), b.op("where", regs[0], zero, dy)]

    def compute(self, condition, x1, x2):
        operands = _where_operands(condition, x1, x2)
        if operands is not None:
            return run_program(self, operands)
        return np.asarray(np.where(condition, x1, x2))

    def spec(self, condition, x1, x2):
        return Spec(broadcast_shapes(condition.shape, x1.shape, x2.shape),
                    result_dtype(lambda a, b: np.where(True, a, b), x1, x2))

    def gradients(self, dy, xs, y, needed):
        operands = _where_operands(*xs)
        # dy like the values (the condition may be bool)
        if operands is not None and (dy.shape, dy.dtype) == (operands[1].shape,
                                                             operands[1].dtype):
            return run_program(self, operands, (y, dy))
        condition = np.asarray(xs[0], bool)
        return [None, np.where(condition, dy, 0), np.where(condition, 0, dy)]


def _where_operands(condition, x1, x2):
    """where's operands as run_program takes them, or None where the program kernel cannot
    take them."""
    found = _program_operands([x1, x2])
    if found is None or not isinstance(condition, np.ndarray) or condition.shape != found[0] \
            or condition.dtype not in (np.bool_, found[1]):
        return None
    return [condition, x1, x2]


@recordable
def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        raise ValueError("Expected both x1 and x2: where(condition) alone gives indices, which "
                         "fastcnn does not provide")
    return _Where()(condition, x1, x2)


# The comparisons and logical functions: bool results (NumPy's), no gradient. Inside a fused
# chain a comparison gives 1 or 0, made bool where the chain's result is read outside it.
equal, not_equal, greater, greater_equal, less, less_equal = (
    _public(name, Elementwise(getattr(np, name), dtype="bool", program=name), 2)
    for name in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal"))
logical_and, logical_or = (_public(name, Elementwise(getattr(np, name), dtype="bool"), 2)
                           for name in ("logical_and", "logical_or"))
logical_not = _public("logical_not", Elementwise(np.logical_not, dtype="bool"), 1)


# The NumPy ufuncs behind Python's operators: what a KerasTensor's operator maps to when a
# NumPy array is on its left, and a weight's arithmetic inside a traced call (core.Variable).
OPERATOR_UFUNCS = {"add": add, "subtract": subtract, "multiply": multiply,
                   "true_divide": divide, "divide": divide, "power": power,
                   "negative": negative, "equal": equal, "not_equal": not_equal,
                   "greater": greater, "greater_equal": greater_equal, "less": less,
                   "less_equal": less_equal}

"""Elementwise programs: a ``Builder`` writes one (instructions on registers, each written
once), ``Program`` is its checked, immutable form, and ``run`` evaluates it with the program
kernel over operands laid out as (rows, cols): full operands of rows * cols elements, row
operands of one value per row, column operands of one value per column, and masks: full
operands of bools (a comparison's result, where's condition), read as 1 or 0.

A program is checked once, when it is made, so that a call repeated every batch checks only
its arrays: their dtype (the program's, bool for masks), layout and sizes.
"""
import numpy as np

from .._ext import program as _program
from .threads import effective_n_threads

OPCODES = _program.OPCODES
_BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power",
           "floor_divide", "mod", "greater", "greater_equal", "less", "less_equal", "equal",
           "not_equal")
_UNARY = ("negative", "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "sign", "sin",
          "cos", "floor", "rint", "log2", "log10", "reciprocal")
ARITY = {**dict.fromkeys(_BINARY, 2), **dict.fromkeys(_UNARY, 1), "where": 3}
KINDS = ("full", "row", "col", "mask")
_LOADS = {"full": "load", "row": "load_row", "col": "load_col", "mask": "load_mask"}
_STORES = {"store": "full", "row_sum": "row", "store_mask": "mask"}  # and their output kinds
_NAMES = {v: k for k, v in OPCODES.items()}
_SOURCES = {OPCODES[name] for name in ("load", "load_row", "load_col", "load_mask", "const")}
_OUTPUTS = {OPCODES[name] for name in _STORES}


class Builder:
    """Writes a program: each method returns the register (an int) or output index it made."""

    def __init__(self):
        self.code, self.constants, self.input_kinds, self.output_kinds = [], [], [], []
        self._constant_registers = {}
        self.n_registers = 0

    def _emit(self, op, a=0, b=0, c=0, dst=None):
        if dst is None:
            dst, self.n_registers = self.n_registers, self.n_registers + 1
        self.code.append((OPCODES[op], dst, a, b, c))
        return dst

    def input(self, kind="full"):
        """A register holding a new input of ``kind`` ("full", "row", "col", or "mask": full
        bools, as 1 or 0)."""
        self.input_kinds.append(kind)
        return self._emit(_LOADS[kind], len(self.input_kinds) - 1)

    def constant(self, value):
        """A register holding the number ``value`` (one register per distinct value)."""
        key = (float(value), np.signbit(value))
        if key not in self._constant_registers:
            self.constants.append(float(value))
            self._constant_registers[key] = self._emit("const", len(self.constants) - 1)
        return self._constant_registers[key]

    def op(self, name, *registers):
        if ARITY.get(name) != len(registers):
            raise ValueError(f"Expected an elementwise op of {len(registers)} operands, "
                             f"received {name!r}")
        return self._emit(name, *registers)

    def store(self, register):
        """A full output holding ``register``."""
        self.output_kinds.append("full")
        self._emit("store", register, dst=len(self.output_kinds) - 1)
        return len(self.output_kinds) - 1

    def store_mask(self, register):
        """A full bool output holding whether ``register`` is nonzero."""
        self.output_kinds.append("mask")
        self._emit("store_mask", register, dst=len(self.output_kinds) - 1)
        return len(self.output_kinds) - 1

    def row_sum(self, register, divisor=None):
        """A row output holding each row's sum of ``register`` (over ``divisor``: a mean)."""
        self.output_kinds.append("row")
        index = -1
        if divisor is not None:
            self.constants.append(float(divisor))
            index = len(self.constants) - 1
        self._emit("row_sum", register, index, dst=len(self.output_kinds) - 1)
        return len(self.output_kinds) - 1

    def build(self, dtype):
        """The program in ``dtype``, without the instructions no output depends on (registers
        renumbered in order)."""
        live = set()
        for op, dst, a, b, c in reversed(self.code):
            if op in _OUTPUTS:
                live.add(a)
            elif dst in live and op not in _SOURCES:
                live.update((a, b, c)[:ARITY[_NAMES[op]]])
        number, code = {}, []
        for op, dst, a, b, c in self.code:
            if op in _OUTPUTS:
                code.append((op, dst, number[a], b, c))
            elif dst in live:
                if op not in _SOURCES:
                    a, b, c = (number.get(r, 0) for r in (a, b, c))
                number[dst] = len(number)
                code.append((op, number[dst], a, b, c))
        return Program(code, self.constants, self.input_kinds, self.output_kinds, len(number),
                       dtype)


class Program:
    """A checked program: every opcode known, every register written once before it is read,
    every input, output and constant index in range. Immutable; shared between calls."""

    def __init__(self, code, constants, input_kinds, output_kinds, n_registers, dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"Expected a program in float32 or float64, received {self.dtype}")
        self.input_kinds, self.output_kinds = tuple(input_kinds), tuple(output_kinds)
        if not self.output_kinds or any(k not in KINDS for k in
                                        self.input_kinds + self.output_kinds):
            raise ValueError(f"Expected input and output kinds in {KINDS}, at least one output, "
                             f"received {self.input_kinds} and {self.output_kinds}")
        self.constants = np.array(constants, np.float64).reshape(-1)
        self.code = np.array(code, np.int32).reshape(-1, 5)
        self.n_registers = int(n_registers)
        self._check()
        for a in (self.code, self.constants):
            a.setflags(write=False)

    def _check(self):
        names = {v: k for k, v in OPCODES.items()}
        written, stored = set(), set()
        n_in, n_out, n_const = len(self.input_kinds), len(self.output_kinds), len(self.constants)

        def refuse(why):
            raise ValueError(f"Invalid program instruction {i}, {ins}: {why}")

        for i, ins in enumerate(self.code.tolist()):
            op, dst, a, b, c = ins
            name = names.get(op)
            if name is None:
                refuse("unknown opcode")
            if name in _STORES:
                if not 0 <= dst < n_out or dst in stored or a not in written:
                    refuse("an output written twice or out of range, or an unwritten register")
                if self.output_kinds[dst] != _STORES[name]:
                    refuse("an output of the other kind")
                if name == "row_sum" and not -1 <= b < n_const:
                    refuse("a divisor out of range")
                stored.add(dst)
                continue
            if dst != len(written) or dst >= self.n_registers:
                refuse("registers are numbered in the order they are written, once each")
            if name.startswith("load"):
                if not 0 <= a < n_in or _LOADS[self.input_kinds[a]] != name:
                    refuse("an input out of range or of the other kind")
            elif name == "const":
                if not 0 <= a < n_const:
                    refuse("a constant out of range")
            elif any(r not in written for r in (a, b, c)[:ARITY[name]]):
                refuse("a register read before it is written")
            written.add(dst)
        if stored != set(range(n_out)):
            raise ValueError("Invalid program: an output that no instruction writes")


def run(program, inputs, rows, cols, outputs=None, n_threads=None):
    """The program's outputs for ``inputs`` (arrays of the program's dtype, each C-contiguous of
    the size its kind gives over (rows, cols)); full outputs flat (rows * cols,), row outputs
    (rows,), in ``outputs`` when given."""
    if not isinstance(program, Program):
        raise TypeError(f"Expected a Program, received {type(program).__name__}")
    if len(inputs) != len(program.input_kinds):
        raise ValueError(f"Expected {len(program.input_kinds)} inputs, received {len(inputs)}")
    rows, cols = int(rows), int(cols)
    if rows < 0 or cols < 0:
        raise ValueError(f"Expected rows and cols >= 0, received {rows} and {cols}")
    sizes = {"full": rows * cols, "row": rows, "col": cols, "mask": rows * cols}
    dtypes = dict.fromkeys(KINDS, program.dtype) | {"mask": np.dtype(bool)}
    flat = []
    for i, (x, kind) in enumerate(zip(inputs, program.input_kinds)):
        if not (isinstance(x, np.ndarray) and x.dtype == dtypes[kind] and x.size == sizes[kind]
                and x.flags.c_contiguous):
            raise ValueError(f"Expected inputs[{i}] to be a C-contiguous {dtypes[kind]} array "
                             f"of {sizes[kind]} elements, received {type(x).__name__} "
                             f"{getattr(x, 'dtype', '')} of shape {np.shape(x)}")
        flat.append(x if x.ndim == 1 else x.reshape(-1))
    if outputs is None:
        outputs = [np.empty(sizes[kind], dtypes[kind]) for kind in program.output_kinds]
        flat_outputs = outputs
    else:
        if len(outputs) != len(program.output_kinds):
            raise ValueError(f"Expected {len(program.output_kinds)} outputs, received "
                             f"{len(outputs)}")
        for i, (y, kind) in enumerate(zip(outputs, program.output_kinds)):
            if not (isinstance(y, np.ndarray) and y.dtype == dtypes[kind]
                    and y.flags.c_contiguous and y.flags.writeable and y.size == sizes[kind]):
                raise ValueError(f"Expected outputs[{i}] to be a writable C-contiguous "
                                 f"{dtypes[kind]} array of {sizes[kind]} elements, received "
                                 f"shape {np.shape(y)}")
            if any(np.may_share_memory(y, x) for x in inputs):
                raise ValueError(f"Expected outputs[{i}] apart from the inputs")
        flat_outputs = [y.reshape(-1) for y in outputs]
    _program.program_run(program.code, program.constants, flat, flat_outputs, rows, cols,
                         program.n_registers, effective_n_threads(n_threads))
    return outputs


def rows_cols(shape):
    """(rows, cols) of an array of ``shape`` seen as rows along its last axis."""
    cols = shape[-1] if shape else 1
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows, cols

"""NumPy twin of ``fastcnn._ext.program``: the program run on whole arrays, one NumPy call per
instruction."""
import numpy as np

from .._ext.program import OPCODES
from .reduce import lane_sum

_NAMES = {v: k for k, v in OPCODES.items()}
_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
           "divide": np.divide, "maximum": np.maximum, "minimum": np.minimum,
           "power": np.power, "floor_divide": np.floor_divide, "mod": np.mod,
           "greater": np.greater, "greater_equal": np.greater_equal,
           "less": np.less, "less_equal": np.less_equal, "equal": np.equal,
           "not_equal": np.not_equal, "negative": np.negative, "exp": np.exp, "log": np.log,
           "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "square": np.square,
           "abs": np.abs, "sign": np.sign, "sin": np.sin, "cos": np.cos, "floor": np.floor,
           "rint": np.rint, "log2": np.log2, "log10": np.log10, "reciprocal": np.reciprocal}
_UNARY = {"negative", "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "sign", "sin",
          "cos", "floor", "rint", "log2", "log10", "reciprocal"}


def program_run(code, constants, inputs, outputs, rows, cols, n_registers, n_threads):
    """Each register a (rows, cols) array; row sums in double in the kernels' lane order,
    over the divisor for a mean."""
    dtype = outputs[0].dtype
    reg = {}
    with np.errstate(all="ignore"):
        for op, dst, a, b, c in np.asarray(code).tolist():
            name = _NAMES[op]
            if name == "store":
                outputs[dst][...] = reg[a].reshape(-1)
            elif name == "row_sum":
                total = lane_sum(reg[a])
                outputs[dst][...] = total / constants[b] if b >= 0 else total
            elif name == "load":
                reg[dst] = np.asarray(inputs[a]).reshape(rows, cols)
            elif name == "load_row":
                reg[dst] = np.repeat(np.asarray(inputs[a]).reshape(rows, 1), cols, axis=1)
            elif name == "load_col":
                reg[dst] = np.repeat(np.asarray(inputs[a]).reshape(1, cols), rows, axis=0)
            elif name == "const":
                reg[dst] = np.full((rows, cols), constants[a], dtype)
            elif name == "where":
                reg[dst] = np.where(reg[a] != 0, reg[b], reg[c])
            else:
                args = [reg[r] for r in (a, b)[:1 if name in _UNARY else 2]]
                reg[dst] = _UFUNCS[name](*args).astype(dtype)

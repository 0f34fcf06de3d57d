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


F = np.float32


def _pow2f(n):
    return ((n + 127).astype(np.uint32) << np.uint32(23)).view(F)


def _expf(x):
    """vecmath.h's float32 exp, step for step."""
    x = np.where(x > F(89.0), F(89.0), x)
    x = np.where(x < F(-104.0), F(-104.0), x)
    nf = (x * F(1.44269504088896341) + F(12582912.0)) - F(12582912.0)
    n = nf.astype(np.int32)
    r = (x - nf * F(0.693359375)) - nf * F(-2.12194440e-4)
    z = r * r
    p = (((((F(1.9875691500e-4) * r + F(1.3981999507e-3)) * r + F(8.3334519073e-3)) * r
           + F(4.1665795894e-2)) * r + F(1.6666665459e-1)) * r + F(5.0000001201e-1))
    p = (p * z + r) + F(1.0)
    half = n >> 1
    return (p * _pow2f(half)) * _pow2f(n - half)


def _logf(x):
    """vecmath.h's float32 log, step for step."""
    tiny = x < F(1.17549435e-38)
    u = np.where(tiny, x * F(33554432.0), x).view(np.uint32)
    e = ((u >> np.uint32(23)) & np.uint32(0xff)).astype(np.int32) - 126 - np.where(tiny, 25, 0)
    f = ((u & np.uint32(0x007fffff)) | np.uint32(0x3f000000)).view(F)
    low = f < F(0.707106781186547524)
    e = e - low
    f = np.where(low, f + f, f) - F(1.0)
    z = f * f
    y = ((((((((F(7.0376836292e-2) * f - F(1.1514610310e-1)) * f + F(1.1676998740e-1)) * f
               - F(1.2420140846e-1)) * f + F(1.4249322787e-1)) * f - F(1.6668057665e-1)) * f
            + F(2.0000714765e-1)) * f - F(2.4999993993e-1)) * f + F(3.3333331174e-1))
    y = (y * f) * z
    fe = e.astype(F)
    y = y + fe * F(-2.12194440e-4)
    y = y - z * F(0.5)
    r = (f + y) + fe * F(0.693359375)
    r = np.where(x == 0, F(-np.inf), r)
    r = np.where(x < 0, F(np.nan), r)
    return np.where((x != x) | (x == F(np.inf)), x, r)


TRIG_LIMIT = F(1.0e6)  # as vecmath.h's FCNN_TRIG_LIMIT


def _sincosf(x, shift):
    """vecmath.h's float32 sin (shift 0) or cos (shift 1), step for step: reduced and evaluated
    in float64; beyond TRIG_LIMIT, inf and NaN, float64 sin or cos."""
    inside = np.abs(x) < TRIG_LIMIT
    xd = np.where(inside, x, F(0)).astype(np.float64)
    t = xd * 6.36619772367581382433e-01 + 6755399441055744.0
    nd = t - 6755399441055744.0
    n = t.view(np.uint64) + np.uint64(shift)
    r = (xd - nd * 1.57079631090164184570e+00) - nd * 1.58932547735281966916e-08
    z = r * r
    w = z * z
    s = ((r + (z * r) * (-1.66666666416265235595e-01 + z * 8.33332938588946318e-03))
         + ((z * r) * w) * (-1.98393348360966317347e-04 + z * 2.71831149398982191e-06))
    c = (((1.0 + z * -4.99999997251031003120e-01) + w * 4.16666233237390631894e-02)
         + (w * z) * (-1.38867637746099294692e-03 + z * 2.43904487962774090654e-05))
    v = np.where(n & np.uint64(1), c, s)
    result = np.where(n & np.uint64(2), -v, v).astype(F)
    if shift == 0:
        result = np.where(x == 0, x, result)
    far = (np.cos if shift else np.sin)(x[~inside].astype(np.float64)).astype(F)
    result[~inside] = far
    return result


def _log1pf(x):
    """vecmath.h's float32 log1p, step for step (in float64)."""
    xd = x.astype(np.float64)
    u = np.where((xd > -1.0) & (xd < np.inf), 1.0 + xd, 1.0)
    bits = u.view(np.uint64) + np.uint64(0x95f62 << 32)
    k = ((bits >> np.uint64(52)).astype(np.int64) - 0x3ff).astype(np.float64)
    m = ((bits & np.uint64(0x000fffffffffffff)) + np.uint64(0x3fe6a09e << 32)).view(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    series = 1.0 / 13
    for odd in (11, 9, 7, 5, 3):
        series = 1.0 / odd + z * series
    series = 1.0 + z * series
    log_u = k * 6.93147180559945286227e-01 + (2.0 * s) * series
    r = np.where(np.abs(xd) < 2.0 ** -29, xd - (xd * xd) * 0.5, log_u)
    r = np.where(xd == -1.0, -np.inf, r)
    r = np.where(xd < -1.0, np.nan, r)
    return np.where((x != x) | (x == F(np.inf)), x, r.astype(F))


def _expm1f(x):
    """vecmath.h's float32 expm1, step for step (in float64 after the clamps)."""
    xc = np.where(x > F(89.0), F(89.0), x)
    xd = np.where(xc < F(-104.0), F(-104.0), xc).astype(np.float64)
    t = xd * 1.44269504088896338700e+00 + 6755399441055744.0
    nd = t - 6755399441055744.0
    scale = ((t.view(np.uint64) - np.uint64(0x4338000000000000) + np.uint64(1023))
             << np.uint64(52)).view(np.float64)
    r = (xd - nd * 6.93147180369123816490e-01) - nd * 1.90821492927058770002e-10
    p = 1.0 / 40320
    for k in (5040, 720, 120, 24, 6, 2, 1):
        p = 1.0 / k + r * p
    p = 1.0 + r * p
    v = np.where(np.abs(xd) < 2.0 ** -20, xd + (xd * xd) * 0.5, p * scale - 1.0)
    return np.where(x == 0, x, v.astype(F))


# the kernel's own float32 functions (vecmath.h)
_FLOAT32 = {"exp": _expf, "log": _logf, "log1p": _log1pf, "expm1": _expm1f,
            "sin": lambda x: _sincosf(x, 0), "cos": lambda x: _sincosf(x, 1)}


def program_run(code, constants, inputs, outputs, rows, cols, n_registers, n_threads):
    """Each register a (rows, cols) array; row sums in double in the kernels' lane order,
    over the divisor for a mean."""
    dtype = next(a.dtype for a in list(outputs) + list(inputs) if a.dtype != bool)
    reg = {}
    with np.errstate(all="ignore"):
        for op, dst, a, b, c in np.asarray(code).tolist():
            name = _NAMES[op]
            if name == "store":
                outputs[dst][...] = reg[a].reshape(-1)
            elif name == "store_mask":
                outputs[dst][...] = reg[a].reshape(-1) != 0
            elif name == "load_mask":
                reg[dst] = np.asarray(inputs[a]).reshape(rows, cols).astype(dtype)
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
                if dtype == np.float32 and name in _FLOAT32:
                    reg[dst] = _FLOAT32[name](args[0].astype(F))
                else:
                    reg[dst] = _UFUNCS[name](*args).astype(dtype)

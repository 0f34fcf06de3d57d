"""The fuzzer's random values (tests/api/fuzz.py): valid arguments, hostile ones (one argument
made wrong: a bad dtype, rank, size, layout or number) and their short, reproducible
descriptions."""
import math
import os

import numpy as np

DTYPES_BAD = ("int32", "int64", "uint8", "bool", "float16", "complex64", "object", "U1")
NAMES_BAD = ("bogus", "", "VALID", None, 3, ("valid",))


class Gen:
    """Random values, valid and invalid, from one seeded generator."""

    def __init__(self, seed, index, tmpdir):
        self.rng = np.random.default_rng([seed, index])
        self.tmpdir = tmpdir

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def chance(self, p):
        return self.rng.random() < p

    def choice(self, options):
        return options[self.int(0, len(options) - 1)]

    def array(self, shape, dtype=np.float32, scale=1.0):
        a = (self.rng.standard_normal(shape) * scale).astype(dtype)
        if self.chance(0.05) and a.size and a.dtype.kind == "f":
            a.flat[self.int(0, a.size - 1)] = self.choice([np.nan, np.inf, -np.inf, 1e38])
        return self.odd_layout(a) if self.chance(0.15) else a

    def odd_layout(self, a):
        """The same values in a valid but unusual container."""
        kind = self.choice(["fortran", "strided", "readonly", "memmap", "list"])
        if kind == "fortran":
            return np.asfortranarray(a)
        if kind == "strided" and a.ndim:
            wide = np.zeros((*a.shape[:-1], a.shape[-1] * 2), a.dtype)
            wide[..., ::2] = a
            return wide[..., ::2]
        if kind == "readonly":
            a = a.copy()
            a.setflags(write=False)
            return a
        if kind == "memmap" and a.size and a.dtype != object:
            m = np.memmap(os.path.join(self.tmpdir, f"m{self.int(0, 10**9)}.dat"), a.dtype, "w+",
                          shape=a.shape)
            m[...] = a
            return m
        if kind == "list" and a.size < 200:
            return a.tolist()
        return a

    def labels(self, n, k):
        return self.rng.integers(0, k, n)

    # -- mutations: one argument made wrong, or odd ---------------------------------------
    def mutate(self, value):
        if isinstance(value, np.ndarray):
            return self.bad_array(value)
        if isinstance(value, bool):
            return self.choice([None, "yes", 2, np.array([True, False])])
        if isinstance(value, (int, np.integer)):
            return self.choice([0, -1, -value - 1, 2**31, 2**63, 2**70, 1.5, True, "3", None,
                                np.int64(value), value * 1000 + 1])
        if isinstance(value, float):
            return self.choice([math.nan, math.inf, -math.inf, -1.0, 0.0, 1.0, 2.0**70, 1e-300,
                                "0.1", None, np.float32(value), 5])
        if isinstance(value, str):
            return self.choice(NAMES_BAD + (value.upper(), value + " "))
        if isinstance(value, tuple):
            return self.choice([(0,) * len(value), tuple(-v if isinstance(v, int) else v for v in value),
                                (2**40,) + value[1:], value[:-1], value + (1,), (1.5,) * len(value),
                                "ab", None, list(value), value[0] if value else 0])
        if isinstance(value, list) and value:  # one item made wrong, or one item fewer or more
            i = self.int(0, len(value) - 1)
            return self.choice([value[:i] + [self.mutate(value[i])] + value[i + 1:], value[:-1],
                                value + [value[i]], tuple(value)])
        if value is None:
            return self.choice([self.array((2, 3)), 0, "x", []])
        return self.choice([None, 0, "x"])

    def bad_array(self, a):
        a = np.asarray(a)
        kind = self.choice(["dtype", "rank_up", "rank_down", "dim", "empty", "odd", "nan",
                            "huge", "none", "scalar", "zero_stride"])
        shape = a.shape
        if kind == "dtype":
            dtype = self.choice(DTYPES_BAD)
            return np.full(shape, "a") if dtype == "U1" else a.astype(dtype)
        if kind == "rank_up":
            return a[..., None]
        if kind == "rank_down":  # one axis fewer: flattened, or a 1-D array made 0-d
            return a.reshape(-1) if a.ndim != 1 else (a[:1] if a.size else np.zeros(1, a.dtype)).reshape(())
        if kind in ("dim", "empty") and a.ndim:
            axis = self.int(0, a.ndim - 1)
            new = list(shape)
            new[axis] = 0 if kind == "empty" else max(shape[axis] + self.choice([-1, 1, 5]), 0)
            return self.array(tuple(new), a.dtype if a.dtype != object else np.float32)
        if kind == "odd":
            return self.odd_layout(a)
        if kind == "nan" and a.dtype.kind == "f":
            return np.full(shape, self.choice([np.nan, np.inf, -np.inf]), a.dtype)
        if kind == "huge" and a.ndim:
            # 3 * 2**31 values per sample (in all, for 1-D): free as a broadcast view, but vast
            # if anything copies it before refusing it
            new = list(shape)
            axis = 0 if a.ndim == 1 else 1
            new[axis] = -(-3 * 2**31 // max(1, math.prod(shape[axis + 1:])))
            return np.broadcast_to(np.zeros((), a.dtype), tuple(new))
        if kind == "zero_stride" and a.ndim:
            return np.broadcast_to(np.asarray(a)[(slice(0, 1),) * a.ndim], shape)
        if kind == "scalar":
            return self.choice([0.0, np.float32(1), "x", 7])
        return None


def describe(value, depth=0):
    """A short, reproducible description of an argument (arrays by shape, dtype and layout)."""
    if depth > 8:
        return "..."
    if isinstance(value, int) and value.bit_length() > 64:
        return f"int({value.bit_length()} bits)"
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        levels, inner = 0, value  # a deeply nested list, by its depth
        while isinstance(inner, list) and len(inner) == 1:
            levels, inner = levels + 1, inner[0]
        if levels > 8:
            return f"[*{levels} {describe(inner, depth + 1)}]"
    if isinstance(value, np.ndarray):
        flags = []
        if value.size and 0 in value.strides and not isinstance(value, np.memmap):
            flags.append("broadcast")
        if not value.flags.c_contiguous:
            flags.append("F" if value.flags.f_contiguous else "strided")
        if not value.flags.writeable:
            flags.append("readonly")
        if isinstance(value, np.memmap):
            flags.append("memmap")
        if value.dtype.kind in "fc" and value.size and not 0 in value.strides \
                and not np.isfinite(value).all():
            flags.append("nonfinite")
        return f"array{value.shape}:{value.dtype}{'[' + ','.join(flags) + ']' if flags else ''}"
    numbers = isinstance(value, list) and all(isinstance(v, (float, int)) for v in value)
    if (isinstance(value, list) and value and all(isinstance(v, (list, float, int)) for v in value)
            and not (numbers and len(value) <= 8)):  # short lists of numbers are written out
        try:
            return f"list{np.shape(value) if len(value) < 1000 else (len(value), '...')}"
        except ValueError:  # ragged: described item by item below
            pass
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{type(value).__name__}(len={len(value)})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v, depth + 1) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={describe(v, depth + 1)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


def call_text(name, args=(), kwargs=None):
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"

#!/usr/bin/env python
"""Crash fuzzer: every public layer, op and model method, called with random valid and invalid
arguments in child processes.

    python tests/api/fuzz.py --calls 10000 [--seed 0] [--per-child 1000]
    python tests/api/fuzz.py --replay 1234 [--seed 0]     # rerun one call here, with a traceback
    python tests/api/fuzz.py --only op_call              # or layer_call, model_call, misc_call
    python tests/api/fuzz.py --only crash_call --calls 9  # check that crashes are caught

Call i is drawn from the RNG (seed, i) alone, so any call can be replayed. A child logs each
call's description, flushed, before making it, and its outcome after; when a child dies by a
signal (or hangs), the parent reports the last call the child started and resumes after it.

Outcomes:
- crash: the child died by a signal, or hung. Must never happen.
- internal: an exception raised inside fastcnn other than ValueError, TypeError, OSError or a
  RuntimeError with a message (IndexError, AttributeError, KeyError, ZeroDivisionError, ...).
- kernel-level: a ValueError/TypeError that only the Cython kernel caught (Cython's own buffer
  checks, say), which means the ops room (fastcnn._ops) let it through. Safe, but worth a check
  there.
- memory: MemoryError under the child's address-space limit (a vast shape that was not refused
  before an allocation).
"""
import argparse
import collections
import contextlib
import ctypes
import inspect
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMORY_LIMIT = 6 * 2**30  # per child: an allocation beyond this is a MemoryError, not an OOM kill
SECONDS_PER_CALL = 20  # a child that makes no progress for this long is a hang

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


def describe(value):
    """A short, reproducible description of an argument (arrays by shape, dtype and layout)."""
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
    if isinstance(value, list) and value and all(isinstance(v, (list, float, int)) for v in value):
        return f"list{np.shape(value) if len(value) < 1000 else (len(value), '...')}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{type(value).__name__}(len={len(value)})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(describe(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={describe(v)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


def call_text(name, args=(), kwargs=None):
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


# ---- ops: arguments by parameter name, from one coherent geometry ------------------------------

# What op_call fuzzes: every public function of the wrapper modules of fastcnn._ops, and the
# checks that the API layers call themselves (the other checks are the wrappers' helpers).
OPS_MODULES = ("conv", "dense", "pool", "activation", "dropout", "loss", "normalization", "optim",
               "regularization", "remap", "distance")
API_CHECKS = ("as_kernel_array", "check_array", "check_index_range", "window_output_shape")


def geometry(g):
    """Shapes for one op call that agree with each other (when valid)."""
    from fastcnn._ops import checks
    geo = dict(n=g.int(1, 4), h=g.int(1, 9), w=g.int(1, 9), c=g.int(1, 5), co=g.int(1, 20),
               kh=g.int(1, 4), kw=g.int(1, 4), sh=g.int(1, 3), sw=g.int(1, 3),
               padding=g.choice(["valid", "same"]), k=g.int(1, 6), f=g.int(1, 12),
               dtype=np.float32 if g.chance(0.8) else np.float64)
    try:
        (oh, ow), _ = checks.window_output_shape((geo["h"], geo["w"]), (geo["kh"], geo["kw"]),
                                                 (geo["sh"], geo["sw"]), geo["padding"])
    except ValueError:  # a window larger than the input: the call should refuse it
        oh, ow = 1, 1
    geo.update(oh=oh, ow=ow)
    return geo


def op_argument(g, fn_name, param, geo):
    """A valid value for ``param`` of the ops function ``fn_name`` (or a plausible guess for new
    ones)."""
    from fastcnn._ops import activation, normalization, pool
    n, h, w, c, co, k, f, dt = (geo[key] for key in "n h w c co k f dtype".split())
    image, conv_out, pool_out = (n, h, w, c), (n, geo["oh"], geo["ow"], co), (n, geo["oh"], geo["ow"], c)
    dense = fn_name.startswith("dense")
    pooled = "pool" in fn_name and not fn_name.startswith("global")
    is_global = fn_name.startswith("global")
    batchnorm = fn_name.startswith("batchnorm")
    remap = fn_name.startswith("remap")
    loss = any(word in fn_name for word in ("entropy", "squared", "hinge"))
    optim = fn_name.endswith("_update") or fn_name in ("axpy", "sum_of_squares")
    out_shape = (conv_out if fn_name.startswith("conv") else pool_out if pooled else
                 (n, co) if dense else (n, c) if is_global else (n, k) if loss else image)
    if param in ("x", "inputs"):
        if dense:
            return g.array((n, f), dt)
        if optim or fn_name.startswith("pairwise"):
            return g.array((n, f), dt)
        return g.array(image, dt)
    if param == "kernel":
        return g.array((f, co) if dense else (geo["kh"], geo["kw"], c, co), dt)
    if param in ("bias",):
        return g.array((co,), dt) if g.chance(0.8) else None
    if param == "dy":
        if fn_name.startswith("conv"):
            return g.array(conv_out, dt)
        if pooled:
            return g.array(pool_out, dt)
        if dense:
            return g.array((n, co), dt)
        if is_global:
            return g.array((n, c), dt)
        if remap:
            return g.array((n, geo["oh"], geo["ow"], c), dt)
        return g.array(image, dt)
    if param in ("y", "uniform"):
        return g.rng.random(image).astype(dt)
    if param == "argmax":
        if is_global:
            return g.rng.integers(0, h * w * c, (n, c)).astype(np.int32)
        try:
            return pool.maxpool2d_forward(g.array(image, dt), (geo["kh"], geo["kw"]),
                                          (geo["sh"], geo["sw"]), geo["padding"])[1]
        except ValueError:
            return g.rng.integers(0, h * w * c, pool_out).astype(np.int32)
    if param in ("input_shape",):
        return image
    if param == "kernel_shape":
        return (geo["kh"], geo["kw"], c, co)
    if param in ("strides", "stride"):
        return (geo["sh"], geo["sw"]) if param == "strides" else geo["sh"]
    if param in ("pool_size", "window"):
        return (geo["kh"], geo["kw"])
    if param == "padding":
        return geo["padding"]
    if param in ("out", "dw", "db", "grad", "loss", "index", "mean", "inv_std", "dgamma", "dbeta",
                 "partial"):
        if g.chance(0.6):
            return None
        shapes = {"dw": (f, co) if dense else (geo["kh"], geo["kw"], c, co), "db": (co,),
                  "grad": (n, k), "loss": (n,), "index": (n, min(k, 2)), "mean": (c,),
                  "inv_std": (c,), "dgamma": (c,), "dbeta": (c,),
                  "partial": normalization.batchnorm_partial_shape(image) if batchnorm else (1,)}
        dtype = {"index": np.intp, "partial": np.float64}.get(param, dt)
        return np.zeros(shapes.get(param, out_shape), dtype)
    if param in ("logits", "y_pred", "scores", "dist"):
        return g.array((n, k), dt, scale=g.choice([1.0, 30.0]))
    if param == "target":
        return np.eye(k, dtype=dt)[g.labels(n, k)]
    if param == "labels":
        return g.labels(n, k)
    if param == "yt":
        return g.array((f, k), dt)
    if param in ("param", "grad", "velocity", "m", "v", "mean_square", "momentum_buffer",
                 "mean_grad"):
        return g.array((f, co), dt) if param in ("param", "grad") else np.zeros((f, co), dt)
    if param in ("gamma", "beta", "moving_mean"):
        return g.array((c,), dt)
    if param == "moving_var":
        return g.rng.random(c).astype(dt) + 0.5
    if param in ("rows", "cols"):
        size, count = (h, geo["oh"]) if param == "rows" else (w, geo["ow"])
        return g.rng.integers(-1, size, (n, count)).astype(np.int32)
    if param == "coords":
        return g.rng.integers(-10, 10, g.int(0, 8))
    if param in ("size", "k"):
        return g.int(1, k)
    if param == "step":
        return g.int(1, 100)
    if param == "n_threads":
        return g.int(1, 3)
    if param == "name":
        return g.choice(activation.ACTIVATIONS) if fn_name.startswith("activation") else "kernel_size"
    if param == "metric":
        return g.choice(["l1", "l2"])
    if param == "fill_mode":
        return g.choice(["constant", "nearest", "reflect", "wrap"])
    if param in ("rate", "momentum", "beta_1", "rho"):
        return float(g.rng.random() * 0.9)
    if param in ("beta_2",):
        return 0.999
    if param in ("epsilon",):
        return 1e-7
    if param in ("learning_rate", "grad_scale", "alpha", "fill_value"):
        return float(g.rng.random())
    if param in ("relu", "nesterov", "centered", "need_dx", "batch_stats", "from_logits",
                 "batch_axis", "zero"):
        return g.chance(0.5)
    if param == "input_hw":
        return (h, w)
    if param == "x_shape":
        return image
    if param == "shape":
        return image
    if param == "ndim":
        return 4
    if param == "dtype":
        return dt
    return g.array(image, dt)


def op_call(g):
    import importlib
    from fastcnn._ops import checks
    modules = [importlib.import_module(f"fastcnn._ops.{m}") for m in OPS_MODULES]
    functions = sorted([(name, fn) for module in modules for name, fn in vars(module).items()
                        if inspect.isfunction(fn) and not name.startswith("_")
                        and fn.__module__ == module.__name__]
                       + [(name, getattr(checks, name)) for name in API_CHECKS])
    name, fn = g.choice(functions)
    geo = geometry(g)
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    args = {p.name: op_argument(g, name, p.name, geo) for p in params
            if p.default is p.empty or g.chance(0.5)}
    # n_threads stays valid: every count up to MAX_THREADS is accepted (as by set_num_threads),
    # and libgomp aborts when the child's memory limit cannot hold that many thread stacks.
    keys = sorted(k for k in args if k != "n_threads")
    for _ in range(min(len(keys), g.choice([0, 0, 1, 1, 2]))):
        key = keys.pop(g.int(0, len(keys) - 1))
        args[key] = g.mutate(args[key])
    return call_text(f"{fn.__module__}.{name}", kwargs=args), lambda: fn(**args)


# ---- layers --------------------------------------------------------------------------------

def layer_classes():
    from fastcnn import layers
    from fastcnn.layers.base import Layer
    return sorted({cls for cls in vars(layers).values()
                   if isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer},
                  key=lambda cls: cls.__name__)


def layer_kwargs(g, cls, valid=True):
    """Constructor arguments: required ones guessed by name, optional ones sometimes set."""
    from fastcnn._ops import activation
    guesses = {"filters": lambda: g.int(1, 6), "units": lambda: g.int(1, 6),
               "kernel_size": lambda: g.choice([g.int(1, 3), (g.int(1, 3), g.int(1, 3))]),
               "pool_size": lambda: g.choice([2, (g.int(1, 3), g.int(1, 3))]),
               "strides": lambda: g.choice([None, 1, 2, (g.int(1, 2), g.int(1, 2))]),
               "rate": lambda: float(g.rng.random() * 0.9), "activation": lambda: g.choice(
                   [None, *activation.ACTIVATIONS]), "padding": lambda: g.choice(["valid", "same"]),
               "height_factor": lambda: float(g.rng.random() * 0.5),
               "width_factor": lambda: float(g.rng.random() * 0.5), "shape": lambda: (6, 6, 2),
               "mode": lambda: g.choice(["horizontal", "vertical", "horizontal_and_vertical"]),
               "fill_mode": lambda: g.choice(["constant", "nearest", "reflect", "wrap"]),
               "seed": lambda: g.int(0, 100), "use_bias": lambda: g.chance(0.5),
               "keepdims": lambda: g.chance(0.5), "momentum": lambda: 0.9,
               "epsilon": lambda: 1e-3}
    kwargs = {}
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is p.empty or (p.name in guesses and g.chance(0.3)):
            kwargs[p.name] = guesses.get(p.name, lambda: g.int(1, 3))()
        if p.name == "padding" and cls.__name__.startswith("ZeroPadding") and p.name in kwargs:
            kwargs[p.name] = g.int(0, 2)
    if not valid and kwargs:
        key = g.choice(sorted(kwargs))
        kwargs[key] = g.mutate(kwargs[key])
    return kwargs


def layer_call(g):
    cls = g.choice(layer_classes())
    kwargs = layer_kwargs(g, cls, valid=g.chance(0.7))
    what = g.choice(["call", "call", "call", "config", "weights", "build"])
    text = call_text(f"layers.{cls.__name__}", kwargs=kwargs)
    shape = g.choice([(g.int(1, 3), g.int(1, 8), g.int(1, 8), g.int(1, 3)), (g.int(1, 3), g.int(1, 8))])
    x = g.array(shape) if g.chance(0.8) else g.bad_array(g.array(shape))
    training = g.chance(0.5)
    build_shape = shape[1:] if g.chance(0.8) else g.mutate(shape[1:])
    mutate_weight = g.chance(0.7)

    def run():
        layer = cls(**kwargs)
        if what == "config":
            type(layer).from_config(layer.get_config())
        elif what == "build":
            layer.build(build_shape)
        else:
            layer(x, training=training)
        if what == "weights":
            weights = layer.get_weights()
            if weights and mutate_weight:
                i = g.int(0, len(weights) - 1)
                weights[i] = g.mutate(weights[i])
            layer.set_weights(weights)
            layer(x)

    if what == "build":
        return f"{text}.build({describe(build_shape)})", run
    detail = ", then set_weights with one mutated" if what == "weights" and mutate_weight else ""
    return f"{text}.{what}(x={describe(x)}, training={training}){detail}", run


# ---- models --------------------------------------------------------------------------------

def random_stack(g):
    """0 to 3 mostly valid layers for NHWC inputs (the model adds Flatten and a Dense head)."""
    from fastcnn import layers
    stack = []
    for _ in range(g.int(0, 3)):
        kind = g.choice(["conv", "pool", "dropout", "activation", "batchnorm", "other"])
        if kind == "conv":
            stack.append(layers.Conv2D(g.int(1, 4), g.int(1, 3), padding=g.choice(["valid", "same"]),
                                       activation=g.choice([None, "relu", "tanh"])))
        elif kind == "pool":
            stack.append(g.choice([layers.MaxPooling2D, layers.AveragePooling2D])(
                g.int(1, 2), padding=g.choice(["valid", "same"])))
        elif kind == "dropout":
            stack.append(layers.Dropout(float(g.rng.random() * 0.5)))
        elif kind == "activation":
            stack.append(layers.Activation(g.choice(["relu", "sigmoid", "tanh", "linear"])))
        elif kind == "batchnorm":
            stack.append(layers.BatchNormalization())
        else:
            cls = g.choice([cls for cls in layer_classes() if cls.__name__ != "InputLayer"])
            with contextlib.suppress(ValueError, TypeError):
                stack.append(cls(**layer_kwargs(g, cls)))
    return stack


SPARSE_LOSSES = ("sparse_categorical_crossentropy", "multiclass_hinge")


def targets(g, loss, n, k):
    if loss in SPARSE_LOSSES:
        return g.labels(n, k) if g.chance(0.9) else g.labels(n, k)[:, None]
    if loss == "binary_crossentropy":
        return (g.rng.random((n, k)) > 0.5).astype(np.float32)
    if loss in ("mean_squared_error", "mse"):
        return g.array((n, k))
    return np.eye(k, dtype=np.float32)[g.labels(n, k)]


def fit_kwargs(g, x, y):
    from fastcnn import callbacks
    kwargs = {"verbose": 0, "batch_size": g.int(1, 8), "epochs": g.int(1, 2),
              "shuffle": g.chance(0.5)}
    if g.chance(0.3):
        kwargs["validation_split"] = float(g.choice([0.0, 0.25, 0.5]))
    if g.chance(0.2):
        half = max(1, len(x) // 2)
        kwargs["validation_data"] = (x[:half], y[:half])
    if g.chance(0.3):
        kwargs["callbacks"] = [g.choice([
            lambda: callbacks.EarlyStopping(monitor="loss", patience=0),
            lambda: callbacks.TerminateOnNaN(), lambda: callbacks.History(),
            lambda: callbacks.ReduceLROnPlateau(monitor="loss", patience=0),
            lambda: callbacks.CSVLogger(os.path.join(g.tmpdir, "log.csv"))])()]
    return kwargs


def model_call(g):
    """One method of a small random Sequential model. Every random choice is drawn here, before
    the description, so the description says everything the call does."""
    import fastcnn
    from fastcnn import layers, losses, optimizers
    n, k = g.int(1, 12), g.int(1, 4)
    input_shape = (g.int(4, 9), g.int(4, 9), g.int(1, 3))
    loss = g.choice(sorted(losses.LOSSES)) if g.chance(0.95) else g.choice(["bogus", None, 3])
    if k == 1 and loss in ("categorical_crossentropy", "categorical_hinge", *SPARSE_LOSSES) \
            and g.chance(0.8):
        k = 2
    optimizer = g.choice(sorted(optimizers.OPTIMIZERS)) if g.chance(0.95) else "bogus"
    metrics = ["accuracy"] if g.chance(0.6) else None if g.chance(0.7) else g.choice(["accuracy", ["bogus"]])
    head_activation = g.choice(["softmax", "sigmoid", None])
    declared = g.chance(0.8)
    method = g.choice(["fit", "fit", "fit", "evaluate", "predict", "call", "summary",
                       "weights", "config", "save", "build", "add"])
    x = g.array((n, *input_shape))
    y = targets(g, loss, n, k)
    kwargs = {"verbose": 0}
    if method == "fit":
        kwargs = fit_kwargs(g, x, y)
    elif method in ("evaluate", "predict"):
        kwargs["batch_size"] = g.int(1, 8)
    if g.chance(0.5):
        mutated = g.choice(["x", "y"] + [key for key in kwargs if key != "verbose"])
        if mutated == "x":
            x = g.bad_array(x)
        elif mutated == "y":
            y = g.bad_array(y)
        elif mutated == "epochs":  # a valid but vast epoch count is a long run, not a bug
            kwargs[mutated] = g.choice([0, -1, 1.5, "2", None, True, -2**63])
        else:
            kwargs[mutated] = g.mutate(kwargs[mutated])
    clean_x = g.array((n, *input_shape))
    variant = {"weights": lambda: g.choice(["mutate one", "drop the last", "as they are"]),
               "config": lambda: g.choice(["as it is", "layers reversed"]),
               "save": lambda: g.choice(["intact", "truncate", "garbage", "flip", "empty"]),
               "build": lambda: g.choice([(None, *input_shape), (None, 0, 3, 1), (None, -1, 4), 5,
                                          (None,), (None, 4, 4, 2**31)]),
               "add": lambda: g.choice([layers.Dense(2), layers.Conv2D(2, 3), layers.Flatten(),
                                        fastcnn.Input(shape=(3, 3, 1)), "not a layer", None]),
               }.get(method, lambda: None)()
    stack = random_stack(g)
    head = [layers.Flatten(), layers.Dense(k, activation=head_activation)]
    text = (f"Sequential(input={input_shape if declared else None}, "
            f"{[type(layer).__name__ for layer in stack]} + Flatten, Dense({k}, "
            f"{head_activation!r})).compile({optimizer!r}, {loss!r}, metrics={metrics!r}).{method}"
            f"(x={describe(x)}, y={describe(y)}, {describe(kwargs)}, variant={describe(variant)})")

    def run():
        model = fastcnn.Sequential(([fastcnn.Input(shape=input_shape)] if declared else [])
                                   + stack + head)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        if method == "fit":
            model.fit(x, y, **kwargs)
            model.predict(clean_x, verbose=0)
        elif method == "evaluate":
            model.evaluate(x, y, **kwargs)
        elif method == "predict":
            model.predict(x, **kwargs)
        elif method == "call":
            model(x)
        elif method == "summary":
            model.summary(print_fn=lambda *args, **kw: None)
        elif method == "weights":
            model.build((None, *input_shape))
            weights = model.get_weights()
            if variant == "mutate one" and weights:
                i = g.int(0, len(weights) - 1)
                weights[i] = g.mutate(weights[i])
            elif variant == "drop the last":
                weights = weights[:-1]
            model.set_weights(weights)
            model.predict(clean_x, verbose=0)
        elif method == "config":
            config = model.get_config()
            if variant == "layers reversed":
                config = {**config, "layers": config["layers"][::-1]}
            type(model).from_config(config).predict(x, verbose=0)
        elif method == "save":
            save_and_load(g, model, x, y, variant)
        elif method == "build":
            model.build(variant)
        elif method == "add":
            model.add(variant)
            model.predict(x, verbose=0)

    return text, run


def save_and_load(g, model, x, y, damage):
    """Fit, save, damage the file as ``damage`` says, load it back and use it."""
    import fastcnn
    path = os.path.join(g.tmpdir, f"model{g.int(0, 10**9)}.keras")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(path)
    if damage != "intact":
        data = bytearray(open(path, "rb").read())
        if damage == "truncate":
            data = data[: g.int(0, len(data) - 1)]
        elif damage == "garbage":
            data = bytearray(g.rng.integers(0, 256, g.int(0, 2000), dtype=np.uint8).tobytes())
        elif damage == "flip" and data:
            for _ in range(g.int(1, 20)):
                data[g.int(0, len(data) - 1)] ^= 1 << g.int(0, 7)
        else:
            data = bytearray()
        open(path, "wb").write(bytes(data))
    loaded = fastcnn.models.load_model(path)
    loaded.predict(x, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)


def misc_call(g):
    import fastcnn
    from fastcnn import utils
    what = g.choice(["threads", "to_categorical", "seed"])
    if what == "threads":
        # |n| <= 64: libgomp itself segfaults starting a team of tens of thousands of threads
        n = g.choice([1, 2, -1, 0, 3.5, "2", True, None, g.int(-64, 64)])
        return f"set_num_threads({n!r})", lambda: fastcnn.set_num_threads(n)
    if what == "to_categorical":
        y = g.choice([g.labels(5, 3), g.array((4,)), g.labels(3, 3) - 5, np.array(["a"]),
                      np.array([]), g.labels(4, 3)[:, None]])
        k = g.choice([None, 3, 0, -1, 2])
        return f"to_categorical({describe(y)}, {k!r})", lambda: utils.to_categorical(y, k)
    seed = g.choice([0, -1, 2**70, 1.5, "1", None, 12345])
    return f"set_random_seed({seed!r})", lambda: utils.set_random_seed(seed)


def crash_call(g):
    """The fuzzer's check of itself (--only crash_call): a third of these calls segfault."""
    if g.int(0, 2) == 0:
        return "ctypes.string_at(0)", lambda: ctypes.string_at(0)
    return "int(1)", lambda: int(1)


TARGETS = [(op_call, 0.45), (layer_call, 0.25), (model_call, 0.25), (misc_call, 0.05)]
BUILDERS = {builder.__name__: builder for builder in (op_call, layer_call, model_call, misc_call,
                                                      crash_call)}


def make_call(seed, index, tmpdir, only=None):
    g = Gen(seed, index, tmpdir)
    if only:
        return BUILDERS[only](g)
    builders, weights = zip(*TARGETS)
    builder = builders[int(g.rng.choice(len(builders), p=np.array(weights) / sum(weights)))]
    return builder(g)


# ---- running and classifying ---------------------------------------------------------------

FASTCNN_DIR = os.path.join(ROOT, "fastcnn")


def classify(exc):
    """(outcome, where): where is the innermost frame inside fastcnn (or the fuzzer's own)."""
    frames = traceback.extract_tb(exc.__traceback__)
    # Cython frames name their .pyx relative to where it was compiled: fastcnn/_ext/conv.pyx
    inside = [f for f in frames if f.filename.startswith((FASTCNN_DIR, "fastcnn/"))]
    kernel = bool(inside) and inside[-1].filename.endswith(".pyx")
    last = inside[-1] if inside else frames[-1]
    where = f"{os.path.relpath(last.filename, ROOT)}:{last.lineno}"
    if isinstance(exc, MemoryError):
        return "memory", where
    acceptable = isinstance(exc, (ValueError, TypeError, OSError)) or (
        type(exc) is RuntimeError and str(exc))
    if not inside:
        return ("acceptable" if acceptable else "fuzzer-bug"), where
    if acceptable:
        return ("kernel-level" if kernel else "acceptable"), where
    return "internal", where


def child(seed, start, stop, log_path, only):
    # Under AddressSanitizer (scripts/asan.sh) the shadow memory needs terabytes of address
    # space, so the limit is left to ASan's own max_allocation_size_mb.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    warnings.simplefilter("ignore")
    sys.path.insert(0, ROOT)
    import fastcnn  # noqa: F401  (imported before the first call is timed)
    with open(log_path, "a") as log, tempfile.TemporaryDirectory() as tmpdir:
        for i in range(start, stop):
            try:
                text, run = make_call(seed, i, tmpdir, only)
            except Exception as exc:  # a bug in the fuzzer's own argument making
                text, run = f"<making call {i}>", None
                outcome, where, error = "fuzzer-bug", os.path.relpath(__file__, ROOT), repr(exc)[:300]
            log.write(json.dumps({"i": i, "call": text}) + "\n")
            log.flush()
            if run is not None:
                outcome, where, error = "ok", "", ""
                try:
                    run()
                except BaseException as exc:  # noqa: B902 - every Python-level exit is an outcome
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    outcome, where = classify(exc)
                    error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.write(json.dumps({"i": i, "outcome": outcome, "where": where, "error": error}) + "\n")
            log.flush()
            for name in os.listdir(tmpdir):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(tmpdir, name))


def read_log(path):
    calls, outcomes = {}, {}
    with open(path) as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                (outcomes if "outcome" in entry else calls)[entry["i"]] = entry
    return calls, outcomes


def run(calls, seed=0, per_child=1000, only=None, stream=None):
    """Make ``calls`` fuzz calls in child processes (all kinds, or the ``only`` builder); returns
    the report as a dict."""
    stream = stream or sys.stdout
    report = {"calls": 0, "seed": seed, "counts": collections.Counter(), "crashes": [],
              "findings": collections.defaultdict(list)}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        log_path, err_path = os.path.join(tmp, "fuzz.log"), os.path.join(tmp, "stderr")
        next_call = 0
        while next_call < calls:
            stop = min(calls, next_call + per_child)
            open(log_path, "w").close()
            command = [sys.executable, os.path.abspath(__file__), "--child", "--seed", str(seed),
                       "--start", str(next_call), "--stop", str(stop), "--log", log_path]
            command += ["--only", only] if only else []
            with open(err_path, "wb") as err:  # a file, not a pipe: a chatty child never blocks
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err,
                                        env={**os.environ, "PYTHONPATH": ROOT})
                status = watch(proc, log_path)
            stderr = open(err_path, errors="replace").read()
            logged, outcomes = read_log(log_path)
            for i, entry in sorted(outcomes.items()):
                report["counts"][entry["outcome"]] += 1
                if entry["outcome"] not in ("ok", "acceptable"):
                    report["findings"][(entry["outcome"], entry["where"], entry["error"].split(":")[0])] \
                        .append((i, logged[i]["call"], entry["error"]))
            report["calls"] += len(outcomes)
            unfinished = sorted(set(logged) - set(outcomes))
            if status != 0 or unfinished:
                culprit = unfinished[0] if unfinished else None
                if culprit is not None:
                    call = logged[culprit]["call"]
                elif outcomes:  # e.g. heap corruption from an earlier call, caught at exit
                    call = f"<after call {max(outcomes)} returned: a delayed crash>"
                else:
                    call = "<before any call: the child did not start>"
                report["crashes"].append({"i": culprit, "status": status, "call": call,
                                          "stderr": stderr[-2000:]})
                report["calls"] += culprit is not None
                if culprit is None and not outcomes:
                    break  # restarting would only fail the same way
                next_call = stop if culprit is None else culprit + 1
            else:
                next_call = stop
            stream.write(f"  {report['calls']} calls, {len(report['crashes'])} crashes, "
                         f"{time.time() - started:.0f} s\n")
            stream.flush()
    report["seconds"] = time.time() - started
    return report


def watch(proc, log_path):
    """Wait for a child; kill it when its log makes no progress. The exit status, or 'hang'."""
    last_size, last_change = -1, time.time()
    while proc.poll() is None:
        size = os.path.getsize(log_path)
        if size != last_size:
            last_size, last_change = size, time.time()
        elif time.time() - last_change > SECONDS_PER_CALL:
            proc.kill()
            proc.wait()
            return "hang"
        time.sleep(0.05)
    return proc.returncode


def signal_name(status):
    import signal
    if isinstance(status, int) and status < 0:
        return signal.Signals(-status).name
    return str(status)


def format_report(report):
    counts = report["counts"]
    lines = [f"fuzz: {report['calls']} calls (seed {report['seed']}) in {report['seconds']:.0f} s",
             f"  crashes (killed by a signal, or hung): {len(report['crashes'])}",
             f"  internal errors: {counts['internal']}",
             f"  kernel-level rejections (the ops room let them through): {counts['kernel-level']}",
             f"  memory errors: {counts['memory']}",
             f"  fuzzer bugs: {counts['fuzzer-bug']}",
             f"  clean results: {counts['ok']}, refused with ValueError/TypeError: "
             f"{counts['acceptable']}"]
    for crash in report["crashes"]:
        lines.append(f"CRASH ({signal_name(crash['status'])}) at call {crash['i']}: {crash['call']}")
        if crash["stderr"].strip():
            lines.append("  stderr: " + crash["stderr"].strip().splitlines()[-1])
    for (outcome, where, kind), hits in sorted(report["findings"].items()):
        i, call, error = hits[0]
        lines.append(f"{outcome.upper()} x{len(hits)} {kind} at {where}\n  e.g. call {i}: {call}\n"
                     f"  -> {error}")
    return "\n".join(lines)


def replay(seed, index, only):
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmpdir:
        text, call = make_call(seed, index, tmpdir, only)
        print(f"call {index}: {text}", flush=True)
        call()
        print("returned normally")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-child", type=int, default=1000)
    parser.add_argument("--replay", type=int)
    parser.add_argument("--only", choices=sorted(BUILDERS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.seed, args.start, args.stop, args.log, args.only)
    elif args.replay is not None:
        replay(args.seed, args.replay, args.only)
    else:
        report = run(args.calls, args.seed, args.per_child, args.only)
        print(format_report(report))
        sys.exit(1 if report["crashes"] or report["counts"]["internal"] else 0)


if __name__ == "__main__":
    main()

"""Weight initialisers with Keras 3's names, arguments and formulas.

An initializer is an object, ``init(shape, dtype=None)`` -> array, or its name ("he_normal").
A seeded one (``HeNormal(seed=1)``) gives the same values on every call, as in Keras 3. An
unseeded one draws from fastcnn's generator, which ``utils.set_random_seed`` seeds, so that a
whole model's weights are reproducible and two layers given the same unseeded instance still
get different weights (Keras 3 would repeat the values of an unseeded instance).

Layers keep what they were given as a JSON-friendly identifier (``validate``): a name, or the
config of an initializer object, which is read again when the weight is made.
"""
import math
import numbers

import numpy as np

from . import random as fc_random
from . import serialization
from .arguments import finite_float, short_tuple
from .serialization import Configurable

TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _fans(shape):
    """Keras's fan-in/fan-out: conv kernels (kh, kw, in, out) count the receptive field; a
    scalar counts 1. (The variance scaling below divides by at least 1, as Keras does, so that
    an empty weight is no division by zero.)"""
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(shape, mean, stddev, rng):
    """Normal samples of ``stddev`` redrawn until within two of it from the mean, as Keras's."""
    out = rng.normal(0.0, stddev, shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out + mean if mean else out


def _number(value, name, minimum=None, positive=False):
    number = finite_float(value)
    if number is None or (minimum is not None and number < minimum) or (positive and number <= 0):
        bound = " > 0" if positive else (f" >= {minimum}" if minimum is not None else "")
        raise ValueError(f"Expected {name} to be a finite number{bound}, received "
                         f"{name}={value!r:.200}")
    return number


class Initializer(Configurable):
    """Base class: ``__call__(shape, dtype=None)`` returns the initial values (float32 by
    default); ``get_config`` the constructor's arguments."""

    def __call__(self, shape, dtype=None):
        shape = tuple(int(d) for d in shape)
        return np.asarray(self._values(shape), dtype=np.dtype(dtype or np.float32), order="C")

    def _values(self, shape):
        raise NotImplementedError(f"{type(self).__name__} defines no values")

    def get_config(self):
        return {}


class RandomInitializer(Initializer):
    """An initializer that draws: from its own seed on each call, or from fastcnn's generator."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError(f"Expected seed to be None or an int >= 0, received seed={seed!r}")
        self.seed = None if seed is None else int(seed)

    def _rng(self):
        return fc_random.generator() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = _number(value, "value")

    def _values(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class Zeros(Initializer):
    def _values(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def _values(self, shape):
        return np.ones(shape)


class RandomNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = _number(mean, "mean"), _number(stddev, "stddev", 0)

    def _values(self, shape):
        return self._rng().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    """A normal of ``stddev`` cut at two of it from the mean (so the samples' spread is about
    0.88 stddev), as Keras's."""

    def _values(self, shape):
        return _truncated_normal(shape, self.mean, self.stddev, self._rng())


class RandomUniform(RandomInitializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = _number(minval, "minval"), _number(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"Expected minval <= maxval, received minval={minval!r} and "
                             f"maxval={maxval!r}")

    def _values(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class VarianceScaling(RandomInitializer):
    """Keras's variance scaling: values of variance scale / n, n the fan-in, fan-out or their
    mean (``mode``), from a truncated normal (rescaled so that its std is the target), a normal
    ("untruncated_normal") or a uniform distribution."""

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = _number(scale, "scale", positive=True)
        if mode not in self.MODES:
            raise ValueError(f"Expected mode to be one of {self.MODES}, received mode={mode!r}")
        if distribution == "normal":  # Keras's older name
            distribution = "truncated_normal"
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"Expected distribution to be one of {self.DISTRIBUTIONS}, received "
                             f"distribution={distribution!r}")
        self.mode, self.distribution = mode, distribution

    def _values(self, shape):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        if self.distribution == "uniform":
            limit = math.sqrt(3 * self.scale / max(1.0, n))
            return self._rng().uniform(-limit, limit, shape)
        variance = self.scale / max(1.0, n)
        if self.distribution == "untruncated_normal":
            return self._rng().normal(0.0, math.sqrt(variance), shape)
        return _truncated_normal(shape, 0.0, math.sqrt(variance) / TRUNCATED_STD, self._rng())

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


def _variance_scaling(name, scale, mode, distribution):
    """Keras's named variance scalings, whose only argument is the seed."""
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    doc = f"VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})."
    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc})


GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")


class Orthogonal(RandomInitializer):
    """Keras's orthogonal matrix: the weight seen as (product of the leading axes, last axis)
    has orthonormal rows or columns (whichever are fewer), times ``gain``: the Q of the QR
    decomposition of a normal matrix, its signs fixed by R's diagonal."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _number(gain, "gain")

    def _values(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Expected a shape of rank >= 2 for Orthogonal, received {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    """``gain`` times the identity matrix (ones on the diagonal of a 2-D weight)."""

    def __init__(self, gain=1.0):
        self.gain = _number(gain, "gain")

    def _values(self, shape):
        if len(shape) != 2:
            raise ValueError(f"Expected a 2-D shape for Identity, received {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


CLASSES = (Constant, GlorotNormal, GlorotUniform, HeNormal, HeUniform, Identity, LecunNormal,
           LecunUniform, Ones, Orthogonal, RandomNormal, RandomUniform, TruncatedNormal,
           VarianceScaling, Zeros)
for _cls in CLASSES:
    serialization.register_builtin(_cls)

# Keras's names: snake_case and class names, and its short aliases.
INITIALIZERS = {"constant": Constant, "glorot_normal": GlorotNormal,
                "glorot_uniform": GlorotUniform, "he_normal": HeNormal, "he_uniform": HeUniform,
                "identity": Identity, "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform,
                "ones": Ones, "orthogonal": Orthogonal, "random_normal": RandomNormal,
                "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
                "variance_scaling": VarianceScaling, "zeros": Zeros}
ALIASES = {**{cls.__name__: cls for cls in CLASSES}, "normal": RandomNormal,
           "uniform": RandomUniform, "one": Ones, "zero": Zeros}
NAMES = {**INITIALIZERS, **ALIASES}  # every name get() accepts


def serialize(initializer):
    """A name stays a name; an Initializer becomes {"class_name": ..., "config": {...}}."""
    if isinstance(initializer, str):
        return initializer
    return serialization.serialize(initializer)


def deserialize(config):
    return serialization.deserialize(config)


def get(identifier):
    """An Initializer from a name, an instance or a ``serialize`` config; any other callable is
    returned as it is and called as Keras calls it, ``fn(shape, dtype=...)``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str) and identifier in NAMES:
        return NAMES[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in ALIASES:
        return deserialize(identifier)
    if callable(identifier) and not isinstance(identifier, type):
        return identifier
    raise ValueError(f"Unknown initializer {identifier!r:.200}; expected one of "
                     f"{sorted(INITIALIZERS)}, an Initializer or a callable")


def validate(identifier):
    """Fail at construction, not at build, on an unknown initializer; returns what a layer
    keeps: the name, an Initializer's config, or the callable."""
    initializer = get(identifier)
    if isinstance(identifier, (str, dict)) or not isinstance(initializer, Initializer):
        return identifier
    return serialize(initializer)


def initialize(identifier, shape, dtype=np.float32):
    values = get(identifier)(short_tuple(shape, "shape"), dtype=dtype)
    return np.asarray(values, dtype=dtype, order="C")

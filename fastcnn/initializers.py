"""Weight initialisers with Keras's names and formulas, drawing from fastcnn's seeded RNG."""
import numpy as np

from . import random as fc_random


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


def glorot_uniform(shape, rng):
    limit = np.sqrt(6.0 / max(2, sum(_fans(shape))))
    return rng.uniform(-limit, limit, shape)


def glorot_normal(shape, rng):
    return _truncated_normal(shape, np.sqrt(2.0 / max(2, sum(_fans(shape)))), rng)


def he_uniform(shape, rng):
    limit = np.sqrt(6.0 / max(1, _fans(shape)[0]))
    return rng.uniform(-limit, limit, shape)


def he_normal(shape, rng):
    return _truncated_normal(shape, np.sqrt(2.0 / max(1, _fans(shape)[0])), rng)


def random_normal(shape, rng):
    return rng.normal(0.0, 0.05, shape)


def zeros(shape, rng):
    return np.zeros(shape)


def ones(shape, rng):
    return np.ones(shape)


def _truncated_normal(shape, stddev, rng):
    """Normal samples redrawn until within two standard deviations, rescaled as Keras does."""
    stddev = stddev / 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
    out = rng.normal(0.0, stddev, shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


INITIALIZERS = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal,
                                         random_normal, zeros, ones)}


def get(name):
    if callable(name):
        return name
    if name not in INITIALIZERS:
        raise ValueError(f"Unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}")
    return INITIALIZERS[name]


def validate(name):
    """Fail at construction, not at build, on an unknown initializer; returns the name."""
    get(name)
    return name


def initialize(name, shape, dtype=np.float32):
    return np.asarray(get(name)(tuple(shape), fc_random.generator()), dtype=dtype, order="C")

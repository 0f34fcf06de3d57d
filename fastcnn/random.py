"""fastcnn's one source of randomness, so that set_random_seed makes a whole fit reproducible."""
import random as _py_random

import numpy as np

_generator = np.random.default_rng()


def generator():
    return _generator


def set_random_seed(seed):
    """Seed weight initialisation, shuffling and dropout (and Python's and NumPy's global RNGs)."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Expected seed to be a non-negative int, received seed={seed!r}")
    _generator = np.random.default_rng(int(seed))
    _py_random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def draw_seed():
    """A fresh 63-bit seed from the global generator, for objects that own their own stream."""
    return int(_generator.integers(2**63 - 1))

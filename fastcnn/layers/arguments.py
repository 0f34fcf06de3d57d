"""The checks of the constructor arguments that several layers share (sizes, strides, padding,
shapes, seeds), each raising a ValueError that names the argument."""
import numbers

import numpy as np

from .._ops.checks import window_output_shape


def normalize_tuple(value, name, allow_zero=False):
    """An int or a pair of ints -> a pair of positive ints, or a ValueError naming ``name``."""
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        pair = tuple(pair) if not hasattr(pair, "__len__") or len(pair) == 2 else None
    except TypeError:
        pair = None
    lowest = 0 if allow_zero else 1
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
            or min(pair) < lowest):
        raise ValueError(f"Expected {name} to be an int or a pair of ints >= {lowest}, "
                         f"received {name}={value!r}")
    return tuple(int(v) for v in pair)


def normalize_shape(shape, name, allow_none=False):
    """A non-empty tuple of positive ints (an int is a 1-tuple; None dims where ``allow_none``),
    or a ValueError naming ``name``."""
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    try:
        # more dims than NumPy allows is no shape, and a huge array would not fit as a tuple
        dims = tuple(dims) if not hasattr(dims, "__len__") or len(dims) <= 64 else ()
    except TypeError:
        dims = ()
    if not dims or not all((d is None and allow_none) or (isinstance(d, numbers.Integral)
                           and not isinstance(d, bool) and d > 0) for d in dims):
        kind = "positive ints or None" if allow_none else "positive ints"
        raise ValueError(f"Expected {name} to be a tuple of {kind}, received {name}={shape!r}")
    return tuple(None if d is None else int(d) for d in dims)


def window_output_hw(input_shape, window, strides, padding, name):
    """(out_height, out_width) of a sliding window over NHWC ``input_shape``; None where the
    input's size is unknown."""
    sizes = input_shape[1:3]
    known = tuple(n if n is not None else k for n, k in zip(sizes, window))
    out, _ = window_output_shape(known, window, strides, padding, name)
    return tuple(None if n is None else o for n, o in zip(sizes, out))


def normalize_seed(seed):
    """None or a non-negative int, as numpy's generators take it."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"Expected seed to be None or a non-negative int, received seed={seed!r}")
    return None if seed is None else int(seed)


def normalize_padding(padding):
    value = padding.lower() if isinstance(padding, str) else padding
    if value not in ("valid", "same"):
        raise ValueError(f'Expected padding "valid" or "same", received padding={padding!r}')
    return value

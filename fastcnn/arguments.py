"""Checks of the public API's number arguments (hyperparameters: rates, epsilons, factors)."""
import math
import numbers

from ._ops.checks import shown


def finite_float(value):
    """``value`` as a float when it is a real number (not a bool) that a float64 holds finitely;
    None otherwise: NaN, the infinities, and ints too large for a float, which compare as finite
    (10**400 < math.inf) but which float() refuses with OverflowError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def one_of(value, options, name):
    """``value`` when it is one of ``options`` (strings, None), else a ValueError naming
    ``name``. An array is one of none of them: ``in`` would compare each of its elements."""
    if any(value is option or (isinstance(value, type(option)) and value == option)
           for option in options):
        return value
    raise ValueError(f"Expected {name} to be one of {options}, received {name}={shown(value)}")


def axis_index(axis, name="axis"):
    """``axis`` as an int (not a bool) that can index an axis of an array: within NumPy's 64
    axes, counted from either end. Whether the array has that axis is its own check."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -64 <= axis < 64:
        raise ValueError(f"Expected {name} to be an int in [-64, 64), received {name}={axis!r:.200}")
    return int(axis)


def short_tuple(value, name, limit=64):
    """``value`` (a sequence: axes, repeats, a pair) as a tuple of at most ``limit`` items (NumPy's
    64 axes by default), its length checked before it is iterated: an array of billions of rows
    would otherwise be unpacked row by row."""
    try:
        length = len(value)
    except TypeError:
        raise TypeError(f"Expected {name} to be a sequence, received "
                        f"{name}={shown(value)}") from None
    if length > limit:
        raise ValueError(f"Expected {name} to hold at most {limit} items, received {length}")
    return tuple(value)

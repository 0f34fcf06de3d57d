"""Checks of the public API's number arguments (hyperparameters: rates, epsilons, factors)."""
import numbers

from ._ops.checks import choice_arg as one_of, finite_float, shown  # noqa: F401 (re-exported)


def non_negative_float(value, name):
    """``value`` as a float, refused unless it is a finite number >= 0 (a penalty factor, a
    norm bound)."""
    if finite_float(value) is None or value < 0:
        raise ValueError(f"Expected {name} to be a finite number >= 0, received {name}={value!r}")
    return float(value)


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

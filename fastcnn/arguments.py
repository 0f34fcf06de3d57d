"""Checks of the public API's number arguments (hyperparameters: rates, epsilons, factors)."""
import math
import numbers


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

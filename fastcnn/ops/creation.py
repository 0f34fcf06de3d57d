"""Arrays made from sizes alone (no tensor to trace): NumPy's, with Keras's default dtype,
float32, where NumPy's would be float64."""
import numpy as np

from .core import recordable

FLOATX = "float32"


@recordable
def zeros(shape, dtype=None):
    return np.zeros(shape, dtype or FLOATX)


@recordable
def ones(shape, dtype=None):
    return np.ones(shape, dtype or FLOATX)


@recordable
def full(shape, fill_value, dtype=None):
    return np.full(shape, fill_value, dtype or np.asarray(fill_value).dtype)


@recordable
def eye(N, M=None, k=0, dtype=None):
    return np.eye(N, M, k, dtype=dtype or FLOATX)


@recordable
def arange(start, stop=None, step=1, dtype=None):
    """Keras's arange: int32 for int arguments, float32 for float ones, unless dtype says."""
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if np.ndim(value) != 0:  # NumPy would convert a whole array to find that out
            raise TypeError(f"Expected {name} to be a number, received an array of shape "
                            f"{np.shape(value)}")
    values = np.arange(start, stop, step)
    if dtype is None:
        dtype = "int32" if values.dtype.kind in "iu" else FLOATX
    return values.astype(dtype)

"""The public functions of fastcnn.ops as a saved functional model keeps them.

``recordable`` marks each public function: while it runs, the op nodes it records keep the call
(its name and arguments), and a saved model stores that call as JSON (``encode``), tensors as
positions among the node's inputs; loading calls the function again (``Replay``). It also turns
NumPy's errors on arguments it cannot index, divide by or convert into the caller's ValueError.
"""
import functools
import threading

import numpy as np

from ..engine.tensor import KerasTensor, flatten

_local = threading.local()
FUNCTIONS = {}  # "module.name" -> public function (ops.arithmetic.add: "arithmetic.add")


def recordable(fn):
    """Mark a public function of fastcnn.ops: the nodes its own op calls record keep how to
    call it again, which is how a functional model with ops is saved; and NumPy's errors on
    arguments it cannot index, divide by or convert become the caller's ValueError."""
    name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls = _local.__dict__.setdefault("calls", [])
        calls.append((name, args, kwargs))
        try:
            return fn(*args, **kwargs)
        except (IndexError, ZeroDivisionError, OverflowError, KeyError) as e:
            if len(calls) > 1:  # the outermost public call reports it
                raise
            # arguments NumPy cannot index, divide by or convert (an axis out of range, a
            # size of zero, a number too large): the caller's error
            raise ValueError(f"{fn.__name__}: invalid arguments ({type(e).__name__}: "
                             f"{e})") from None
        finally:
            calls.pop()

    FUNCTIONS[name] = wrapper
    return wrapper


class Replay:
    """A saved op call, called on its node's input tensors like a layer."""

    def __init__(self, function, args, kwargs):
        self.function, self.args, self.kwargs = function, args, kwargs

    def __call__(self, inputs, training=None):
        inputs = flatten(inputs)
        return self.function(*decode(self.args, inputs), **decode(self.kwargs, inputs))


def encode(value, inputs):
    """``value`` (an argument of a public op) as JSON; tensors as {"tensor": k}."""
    if isinstance(value, KerasTensor):
        return {"tensor": inputs[id(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [encode(v, inputs) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [encode(v, inputs) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: encode(v, inputs) for k, v in value.items()}}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"an array of dtype {value.dtype} has no JSON form")
        return {"array": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, slice):
        return {"slice": [encode(v, inputs) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, (np.dtype, type)):
        return {"dtype": np.dtype(value).name}
    raise TypeError(f"an argument {value!r:.100} has no JSON form")


def decode(value, inputs):
    if isinstance(value, list):
        return [decode(v, inputs) for v in value]
    if not isinstance(value, dict):
        return value
    if "tensor" in value:
        return inputs[value["tensor"]]
    if "tuple" in value:
        return tuple(decode(v, inputs) for v in value["tuple"])
    if "dict" in value:
        return {k: decode(v, inputs) for k, v in value["dict"].items()}
    if "array" in value:
        return np.array(value["array"], dtype=value["dtype"])
    if "slice" in value:
        return slice(*decode(value["slice"], inputs))
    if "ellipsis" in value:
        return Ellipsis
    if "dtype" in value:
        return np.dtype(value["dtype"])
    raise ValueError(f"Expected an encoded op argument, received {value!r:.100}")



def current_call():
    """The innermost public call running on this thread: (name, args, kwargs), or None."""
    calls = getattr(_local, "calls", None)
    return calls[-1] if calls else None

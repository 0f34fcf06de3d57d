"""Activations, forward beside backward: checked calls of the activation kernels, by Keras 3's
names and with the options of Keras's functions (``relu``'s negative_slope, max_value and
threshold, ``leaky_relu``'s negative_slope, ``elu``'s alpha, ``gelu``'s approximate, the axis of
``softmax`` and ``log_softmax``), and PReLU with its trained slopes.

A backward pass is given what the forward left: its output for most activations, its input for
those whose derivative the output does not determine (``backward_reads_input``).
"""
import math
import numbers

import numpy as np

from .._ext import activation as _activation
from .checks import as_kernel_array, check_apart, out_buffer, real_number
from .rows import as_rows, from_rows, rows_buffer, rows_layout
from .threads import effective_n_threads

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "silu",
               "swish", "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid",
               "hard_silu", "hard_swish", "mish", "exponential", "log_softmax")
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}  # Keras's second names of one function
# The options of Keras's activation functions, with their defaults.
OPTIONS = {
    "relu": {"negative_slope": 0.0, "max_value": None, "threshold": 0.0},
    "leaky_relu": {"negative_slope": 0.2},
    "elu": {"alpha": 1.0},
    "gelu": {"approximate": False},
    "softmax": {"axis": -1},
    "log_softmax": {"axis": -1},
}
# Keras's selu constants (Klambauer et al., 2017), to the digits Keras writes.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_ROWS = {"softmax": (_activation.softmax_forward, _activation.softmax_backward),
         "log_softmax": (_activation.log_softmax_forward, _activation.log_softmax_backward)}
_READS_INPUT = {"gelu", "silu", "hard_silu", "mish"}


def _kernel_args(name, o):
    """(kernel module name, its extra arguments) of pointwise activation ``name`` with options
    ``o``: leaky_relu, relu6 and relu with options are general_relu; selu is a scaled elu."""
    if name == "relu" and o != OPTIONS["relu"]:
        cap = math.inf if o["max_value"] is None else o["max_value"]
        return "general_relu", (o["negative_slope"], cap, o["threshold"])
    return {"leaky_relu": ("general_relu", (o.get("negative_slope"), math.inf, 0.0)),
            "relu6": ("general_relu", (0.0, 6.0, 0.0)),
            "elu": ("elu", (o.get("alpha"), 1.0)),
            "selu": ("elu", (SELU_ALPHA, SELU_SCALE)),
            "gelu": ("gelu", (o.get("approximate"),))}.get(name, (name, ()))


def _pointwise(name, options):
    """(forward kernel, backward kernel, their extra arguments) of a pointwise activation."""
    kernel, args = _kernel_args(name, options)
    return (getattr(_activation, f"{kernel}_forward"), getattr(_activation, f"{kernel}_backward"),
            args)


def canonical_name(name):
    """The activation's own name (an alias resolved), or ValueError naming the choices."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {ACTIVATIONS}")
    return ALIASES.get(name, name)


def check_options(name, options):
    """The options of activation ``name`` (canonical) with Keras's defaults filled in and their
    values checked: slopes, caps and thresholds >= 0 (the backward passes, which read the
    output, rely on it), elu's alpha >= 0 (as torch requires of an elu differentiated from its
    output), approximate a bool, axis an int or a non-empty sequence of distinct ints."""
    known = OPTIONS.get(name, {})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"Activation {name!r} takes the options {sorted(known)}, received "
                        f"unexpected {unknown}")
    merged = {**known, **options}
    for key, value in merged.items():
        if key in ("negative_slope", "threshold", "alpha"):
            merged[key] = real_number(value, key, 0)
        elif key == "max_value" and value is not None:
            merged[key] = real_number(value, key, 0)
        elif key == "approximate":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"Expected approximate to be a bool, received {value!r}")
            merged[key] = bool(value)
        elif key == "axis":
            axes = value if isinstance(value, (list, tuple)) else [value]
            if (not axes or len(set(axes)) != len(axes)
                    or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                               for a in axes)):
                raise ValueError(f"Expected axis to be an int or a non-empty sequence of "
                                 f"distinct ints, received axis={value!r}")
            merged[key] = tuple(int(a) for a in axes) if isinstance(value, (list, tuple)) \
                else int(value)
    return merged


def backward_reads_input(name):
    """Whether activation ``name``'s backward takes the forward's input rather than its
    output."""
    return canonical_name(name) in _READS_INPUT


def _row_axes(a, axis, a_name):
    """The axes a softmax or log-softmax runs over, normalised and sorted; ValueError when one
    is out of range or they hold no entry."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    if any(not -a.ndim <= ax < a.ndim for ax in axes):
        raise ValueError(f"Expected axis within the {a.ndim} axes of {a_name}, received "
                         f"axis={axis!r}")
    axes = sorted(ax % a.ndim for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"Expected distinct axes, received axis={axis!r}")
    if math.prod(a.shape[ax] for ax in axes) == 0:  # the kernel reads entry 0 of each row
        raise ValueError(f"Expected {a_name} with at least one entry on the softmax axes, "
                         f"received shape {a.shape}")
    return axes


def _run_rows(kernel, arrays, out, axes, n_threads):
    """Run a row kernel over ``axes`` of ``arrays`` into ``out``: directly when those are the
    trailing axes, else through transposed copies."""
    perm, rows, k = rows_layout(out.shape, axes)
    result = rows_buffer(out, perm, rows, k)
    kernel(*(as_rows(a, perm, rows, k) for a in arrays), result, n_threads)
    from_rows(result, perm, out)
    return out


def activation_forward(name, x, out=None, n_threads=None, **options):
    """Apply the named activation with Keras's ``options`` for it. out may be x itself."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    name = canonical_name(name)
    options = check_options(name, options)
    axes = _row_axes(x, options["axis"], "x") if name in _ROWS else None
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x}, may_equal={("out", "x")})
    if name == "linear":
        out[...] = x
    elif name in _ROWS:
        _run_rows(_ROWS[name][0], [x], out, axes, n_threads)
    else:
        forward, _, args = _pointwise(name, options)
        forward(x.reshape(-1), out.reshape(-1), *args, n_threads)
    return out


def activation_backward(name, saved, dy, out=None, n_threads=None, **options):
    """Gradient through the named activation, given what its forward left: its output, or its
    input where ``backward_reads_input(name)``. out may be saved or dy itself: each kernel reads
    an element (or a row) of both before it writes there."""
    n_threads = effective_n_threads(n_threads)
    name = canonical_name(name)
    saved_name = "x" if name in _READS_INPUT else "y"
    saved = as_kernel_array(saved, saved_name)
    options = check_options(name, options)
    axes = _row_axes(saved, options["axis"], saved_name) if name in _ROWS else None
    dy = as_kernel_array(dy, "dy", dtype=saved.dtype, shape=saved.shape)
    dx = out_buffer(out, saved.shape, saved.dtype, "out")
    check_apart({"out": dx}, {saved_name: saved, "dy": dy},
                may_equal={("out", saved_name), ("out", "dy")})
    if name == "linear":
        dx[...] = dy
    elif name in _ROWS:
        _run_rows(_ROWS[name][1], [saved, dy], dx, axes, n_threads)
    else:
        _, backward, args = _pointwise(name, options)
        backward(saved.reshape(-1), dy.reshape(-1), dx.reshape(-1), *args, n_threads)
    return dx


def _prelu_blocks(x_shape, alpha_shape):
    """(P, Q, R, S): x's axes merged into runs that share a slope (P, R: the batch and the
    shared axes) and runs that do not (Q, S), alpha being (Q, S). Axes of size 1 join either."""
    runs = [[x_shape[0], True]]  # [size, shared]; the batch shares every slope
    for size, a in zip(x_shape[1:], alpha_shape):
        shared = a == 1 and size != 1
        if size == 1 or runs[-1][1] == shared:
            runs[-1][0] *= size
        else:
            runs.append([size, shared])
    if len(runs) > 4:
        raise ValueError(f"Expected the slopes of shape {tuple(alpha_shape)} to vary along at "
                         f"most two runs of adjacent axes of the input of shape {tuple(x_shape)}")
    return tuple([r[0] for r in runs] + [1] * (4 - len(runs)))


def _prelu_operands(x, alpha):
    alpha = as_kernel_array(alpha, "alpha", dtype=x.dtype)
    if alpha.ndim != x.ndim - 1 or any(a not in (1, s) for a, s in zip(alpha.shape, x.shape[1:])):
        raise ValueError(f"Expected alpha of x's shape {x.shape[1:]} without its batch axis, "
                         f"with 1 on the shared axes, received alpha of shape {alpha.shape}")
    p, q, r, s = _prelu_blocks(x.shape, alpha.shape)
    return alpha.reshape(q, s), (p, q, r, s)


def prelu_forward(x, alpha, out=None, n_threads=None):
    """x where x > 0, else alpha * x; alpha has x's shape less the batch axis, with 1 on the
    axes its slopes are shared over. out may be x itself."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    alpha, blocks = _prelu_operands(x, alpha)
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x, "alpha": alpha}, may_equal={("out", "x")})
    _activation.prelu_forward(x.reshape(blocks), alpha, out.reshape(blocks), n_threads)
    return out


def prelu_backward(x, alpha, dy, dx=None, dalpha=None, need_dx=True, need_dalpha=True,
                   n_threads=None):
    """(dx, dalpha), the gradients of prelu_forward given its input; None for the one not
    needed. dalpha (alpha's shape) is written whole; dx may be dy itself."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    alpha_qs, blocks = _prelu_operands(x, alpha)
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=x.shape)
    dx = out_buffer(dx, x.shape, x.dtype, "dx") if need_dx else None
    dalpha = out_buffer(dalpha, np.shape(alpha), x.dtype, "dalpha") if need_dalpha else None
    check_apart({"dx": dx, "dalpha": dalpha}, {"x": x, "alpha": alpha_qs, "dy": dy},
                may_equal={("dx", "dy")})
    _activation.prelu_backward(x.reshape(blocks), alpha_qs, dy.reshape(blocks),
                               None if dx is None else dx.reshape(blocks),
                               None if dalpha is None else dalpha.reshape(alpha_qs.shape),
                               n_threads)
    return dx, dalpha

"""Argument checks shared by the wrapper modules, and the memo cache of the shape arithmetic.

The kernels index each image (and the dense kernels a whole batch) with 32-bit ints, read every
array as C-contiguous in one floating dtype and write into exact buffers: these functions refuse
or convert, before any kernel runs, whatever would break that.
"""
import functools
import math
import numbers
import os

import numpy as np

FLOATS = (np.float32, np.float64)
INDEX_LIMIT = 2**31 - 1  # kernels index one image, and the argmax, with 32-bit ints
_TooHardError = getattr(np, "exceptions", np).TooHardError  # numpy < 1.25: np.TooHardError
# Allocations below this many bytes are not checked against the available memory: reading it
# costs more than they do, and they cannot exhaust a machine fastcnn runs on.
MEMORY_CHECK_BYTES = 1 << 26


def check_array(a, name, ndim=None):
    """``a`` as an array (not copied) of real numbers and rank ``ndim`` whose samples fit the
    kernels' 32-bit indices. Checking before any copy matters: a broadcast view can be vast."""
    a = np.asarray(a)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"Expected {name} of rank {ndim}, received shape {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} to hold real numbers, received dtype {a.dtype}")
    check_index_range(a.shape, name)
    return a


def as_kernel_array(a, name, ndim=None, dtype=None, shape=None):
    """``a`` as a C-contiguous float array of rank ``ndim``, or of exactly ``shape`` (copying
    only when needed, and refusing a copy larger than the available memory)."""
    a = check_array(a, name, ndim if shape is None else len(shape))
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"Expected {name} of shape {tuple(shape)}, received {a.shape}")
    if dtype is None:
        dtype = a.dtype if a.dtype in FLOATS else np.float32
    nbytes = copy_bytes(a, dtype)
    if nbytes >= MEMORY_CHECK_BYTES:
        check_memory([(f"a C-contiguous {np.dtype(dtype)} copy of {name}", nbytes)], name)
    return np.ascontiguousarray(a, dtype=dtype)


def copy_bytes(a, dtype):
    """The bytes np.ascontiguousarray(a, dtype) allocates: 0 when it returns ``a`` itself. A
    broadcast view's copy holds every value it shows."""
    if a.dtype == dtype and a.flags.c_contiguous:
        return 0
    return a.size * np.dtype(dtype).itemsize


def available_memory():
    """Bytes the machine can still give this process: MemAvailable plus free swap where Linux
    reports them, else the physical memory; None when neither is known. Under an address-space
    limit (ulimit -v), no more than the address space left below it."""
    try:
        with open("/proc/meminfo") as f:
            info = {key: value.split() for key, value in (line.split(":", 1) for line in f)}
        available = (int(info["MemAvailable"][0]) + int(info.get("SwapFree", ["0"])[0])) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            available = None
    left = _address_space_left()
    return left if available is None else available if left is None else min(available, left)


def _address_space_left():
    """Bytes of address space left below this process's RLIMIT_AS, or None without one."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        return max(0, limit - used)
    except (ImportError, OSError, StopIteration, ValueError, IndexError):
        return None


def _size_text(nbytes):
    if nbytes >= 1024**5:  # beyond any machine, and maybe beyond a float
        return "over 1024 TiB"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def check_memory(needs, name):
    """Refuse, before any of it is allocated, memory the machine does not have: ``needs`` lists
    (what, bytes) of the allocations that data ``name`` calls for."""
    total = sum(nbytes for _, nbytes in needs)
    if total < MEMORY_CHECK_BYTES:
        return
    available = available_memory()
    if available is not None and total > available:
        parts = " and ".join(f"{what} ({_size_text(nbytes)})" for what, nbytes in needs if nbytes)
        raise ValueError(f"Expected {name} to fit in memory: {parts} would need "
                         f"{_size_text(total)}, more than the {_size_text(available)} available")


def out_buffer(out, shape, dtype, name):
    """``out``, or a new buffer when it is None. The kernel writes into it, so it is never
    copied: anything but the exact buffer is refused."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"Expected {name} to be a numpy array or None, received {type(out).__name__}")
    if (out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous
            or not out.flags.writeable):
        raise ValueError(f"Expected {name} to be a writeable C-contiguous array of shape "
                         f"{tuple(shape)} and dtype {np.dtype(dtype)}, received shape {out.shape}, "
                         f"dtype {out.dtype}, C-contiguous={out.flags.c_contiguous}, "
                         f"writeable={out.flags.writeable}")
    return out


def check_apart(outputs, inputs, may_equal=()):
    """Refuse overlapping buffers: each of ``outputs`` (name -> an array the kernel writes, or
    None) must share no memory with any of ``inputs`` (name -> an array it reads, or None) or
    with another output, since the kernel would read values it has already overwritten.
    ``may_equal`` holds the (output, input) name pairs of a kernel that works in place: that
    input may be that output itself, element for element (the same start and size of a
    C-contiguous buffer), but may not overlap it otherwise."""
    seen = [(name, a) for name, a in inputs.items() if a is not None]
    for out_name, out in outputs.items():
        if out is None:
            continue
        for name, a in seen:
            # The bounds test is cheap and exact for contiguous arrays; shares_memory settles
            # strided ones (a broadcast index map).
            if not np.may_share_memory(out, a) or not _overlap(out, a):
                continue
            if ((out_name, name) in may_equal and a.size == out.size and a.dtype == out.dtype
                    and a.__array_interface__["data"][0] == out.__array_interface__["data"][0]):
                continue
            same = " other than as the very same array" if (out_name, name) in may_equal else ""
            raise ValueError(f"Expected {out_name} not to overlap {name}{same}: the kernel would "
                             f"read values of {name} it has already overwritten; received arrays "
                             f"that share memory")
        seen.append((out_name, out))


def _overlap(a, b):
    try:
        return np.shares_memory(a, b, max_work=10**6)
    except _TooHardError:  # strides too intricate to tell: assume the worst
        return True


def in_place(a, name):
    """An array a kernel updates in place (a parameter and its optimizer state)."""
    if not isinstance(a, np.ndarray) or a.dtype not in FLOATS:
        raise TypeError(f"Expected {name} to be a float32 or float64 array, received "
                        f"{getattr(a, 'dtype', type(a).__name__)}")
    return out_buffer(a, a.shape, a.dtype, name)


def check_index_range(shape, name, batch_axis=True):
    """Refuse a shape beyond the kernels' 32-bit indices: each sample (the axes after the first)
    must fit, or with ``batch_axis=False`` the whole array (the dense kernels index a batch)."""
    if math.prod(shape[1:] if batch_axis else shape) > INDEX_LIMIT:
        scope = "per sample" if batch_axis else "in all"
        raise ValueError(f"Expected {name} with at most {INDEX_LIMIT} values {scope}, the limit "
                         f"of the kernels' 32-bit indices; received shape {tuple(shape)}")


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


def real_number(value, name, minimum=None):
    """``value`` as a finite float (not a bool), at least ``minimum`` if given, or a ValueError
    naming ``name``."""
    number = finite_float(value)
    if number is None:
        raise ValueError(f"Expected {name} to be a finite number, received {name}={shown(value)}")
    if minimum is not None and number < minimum:
        raise ValueError(f"Expected {name} >= {minimum}, received {name}={value!r}")
    return number


def shown(value, width=200):
    """``value``'s repr for an error message, cut to ``width`` characters; an int too long for
    Python to print (past its 4300-digit limit) by its size."""
    if isinstance(value, int) and value.bit_length() > 4096:
        return f"<an int of {value.bit_length()} bits>"
    return repr(value)[:width]


def distinct_view(a):
    """``a`` with each axis it is broadcast along (stride 0) cut to length 1: the same values,
    so that a check of them reads each stored element once, not each position of the view."""
    return a[tuple(slice(0, 1) if stride == 0 and size else slice(None)
                   for stride, size in zip(a.strides, a.shape))]


def choice_arg(value, choices, name):
    """``value`` when it is one of ``choices`` (strings, None), else a ValueError naming ``name``.
    An array is one of none of them: ``in`` would compare each of its elements."""
    if not (isinstance(value, str) or value is None) or value not in choices:
        raise ValueError(f"Expected {name} in {choices}, received {name}={shown(value)}")
    return value


def flag(value, name):
    """``value`` as a bool when it is one (Python's or NumPy's), else a TypeError naming
    ``name``: a kernel's bint would take any object's truth, and an array's is ambiguous."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Expected {name} to be a bool, received {name}={shown(value)}")
    return bool(value)


def epilogue_activation(relu, relu6):
    """The activation flag of the conv and depthwise forward kernels from their wrappers' two
    bools: 0 none, 1 relu, 2 relu capped at 6 (``relu6``, which implies the relu)."""
    return 2 if flag(relu6, "relu6") else int(flag(relu, "relu"))


def positive_int(value, name):
    """``value`` as an int >= 1 (not a bool), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Expected {name} to be a positive int, received {name}={value!r}")
    return int(value)


def shape_arg(shape, name, ndim):
    """``shape`` as a tuple of ``ndim`` non-negative ints."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"Expected {name} to be a tuple of {ndim} ints, received {name}={shape!r}") from None
    if len(dims) != ndim or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                    and d >= 0 for d in dims):
        raise ValueError(f"Expected {name} to be {ndim} non-negative ints, received {name}={shape!r}")
    return tuple(int(d) for d in dims)


def input_shape_arg(input_shape):
    """The NHWC shape of the input a backward pass writes the gradient of."""
    input_shape = shape_arg(input_shape, "input_shape", 4)
    check_index_range(input_shape, "input_shape")
    return input_shape


def scatter_backward_args(dy, input_shape):
    """The checked ``input_shape`` and ``dy`` of a backward pass that scatters each gradient to
    an input pixel (pooling by argmax, remap): dy is NHWC with the input's batch size and
    channels, and the height and width of the forward pass's output."""
    input_shape = input_shape_arg(input_shape)
    dy = as_kernel_array(dy, "dy", 4)
    if dy.shape[0] != input_shape[0] or dy.shape[3] != input_shape[3]:
        raise ValueError(f"Expected dy with the batch size and channels of input_shape "
                         f"{input_shape}, received shape {dy.shape}")
    return input_shape, dy


def check_weight_shape(shape, name):
    # dW is summed in panels of (rows + 1) x (outputs rounded up to 16) floats, int32-indexed.
    rows, outputs = math.prod(shape[:-1]), shape[-1]
    if 0 in shape or (rows + 1) * (-(-outputs // 16) * 16) > INDEX_LIMIT:
        raise ValueError(f"Expected {name} with non-empty axes and at most {INDEX_LIMIT} values "
                         f"once its last axis is padded to 16, received shape {tuple(shape)}")


def weights_array(w, name, ndim):
    """A conv or dense kernel (the weights) as a kernel array."""
    w = check_array(w, name, ndim)
    check_weight_shape(w.shape, name)
    return as_kernel_array(w, name, ndim)


def bias_array(bias, n, dtype):
    return None if bias is None else as_kernel_array(bias, "bias", dtype=dtype, shape=(n,))


def argmax_array(argmax, shape):
    """int32 indices, one per dy entry; the backward kernels skip (and count) any that fall
    outside the image."""
    argmax = np.asarray(argmax)
    if argmax.dtype != np.int32:
        raise TypeError(f"Expected argmax of dtype int32, received dtype {argmax.dtype}")
    if argmax.shape != tuple(shape):
        raise ValueError(f"Expected argmax of shape {tuple(shape)}, received {argmax.shape}")
    return np.ascontiguousarray(argmax)


def memoized(geometry):
    """Shape arithmetic that every batch repeats with the same arguments is worked out (and
    validated) once per distinct arguments. The key holds the types of the arguments and of
    their tuples' items too, because 2.0 == 2 and True == 1 must not pass as a cached int.
    Unhashable arguments are worked out afresh; errors are never remembered."""
    memo = {}

    @functools.wraps(geometry)
    def remembered(*args, **kwargs):
        if kwargs:
            return geometry(*args, **kwargs)
        key = (args, tuple(type(v) for a in args for v in (a if type(a) is tuple else (a,))))
        try:
            return memo[key]
        except KeyError:
            if len(memo) >= 4096:  # a bound for a caller that cycles through endless shapes
                memo.clear()
            result = memo[key] = geometry(*args)
            return result
        except TypeError:  # an unhashable argument
            return geometry(*args)
    return remembered


def _window_geometry(size, window, stride, padding):
    """(output size, padding before) on one axis, with TensorFlow's rule for "same"."""
    if padding == "valid":
        return (size - window) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


def _check_pair(value, name):
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                    and 1 <= v <= INDEX_LIMIT for v in value)):
        raise ValueError(f"Expected {name} to be a pair of ints in [1, {INDEX_LIMIT}], received "
                         f"{name}={value!r}")


@memoized
def window_output_shape(input_hw, window, strides, padding, name="window"):
    """((oh, ow), (pad_top, pad_left)) of a sliding window; refuses a window (called ``name`` in
    the message), strides or padding that the kernels cannot run."""
    _check_pair(window, name)
    _check_pair(strides, "strides")
    if padding not in ("valid", "same"):
        raise ValueError(f'Expected padding "valid" or "same", received padding={padding!r}')
    (oh, top), (ow, left) = (_window_geometry(n, k, s, padding)
                             for n, k, s in zip(input_hw, window, strides))
    if oh < 1 or ow < 1:
        raise ValueError(f"Expected {name} no larger than the input with padding={padding!r}, "
                         f"received {name}={tuple(window)} for an input of {tuple(input_hw)}: "
                         "the feature map would shrink below one pixel")
    return (oh, ow), (top, left)

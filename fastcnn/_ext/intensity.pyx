"""Per-image, per-channel affine maps of pixel values with clipping (Rescaling,
RandomBrightness, RandomContrast), their gradient, and per-image channel means.

Arrays are viewed as (N, P, C): images, positions, channels. ``scale`` and ``shift`` are (N, C)
and may be broadcast views (one value for every image or channel). Each output element is
computed by one thread, and each mean summed by one thread in a fixed order, so results do not
depend on ``n_threads``.
"""
from cython cimport floating
from cython.parallel cimport prange

include "_threads.pxi"


cdef int _check_coefficients(const floating[:, :] a, Py_ssize_t n, Py_ssize_t c,
                             str name) except -1:
    if a.shape[0] != n or a.shape[1] != c:
        raise ValueError(f"{name} must have shape ({n}, {c}), received "
                         f"({a.shape[0]}, {a.shape[1]})")
    return 0


cdef int _check_like(const floating[:, :, ::1] a, const floating[:, :, ::1] b, str a_name,
                     str b_name) except -1:
    if a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1] or a.shape[2] != b.shape[2]:
        raise ValueError(f"{a_name} must have the shape of {b_name} ({b.shape[0]}, {b.shape[1]}, "
                         f"{b.shape[2]}), received ({a.shape[0]}, {a.shape[1]}, {a.shape[2]})")
    return 0


cdef int _check_map(const floating[:, :, ::1] x, const floating[:, :, ::1] out, str out_name,
                    const floating[:, :] scale, const floating[:, :] shift) except -1:
    _check_like(out, x, out_name, "x")
    _check_coefficients(scale, x.shape[0], x.shape[2], "scale")
    _check_coefficients(shift, x.shape[0], x.shape[2], "shift")
    return 0


cdef inline floating _unclipped(floating x, floating scale, floating shift) noexcept nogil:
    return x * scale + shift


def intensity_forward(const floating[:, :, ::1] x__npc,    # IN  (N, P, C)
                      const floating[:, :] scale,           # IN  (N, C)
                      const floating[:, :] shift,           # IN  (N, C)
                      double low, double high,
                      floating[:, :, ::1] out__npc,         # OUT (N, P, C)
                      int n_threads):
    """out[b, p, c] = x[b, p, c] * scale[b, c] + shift[b, c], clipped to [low, high] (NaN
    stays NaN)."""
    cdef Py_ssize_t n = x__npc.shape[0], p = x__npc.shape[1], c = x__npc.shape[2]
    _check_map(x__npc, out__npc, "out", scale, shift)
    cdef Py_ssize_t row, b, q, k
    cdef floating v, lo = <floating>low, hi = <floating>high
    for row in prange(n * p, nogil=True, schedule="static",
                      num_threads=threads_for(n * p * c, n_threads)):
        b = row // p
        q = row % p
        for k in range(c):
            v = _unclipped(x__npc[b, q, k], scale[b, k], shift[b, k])
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            out__npc[b, q, k] = v


def intensity_backward(const floating[:, :, ::1] dy__npc,  # IN  (N, P, C)
                       const floating[:, :, ::1] x__npc,   # IN  (N, P, C): the forward's input
                       const floating[:, :] scale,          # IN  (N, C)
                       const floating[:, :] shift,          # IN  (N, C)
                       double low, double high,
                       const floating[:, :] gain,           # IN  (N, C)
                       floating[:, :, ::1] dx__npc,         # OUT (N, P, C)
                       int n_threads):
    """dx = dy * gain[b, c] where low <= x * scale + shift <= high, else 0: the clip passes the
    gradient only where it did not clip (as tf.clip_by_value's gradient does)."""
    cdef Py_ssize_t n = x__npc.shape[0], p = x__npc.shape[1], c = x__npc.shape[2]
    _check_map(x__npc, dx__npc, "dx", scale, shift)
    _check_like(dy__npc, x__npc, "dy", "x")
    _check_coefficients(gain, n, c, "gain")
    cdef Py_ssize_t row, b, q, k
    cdef floating v, lo = <floating>low, hi = <floating>high
    for row in prange(n * p, nogil=True, schedule="static",
                      num_threads=threads_for(n * p * c, n_threads)):
        b = row // p
        q = row % p
        for k in range(c):
            v = _unclipped(x__npc[b, q, k], scale[b, k], shift[b, k])
            if lo <= v <= hi:
                dx__npc[b, q, k] = dy__npc[b, q, k] * gain[b, k]
            else:
                dx__npc[b, q, k] = 0


def channel_means(const floating[:, :, ::1] x__npc,   # IN  (N, P, C)
                  floating[:, ::1] out__nc,            # OUT (N, C)
                  int n_threads):
    """out[b, c] = the mean of x[b, :, c], summed in float64 in the order of the positions."""
    cdef Py_ssize_t n = x__npc.shape[0], p = x__npc.shape[1], c = x__npc.shape[2]
    if out__nc.shape[0] != n or out__nc.shape[1] != c:
        raise ValueError(f"out must have shape ({n}, {c}), received "
                         f"({out__nc.shape[0]}, {out__nc.shape[1]})")
    if p == 0:
        raise ValueError("x must hold at least one position per image")
    cdef Py_ssize_t task, b, q, k
    cdef double acc
    for task in prange(n * c, nogil=True, schedule="static",
                       num_threads=threads_for(n * p * c, n_threads)):
        b = task // c
        k = task % c
        acc = 0
        for q in range(p):
            acc = acc + x__npc[b, q, k]
        out__nc[b, k] = <floating>(acc / p)

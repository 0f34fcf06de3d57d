"""The reduction kernels of fastcnn.ops: sum, mean, max, min and prod over the middle axis of an
array seen as (outer, n, inner) (any contiguous block of axes: the wrapper moves the reduced
axes together), and the gradient of max and min, which splits each output's gradient evenly
among the entries that hold the extreme value; and cumsum, the running sums along that axis.

Sums and products accumulate in double. Every output element is computed by one thread, reading
its n values in order (j = 0, 1, ... n - 1), so the results do not depend on the thread count;
a sum, mean or product over a contiguous run (inner == 1) runs in lanes instead (lanes.pxi),
which vectorise.
"""
from cython cimport floating
from cython.parallel cimport prange

include "_threads.pxi"
include "cpu.pxi"
include "lanes.pxi"


cdef enum:
    BLOCK = 256  # output elements of one row reduced at a time in a stack buffer
    SUM = 0
    MEAN = 1
    MAX = 2
    MIN = 3
    PROD = 4

_OPS = {"sum": SUM, "mean": MEAN, "max": MAX, "min": MIN, "prod": PROD}


cdef void _reduce_block(int op, const floating *x, Py_ssize_t n, Py_ssize_t inner,
                        floating *out, Py_ssize_t m) noexcept nogil:
    """out[i] = op over j of x[j * inner + i], for i < m <= BLOCK; NaN wins max and min, as
    in NumPy."""
    cdef double acc[BLOCK]
    cdef const floating *row
    cdef double v
    cdef Py_ssize_t i, j
    for i in range(m):
        acc[i] = x[i]
    for j in range(1, n):
        row = x + j * inner
        if op == SUM or op == MEAN:
            for i in range(m):
                acc[i] = acc[i] + row[i]
        elif op == PROD:
            for i in range(m):
                acc[i] = acc[i] * row[i]
        elif op == MAX:
            for i in range(m):
                v = row[i]
                if v > acc[i] or v != v:
                    acc[i] = v
        else:
            for i in range(m):
                v = row[i]
                if v < acc[i] or v != v:
                    acc[i] = v
    if op == MEAN:
        for i in range(m):
            out[i] = <floating>(acc[i] / n)
    else:
        for i in range(m):
            out[i] = <floating>acc[i]


def reduce_forward(str op,                          # IN  "sum", "mean", "max", "min", "prod"
                   const floating[:, :, ::1] x,     # IN  (outer, n, inner), n >= 1
                   floating[:, ::1] out,            # OUT (outer, inner)
                   int n_threads):
    """out[o, i] = op over j of x[o, j, i]."""
    if op not in _OPS:
        raise ValueError(f"Expected op in {sorted(_OPS)}, received op={op!r}")
    cdef int code = _OPS[op]
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    if n < 1:
        raise ValueError("Expected at least one value to reduce, received none")
    if out.shape[0] != outer or out.shape[1] != inner:
        raise ValueError(f"Expected out of shape ({outer}, {inner}), received "
                         f"({out.shape[0]}, {out.shape[1]})")
    cdef Py_ssize_t blocks = (inner + BLOCK - 1) // BLOCK, b, o, i0
    cdef int threads = threads_for(outer * n * inner, n_threads)
    if outer == 0 or inner == 0:
        return
    if inner == 1 and (code == SUM or code == MEAN or code == PROD):
        for o in prange(outer, nogil=True, num_threads=threads, schedule="static"):
            out[o, 0] = <floating>(_lane_sum(&x[o, 0, 0], n, code == PROD)
                                   / (n if code == MEAN else 1))
        return
    for b in prange(outer * blocks, nogil=True, num_threads=threads, schedule="static"):
        o = b // blocks
        i0 = (b % blocks) * BLOCK
        _reduce_block(code, &x[o, 0, i0], n, inner, &out[o, i0], min(<Py_ssize_t>BLOCK,
                                                                       inner - i0))


cdef void _extreme_block(const floating *x, const floating *y, const floating *dy,
                         Py_ssize_t n, Py_ssize_t inner, floating *dx,
                         Py_ssize_t m) noexcept nogil:
    """dx[j * inner + i] = dy[i] / (ties of y[i] in column i) where x == y[i], else 0."""
    cdef Py_ssize_t ties[BLOCK]
    cdef Py_ssize_t i, j
    for i in range(m):
        ties[i] = 0
    for j in range(n):
        for i in range(m):
            if x[j * inner + i] == y[i]:
                ties[i] += 1
    for j in range(n):
        for i in range(m):
            dx[j * inner + i] = dy[i] / ties[i] if x[j * inner + i] == y[i] else 0


def extreme_backward(const floating[:, :, ::1] x,   # IN  (outer, n, inner): max/min's input
                     const floating[:, ::1] y,      # IN  (outer, inner): its output
                     const floating[:, ::1] dy,     # IN  (outer, inner)
                     floating[:, :, ::1] dx,        # OUT (outer, n, inner)
                     int n_threads):
    """The gradient of reduce_forward's max or min: each output's gradient split evenly among
    the entries equal to it (none where it is NaN)."""
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    if (y.shape[0] != outer or y.shape[1] != inner or dy.shape[0] != outer
            or dy.shape[1] != inner or dx.shape[0] != outer or dx.shape[1] != n
            or dx.shape[2] != inner):
        raise ValueError("Expected y and dy of shape (outer, inner) and dx of x's shape")
    cdef Py_ssize_t blocks = (inner + BLOCK - 1) // BLOCK, b, o, i0
    cdef int threads = threads_for(outer * n * inner, n_threads)
    if outer == 0 or inner == 0 or n == 0:
        return
    for b in prange(outer * blocks, nogil=True, num_threads=threads, schedule="static"):
        o = b // blocks
        i0 = (b % blocks) * BLOCK
        _extreme_block(&x[o, 0, i0], &y[o, i0], &dy[o, i0], n, inner, &dx[o, 0, i0],
                       min(<Py_ssize_t>BLOCK, inner - i0))


cdef void _cumsum_block(const floating *x, floating *out, Py_ssize_t b, Py_ssize_t blocks,
                        Py_ssize_t n, Py_ssize_t inner, bint reverse) noexcept nogil:
    """Block b of the lines (o, i) of (outer, n, inner) x, BLOCK columns i of one o: out[o, j,
    i] = the sum of x[o, k, i] over k <= j (k >= j: ``reverse``), accumulated in double from the
    first value (so that -0.0 stays -0.0)."""
    cdef double acc[BLOCK]
    cdef Py_ssize_t i, j, k, i0 = (b % blocks) * BLOCK, start = (b // blocks) * n * inner + i0
    cdef Py_ssize_t m = min(<Py_ssize_t>BLOCK, inner - i0)
    x, out = x + start, out + start
    for k in range(n):
        j = n - 1 - k if reverse else k
        for i in range(m):
            acc[i] = x[j * inner + i] if k == 0 else acc[i] + x[j * inner + i]
            out[j * inner + i] = <floating>acc[i]


def cumsum(const floating[:, :, ::1] x,     # IN  (outer, n, inner)
           floating[:, :, ::1] out,         # OUT (outer, n, inner)
           bint reverse,                    # IN  sums of the later values (cumsum's gradient)
           int n_threads):
    """out[o, j, i] = the sum of x[o, k, i] over k <= j (k >= j: ``reverse``): each line (o, i)
    summed by one thread, in order."""
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    if out.shape[0] != outer or out.shape[1] != n or out.shape[2] != inner:
        raise ValueError("Expected out of x's shape")
    cdef Py_ssize_t blocks = (inner + BLOCK - 1) // BLOCK, b
    cdef int threads = threads_for(outer * n * inner, n_threads)
    if outer == 0 or inner == 0 or n == 0:
        return
    for b in prange(outer * blocks, nogil=True, num_threads=threads, schedule="static"):
        _cumsum_block(&x[0, 0, 0], &out[0, 0, 0], b, blocks, n, inner, reverse)

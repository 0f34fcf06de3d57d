"""The merge kernels: the elementwise sum of k arrays (the Add layer, and the engine's sum of the
gradients of a tensor with several consumers), and the concatenation of k arrays along their
columns, forward beside its split backward.

Every output element is written by one thread from values read in a fixed order, so the results
do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

include "_threads.pxi"


cdef enum:
    BLOCK = 256  # elements summed at a time in a stack buffer, apart from the output


cdef void _add_run(floating **src, Py_ssize_t k, floating *dst, Py_ssize_t i,
                   Py_ssize_t n) noexcept nogil:
    """dst[j] = src[0][j] + src[1][j] + ... + src[k-1][j] for i <= j < i + n, summed left to
    right. Each block is summed in a local buffer and stored after its last read, so dst may be
    any of the src."""
    cdef floating acc[BLOCK]
    cdef const floating *s
    cdef Py_ssize_t b = i, j, t, m
    while b < i + n:
        m = min(<Py_ssize_t>BLOCK, i + n - b)
        s = src[0] + b
        for j in range(m):
            acc[j] = s[j]
        for t in range(1, k):
            s = src[t] + b
            for j in range(m):
                acc[j] = acc[j] + s[j]
        for j in range(m):
            dst[b + j] = acc[j]
        b += m


def add_forward(inputs,                # IN  k >= 1 arrays, each (n,); any may be out itself
                floating[::1] out,     # OUT (n,)
                int n_threads):
    """out = inputs[0] + inputs[1] + ... + inputs[k-1], elementwise, summed left to right."""
    cdef Py_ssize_t k = len(inputs), t, c, i, n = out.shape[0]
    cdef const floating[::1] x
    cdef floating *dst = &out[0] if n else NULL
    if k == 0:
        raise ValueError("Expected at least one input, received none")
    cdef floating **src = <floating **>malloc(k * sizeof(floating *))
    if src == NULL:
        raise MemoryError()
    keep = []  # the views, so that no buffer goes away while the loop runs without the GIL
    try:
        for t in range(k):
            x = inputs[t]
            keep.append(x)
            if x.shape[0] != n:
                raise ValueError(f"Expected inputs of out's {n} elements, received {x.shape[0]} "
                                 f"in input {t}")
            src[t] = <floating *>&x[0] if n else NULL
        with nogil:
            for c in prange(runs_of(n), schedule="static",
                            num_threads=threads_for(n * k, n_threads)):
                i = c * RUN
                _add_run(src, k, dst, i, min(RUN, n - i))
    finally:
        free(src)


cdef int _copy_columns(floating *joined, Py_ssize_t outer, Py_ssize_t width, parts, bint split,
                       int n_threads) except -1:
    """Copies between the columns of joined (outer, width) and the parts (outer, width_t), which
    fill joined's columns one after the other: into joined, or out of it with split. One parallel
    loop takes RUN elements of one row of one part per step, so that wide parts (a concatenation
    along the first axis has one row) are shared between threads as well as many narrow ones."""
    cdef Py_ssize_t k = len(parts), t, c, r, q, j, m, rows, runs = 0, offset = 0
    cdef const floating[:, ::1] part
    cdef floating[:, ::1] target
    cdef floating *p
    cdef floating *a
    cdef floating *b
    if k == 0:
        raise ValueError("Expected at least one part, received none")
    cdef floating **ptr = <floating **>malloc(k * sizeof(floating *))
    cdef Py_ssize_t *widths = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
    cdef Py_ssize_t *offsets = <Py_ssize_t *>malloc(k * sizeof(Py_ssize_t))
    cdef Py_ssize_t *first = <Py_ssize_t *>malloc((k + 1) * sizeof(Py_ssize_t))
    keep = []  # the views, so that no buffer goes away while the loop runs without the GIL
    try:
        if ptr == NULL or widths == NULL or offsets == NULL or first == NULL:
            raise MemoryError()
        for t in range(k):
            if split:  # written
                target = parts[t]
                keep.append(target)
                rows, m = target.shape[0], target.shape[1]
                p = &target[0, 0] if rows and m else NULL
            else:  # read only
                part = parts[t]
                keep.append(part)
                rows, m = part.shape[0], part.shape[1]
                p = <floating *>&part[0, 0] if rows and m else NULL
            if rows != outer:
                raise ValueError(f"Expected {outer} rows in every part, received {rows} in part "
                                 f"{t}")
            ptr[t], widths[t], offsets[t], first[t] = p, m, offset, runs
            offset += m
            runs += runs_of(m)
        first[k] = runs
        if offset != width:
            raise ValueError(f"Expected parts {width} columns wide in all, received {offset}")
        with nogil:
            for c in prange(outer * runs, schedule="static",
                            num_threads=threads_for(outer * width, n_threads)):
                r = c // runs
                q = c - r * runs
                t = tensor_of_run(first, k, q)
                j = (q - first[t]) * RUN
                a = joined + r * width + offsets[t] + j
                b = ptr[t] + r * widths[t] + j
                if split:
                    memcpy(b, a, min(RUN, widths[t] - j) * sizeof(floating))
                else:
                    memcpy(a, b, min(RUN, widths[t] - j) * sizeof(floating))
    finally:
        free(ptr)
        free(widths)
        free(offsets)
        free(first)
    return 0


def concatenate_forward(inputs,                # IN  k >= 1 arrays, each (outer, width_t)
                        floating[:, ::1] out,  # OUT (outer, sum of width_t)
                        int n_threads):
    """Row r of out is the rows r of the inputs, one after the other. A concatenation along any
    axis is this one: outer is the product of the axes before it, width_t the product of the
    rest."""
    cdef Py_ssize_t outer = out.shape[0], width = out.shape[1]
    _copy_columns(&out[0, 0] if outer and width else NULL, outer, width, inputs, False, n_threads)


def concatenate_backward(const floating[:, ::1] dy,   # IN  (outer, sum of width_t)
                         outs,                        # OUT k >= 1 arrays, each (outer, width_t)
                         int n_threads):
    """The gradient through concatenate_forward: outs[t] gets its columns of dy."""
    cdef Py_ssize_t outer = dy.shape[0], width = dy.shape[1]
    _copy_columns(<floating *>&dy[0, 0] if outer and width else NULL, outer, width, outs, True,
                  n_threads)

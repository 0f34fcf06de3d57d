"""The merge kernels: the elementwise sum of k arrays (the Add layer, and the engine's sum of the
gradients of a tensor with several consumers), the elementwise merges of k broadcast arrays
(Add, Subtract, Multiply, Average, Maximum, Minimum, and fastcnn.ops' divide) forward beside
their backward, and the
concatenation of k arrays along their columns, forward beside its split backward.

Every output element is written by one thread from values read in a fixed order, so the results
do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

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


# ---- elementwise merges over strided (broadcast) inputs ---------------------------------------
#
# The output is C-contiguous of shape ``shape`` (r axes); input t is read at offset
# sum_d i_d * strides[t, d] of output position (i_0, ..., i_{r-1}): a stride of 0 broadcasts the
# input along that axis, and one input with permuted strides is a transpose ("copy"). Threads
# take (row, run) units: a row is a position of the first r - 1 axes, a run at most RUN elements
# of the last axis.

cdef enum:
    COPY = 0
    ADD = 1
    SUBTRACT = 2
    MULTIPLY = 3
    AVERAGE = 4
    MAXIMUM = 5
    MINIMUM = 6
    DIVIDE = 7
    MAX_RANK = 64  # NumPy's

_OPS = {"copy": COPY, "add": ADD, "subtract": SUBTRACT, "multiply": MULTIPLY,
        "average": AVERAGE, "maximum": MAXIMUM, "minimum": MINIMUM, "divide": DIVIDE}


cdef struct _Layout:
    Py_ssize_t k, r, inner
    Py_ssize_t n               # output elements
    int code                   # the op
    int threads
    const Py_ssize_t *shape    # (r,)
    const Py_ssize_t *strides  # (k, r): strides[t * r + d]


cdef inline void _offsets(const _Layout *lay, const Py_ssize_t *index, Py_ssize_t *off) noexcept nogil:
    """off[t] = the offset in input t of the output position whose first r - 1 axes are
    index[0 : r - 1] and whose last is 0."""
    cdef Py_ssize_t t, d
    for t in range(lay.k):
        off[t] = 0
        for d in range(lay.r - 1):
            off[t] += index[d] * lay.strides[t * lay.r + d]


cdef inline void _unravel(const _Layout *lay, Py_ssize_t row, Py_ssize_t *index) noexcept nogil:
    """index[0 : r - 1] = the position of row ``row`` over the first r - 1 axes (C order)."""
    cdef Py_ssize_t d
    for d in range(lay.r - 2, -1, -1):
        index[d] = row % lay.shape[d]
        row = row // lay.shape[d]


cdef inline void _load(const floating *s, Py_ssize_t step, Py_ssize_t m,
                       floating *buf) noexcept nogil:
    """buf[j] = s[j * step] for j < m; the contiguous and broadcast cases apart, so that they
    vectorise."""
    cdef Py_ssize_t j
    if step == 1:
        for j in range(m):
            buf[j] = s[j]
    elif step == 0:
        for j in range(m):
            buf[j] = s[0]
    else:
        for j in range(m):
            buf[j] = s[j * step]


cdef void _forward_run(int op, const _Layout *lay, floating **src, Py_ssize_t *off,
                       floating *dst, Py_ssize_t row, Py_ssize_t j0, Py_ssize_t n) noexcept nogil:
    """dst[row * inner + j] for j0 <= j < j0 + n: the inputs combined left to right, a block at
    a time in local buffers."""
    cdef floating acc[BLOCK]
    cdef floating v[BLOCK]
    cdef Py_ssize_t index[MAX_RANK]
    cdef Py_ssize_t b = j0, j, t, m, step, last = lay.r - 1
    _unravel(lay, row, index)
    _offsets(lay, index, off)
    while b < j0 + n:
        m = min(<Py_ssize_t>BLOCK, j0 + n - b)
        step = lay.strides[last]
        _load(src[0] + off[0] + b * step, step, m, acc)
        for t in range(1, lay.k):
            step = lay.strides[t * lay.r + last]
            _load(src[t] + off[t] + b * step, step, m, v)
            if op == ADD or op == AVERAGE:
                for j in range(m):
                    acc[j] = acc[j] + v[j]
            elif op == SUBTRACT:
                for j in range(m):
                    acc[j] = acc[j] - v[j]
            elif op == MULTIPLY:
                for j in range(m):
                    acc[j] = acc[j] * v[j]
            elif op == DIVIDE:
                for j in range(m):
                    acc[j] = acc[j] / v[j]
            elif op == MAXIMUM:  # NaN wins, as in NumPy; of equal values the first stays
                for j in range(m):
                    if v[j] > acc[j] or v[j] != v[j]:
                        acc[j] = v[j]
            elif op == MINIMUM:
                for j in range(m):
                    if v[j] < acc[j] or v[j] != v[j]:
                        acc[j] = v[j]
        if op == AVERAGE:
            for j in range(m):
                acc[j] = acc[j] / <floating>lay.k
        for j in range(m):
            dst[row * lay.inner + b + j] = acc[j]
        b += m


cdef inline floating _grad(int op, const _Layout *lay, floating **src, const Py_ssize_t *off,
                           Py_ssize_t w, Py_ssize_t j, floating dy) noexcept nogil:
    """The gradient that input w gets from output element j of the row whose input offsets are
    off, when that element's gradient is dy: Keras/TensorFlow's, where Maximum and Minimum send
    it to the first input that holds the extreme value (TensorFlow's maximum(x, y) sends it to x
    where x >= y, and Keras folds the inputs left to right)."""
    cdef Py_ssize_t t, last = lay.r - 1, win = 0
    cdef floating p, best, x
    if op == ADD or op == COPY:
        return dy
    if op == SUBTRACT:
        return dy if w == 0 else -dy
    if op == AVERAGE:
        return dy / <floating>lay.k
    if op == MULTIPLY:
        p = 1
        for t in range(lay.k):
            if t != w:
                p = p * src[t][off[t] + j * lay.strides[t * lay.r + last]]
        return dy * p
    if op == DIVIDE:  # a / b: dy / b for a, -dy * a / b^2 for b
        p = src[1][off[1] + j * lay.strides[lay.r + last]]
        if w == 0:
            return dy / p
        return -dy * (src[0][off[0] + j * lay.strides[last]] / p) / p
    best = src[0][off[0] + j * lay.strides[last]]
    for t in range(1, lay.k):
        x = src[t][off[t] + j * lay.strides[t * lay.r + last]]
        if (x > best if op == MAXIMUM else x < best) or x != x:
            best, win = x, t
    return dy if win == w else 0


cdef void _backward_unit(int op, const _Layout *lay, floating **src, Py_ssize_t *off,
                         const floating *dy, Py_ssize_t w, floating *dx, const Py_ssize_t *kept,
                         Py_ssize_t n_kept, const Py_ssize_t *summed, Py_ssize_t n_summed,
                         Py_ssize_t row, Py_ssize_t j0, Py_ssize_t n) noexcept nogil:
    """dx elements of dx row ``row`` (a position of input w's kept leading axes) whose last-axis
    index is j0 <= j < j0 + n (n <= BLOCK), each the sum, in a fixed order, of its gradients over the output
    positions that read it: over the summed leading axes, and the last axis too when input w
    is broadcast along it (then n is 1)."""
    cdef double acc[BLOCK]
    cdef Py_ssize_t index[MAX_RANK]
    cdef Py_ssize_t last = lay.r - 1, step = lay.strides[w * lay.r + last]
    cdef Py_ssize_t d, q, rest, j, count = 1, base = 0, at
    for d in range(n_kept - 1, -1, -1):
        index[kept[d]] = row % lay.shape[kept[d]]
        row = row // lay.shape[kept[d]]
        base += index[kept[d]] * lay.strides[w * lay.r + kept[d]]
    for d in range(n_summed):
        count *= lay.shape[summed[d]]
    for j in range(n):
        acc[j] = 0
    for q in range(count):
        rest = q
        for d in range(n_summed - 1, -1, -1):
            index[summed[d]] = rest % lay.shape[summed[d]]
            rest = rest // lay.shape[summed[d]]
        _offsets(lay, index, off)
        at = 0
        for d in range(last):
            at = at * lay.shape[d] + index[d]
        at *= lay.inner
        if step == 0:
            for j in range(lay.inner):
                acc[0] += _grad(op, lay, src, off, w, j, dy[at + j])
        else:
            for j in range(j0, j0 + n):
                acc[j - j0] += _grad(op, lay, src, off, w, j, dy[at + j])
    for j in range(n):
        dx[base + (j0 + j) * step] = <floating>acc[j]


cdef int _operands(str op, inputs, const Py_ssize_t[::1] shape,
                   const Py_ssize_t[:, ::1] strides, int n_threads, _Layout *lay,
                   floating ***src_out, Py_ssize_t **scratch_out, list keep) except -1:
    """Checks op against the count of inputs and the layout against the inputs (each read stays
    inside its array), fills lay, and allocates the inputs' pointers (*src_out) and each
    thread's k offsets (*scratch_out), which the caller frees; keep holds the inputs' views
    while the loops run without the GIL."""
    cdef const floating[::1] x
    cdef Py_ssize_t k = len(inputs), r = shape.shape[0], t, d, reach, n = 1
    if op not in _OPS:
        raise ValueError(f"Expected op in {sorted(_OPS)}, received op={op!r}")
    wanted = {"copy": "one input", "subtract": "two inputs", "divide": "two inputs"}.get(
        op, "at least one input")
    if k < 1 or (op == "copy" and k != 1) or (op in ("subtract", "divide") and k != 2):
        raise ValueError(f"Expected {wanted} for op {op!r}, received {k}")
    if strides.shape[0] != k or strides.shape[1] != r or not 1 <= r <= MAX_RANK:
        raise ValueError(f"Expected strides of shape ({k}, rank) for {k} inputs and shape of "
                         f"rank 1 to {MAX_RANK}, received strides of shape "
                         f"({strides.shape[0]}, {strides.shape[1]}) and rank {r}")
    for d in range(r):
        if shape[d] < 0:
            raise ValueError(f"Expected a shape of sizes >= 0, received {list(shape)}")
        n *= shape[d]
    lay.k, lay.r, lay.inner, lay.n, lay.code = k, r, shape[r - 1], n, _OPS[op]
    lay.threads = threads_for(n * k, n_threads)
    lay.shape, lay.strides = &shape[0], &strides[0, 0]
    cdef floating **src = <floating **>malloc(k * sizeof(floating *))
    src_out[0] = src
    scratch_out[0] = <Py_ssize_t *>malloc(k * lay.threads * sizeof(Py_ssize_t))
    if src == NULL or scratch_out[0] == NULL:
        raise MemoryError()
    for t in range(k):
        x = inputs[t]
        keep.append(x)
        reach = 0
        for d in range(r):
            if strides[t, d] < 0:
                raise ValueError(f"Expected strides >= 0, received {list(strides[t])} for "
                                 f"input {t}")
            reach += (shape[d] - 1) * strides[t, d]
        if n and reach >= x.shape[0]:
            raise ValueError(f"Expected input {t} to hold the {reach + 1} elements its strides "
                             f"reach, received {x.shape[0]}")
        src[t] = <floating *>&x[0] if x.shape[0] else NULL
    return 0


def elementwise_forward(str op,                            # "copy", "add", "subtract", "multiply", "average", "maximum", "minimum" or "divide"
                        inputs,                            # IN  k arrays, each flat (n_t,)
                        const Py_ssize_t[::1] shape,       # IN  (r,) the output's shape
                        const Py_ssize_t[:, ::1] strides,  # IN  (k, r) each input's strides over it
                        floating[::1] out,                 # OUT (prod(shape),), apart from the inputs
                        int n_threads):
    """out = inputs[0] op inputs[1] op ... , folded left to right (average: the sum divided by
    k; copy: one input, so a strided copy), each input read through its strides."""
    cdef _Layout lay
    cdef floating **src = NULL
    cdef Py_ssize_t *scratch = NULL
    cdef Py_ssize_t *off
    cdef Py_ssize_t rpr, c, row, j0
    keep = []  # the views, so that no buffer goes away while the loop runs without the GIL
    try:
        _operands(op, inputs, shape, strides, n_threads, &lay, &src, &scratch, keep)
        if out.shape[0] != lay.n:
            raise ValueError(f"Expected out of {lay.n} elements, received {out.shape[0]}")
        if lay.n == 0:
            return
        rpr = runs_of(lay.inner)
        with nogil, parallel(num_threads=lay.threads):
            off = scratch + lay.k * threadid()
            for c in prange(lay.n // lay.inner * rpr, schedule="static"):
                row = c // rpr
                j0 = (c - row * rpr) * RUN
                _forward_run(lay.code, &lay, src, off, &out[0], row, j0, min(RUN, lay.inner - j0))
    finally:
        free(src)
        free(scratch)


def elementwise_backward(str op,                            # as elementwise_forward's
                         const floating[::1] dy,            # IN  (prod(shape),) the output's gradient
                         inputs,                            # IN  k arrays, each flat (n_t,)
                         const Py_ssize_t[::1] shape,       # IN  (r,) the output's shape
                         const Py_ssize_t[:, ::1] strides,  # IN  (k, r) each input's strides over it
                         Py_ssize_t index,                  # which input's gradient
                         floating[::1] dx,                  # OUT (n_index,) laid out as inputs[index]
                         int n_threads):
    """The gradient of input ``index`` of elementwise_forward: each element the sum of the
    gradients of the output elements that read it (over the axes along which its stride is 0),
    in a fixed order. Its strides must reach each of its elements from exactly one position of
    the axes along which they are not 0, as a broadcast C-contiguous array's do."""
    cdef _Layout lay
    cdef floating **src = NULL
    cdef Py_ssize_t *scratch = NULL
    cdef Py_ssize_t *off
    cdef Py_ssize_t d, rows = 1, units, c, row, j0, n_kept = 0, n_summed = 0, step, blocks
    cdef Py_ssize_t kept[MAX_RANK]
    cdef Py_ssize_t summed[MAX_RANK]
    keep = []  # the views, so that no buffer goes away while the loop runs without the GIL
    try:
        _operands(op, inputs, shape, strides, n_threads, &lay, &src, &scratch, keep)
        if dy.shape[0] != lay.n:
            raise ValueError(f"Expected dy of {lay.n} elements, received {dy.shape[0]}")
        if not 0 <= index < lay.k:
            raise ValueError(f"Expected index in [0, {lay.k}), received index={index}")
        if dx.shape[0] != len(inputs[index]):
            raise ValueError(f"Expected dx of input {index}'s {len(inputs[index])} elements, "
                             f"received {dx.shape[0]}")
        if lay.n == 0:
            if dx.shape[0]:
                memset(&dx[0], 0, dx.shape[0] * sizeof(floating))
            return
        for d in range(lay.r - 1):
            if strides[index, d]:
                kept[n_kept] = d
                n_kept += 1
                rows *= shape[d]
            else:
                summed[n_summed] = d
                n_summed += 1
        # Units of at most BLOCK elements, each summed in a stack buffer.
        step = strides[index, lay.r - 1]
        blocks = (lay.inner + BLOCK - 1) // BLOCK
        units = rows * blocks if step else rows
        with nogil, parallel(num_threads=lay.threads):
            off = scratch + lay.k * threadid()
            for c in prange(units, schedule="static"):
                if step:
                    row = c // blocks
                    j0 = (c - row * blocks) * BLOCK
                    _backward_unit(lay.code, &lay, src, off, &dy[0], index, &dx[0], kept, n_kept,
                                   summed, n_summed, row, j0, min(<Py_ssize_t>BLOCK, lay.inner - j0))
                else:
                    _backward_unit(lay.code, &lay, src, off, &dy[0], index, &dx[0], kept, n_kept,
                                   summed, n_summed, c, 0, 1)
    finally:
        free(src)
        free(scratch)

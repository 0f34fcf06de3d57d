"""The elementwise-program kernel: a short program of elementwise operations (fastcnn.ops' unary
functions, their gradients, and the chains of them that the planner fuses) evaluated in one pass
over its operands.

The operands are laid out as (rows, cols): full operands hold rows * cols elements, row operands
one value per row (broadcast along the row), column operands one value per column (broadcast
over the rows); constants are scalars. The program runs over blocks of at most BLOCK elements,
whole rows at a time when a row is shorter than a block, else one segment of a row: for each
block every instruction runs a tight loop over the block's values in per-thread registers, so
the dispatch of an instruction is paid once per block, not per element. Row sums (the mean or
sum over the last axis that may end a program) accumulate in double in lanes (lanes.pxi), as the
reduce kernel sums a contiguous run.

Threads take groups of whole rows; every output element is computed by one thread, in a fixed
order, so the results do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport (INFINITY, NAN, copysign, copysignf, cos, cosf, exp, expf, expm1, expm1f, fabs, floor,
                        floorf, fmod, fmodf, log, log1p, log1pf, log2, log2f, log10, log10f, logf,
                        pow, powf, rint, rintf, sin, sinf, sqrt, sqrtf)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

include "_threads.pxi"
include "lanes.pxi"
include "vecmath.pxi"

cdef enum:
    BLOCK = 256  # elements per block: its registers stay in the first-level cache

# The opcodes; an instruction is (opcode, destination, a, b, c). Registers are written once.
cdef enum:
    LOAD = 0      # dst <- full input a
    LOAD_ROW = 1  # dst <- row input a, each row's value along the row
    LOAD_COL = 2  # dst <- column input a, repeated in every row
    CONST = 3     # dst <- constants[a]
    STORE = 4     # full output dst <- register a
    ROW_SUM = 5   # row output dst <- the sum of register a along each row, over constants[b]
                  # (b >= 0: a mean) or not divided (b < 0)
    ADD = 10
    SUB = 11
    MUL = 12
    DIV = 13
    MAX = 14      # NaN wins, as in NumPy
    MIN = 15
    POW = 16
    FLOOR_DIVIDE = 17  # rounds toward -inf, as NumPy's floor_divide
    MOD = 18           # the divisor's sign, as NumPy's mod
    GT = 20       # comparisons give 1 or 0
    GE = 21
    LT = 22
    LE = 23
    EQ = 24
    NE = 25
    WHERE = 26    # dst <- b where a != 0 else c
    NEG = 30
    EXP = 31
    LOG = 32
    LOG1P = 33
    EXPM1 = 34
    SQRT = 35
    SQUARE = 36
    ABS = 37
    SIGN = 38     # NaN stays NaN, zeros give 0
    SIN = 39
    COS = 40
    FLOOR = 41
    RINT = 42     # halves to even, as NumPy's round
    LOG2 = 43
    LOG10 = 44
    RECIPROCAL = 45

OPCODES = {"load": LOAD, "load_row": LOAD_ROW, "load_col": LOAD_COL, "const": CONST,
           "store": STORE, "row_sum": ROW_SUM, "add": ADD, "subtract": SUB, "multiply": MUL,
           "divide": DIV, "maximum": MAX, "minimum": MIN, "power": POW, "floor_divide": FLOOR_DIVIDE, "mod": MOD, "greater": GT,
           "greater_equal": GE, "less": LT, "less_equal": LE, "equal": EQ, "not_equal": NE,
           "where": WHERE, "negative": NEG, "exp": EXP, "log": LOG, "log1p": LOG1P,
           "expm1": EXPM1, "sqrt": SQRT, "square": SQUARE, "abs": ABS, "sign": SIGN, "sin": SIN,
           "cos": COS, "floor": FLOOR, "rint": RINT, "log2": LOG2, "log10": LOG10,
           "reciprocal": RECIPROCAL}


cdef inline floating _unary(int op, floating v) noexcept nogil:
    if floating is float:
        if op == EXP:
            return expf(v)
        if op == LOG:
            return logf(v)
        if op == LOG1P:
            return log1pf(v)
        if op == EXPM1:
            return expm1f(v)
        if op == SIN:
            return sinf(v)
        if op == COS:
            return cosf(v)
        if op == FLOOR:
            return floorf(v)
        if op == RINT:
            return rintf(v)
        if op == LOG2:
            return log2f(v)
        return log10f(v)
    else:
        if op == EXP:
            return exp(v)
        if op == LOG:
            return log(v)
        if op == LOG1P:
            return log1p(v)
        if op == EXPM1:
            return expm1(v)
        if op == SIN:
            return sin(v)
        if op == COS:
            return cos(v)
        if op == FLOOR:
            return floor(v)
        if op == RINT:
            return rint(v)
        if op == LOG2:
            return log2(v)
        return log10(v)


cdef void _math(int op, floating *d, const floating *a, Py_ssize_t m) noexcept nogil:
    """d = op(a): exp and log of float32 in vecmath.pxi; otherwise the library's functions,
    which do not vectorise: a predictable branch per element costs little beside the call."""
    cdef Py_ssize_t j
    if floating is float:
        if op == EXP:
            _expf(d, a, m)
            return
        if op == LOG:
            _logf(d, a, m)
            return
    for j in range(m):
        d[j] = _unary(op, a[j])


cdef inline floating _divmod(floating a, floating b, bint quotient) noexcept nogil:
    """a // b (``quotient``) or a % b, step for step as NumPy's divmod: the remainder from
    fmod moved to the divisor's sign, the quotient snapped to the nearest whole number; a zero
    divisor gives a / b and fmod's NaN."""
    cdef floating m, div, q
    if floating is float:
        m = fmodf(a, b)
    else:
        m = fmod(a, b)
    if b == 0:
        return a / b if quotient else m
    div = (a - m) / b
    if m != 0:
        if (b < 0) != (m < 0):
            m = m + b
            div = div - 1
    else:
        if floating is float:
            m = copysignf(0, b)
        else:
            m = copysign(0, b)
    if not quotient:
        return m
    if div != 0:
        if floating is float:
            q = floorf(div)
        else:
            q = floor(div)
        if div - q > 0.5:
            q = q + 1
        return q
    if floating is float:
        return copysignf(0, a / b)
    return copysign(0, a / b)


cdef void _binary(int op, floating *d, const floating *a, const floating *b,
                  Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    if op == ADD:
        for j in range(m):
            d[j] = a[j] + b[j]
    elif op == SUB:
        for j in range(m):
            d[j] = a[j] - b[j]
    elif op == MUL:
        for j in range(m):
            d[j] = a[j] * b[j]
    elif op == DIV:
        for j in range(m):
            d[j] = a[j] / b[j]
    elif op == MAX:
        for j in range(m):
            d[j] = a[j] if a[j] >= b[j] or a[j] != a[j] else b[j]
    elif op == MIN:
        for j in range(m):
            d[j] = a[j] if a[j] <= b[j] or a[j] != a[j] else b[j]
    elif op == POW:
        for j in range(m):
            if floating is float:
                d[j] = powf(a[j], b[j])
            else:
                d[j] = pow(a[j], b[j])
    elif op == FLOOR_DIVIDE:
        for j in range(m):
            d[j] = _divmod(a[j], b[j], True)
    elif op == MOD:
        for j in range(m):
            d[j] = _divmod(a[j], b[j], False)
    elif op == GT:
        for j in range(m):
            d[j] = a[j] > b[j]
    elif op == GE:
        for j in range(m):
            d[j] = a[j] >= b[j]
    elif op == LT:
        for j in range(m):
            d[j] = a[j] < b[j]
    elif op == LE:
        for j in range(m):
            d[j] = a[j] <= b[j]
    elif op == EQ:
        for j in range(m):
            d[j] = a[j] == b[j]
    else:
        for j in range(m):
            d[j] = a[j] != b[j]


cdef void _simple(int op, floating *d, const floating *a, Py_ssize_t m) noexcept nogil:
    """d = op(a) for the operations that vectorise."""
    cdef Py_ssize_t j
    if op == NEG:
        for j in range(m):
            d[j] = -a[j]
    elif op == SQUARE:
        for j in range(m):
            d[j] = a[j] * a[j]
    elif op == ABS:
        for j in range(m):
            d[j] = fabs(a[j])
    elif op == RECIPROCAL:
        for j in range(m):
            d[j] = 1 / a[j]
    elif op == SQRT:
        for j in range(m):
            if floating is float:
                d[j] = sqrtf(a[j])
            else:
                d[j] = sqrt(a[j])
    else:  # SIGN
        for j in range(m):
            d[j] = 1 if a[j] > 0 else (-1 if a[j] < 0 else (0 if a[j] == 0 else a[j]))


cdef struct _Run:
    const int *code         # (n_code, 5)
    Py_ssize_t n_code
    const int *home         # per register: the full output it is computed in place in, or -1
    const int *direct       # per instruction: 1 for a store of a register computed in place
    const double *constants
    Py_ssize_t rows, cols
    Py_ssize_t n_registers, n_outputs
    int threads


cdef void _block(const _Run *run, floating **inputs, floating **outputs, floating **reg,
                 floating *space, double *acc, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t c0,
                 Py_ssize_t m, bint first, bint last) noexcept nogil:
    """Runs the program on rows [r0, r0 + nr), columns [c0, c0 + m / nr): m elements; ``first``
    and ``last`` say whether this block starts and ends its rows (row sums start and finish)."""
    cdef Py_ssize_t i, j, q, w = m // nr, start = r0 * run.cols + c0
    cdef const int *ins
    cdef int op
    cdef floating *d
    cdef const floating *a
    cdef floating v
    cdef double s
    for i in range(run.n_code):
        ins = run.code + 5 * i
        op = ins[0]
        if op == STORE:
            if not run.direct[i]:
                memcpy(outputs[ins[1]] + start, reg[ins[2]], m * sizeof(floating))
            continue
        if op == ROW_SUM:
            a = reg[ins[2]]
            if first and last:
                for q in range(nr):
                    s = _lane_sum(a + q * w, w)
                    if ins[3] >= 0:
                        s = s / run.constants[ins[3]]
                    outputs[ins[1]][r0 + q] = <floating>s
                continue
            # One row in segments of BLOCK values (a multiple of LANES, so that a segment
            # starts at lane 0), longer than LANES: its lanes carried from block to block.
            if first:
                _lanes_start(acc + ins[1] * BLOCK, a)
                _lanes_add(acc + ins[1] * BLOCK, a + LANES, w - LANES)
            else:
                _lanes_add(acc + ins[1] * BLOCK, a, w)
            if last:
                s = _lanes_total(acc + ins[1] * BLOCK)
                if ins[3] >= 0:
                    s = s / run.constants[ins[3]]
                outputs[ins[1]][r0] = <floating>s
            continue
        if run.home[ins[1]] >= 0:
            d = outputs[run.home[ins[1]]] + start
        else:
            d = space + ins[1] * BLOCK
        reg[ins[1]] = d
        if op == LOAD:
            reg[ins[1]] = inputs[ins[2]] + start  # read in place: registers are read only
        elif op == LOAD_ROW:
            for q in range(nr):
                v = inputs[ins[2]][r0 + q]
                for j in range(w):
                    d[q * w + j] = v
        elif op == LOAD_COL:
            for q in range(nr):
                memcpy(d + q * w, inputs[ins[2]] + c0, w * sizeof(floating))
        elif op == CONST:
            pass  # filled once per thread, before the first block (_execute)
        elif op == WHERE:
            for j in range(m):
                d[j] = reg[ins[3]][j] if reg[ins[2]][j] != 0 else reg[ins[4]][j]
        elif op >= ADD and op <= NE:
            _binary(op, d, reg[ins[2]], reg[ins[3]], m)
        elif (op == NEG or op == SQUARE or op == ABS or op == SIGN or op == RECIPROCAL
              or op == SQRT):
            _simple(op, d, reg[ins[2]], m)
        else:
            _math(op, d, reg[ins[2]], m)


cdef int _execute(const _Run *run, floating **inputs, floating **outputs) except -1:
    """Every block of the program, groups of whole rows to each thread."""
    cdef Py_ssize_t per = max(1, BLOCK // run.cols)  # rows per block
    cdef Py_ssize_t groups = (run.rows + per - 1) // per, g, c0, m, nr
    cdef Py_ssize_t nreg = run.n_registers + 1, nacc = (run.n_outputs + 1) * BLOCK
    cdef int t
    cdef Py_ssize_t i, j
    cdef const int *ins
    cdef floating v
    cdef floating **regs = <floating **>malloc(run.threads * nreg * sizeof(floating *))
    cdef floating *space = <floating *>malloc(run.threads * nreg * BLOCK * sizeof(floating))
    cdef double *acc = <double *>malloc(run.threads * nacc * sizeof(double))
    try:
        if regs == NULL or space == NULL or acc == NULL:
            raise MemoryError()
        for i in range(run.n_code):  # every thread's constant registers, whole blocks
            ins = run.code + 5 * i
            if ins[0] == CONST:
                v = <floating>run.constants[ins[2]]
                for t in range(run.threads):
                    for j in range(BLOCK):
                        space[(t * nreg + ins[1]) * BLOCK + j] = v
        with nogil, parallel(num_threads=run.threads):
            for g in prange(groups, schedule="static"):
                t = threadid()
                nr = min(per, run.rows - g * per)
                if per > 1:
                    _block(run, inputs, outputs, regs + t * nreg, space + t * nreg * BLOCK,
                           acc + t * nacc, g * per, nr, 0, nr * run.cols, True, True)
                else:
                    c0 = 0
                    while c0 < run.cols:
                        m = min(<Py_ssize_t>BLOCK, run.cols - c0)
                        _block(run, inputs, outputs, regs + t * nreg, space + t * nreg * BLOCK,
                               acc + t * nacc, g, 1, c0, m, c0 == 0, c0 + m == run.cols)
                        c0 = c0 + m
    finally:
        free(regs)
        free(space)
        free(acc)
    return 0


cdef void _homes(const _Run *run, Py_ssize_t n_registers, int *home, int *direct) noexcept:
    """A register that a full output stores (the first such store), computed by an operation
    rather than loaded, is computed in place in that output: its store copies nothing. The
    outputs are apart from the inputs, so no load reads what such a register writes."""
    cdef Py_ssize_t i
    cdef const int *ins
    cdef int op
    for i in range(n_registers + 1):
        home[i] = -1
    for i in range(run.n_code):
        ins = run.code + 5 * i
        direct[i] = 0
        if ins[0] == STORE:
            op = run.code[5 * _writer(run, ins[2])]
            if op >= ADD and home[ins[2]] < 0:
                home[ins[2]] = ins[1]
                direct[i] = 1


cdef Py_ssize_t _writer(const _Run *run, int register) noexcept:
    """The instruction that writes ``register``."""
    cdef Py_ssize_t i
    for i in range(run.n_code):
        if run.code[5 * i] != STORE and run.code[5 * i] != ROW_SUM \
                and run.code[5 * i + 1] == register:
            return i
    return 0


cdef void *_address(array, bint single, bint written, list keep) except NULL:
    """The first element of ``array``, a non-empty 1-D C-contiguous array of float32
    (``single``) or float64, writable when ``written``; its view is kept in ``keep``."""
    cdef const float[::1] f32
    cdef const double[::1] f64
    cdef float[::1] w32
    cdef double[::1] w64
    if single and written:
        w32 = array
        keep.append(w32)
        return &w32[0]
    if written:
        w64 = array
        keep.append(w64)
        return &w64[0]
    if single:
        f32 = array
        keep.append(f32)
        return <void *>&f32[0]
    f64 = array
    keep.append(f64)
    return <void *>&f64[0]


def program_run(const int[:, ::1] code,          # IN  (n_code, 5) instructions, checked
                const double[::1] constants,     # IN  the scalars CONST and ROW_SUM read
                inputs,                          # IN  arrays: (rows * cols,), (rows,) or (cols,)
                outputs,                         # OUT k >= 1 arrays: (rows * cols,) or (rows,)
                Py_ssize_t rows,
                Py_ssize_t cols,
                int n_registers,
                int n_threads):
    """Runs the program ``code`` over (rows, cols) elements, in the dtype of the arrays
    (float32 or float64, all alike). The caller (fastcnn._ops.program) has checked that every
    register is written before it is read, every index is in range and every array has the
    size its instructions read or write."""
    cdef _Run run
    cdef Py_ssize_t k, n_in = len(inputs), n_out = len(outputs)
    if code.shape[1] != 5:
        raise ValueError(f"Expected code of 5 columns, received {code.shape[1]}")
    if n_out == 0:
        raise ValueError("Expected at least one output, received none")
    if rows == 0 or cols == 0:
        return
    single = outputs[0].dtype.itemsize == 4
    run.code, run.n_code = &code[0, 0], code.shape[0]
    run.constants = &constants[0] if constants.shape[0] else NULL
    run.rows, run.cols, run.n_registers, run.n_outputs = rows, cols, n_registers, n_out
    run.threads = threads_for(rows * cols * max(1, run.n_code // 4), n_threads)
    cdef void **ins = <void **>malloc((n_in + 1) * sizeof(void *))
    cdef void **outs = <void **>malloc((n_out + 1) * sizeof(void *))
    cdef int *home = <int *>malloc((n_registers + 1) * sizeof(int))
    cdef int *direct = <int *>malloc((run.n_code + 1) * sizeof(int))
    keep = []  # the views, so that no buffer goes away while the loop runs without the GIL
    try:
        if ins == NULL or outs == NULL or home == NULL or direct == NULL:
            raise MemoryError()
        _homes(&run, n_registers, home, direct)
        run.home, run.direct = home, direct
        for k in range(n_in):
            ins[k] = _address(inputs[k], single, False, keep)
        for k in range(n_out):
            outs[k] = _address(outputs[k], single, True, keep)
        if single:
            _execute(&run, <float **>ins, <float **>outs)
        else:
            _execute(&run, <double **>ins, <double **>outs)
    finally:
        free(ins)
        free(outs)
        free(home)
        free(direct)

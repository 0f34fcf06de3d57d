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
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

include "_threads.pxi"
include "cpu.pxi"
include "lanes.pxi"

cdef enum:
    BLOCK = 256  # elements per block: its registers stay in the first-level cache

# The opcodes (program.h says what each does) and the per-instruction loops, at the module's
# SIMD level.
cdef extern from "program.h" nogil:
    enum:
        LOAD "FCNN_OP_LOAD"
        LOAD_ROW "FCNN_OP_LOAD_ROW"
        LOAD_COL "FCNN_OP_LOAD_COL"
        CONST "FCNN_OP_CONST"
        STORE "FCNN_OP_STORE"
        ROW_SUM "FCNN_OP_ROW_SUM"
        LOAD_MASK "FCNN_OP_LOAD_MASK"
        STORE_MASK "FCNN_OP_STORE_MASK"
        ADD "FCNN_OP_ADD"
        SUB "FCNN_OP_SUB"
        MUL "FCNN_OP_MUL"
        DIV "FCNN_OP_DIV"
        MAX "FCNN_OP_MAX"
        MIN "FCNN_OP_MIN"
        POW "FCNN_OP_POW"
        FLOOR_DIVIDE "FCNN_OP_FLOOR_DIVIDE"
        MOD "FCNN_OP_MOD"
        GT "FCNN_OP_GT"
        GE "FCNN_OP_GE"
        LT "FCNN_OP_LT"
        LE "FCNN_OP_LE"
        EQ "FCNN_OP_EQ"
        NE "FCNN_OP_NE"
        WHERE "FCNN_OP_WHERE"
        NEG "FCNN_OP_NEG"
        EXP "FCNN_OP_EXP"
        LOG "FCNN_OP_LOG"
        LOG1P "FCNN_OP_LOG1P"
        EXPM1 "FCNN_OP_EXPM1"
        SQRT "FCNN_OP_SQRT"
        SQUARE "FCNN_OP_SQUARE"
        ABS "FCNN_OP_ABS"
        SIGN "FCNN_OP_SIGN"
        SIN "FCNN_OP_SIN"
        COS "FCNN_OP_COS"
        FLOOR "FCNN_OP_FLOOR"
        RINT "FCNN_OP_RINT"
        LOG2 "FCNN_OP_LOG2"
        LOG10 "FCNN_OP_LOG10"
        RECIPROCAL "FCNN_OP_RECIPROCAL"
    void fcnn_program_binary_f32(int op, float *d, const float *a, const float *b,
                                 Py_ssize_t m)
    void fcnn_program_binary_f64(int op, double *d, const double *a, const double *b,
                                 Py_ssize_t m)
    void fcnn_program_unary_f32(int op, float *d, const float *a, Py_ssize_t m)
    void fcnn_program_unary_f64(int op, double *d, const double *a, Py_ssize_t m)
    void fcnn_program_where_f32(float *d, const float *c, const float *x, const float *y,
                                Py_ssize_t m)
    void fcnn_program_where_f64(double *d, const double *c, const double *x, const double *y,
                                Py_ssize_t m)
    void fcnn_program_load_mask_f32(float *d, const unsigned char *mask, Py_ssize_t m)
    void fcnn_program_load_mask_f64(double *d, const unsigned char *mask, Py_ssize_t m)
    void fcnn_program_store_mask_f32(unsigned char *mask, const float *a, Py_ssize_t m)
    void fcnn_program_store_mask_f64(unsigned char *mask, const double *a, Py_ssize_t m)

OPCODES = {"load": LOAD, "load_row": LOAD_ROW, "load_col": LOAD_COL, "const": CONST,
           "store": STORE, "row_sum": ROW_SUM, "load_mask": LOAD_MASK, "store_mask": STORE_MASK,
           "add": ADD, "subtract": SUB, "multiply": MUL,
           "divide": DIV, "maximum": MAX, "minimum": MIN, "power": POW,
           "floor_divide": FLOOR_DIVIDE, "mod": MOD, "greater": GT,
           "greater_equal": GE, "less": LT, "less_equal": LE, "equal": EQ, "not_equal": NE,
           "where": WHERE, "negative": NEG, "exp": EXP, "log": LOG, "log1p": LOG1P,
           "expm1": EXPM1, "sqrt": SQRT, "square": SQUARE, "abs": ABS, "sign": SIGN, "sin": SIN,
           "cos": COS, "floor": FLOOR, "rint": RINT, "log2": LOG2, "log10": LOG10,
           "reciprocal": RECIPROCAL}


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
        if op == STORE_MASK:  # a bool output: its pointer is to bytes
            if floating is float:
                fcnn_program_store_mask_f32(<unsigned char *>outputs[ins[1]] + start,
                                            reg[ins[2]], m)
            else:
                fcnn_program_store_mask_f64(<unsigned char *>outputs[ins[1]] + start,
                                            reg[ins[2]], m)
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
                _lanes_start(acc + ins[1] * LANES, a)
                _lanes_add(acc + ins[1] * LANES, a + LANES, w - LANES)
            else:
                _lanes_add(acc + ins[1] * LANES, a, w)
            if last:
                s = _lanes_total(acc + ins[1] * LANES)
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
        elif op == LOAD_MASK:  # a bool input: its pointer is to bytes
            if floating is float:
                fcnn_program_load_mask_f32(d, <unsigned char *>inputs[ins[2]] + start, m)
            else:
                fcnn_program_load_mask_f64(d, <unsigned char *>inputs[ins[2]] + start, m)
        elif op == CONST:
            pass  # filled once per thread, before the first block (_execute)
        elif op == WHERE:
            if floating is float:
                fcnn_program_where_f32(d, reg[ins[2]], reg[ins[3]], reg[ins[4]], m)
            else:
                fcnn_program_where_f64(d, reg[ins[2]], reg[ins[3]], reg[ins[4]], m)
        elif op >= ADD and op <= NE:
            if floating is float:
                fcnn_program_binary_f32(op, d, reg[ins[2]], reg[ins[3]], m)
            else:
                fcnn_program_binary_f64(op, d, reg[ins[2]], reg[ins[3]], m)
        elif floating is float:
            fcnn_program_unary_f32(op, d, reg[ins[2]], m)
        else:
            fcnn_program_unary_f64(op, d, reg[ins[2]], m)


cdef int _execute(const _Run *run, floating **inputs, floating **outputs) except -1:
    """Every block of the program, groups of whole rows to each thread."""
    cdef Py_ssize_t per = max(1, BLOCK // run.cols)  # rows per block
    cdef Py_ssize_t groups = (run.rows + per - 1) // per, g, c0, m, nr
    cdef Py_ssize_t nreg = run.n_registers + 1, nacc = (run.n_outputs + 1) * LANES
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
                and run.code[5 * i] != STORE_MASK and run.code[5 * i + 1] == register:
            return i
    return 0


cdef void *_address(array, bint single, bint written, list keep) except NULL:
    """The first element of ``array``, a non-empty 1-D C-contiguous array of float32
    (``single``) or float64, or of bools (a mask), writable when ``written``; its view is kept
    in ``keep``."""
    cdef const float[::1] f32
    cdef const double[::1] f64
    cdef float[::1] w32
    cdef double[::1] w64
    cdef const unsigned char[::1] mask
    cdef unsigned char[::1] w_mask
    if array.dtype == bool and written:
        w_mask = array.view(np.uint8)
        keep.append(w_mask)
        return &w_mask[0]
    if array.dtype == bool:
        mask = array.view(np.uint8)
        keep.append(mask)
        return <void *>&mask[0]
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
                inputs,                          # IN  arrays: (rows * cols,), (rows,) or (cols,);
                                                 #     bool (rows * cols,) for a mask
                outputs,                         # OUT k >= 1 arrays: (rows * cols,) or (rows,);
                                                 #     bool (rows * cols,) for a mask
                Py_ssize_t rows,
                Py_ssize_t cols,
                int n_registers,
                int n_threads):
    """Runs the program ``code`` over (rows, cols) elements, in the dtype of the arrays
    (float32 or float64, all alike but the masks, bool). The caller (fastcnn._ops.program) has
    checked that every register is written before it is read, every index is in range and
    every array has the size and dtype its instructions read or write."""
    cdef _Run run
    cdef Py_ssize_t k, n_in = len(inputs), n_out = len(outputs)
    if code.shape[1] != 5:
        raise ValueError(f"Expected code of 5 columns, received {code.shape[1]}")
    if n_out == 0:
        raise ValueError("Expected at least one output, received none")
    if rows == 0 or cols == 0:
        return
    floats = [a for a in list(outputs) + list(inputs) if a.dtype != bool]
    if not floats:
        raise ValueError("Expected a float32 or float64 array among the inputs and outputs, "
                         "received masks only")
    single = floats[0].dtype.itemsize == 4
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

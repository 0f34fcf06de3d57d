/* Dense layers with at most 14 outputs (a classifier's last layer), in float (_f32) and double
 * (_f64): see vectors.h for how this header compiles its typed part once per type.
 *
 * The general kernels treat a dense layer as a 1x1 convolution and vectorise along the outputs,
 * which pads 10 classes to 16 lanes, and their tiles walk 8-12 rows of x at once. Here the
 * vectors run along the inputs instead, so no lane is padding, and each row of x, dx or dy is read
 * or written front to back.
 *
 * All three passes use wt, the weights transposed to (O, kp): O = outputs rounded up to even and
 * kp = inputs rounded up to 16, zero-padded. dW is accumulated as dwt (O, kp) and transposed back
 * per range of inputs. Every sum runs in an order fixed by the shapes alone, so results do not
 * depend on the thread count. */
#ifndef FCNN_F64
#ifndef FASTCNN_DENSE_NARROW_H
#define FASTCNN_DENSE_NARROW_H

#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "pack.h"
#include "vectors.h"

/* At 15-16 outputs the general kernels fill their 16 lanes, and two rows' accumulators here would
 * no longer fit 32 registers. */
enum { FCNN_NARROW_MAX = 14 };

static int fcnn_narrow(int o) { return o <= FCNN_NARROW_MAX; }
static int fcnn_narrow_rows(int o) { return (o + 1) & ~1; }
static int fcnn_narrow_kp(int k) { return fcnn_round16(k); }

/* The most partial sums of dW that fcnn_narrow_dw holds at once for n rows: one more than the
 * bits of its chunk count. */
static int fcnn_narrow_stack_levels(int n)
{
    int levels = 1;
    for (int chunks = (n + FCNN_ROWS_PER_PARTIAL - 1) / FCNN_ROWS_PER_PARTIAL; chunks;
         chunks >>= 1)
        levels++;
    return levels;
}

/* Inputs per span, a multiple of 16: the span's slice of wt or dwt, o_rows rows of it, fills at
 * most 16 KB of floats (32 KB of doubles), a third of a typical L1 and the rest for x, dx or dy. */
static int fcnn_narrow_span(int o_rows) { return fcnn_imax(16, (4096 / o_rows) & ~15); }

enum { FCNN_NARROW_FWD, FCNN_NARROW_DX, FCNN_NARROW_DW };

/* Inputs per dW range, a multiple of 16: at most a span, and the ranges split evenly among the
 * threads. */
static int fcnn_narrow_dw_range(int kp, int o, int n_threads)
{
    const int vecs = kp / 16, most = fcnn_narrow_span(fcnn_narrow_rows(o)) / 16;
    const int per_thread = (vecs + n_threads - 1) / n_threads;
    const int ranges = (per_thread + most - 1) / most;
    return 16 * ((per_thread + ranges - 1) / ranges);
}

#define FCNN_NARROW_CASES(o, CALL)                                                                \
    switch (fcnn_narrow_rows(o)) {                                                                \
    case 2: CALL(2); break;                                                                       \
    case 4: CALL(4); break;                                                                       \
    case 6: CALL(6); break;                                                                       \
    case 8: CALL(8); break;                                                                       \
    case 10: CALL(10); break;                                                                     \
    case 12: CALL(12); break;                                                                     \
    default: CALL(14); break;                                                                     \
    }

/* Rows at a time and dX vectors at a time, so that accumulators, broadcasts and operands fit the
 * register file: 32 zmm under AVX-512, 16 ymm or xmm otherwise. dW takes its range in vectors. */
#define FCNN_FWD512(O) FCNN_AT(fcnn_narrow_fwd, FCNN_W512)(O, 2, jb, a, b)
#define FCNN_DX512(O) FCNN_AT(fcnn_narrow_dx, FCNN_W512)(O, 8, jb, a, b)
#define FCNN_DW512(O) FCNN_AT(fcnn_narrow_dw, FCNN_W512)(O, 2, jb, a / FCNN_W512, b / FCNN_W512)
#define FCNN_FWD256(O) FCNN_AT(fcnn_narrow_fwd, FCNN_W256)(O, 1, jb, a, b)
#define FCNN_DX256(O) FCNN_AT(fcnn_narrow_dx, FCNN_W256)(O, O <= 10 ? 4 : 2, jb, a, b)
#define FCNN_DW256(O) FCNN_AT(fcnn_narrow_dw, FCNN_W256)(O, 1, jb, a / FCNN_W256, b / FCNN_W256)
#define FCNN_FWD128(O) FCNN_AT(fcnn_narrow_fwd, FCNN_W128)(O, 1, jb, a, b)
#define FCNN_DX128(O) FCNN_AT(fcnn_narrow_dx, FCNN_W128)(O, O <= 10 ? 4 : 2, jb, a, b)
#define FCNN_DW128(O) FCNN_AT(fcnn_narrow_dw, FCNN_W128)(O, 1, jb, a / FCNN_W128, b / FCNN_W128)

#define FCNN_F64 0
#include "dense_narrow.h"
#define FCNN_F64 1
#include "dense_narrow.h"

#undef FCNN_FWD512
#undef FCNN_DX512
#undef FCNN_DW512
#undef FCNN_FWD256
#undef FCNN_DX256
#undef FCNN_DW256
#undef FCNN_FWD128
#undef FCNN_DX128
#undef FCNN_DW128

#endif /* FASTCNN_DENSE_NARROW_H */
#else /* the part over FCNN_T */

/* All three passes use wt (O, kp); see the top of this file. */
typedef struct {
    const FCNN_T *x, *wt, *bias, *dy;
    FCNN_T *out, *dx, *dwt;
    FCNN_T *stack; /* dW: fcnn_narrow_stack_levels(n) - 1 more (O, kp) blocks */
    int n, k, kp, o, relu;
} FCNN_TN(fcnn_narrow_job);

#define FCNN_W FCNN_W512
#include "dense_tiles.h"
#define FCNN_W FCNN_W256
#include "dense_tiles.h"
#define FCNN_W FCNN_W128
#include "dense_tiles.h"

/* One pass over rows [a, b) (forward, dX) or over inputs [a, b), multiples of 16 (dW). */
#if FCNN_X86
FCNN_TARGET_AVX512 static void
FCNN_TLEVEL(fcnn_narrow, _avx512)(int pass, const FCNN_TN(fcnn_narrow_job) *jb, int a, int b)
{
    if (pass == FCNN_NARROW_FWD) FCNN_NARROW_CASES(jb->o, FCNN_FWD512)
    else if (pass == FCNN_NARROW_DX) FCNN_NARROW_CASES(jb->o, FCNN_DX512)
    else FCNN_NARROW_CASES(jb->o, FCNN_DW512)
}
FCNN_TARGET_AVX2 static void
FCNN_TLEVEL(fcnn_narrow, _avx2)(int pass, const FCNN_TN(fcnn_narrow_job) *jb, int a, int b)
{
    if (pass == FCNN_NARROW_FWD) FCNN_NARROW_CASES(jb->o, FCNN_FWD256)
    else if (pass == FCNN_NARROW_DX) FCNN_NARROW_CASES(jb->o, FCNN_DX256)
    else FCNN_NARROW_CASES(jb->o, FCNN_DW256)
}
#endif
static void FCNN_TLEVEL(fcnn_narrow, _scalar)(int pass, const FCNN_TN(fcnn_narrow_job) *jb, int a,
                                             int b)
{
    if (pass == FCNN_NARROW_FWD) FCNN_NARROW_CASES(jb->o, FCNN_FWD128)
    else if (pass == FCNN_NARROW_DX) FCNN_NARROW_CASES(jb->o, FCNN_DX128)
    else FCNN_NARROW_CASES(jb->o, FCNN_DW128)
}

static void FCNN_TN(fcnn_narrow_pass)(int level, int pass, const FCNN_TN(fcnn_narrow_job) *jb,
                                      int a, int b)
{
    FCNN_TDISPATCH(level, fcnn_narrow, pass, jb, a, b);
}

/* Columns [i0, i1) of wt (O, kp): wt[c, i] = w[i, c] (w is (k, o)), zero past k and for c >= o.
 * Read in w's order: walking one output's strided column at a time swept all of w O times. */
static void FCNN_TN(fcnn_narrow_pack)(const FCNN_T *w, int k, int o, int kp, int i0, int i1,
                                      FCNN_T *wt)
{
    const int rows = fcnn_narrow_rows(o);
    for (int i = i0; i < i1; i++)
        for (int c = 0; c < rows; c++)
            wt[(size_t)c * kp + i] = i < k && c < o ? w[(size_t)i * o + c] : (FCNN_T)0;
}

/* dw[i, c] for the inputs i of [a, b): dW of the range, then transposed into place. */
static void FCNN_TN(fcnn_narrow_dw)(int level, const FCNN_TN(fcnn_narrow_job) *jb, FCNN_T *dw,
                                    int a, int b)
{
    FCNN_TN(fcnn_narrow_pass)(level, FCNN_NARROW_DW, jb, a, b);
    for (int i = a; i < fcnn_min(b, jb->k); i++)
        for (int c = 0; c < jb->o; c++)
            dw[(size_t)i * jb->o + c] = jb->dwt[(size_t)c * jb->kp + i];
}

/* db[c] = the sum of dy[:, c]: per chunk of FCNN_ROWS_PER_PARTIAL rows, rows in order, then
 * the chunk sums along fcnn_sum_parts's tree, built as fcnn_narrow_dw builds it. */
static void FCNN_TN(fcnn_narrow_db)(const FCNN_T *dy, int n, int o, FCNN_T *db)
{
    FCNN_T stack[64][FCNN_NARROW_MAX];
    int size[64], top = 0;
    for (int r0 = 0; r0 < n; r0 += FCNN_ROWS_PER_PARTIAL) {
        FCNN_T *part = stack[top];
        memset(part, 0, (size_t)o * sizeof(FCNN_T));
        for (int r = r0; r < fcnn_min(r0 + FCNN_ROWS_PER_PARTIAL, n); r++)
            for (int c = 0; c < o; c++)
                part[c] += dy[(size_t)r * o + c];
        size[top++] = 1;
        while (top >= 2 && size[top - 1] == size[top - 2]) {
            for (int c = 0; c < o; c++)
                stack[top - 2][c] += stack[top - 1][c];
            size[top - 2] *= 2;
            top--;
        }
    }
    for (; top >= 2; top--)
        for (int c = 0; c < o; c++)
            stack[top - 2][c] += stack[top - 1][c];
    if (top)
        memcpy(db, stack[0], (size_t)o * sizeof(FCNN_T));
    else
        memset(db, 0, (size_t)o * sizeof(FCNN_T));
}

#undef FCNN_F64
#endif

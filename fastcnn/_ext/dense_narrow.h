/* Dense layers with at most 14 outputs (a classifier's last layer), in float32.
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
#ifndef FASTCNN_DENSE_NARROW_H
#define FASTCNN_DENSE_NARROW_H

#include "cpu.h"
#include "pack.h"
#include "vectors.h"

/* At 15-16 outputs the general kernels fill their 16 lanes, and two rows' accumulators here would
 * no longer fit 32 registers. */
enum { FCNN_NARROW_MAX = 14 };

typedef struct {
    const float *x, *wt, *bias, *dy;
    float *out, *dx, *dwt;
    int n, k, kp, o, relu;
} fcnn_narrow_job;

static int fcnn_narrow(int o) { return o <= FCNN_NARROW_MAX; }
static int fcnn_narrow_rows(int o) { return (o + 1) & ~1; }
static int fcnn_narrow_kp(int k) { return fcnn_round16(k); }

/* Inputs per span, a multiple of 16: the span's slice of wt or dwt, o_rows rows of it, fills at
 * most 16 KB, a third of a typical L1 and the rest for x, dx or dy. */
static int fcnn_narrow_span(int o_rows) { return fcnn_imax(16, (4096 / o_rows) & ~15); }

#define FCNN_W 16
#include "dense_tiles.h"
#define FCNN_W 8
#include "dense_tiles.h"
#define FCNN_W 4
#include "dense_tiles.h"

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
 * register file: 32 zmm under AVX-512, 16 ymm or xmm otherwise. */
#define FCNN_FWD16(O) fcnn_narrow_fwd_w16(O, 2, jb, a, b)
#define FCNN_DX16(O) fcnn_narrow_dx_w16(O, 8, jb, a, b)
#define FCNN_DW16(O) fcnn_narrow_dw_w16(O, 2, jb, a / 16, b / 16)
#define FCNN_FWD8(O) fcnn_narrow_fwd_w8(O, 1, jb, a, b)
#define FCNN_DX8(O) fcnn_narrow_dx_w8(O, O <= 10 ? 4 : 2, jb, a, b)
#define FCNN_DW8(O) fcnn_narrow_dw_w8(O, 1, jb, a / 8, b / 8)
#define FCNN_FWD4(O) fcnn_narrow_fwd_w4(O, 1, jb, a, b)
#define FCNN_DX4(O) fcnn_narrow_dx_w4(O, O <= 10 ? 4 : 2, jb, a, b)
#define FCNN_DW4(O) fcnn_narrow_dw_w4(O, 1, jb, a / 4, b / 4)

enum { FCNN_NARROW_FWD, FCNN_NARROW_DX, FCNN_NARROW_DW };

/* One pass over rows [a, b) (forward, dX) or over inputs [a, b), multiples of 16 (dW). */
#if FCNN_X86
FCNN_TARGET_AVX512 static void
fcnn_narrow_avx512(int pass, const fcnn_narrow_job *jb, int a, int b)
{
    if (pass == FCNN_NARROW_FWD) FCNN_NARROW_CASES(jb->o, FCNN_FWD16)
    else if (pass == FCNN_NARROW_DX) FCNN_NARROW_CASES(jb->o, FCNN_DX16)
    else FCNN_NARROW_CASES(jb->o, FCNN_DW16)
}
FCNN_TARGET_AVX2 static void
fcnn_narrow_avx2(int pass, const fcnn_narrow_job *jb, int a, int b)
{
    if (pass == FCNN_NARROW_FWD) FCNN_NARROW_CASES(jb->o, FCNN_FWD8)
    else if (pass == FCNN_NARROW_DX) FCNN_NARROW_CASES(jb->o, FCNN_DX8)
    else FCNN_NARROW_CASES(jb->o, FCNN_DW8)
}
#endif
static void fcnn_narrow_scalar(int pass, const fcnn_narrow_job *jb, int a, int b)
{
    if (pass == FCNN_NARROW_FWD) FCNN_NARROW_CASES(jb->o, FCNN_FWD4)
    else if (pass == FCNN_NARROW_DX) FCNN_NARROW_CASES(jb->o, FCNN_DX4)
    else FCNN_NARROW_CASES(jb->o, FCNN_DW4)
}

static void fcnn_narrow_pass(int level, int pass, const fcnn_narrow_job *jb, int a, int b)
{
    FCNN_DISPATCH(level, fcnn_narrow, pass, jb, a, b);
}

/* Columns [i0, i1) of wt (O, kp): wt[c, i] = w[i, c] (w is (k, o)), zero past k and for c >= o.
 * Read in w's order: walking one output's strided column at a time swept all of w O times. */
static void fcnn_narrow_pack(const float *w, int k, int o, int kp, int i0, int i1, float *wt)
{
    const int rows = fcnn_narrow_rows(o);
    for (int i = i0; i < i1; i++)
        for (int c = 0; c < rows; c++)
            wt[(size_t)c * kp + i] = i < k && c < o ? w[(size_t)i * o + c] : 0.0f;
}

/* Inputs per dW range, a multiple of 16: at most a span, and the ranges split evenly among the
 * threads. */
static int fcnn_narrow_dw_range(int kp, int o, int n_threads)
{
    const int vecs = kp / 16, most = fcnn_narrow_span(fcnn_narrow_rows(o)) / 16;
    const int per_thread = (vecs + n_threads - 1) / n_threads;
    const int ranges = (per_thread + most - 1) / most;
    return 16 * ((per_thread + ranges - 1) / ranges);
}

/* dw[i, c] for the inputs i of [a, b): dW of the range, then transposed into place. */
static void fcnn_narrow_dw(int level, const fcnn_narrow_job *jb, float *dw, int a, int b)
{
    fcnn_narrow_pass(level, FCNN_NARROW_DW, jb, a, b);
    for (int i = a; i < fcnn_min(b, jb->k); i++)
        for (int c = 0; c < jb->o; c++)
            dw[(size_t)i * jb->o + c] = jb->dwt[(size_t)c * jb->kp + i];
}

/* db[c] = the sum of dy[:, c], rows in order. */
static void fcnn_narrow_db(const float *dy, int n, int o, float *db)
{
    memset(db, 0, (size_t)o * sizeof(float));
    for (int r = 0; r < n; r++)
        for (int c = 0; c < o; c++)
            db[c] += dy[(size_t)r * o + c];
}

#undef FCNN_FWD16
#undef FCNN_DX16
#undef FCNN_DW16
#undef FCNN_FWD8
#undef FCNN_DX8
#undef FCNN_DW8
#undef FCNN_FWD4
#undef FCNN_DX4
#undef FCNN_DW4

#endif /* FASTCNN_DENSE_NARROW_H */

/* The narrow dense micro-kernels, included by dense_narrow.h once per element type FCNN_T and
 * vector width: define FCNN_W (16, 8 or 4 floats; 8, 4 or 2 doubles) before each inclusion; every
 * name gets the suffix _w<W>_f32 or _w<W>_f64. O, the output
 * count rounded up to even, is a compile-time constant in every caller, so the O accumulators or
 * broadcasts of a row stay in registers. The width macros (FCNN_VT, FCNN_LDW, FCNN_NAME...) are
 * vectors.h's. Deliberately no include guard. */

/* p, or where fewer than FCNN_W elements are left in the row (n), buf holding them zero-filled:
 * a row's tail is read without passing its end. */
FCNN_INLINE const FCNN_T *FCNN_NAME(fcnn_narrow_src)(const FCNN_T *p, int n, FCNN_T *buf)
{
    if (n >= FCNN_W)
        return p;
    memset(buf, 0, FCNN_W * sizeof(FCNN_T));
    memcpy(buf, p, (size_t)n * sizeof(FCNN_T));
    return buf;
}

/* The sum of the FCNN_W elements at buf, halving them each step (a fixed order, so results do not
 * depend on the thread count); buf is overwritten. */
FCNN_INLINE FCNN_T FCNN_NAME(fcnn_narrow_hsum)(FCNN_T *buf)
{
#pragma GCC unroll 4
    for (int h = FCNN_W / 2; h >= 1; h /= 2)
#pragma GCC unroll 8
        for (int l = 0; l < h; l++)
            buf[l] += buf[l + h];
    return buf[0];
}

/* out[r, c] = relu?(x[r, :] . wt[c, :] + bias[c]) for rows [r0, r1) and c < o. Blocks of RB rows
 * take the inputs one span at a time, so that the span's slice of wt stays in L1 for all of them
 * (the whole of wt, 64 KB for 1600 -> 10, streamed from L2 for every row pair); the vector sums
 * wait in part between spans. R rows at a time; a lone last row is computed twice, written once. */
FCNN_INLINE void FCNN_NAME(fcnn_narrow_fwd)(const int O, const int R,
                                            const FCNN_TN(fcnn_narrow_job) *jb, int r0, int r1)
{
    enum { RB = 16 };
    const int k = jb->k, kp = jb->kp, o = jb->o, nv = (k + FCNN_W - 1) / FCNN_W;
    const int span = fcnn_narrow_span(O) / FCNN_W;
    const FCNN_T *wt = jb->wt;
    FCNN_VT part[RB][FCNN_NARROW_MAX];
    for (int rb = r0; rb < r1; rb += RB) {
        const int re = fcnn_min(rb + RB, r1);
        for (int j0 = 0; j0 < nv; j0 += span) {
            const int j1 = fcnn_min(j0 + span, nv);
            for (int r = rb; r < re; r += R) {
                const FCNN_T *xr[2];
                FCNN_VT acc[2][FCNN_NARROW_MAX];
#pragma GCC unroll 2
                for (int i = 0; i < R; i++) {
                    const int ri = fcnn_min(r + i, re - 1);
                    xr[i] = jb->x + (size_t)ri * k;
#pragma GCC unroll 16
                    for (int c = 0; c < O; c++)
                        acc[i][c] = j0 ? part[ri - rb][c] : (FCNN_VT){0};
                }
                for (int j = j0; j < j1; j++) {
                    FCNN_VT xv[2];
                    FCNN_T buf[FCNN_W];
#pragma GCC unroll 2
                    for (int i = 0; i < R; i++)
                        xv[i] = FCNN_LDW(FCNN_NAME(fcnn_narrow_src)(xr[i] + j * FCNN_W,
                                                                    k - j * FCNN_W, buf));
#pragma GCC unroll 16
                    for (int c = 0; c < O; c++) {
                        const FCNN_VT wv = FCNN_LDW(wt + (size_t)c * kp + j * FCNN_W);
#pragma GCC unroll 2
                        for (int i = 0; i < R; i++)
                            acc[i][c] += xv[i] * wv;
                    }
                }
                /* loops to the constants R and O, so that acc is never indexed at run time: that
                 * would keep it in memory, not registers */
#pragma GCC unroll 2
                for (int i = 0; i < R; i++)
#pragma GCC unroll 16
                    for (int c = 0; c < O; c++) {
                        if (r + i >= re)
                            continue;
                        if (j1 < nv) {
                            part[r + i - rb][c] = acc[i][c];
                        } else if (c < o) {
                            FCNN_T buf[FCNN_W];
                            FCNN_STW(buf, acc[i][c]);
                            const FCNN_T s = FCNN_NAME(fcnn_narrow_hsum)(buf) +
                                            (jb->bias ? jb->bias[c] : (FCNN_T)0);
                            jb->out[(size_t)(r + i) * o + c] = jb->relu && !(s > 0) ? (FCNN_T)0 : s;
                        }
                    }
            }
        }
    }
}

/* dx[r, :] = sum_c dy[r, c] * wt[c, :] for rows [r0, r1): one span of inputs (its slice of wt in
 * L1) for all the rows, then the next. JV vectors of a row at a time: JV independent sums hide
 * the FMA latency of each sum's O steps. */
FCNN_INLINE void FCNN_NAME(fcnn_narrow_dx)(const int O, const int JV,
                                           const FCNN_TN(fcnn_narrow_job) *jb, int r0, int r1)
{
    const int k = jb->k, kp = jb->kp, o = jb->o, full = k / FCNN_W, tail = k % FCNN_W;
    const int nv = (k + FCNN_W - 1) / FCNN_W, span = fcnn_narrow_span(O) / FCNN_W;
    const FCNN_T *wt = jb->wt;
    for (int j0 = 0; j0 < nv; j0 += span) {
        const int j1 = fcnn_min(j0 + span, nv), j1full = fcnn_min(j1, full);
        for (int r = r0; r < r1; r++) {
            const FCNN_T *d = jb->dy + (size_t)r * o;
            FCNN_T *dx = jb->dx + (size_t)r * k;
            FCNN_VT s[FCNN_NARROW_MAX];
#pragma GCC unroll 16
            for (int c = 0; c < O; c++)
                s[c] = (FCNN_VT){0} + (c < o ? d[c] : (FCNN_T)0);
            int j = j0;
            for (; j + JV <= j1full; j += JV) {
                FCNN_VT v[8];
#pragma GCC unroll 8
                for (int u = 0; u < JV; u++)
                    v[u] = (FCNN_VT){0};
#pragma GCC unroll 16
                for (int c = 0; c < O; c++)
#pragma GCC unroll 8
                    for (int u = 0; u < JV; u++)
                        v[u] += FCNN_LDW(wt + (size_t)c * kp + (j + u) * FCNN_W) * s[c];
#pragma GCC unroll 8
                for (int u = 0; u < JV; u++)
                    FCNN_STW(dx + (j + u) * FCNN_W, v[u]);
            }
            for (; j < j1; j++) { /* wt's zero padding makes the tail vector whole */
                FCNN_VT v = {0};
#pragma GCC unroll 16
                for (int c = 0; c < O; c++)
                    v += FCNN_LDW(wt + (size_t)c * kp + j * FCNN_W) * s[c];
                if (j < full) {
                    FCNN_STW(dx + j * FCNN_W, v);
                } else {
                    FCNN_T buf[FCNN_W];
                    FCNN_STW(buf, v);
                    memcpy(dx + j * FCNN_W, buf, (size_t)tail * sizeof(FCNN_T));
                }
            }
        }
    }
}

/* dwt[c, j*W ..] += dy[r, c] * x[r, j*W ..] for rows r .. r+R-1, in order, the vectors j in
 * [j0, j1) and c < O (dy's padding columns count as zero); dwt is (O, kp). */
FCNN_INLINE void FCNN_NAME(fcnn_narrow_dw_rows)(const int O, const int R,
                                                const FCNN_TN(fcnn_narrow_job) *jb, int r, int j0,
                                                int j1, FCNN_T *const dwt)
{
    const int k = jb->k, kp = jb->kp, o = jb->o;
    FCNN_VT s[2][FCNN_NARROW_MAX];
    const FCNN_T *xr[2];
#pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
        xr[i] = jb->x + (size_t)(r + i) * k;
#pragma GCC unroll 16
        for (int c = 0; c < O; c++)
            s[i][c] = (FCNN_VT){0} + (c < o ? jb->dy[(size_t)(r + i) * o + c] : (FCNN_T)0);
    }
    for (int j = j0; j < j1; j++) {
        FCNN_VT xv[2];
        FCNN_T buf[FCNN_W];
#pragma GCC unroll 2
        for (int i = 0; i < R; i++)
            xv[i] = FCNN_LDW(FCNN_NAME(fcnn_narrow_src)(xr[i] + j * FCNN_W, k - j * FCNN_W, buf));
#pragma GCC unroll 16
        for (int c = 0; c < O; c++) {
            FCNN_T *a = dwt + (size_t)c * kp + j * FCNN_W;
            FCNN_VT acc = FCNN_LDW(a);
#pragma GCC unroll 2
            for (int i = 0; i < R; i++)
                acc += xv[i] * s[i][c];
            FCNN_STW(a, acc);
        }
    }
}

/* Columns [j0, j1) (vectors) of the O rows of a (O, kp) += those of b. */
FCNN_INLINE void FCNN_NAME(fcnn_narrow_add)(const int O, int kp, FCNN_T *a, const FCNN_T *b,
                                            int j0, int j1)
{
    for (int c = 0; c < O; c++)
        for (int i = j0 * FCNN_W; i < j1 * FCNN_W; i++)
            a[(size_t)c * kp + i] += b[(size_t)c * kp + i];
}

/* dwt[c, j*W ..] = the sum over all rows of dy[r, c] * x[r, j*W ..] for the vectors j in
 * [j0, j1): per chunk of FCNN_ROWS_PER_PARTIAL rows, rows in order, then the chunk sums along
 * fcnn_sum_parts's tree. That tree is built as the chunks come, in a stack of partial sums (a
 * binary counter: two sums of as many chunks merge at once, the rest right to left at the end),
 * level 0 being dwt and level l >= 1 jb->stack's (l - 1)th (O, kp) block, so each row of x is
 * read once along the range and the range's rows stay in L1. */
FCNN_INLINE void FCNN_NAME(fcnn_narrow_dw)(const int O, const int R,
                                           const FCNN_TN(fcnn_narrow_job) *jb, int j0, int j1)
{
    const int kp = jb->kp, G = FCNN_ROWS_PER_PARTIAL;
    const size_t level = (size_t)O * kp;
    int size[64], top = 0; /* chunks in each stack entry */
    for (int c = 0; c < O; c++)
        memset(jb->dwt + (size_t)c * kp + j0 * FCNN_W, 0,
               (size_t)(j1 - j0) * FCNN_W * sizeof(FCNN_T));
    j1 = fcnn_min(j1, (jb->k + FCNN_W - 1) / FCNN_W); /* past that, x has nothing to add */
    for (int r0 = 0; r0 < jb->n; r0 += G) {
        FCNN_T *part = top ? jb->stack + (top - 1) * level : jb->dwt;
        const int r1 = fcnn_min(r0 + G, jb->n);
        int r = r0;
        if (top)
            for (int c = 0; c < O; c++)
                memset(part + (size_t)c * kp + j0 * FCNN_W, 0,
                       (size_t)(j1 - j0) * FCNN_W * sizeof(FCNN_T));
        for (; r + R <= r1; r += R)
            FCNN_NAME(fcnn_narrow_dw_rows)(O, R, jb, r, j0, j1, part);
        for (; r < r1; r++)
            FCNN_NAME(fcnn_narrow_dw_rows)(O, 1, jb, r, j0, j1, part);
        size[top++] = 1;
        while (top >= 2 && size[top - 1] == size[top - 2]) {
            FCNN_NAME(fcnn_narrow_add)(O, kp, top == 2 ? jb->dwt : jb->stack + (top - 3) * level,
                                       jb->stack + (top - 2) * level, j0, j1);
            size[top - 2] *= 2;
            top--;
        }
    }
    for (; top >= 2; top--)
        FCNN_NAME(fcnn_narrow_add)(O, kp, top == 2 ? jb->dwt : jb->stack + (top - 3) * level,
                                   jb->stack + (top - 2) * level, j0, j1);
}

#undef FCNN_W

/* The depthwise passes, included by depthwise.h once per element type FCNN_T and vector width:
 * define FCNN_W (16, 8 or 4 floats; 8, 4 or 2 doubles) before each inclusion; every name gets the
 * suffix _w<W>_f32 or _w<W>_f64 (vectors.h's FCNN_NAME). Channels go four vectors at a time, then
 * one, then one by one: four vectors of accumulators and their operands fit the registers of
 * every level. Deliberately no include guard. */

/* s[v] = the V vectors at init + k, or zeros when init is NULL. */
FCNN_INLINE void FCNN_NAME(fcnn_dwise_start)(const int V, const FCNN_T *init, int k, FCNN_VT *s)
{
#pragma GCC unroll 4
    for (int v = 0; v < V; v++)
        s[v] = init ? FCNN_LDW(init + k + v * FCNN_W) : (FCNN_VT){0};
}

/* The V vectors s, through relu (or relu6) when asked, stored at out + k. */
FCNN_INLINE void FCNN_NAME(fcnn_dwise_store)(const int V, const FCNN_VT *s, int relu, FCNN_T *out,
                                             int k)
{
#pragma GCC unroll 4
    for (int v = 0; v < V; v++)
        FCNN_STW(out + k + v * FCNN_W, relu == FCNN_RELU6 ? FCNN_CAP6(FCNN_RELU(s[v]))
                                       : relu ? FCNN_RELU(s[v]) : s[v]);
}

/* Channels [k, n) one by one: out[j] = init[j] (0 when NULL) + sum_t a[t][j + off] * b[t][j],
 * then relu?. */
FCNN_INLINE void FCNN_NAME(fcnn_dwise_tail)(int nt, const FCNN_T *const *a,
                                            const FCNN_T *const *b, size_t off, int k, int n,
                                            const FCNN_T *init, int relu, FCNN_T *out)
{
    for (int j = k; j < n; j++) {
        FCNN_T s = init ? init[j] : (FCNN_T)0;
        for (int t = 0; t < nt; t++)
            s += a[t][j + off] * b[t][j];
        s = relu && s < 0 ? (FCNN_T)0 : s;
        out[j] = relu == FCNN_RELU6 && s > 6 ? (FCNN_T)6 : s;
    }
}

/* out[k] = init[k] (0 when init is NULL; init may be out) + sum_{t < nt} a[t][k] * b[t][k] for
 * k < n, the taps added in order, then relu? on the sum. */
FCNN_INLINE void FCNN_NAME(fcnn_dwise_taps)(int nt, const FCNN_T *const *a,
                                            const FCNN_T *const *b, int n, const FCNN_T *init,
                                            int relu, FCNN_T *out)
{
    int k = 0;
    for (int V = 4; V >= 1; V -= 3)
        for (; k + V * FCNN_W <= n; k += V * FCNN_W) {
            FCNN_VT s[4];
            FCNN_NAME(fcnn_dwise_start)(V, init, k, s);
            for (int t = 0; t < nt; t++) {
                const FCNN_T *p = a[t] + k, *q = b[t] + k;
#pragma GCC unroll 4
                for (int v = 0; v < V; v++)
                    s[v] += FCNN_LDW(p + v * FCNN_W) * FCNN_LDW(q + v * FCNN_W);
            }
            FCNN_NAME(fcnn_dwise_store)(V, s, relu, out, k);
        }
    FCNN_NAME(fcnn_dwise_tail)(nt, a, b, 0, k, n, init, relu, out);
}

/* fcnn_dwise_taps for two pixels whose inputs lie ``next`` elements apart (neighbours in an output
 * row, where the window moves by the stride): out and out2. Each weight vector is loaded once for
 * both, which cuts the loads per FMA from 2 to 1.5; every sum is the one fcnn_dwise_taps makes. */
FCNN_INLINE void FCNN_NAME(fcnn_dwise_taps2)(int nt, const FCNN_T *const *a,
                                             const FCNN_T *const *b, int n, size_t next,
                                             const FCNN_T *init, int relu, FCNN_T *out,
                                             FCNN_T *out2)
{
    int k = 0;
    for (int V = 4; V >= 1; V -= 3)
        for (; k + V * FCNN_W <= n; k += V * FCNN_W) {
            FCNN_VT s[4], u[4];
            FCNN_NAME(fcnn_dwise_start)(V, init, k, s);
            FCNN_NAME(fcnn_dwise_start)(V, init, k, u);
            for (int t = 0; t < nt; t++) {
                const FCNN_T *p = a[t] + k, *q = b[t] + k, *p2 = p + next;
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) {
                    const FCNN_VT w = FCNN_LDW(q + v * FCNN_W);
                    s[v] += FCNN_LDW(p + v * FCNN_W) * w;
                    u[v] += FCNN_LDW(p2 + v * FCNN_W) * w;
                }
            }
            FCNN_NAME(fcnn_dwise_store)(V, s, relu, out, k);
            FCNN_NAME(fcnn_dwise_store)(V, u, relu, out2, k);
        }
    /* the last channels one pixel after the other: GCC pairs the two pixels' products into one
     * vector multiply when they share a loop, and the adds after it no longer fuse into FMAs as
     * fcnn_dwise_taps's do */
    FCNN_NAME(fcnn_dwise_tail)(nt, a, b, 0, k, n, init, relu, out);
    FCNN_NAME(fcnn_dwise_tail)(nt, a, b, next, k, n, init, relu, out2);
}

/* acc[k] += sum_{j < m} p[j*ps + k] * q[j*qs + k] for k < n, the pixels added in order. */
FCNN_INLINE void FCNN_NAME(fcnn_dwise_strided)(int m, const FCNN_T *p, size_t ps,
                                               const FCNN_T *q, size_t qs, int n, FCNN_T *acc)
{
    int k = 0;
    for (int V = 4; V >= 1; V -= 3)
        for (; k + V * FCNN_W <= n; k += V * FCNN_W) {
            FCNN_VT s[4];
            FCNN_NAME(fcnn_dwise_start)(V, acc, k, s);
            const FCNN_T *pj = p + k, *qj = q + k;
            for (int j = 0; j < m; j++, pj += ps, qj += qs)
#pragma GCC unroll 4
                for (int v = 0; v < V; v++)
                    s[v] += FCNN_LDW(pj + v * FCNN_W) * FCNN_LDW(qj + v * FCNN_W);
            FCNN_NAME(fcnn_dwise_store)(V, s, 0, acc, k);
        }
    for (; k < n; k++) {
        FCNN_T s = acc[k];
        for (int j = 0; j < m; j++)
            s += p[j * ps + k] * q[j * qs + k];
        acc[k] = s;
    }
}

FCNN_INLINE void FCNN_NAME(fcnn_dwise_forward_row)(const fcnn_dwise_geom *g, const FCNN_T *x,
                                                   const FCNN_T *w, const FCNN_T *bias, int relu,
                                                   int i, FCNN_T *out)
{
    const int c = g->c, dm = g->dm, co = c * dm;
    const long long top = (long long)i * g->sh - g->pt;
    int a0, a1;
    fcnn_dwise_span(top, g->rh, g->h, g->kh, &a0, &a1);
    /* pixels [j0, j1) see the whole kernel width inside the row: no clipping, no division */
    int j0, j1;
    fcnn_dwise_span(-(long long)g->pl, g->sw, g->w - (g->kw - 1) * g->rw, g->ow, &j0, &j1);
    const FCNN_T *pa[FCNN_DWISE_TAPS], *pb[FCNN_DWISE_TAPS];
    /* two interior pixels at a time when their taps fit one batch */
    const int pairs = dm == 1 && (a1 - a0) * g->kw <= FCNN_DWISE_TAPS;
    for (int j = 0; j < g->ow;) {
        const long long left = (long long)j * g->sw - g->pl;
        FCNN_T *o = out + (size_t)j * co;
        if (pairs && j >= j0 && j + 1 < j1) {
            int nt = 0;
            for (int a = a0; a < a1; a++) {
                const FCNN_T *xr = x + (size_t)(top + (long long)a * g->rh) * g->w * c;
                for (int b = 0; b < g->kw; b++, nt++) {
                    pa[nt] = xr + (size_t)(left + (long long)b * g->rw) * c;
                    pb[nt] = w + ((size_t)a * g->kw + b) * co;
                }
            }
            FCNN_NAME(fcnn_dwise_taps2)(nt, pa, pb, c, (size_t)g->sw * c, bias, relu, o, o + co);
            j += 2;
            continue;
        }
        int b0 = 0, b1 = g->kw;
        if (j < j0 || j >= j1)
            fcnn_dwise_span(left, g->rw, g->w, g->kw, &b0, &b1);
        const FCNN_T *init = bias;
        int nt = 0;
        for (int a = a0; a < a1; a++) {
            const FCNN_T *xr = x + (size_t)(top + (long long)a * g->rh) * g->w * c;
            for (int b = b0; b < b1; b++) {
                pa[nt] = xr + (size_t)(left + (long long)b * g->rw) * c;
                pb[nt] = w + ((size_t)a * g->kw + b) * co;
                if (++nt == FCNN_DWISE_TAPS) { /* a window of more taps: carry on from out */
                    if (dm == 1)
                        FCNN_NAME(fcnn_dwise_taps)(nt, pa, pb, c, init, 0, o);
                    else
                        FCNN_TN(fcnn_dwise_taps_dm)(nt, pa, pb, c, dm, init, 0, o);
                    init = o;
                    nt = 0;
                }
            }
        }
        if (dm == 1)
            FCNN_NAME(fcnn_dwise_taps)(nt, pa, pb, c, init, relu, o);
        else
            FCNN_TN(fcnn_dwise_taps_dm)(nt, pa, pb, c, dm, init, relu, o);
        j++;
    }
}

/* The output row (or column) that tap t of a window reads input row r from: (r + pad - t*rate)
 * / stride when that divides and lies in [0, n), else -1. Strides 1 and 2, nearly every net's,
 * take no division. */
static inline long long FCNN_NAME(fcnn_dwise_source)(long long r, int pad, int t, int rate,
                                                     int stride, int n)
{
    const long long s = r + pad - (long long)t * rate;
    long long q;
    if (s < 0)
        return -1;
    if (stride == 1)
        q = s;
    else if (stride == 2)
        q = s & 1 ? -1 : s >> 1;
    else
        q = s % stride ? -1 : s / stride;
    return q < n ? q : -1;
}

FCNN_INLINE void FCNN_NAME(fcnn_dwise_dx_row)(const fcnn_dwise_geom *g, const FCNN_T *dy,
                                              const FCNN_T *w, int r, FCNN_T *dx)
{
    const int c = g->c, dm = g->dm, co = c * dm;
    const FCNN_T *pa[FCNN_DWISE_TAPS], *pb[FCNN_DWISE_TAPS];
    /* At stride 1, pixels [q0, q1) take every kernel column, from dY pixels that move with q:
     * two such neighbours at a time when their taps fit one batch. */
    int rows = 0;
    for (int a = 0; a < g->kh; a++)
        rows += FCNN_NAME(fcnn_dwise_source)(r, g->pt, a, g->rh, g->sh, g->oh) >= 0;
    const int pairs = g->sw == 1 && dm == 1 && rows * g->kw <= FCNN_DWISE_TAPS;
    const long long q0 = (long long)(g->kw - 1) * g->rw - g->pl, q1 = (long long)g->ow - g->pl;
    for (int q = 0; q < g->w; q++) {
        FCNN_T *o = dx + (size_t)q * c;
        if (pairs && q >= q0 && q + 1 < q1) {
            int nt = 0;
            for (int a = 0; a < g->kh; a++) {
                const long long i = FCNN_NAME(fcnn_dwise_source)(r, g->pt, a, g->rh, g->sh,
                                                                 g->oh);
                if (i < 0)
                    continue;
                for (int b = 0; b < g->kw; b++, nt++) {
                    pa[nt] = dy + ((size_t)i * g->ow + (size_t)(q + g->pl - b * g->rw)) * co;
                    pb[nt] = w + ((size_t)a * g->kw + b) * co;
                }
            }
            FCNN_NAME(fcnn_dwise_taps2)(nt, pa, pb, c, co, NULL, 0, o, o + c);
            q++;
            continue;
        }
        const FCNN_T *init = NULL;
        int nt = 0;
        for (int a = 0; a < g->kh; a++) {
            const long long i = FCNN_NAME(fcnn_dwise_source)(r, g->pt, a, g->rh, g->sh, g->oh);
            if (i < 0)
                continue;
            for (int b = 0; b < g->kw; b++) {
                const long long j = FCNN_NAME(fcnn_dwise_source)(q, g->pl, b, g->rw, g->sw,
                                                                 g->ow);
                if (j < 0)
                    continue;
                pa[nt] = dy + ((size_t)i * g->ow + (size_t)j) * co;
                pb[nt] = w + ((size_t)a * g->kw + b) * co;
                if (++nt == FCNN_DWISE_TAPS) {
                    if (dm == 1)
                        FCNN_NAME(fcnn_dwise_taps)(nt, pa, pb, c, init, 0, o);
                    else
                        FCNN_TN(fcnn_dwise_reduce_dm)(nt, pa, pb, c, dm, init, o);
                    init = o;
                    nt = 0;
                }
            }
        }
        if (nt > 0 || init == NULL) { /* the last taps, or none reached this pixel */
            if (dm == 1)
                FCNN_NAME(fcnn_dwise_taps)(nt, pa, pb, c, init, 0, o);
            else
                FCNN_TN(fcnn_dwise_reduce_dm)(nt, pa, pb, c, dm, init, o);
        }
    }
}

FCNN_INLINE void FCNN_NAME(fcnn_dwise_dw_rows)(const fcnn_dwise_geom *g, const FCNN_T *x,
                                               const FCNN_T *dy, ptrdiff_t r0, ptrdiff_t r1,
                                               FCNN_T *part_w, FCNN_T *part_b)
{
    const int c = g->c, dm = g->dm, co = c * dm;
    const size_t image = (size_t)g->h * g->w * c;
    for (size_t k = 0; k < (size_t)g->kh * g->kw * co; k++)
        part_w[k] = 0;
    if (part_b)
        for (int k = 0; k < co; k++)
            part_b[k] = 0;
    for (ptrdiff_t row = r0; row < r1; row++) {
        const ptrdiff_t n = row / g->oh;
        const int i = (int)(row - n * g->oh);
        const FCNN_T *xi = x + (size_t)n * image;
        const FCNN_T *dyr = dy + (size_t)row * g->ow * co;
        const long long top = (long long)i * g->sh - g->pt;
        int a0, a1;
        fcnn_dwise_span(top, g->rh, g->h, g->kh, &a0, &a1);
        for (int a = a0; a < a1; a++) {
            const FCNN_T *xr = xi + (size_t)(top + (long long)a * g->rh) * g->w * c;
            for (int b = 0; b < g->kw; b++) {
                /* the output pixels j whose tap b lies inside the row */
                const long long first = (long long)b * g->rw - g->pl;
                int j0, j1;
                fcnn_dwise_span(first, g->sw, g->w, g->ow, &j0, &j1);
                if (j0 >= j1)
                    continue;
                const FCNN_T *p = xr + (size_t)(first + (long long)j0 * g->sw) * c;
                const FCNN_T *q = dyr + (size_t)j0 * co;
                FCNN_T *acc = part_w + ((size_t)a * g->kw + b) * co;
                if (dm == 1)
                    FCNN_NAME(fcnn_dwise_strided)(j1 - j0, p, (size_t)g->sw * c, q, co, c, acc);
                else
                    FCNN_TN(fcnn_dwise_strided_dm)(j1 - j0, p, (size_t)g->sw * c, q, co, c, dm,
                                                   acc);
            }
        }
        if (part_b)
            FCNN_TN(fcnn_dwise_colsum)(g->ow, dyr, co, co, part_b);
    }
}

#undef FCNN_W

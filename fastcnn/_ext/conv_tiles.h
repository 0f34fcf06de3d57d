/* The register-tiled micro-kernels, included by tile_kernels.h once per element type FCNN_T and
 * vector width: define FCNN_W (16, 8 or 4 floats; 8, 4 or 2 doubles) before each inclusion; every
 * name gets the suffix _w<W>_f32 or _w<W>_f64.
 * One width per instruction set keeps the accumulators in registers: GCC lowers a vector wider
 * than the target's registers through memory (16-float vectors under AVX2 spilled 93 times per
 * 12 FMAs). The width macros (FCNN_VT, FCNN_LDW, FCNN_NAME...) are vectors.h's. Deliberately
 * no include guard. */

/* acc[p] = sum_{r<kh, j<kwci} x_p[r*k_row + j] * w[(r*kwci + j)*cb + (0 .. FCNN_W*NV)] for P pixels;
 * then bias, ReLU (or relu6: relu == FCNN_RELU6) and a store (or an add) of the nco real channels
 * for the np real pixels. */
FCNN_INLINE void FCNN_NAME(fcnn_tile)(const int P, const int NV, const int ACC, const FCNN_T *x,
                                      const int *xoff, int k_row, int kh, int kwci,
                                      const FCNN_T *w, int cb, const FCNN_T *bias, int relu,
                                      FCNN_T *out, const int *ooff, int np, int nco)
{
    FCNN_VT acc[FCNN_PMAX][4];
    const FCNN_T *xp[FCNN_PMAX];
#pragma GCC unroll 12
    for (int p = 0; p < P; p++) {
        xp[p] = x + xoff[p];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[p][v] = (FCNN_VT){0};
    }
    for (int r = 0; r < kh; r++) {
        const FCNN_T *wr = w + (size_t)r * kwci * cb;
        for (int j = 0; j < kwci; j++, wr += cb) {
            FCNN_VT wv[4];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                wv[v] = FCNN_LDW(wr + FCNN_W * v);
#pragma GCC unroll 12
            for (int p = 0; p < P; p++) {
                const FCNN_T s = xp[p][j];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[p][v] += wv[v] * s;
            }
        }
#pragma GCC unroll 12
        for (int p = 0; p < P; p++)
            xp[p] += k_row;
    }
    const int full = nco == FCNN_W * NV;
#pragma GCC unroll 12
    for (int p = 0; p < P; p++) {
        if (p >= np)
            break;
        FCNN_T *o = out + ooff[p];
        FCNN_T tail[256 / sizeof(FCNN_T)]; /* 4 vectors of AVX-512 */
        FCNN_T *dst = o;
        if (!full) { /* a channel tail goes through a buffer so no access passes the row's end */
            dst = tail;
            memset(tail, 0, sizeof tail);
            if (ACC)
                memcpy(tail, o, (size_t)nco * sizeof(FCNN_T));
        }
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            FCNN_VT a = acc[p][v];
            if (ACC)
                a = FCNN_LDW(dst + FCNN_W * v) + a;
            if (bias)
                a += FCNN_LDW(bias + FCNN_W * v);
            if (relu)
                a = FCNN_RELU(a);
            if (relu == FCNN_RELU6) /* then min(a, 6), NaN kept as relu6's select keeps it */
                a = FCNN_CAP6(a);
            FCNN_STW(dst + FCNN_W * v, a);
        }
        if (!full)
            memcpy(o, tail, (size_t)nco * sizeof(FCNN_T));
    }
}

/* All pixels against one panel block, P at a time. The last tile repeats its final pixel in the
 * unused rows (cheaper than a second tile shape) and writes only the np real ones. */
FCNN_INLINE void FCNN_NAME(fcnn_tile_block)(const int P, const int NV, const int ACC, const int cb,
                                            const FCNN_TN(fcnn_tile_job) *jb, const FCNN_T *w,
                                            const FCNN_T *bias, FCNN_T *out, int nco)
{
    const int px_row = jb->px_row, px_col = jb->px_col, out_row = jb->out_row;
    const int out_col = jb->out_col, ow = jb->ow, npix = jb->oh * jb->ow;
    int xoff[FCNN_PMAX], ooff[FCNN_PMAX];
    int y = 0, xq = 0; /* the next pixel's coordinates, stepped rather than divided for */
    for (int p0 = 0; p0 < npix; p0 += P) {
        const int np = fcnn_min(P, npix - p0);
        for (int p = 0; p < P; p++) {
            if (p < np) {
                xoff[p] = y * px_row + xq * px_col;
                ooff[p] = y * out_row + xq * out_col;
                if (++xq == ow) {
                    xq = 0;
                    y++;
                }
            } else {
                xoff[p] = xoff[p - 1];
                ooff[p] = ooff[p - 1];
            }
        }
        FCNN_NAME(fcnn_tile)(P, NV, ACC, jb->x, xoff, jb->k_row, jb->kh, jb->kwci, w, cb, bias, jb->relu,
                  out, ooff, np, nco);
    }
}

/* Pn: the pixel-tile height used with n accumulator vectors per pixel; CBMAX: fcnn_block_max of
 * the build, so that no build has tiles wider than its registers hold. */
#define FCNN_TILE_CASES(ACC)                                                                      \
    switch (nv) {                                                                                 \
    case 1: FCNN_NAME(fcnn_tile_block)(P1, 1, ACC, cb, jb, w, bias, out, nco); break;                        \
    case 2: if (CBMAX >= 2 * FCNN_W) FCNN_NAME(fcnn_tile_block)(P2, 2, ACC, cb, jb, w, bias, out, nco); break;       \
    case 3: if (CBMAX >= 3 * FCNN_W) FCNN_NAME(fcnn_tile_block)(P3, 3, ACC, cb, jb, w, bias, out, nco); break;       \
    default: if (CBMAX >= 4 * FCNN_W) FCNN_NAME(fcnn_tile_block)(P4, 4, ACC, cb, jb, w, bias, out, nco); break;      \
    }

/* One panel block's columns for all pixels, over the taps of jb (one K slice). */
FCNN_INLINE void FCNN_NAME(fcnn_tile_pass)(const int CBMAX, const int P1, const int P2, const int P3,
                                           const int P4, const int cb,
                                           const FCNN_TN(fcnn_tile_job) *jb, const FCNN_T *w,
                                           const FCNN_T *bias, FCNN_T *out, int nco)
{
    const int nv = (nco + FCNN_W - 1) / FCNN_W;
    if (jb->accumulate)
        FCNN_TILE_CASES(1)
    else
        FCNN_TILE_CASES(0)
}

FCNN_INLINE void FCNN_NAME(fcnn_tile_core)(const int CBMAX, const int P1, const int P2, const int P3,
                                           const int P4, const FCNN_TN(fcnn_tile_job) *jb)
{
    const int cb = fcnn_min(fcnn_round16(jb->co), CBMAX); /* fcnn_block of this build */
    const int kh = jb->kh, kwci = jb->kwci;
    const size_t panel = (size_t)kh * kwci * cb;
    /* K in slices of at most kc taps (fcnn_panel_bytes of panel): rpc whole kernel rows at a
     * time, or pieces of one row when a row is longer (one slice when the panel fits). The first
     * slice adds the bias, the later ones add into the output, and only the last applies the
     * ReLU. */
    const int kc = fcnn_imax(1, fcnn_panel_bytes / (cb * (int)sizeof(FCNN_T)));
    const int rpc = kwci <= kc ? kc / kwci : 1, piece = fcnn_min(kwci, kc);
    for (int b0 = 0, blk = 0; b0 < jb->co; b0 += cb, blk++) {
        const int nco = fcnn_min(cb, jb->co - b0);
        const FCNN_T *w = jb->w + blk * panel, *bias = jb->bias ? jb->bias + b0 : NULL;
        FCNN_T *out = jb->out + b0;
        for (int r = 0; r < kh; r += rpc)
            for (int j0 = 0; j0 < kwci; j0 += piece) {
                FCNN_TN(fcnn_tile_job) part = *jb;
                const int first = r == 0 && j0 == 0;
                part.x = jb->x + (size_t)r * jb->k_row + j0;
                part.kh = fcnn_min(rpc, kh - r);
                part.kwci = fcnn_min(piece, kwci - j0);
                part.relu = r + part.kh == kh && j0 + part.kwci == kwci ? jb->relu : 0;
                part.accumulate = jb->accumulate || !first;
                FCNN_NAME(fcnn_tile_pass)(CBMAX, P1, P2, P3, P4, cb, &part,
                                          w + ((size_t)r * kwci + j0) * cb, first ? bias : NULL,
                                          out, nco);
            }
    }
}

/* R rows x FCNN_W*NV output channels: broadcast one tap value per FMA against the dY row. With DB
 * the last row sums dY itself, into db, in place of a tap: the same registers, and no second pass
 * over dY (it had cost as much as the product on conv1 of the MNIST net, whose 9 taps leave 3 of
 * the 12 rows spare anyway). Where neighbouring windows do not overlap along a row and a pixel's
 * step is wide (FCNN_DW_WIDE bytes or more, as a 1x1 conv's of many channels), the tile's taps
 * are a line or two of each window, a different one for each tile, so each sweep reads new lines
 * at a stride the hardware prefetcher misses: the tile asks for the lines FCNN_DW_AHEAD pixels
 * ahead itself (PF: a separate compilation, so that other tiles keep their loop). Overlapping
 * windows reuse their lines from pixel to pixel, and the prefetches would only take load slots. */
FCNN_INLINE void FCNN_NAME(fcnn_dw_tile)(const int R, const int NV, const int DB, const int PF,
                                         const FCNN_TN(fcnn_dw_job) *jb, const int *koff, int nr,
                                         const FCNN_T *dy, FCNN_T *dw, FCNN_T *db)
{
    const int px_row = jb->px_row, px_col = jb->px_col, dy_px = jb->dy_px, oh = jb->oh;
    const int ow = jb->ow, dw_row = jb->dw_row, ahead = FCNN_DW_AHEAD * px_col;
    FCNN_VT acc[FCNN_PMAX][4];
    int o[FCNN_PMAX];
#pragma GCC unroll 24
    for (int r = 0; r < R - DB; r++) {
        o[r] = koff[r];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[r][v] = r < nr ? FCNN_LDW(dw + (size_t)r * dw_row + FCNN_W * v) : (FCNN_VT){0};
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        if (DB)
            acc[R - 1][v] = FCNN_LDW(db + FCNN_W * v);
    for (int y = 0; y < oh; y++) {
        const FCNN_T *xr = jb->x + (size_t)y * px_row;
        for (int xq = 0; xq < ow; xq++, xr += px_col, dy += dy_px) {
            FCNN_VT d[4];
            if (PF) {
                __builtin_prefetch(xr + ahead + o[0]);
                __builtin_prefetch(xr + ahead + o[R - DB - 1]);
            }
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                d[v] = FCNN_LDW(dy + FCNN_W * v);
#pragma GCC unroll 24
            for (int r = 0; r < R - DB; r++) {
                const FCNN_T s = xr[o[r]];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[r][v] += d[v] * s;
            }
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                if (DB)
                    acc[R - 1][v] += d[v];
        }
    }
#pragma GCC unroll 24
    for (int r = 0; r < R - DB; r++) {
        if (r >= nr)
            break;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            FCNN_STW(dw + (size_t)r * dw_row + FCNN_W * v, acc[r][v]);
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        if (DB)
            FCNN_STW(db + FCNN_W * v, acc[R - 1][v]);
}

/* The rows of taps k0 .. k0+nr-1 (with DB, one row fewer), and their products with dY; rows past
 * the last tap repeat it, and are not stored. */
FCNN_INLINE void FCNN_NAME(fcnn_dw_taps)(const int R, const int NV, const int DB,
                                         const FCNN_TN(fcnn_dw_job) *jb, int b0, int k0)
{
    const int kwci = jb->kwci, nr = fcnn_min(R - DB, jb->kh * kwci - k0);
    int koff[FCNN_PMAX];
    for (int r = 0; r < R - DB; r++) {
        const int k = k0 + fcnn_min(r, nr - 1), a = k / kwci;
        koff[r] = a * jb->k_row + (k - a * kwci);
    }
    FCNN_T *dw = jb->dw + (size_t)k0 * jb->dw_row + b0, *db = DB ? jb->db + b0 : NULL;
    if (jb->px_col >= jb->kwci && jb->px_col * (int)sizeof(FCNN_T) >= FCNN_DW_WIDE)
        FCNN_NAME(fcnn_dw_tile)(R, NV, DB, 1, jb, koff, nr, jb->dy + b0, dw, db);
    else
        FCNN_NAME(fcnn_dw_tile)(R, NV, DB, 0, jb, koff, nr, jb->dy + b0, dw, db);
}

/* All taps for the channel block at b0, R at a time, the first tile also summing db, and the
 * taps left when fewer than R remain RT at a time: a tall tile sweeps dY and the windows fewer
 * times, a short one computes fewer rows past the last tap. */
FCNN_INLINE void FCNN_NAME(fcnn_dw_block)(const int R, const int RT, const int NV,
                                          const FCNN_TN(fcnn_dw_job) *jb, int b0)
{
    const int kk = jb->kh * jb->kwci;
    int k0 = 0;
    if (jb->db) {
        FCNN_NAME(fcnn_dw_taps)(R, NV, 1, jb, b0, 0);
        k0 = R - 1;
    }
    for (; k0 + R <= kk; k0 += R)
        FCNN_NAME(fcnn_dw_taps)(R, NV, 0, jb, b0, k0);
    for (; k0 < kk; k0 += RT)
        FCNN_NAME(fcnn_dw_taps)(RT, NV, 0, jb, b0, k0);
}

/* R1T: the height of the one-vector tiles' last taps (see fcnn_dw_block). */
FCNN_INLINE void FCNN_NAME(fcnn_dw_core)(const int CB, const int R1, const int R1T, const int R2,
                                         const int R3, const int R4,
                                         const FCNN_TN(fcnn_dw_job) *jb)
{
    for (int b0 = 0; b0 < jb->co; b0 += CB) {
        switch ((fcnn_min(CB, jb->co - b0) + FCNN_W - 1) / FCNN_W) {
        case 1: FCNN_NAME(fcnn_dw_block)(R1, R1T, 1, jb, b0); break;
        case 2: if (CB >= 2 * FCNN_W) FCNN_NAME(fcnn_dw_block)(R2, R2, 2, jb, b0); break;
        case 3: if (CB >= 3 * FCNN_W) FCNN_NAME(fcnn_dw_block)(R3, R3, 3, jb, b0); break;
        default: if (CB >= 4 * FCNN_W) FCNN_NAME(fcnn_dw_block)(R4, R4, 4, jb, b0); break;
        }
    }
}

#undef FCNN_TILE_CASES
#undef FCNN_W

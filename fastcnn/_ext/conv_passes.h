/* A convolution's per-image passes, forward, dX and dW, on the register tiles of tile_kernels.h:
 * padding into a canvas, packing the weights each pass reads, and the scratch each needs (in
 * elements). For float (_f32) and double (_f64): see vectors.h for how this header compiles its
 * typed part once per type. */
#ifndef FCNN_F64
#ifndef FASTCNN_CONV_PASSES_H
#define FASTCNN_CONV_PASSES_H

#include <stddef.h>
#include <string.h>

#include "pack.h"
#include "tile_kernels.h"

/* A convolution: input (h, w, ci), weights (kh, kw, ci, co), output (oh, ow, co) per image. */
typedef struct {
    int h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pl;
} fcnn_geom;

/* The canvas every forward window fits in: the input padded, and cut where no window reaches. */
static int fcnn_canvas_h(const fcnn_geom *g) { return (g->oh - 1) * g->sh + g->kh; }
static int fcnn_canvas_w(const fcnn_geom *g) { return (g->ow - 1) * g->sw + g->kw; }

static int fcnn_needs_canvas(const fcnn_geom *g)
{
    return g->pt > 0 || g->pl > 0 || fcnn_canvas_h(g) > g->h || fcnn_canvas_w(g) > g->w;
}

/* Per-thread scratch elements for fcnn_forward_image. */
static size_t fcnn_canvas_size(const fcnn_geom *g)
{
    return fcnn_needs_canvas(g) ? (size_t)fcnn_canvas_h(g) * fcnn_canvas_w(g) * g->ci : 0;
}

/* dX works one of two ways. Usually (kw*ci >= 16) the tile computes, for each kernel row a, the
 * dY pixel's column-matrix row dY . W_a^T and adds it straight into the window it came from:
 * col2im fused into the epilogue. When kw*ci < 16 (first layers) those rows would fill a fraction
 * of a vector, so instead the whole column-matrix row dY . W^T (kh*kw*ci wide) is stored to
 * scratch and then added into the window by plain loops. */
static int fcnn_dx_narrow(const fcnn_geom *g) { return g->kw * g->ci < 16; }

/* Packed weights for fcnn_dx_image: W^T (co, kh*kw*ci) when narrow, else W_a^T (co, kw*ci) for
 * each kernel row a, by fcnn_pack_cols, in blocks of fcnn_dx_block. */
static int fcnn_dx_block(int level, const fcnn_geom *g, int size)
{
    return fcnn_block(level, fcnn_dx_narrow(g) ? g->kh * g->kw * g->ci : g->kw * g->ci, size);
}

static size_t fcnn_dx_packed_size(int level, const fcnn_geom *g, int size)
{
    const int kwci = g->kw * g->ci, cb = fcnn_dx_block(level, g, size);
    if (fcnn_dx_narrow(g))
        return fcnn_packed_size(g->co, g->kh * kwci, cb);
    return (size_t)g->kh * fcnn_packed_size(g->co, kwci, cb);
}

/* Per-thread scratch elements for fcnn_dx_image: the canvas, then the narrow case's column rows. */
static size_t fcnn_dx_scratch_size(const fcnn_geom *g)
{
    const size_t cols = (size_t)g->oh * g->ow * fcnn_round16(g->kh * g->kw * g->ci);
    return fcnn_canvas_size(g) + (fcnn_dx_narrow(g) ? cols : 0);
}

/* Per-thread scratch elements for fcnn_dw_image: the canvas, and dY with rows padded to 16. */
static size_t fcnn_dw_scratch_size(const fcnn_geom *g)
{
    return fcnn_canvas_size(g) + (g->co % 16 ? (size_t)g->oh * g->ow * fcnn_round16(g->co) : 0);
}

#define FCNN_F64 0
#include "conv_passes.h"
#define FCNN_F64 1
#include "conv_passes.h"

#endif /* FASTCNN_CONV_PASSES_H */
#else /* the part over FCNN_T */

/* The source the windows read: x itself, or x padded into canvas. Returns the row stride. */
static int FCNN_TN(fcnn_source)(const fcnn_geom *g, const FCNN_T *x, FCNN_T *canvas,
                                const FCNN_T **src)
{
    if (!fcnn_needs_canvas(g)) {
        *src = x;
        return g->w * g->ci;
    }
    FCNN_TN(fcnn_place)(x, g->h, g->w, g->ci, 1, 1, g->pt, g->pl, canvas, fcnn_canvas_h(g),
                        fcnn_canvas_w(g));
    *src = canvas;
    return fcnn_canvas_w(g) * g->ci;
}

/* out (oh, ow, co) = relu?(conv(x (h, w, ci)) + bias). wp: fcnn_pack_cols of the HWIO weights as
 * a (kh*kw*ci, co) matrix; bp: the bias packed as (1, co), or NULL. */
static void FCNN_TN(fcnn_forward_image)(int level, const fcnn_geom *g, const FCNN_T *wp,
                                        const FCNN_T *bp, int relu, const FCNN_T *x, FCNN_T *out,
                                        FCNN_T *canvas)
{
    const FCNN_T *src;
    const int row = FCNN_TN(fcnn_source)(g, x, canvas, &src);
    const FCNN_TN(fcnn_tile_job) jb = {src, g->sh * row, g->sw * g->ci, row, g->kh, g->kw * g->ci,
                                       wp, bp, g->co, out, g->ow * g->co, g->co, g->oh, g->ow,
                                       relu, 0};
    FCNN_TN(fcnn_tiles)(level, &jb);
}

/* See fcnn_dx_packed_size. */
static void FCNN_TN(fcnn_pack_dx)(int level, const FCNN_T *w, const fcnn_geom *g, FCNN_T *dst)
{
    const int kwci = g->kw * g->ci, cb = fcnn_dx_block(level, g, sizeof(FCNN_T));
    if (fcnn_dx_narrow(g)) {
        FCNN_TN(fcnn_pack_cols)(w, g->co, g->kh * kwci, 1, g->co, cb, dst);
        return;
    }
    for (int a = 0; a < g->kh; a++)
        FCNN_TN(fcnn_pack_cols)(w + (size_t)a * kwci * g->co, g->co, kwci, 1, g->co, cb,
                                dst + a * fcnn_packed_size(g->co, kwci, cb));
}

/* dx (h, w, ci) = conv^T(dy (oh, ow, co)), the gradient of the forward pass with respect to x. */
static void FCNN_TN(fcnn_dx_image)(int level, const fcnn_geom *g, const FCNN_T *wt,
                                   const FCNN_T *dy, FCNN_T *dx, FCNN_T *scratch)
{
    const int canvas_used = fcnn_needs_canvas(g);
    FCNN_T *dst = canvas_used ? scratch : dx;
    const int hd = canvas_used ? fcnn_canvas_h(g) : g->h, wd = canvas_used ? fcnn_canvas_w(g) : g->w;
    const int row = wd * g->ci, kwci = g->kw * g->ci;
    memset(dst, 0, (size_t)hd * row * sizeof(FCNN_T));
    if (fcnn_dx_narrow(g)) {
        /* rows padded to 16 so the tile stores whole vectors; the panel's padding is zeros */
        const int k16 = fcnn_round16(g->kh * kwci);
        FCNN_T *cols = scratch + fcnn_canvas_size(g);
        const FCNN_TN(fcnn_tile_job) jb = {dy, g->ow * g->co, g->co, 0, 1, g->co, wt, NULL, k16,
                                           cols, g->ow * k16, k16, g->oh, g->ow, 0, 0};
        FCNN_TN(fcnn_tiles)(level, &jb);
        for (int y = 0; y < g->oh; y++)
            for (int x = 0; x < g->ow; x++, cols += k16)
                for (int a = 0; a < g->kh; a++) {
                    FCNN_T *d = dst + (size_t)(y * g->sh + a) * row + x * g->sw * g->ci;
                    for (int j = 0; j < kwci; j++)
                        d[j] += cols[a * kwci + j];
                }
    } else {
        const int cb = fcnn_dx_block(level, g, sizeof(FCNN_T));
        const size_t per_a = fcnn_packed_size(g->co, kwci, cb);
        for (int a = 0; a < g->kh; a++) {
            const FCNN_TN(fcnn_tile_job) jb = {dy, g->ow * g->co, g->co, 0, 1, g->co,
                                               wt + a * per_a, NULL, kwci, dst + (size_t)a * row,
                                               g->sh * row, g->sw * g->ci, g->oh, g->ow, 0, 1};
            FCNN_TN(fcnn_tiles)(level, &jb);
        }
    }
    if (canvas_used)
        FCNN_TN(fcnn_place)(scratch, hd, wd, g->ci, 1, 1, -g->pt, -g->pl, dx, g->h, g->w);
}

/* dw (kh*kw*ci, round16(co)) += windows(x)^T . dy for one image, and db (co) += the column sums of
 * dy unless db is NULL; pixels in row-major order. */
static void FCNN_TN(fcnn_dw_image)(int level, const fcnn_geom *g, const FCNN_T *x,
                                   const FCNN_T *dy, FCNN_T *dw, FCNN_T *db, FCNN_T *scratch)
{
    const FCNN_T *src, *d = dy;
    const int row = FCNN_TN(fcnn_source)(g, x, scratch, &src), co = g->co, c16 = fcnn_round16(co);
    const int npix = g->oh * g->ow;
    int dy_px = co;
    if (co % 16) {
        FCNN_T *pad = scratch + fcnn_canvas_size(g);
        for (int q = 0; q < npix; q++) {
            memcpy(pad + (size_t)q * c16, dy + (size_t)q * co, (size_t)co * sizeof(FCNN_T));
            memset(pad + (size_t)q * c16 + co, 0, (size_t)(c16 - co) * sizeof(FCNN_T));
        }
        d = pad;
        dy_px = c16;
    }
    const FCNN_TN(fcnn_dw_job) jb = {src, g->sh * row, g->sw * g->ci, row, g->kh, g->kw * g->ci,
                                     d, dy_px, g->oh, g->ow, co, dw, c16, db};
    FCNN_TN(fcnn_dw)(level, &jb);
}

/* dx[i] = 0 where y[i] <= 0: the backward of the relu whose output y was this conv's input. The
 * select, not a branch, lets GCC vectorise it (the sign of y is as good as random). */
static void FCNN_TN(fcnn_relu_mask)(const FCNN_T *y, FCNN_T *dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0 ? dx[i] : (FCNN_T)0;
}

#undef FCNN_F64
#endif

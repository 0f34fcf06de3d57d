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

#include "winograd.h"

/* The forward convolution of g runs as Winograd's F(2x2, 3x3) where fcnn_winograd, else on the
 * direct tiles (fcnn_forward_image): its packed weights and per-thread scratch elements, for
 * fcnn_pack_conv and fcnn_conv_image. */
static size_t fcnn_conv_packed_size(int level, const fcnn_geom *g, int size)
{
    if (fcnn_winograd(g))
        return fcnn_wg_packed_size(level, g, size);
    return fcnn_packed_size(g->kh * g->kw * g->ci, g->co, fcnn_block(level, g->co, size));
}

static size_t fcnn_conv_scratch_size(const fcnn_geom *g)
{
    return fcnn_winograd(g) ? fcnn_wg_scratch_size(g) : fcnn_canvas_size(g);
}

/* dX works one of three ways.
 * - Where the input is no larger than the output and the stride is 1 ("same" padding), dX is the
 *   forward convolution of dY, padded by (kh-1-pt, kw-1-pl), with the kernel turned 180 degrees
 *   and its channels swapped: no multiply falls on padding, and the forward tile keeps its K of
 *   kh*kw*co in registers and stores each pixel once.
 * - Otherwise (a valid or strided conv, whose full convolution would multiply padding), when
 *   kw*ci >= 16, the tile computes for each kernel row a the dY pixel's column-matrix row
 *   dY . W_a^T and adds it straight into the window it came from: col2im fused into the epilogue.
 * - When kw*ci < 16 (first layers) those rows would fill a fraction of a vector, so instead the
 *   whole column-matrix row dY . W^T (kh*kw*ci wide) is stored to scratch and then added into the
 *   window by plain loops. */
static int fcnn_dx_narrow(const fcnn_geom *g) { return g->kw * g->ci < 16; }

static int fcnn_dx_as_forward(const fcnn_geom *g)
{
    return g->sh == 1 && g->sw == 1 && !fcnn_dx_narrow(g) && g->pt < g->kh && g->pl < g->kw
           && (long)g->h * g->w <= (long)g->oh * g->ow;
}

/* The forward convolution that is dX: input dY (oh, ow, co), output dx (h, w, ci). */
static fcnn_geom fcnn_dx_forward_geom(const fcnn_geom *g)
{
    const fcnn_geom t = {g->oh, g->ow, g->co, g->kh, g->kw, g->ci, g->h, g->w, 1, 1,
                         g->kh - 1 - g->pt, g->kw - 1 - g->pl};
    return t;
}

/* Packed weights for fcnn_dx_image, by fcnn_pack_cols in blocks of fcnn_dx_block: as forward,
 * the turned kernel (kh*kw*co, ci); when narrow, W^T (co, kh*kw*ci); else W_a^T (co, kw*ci) for
 * each kernel row a. */
static int fcnn_dx_block(int level, const fcnn_geom *g, int size)
{
    if (fcnn_dx_as_forward(g))
        return fcnn_block(level, g->ci, size);
    return fcnn_block(level, fcnn_dx_narrow(g) ? g->kh * g->kw * g->ci : g->kw * g->ci, size);
}

static size_t fcnn_dx_packed_size(int level, const fcnn_geom *g, int size)
{
    const int kwci = g->kw * g->ci, cb = fcnn_dx_block(level, g, size);
    if (fcnn_dx_as_forward(g)) {
        const fcnn_geom t = fcnn_dx_forward_geom(g);
        return fcnn_conv_packed_size(level, &t, size);
    }
    if (fcnn_dx_narrow(g))
        return fcnn_packed_size(g->co, g->kh * kwci, cb);
    return (size_t)g->kh * fcnn_packed_size(g->co, kwci, cb);
}

/* Per-thread scratch elements for fcnn_dx_image: the canvas (of padded dY as forward), then the
 * narrow case's column rows. */
static size_t fcnn_dx_scratch_size(const fcnn_geom *g)
{
    if (fcnn_dx_as_forward(g)) {
        const fcnn_geom t = fcnn_dx_forward_geom(g);
        return fcnn_conv_scratch_size(&t);
    }
    const size_t cols = (size_t)g->oh * g->ow * fcnn_round16(g->kh * g->kw * g->ci);
    return fcnn_canvas_size(g) + (fcnn_dx_narrow(g) ? cols : 0);
}

/* Per-thread scratch elements for fcnn_dw_image: the canvas, and dY with rows padded to 16. */
static size_t fcnn_dw_scratch_size(const fcnn_geom *g)
{
    return fcnn_canvas_size(g) + (g->co % 16 ? (size_t)g->oh * g->ow * fcnn_round16(g->co) : 0);
}

/* A grouped and/or dilated convolution (g counts all channels; dilation only with stride 1),
 * run per image as groups x dh x dw plain convolutions, its "parts", through the passes below on
 * contiguous copies. Part (group gi, phase py, px) reads the padded input's channels of group gi
 * at rows py, py + dh, ... and columns px, px + dw, ..., where a dilated window becomes a plain
 * one, and writes the output's channels of group gi at the rows py + t*dh and columns px + u*dw
 * of the phase. The copies cost one pass over each image; the tiles they feed stay the plain
 * convolution's, and that convolution's code is not touched. */
typedef struct {
    fcnn_geom g;
    int dh, dw, groups;
} fcnn_split;

/* Pixels (r0 + t*rs, c0 + u*cs) for t < nh, u < nw, channels ch0 .. ch0+n-1, of an image. */
typedef struct {
    int r0, rs, c0, cs, ch0, nh, nw, n;
} fcnn_lattice;

static int fcnn_split_canvas_h(const fcnn_split *s)
{
    return (s->g.oh - 1) * s->g.sh + (s->g.kh - 1) * s->dh + 1;
}
static int fcnn_split_canvas_w(const fcnn_split *s)
{
    return (s->g.ow - 1) * s->g.sw + (s->g.kw - 1) * s->dw + 1;
}

/* The plain convolution of phase (py, px) of any group: unpadded, its input exactly the window
 * extent; oh (ow) is 0 for a phase no output row (column) falls in. */
static fcnn_geom fcnn_split_part(const fcnn_split *s, int py, int px)
{
    fcnn_geom p = s->g;
    p.ci /= s->groups;
    p.co /= s->groups;
    p.oh = py < s->g.oh ? (s->g.oh - py + s->dh - 1) / s->dh : 0;
    p.ow = px < s->g.ow ? (s->g.ow - px + s->dw - 1) / s->dw : 0;
    p.h = (p.oh - 1) * p.sh + p.kh;
    p.w = (p.ow - 1) * p.sw + p.kw;
    p.pt = p.pl = 0;
    return p;
}

/* Where part p (group gi, phase py, px) reads in the padded input and writes in the output. */
static void fcnn_split_lattices(const fcnn_split *s, const fcnn_geom *p, int gi, int py, int px,
                                fcnn_lattice *in, fcnn_lattice *out)
{
    const fcnn_lattice a = {py, s->dh, px, s->dw, gi * p->ci, p->h, p->w, p->ci};
    const fcnn_lattice b = {py, s->dh, px, s->dw, gi * p->co, p->oh, p->ow, p->co};
    *in = a;
    *out = b;
}

static size_t fcnn_split_canvas_size(const fcnn_split *s)
{
    return (size_t)fcnn_split_canvas_h(s) * fcnn_split_canvas_w(s) * s->g.ci;
}

/* Per-thread scratch elements for the split passes: the padded image, one part's input and
 * output (phase (0, 0) is the largest), and the plain passes' own scratch. */
static size_t fcnn_split_scratch_size(const fcnn_split *s)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    const size_t inner = fcnn_dx_scratch_size(&p) > fcnn_dw_scratch_size(&p)
                             ? fcnn_dx_scratch_size(&p) : fcnn_dw_scratch_size(&p);
    return fcnn_split_canvas_size(s) + (size_t)p.h * p.w * p.ci + (size_t)p.oh * p.ow * p.co
           + inner;
}

/* Packed forward weights and bias of one group (the groups follow each other). */
static size_t fcnn_split_w_step(int level, const fcnn_split *s, int size)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    return fcnn_packed_size(p.kh * p.kw * p.ci, p.co, fcnn_block(level, p.co, size));
}
static size_t fcnn_split_b_step(int level, const fcnn_split *s, int size)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    return fcnn_packed_size(1, p.co, fcnn_block(level, p.co, size));
}

/* Packed dX weights of one group (fcnn_pack_dx of the group's kernel). */
static size_t fcnn_split_t_step(int level, const fcnn_split *s, int size)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    return fcnn_dx_packed_size(level, &p, size);
}

/* Partial dW of one group: its kh*kw*ci/groups rows, then its db row, round16(co/groups) wide. */
static size_t fcnn_split_dw_step(const fcnn_split *s)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    return ((size_t)p.kh * p.kw * p.ci + 1) * fcnn_round16(p.co);
}

/* The passes of fcnn_split_image. */
enum { FCNN_SPLIT_FORWARD, FCNN_SPLIT_DX, FCNN_SPLIT_DW };

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

/* See fcnn_conv_packed_size. */
static void FCNN_TN(fcnn_pack_conv)(int level, const FCNN_T *w, const fcnn_geom *g, FCNN_T *dst)
{
    if (fcnn_winograd(g))
        FCNN_TN(fcnn_wg_pack)(level, w, g, 0, dst);
    else
        FCNN_TN(fcnn_pack_cols)(w, g->kh * g->kw * g->ci, g->co, g->co, 1,
                                fcnn_block(level, g->co, sizeof(FCNN_T)), dst);
}

/* out (oh, ow, co) = relu?(conv(x (h, w, ci)) + bias): fcnn_forward_image, or Winograd's where
 * fcnn_winograd. wp: fcnn_pack_conv's; bp as fcnn_forward_image's; scratch: fcnn_conv_scratch_size
 * elements. */
static void FCNN_TN(fcnn_conv_image)(int level, const fcnn_geom *g, const FCNN_T *wp,
                                     const FCNN_T *bp, int relu, const FCNN_T *x, FCNN_T *out,
                                     FCNN_T *scratch)
{
    if (fcnn_winograd(g))
        FCNN_TN(fcnn_winograd_image)(level, g, wp, bp, relu, x, out, scratch);
    else
        FCNN_TN(fcnn_forward_image)(level, g, wp, bp, relu, x, out, scratch);
}

/* See fcnn_dx_packed_size. */
static void FCNN_TN(fcnn_pack_dx)(int level, const FCNN_T *w, const fcnn_geom *g, FCNN_T *dst)
{
    const int kwci = g->kw * g->ci, cb = fcnn_dx_block(level, g, sizeof(FCNN_T));
    if (fcnn_dx_as_forward(g)) {
        const fcnn_geom t = fcnn_dx_forward_geom(g);
        if (fcnn_winograd(&t)) {
            FCNN_TN(fcnn_wg_pack)(level, w, &t, 1, dst);
            return;
        }
        /* block blk's rows t*co .. t*co+co-1 are tap t of the turned kernel: tap kk-1-t of W,
         * read (co, ci) with the channels swapped */
        const int kk = g->kh * g->kw;
        for (int b0 = 0, blk = 0; b0 < g->ci; b0 += cb, blk++)
            for (int t = 0; t < kk; t++)
                FCNN_TN(fcnn_pack_cols)(w + ((size_t)(kk - 1 - t) * g->ci + b0) * g->co, g->co,
                                        fcnn_min(cb, g->ci - b0), 1, g->co, cb,
                                        dst + ((size_t)blk * kk + t) * g->co * cb);
        return;
    }
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
    if (fcnn_dx_as_forward(g)) {
        const fcnn_geom t = fcnn_dx_forward_geom(g);
        FCNN_TN(fcnn_conv_image)(level, &t, wt, NULL, 0, dy, dx, scratch);
        return;
    }
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
 * dy unless db is NULL; pixels in row-major order. The tiles run over bands of output rows whose
 * dY and input rows fit in fcnn_band_bytes, each band through all of them: a tile takes its sums
 * up where the band before left them, so each element is summed in the same order. */
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
    const size_t row_bytes = ((size_t)g->ow * dy_px + (size_t)g->sh * row) * sizeof(FCNN_T);
    const int band = (int)(fcnn_band_bytes / row_bytes > 1 ? fcnn_band_bytes / row_bytes : 1);
    for (int y0 = 0; y0 < g->oh; y0 += band) {
        const FCNN_TN(fcnn_dw_job) jb = {src + (size_t)y0 * g->sh * row, g->sh * row,
                                         g->sw * g->ci, row, g->kh, g->kw * g->ci,
                                         d + (size_t)y0 * g->ow * dy_px, dy_px,
                                         fcnn_min(band, g->oh - y0), g->ow, co, dw, c16, db};
        FCNN_TN(fcnn_dw)(level, &jb);
    }
}

/* y (npix, c) = y + bias (unless NULL), then max(y, 0) with relu (keeping NaN): the epilogue of
 * a transposed convolution, run on each image while it is in cache. */
static void FCNN_TN(fcnn_bias_relu)(FCNN_T *y, size_t npix, int c, const FCNN_T *bias, int relu)
{
    for (size_t q = 0; q < npix; q++, y += c) {
        if (bias)
            for (int j = 0; j < c; j++)
                y[j] += bias[j];
        if (relu)
            for (int j = 0; j < c; j++)
                y[j] = y[j] < 0 ? (FCNN_T)0 : y[j];
    }
}

/* y (n) = y + res, then the epilogue's activation (relu: 0 none, 1 relu, FCNN_RELU6 relu then a
 * cap at 6), keeping NaN as the tile stores do: a convolution followed by an Add (and a relu),
 * run on each image while it is in cache. */
static void FCNN_TN(fcnn_add_relu)(FCNN_T *y, const FCNN_T *res, size_t n, int relu)
{
    /* One loop per activation, each without a branch, so that GCC vectorises each. */
    if (relu == FCNN_RELU6)
        for (size_t i = 0; i < n; i++) {
            FCNN_T v = y[i] + res[i];
            v = v < 0 ? (FCNN_T)0 : v;
            y[i] = v > 6 ? (FCNN_T)6 : v;
        }
    else if (relu)
        for (size_t i = 0; i < n; i++) {
            FCNN_T v = y[i] + res[i];
            y[i] = v < 0 ? (FCNN_T)0 : v;
        }
    else
        for (size_t i = 0; i < n; i++)
            y[i] += res[i];
}

/* sums (c) += the sums over the npix pixels of y (npix, c), pixels in order. */
static void FCNN_TN(fcnn_channel_sums)(const FCNN_T *y, size_t npix, int c, FCNN_T *sums)
{
    for (size_t q = 0; q < npix; q++, y += c)
        for (int j = 0; j < c; j++)
            sums[j] += y[j];
}

/* buf (nh, nw, n) = the lattice l of img (rows of w pixels of c channels). */
static void FCNN_TN(fcnn_gather)(const FCNN_T *img, int w, int c, const fcnn_lattice *l,
                                 FCNN_T *buf)
{
    for (int t = 0; t < l->nh; t++)
        for (int u = 0; u < l->nw; u++, buf += l->n)
            memcpy(buf, img + ((size_t)(l->r0 + t * l->rs) * w + l->c0 + u * l->cs) * c + l->ch0,
                   (size_t)l->n * sizeof(FCNN_T));
}

/* The lattice l of img = buf (nh, nw, n). */
static void FCNN_TN(fcnn_scatter)(const FCNN_T *buf, FCNN_T *img, int w, int c,
                                  const fcnn_lattice *l)
{
    for (int t = 0; t < l->nh; t++)
        for (int u = 0; u < l->nw; u++, buf += l->n)
            memcpy(img + ((size_t)(l->r0 + t * l->rs) * w + l->c0 + u * l->cs) * c + l->ch0, buf,
                   (size_t)l->n * sizeof(FCNN_T));
}

/* The packed forward weights (and bias, unless NULL) of every group, fcnn_split_w_step (and
 * _b_step) apart: group gi's columns of the HWIO kernel, as the plain pass packs its whole. */
static void FCNN_TN(fcnn_pack_split)(int level, const FCNN_T *w, const FCNN_T *bias,
                                     const fcnn_split *s, FCNN_T *wp, FCNN_T *bp)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    const int cb = fcnn_block(level, p.co, sizeof(FCNN_T)), kk = p.kh * p.kw * p.ci;
    const size_t ws = fcnn_split_w_step(level, s, sizeof(FCNN_T));
    const size_t bs = fcnn_split_b_step(level, s, sizeof(FCNN_T));
    for (int gi = 0; gi < s->groups; gi++) {
        FCNN_TN(fcnn_pack_cols)(w + gi * p.co, kk, p.co, s->g.co, 1, cb, wp + gi * ws);
        if (bias)
            FCNN_TN(fcnn_pack_cols)(bias + gi * p.co, 1, p.co, 0, 1, cb, bp + gi * bs);
    }
}

/* The packed dX weights of every group, fcnn_split_t_step apart; tmp holds one group's kernel
 * (kh*kw*ci/groups*co/groups elements), which fcnn_pack_dx reads contiguous. */
static void FCNN_TN(fcnn_pack_split_dx)(int level, const FCNN_T *w, const fcnn_split *s,
                                        FCNN_T *tmp, FCNN_T *dst)
{
    const fcnn_geom p = fcnn_split_part(s, 0, 0);
    const int kk = p.kh * p.kw * p.ci;
    for (int gi = 0; gi < s->groups; gi++) {
        for (int k = 0; k < kk; k++)
            memcpy(tmp + (size_t)k * p.co, w + (size_t)k * s->g.co + gi * p.co,
                   (size_t)p.co * sizeof(FCNN_T));
        FCNN_TN(fcnn_pack_dx)(level, tmp, &p,
                              dst + gi * fcnn_split_t_step(level, s, sizeof(FCNN_T)));
    }
}

/* One image of a split convolution, part by part, in one of three passes:
 *   FCNN_SPLIT_FORWARD  out = relu?(conv(x) + bias): w, bias from fcnn_pack_split (bias may be
 *                       NULL), flag = relu; the parts' outputs are copied into out.
 *   FCNN_SPLIT_DX       out (dx) from dy: w from fcnn_pack_split_dx. The parts' inputs tile the
 *                       padded image without overlapping, so their gradients are copied, not
 *                       added, into it.
 *   FCNN_SPLIT_DW       out (the groups' partial dW, fcnn_split_dw_step apart, each its rows
 *                       then its db row) += the gradients from x and dy; flag: sum db too. */
static void FCNN_TN(fcnn_split_image)(int level, int pass, const fcnn_split *s, const FCNN_T *w,
                                      const FCNN_T *bias, int flag, const FCNN_T *x,
                                      const FCNN_T *dy, FCNN_T *out, FCNN_T *scratch)
{
    const fcnn_geom *g = &s->g, p0 = fcnn_split_part(s, 0, 0);
    const int hc = fcnn_split_canvas_h(s), wc = fcnn_split_canvas_w(s);
    const size_t ws = pass == FCNN_SPLIT_DX ? fcnn_split_t_step(level, s, sizeof(FCNN_T))
                                            : fcnn_split_w_step(level, s, sizeof(FCNN_T));
    const size_t bs = fcnn_split_b_step(level, s, sizeof(FCNN_T)), dws = fcnn_split_dw_step(s);
    const size_t rows = (size_t)p0.kh * p0.kw * p0.ci;
    FCNN_T *canvas = scratch, *xs = canvas + fcnn_split_canvas_size(s);
    FCNN_T *ys = xs + (size_t)p0.h * p0.w * p0.ci, *inner = ys + (size_t)p0.oh * p0.ow * p0.co;
    if (pass == FCNN_SPLIT_DX)
        memset(canvas, 0, fcnn_split_canvas_size(s) * sizeof(FCNN_T));
    else
        FCNN_TN(fcnn_place)(x, g->h, g->w, g->ci, 1, 1, g->pt, g->pl, canvas, hc, wc);
    for (int gi = 0; gi < s->groups; gi++)
        for (int py = 0; py < s->dh; py++)
            for (int px = 0; px < s->dw; px++) {
                const fcnn_geom p = fcnn_split_part(s, py, px);
                fcnn_lattice in, o;
                if (p.oh < 1 || p.ow < 1)
                    continue;
                fcnn_split_lattices(s, &p, gi, py, px, &in, &o);
                if (pass != FCNN_SPLIT_DX)
                    FCNN_TN(fcnn_gather)(canvas, wc, g->ci, &in, xs);
                if (pass != FCNN_SPLIT_FORWARD)
                    FCNN_TN(fcnn_gather)(dy, g->ow, g->co, &o, ys);
                if (pass == FCNN_SPLIT_FORWARD) {
                    FCNN_TN(fcnn_forward_image)(level, &p, w + gi * ws,
                                                bias ? bias + gi * bs : NULL, flag, xs, ys, NULL);
                    FCNN_TN(fcnn_scatter)(ys, out, g->ow, g->co, &o);
                } else if (pass == FCNN_SPLIT_DX) {
                    FCNN_TN(fcnn_dx_image)(level, &p, w + gi * ws, ys, xs, inner);
                    FCNN_TN(fcnn_scatter)(xs, canvas, wc, g->ci, &in);
                } else {
                    FCNN_T *part = out + gi * dws;
                    FCNN_TN(fcnn_dw_image)(level, &p, xs, ys, part,
                                           flag ? part + rows * fcnn_round16(p.co) : NULL, inner);
                }
            }
    if (pass == FCNN_SPLIT_DX)
        FCNN_TN(fcnn_place)(canvas, hc, wc, g->ci, 1, 1, -g->pt, -g->pl, out, g->h, g->w);
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

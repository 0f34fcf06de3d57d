/* Single-precision convolution micro-kernels with run-time SIMD dispatch.
 *
 * The wheel is built without -march, so every kernel body below is written once with GCC vector
 * extensions (16-float vectors) and compiled three times: for AVX-512, for AVX2+FMA, and for the
 * baseline ISA ("scalar": the compiler lowers the vectors to whatever the base target has, SSE2
 * on x86-64). fcnn_simd_init() picks the best one with __builtin_cpu_supports.
 *
 * One register tile shape serves all three passes: P rows x NV 16-float vectors of accumulators,
 * each step broadcasting one scalar per row against NV vectors loaded from a packed panel.
 *   forward  rows = output pixels,       panel = weights (kh*kw*ci, co),       epilogue = bias/ReLU store
 *   dX       rows = dY pixels,           panel = W_a^T (co, kw*ci) per kernel row a,
 *                                        epilogue = scatter-add into the (padded) dX image (col2im
 *                                        fused; see fcnn_dx_image for narrow first layers)
 *   dW       rows = (kh, kw, ci) taps,   panel = dY pixels (co),               reduction over pixels
 * dX this way does no multiplications by the zeros a "full" convolution of padded dY would.
 */
#ifndef FASTCNN_CONV_SIMD_H
#define FASTCNN_CONV_SIMD_H

#include <stddef.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "cpu.h"

static int fcnn_min(int a, int b) { return a < b ? a : b; }
static int fcnn_round16(int n) { return (n + 15) & ~15; }
static int fcnn_imax(int a, int b) { return a > b ? a : b; }

/* The most weight-panel bytes one sweep of the forward tiles reads: half the L1 data cache, so the
 * panel slice stays there beside the windows and outputs. A whole panel (conv 32 -> 32: 37 KB of
 * a 48 KB L1) was evicted by them tile after tile and streamed from L2 instead. Set at load from
 * the C library's L1 size where it knows it. */
static int fcnn_panel_bytes = 16384;

__attribute__((constructor)) static void fcnn_panel_init(void)
{
#ifdef _SC_LEVEL1_DCACHE_SIZE
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE); /* glibc; 0 or -1 where unknown */
    if (l1 >= 8192 && l1 <= (1L << 24))
        fcnn_panel_bytes = (int)(l1 / 2);
#endif
}

/* Lets tests cut K into slices of any size; returns the previous bound. */
static int fcnn_panel_bytes_set(int bytes)
{
    const int old = fcnn_panel_bytes;
    fcnn_panel_bytes = fcnn_imax(bytes, 1);
    return old;
}

/* Output channels per packed panel block for a matrix with cols columns: on AVX-512 up to the
 * widest tile's NV * 16 = 64, but no wider than cols needs. A padded panel would only add zeros to
 * multiply and push the panel out of L1 (conv 32 -> 32: 74 KB instead of 37 KB), and for a
 * 10-class dense layer its serial packing would cost more than the product. */
static int fcnn_block_max(int level) { return level == FCNN_AVX512 ? 64 : 16; }
static int fcnn_block(int level, int cols)
{
    return fcnn_min(fcnn_round16(cols), fcnn_block_max(level));
}

/* ---- data movement (plain C, not hot) ------------------------------------------------------ */

/* Packs the (rows, cols) matrix m[r*rs + c*cs] into column blocks of width cb, zero-padded:
 * dst[(blk*rows + r)*cb + j] = m[r, blk*cb + j]. Each block is one contiguous panel. */
static void fcnn_pack_cols(const float *m, int rows, int cols, int rs, int cs, int cb, float *dst)
{
    for (int b0 = 0; b0 < cols; b0 += cb)
        for (int r = 0; r < rows; r++, dst += cb)
            for (int j = 0; j < cb; j++)
                dst[j] = b0 + j < cols ? m[(size_t)r * rs + (size_t)(b0 + j) * cs] : 0.0f;
}

static size_t fcnn_packed_size(int rows, int cols, int cb)
{
    return (size_t)((cols + cb - 1) / cb) * rows * cb;
}

/* Zeroes cv (hc, wc, c) and puts src pixel (y, x) of (h, w, c) at (oy + y*dy, ox + x*dx) wherever
 * that lies inside cv. Padding is (1, 1, pad_top, pad_left); dilating dY is (sh, sw, ...);
 * cropping a canvas back is (1, 1, -pad_top, -pad_left). */
static void fcnn_place(const float *src, int h, int w, int c, int dy, int dx, int oy, int ox,
                       float *cv, int hc, int wc)
{
    memset(cv, 0, (size_t)hc * wc * c * sizeof(float));
    for (int y = 0; y < h; y++) {
        const int py = oy + y * dy;
        if (py < 0 || py >= hc)
            continue;
        if (dx == 1) {
            const int x0 = ox < 0 ? -ox : 0, x1 = fcnn_min(w, wc - ox);
            if (x1 > x0)
                memcpy(cv + ((size_t)py * wc + ox + x0) * c, src + ((size_t)y * w + x0) * c,
                       (size_t)(x1 - x0) * c * sizeof(float));
            continue;
        }
        for (int x = 0; x < w; x++) {
            const int px = ox + x * dx;
            if (px >= 0 && px < wc)
                memcpy(cv + ((size_t)py * wc + px) * c, src + ((size_t)y * w + x) * c,
                       (size_t)c * sizeof(float));
        }
    }
}

/* out[j] = parts[0][j] + parts[1][j] + ... in that order, whatever thread produced each part:
 * this fixed order is what makes dW independent of the thread count. */
static void fcnn_sum_parts(const float *parts, int nparts, size_t step, int n, float *out)
{
    memcpy(out, parts, (size_t)n * sizeof(float));
    for (int k = 1; k < nparts; k++)
        for (int j = 0; j < n; j++)
            out[j] += parts[k * step + j];
}

/* ---- register-tiled micro-kernels ---------------------------------------------------------- */

/* Vectors of 16, 8 and 4 floats: the registers of AVX-512, AVX2 and SSE2. */
typedef float fcnn_v16 __attribute__((vector_size(64)));
typedef int fcnn_vi16 __attribute__((vector_size(64)));
typedef float fcnn_v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef float fcnn_v8 __attribute__((vector_size(32)));
typedef int fcnn_vi8 __attribute__((vector_size(32)));
typedef float fcnn_v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef int fcnn_vi8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float fcnn_v4 __attribute__((vector_size(16)));
typedef int fcnn_vi4 __attribute__((vector_size(16)));
typedef float fcnn_v4u __attribute__((vector_size(16), aligned(4), may_alias));
#define FCNN_INLINE static inline __attribute__((always_inline))
#define FCNN_PMAX 12 /* the tallest tile */

/* `acc += w * s` below relies on GNU C's default -ffp-contract=fast to become one FMA (checked in
 * the disassembly: the AVX-512 inner loop is 4 panel loads, P broadcasts and 4*P vfmadd231ps, no
 * spills). A strict -std=c99 build would still be correct, only slower. */

/* One sweep of the tile loop. Pixel (y, x) reads its window at x + y*px_row + x*px_col: kh runs of
 * kwci contiguous floats, k_row apart. It writes channel c at out + y*out_row + x*out_col + c. */
typedef struct {
    const float *x;
    int px_row, px_col, k_row, kh, kwci;
    const float *w, *bias; /* fcnn_pack_cols panels of the (kh*kwci, co) matrix; bias padded or NULL */
    int co;
    float *out;
    int out_row, out_col, oh, ow;
    int relu, accumulate; /* accumulate: out += tile (the dX scatter-add) instead of out = tile */
} fcnn_tile_job;

/* dW job: dw (kh*kwci, dw_row) += windows(x)^T . dY over all oh*ow pixels, windows as in
 * fcnn_tile_job; dY pixel q at dy + q*dy_px with round16(co) floats readable. Unless db is NULL,
 * also db (round16(co)) += the sums of dY over the pixels. */
typedef struct {
    const float *x;
    int px_row, px_col, k_row, kh, kwci;
    const float *dy;
    int dy_px, oh, ow, co;
    float *dw;
    int dw_row;
    float *db;
} fcnn_dw_job;

/* The micro-kernels themselves, once per vector width (see conv_tiles.h). The templates use
 * these names for the vectors of the width FCNN_W they are included with; macros expand where
 * they are used, so each inclusion gets its own width. */
#define FCNN_CAT(a, b) a##b
#define FCNN_XCAT(a, b) FCNN_CAT(a, b)
#define FCNN_VT FCNN_XCAT(fcnn_v, FCNN_W)
#define FCNN_VIT FCNN_XCAT(fcnn_vi, FCNN_W)
#define FCNN_VTU FCNN_XCAT(FCNN_XCAT(fcnn_v, FCNN_W), u)
#define FCNN_LDW(p) ((FCNN_VT)(*(const FCNN_VTU *)(p)))
#define FCNN_STW(p, v) (*(FCNN_VTU *)(p) = (v))
#define FCNN_NAME(f) FCNN_XCAT(FCNN_XCAT(f, _w), FCNN_W)

#define FCNN_W 16
#include "conv_tiles.h"
#define FCNN_W 8
#include "conv_tiles.h"
#define FCNN_W 4
#include "conv_tiles.h"

/* The three compilations. Tile heights keep P*NV accumulators + NV panel vectors + a broadcast
 * within the register file: 32 zmm of 16 floats, 16 ymm of 8, 16 xmm of 4. */
#if FCNN_X86
FCNN_TARGET_AVX512 static void fcnn_tiles_avx512(const fcnn_tile_job *jb)
{
    fcnn_tile_core_w16(64, 8, 12, 8, 6, jb);
}
FCNN_TARGET_AVX512 static void fcnn_dw_avx512(const fcnn_dw_job *jb)
{
    fcnn_dw_core_w16(64, 8, 12, 8, 6, jb);
}
FCNN_TARGET_AVX2 static void fcnn_tiles_avx2(const fcnn_tile_job *jb)
{
    fcnn_tile_core_w8(16, 12, 6, 1, 1, jb);
}
FCNN_TARGET_AVX2 static void fcnn_dw_avx2(const fcnn_dw_job *jb)
{
    fcnn_dw_core_w8(16, 12, 6, 1, 1, jb);
}
#endif
static void fcnn_tiles_scalar(const fcnn_tile_job *jb) { fcnn_tile_core_w4(16, 12, 6, 4, 2, jb); }
static void fcnn_dw_scalar(const fcnn_dw_job *jb) { fcnn_dw_core_w4(16, 12, 6, 4, 2, jb); }

static void fcnn_tiles(int level, const fcnn_tile_job *jb) { FCNN_DISPATCH(level, fcnn_tiles, jb); }

static void fcnn_dw(int level, const fcnn_dw_job *jb) { FCNN_DISPATCH(level, fcnn_dw, jb); }

/* ---- per-image passes ---------------------------------------------------------------------- */

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

/* Per-thread scratch floats for fcnn_forward_image. */
static size_t fcnn_canvas_size(const fcnn_geom *g)
{
    return fcnn_needs_canvas(g) ? (size_t)fcnn_canvas_h(g) * fcnn_canvas_w(g) * g->ci : 0;
}

/* The source the windows read: x itself, or x padded into canvas. Returns the row stride. */
static int fcnn_source(const fcnn_geom *g, const float *x, float *canvas, const float **src)
{
    if (!fcnn_needs_canvas(g)) {
        *src = x;
        return g->w * g->ci;
    }
    fcnn_place(x, g->h, g->w, g->ci, 1, 1, g->pt, g->pl, canvas, fcnn_canvas_h(g), fcnn_canvas_w(g));
    *src = canvas;
    return fcnn_canvas_w(g) * g->ci;
}

/* out (oh, ow, co) = relu?(conv(x (h, w, ci)) + bias). wp: fcnn_pack_cols of the HWIO weights as
 * a (kh*kw*ci, co) matrix; bp: the bias packed as (1, co), or NULL. */
static void fcnn_forward_image(int level, const fcnn_geom *g, const float *wp, const float *bp,
                               int relu, const float *x, float *out, float *canvas)
{
    const float *src;
    const int row = fcnn_source(g, x, canvas, &src);
    const fcnn_tile_job jb = {src, g->sh * row, g->sw * g->ci, row, g->kh, g->kw * g->ci, wp, bp,
                              g->co, out, g->ow * g->co, g->co, g->oh, g->ow, relu, 0};
    fcnn_tiles(level, &jb);
}

/* dX works one of two ways. Usually (kw*ci >= 16) the tile computes, for each kernel row a, the
 * dY pixel's column-matrix row dY . W_a^T and adds it straight into the window it came from:
 * col2im fused into the epilogue. When kw*ci < 16 (first layers) those rows would fill a fraction
 * of a vector, so instead the whole column-matrix row dY . W^T (kh*kw*ci wide) is stored to
 * scratch and then added into the window by plain loops. */
static int fcnn_dx_narrow(const fcnn_geom *g) { return g->kw * g->ci < 16; }

/* Packed weights for fcnn_dx_image: W^T (co, kh*kw*ci) when narrow, else W_a^T (co, kw*ci) for
 * each kernel row a, by fcnn_pack_cols. */
static size_t fcnn_dx_packed_size(int level, const fcnn_geom *g)
{
    const int kwci = g->kw * g->ci;
    if (fcnn_dx_narrow(g))
        return fcnn_packed_size(g->co, g->kh * kwci, fcnn_block(level, g->kh * kwci));
    return (size_t)g->kh * fcnn_packed_size(g->co, kwci, fcnn_block(level, kwci));
}

static void fcnn_pack_dx(int level, const float *w, const fcnn_geom *g, float *dst)
{
    const int kwci = g->kw * g->ci;
    const int cb = fcnn_block(level, fcnn_dx_narrow(g) ? g->kh * kwci : kwci);
    if (fcnn_dx_narrow(g)) {
        fcnn_pack_cols(w, g->co, g->kh * kwci, 1, g->co, cb, dst);
        return;
    }
    for (int a = 0; a < g->kh; a++)
        fcnn_pack_cols(w + (size_t)a * kwci * g->co, g->co, kwci, 1, g->co, cb,
                       dst + a * fcnn_packed_size(g->co, kwci, cb));
}

/* Per-thread scratch floats for fcnn_dx_image: the canvas, then the narrow case's column rows. */
static size_t fcnn_dx_scratch_size(const fcnn_geom *g)
{
    const size_t cols = (size_t)g->oh * g->ow * fcnn_round16(g->kh * g->kw * g->ci);
    return fcnn_canvas_size(g) + (fcnn_dx_narrow(g) ? cols : 0);
}

/* dx (h, w, ci) = conv^T(dy (oh, ow, co)), the gradient of the forward pass with respect to x. */
static void fcnn_dx_image(int level, const fcnn_geom *g, const float *wt, const float *dy,
                          float *dx, float *scratch)
{
    const int canvas_used = fcnn_needs_canvas(g);
    float *dst = canvas_used ? scratch : dx;
    const int hd = canvas_used ? fcnn_canvas_h(g) : g->h, wd = canvas_used ? fcnn_canvas_w(g) : g->w;
    const int row = wd * g->ci, kwci = g->kw * g->ci;
    memset(dst, 0, (size_t)hd * row * sizeof(float));
    if (fcnn_dx_narrow(g)) {
        /* rows padded to 16 so the tile stores whole vectors; the panel's padding is zeros */
        const int k16 = fcnn_round16(g->kh * kwci);
        float *cols = scratch + fcnn_canvas_size(g);
        const fcnn_tile_job jb = {dy, g->ow * g->co, g->co, 0, 1, g->co, wt, NULL, k16,
                                  cols, g->ow * k16, k16, g->oh, g->ow, 0, 0};
        fcnn_tiles(level, &jb);
        for (int y = 0; y < g->oh; y++)
            for (int x = 0; x < g->ow; x++, cols += k16)
                for (int a = 0; a < g->kh; a++) {
                    float *d = dst + (size_t)(y * g->sh + a) * row + x * g->sw * g->ci;
                    for (int j = 0; j < kwci; j++)
                        d[j] += cols[a * kwci + j];
                }
    } else {
        const size_t per_a = fcnn_packed_size(g->co, kwci, fcnn_block(level, kwci));
        for (int a = 0; a < g->kh; a++) {
            const fcnn_tile_job jb = {dy, g->ow * g->co, g->co, 0, 1, g->co, wt + a * per_a, NULL,
                                      kwci, dst + (size_t)a * row, g->sh * row, g->sw * g->ci,
                                      g->oh, g->ow, 0, 1};
            fcnn_tiles(level, &jb);
        }
    }
    if (canvas_used)
        fcnn_place(scratch, hd, wd, g->ci, 1, 1, -g->pt, -g->pl, dx, g->h, g->w);
}

/* Per-thread scratch floats for fcnn_dw_image: the canvas, and dY with rows padded to 16. */
static size_t fcnn_dw_scratch_size(const fcnn_geom *g)
{
    return fcnn_canvas_size(g) + (g->co % 16 ? (size_t)g->oh * g->ow * fcnn_round16(g->co) : 0);
}

/* dw (kh*kw*ci, round16(co)) += windows(x)^T . dy for one image, and db (co) += the column sums of
 * dy unless db is NULL; pixels in row-major order. */
static void fcnn_dw_image(int level, const fcnn_geom *g, const float *x, const float *dy,
                          float *dw, float *db, float *scratch)
{
    const float *src, *d = dy;
    const int row = fcnn_source(g, x, scratch, &src), co = g->co, c16 = fcnn_round16(co);
    const int npix = g->oh * g->ow;
    int dy_px = co;
    if (co % 16) {
        float *pad = scratch + fcnn_canvas_size(g);
        for (int q = 0; q < npix; q++) {
            memcpy(pad + (size_t)q * c16, dy + (size_t)q * co, (size_t)co * sizeof(float));
            memset(pad + (size_t)q * c16 + co, 0, (size_t)(c16 - co) * sizeof(float));
        }
        d = pad;
        dy_px = c16;
    }
    const fcnn_dw_job jb = {src, g->sh * row, g->sw * g->ci, row, g->kh, g->kw * g->ci,
                            d, dy_px, g->oh, g->ow, co, dw, c16, db};
    fcnn_dw(level, &jb);
}

/* ---- a convolution followed by max pooling, per image ---------------------------------------- */

/* Max pooling without padding: pooled output (ph, pw), windows (kh, kw) every (sh, sw). The
 * convolution computes only the (ph-1)*sh + kh rows and (pw-1)*sw + kw columns that windows read. */
typedef struct {
    int ph, pw, kh, kw, sh, sw;
} fcnn_pool_geom;

static int fcnn_pooled_rows(const fcnn_pool_geom *p) { return (p->ph - 1) * p->sh + p->kh; }
static int fcnn_pooled_cols(const fcnn_pool_geom *p) { return (p->pw - 1) * p->sw + p->kw; }

/* Windows tile z exactly when they neither overlap nor leave gaps. */
static int fcnn_pool_tiles(const fcnn_pool_geom *p) { return p->sh == p->kh && p->sw == p->kw; }

/* Pooling compares, and GCC turns a compare of 16-float vectors into 16 scalar ones unless the
 * target has 512-bit mask registers (and sometimes even then, after inlining), so the portable
 * loops below use 8-float vectors, which the AVX2 and baseline builds compare natively; the
 * AVX-512 build has its own loops with mask intrinsics further down. */
#define FCNN_LD8(p) ((fcnn_v8)(*(const fcnn_v8u *)(p)))
#define FCNN_LDI8(p) ((fcnn_vi8)(*(const fcnn_vi8u *)(p)))
#define FCNN_ST8(p, v) (*(fcnn_v8u *)(p) = (v))
#define FCNN_STI8(p, v) (*(fcnn_vi8u *)(p) = (v))
#define FCNN_IOTA8 ((fcnn_vi8){0, 1, 2, 3, 4, 5, 6, 7})

/* f(KH, KW, p, ...), with the window size as constants for 2x2 pools, nearly every net's: GCC
 * then unrolls the window loops, whose setup per 8 channels otherwise cost more than the compares
 * (7 us an image, not 2). */
#define FCNN_BY_WINDOW(f, p, ...)                                                                  \
    ((p)->kh == 2 && (p)->kw == 2 ? f(2, 2, (p), __VA_ARGS__) : f((p)->kh, (p)->kw, (p), __VA_ARGS__))

/* out (ph, pw, co) = the window maxima of z (rows, zw, co), and argmax (unless NULL) the index
 * (r*zw + s)*co + c of each in z. Ties keep the first maximum in row-major window order, as
 * maxpool2d_forward does. Eight channels at a time, then a scalar tail. */
FCNN_INLINE void fcnn_maxpool_win(const int KH, const int KW, const fcnn_pool_geom *p,
                                  const float *z, int zw, int co, float *out, int *argmax)
{
    const int c8 = co & ~7;
    for (int i = 0; i < p->ph; i++)
        for (int j = 0; j < p->pw; j++) {
            const size_t o = ((size_t)i * p->pw + j) * co;
            const int first = ((i * p->sh) * zw + j * p->sw) * co;
            for (int c = 0; c < c8; c += 8) {
                fcnn_v8 best = FCNN_LD8(z + first + c);
                fcnn_vi8 where = first + c + FCNN_IOTA8;
                for (int a = 0; a < KH; a++)
                    for (int b = a == 0; b < KW; b++) {
                        const int base = ((i * p->sh + a) * zw + j * p->sw + b) * co + c;
                        const fcnn_v8 v = FCNN_LD8(z + base);
                        const fcnn_vi8 gt = v > best;
                        best = (fcnn_v8)((gt & (fcnn_vi8)v) | (~gt & (fcnn_vi8)best));
                        where = (gt & (base + FCNN_IOTA8)) | (~gt & where);
                    }
                FCNN_ST8(out + o + c, best);
                if (argmax)
                    FCNN_STI8(argmax + o + c, where);
            }
            for (int c = c8; c < co; c++) {
                float best = z[first + c];
                int where = first + c;
                for (int a = 0; a < KH; a++)
                    for (int b = a == 0; b < KW; b++) {
                        const int base = ((i * p->sh + a) * zw + j * p->sw + b) * co + c;
                        if (z[base] > best) {
                            best = z[base];
                            where = base;
                        }
                    }
                out[o + c] = best;
                if (argmax)
                    argmax[o + c] = where;
            }
        }
}

FCNN_INLINE void fcnn_maxpool_core(const fcnn_pool_geom *p, const float *z, int zw, int co,
                                   float *out, int *argmax)
{
    FCNN_BY_WINDOW(fcnn_maxpool_win, p, z, zw, co, out, argmax);
}

/* dz (rows, zw, co) = dy (ph, pw, co) placed at its argmax cells, zero elsewhere: the backward of
 * fcnn_maxpool_core. With relu, dy passes only where the pooled value is positive, which is the
 * backward of a relu before the pooling. Argmax entries outside their own window are skipped and
 * counted. Windows that tile z are written whole, eight channels at a time, with no scatter. */
FCNN_INLINE int fcnn_unpool_win(const int KH, const int KW, const fcnn_pool_geom *p,
                                const float *dy, const float *pooled, const int *argmax, int zw,
                                int co, int relu, float *dz)
{
    const int c8 = fcnn_pool_tiles(p) ? co & ~7 : 0;
    const fcnn_v8 zero = {0};
    fcnn_vi8 misses = {0}; /* -1 per lane per vector whose argmax missed its window */
    int bad = 0;
    if (!fcnn_pool_tiles(p))
        memset(dz, 0, (size_t)fcnn_pooled_rows(p) * zw * co * sizeof(float));
    for (int i = 0; i < p->ph; i++)
        for (int j = 0; j < p->pw; j++) {
            const size_t o = ((size_t)i * p->pw + j) * co;
            for (int c = 0; c < c8; c += 8) {
                fcnn_vi8 g = (fcnn_vi8)FCNN_LD8(dy + o + c);
                if (relu)
                    g &= FCNN_LD8(pooled + o + c) > zero;
                const fcnn_vi8 at = FCNN_LDI8(argmax + o + c);
                fcnn_vi8 hit = {0};
                for (int a = 0; a < KH; a++)
                    for (int b = 0; b < KW; b++) {
                        const int base = ((i * p->sh + a) * zw + j * p->sw + b) * co + c;
                        const fcnn_vi8 eq = at == base + FCNN_IOTA8;
                        hit |= eq;
                        FCNN_STI8(dz + base, eq & g);
                    }
                misses += hit == 0;
            }
            for (int c = c8; c < co; c++) { /* channel tails, and every channel otherwise */
                const int at = argmax[o + c], cell = at / co, r = cell / zw, q = cell - r * zw;
                if (fcnn_pool_tiles(p))
                    for (int a = 0; a < KH; a++)
                        for (int b = 0; b < KW; b++)
                            dz[((i * p->sh + a) * zw + j * p->sw + b) * co + c] = 0.0f;
                if (at < 0 || at - cell * co != c || r < i * p->sh || r >= i * p->sh + KH
                    || q < j * p->sw || q >= j * p->sw + KW) {
                    bad++;
                    continue;
                }
                dz[at] += relu && !(pooled[o + c] > 0) ? 0.0f : dy[o + c];
            }
        }
    for (int l = 0; l < 8; l++)
        bad -= misses[l];
    return bad;
}

FCNN_INLINE int fcnn_unpool_core(const fcnn_pool_geom *p, const float *dy, const float *pooled,
                                 const int *argmax, int zw, int co, int relu, float *dz)
{
    return FCNN_BY_WINDOW(fcnn_unpool_win, p, dy, pooled, argmax, zw, co, relu, dz);
}

#if FCNN_X86
/* AVX-512 has compares into mask registers and masked loads and stores, so these do sixteen
 * channels a step, channel tails included, and choose with one masked move instead of and/or
 * blends. On conv1 of the MNIST net (26x26x32 -> 13x13x32, 128 images, 1 thread) the fused conv
 * and pooling went from 16.7 to 11.5 us an image forward, and 14.8 to 9.2 backward. Same results
 * as fcnn_maxpool_core and fcnn_unpool_core: strict > keeps the first maximum of a tie (and a NaN
 * never replaces it). */
FCNN_TARGET_AVX512 static inline __mmask16 fcnn_lanes16(int left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* The window's cells sit at fixed offsets from its first one in z, so the loops keep each cell's
 * offset broadcast in a register and track which offset won, not its absolute index. */
FCNN_TARGET_AVX512 FCNN_INLINE void
fcnn_cell_offsets16(const int KH, const int KW, int zw, int co, int *off, __m512i *voff)
{
    for (int k = 0; k < KH * KW; k++) {
        off[k] = (k / KW * zw + k % KW) * co;
        voff[k] = _mm512_set1_epi32(off[k]);
    }
}

FCNN_TARGET_AVX512 FCNN_INLINE void
fcnn_maxpool_win16(const int KH, const int KW, const fcnn_pool_geom *p, const float *z, int zw,
                   int co, float *out, int *am)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int ph = p->ph, pw = p->pw, sh = p->sh, sw = p->sw;
    int off[KH * KW];
    __m512i voff[KH * KW];
    fcnn_cell_offsets16(KH, KW, zw, co, off, voff);
    for (int i = 0; i < ph; i++)
        for (int j = 0; j < pw; j++) {
            const int first = ((i * sh) * zw + j * sw) * co;
            float *o = out + ((size_t)i * pw + j) * co;
            int *ao = am ? am + ((size_t)i * pw + j) * co : NULL;
            for (int c = 0; c < co; c += 16) {
                const __mmask16 m = fcnn_lanes16(co - c);
                const float *win = z + first + c;
                __m512 best = _mm512_maskz_loadu_ps(m, win);
                __m512i won = _mm512_setzero_si512();
                for (int k = 1; k < KH * KW; k++) {
                    const __m512 v = _mm512_maskz_loadu_ps(m, win + off[k]);
                    const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
                    best = _mm512_mask_mov_ps(best, gt, v);
                    won = _mm512_mask_mov_epi32(won, gt, voff[k]);
                }
                _mm512_mask_storeu_ps(o + c, m, best);
                if (ao) {
                    const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(first + c), iota);
                    _mm512_mask_storeu_epi32(ao + c, m, _mm512_add_epi32(won, at));
                }
            }
        }
}

FCNN_TARGET_AVX512 static void
fcnn_maxpool_avx512(const fcnn_pool_geom *p, const float *z, int zw, int co, float *out, int *am)
{
    FCNN_BY_WINDOW(fcnn_maxpool_win16, p, z, zw, co, out, am);
}

/* Windows that tile z only; the others (overlapping or gapped) take fcnn_unpool_core's scatter. */
FCNN_TARGET_AVX512 FCNN_INLINE int
fcnn_unpool_win16(const int KH, const int KW, const fcnn_pool_geom *p, const float *dy,
                  const float *pooled, const int *am, int zw, int co, int relu, float *dz)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int ph = p->ph, pw = p->pw, sh = p->sh, sw = p->sw;
    int off[KH * KW], bad = 0;
    __m512i voff[KH * KW];
    fcnn_cell_offsets16(KH, KW, zw, co, off, voff);
    for (int i = 0; i < ph; i++)
        for (int j = 0; j < pw; j++) {
            const int first = ((i * sh) * zw + j * sw) * co;
            const size_t o = ((size_t)i * pw + j) * co;
            for (int c = 0; c < co; c += 16) {
                const __mmask16 m = fcnn_lanes16(co - c);
                const __m512 g = _mm512_maskz_loadu_ps(m, dy + o + c);
                /* the argmax as an offset from the window's first cell, in this lane's channel */
                const __m512i at = _mm512_sub_epi32(
                    _mm512_maskz_loadu_epi32(m, am + o + c),
                    _mm512_add_epi32(_mm512_set1_epi32(first + c), iota));
                __mmask16 pass = m, hit = 0;
                if (relu)
                    pass = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, pooled + o + c),
                                                   _mm512_setzero_ps(), _CMP_GT_OQ);
                float *win = dz + first + c;
                for (int k = 0; k < KH * KW; k++) {
                    const __mmask16 eq = _mm512_cmpeq_epi32_mask(at, voff[k]);
                    hit |= eq;
                    _mm512_mask_storeu_ps(win + off[k], m, _mm512_maskz_mov_ps(eq & pass, g));
                }
                bad += __builtin_popcount(m & ~hit & 0xFFFF);
            }
        }
    return bad;
}

FCNN_TARGET_AVX512 static int
fcnn_unpool_avx512(const fcnn_pool_geom *p, const float *dy, const float *pooled, const int *am,
                   int zw, int co, int relu, float *dz)
{
    if (!fcnn_pool_tiles(p))
        return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
    return FCNN_BY_WINDOW(fcnn_unpool_win16, p, dy, pooled, am, zw, co, relu, dz);
}

FCNN_TARGET_AVX2 static void
fcnn_maxpool_avx2(const fcnn_pool_geom *p, const float *z, int zw, int co, float *out, int *am)
{
    fcnn_maxpool_core(p, z, zw, co, out, am);
}
FCNN_TARGET_AVX2 static int
fcnn_unpool_avx2(const fcnn_pool_geom *p, const float *dy, const float *pooled, const int *am,
                 int zw, int co, int relu, float *dz)
{
    return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
}
#endif

static void fcnn_maxpool_scalar(const fcnn_pool_geom *p, const float *z, int zw, int co,
                                float *out, int *am)
{
    fcnn_maxpool_core(p, z, zw, co, out, am);
}
static int fcnn_unpool_scalar(const fcnn_pool_geom *p, const float *dy, const float *pooled,
                              const int *am, int zw, int co, int relu, float *dz)
{
    return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
}

static void fcnn_maxpool_image(int level, const fcnn_pool_geom *p, const float *z, int zw, int co,
                               float *out, int *argmax)
{
    FCNN_DISPATCH(level, fcnn_maxpool, p, z, zw, co, out, argmax);
}

static int fcnn_unpool_image(int level, const fcnn_pool_geom *p, const float *dy,
                             const float *pooled, const int *argmax, int zw, int co, int relu,
                             float *dz)
{
    return FCNN_DISPATCH(level, fcnn_unpool, p, dy, pooled, argmax, zw, co, relu, dz);
}

/* dx[i] = 0 where y[i] <= 0: the backward of the relu whose output y was this conv's input. The
 * select, not a branch, lets GCC vectorise it (the sign of y is as good as random). */
static void fcnn_relu_mask(const float *y, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0 ? dx[i] : 0.0f;
}

#endif /* FASTCNN_CONV_SIMD_H */

/* The register-tiled micro-kernels of the convolutions and the wide dense layers, compiled once
 * per SIMD level, and their dispatch.
 *
 * The kernel bodies (conv_tiles.h) are written once with GCC vector extensions and included once
 * per element type and vector width: 16 floats or 8 doubles for AVX-512, 8 or 4 for AVX2+FMA, and
 * 4 or 2 for the baseline ISA (the compiler lowers them to whatever the base target has, SSE2 on
 * x86-64). float64 thus runs the very code float32 trains with, only in wider elements: a
 * gradient check of float64 tests the tiles' indexing, slicing and epilogues.
 *
 * One register tile shape serves all three passes: P rows x NV vectors of accumulators, each
 * step broadcasting one scalar per row against NV vectors loaded from a packed panel.
 *   forward  rows = output pixels,       panel = weights (kh*kw*ci, co),       epilogue = bias/ReLU store
 *   dX       rows = dY pixels,           panel = W_a^T (co, kw*ci) per kernel row a,
 *                                        epilogue = scatter-add into the (padded) dX image (col2im
 *                                        fused; see fcnn_dx_image for narrow first layers)
 *   dW       rows = (kh, kw, ci) taps,   panel = dY pixels (co),               reduction over pixels
 * dX this way does no multiplications by the zeros a "full" convolution of padded dY would; a
 * stride-1 "same" conv, whose full convolution has no such zeros, runs its dX as the forward
 * (fcnn_dx_image).
 */
#ifndef FCNN_F64
#ifndef FASTCNN_TILE_KERNELS_H
#define FASTCNN_TILE_KERNELS_H

#include <stddef.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "cpu.h"
#include "pack.h"
#include "vectors.h"

#define FCNN_PMAX 24 /* the tallest tile */

/* The most weight-panel bytes one sweep of the forward tiles reads: half the L1 data cache, so the
 * panel slice stays there beside the windows and outputs. A whole panel (conv 32 -> 32: 37 KB of
 * a 48 KB L1) was evicted by them tile after tile and streamed from L2 instead. Set at load from
 * the C library's L1 size where it knows it. */
static int fcnn_panel_bytes = 16384;

/* The most bytes of dY and input rows one band of a dW pass reads (conv_passes.h's
 * fcnn_dw_image): half the L2 cache. Every dW tile sweeps its band once, so a band kept in L2
 * is read from there by all the tiles; a whole 64x64 image of 32 channels and its 16-channel dY
 * (800 KB) was streamed from L3 by each of its 48 tiles. Set at load like fcnn_panel_bytes. */
static long fcnn_band_bytes = 262144;

__attribute__((constructor)) static void fcnn_panel_init(void)
{
#ifdef _SC_LEVEL1_DCACHE_SIZE
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE); /* glibc; 0 or -1 where unknown */
    if (l1 >= 8192 && l1 <= (1L << 24))
        fcnn_panel_bytes = (int)(l1 / 2);
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l2 >= 65536 && l2 <= (1L << 30))
        fcnn_band_bytes = l2 / 2;
#endif
}

/* Let tests cut K into slices, and dW's rows into bands, of any size; return the previous bound. */
static int fcnn_panel_bytes_set(int bytes)
{
    const int old = fcnn_panel_bytes;
    fcnn_panel_bytes = fcnn_imax(bytes, 1);
    return old;
}
static long fcnn_band_bytes_set(long bytes)
{
    const long old = fcnn_band_bytes;
    fcnn_band_bytes = bytes > 1 ? bytes : 1;
    return old;
}

/* `acc += w * s` below relies on GNU C's default -ffp-contract=fast to become one FMA (checked in
 * the disassembly: the AVX-512 inner loop is 4 panel loads, P broadcasts and 4*P vfmadd231ps, no
 * spills). A strict -std=c99 build would still be correct, only slower. */

#define FCNN_F64 0
#include "tile_kernels.h"
#define FCNN_F64 1
#include "tile_kernels.h"

#endif /* FASTCNN_TILE_KERNELS_H */
#else /* the part over FCNN_T */

/* One sweep of the tile loop. Pixel (y, x) reads its window at x + y*px_row + x*px_col: kh runs of
 * kwci contiguous elements, k_row apart. It writes channel c at out + y*out_row + x*out_col + c. */
typedef struct {
    const FCNN_T *x;
    int px_row, px_col, k_row, kh, kwci;
    const FCNN_T *w, *bias; /* fcnn_pack_cols panels of the (kh*kwci, co) matrix; bias padded or
                             * NULL */
    int co;
    FCNN_T *out;
    int out_row, out_col, oh, ow;
    int relu, accumulate; /* accumulate: out += tile (the dX scatter-add) instead of out = tile */
} FCNN_TN(fcnn_tile_job);

/* dW job: dw (kh*kwci, dw_row) += windows(x)^T . dY over all oh*ow pixels, windows as in
 * fcnn_tile_job; dY pixel q at dy + q*dy_px with round16(co) elements readable. Unless db is NULL,
 * also db (round16(co)) += the sums of dY over the pixels. */
typedef struct {
    const FCNN_T *x;
    int px_row, px_col, k_row, kh, kwci;
    const FCNN_T *dy;
    int dy_px, oh, ow, co;
    FCNN_T *dw;
    int dw_row;
    FCNN_T *db;
} FCNN_TN(fcnn_dw_job);

/* dW's software prefetch (conv_tiles.h's fcnn_dw_tile): pixels ahead, and the narrowest row of x
 * in bytes that it is for. */
#define FCNN_DW_AHEAD 16
#define FCNN_DW_WIDE 256

#define FCNN_W FCNN_W512
#include "conv_tiles.h"
#define FCNN_W FCNN_W256
#include "conv_tiles.h"
#define FCNN_W FCNN_W128
#include "conv_tiles.h"

/* The three compilations. Tile heights keep P*NV accumulators + NV panel vectors + a broadcast
 * within the register file: 32 zmm, 16 ymm, 16 xmm. The widest tile, CBMAX = fcnn_block_max
 * lanes, is 4, 2 and 4 vectors. dW's one-vector tile on AVX-512 is 24 taps tall (24 accumulators
 * + dY + a broadcast), its last taps 8 at a time: each tile sweeps dY and the windows once, and
 * 8 taps a sweep had left 16-channel dW streaming them from L2 three times as often. */
#if FCNN_X86
FCNN_TARGET_AVX512 static void FCNN_TLEVEL(fcnn_tiles, _avx512)(const FCNN_TN(fcnn_tile_job) *jb)
{
    FCNN_AT(fcnn_tile_core, FCNN_W512)(4 * FCNN_W512, 8, 12, 8, 6, jb);
}
FCNN_TARGET_AVX512 static void FCNN_TLEVEL(fcnn_dw, _avx512)(const FCNN_TN(fcnn_dw_job) *jb)
{
    FCNN_AT(fcnn_dw_core, FCNN_W512)(4 * FCNN_W512, 24, 8, 12, 8, 6, jb);
}
FCNN_TARGET_AVX2 static void FCNN_TLEVEL(fcnn_tiles, _avx2)(const FCNN_TN(fcnn_tile_job) *jb)
{
    FCNN_AT(fcnn_tile_core, FCNN_W256)(2 * FCNN_W256, 12, 6, 1, 1, jb);
}
FCNN_TARGET_AVX2 static void FCNN_TLEVEL(fcnn_dw, _avx2)(const FCNN_TN(fcnn_dw_job) *jb)
{
    FCNN_AT(fcnn_dw_core, FCNN_W256)(2 * FCNN_W256, 12, 12, 6, 1, 1, jb);
}
#endif
static void FCNN_TLEVEL(fcnn_tiles, _scalar)(const FCNN_TN(fcnn_tile_job) *jb)
{
    FCNN_AT(fcnn_tile_core, FCNN_W128)(4 * FCNN_W128, 12, 6, 4, 2, jb);
}
static void FCNN_TLEVEL(fcnn_dw, _scalar)(const FCNN_TN(fcnn_dw_job) *jb)
{
    FCNN_AT(fcnn_dw_core, FCNN_W128)(4 * FCNN_W128, 12, 12, 6, 4, 2, jb);
}

static void FCNN_TN(fcnn_tiles)(int level, const FCNN_TN(fcnn_tile_job) *jb)
{
    FCNN_TDISPATCH(level, fcnn_tiles, jb);
}

static void FCNN_TN(fcnn_dw)(int level, const FCNN_TN(fcnn_dw_job) *jb)
{
    FCNN_TDISPATCH(level, fcnn_dw, jb);
}

#undef FCNN_F64
#endif

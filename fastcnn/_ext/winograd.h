/* The 3x3 stride-1 convolution as Winograd's F(2x2, 3x3), included by conv_passes.h (whose
 * fcnn_geom it uses). For float and double: see vectors.h for how this header
 * compiles its typed part once per type.
 *
 * Each 2x2 block of output pixels ("tile") is A^T [(G w G^T) . (B^T d B)] A for its 4x4 input
 * patch d: in the transformed domain the 3x3 convolution becomes 16 elementwise products, which
 * over the channels are 16 matrix products V_e (tiles, ci) x U_e (ci, co), e < 16, run on the
 * forward's register tiles. That is 16 multiplies per tile and channel pair against the direct
 * convolution's 36; the transforms are only additions (G's halves are applied once per call, to
 * the weights), so no target contracts them and every SIMD level gives them the same bits.
 *
 * An image is worked in bands of tile rows (fcnn_wg_band): its patches transformed into V, the
 * 16 products into M, then M transformed back into the output rows with the bias and the
 * activation. Patches are read from the input itself, zeros where they pass its edges (the
 * padding, and past the last row or column of an odd output size), so no canvas is copied, and
 * a tile's bits depend on the input and its place only: cutting the output to fewer rows (the
 * fused max pooling does) leaves the bits of every row it keeps. Each output of F(2, 3) reads
 * only the three inputs of its own window, so a NaN spreads no further than in the direct
 * convolution; an infinite input, though, can give NaN (inf - inf in the transforms) where the
 * direct sum would give an infinity.
 */
#ifndef FCNN_F64
#ifndef FASTCNN_WINOGRAD_H
#define FASTCNN_WINOGRAD_H

#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "pack.h"
#include "tile_kernels.h"
#include "vectors.h"

/* The fewest channels on each side. With 16 the transforms, which move 16 * (ci + co) values a
 * tile against the products' 16 * ci * co multiplies, and products of a K of only 16 cost more
 * than the direct tiles save (32x32x16 -> 16: 1.2x the direct forward's time, 2-core AMD EPYC,
 * AVX2); from 32 on the forward and dX take 0.72-0.84 of it. */
#define FCNN_WG_MIN_CHANNELS 32
/* Elements between the end of one of the 16 matrices of V or M and the start of the next: the
 * transforms touch all 16 at once, and at a distance of a multiple of 4 KB they would share one
 * set of the L1 cache (a 8x8x64 image's V was sixteen 4 KB matrices). */
#define FCNN_WG_SKEW 16

static int fcnn_winograd(const fcnn_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1
           && g->ci >= FCNN_WG_MIN_CHANNELS && g->co >= FCNN_WG_MIN_CHANNELS;
}

/* Tile rows per band: as many as keep the band's V and M (16 * (ci + co) floats a tile) within
 * fcnn_band_bytes (half the L2), at least one. Each band makes 16 passes of the register tiles,
 * whose setup a short band pays often: bands of 16, 48 and 128 tiles of 32 -> 32 channels took
 * 0.97, 0.83 and 0.77 of the direct forward's time. */
static int fcnn_wg_band(const fcnn_geom *g)
{
    const int th = (g->oh + 1) / 2, tw = (g->ow + 1) / 2;
    const long tiles = fcnn_band_bytes / ((long)sizeof(float) * 16 * (g->ci + g->co));
    return fcnn_min(th, fcnn_imax(1, (int)(tiles / tw)));
}

/* Per-thread scratch elements for fcnn_winograd_image: V (16, tiles, ci),
 * M (16, tiles, co), a row of ci zeros and a pixel of co elements that the outputs past the
 * image go to. */
static size_t fcnn_wg_scratch_size(const fcnn_geom *g)
{
    const size_t nt = (size_t)fcnn_wg_band(g) * ((g->ow + 1) / 2);
    return 16 * (nt * (size_t)(g->ci + g->co) + 2 * FCNN_WG_SKEW) + g->ci + g->co;
}

/* U_e's panel: fcnn_pack_cols of the (ci, co) matrix in blocks of fcnn_block. */
static size_t fcnn_wg_panel_size(int level, const fcnn_geom *g, int size)
{
    return fcnn_packed_size(g->ci, g->co, fcnn_block(level, g->co, size));
}

/* Packed weights for fcnn_winograd_image: the 16 panels, then room for one U_e unpacked. */
static size_t fcnn_wg_packed_size(int level, const fcnn_geom *g, int size)
{
    return 16 * fcnn_wg_panel_size(level, g, size) + (size_t)g->ci * g->co;
}

#define FCNN_F64 0
#include "winograd.h"
#define FCNN_F64 1
#include "winograd.h"

#endif /* FASTCNN_WINOGRAD_H */
#else /* the part over FCNN_T */

/* Row i of G (rows 1, 0, 0; 1/2, 1/2, 1/2; 1/2, -1/2, 1/2; 0, 0, 1) times (t0, t1, t2). */
FCNN_INLINE FCNN_T FCNN_TN(fcnn_wg_g)(int i, FCNN_T t0, FCNN_T t1, FCNN_T t2)
{
    return i == 0 ? t0 : i == 3 ? t2
         : i == 1 ? (t0 + t1 + t2) * (FCNN_T)0.5 : (t0 - t1 + t2) * (FCNN_T)0.5;
}

/* dst = the 16 panels of U_e = G w G^T for the 3x3 kernel w of g, whose tap (a, b) of input
 * channel c and output channel k is w[(a*3 + b)*ci*co + c*co + k]; turned: w is the kernel of the
 * convolution whose dX g is (fcnn_dx_forward_geom), so tap (a, b) of g is tap (2-a, 2-b) of w
 * with its channels swapped. */
static void FCNN_TN(fcnn_wg_pack)(int level, const FCNN_T *w, const fcnn_geom *g, int turned,
                                  FCNN_T *dst)
{
    const int ci = g->ci, co = g->co, cb = fcnn_block(level, co, sizeof(FCNN_T));
    const size_t cc = (size_t)ci * co, panel = fcnn_wg_panel_size(level, g, sizeof(FCNN_T));
    const long sa = turned ? -3 * (long)cc : 3 * (long)cc, sb = turned ? -(long)cc : (long)cc;
    const long sc = turned ? 1 : co, sk = turned ? ci : 1;
    const FCNN_T *base = turned ? w + 8 * cc : w;
    FCNN_T *u = dst + 16 * panel;
    for (int e = 0; e < 16; e++) {
        const int i = e / 4, j = e % 4;
        for (int c = 0; c < ci; c++)
            for (int k = 0; k < co; k++) {
                const FCNN_T *t = base + c * sc + k * sk;
                FCNN_T gw[3]; /* row i of G w: a weighted sum of the kernel's rows */
                for (int b = 0; b < 3; b++)
                    gw[b] = FCNN_TN(fcnn_wg_g)(i, t[b * sb], t[sa + b * sb], t[2 * sa + b * sb]);
                u[(size_t)c * co + k] = FCNN_TN(fcnn_wg_g)(j, gw[0], gw[1], gw[2]);
            }
        FCNN_TN(fcnn_pack_cols)(u, ci, co, co, 1, cb, dst + e * panel);
    }
}

#define FCNN_W FCNN_W512
#include "winograd_lanes.h"
#define FCNN_W FCNN_W256
#include "winograd_lanes.h"
#define FCNN_W FCNN_W128
#include "winograd_lanes.h"

#define FCNN_WG_LEVELS(f, params, args)                                                           \
    FCNN_TARGET_AVX512 static void FCNN_TLEVEL(f, _avx512) params                                 \
    {                                                                                             \
        FCNN_AT(f##_core, FCNN_W512) args;                                                        \
    }                                                                                             \
    FCNN_TARGET_AVX2 static void FCNN_TLEVEL(f, _avx2) params                                     \
    {                                                                                             \
        FCNN_AT(f##_core, FCNN_W256) args;                                                        \
    }                                                                                             \
    static void FCNN_TLEVEL(f, _scalar) params { FCNN_AT(f##_core, FCNN_W128) args; }
#if !FCNN_X86
#undef FCNN_WG_LEVELS
#define FCNN_WG_LEVELS(f, params, args)                                                           \
    static void FCNN_TLEVEL(f, _scalar) params { FCNN_AT(f##_core, FCNN_W128) args; }
#endif

FCNN_WG_LEVELS(fcnn_wg_input,
               (const FCNN_T *x, const fcnn_geom *g, int ty0, int nb, int tw, const FCNN_T *zero,
                FCNN_T *v, size_t vs),
               (x, g, ty0, nb, tw, zero, v, vs))
FCNN_WG_LEVELS(fcnn_wg_output,
               (const FCNN_T *m, size_t ms, const fcnn_geom *g, const FCNN_T *bias, int relu,
                int ty0, int nb, int tw, FCNN_T *out, FCNN_T *dummy),
               (m, ms, g, bias, relu, ty0, nb, tw, out, dummy))
#undef FCNN_WG_LEVELS

/* out (oh, ow, co) = act(conv(x (h, w, ci)) + bias) for g (fcnn_winograd); u: fcnn_wg_pack's
 * panels; wg: the scratch of fcnn_wg_scratch_size. */
static void FCNN_TN(fcnn_winograd_image)(int level, const fcnn_geom *g, const FCNN_T *u,
                                         const FCNN_T *bias, int relu, const FCNN_T *x,
                                         FCNN_T *out, FCNN_T *wg)
{
    const int ci = g->ci, co = g->co, th = (g->oh + 1) / 2, tw = (g->ow + 1) / 2;
    const int br = fcnn_wg_band(g);
    const size_t most = (size_t)br * tw, panel = fcnn_wg_panel_size(level, g, sizeof(FCNN_T));
    FCNN_T *v = wg, *m = v + 16 * (most * ci + FCNN_WG_SKEW);
    FCNN_T *zero = m + 16 * (most * co + FCNN_WG_SKEW), *dummy = zero + ci;
    memset(zero, 0, (size_t)ci * sizeof(FCNN_T));
    for (int ty0 = 0; ty0 < th; ty0 += br) {
        const int nb = fcnn_min(br, th - ty0), nt = nb * tw;
        const size_t vs = (size_t)nt * ci + FCNN_WG_SKEW, ms = (size_t)nt * co + FCNN_WG_SKEW;
        FCNN_TDISPATCH(level, fcnn_wg_input, x, g, ty0, nb, tw, zero, v, vs);
        for (int e = 0; e < 16; e++) {
            /* nt "pixels" of one row, each a K of ci, against U_e */
            const FCNN_TN(fcnn_tile_job) jb = {v + e * vs, 0, ci, 0, 1, ci, u + e * panel, NULL,
                                               co, m + e * ms, 0, co, 1, nt, 0, 0};
            FCNN_TN(fcnn_tiles)(level, &jb);
        }
        FCNN_TDISPATCH(level, fcnn_wg_output, m, ms, g, bias, relu, ty0, nb, tw, out, dummy);
    }
}

#undef FCNN_F64
#endif

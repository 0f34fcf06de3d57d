/* Data movement around the SIMD kernels (plain C, not hot): packing a matrix into the column
 * panels the tiles read, placing an image into a padded or dilated canvas, and summing the
 * per-thread parts of a gradient in a fixed order. For float (_f32) and double (_f64): see
 * vectors.h for how this header compiles its typed part once per type. */
#ifndef FCNN_F64
#ifndef FASTCNN_PACK_H
#define FASTCNN_PACK_H

#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "vectors.h"

/* Images (conv) and rows (dense) per partial sum of a weight gradient (dW, db): fixed, and powers
 * of two, so that a batch cut at multiples of the larger (fastcnn.distributed's shares) cuts no
 * kernel's chunk and gives every kernel whole subtrees of its summation tree. Conv images are few
 * per batch and each is much work: small chunks let the threads share them out. */
enum { FCNN_IMAGES_PER_PARTIAL = 8, FCNN_ROWS_PER_PARTIAL = 32 };

static int fcnn_min(int a, int b) { return a < b ? a : b; }
static int fcnn_round16(int n) { return (n + 15) & ~15; }
static int fcnn_imax(int a, int b) { return a > b ? a : b; }

/* Output channels per packed panel block for a matrix with cols columns of size-byte elements:
 * on AVX-512 up to the widest tile's 4 vectors (64 floats), else 64 bytes, but no wider than cols
 * needs. A padded panel would only add zeros to multiply and push the panel out of L1 (conv
 * 32 -> 32: 74 KB instead of 37 KB), and for a 10-class dense layer its serial packing would cost
 * more than the product. */
static int fcnn_block_max(int level, int size) { return (level == FCNN_AVX512 ? 256 : 64) / size; }
static int fcnn_block(int level, int cols, int size)
{
    return fcnn_min(fcnn_round16(cols), fcnn_block_max(level, size));
}

static size_t fcnn_packed_size(int rows, int cols, int cb)
{
    return (size_t)((cols + cb - 1) / cb) * rows * cb;
}

/* Summing the chunk sums of a batch along fcnn_sum_parts's tree in scratch bounded by the thread
 * count, not the batch: the chunks are cut into blocks of 2^depth, aligned, so each block is a
 * subtree (the last one clipped as the tree clips it). A thread sums a block's chunks one after
 * another into a stack of partial sums, a binary counter (fcnn_tree_part, fcnn_tree_add), which
 * leaves the block's subtree sum in the block's root; fcnn_sum_parts over the roots adds the top
 * of the same tree. The bits are those of fcnn_sum_parts over every chunk's sum, whatever the
 * depth, so the depth may follow the thread count. Blocks per thread: enough that threads taking
 * blocks one at a time end together; the roots are at most that many per thread. */
enum { FCNN_BLOCKS_PER_THREAD = 8 };

/* The plan of a sum of chunks chunk sums of step values each. Its scratch (fcnn_tree_size) holds
 * the blocks' roots, then each thread's stack: depth partial sums besides the root. */
typedef struct {
    ptrdiff_t chunks, blocks;
    size_t step;
    int depth;
} fcnn_tree;

/* The least depth that leaves at most FCNN_BLOCKS_PER_THREAD blocks per thread. */
static fcnn_tree fcnn_tree_plan(ptrdiff_t chunks, int n_threads, size_t step)
{
    fcnn_tree t = {chunks, 0, step, 0};
    while (((chunks - 1) >> t.depth) + 1 > (ptrdiff_t)FCNN_BLOCKS_PER_THREAD * n_threads)
        t.depth++;
    t.blocks = chunks > 0 ? ((chunks - 1) >> t.depth) + 1 : 0;
    return t;
}

/* Values of the scratch of plan t for n_threads threads. */
static size_t fcnn_tree_size(const fcnn_tree *t, int n_threads)
{
    return ((size_t)t->blocks + (size_t)n_threads * t->depth) * t->step;
}

/* The chunks [fcnn_tree_first, fcnn_tree_end) of block b. */
static ptrdiff_t fcnn_tree_first(const fcnn_tree *t, ptrdiff_t b) { return b << t->depth; }
static ptrdiff_t fcnn_tree_end(const fcnn_tree *t, ptrdiff_t b)
{
    const ptrdiff_t end = (b + 1) << t->depth;
    return end < t->chunks ? end : t->chunks;
}

#define FCNN_F64 0
#include "pack.h"
#define FCNN_F64 1
#include "pack.h"

#endif /* FASTCNN_PACK_H */
#else /* the part over FCNN_T */

/* Packs the (rows, cols) matrix m[r*rs + c*cs] into column blocks of width cb, zero-padded:
 * dst[(blk*rows + r)*cb + j] = m[r, blk*cb + j]. Each block is one contiguous panel. */
static void FCNN_TN(fcnn_pack_cols)(const FCNN_T *m, int rows, int cols, int rs, int cs, int cb,
                                    FCNN_T *dst)
{
    for (int b0 = 0; b0 < cols; b0 += cb)
        for (int r = 0; r < rows; r++, dst += cb)
            for (int j = 0; j < cb; j++)
                dst[j] = b0 + j < cols ? m[(size_t)r * rs + (size_t)(b0 + j) * cs] : (FCNN_T)0;
}

/* Zeroes cv (hc, wc, c) and puts src pixel (y, x) of (h, w, c) at (oy + y*dy, ox + x*dx) wherever
 * that lies inside cv. Padding is (1, 1, pad_top, pad_left); dilating dY is (sh, sw, ...);
 * cropping a canvas back is (1, 1, -pad_top, -pad_left). */
static void FCNN_TN(fcnn_place)(const FCNN_T *src, int h, int w, int c, int dy, int dx, int oy,
                                int ox, FCNN_T *cv, int hc, int wc)
{
    memset(cv, 0, (size_t)hc * wc * c * sizeof(FCNN_T));
    for (int y = 0; y < h; y++) {
        const int py = oy + y * dy;
        if (py < 0 || py >= hc)
            continue;
        if (dx == 1) {
            const int x0 = ox < 0 ? -ox : 0, x1 = fcnn_min(w, wc - ox);
            if (x1 > x0)
                memcpy(cv + ((size_t)py * wc + ox + x0) * c, src + ((size_t)y * w + x0) * c,
                       (size_t)(x1 - x0) * c * sizeof(FCNN_T));
            continue;
        }
        for (int x = 0; x < w; x++) {
            const int px = ox + x * dx;
            if (px >= 0 && px < wc)
                memcpy(cv + ((size_t)py * wc + px) * c, src + ((size_t)y * w + x) * c,
                       (size_t)c * sizeof(FCNN_T));
        }
    }
}

/* out[j] = the sum of parts[k][j] over k along a fixed binary tree, whatever thread produced each
 * part: at level s = 1, 2, 4, ... part k (a multiple of 2s) adds part k + s where that exists, in
 * place, so parts are scratch. Parts of fixed chunks of samples summed along this tree make any
 * aligned block of 2^l parts a subtree: processes holding such blocks of a batch combine their
 * sums pairwise (fastcnn.distributed) into the bits that one process summing the whole batch
 * gets. The order is fixed by nparts alone, which makes dW independent of the thread count. */
static void FCNN_TN(fcnn_sum_parts)(FCNN_T *parts, int nparts, size_t step, int n, FCNN_T *out)
{
    for (int s = 1; s < nparts; s *= 2)
        for (int k = 0; k + s < nparts; k += 2 * s)
            for (int j = 0; j < n; j++)
                parts[(size_t)k * step + j] += parts[(size_t)(k + s) * step + j];
    memcpy(out, parts, (size_t)n * sizeof(FCNN_T));
}

/* Entry i of the stack of chunk c's block, in scratch sums: the block's root, then the stack of
 * thread (the one that sums the block). */
static FCNN_T *FCNN_TN(fcnn_tree_entry)(const fcnn_tree *t, FCNN_T *sums, int thread,
                                        ptrdiff_t c, int i)
{
    if (i == 0)
        return sums + (size_t)(c >> t->depth) * t->step;
    return sums + ((size_t)t->blocks + (size_t)thread * t->depth + i - 1) * t->step;
}

/* Where chunk c writes its sum, zeroed: on top of the sums of the chunks before it in its block,
 * j of them, which the stack holds as one entry per set bit of j. */
static FCNN_T *FCNN_TN(fcnn_tree_part)(const fcnn_tree *t, FCNN_T *sums, int thread, ptrdiff_t c)
{
    const ptrdiff_t j = c - fcnn_tree_first(t, c >> t->depth);
    FCNN_T *part = FCNN_TN(fcnn_tree_entry)(t, sums, thread, c, __builtin_popcountll(j));
    memset(part, 0, t->step * sizeof(FCNN_T));
    return part;
}

/* After chunk c's sum: adds the top entry into the one below while the two sum as many chunks
 * (as many times as j + 1 ends in zero bits: the binary counter's carries), so that two sibling
 * subtrees are added as soon as both are complete. After a block's last chunk, adds the rest
 * top down as well, which is how the tree adds a clipped right edge. */
static void FCNN_TN(fcnn_tree_add)(const fcnn_tree *t, FCNN_T *sums, int thread, ptrdiff_t c)
{
    const ptrdiff_t j = c - fcnn_tree_first(t, c >> t->depth);
    const int last = c + 1 == fcnn_tree_end(t, c >> t->depth);
    int top = __builtin_popcountll(j) + 1;
    for (int merges = last ? top - 1 : __builtin_ctzll(j + 1); merges > 0; merges--, top--) {
        FCNN_T *a = FCNN_TN(fcnn_tree_entry)(t, sums, thread, c, top - 2);
        const FCNN_T *b = FCNN_TN(fcnn_tree_entry)(t, sums, thread, c, top - 1);
        for (size_t k = 0; k < t->step; k++)
            a[k] += b[k];
    }
}

#undef FCNN_F64
#endif

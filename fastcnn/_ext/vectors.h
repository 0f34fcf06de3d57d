/* The GCC vector types and the width and element-type macros of the SIMD templates (conv_tiles.h,
 * dense_tiles.h), and the float vectors of the max-pool loops. */
#ifndef FASTCNN_VECTORS_H
#define FASTCNN_VECTORS_H

#include "cpu.h"

/* Vectors of 16, 8 and 4 floats, and of 8, 4 and 2 doubles: the registers of AVX-512, AVX2 and
 * SSE2. */
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
typedef double fcnn_vd8 __attribute__((vector_size(64)));
typedef long long fcnn_vl8 __attribute__((vector_size(64)));
typedef double fcnn_vd8u __attribute__((vector_size(64), aligned(8), may_alias));
typedef double fcnn_vd4 __attribute__((vector_size(32)));
typedef long long fcnn_vl4 __attribute__((vector_size(32)));
typedef double fcnn_vd4u __attribute__((vector_size(32), aligned(8), may_alias));
typedef double fcnn_vd2 __attribute__((vector_size(16)));
typedef long long fcnn_vl2 __attribute__((vector_size(16)));
typedef double fcnn_vd2u __attribute__((vector_size(16), aligned(8), may_alias));

#define FCNN_CAT(a, b) a##b
#define FCNN_XCAT(a, b) FCNN_CAT(a, b)

/* The element type. A typed header (pack.h, tile_kernels.h, conv_passes.h, dense_narrow.h) holds
 * its float and double code once, written over FCNN_T, and compiles it twice: it includes itself
 * with FCNN_F64 defined to 0 and then to 1. Its own type-free part and its includes come first,
 * outside that part. Typed names take the suffix FCNN_TS (_f32 or _f64) through FCNN_TN. The
 * macros below expand where they are used, so each inclusion gets its own type. */
#define FCNN_PICK_0(f32, f64) f32
#define FCNN_PICK_1(f32, f64) f64
#define FCNN_PICK(f32, f64) FCNN_XCAT(FCNN_PICK_, FCNN_F64)(f32, f64)
#define FCNN_T FCNN_PICK(float, double)
#define FCNN_TS FCNN_PICK(_f32, _f64)
#define FCNN_TN(f) FCNN_XCAT(f, FCNN_TS)
/* Lanes of FCNN_T in a register of 512, 256 and 128 bits. */
#define FCNN_W512 FCNN_PICK(16, 8)
#define FCNN_W256 FCNN_PICK(8, 4)
#define FCNN_W128 FCNN_PICK(4, 2)

/* A template is included once per vector width FCNN_W (lanes of FCNN_T) and names its vectors,
 * loads, stores and functions through these macros. */
#define FCNN_VT FCNN_XCAT(FCNN_PICK(fcnn_v, fcnn_vd), FCNN_W)
#define FCNN_VIT FCNN_XCAT(FCNN_PICK(fcnn_vi, fcnn_vl), FCNN_W)
#define FCNN_VTU FCNN_XCAT(FCNN_VT, u)
#define FCNN_LDW(p) ((FCNN_VT)(*(const FCNN_VTU *)(p)))
#define FCNN_STW(p, v) (*(FCNN_VTU *)(p) = (v))
#define FCNN_NAME(f) FCNN_AT(f, FCNN_W)
#define FCNN_AT(f, w) FCNN_TN(FCNN_XCAT(FCNN_XCAT(f, _w), w)) /* f of the width-w inclusion */

/* A typed function compiled once per SIMD level is named f_f32_avx512 (FCNN_TLEVEL(f, _avx512))
 * and so on, and called through cpu.h's FCNN_DISPATCH by FCNN_TDISPATCH(level, f, ...). */
#define FCNN_TLEVEL(f, level) FCNN_XCAT(FCNN_TN(f), level)
#define FCNN_DISPATCH_X(level, f, ...) FCNN_DISPATCH(level, f, __VA_ARGS__)
#define FCNN_TDISPATCH(level, f, ...) FCNN_DISPATCH_X(level, FCNN_TN(f), __VA_ARGS__)

/* The activation flag of the conv and depthwise epilogues: 0 none, 1 relu, FCNN_RELU6 relu then
 * a cap at 6 (the relu6 of inference's folded conv -> batch normalisation -> relu6). */
#define FCNN_RELU6 2
/* max(v, 0) in each lane of a vector of FCNN_VT, keeping NaN as np.maximum does: only lanes
 * below zero become zero. */
#define FCNN_RELU(v) ((FCNN_VT)((FCNN_VIT)(v) & ~((v) < (FCNN_VT){0})))
/* min(v, 6) in each lane of a vector of FCNN_VT, keeping NaN (NaN is not above 6). */
#define FCNN_CAP6(v)                                                                              \
    __extension__({                                                                               \
        const FCNN_VT cap_v_ = (v), cap_six_ = (FCNN_VT){0} + 6;                                  \
        const FCNN_VIT cap_over_ = (FCNN_VIT)(cap_six_ < cap_v_);                                 \
        (FCNN_VT)(((FCNN_VIT)cap_v_ & ~cap_over_) | ((FCNN_VIT)cap_six_ & cap_over_));            \
    })

#endif /* FASTCNN_VECTORS_H */

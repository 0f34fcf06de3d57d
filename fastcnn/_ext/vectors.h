/* The GCC vector types and width macros of the SIMD templates (conv_tiles.h, dense_tiles.h) and
 * of the max-pool loops. */
#ifndef FASTCNN_VECTORS_H
#define FASTCNN_VECTORS_H

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

/* A template is included once per vector width FCNN_W and names its vectors, loads, stores and
 * functions through these macros; they expand where they are used, so each inclusion gets its
 * own width. */
#define FCNN_CAT(a, b) a##b
#define FCNN_XCAT(a, b) FCNN_CAT(a, b)
#define FCNN_VT FCNN_XCAT(fcnn_v, FCNN_W)
#define FCNN_VIT FCNN_XCAT(fcnn_vi, FCNN_W)
#define FCNN_VTU FCNN_XCAT(FCNN_XCAT(fcnn_v, FCNN_W), u)
#define FCNN_LDW(p) ((FCNN_VT)(*(const FCNN_VTU *)(p)))
#define FCNN_STW(p, v) (*(FCNN_VTU *)(p) = (v))
#define FCNN_NAME(f) FCNN_XCAT(FCNN_XCAT(f, _w), FCNN_W)

#endif /* FASTCNN_VECTORS_H */

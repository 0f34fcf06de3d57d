/* The one CPU-feature detection and SIMD dispatch of the kernels.
 *
 * The wheel is built without -march, so every SIMD kernel is compiled once per level below, each
 * copy under its own __attribute__((target)), and FCNN_DISPATCH calls the copy of the level in
 * use. The level is detected when the extension module is loaded (a constructor, so that every
 * module including this header has it before any of its code runs, parallel regions included);
 * tests may lower it with fcnn_simd_set to run the lower paths. The state is static: each
 * extension module holds its own copy, detects on its own, and is capped on its own.
 */
#ifndef FASTCNN_CPU_H
#define FASTCNN_CPU_H

enum { FCNN_SCALAR = 0, FCNN_AVX2 = 1, FCNN_AVX512 = 2 };

#define FCNN_INLINE static inline __attribute__((always_inline))

/* clang-cl (Windows) is clang without __GNUC__ */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FCNN_X86 1
#else
#define FCNN_X86 0
#endif
#if FCNN_X86
#include <immintrin.h>
#endif

/* The targets of each level's copies. The tile, narrow-dense and max-pool kernels use
 * FCNN_TARGET_AVX512 and FCNN_TARGET_AVX2. Whether a target has FMA decides whether a * b + c
 * rounds once or twice, so a family whose results were defined under other targets keeps them:
 * dropout and the optimizer updates use the x86-64-v4 ISA and plain AVX2 (no FMA), the distance
 * tiles plain AVX-512F (no FMA) and AVX2+FMA. FCNN_AVX512 is detected as the whole x86-64-v4 ISA,
 * so that every AVX-512 target here runs wherever the level is chosen. */
#define FCNN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define FCNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FCNN_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define FCNN_TARGET_AVX2_NOFMA __attribute__((target("avx2")))
#define FCNN_TARGET_AVX512_NOFMA __attribute__((target("avx512f")))

/* f_avx512(...), f_avx2(...) or f_scalar(...), by level; an expression of f's return type. */
#if FCNN_X86
#define FCNN_DISPATCH(level, f, ...)                                                               \
    ((level) == FCNN_AVX512 ? f##_avx512(__VA_ARGS__)                                             \
     : (level) == FCNN_AVX2 ? f##_avx2(__VA_ARGS__)                                               \
                            : f##_scalar(__VA_ARGS__))
#else
#define FCNN_DISPATCH(level, f, ...) ((void)(level), f##_scalar(__VA_ARGS__))
#endif

static int fcnn_detected = FCNN_SCALAR;
static int fcnn_level = FCNN_SCALAR;

__attribute__((constructor)) static void fcnn_cpu_detect(void)
{
#if FCNN_X86
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2 && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
        fcnn_detected = FCNN_AVX512;
    else if (avx2)
        fcnn_detected = FCNN_AVX2;
#endif
    fcnn_level = fcnn_detected;
}

static int fcnn_simd_level(void) { return fcnn_level; }

/* Lets tests run the lower paths; never goes above what the CPU supports. */
static int fcnn_simd_set(int level)
{
    fcnn_level = level < fcnn_detected ? level : fcnn_detected;
    return fcnn_level;
}

#endif /* FASTCNN_CPU_H */

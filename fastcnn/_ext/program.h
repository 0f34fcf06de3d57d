/* The program kernel's per-instruction loops (program.pyx), compiled once per SIMD level (cpu.h)
 * so that the wheel, built without -march, runs AVX-512 or AVX2 code where the CPU has it.
 *
 * The targets have no FMA and contraction is off here: each a * b + c of the source rounds twice
 * at every level, as the NumPy twins round it, and no level reorders an operation, so every level
 * gives the same bits.
 */
#ifndef FASTCNN_PROGRAM_H
#define FASTCNN_PROGRAM_H

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "vecmath.h"

/* The opcodes; an instruction is (opcode, destination, a, b, c). Registers are written once. */
enum {
    FCNN_OP_LOAD = 0,      /* dst <- full input a */
    FCNN_OP_LOAD_ROW = 1,  /* dst <- row input a, each row's value along the row */
    FCNN_OP_LOAD_COL = 2,  /* dst <- column input a, repeated in every row */
    FCNN_OP_CONST = 3,     /* dst <- constants[a] */
    FCNN_OP_STORE = 4,     /* full output dst <- register a */
    FCNN_OP_ROW_SUM = 5,   /* row output dst <- the sum of register a along each row, over
                              constants[b] (b >= 0: a mean) or not divided (b < 0) */
    FCNN_OP_LOAD_MASK = 6, /* dst <- full bool input a, as 1 or 0 */
    FCNN_OP_STORE_MASK = 7, /* full bool output dst <- whether register a is nonzero */
    FCNN_OP_ADD = 10,
    FCNN_OP_SUB = 11,
    FCNN_OP_MUL = 12,
    FCNN_OP_DIV = 13,
    FCNN_OP_MAX = 14,      /* NaN wins, as in NumPy */
    FCNN_OP_MIN = 15,
    FCNN_OP_POW = 16,
    FCNN_OP_FLOOR_DIVIDE = 17, /* rounds toward -inf, as NumPy's floor_divide */
    FCNN_OP_MOD = 18,          /* the divisor's sign, as NumPy's mod */
    FCNN_OP_GT = 20,       /* comparisons give 1 or 0 */
    FCNN_OP_GE = 21,
    FCNN_OP_LT = 22,
    FCNN_OP_LE = 23,
    FCNN_OP_EQ = 24,
    FCNN_OP_NE = 25,
    FCNN_OP_WHERE = 26,    /* dst <- b where a != 0 else c */
    FCNN_OP_NEG = 30,
    FCNN_OP_EXP = 31,
    FCNN_OP_LOG = 32,
    FCNN_OP_LOG1P = 33,
    FCNN_OP_EXPM1 = 34,
    FCNN_OP_SQRT = 35,
    FCNN_OP_SQUARE = 36,
    FCNN_OP_ABS = 37,
    FCNN_OP_SIGN = 38,     /* NaN stays NaN, zeros give 0 */
    FCNN_OP_SIN = 39,
    FCNN_OP_COS = 40,
    FCNN_OP_FLOOR = 41,
    FCNN_OP_RINT = 42,     /* halves to even, as NumPy's round */
    FCNN_OP_LOG2 = 43,
    FCNN_OP_LOG10 = 44,
    FCNN_OP_RECIPROCAL = 45,
};

/* NumPy's a % b from m = fmod(a, b): moved to the divisor's sign; a zero divisor gives fmod's
 * NaN. Selects, so that a loop of it vectorises. */
#define FCNN_REMAINDER(T, SFX, COPYSIGN)                                                          \
    FCNN_INLINE T fcnn_remainder_##SFX(T b, T m)                                                  \
    {                                                                                             \
        T r = (m != 0) & ((b < 0) != (m < 0)) ? m + b : m;                                        \
        r = m == 0 ? COPYSIGN(0, b) : r;                                                          \
        return b == 0 ? m : r;                                                                    \
    }
FCNN_REMAINDER(float, f32, copysignf)
FCNN_REMAINDER(double, f64, copysign)

/* NumPy's a // b from m = fmod(a, b), step for step as its divmod: the quotient snapped to the
 * nearest whole number; a zero divisor gives a / b. */
#define FCNN_FLOOR_DIVIDE(T, SFX, FLOOR, COPYSIGN)                                                \
    static inline T fcnn_floor_divide_##SFX(T a, T b, T m)                                        \
    {                                                                                             \
        if (b == 0)                                                                               \
            return a / b;                                                                         \
        T div = (a - m) / b;                                                                      \
        if (m != 0 && (b < 0) != (m < 0))                                                         \
            div = div - 1;                                                                        \
        if (div != 0) {                                                                           \
            T q = FLOOR(div);                                                                     \
            if (div - q > (T)0.5)                                                                 \
                q = q + 1;                                                                        \
            return q;                                                                             \
        }                                                                                         \
        return COPYSIGN(0, a / b);                                                                \
    }
FCNN_FLOOR_DIVIDE(float, f32, floorf, copysignf)
FCNN_FLOOR_DIVIDE(double, f64, floor, copysign)

/* Whether fcnn_fmodf_exact covers (a, b): both finite, b nonzero, |a / b| < 2^29. */
FCNN_INLINE int fcnn_fmodf_exact_covers(float a, float b)
{
    const double A = fabs((double)a), B = fabs((double)b);
    return (A < B * 536870912.0) & (B != 0) & (B < INFINITY);
}

/* fmod(a, b) of float32 where fcnn_fmodf_exact_covers (else any value), exactly, in code that
 * vectorises: |a| - q |b| in double with q = trunc(|a| / |b|) is exact (q |b| fits 53 bits, the
 * difference is a multiple of b's last bit below 2 |b|); q is one too large when the quotient
 * rounded up to a whole number, which the difference's sign shows. */
FCNN_INLINE float fcnn_fmodf_exact(float a, float b)
{
    const double A = fabs((double)a), B = fabs((double)b);
    const double q = trunc(A / B);
    double r = A - q * B;
    r = r < 0 ? r + B : r;
    return copysignf((float)r, a);
}

/* The library's functions, for the unary opcodes vecmath.h does not cover (all of them in
 * float64): they do not vectorise, and a predictable branch per element costs little beside the
 * call. */
#define FCNN_LIBM_UNARY(T, SFX, EXP, LOG, LOG1P, EXPM1, SIN, COS, FLOOR, RINT, LOG2, LOG10)        \
    static inline T fcnn_libm_##SFX(int op, T v)                                                  \
    {                                                                                             \
        switch (op) {                                                                             \
        case FCNN_OP_EXP: return EXP(v);                                                          \
        case FCNN_OP_LOG: return LOG(v);                                                          \
        case FCNN_OP_LOG1P: return LOG1P(v);                                                      \
        case FCNN_OP_EXPM1: return EXPM1(v);                                                      \
        case FCNN_OP_SIN: return SIN(v);                                                          \
        case FCNN_OP_COS: return COS(v);                                                          \
        case FCNN_OP_FLOOR: return FLOOR(v);                                                      \
        case FCNN_OP_RINT: return RINT(v);                                                        \
        case FCNN_OP_LOG2: return LOG2(v);                                                        \
        default: return LOG10(v);                                                                 \
        }                                                                                         \
    }
FCNN_LIBM_UNARY(float, f32, expf, logf, log1pf, expm1f, sinf, cosf, floorf, rintf, log2f, log10f)
FCNN_LIBM_UNARY(double, f64, exp, log, log1p, expm1, sin, cos, floor, rint, log2, log10)

#define FCNN_LOOP(expr)                                                                           \
    for (ptrdiff_t j = 0; j < m; j++)                                                             \
        d[j] = (expr);                                                                            \
    return

/* d = op(a, b) over m values, for the opcodes from ADD to NE; FAST_MOD, an expression, runs
 * fcnn_program_mod_f32's loop (1) or not (0). */
#define FCNN_PROGRAM_BINARY(ATTR, name, T, SFX, POW, FMOD, FAST_MOD)                              \
    ATTR static void name(int op, T *restrict d, const T *a, const T *b, ptrdiff_t m)             \
    {                                                                                             \
        switch (op) {                                                                             \
        case FCNN_OP_ADD: FCNN_LOOP(a[j] + b[j]);                                                 \
        case FCNN_OP_SUB: FCNN_LOOP(a[j] - b[j]);                                                 \
        case FCNN_OP_MUL: FCNN_LOOP(a[j] * b[j]);                                                 \
        case FCNN_OP_DIV: FCNN_LOOP(a[j] / b[j]);                                                 \
        case FCNN_OP_MAX: FCNN_LOOP(a[j] >= b[j] || a[j] != a[j] ? a[j] : b[j]);                  \
        case FCNN_OP_MIN: FCNN_LOOP(a[j] <= b[j] || a[j] != a[j] ? a[j] : b[j]);                  \
        case FCNN_OP_POW: FCNN_LOOP(POW(a[j], b[j]));                                             \
        case FCNN_OP_FLOOR_DIVIDE:                                                                \
            FCNN_LOOP(fcnn_floor_divide_##SFX(a[j], b[j], FMOD(a[j], b[j])));                     \
        case FCNN_OP_MOD:                                                                         \
            if (FAST_MOD)                                                                         \
                return;                                                                           \
            FCNN_LOOP(fcnn_remainder_##SFX(b[j], FMOD(a[j], b[j])));                              \
        case FCNN_OP_GT: FCNN_LOOP(a[j] > b[j]);                                                  \
        case FCNN_OP_GE: FCNN_LOOP(a[j] >= b[j]);                                                 \
        case FCNN_OP_LT: FCNN_LOOP(a[j] < b[j]);                                                  \
        case FCNN_OP_LE: FCNN_LOOP(a[j] <= b[j]);                                                 \
        case FCNN_OP_EQ: FCNN_LOOP(a[j] == b[j]);                                                 \
        default: FCNN_LOOP(a[j] != b[j]);                                                         \
        }                                                                                         \
    }

/* d = op(a) over m values, for the unary opcodes; VECMATH, an expression, runs vecmath.h's loops
 * where they cover op (1) or not (0). */
#define FCNN_PROGRAM_UNARY(ATTR, name, T, SFX, SQRT, FABS, VECMATH)                               \
    ATTR static void name(int op, T *restrict d, const T *a, ptrdiff_t m)                         \
    {                                                                                             \
        switch (op) {                                                                             \
        case FCNN_OP_NEG: FCNN_LOOP(-a[j]);                                                       \
        case FCNN_OP_SQUARE: FCNN_LOOP(a[j] * a[j]);                                              \
        case FCNN_OP_ABS: FCNN_LOOP(FABS(a[j]));                                                  \
        case FCNN_OP_RECIPROCAL: FCNN_LOOP(1 / a[j]);                                             \
        case FCNN_OP_SQRT: FCNN_LOOP(SQRT(a[j]));                                                 \
        case FCNN_OP_SIGN:                                                                        \
            FCNN_LOOP(a[j] > 0 ? (T)1 : (a[j] < 0 ? (T)-1 : (a[j] == 0 ? (T)0 : a[j])));          \
        default:                                                                                  \
            if (VECMATH)                                                                          \
                return;                                                                           \
            FCNN_LOOP(fcnn_libm_##SFX(op, a[j]));                                                 \
        }                                                                                         \
    }

/* d = x where c != 0 else y, over m values. */
#define FCNN_PROGRAM_WHERE(ATTR, name, T)                                                         \
    ATTR static void name(T *restrict d, const T *c, const T *x, const T *y, ptrdiff_t m)         \
    {                                                                                             \
        FCNN_LOOP(c[j] != 0 ? x[j] : y[j]);                                                       \
    }

/* d = a % b of float32 (NumPy's mod), fmod exact in double where it covers and the library's
 * fmodf elsewhere, in a second pass; returns 1. */
#define FCNN_PROGRAM_MOD(ATTR, name)                                                              \
    ATTR FCNN_INLINE int name(float *restrict d, const float *a, const float *b, ptrdiff_t m)     \
    {                                                                                             \
        int beyond = 0;                                                                           \
        for (ptrdiff_t j = 0; j < m; j++) {                                                       \
            d[j] = fcnn_remainder_f32(b[j], fcnn_fmodf_exact(a[j], b[j]));                        \
            beyond |= !fcnn_fmodf_exact_covers(a[j], b[j]);                                       \
        }                                                                                         \
        for (ptrdiff_t j = 0; beyond && j < m; j++)                                               \
            if (!fcnn_fmodf_exact_covers(a[j], b[j]))                                             \
                d[j] = fcnn_remainder_f32(b[j], fmodf(a[j], b[j]));                               \
        return 1;                                                                                 \
    }

/* d[j] = f(a[j]) for j < m, then return 1. */
#define FCNN_MAP(f)                                                                               \
    for (ptrdiff_t j = 0; j < m; j++)                                                             \
        d[j] = f(a[j]);                                                                           \
    return 1

/* d = op(a) by vecmath.h for exp, log, log1p, expm1, sin and cos of float32 (returns 1), else
 * returns 0. */
#define FCNN_PROGRAM_VECMATH(ATTR, name)                                                          \
    ATTR FCNN_INLINE int name(int op, float *restrict d, const float *a, ptrdiff_t m)             \
    {                                                                                             \
        int shift = op == FCNN_OP_COS, beyond = 0;                                                \
        switch (op) {                                                                             \
        case FCNN_OP_EXP: FCNN_MAP(fcnn_expf);                                                    \
        case FCNN_OP_LOG: FCNN_MAP(fcnn_logf);                                                    \
        case FCNN_OP_LOG1P: FCNN_MAP(fcnn_log1pf);                                                \
        case FCNN_OP_EXPM1: FCNN_MAP(fcnn_expm1f);                                                \
        case FCNN_OP_SIN:                                                                         \
        case FCNN_OP_COS:                                                                         \
            for (ptrdiff_t j = 0; j < m; j++) {                                                   \
                d[j] = fcnn_sincosf(a[j], shift);                                                 \
                beyond |= !(fabsf(a[j]) < FCNN_TRIG_LIMIT);                                       \
            }                                                                                     \
            for (ptrdiff_t j = 0; beyond && j < m; j++)                                           \
                if (!(fabsf(a[j]) < FCNN_TRIG_LIMIT))                                             \
                    d[j] = (float)(shift ? cos((double)a[j]) : sin((double)a[j]));                \
            return 1;                                                                             \
        default:                                                                                  \
            return 0;                                                                             \
        }                                                                                         \
    }

/* d = the bools of mask as 1 or 0, and mask = whether each of a is nonzero, over m values. */
#define FCNN_PROGRAM_MASKS(ATTR, LEVEL, T, SFX)                                                   \
    ATTR static void fcnn_program_load_mask_##SFX##_##LEVEL(T *restrict d,                        \
                                                             const unsigned char *mask,           \
                                                             ptrdiff_t m)                         \
    {                                                                                             \
        FCNN_LOOP(mask[j] != 0);                                                                  \
    }                                                                                             \
    ATTR static void fcnn_program_store_mask_##SFX##_##LEVEL(unsigned char *restrict mask,        \
                                                              const T *a, ptrdiff_t m)            \
    {                                                                                             \
        for (ptrdiff_t j = 0; j < m; j++)                                                         \
            mask[j] = a[j] != 0;                                                                  \
    }

#define FCNN_PROGRAM_LEVEL(ATTR, LEVEL)                                                           \
    FCNN_PROGRAM_VECMATH(ATTR, fcnn_program_vecmath_f32_##LEVEL)                                  \
    FCNN_PROGRAM_UNARY(ATTR, fcnn_program_unary_f32_##LEVEL, float, f32, sqrtf, fabsf,            \
                       fcnn_program_vecmath_f32_##LEVEL(op, d, a, m))                             \
    FCNN_PROGRAM_UNARY(ATTR, fcnn_program_unary_f64_##LEVEL, double, f64, sqrt, fabs, 0)         \
    FCNN_PROGRAM_MOD(ATTR, fcnn_program_mod_f32_##LEVEL)                                          \
    FCNN_PROGRAM_BINARY(ATTR, fcnn_program_binary_f32_##LEVEL, float, f32, powf, fmodf,           \
                        fcnn_program_mod_f32_##LEVEL(d, a, b, m))                                 \
    FCNN_PROGRAM_BINARY(ATTR, fcnn_program_binary_f64_##LEVEL, double, f64, pow, fmod, 0)         \
    FCNN_PROGRAM_WHERE(ATTR, fcnn_program_where_f32_##LEVEL, float)                               \
    FCNN_PROGRAM_WHERE(ATTR, fcnn_program_where_f64_##LEVEL, double)                              \
    FCNN_PROGRAM_MASKS(ATTR, LEVEL, float, f32)                                                   \
    FCNN_PROGRAM_MASKS(ATTR, LEVEL, double, f64)

FCNN_PROGRAM_LEVEL(, scalar)
#if FCNN_X86
FCNN_PROGRAM_LEVEL(FCNN_TARGET_AVX512_NOFMA, avx512)
FCNN_PROGRAM_LEVEL(FCNN_TARGET_AVX2_NOFMA, avx2)
#endif

#define FCNN_PROGRAM_DISPATCHED(T, SFX)                                                           \
    static void fcnn_program_binary_##SFX(int op, T *d, const T *a, const T *b, ptrdiff_t m)     \
    {                                                                                             \
        FCNN_DISPATCH(fcnn_level, fcnn_program_binary_##SFX, op, d, a, b, m);                     \
    }                                                                                             \
    static void fcnn_program_unary_##SFX(int op, T *d, const T *a, ptrdiff_t m)                   \
    {                                                                                             \
        FCNN_DISPATCH(fcnn_level, fcnn_program_unary_##SFX, op, d, a, m);                         \
    }                                                                                             \
    static void fcnn_program_where_##SFX(T *d, const T *c, const T *x, const T *y, ptrdiff_t m)   \
    {                                                                                             \
        FCNN_DISPATCH(fcnn_level, fcnn_program_where_##SFX, d, c, x, y, m);                       \
    }                                                                                             \
    static void fcnn_program_load_mask_##SFX(T *d, const unsigned char *mask, ptrdiff_t m)        \
    {                                                                                             \
        FCNN_DISPATCH(fcnn_level, fcnn_program_load_mask_##SFX, d, mask, m);                      \
    }                                                                                             \
    static void fcnn_program_store_mask_##SFX(unsigned char *mask, const T *a, ptrdiff_t m)       \
    {                                                                                             \
        FCNN_DISPATCH(fcnn_level, fcnn_program_store_mask_##SFX, mask, a, m);                     \
    }
FCNN_PROGRAM_DISPATCHED(float, f32)
FCNN_PROGRAM_DISPATCHED(double, f64)

#pragma GCC pop_options

#endif

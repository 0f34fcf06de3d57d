/* The optimizer updates over one run of n elements of a flat parameter array and its state,
 * with Keras 3's rules. As C loops they vectorise, square root and division included (the
 * same loops in Cython do not), and they are compiled once per SIMD level of cpu.h. No restrict:
 * GCC checks for overlap at run time and keeps a scalar loop for arrays that alias. Built once
 * per float type and level by FCNN_OPTIM_RULES. */
#ifndef FASTCNN_OPTIM_H
#define FASTCNN_OPTIM_H

#include <math.h>
#include <stddef.h>

#include "cpu.h"

#define FCNN_OPTIM_RULES(ATTR, T, SUFFIX, SQRT)                                                   \
    /* v = mu v - lr g; p += v, or p += mu v - lr g with Nesterov; p -= lr g without momentum. */ \
    ATTR static void fcnn_sgd_##SUFFIX(T *p, const T *g, T *vel, ptrdiff_t n, T lr, T mu,         \
                                       int nesterov)                                              \
    {                                                                                             \
        if (mu == 0) {                                                                            \
            for (ptrdiff_t i = 0; i < n; i++)                                                     \
                p[i] -= lr * g[i];                                                                \
        } else if (nesterov) {                                                                    \
            for (ptrdiff_t i = 0; i < n; i++) {                                                   \
                vel[i] = mu * vel[i] - lr * g[i];                                                 \
                p[i] += mu * vel[i] - lr * g[i];                                                  \
            }                                                                                     \
        } else {                                                                                  \
            for (ptrdiff_t i = 0; i < n; i++) {                                                   \
                vel[i] = mu * vel[i] - lr * g[i];                                                 \
                p[i] += vel[i];                                                                   \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* m += b1 (g - m); v += b2 (g^2 - v); p -= alpha m / (sqrt(v) + eps), where b1 = 1 - beta_1, \
     * b2 = 1 - beta_2 and alpha folds in the bias corrections; first p += decay p (AdamW's       \
     * decoupled decay, decay = -lr * weight_decay) unless decay is 0, for an inf p stays inf. */ \
    ATTR static void fcnn_adam_##SUFFIX(T *p, const T *g, T *m, T *v, ptrdiff_t n, T alpha,       \
                                        T b1, T b2, T eps, T decay)                               \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            if (decay != 0)                                                                       \
                p[i] += decay * p[i];                                                             \
            m[i] += b1 * (g[i] - m[i]);                                                           \
            v[i] += b2 * (g[i] * g[i] - v[i]);                                                    \
            p[i] -= alpha * m[i] / (SQRT(v[i]) + eps);                                            \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* ms = r ms + b g^2 (b = 1 - r); step = lr g / sqrt(ms + eps), where centered (mg non-NULL)  \
     * subtracts mg^2 (mg = r mg + b g); with buf (momentum), buf = mu buf + step, p -= buf;      \
     * else p -= step. */                                                                         \
    ATTR static void fcnn_rmsprop_##SUFFIX(T *p, const T *g, T *ms, T *buf, T *mg,                \
                                           ptrdiff_t n, T lr, T r, T b, T mu, T eps)              \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            T gi = g[i], denominator, step;                                                       \
            ms[i] = r * ms[i] + b * (gi * gi);                                                    \
            if (mg) {                                                                             \
                mg[i] = r * mg[i] + b * gi;                                                       \
                denominator = ms[i] - mg[i] * mg[i] + eps;                                        \
            } else {                                                                              \
                denominator = ms[i] + eps;                                                        \
            }                                                                                     \
            step = lr * gi / SQRT(denominator);                                                   \
            if (buf) {                                                                            \
                buf[i] = mu * buf[i] + step;                                                      \
                p[i] -= buf[i];                                                                   \
            } else {                                                                              \
                p[i] -= step;                                                                     \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Rule `kind` (FCNN_SGD, FCNN_ADAM, FCNN_RMSPROP) on elements i .. i+n of one tensor whose   \
     * operands are op[0] (param), op[1] (grad) and the slots after (NULL where not in use), with \
     * the rule's hyper-parameters h in the order of its function's arguments. */                 \
    ATTR static void fcnn_update_run_##SUFFIX(int kind, const double *h, T **op, ptrdiff_t i,     \
                                              ptrdiff_t n)                                        \
    {                                                                                             \
        T *at[FCNN_MAX_OPERANDS];                                                                 \
        for (int k = 0; k < FCNN_MAX_OPERANDS; k++)                                               \
            at[k] = op[k] ? op[k] + i : NULL;                                                     \
        if (kind == FCNN_SGD)                                                                     \
            fcnn_sgd_##SUFFIX(at[0], at[1], at[2], n, (T)h[0], (T)h[1], (int)h[2]);               \
        else if (kind == FCNN_ADAM)                                                               \
            fcnn_adam_##SUFFIX(at[0], at[1], at[2], at[3], n, (T)h[0], (T)h[1], (T)h[2], (T)h[3], \
                               (T)h[4]);                                                          \
        else                                                                                      \
            fcnn_rmsprop_##SUFFIX(at[0], at[1], at[2], at[3], at[4], n, (T)h[0], (T)h[1], (T)h[2], \
                                  (T)h[3], (T)h[4]);                                              \
    }

enum { FCNN_SGD = 0, FCNN_ADAM = 1, FCNN_RMSPROP = 2, FCNN_MAX_OPERANDS = 5 };

#define FCNN_OPTIM_LEVEL(ATTR, LEVEL)                                                             \
    FCNN_OPTIM_RULES(ATTR, float, f32_##LEVEL, sqrtf)                                             \
    FCNN_OPTIM_RULES(ATTR, double, f64_##LEVEL, sqrt)

FCNN_OPTIM_LEVEL(, scalar)
#if FCNN_X86
FCNN_OPTIM_LEVEL(FCNN_TARGET_V4, avx512)
FCNN_OPTIM_LEVEL(FCNN_TARGET_AVX2_NOFMA, avx2)
#endif

static void fcnn_update_run_f32(int kind, const double *h, float **op, ptrdiff_t i, ptrdiff_t n)
{
    FCNN_DISPATCH(fcnn_level, fcnn_update_run_f32, kind, h, op, i, n);
}

static void fcnn_update_run_f64(int kind, const double *h, double **op, ptrdiff_t i, ptrdiff_t n)
{
    FCNN_DISPATCH(fcnn_level, fcnn_update_run_f64, kind, h, op, i, n);
}

#endif

/* The optimizer updates over one run of n elements of a flat parameter array and its state,
 * with Keras 3's rules, and the optimizers' bookkeeping over the same runs (gradient
 * accumulation, the weights' moving average). As C loops they vectorise, square root and
 * division included (the same loops in Cython do not), and they are compiled once per SIMD
 * level of cpu.h. No restrict: GCC checks for overlap at run time and keeps a scalar loop for
 * arrays that alias. Built once per float type and level by FCNN_OPTIM_RULES. */
#ifndef FASTCNN_OPTIM_H
#define FASTCNN_OPTIM_H

#include <math.h>
#include <stddef.h>

#include "cpu.h"

enum {
    FCNN_SGD = 0, FCNN_ADAM, FCNN_RMSPROP, FCNN_NADAM, FCNN_ADAGRAD, FCNN_ADADELTA, FCNN_ADAMAX,
    FCNN_LION, FCNN_ACCUMULATE, FCNN_AVERAGE,
    FCNN_MAX_OPERANDS = 5,  /* param, grad and up to three slots */
    FCNN_OPTIM_BLOCK = 512  /* elements of prepared gradient on the stack at a time */
};

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
     * b2 = 1 - beta_2 and alpha folds in the bias corrections. AMSGrad (vh non-NULL) divides by  \
     * the running maximum vh = max(vh, v) in place of v. */                                      \
    ATTR static void fcnn_adam_##SUFFIX(T *p, const T *g, T *m, T *v, T *vh, ptrdiff_t n,         \
                                        T alpha, T b1, T b2, T eps)                               \
    {                                                                                             \
        if (vh) {                                                                                 \
            for (ptrdiff_t i = 0; i < n; i++) {                                                   \
                m[i] += b1 * (g[i] - m[i]);                                                       \
                v[i] += b2 * (g[i] * g[i] - v[i]);                                                \
                vh[i] = vh[i] > v[i] ? vh[i] : v[i];                                              \
                p[i] -= alpha * m[i] / (SQRT(vh[i]) + eps);                                       \
            }                                                                                     \
        } else {                                                                                  \
            for (ptrdiff_t i = 0; i < n; i++) {                                                   \
                m[i] += b1 * (g[i] - m[i]);                                                       \
                v[i] += b2 * (g[i] * g[i] - v[i]);                                                \
                p[i] -= alpha * m[i] / (SQRT(v[i]) + eps);                                        \
            }                                                                                     \
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
    /* Nadam: the moments as Adam's; the step mixes the new first moment and the gradient with the\
     * momentum-cache factors cm and cg, and unbiases v by dividing by bv = 1 - beta_2^t:         \
     * p -= lr (cm m + cg g) / (sqrt(v / bv) + eps). */                                           \
    ATTR static void fcnn_nadam_##SUFFIX(T *p, const T *g, T *m, T *v, ptrdiff_t n, T lr,         \
                                         T b1, T b2, T eps, T cm, T cg, T bv)                     \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            m[i] += b1 * (g[i] - m[i]);                                                           \
            v[i] += b2 * (g[i] * g[i] - v[i]);                                                    \
            p[i] -= (cm * m[i] + cg * g[i]) * lr / (SQRT(v[i] / bv) + eps);                       \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Adagrad: a += g^2; p -= lr g / sqrt(a + eps). */                                           \
    ATTR static void fcnn_adagrad_##SUFFIX(T *p, const T *g, T *a, ptrdiff_t n, T lr, T eps)      \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            a[i] += g[i] * g[i];                                                                  \
            p[i] -= lr * g[i] / SQRT(a[i] + eps);                                                 \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Adadelta: ag = r ag + b g^2 (b = 1 - r); d = -sqrt(ad + eps) g / sqrt(ag + eps);           \
     * ad = r ad + b d^2; p += lr d. */                                                           \
    ATTR static void fcnn_adadelta_##SUFFIX(T *p, const T *g, T *ag, T *ad, ptrdiff_t n, T lr,    \
                                            T r, T b, T eps)                                      \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            T d;                                                                                  \
            ag[i] = r * ag[i] + b * (g[i] * g[i]);                                                \
            d = -(SQRT(ad[i] + eps) * g[i]) / SQRT(ag[i] + eps);                                  \
            ad[i] = r * ad[i] + b * (d * d);                                                      \
            p[i] += lr * d;                                                                       \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Adamax: m += b1 (g - m) (b1 = 1 - beta_1); u = max(beta_2 u, |g|);                         \
     * p -= lr m / (c (u + eps)), c = 1 - beta_1^t. */                                            \
    ATTR static void fcnn_adamax_##SUFFIX(T *p, const T *g, T *m, T *u, ptrdiff_t n, T lr,        \
                                          T b1, T beta_2, T eps, T c)                             \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            T a = g[i] < 0 ? -g[i] : g[i], w = beta_2 * u[i];                                     \
            m[i] += b1 * (g[i] - m[i]);                                                           \
            u[i] = w > a ? w : a;                                                                 \
            p[i] -= lr * m[i] / (c * (u[i] + eps));                                               \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Lion: p -= lr sign(beta_1 m + (1 - beta_1) g); then m = beta_2 m + (1 - beta_2) g. The     \
     * sign of 0 is 0 and that of NaN is NaN, as numpy's. */                                      \
    ATTR static void fcnn_lion_##SUFFIX(T *p, const T *g, T *m, ptrdiff_t n, T lr, T beta_1,      \
                                        T c1, T beta_2, T c2)                                     \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                                       \
            T x = beta_1 * m[i] + c1 * g[i];                                                      \
            p[i] -= lr * (x > 0 ? (T)1 : x < 0 ? (T)-1 : x);                                      \
            m[i] = beta_2 * m[i] + c2 * g[i];                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Gradient accumulation in a: a = g (mode 0), a += g (mode 1), or a = (a + g) / steps        \
     * (mode 2, the mean that the update then takes). */                                          \
    ATTR static void fcnn_accumulate_##SUFFIX(T *a, const T *g, ptrdiff_t n, int mode, T steps)   \
    {                                                                                             \
        if (mode == 0) {                                                                          \
            for (ptrdiff_t i = 0; i < n; i++)                                                     \
                a[i] = g[i];                                                                      \
        } else if (mode == 1) {                                                                   \
            for (ptrdiff_t i = 0; i < n; i++)                                                     \
                a[i] += g[i];                                                                     \
        } else {                                                                                  \
            for (ptrdiff_t i = 0; i < n; i++)                                                     \
                a[i] = (a[i] + g[i]) / steps;                                                     \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* The moving average of the weights w: a = mu a + c w (c = 1 - mu). */                       \
    ATTR static void fcnn_average_##SUFFIX(T *a, const T *w, ptrdiff_t n, T mu, T c)              \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n; i++)                                                         \
            a[i] = mu * a[i] + c * w[i];                                                          \
    }                                                                                             \
                                                                                                  \
    /* Rule `kind` on n elements of one tensor from its operands `at` (param, grad, then the slots,\
     * NULL where not in use), with the rule's hyper-parameters h in the order of its function's  \
     * arguments. */                                                                              \
    ATTR static void fcnn_rule_##SUFFIX(int kind, const double *h, T **at, const T *g,            \
                                        ptrdiff_t n)                                              \
    {                                                                                             \
        switch (kind) {                                                                           \
        case FCNN_SGD:                                                                            \
            fcnn_sgd_##SUFFIX(at[0], g, at[2], n, (T)h[0], (T)h[1], (int)h[2]);                   \
            break;                                                                                \
        case FCNN_ADAM:                                                                           \
            fcnn_adam_##SUFFIX(at[0], g, at[2], at[3], at[4], n, (T)h[0], (T)h[1], (T)h[2],       \
                               (T)h[3]);                                                          \
            break;                                                                                \
        case FCNN_RMSPROP:                                                                        \
            fcnn_rmsprop_##SUFFIX(at[0], g, at[2], at[3], at[4], n, (T)h[0], (T)h[1], (T)h[2],    \
                                  (T)h[3], (T)h[4]);                                              \
            break;                                                                                \
        case FCNN_NADAM:                                                                          \
            fcnn_nadam_##SUFFIX(at[0], g, at[2], at[3], n, (T)h[0], (T)h[1], (T)h[2], (T)h[3],    \
                                (T)h[4], (T)h[5], (T)h[6]);                                       \
            break;                                                                                \
        case FCNN_ADAGRAD:                                                                        \
            fcnn_adagrad_##SUFFIX(at[0], g, at[2], n, (T)h[0], (T)h[1]);                          \
            break;                                                                                \
        case FCNN_ADADELTA:                                                                       \
            fcnn_adadelta_##SUFFIX(at[0], g, at[2], at[3], n, (T)h[0], (T)h[1], (T)h[2], (T)h[3]);\
            break;                                                                                \
        case FCNN_ADAMAX:                                                                         \
            fcnn_adamax_##SUFFIX(at[0], g, at[2], at[3], n, (T)h[0], (T)h[1], (T)h[2], (T)h[3],   \
                                 (T)h[4]);                                                        \
            break;                                                                                \
        case FCNN_LION:                                                                           \
            fcnn_lion_##SUFFIX(at[0], g, at[2], n, (T)h[0], (T)h[1], (T)h[2], (T)h[3], (T)h[4]);  \
            break;                                                                                \
        case FCNN_ACCUMULATE:                                                                     \
            fcnn_accumulate_##SUFFIX(at[0], g, n, (int)h[0], (T)h[1]);                            \
            break;                                                                                \
        default:                                                                                  \
            fcnn_average_##SUFFIX(at[0], g, n, (T)h[0], (T)h[1]);                                 \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    /* Rule `kind` on elements i .. i+n of one tensor whose operands are op[0] (param), op[1]     \
     * (grad) and the slots after, as Keras applies it: the gradient first scaled by `scale` (the \
     * clipping norms' factor) and clipped to [-clip, clip] when clip > 0 (NaN stays NaN), the    \
     * param then shrunk by p -= decay p (decoupled weight decay), then the rule. The prepared    \
     * gradient goes through a block on the stack, so the caller's gradient is left as it was. */ \
    ATTR static void fcnn_update_run_##SUFFIX(int kind, const double *h, T **op, ptrdiff_t i,     \
                                              ptrdiff_t n, double scale, double clip,             \
                                              double decay)                                       \
    {                                                                                             \
        T *at[FCNN_MAX_OPERANDS], block[FCNN_OPTIM_BLOCK];                                        \
        T s = (T)scale, c = (T)clip, d = (T)decay;                                                \
        int prepare = scale != 1 || clip > 0;                                                     \
        for (ptrdiff_t b = 0; b < n; b += FCNN_OPTIM_BLOCK) {                                     \
            ptrdiff_t m = n - b < FCNN_OPTIM_BLOCK ? n - b : FCNN_OPTIM_BLOCK;                    \
            const T *g = op[1] + i + b;                                                           \
            for (int k = 0; k < FCNN_MAX_OPERANDS; k++)                                           \
                at[k] = op[k] ? op[k] + i + b : NULL;                                             \
            if (prepare) {                                                                        \
                for (ptrdiff_t j = 0; j < m; j++) {                                               \
                    T x = g[j] * s;                                                               \
                    if (clip > 0)                                                                 \
                        x = x < -c ? -c : x > c ? c : x;                                          \
                    block[j] = x;                                                                 \
                }                                                                                 \
                g = block;                                                                        \
            }                                                                                     \
            if (decay != 0)                                                                       \
                for (ptrdiff_t j = 0; j < m; j++)                                                 \
                    at[0][j] -= d * at[0][j];                                                     \
            fcnn_rule_##SUFFIX(kind, h, at, g, m);                                                \
        }                                                                                         \
    }

#define FCNN_OPTIM_LEVEL(ATTR, LEVEL)                                                             \
    FCNN_OPTIM_RULES(ATTR, float, f32_##LEVEL, sqrtf)                                             \
    FCNN_OPTIM_RULES(ATTR, double, f64_##LEVEL, sqrt)

FCNN_OPTIM_LEVEL(, scalar)
#if FCNN_X86
FCNN_OPTIM_LEVEL(FCNN_TARGET_V4, avx512)
FCNN_OPTIM_LEVEL(FCNN_TARGET_AVX2_NOFMA, avx2)
#endif

static void fcnn_update_run_f32(int kind, const double *h, float **op, ptrdiff_t i, ptrdiff_t n,
                                double scale, double clip, double decay)
{
    FCNN_DISPATCH(fcnn_level, fcnn_update_run_f32, kind, h, op, i, n, scale, clip, decay);
}

static void fcnn_update_run_f64(int kind, const double *h, double **op, ptrdiff_t i, ptrdiff_t n,
                                double scale, double clip, double decay)
{
    FCNN_DISPATCH(fcnn_level, fcnn_update_run_f64, kind, h, op, i, n, scale, clip, decay);
}

#endif

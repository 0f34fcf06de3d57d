/* Winograd's transforms (winograd.h), included by it once per element type FCNN_T and vector
 * width: define FCNN_W (16, 8 or 4 floats; 8, 4 or 2 doubles) before each inclusion; every name
 * gets the suffix _w<W>_f32 or _w<W>_f64 (vectors.h's FCNN_NAME). Channels go a vector at a time,
 * then one by one; both are the same additions, so the tail has the vectors' bits. Deliberately
 * no include guard. */

/* One channel's B^T d B (d: the 16 values of a patch, rows of 4) into v[0 .. 15]. */
#define FCNN_WG_IN(TYPE, d, v)                                                                    \
    do {                                                                                          \
        TYPE r_[16];                                                                              \
        for (int i_ = 0; i_ < 4; i_++) { /* each row times B */                                   \
            r_[4 * i_] = d[4 * i_] - d[4 * i_ + 2];                                               \
            r_[4 * i_ + 1] = d[4 * i_ + 1] + d[4 * i_ + 2];                                       \
            r_[4 * i_ + 2] = d[4 * i_ + 2] - d[4 * i_ + 1];                                       \
            r_[4 * i_ + 3] = d[4 * i_ + 1] - d[4 * i_ + 3];                                       \
        }                                                                                         \
        for (int k_ = 0; k_ < 4; k_++) { /* B^T times each column */                              \
            v[k_] = r_[k_] - r_[8 + k_];                                                          \
            v[4 + k_] = r_[4 + k_] + r_[8 + k_];                                                  \
            v[8 + k_] = r_[8 + k_] - r_[4 + k_];                                                  \
            v[12 + k_] = r_[4 + k_] - r_[12 + k_];                                                \
        }                                                                                         \
    } while (0)

/* One channel's A^T m A (m: 16 values) into y[0 .. 3], the 2x2 outputs in rows. */
#define FCNN_WG_OUT(TYPE, m, y)                                                                   \
    do {                                                                                          \
        TYPE s_[8];                                                                               \
        for (int k_ = 0; k_ < 4; k_++) { /* A^T times each column */                              \
            s_[k_] = m[k_] + m[4 + k_] + m[8 + k_];                                               \
            s_[4 + k_] = m[4 + k_] - m[8 + k_] - m[12 + k_];                                      \
        }                                                                                         \
        for (int i_ = 0; i_ < 2; i_++) { /* each row times A */                                   \
            y[2 * i_] = s_[4 * i_] + s_[4 * i_ + 1] + s_[4 * i_ + 2];                             \
            y[2 * i_ + 1] = s_[4 * i_ + 1] - s_[4 * i_ + 2] - s_[4 * i_ + 3];                     \
        }                                                                                         \
    } while (0)

/* v[e*vs + j] = (B^T d B)[e] for channels j < c of the patch whose 16 pixels p points at. */
FCNN_INLINE void FCNN_NAME(fcnn_wg_in_tile)(const FCNN_T *const *p, int c, FCNN_T *v, size_t vs)
{
    int j = 0;
    for (; j + FCNN_W <= c; j += FCNN_W) {
        FCNN_VT d[16], t[16];
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++)
            d[k] = FCNN_LDW(p[k] + j);
        FCNN_WG_IN(FCNN_VT, d, t);
#pragma GCC unroll 16
        for (int e = 0; e < 16; e++)
            FCNN_STW(v + e * vs + j, t[e]);
    }
    for (; j < c; j++) {
        FCNN_T d[16], t[16];
        for (int k = 0; k < 16; k++)
            d[k] = p[k][j];
        FCNN_WG_IN(FCNN_T, d, t);
        for (int e = 0; e < 16; e++)
            v[e * vs + j] = t[e];
    }
}

/* V of nb tile rows from ty0 on, tw tiles each: the patches of g's input x, zeros outside it. */
FCNN_INLINE void FCNN_NAME(fcnn_wg_input_core)(const FCNN_T *x, const fcnn_geom *g, int ty0,
                                               int nb, int tw, const FCNN_T *zero, FCNN_T *v,
                                               size_t vs)
{
    const int ci = g->ci;
    for (int ty = 0; ty < nb; ty++)
        for (int tx = 0; tx < tw; tx++) {
            const FCNN_T *p[16];
            for (int i = 0; i < 4; i++) {
                const int r = 2 * (ty0 + ty) + i - g->pt;
                for (int j = 0; j < 4; j++) {
                    const int c = 2 * tx + j - g->pl;
                    p[4 * i + j] = r >= 0 && r < g->h && c >= 0 && c < g->w
                                   ? x + ((size_t)r * g->w + c) * ci : zero;
                }
            }
            FCNN_NAME(fcnn_wg_in_tile)(p, ci, v + ((size_t)ty * tw + tx) * ci, vs);
        }
}

/* The 2x2 outputs o of one tile, channels j < c: A^T M A from m[e*ms + j], plus the bias, then
 * the activation (relu: 0 none, 1 relu, FCNN_RELU6 relu then a cap at 6; NaN kept, as the
 * direct tiles keep it). */
FCNN_INLINE void FCNN_NAME(fcnn_wg_out_tile)(const FCNN_T *m, size_t ms, int c,
                                             const FCNN_T *bias, int relu, FCNN_T *const *o)
{
    int j = 0;
    for (; j + FCNN_W <= c; j += FCNN_W) {
        FCNN_VT t[16], y[4];
#pragma GCC unroll 16
        for (int e = 0; e < 16; e++)
            t[e] = FCNN_LDW(m + e * ms + j);
        FCNN_WG_OUT(FCNN_VT, t, y);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            FCNN_VT a = y[q];
            if (bias)
                a += FCNN_LDW(bias + j);
            if (relu)
                a = FCNN_RELU(a);
            if (relu == FCNN_RELU6)
                a = FCNN_CAP6(a);
            FCNN_STW(o[q] + j, a);
        }
    }
    for (; j < c; j++) {
        FCNN_T t[16], y[4];
        for (int e = 0; e < 16; e++)
            t[e] = m[e * ms + j];
        FCNN_WG_OUT(FCNN_T, t, y);
        for (int q = 0; q < 4; q++) {
            FCNN_T a = y[q];
            if (bias)
                a += bias[j];
            if (relu)
                a = a < 0 ? (FCNN_T)0 : a;
            if (relu == FCNN_RELU6)
                a = a > 6 ? (FCNN_T)6 : a;
            o[q][j] = a;
        }
    }
}

/* Output rows 2*ty0 .. of g's image out from M of nb tile rows; pixels past the output go to
 * dummy. */
FCNN_INLINE void FCNN_NAME(fcnn_wg_output_core)(const FCNN_T *m, size_t ms, const fcnn_geom *g,
                                                const FCNN_T *bias, int relu, int ty0, int nb,
                                                int tw, FCNN_T *out, FCNN_T *dummy)
{
    const int co = g->co;
    for (int ty = 0; ty < nb; ty++)
        for (int tx = 0; tx < tw; tx++) {
            FCNN_T *o[4];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    const int y = 2 * (ty0 + ty) + i, x = 2 * tx + j;
                    o[2 * i + j] = y < g->oh && x < g->ow
                                   ? out + ((size_t)y * g->ow + x) * co : dummy;
                }
            FCNN_NAME(fcnn_wg_out_tile)(m + ((size_t)ty * tw + tx) * co, ms, co, bias, relu, o);
        }
}

#undef FCNN_WG_IN
#undef FCNN_WG_OUT
#undef FCNN_W

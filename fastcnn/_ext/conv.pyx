"""2-D convolution kernels: forward, dX and dW side by side.

Layouts: activations NHWC, weights HWIO ``(kh, kw, c_in, c_out)``. ``pad_top``/``pad_left`` are
given; the output's spatial shape fixes the rest, and cells a window reaches outside the input
count as zeros. Every ``# OUT`` buffer is overwritten in place; nothing is returned.

float32 and float64 run the same register-tiled SIMD kernels of ``conv_passes.h`` (AVX-512, AVX2
or the baseline ISA, chosen at import), compiled once per element type: a finite-difference
gradient check in float64 tests the code that trains in float32. The fused convolution and max
pooling is float32 only.

Results do not depend on ``n_threads``: images are independent in forward and dX, and dW sums
fixed chunks of ``DW_CHUNK`` images separately, then adds the chunk sums along a fixed binary
tree (``_sum_parts``), which also makes them independent of how many processes share a batch.
The chunk sums are added as they come, block by block (``_tree_part``, ``_tree_add``), so the
scratch holds a few partial sums per thread, not one per chunk of the batch.

Threads take images (and blocks of chunks) one at a time ("dynamic"), not in fixed halves: on a
shared host one core often runs slower than the other for seconds at a time (bench/scaling.py's
probe), and fixed halves leave the faster core waiting.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

include "cpu.pxi"
include "scratch.pxi"
include "conv_passes.pxi"

cdef extern from "conv_passes.h" nogil:
    int fcnn_canvas_h(const fcnn_geom *g)
    int fcnn_canvas_w(const fcnn_geom *g)
    size_t fcnn_canvas_size(const fcnn_geom *g)
    size_t fcnn_dx_packed_size(int level, const fcnn_geom *g, int size)
    void fcnn_pack_dx_f32(int level, const float *w, const fcnn_geom *g, float *dst)
    void fcnn_pack_dx_f64(int level, const double *w, const fcnn_geom *g, double *dst)
    size_t fcnn_dx_scratch_size(const fcnn_geom *g)
    void fcnn_dx_image_f32(int level, const fcnn_geom *g, const float *wt, const float *dy,
                           float *dx, float *scratch)
    void fcnn_dx_image_f64(int level, const fcnn_geom *g, const double *wt, const double *dy,
                           double *dx, double *scratch)
    void fcnn_relu_mask_f32(const float *y, float *dx, size_t n)
    void fcnn_relu_mask_f64(const double *y, double *dx, size_t n)
    void fcnn_add_relu_f32(float *y, const float *res, size_t n, int relu)
    void fcnn_add_relu_f64(double *y, const double *res, size_t n, int relu)
    void fcnn_bias_relu_f32(float *y, size_t npix, int c, const float *bias, int relu)
    void fcnn_bias_relu_f64(double *y, size_t npix, int c, const double *bias, int relu)
    void fcnn_channel_sums_f32(const float *y, size_t npix, int c, float *sums)
    void fcnn_channel_sums_f64(const double *y, size_t npix, int c, double *sums)
    ctypedef struct fcnn_split:
        fcnn_geom g
        int dh, dw, groups
    fcnn_geom fcnn_split_part(const fcnn_split *s, int py, int px)
    size_t fcnn_split_scratch_size(const fcnn_split *s)
    size_t fcnn_split_w_step(int level, const fcnn_split *s, int size)
    size_t fcnn_split_b_step(int level, const fcnn_split *s, int size)
    size_t fcnn_split_t_step(int level, const fcnn_split *s, int size)
    size_t fcnn_split_dw_step(const fcnn_split *s)
    void fcnn_pack_split_f32(int level, const float *w, const float *bias, const fcnn_split *s,
                             float *wp, float *bp)
    void fcnn_pack_split_f64(int level, const double *w, const double *bias, const fcnn_split *s,
                             double *wp, double *bp)
    void fcnn_pack_split_dx_f32(int level, const float *w, const fcnn_split *s, float *tmp,
                                float *dst)
    void fcnn_pack_split_dx_f64(int level, const double *w, const fcnn_split *s, double *tmp,
                                double *dst)
    enum:
        FCNN_SPLIT_FORWARD, FCNN_SPLIT_DX, FCNN_SPLIT_DW
    void fcnn_split_image_f32(int level, int split_pass, const fcnn_split *s, const float *w,
                              const float *bias, int flag, const float *x, const float *dy,
                              float *out, float *scratch)
    void fcnn_split_image_f64(int level, int split_pass, const fcnn_split *s, const double *w,
                              const double *bias, int flag, const double *x, const double *dy,
                              double *out, double *scratch)

include "maxpool.pxi"
include "dropout.pxi"
include "bn_passes.pxi"


cdef inline void _pack_dx(int level, const floating *w, const fcnn_geom *g,
                          floating *dst) noexcept nogil:
    if floating is float:
        fcnn_pack_dx_f32(level, w, g, dst)
    else:
        fcnn_pack_dx_f64(level, w, g, dst)


cdef inline void _dx_image(int level, const fcnn_geom *g, const floating *wt, const floating *dy,
                           floating *dx, floating *scratch) noexcept nogil:
    if floating is float:
        fcnn_dx_image_f32(level, g, wt, dy, dx, scratch)
    else:
        fcnn_dx_image_f64(level, g, wt, dy, dx, scratch)


cdef inline void _bias_relu(floating *y, size_t npix, int c, const floating *bias,
                            int relu) noexcept nogil:
    if floating is float:
        fcnn_bias_relu_f32(y, npix, c, bias, relu)
    else:
        fcnn_bias_relu_f64(y, npix, c, bias, relu)


cdef tuple _shape4(const Py_ssize_t *shape):
    return (shape[0], shape[1], shape[2], shape[3])


cdef inline void _relu_mask(const floating *y, floating *dx, size_t n) noexcept nogil:
    if floating is float:
        fcnn_relu_mask_f32(y, dx, n)
    else:
        fcnn_relu_mask_f64(y, dx, n)


cdef inline void _add_relu(floating *y, const floating *res, size_t n, int relu) noexcept nogil:
    if floating is float:
        fcnn_add_relu_f32(y, res, n, relu)
    else:
        fcnn_add_relu_f64(y, res, n, relu)


cdef inline void _channel_sums(const floating *y, size_t npix, int c,
                               floating *sums) noexcept nogil:
    if floating is float:
        fcnn_channel_sums_f32(y, npix, c, sums)
    else:
        fcnn_channel_sums_f64(y, npix, c, sums)


cdef inline void _pack_split(int level, const floating *w, const floating *bias,
                             const fcnn_split *s, floating *wp, floating *bp) noexcept nogil:
    if floating is float:
        fcnn_pack_split_f32(level, w, bias, s, wp, bp)
    else:
        fcnn_pack_split_f64(level, w, bias, s, wp, bp)


cdef inline void _pack_split_dx(int level, const floating *w, const fcnn_split *s, floating *tmp,
                                floating *dst) noexcept nogil:
    if floating is float:
        fcnn_pack_split_dx_f32(level, w, s, tmp, dst)
    else:
        fcnn_pack_split_dx_f64(level, w, s, tmp, dst)


cdef inline void _split_image(int level, int split_pass, const fcnn_split *s, const floating *w,
                              const floating *bias, int flag, const floating *x,
                              const floating *dy, floating *out, floating *scratch) noexcept nogil:
    if floating is float:
        fcnn_split_image_f32(level, split_pass, s, w, bias, flag, x, dy, out, scratch)
    else:
        fcnn_split_image_f64(level, split_pass, s, w, bias, flag, x, dy, out, scratch)


cdef struct _dropout:
    # A Dropout after the pooling, applied to each image's pooled output (forward) and to its
    # gradient (backward) while they are in cache. The mask indexes the batch's pooled output
    # row-major, as the Dropout layer's own kernel does, so the masks are the same; image i is
    # image first + i of the whole batch when the batch is one process's share of it.
    uint64_t seed
    uint32_t threshold  # 0: no dropout
    float scale
    uint64_t first


cdef _dropout _dropout_of(uint64_t seed, double rate, uint64_t first) except *:
    cdef _dropout d
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), received {rate}")
    d.seed, d.threshold, d.scale = seed, fcnn_dropout_threshold(rate), 1.0 / (1.0 - rate)
    d.first = first
    return d


# Images per dW partial sum. Fixed, so that the summation order depends neither on n_threads nor
# on where a batch is cut into the shares of several processes (fastcnn.distributed cuts at
# multiples of it).
cdef enum:
    DW_CHUNK = FCNN_IMAGES_PER_PARTIAL

SAMPLES_PER_PARTIAL = DW_CHUNK


cdef inline Py_ssize_t _chunk_end(Py_ssize_t c, Py_ssize_t n) noexcept nogil:
    """The end of chunk c of n images, which starts at image c * DW_CHUNK."""
    return min(c * DW_CHUNK + DW_CHUNK, n)


cdef fcnn_geom _geom(const Py_ssize_t *xs, const Py_ssize_t *ws, const Py_ssize_t *os,
                     int stride_h, int stride_w, int pad_top, int pad_left) except *:
    """The geometry from the input, weight and output shapes; raises if they disagree."""
    cdef fcnn_geom g
    g.h, g.w, g.ci = xs[1], xs[2], xs[3]
    g.kh, g.kw, g.co = ws[0], ws[1], ws[3]
    g.oh, g.ow = os[1], os[2]
    g.sh, g.sw, g.pt, g.pl = stride_h, stride_w, pad_top, pad_left
    if (xs[0] != os[0] or ws[2] != g.ci or os[3] != g.co or stride_h < 1 or stride_w < 1
            or pad_top < 0 or pad_left < 0 or g.kh < 1 or g.kw < 1):
        raise ValueError(
            f"inconsistent convolution: input {[xs[k] for k in range(4)]}, weights "
            f"{[ws[k] for k in range(4)]}, output {[os[k] for k in range(4)]}, strides "
            f"{(stride_h, stride_w)}, pads {(pad_top, pad_left)}")
    return g


def conv2d_forward(const floating[:, :, :, ::1] x__nhwc,  # IN  (n, h, w, c_in)
                   const floating[:, :, :, ::1] w__hwio,  # IN  (kh, kw, c_in, c_out)
                   const floating[::1] bias,              # IN  (c_out,) or None
                   floating[:, :, :, ::1] out__nhwc,      # OUT (n, oh, ow, c_out)
                   double[:, :, ::1] moments__k2c,        # OUT (K, 2, c_out), or None
                   int stride_h, int stride_w, int pad_top, int pad_left,
                   int relu, Py_ssize_t chunk_rows, int n_threads,
                   const floating[:, :, :, ::1] residual__nhwc=None,  # IN (n, oh, ow, c_out)
                   const floating[::1] in_mean=None, const floating[::1] in_inv_std=None,
                   const floating[::1] in_gamma=None, const floating[::1] in_beta=None,
                   bint in_relu=False, double in_relu_max=0):
    """out = relu?(conv(x, w) + bias), all NHWC; relu 0 (none), 1 (relu) or 2 (relu6):
    out[n, y, x, o] = bias[o] + sum_{i, j, c} x[n, y*stride_h + i - pad_top, x*stride_w + j - pad_left, c]
    * w[i, j, c, o], with cells outside x counted as zeros. A 3x3 stride-1 convolution of 32
    channels or more on each side runs as Winograd's F(2x2, 3x3) (winograd.h; the twin's
    conv2d_winograd), equal to that sum to round-off. With ``residual__nhwc``, out =
    relu?((conv(x, w) + bias) + residual): the Add before the activation, on each image while it
    is in cache.

    With ``moments__k2c``: viewing out as (n*oh*ow, c_out) rows in chunks of ``chunk_rows`` (a
    multiple or a divisor of oh*ow, so that a chunk is whole images or part of one), each
    chunk's per-channel mean and sum of squared deviations from it go to moments[k, 0] and
    moments[k, 1]: the partial sums of ``normalization.batchnorm_forward_training``, by the
    same function, computed as each chunk's last image is done, while it is in cache.

    With ``in_mean``, x is the input of a training batch normalisation (``in_*`` its statistics,
    weights and relu, as normalization.batchnorm_apply takes them) whose output the conv reads:
    each image is normalised as it is loaded, bit for bit that function's output."""
    cdef fcnn_geom g = _geom(x__nhwc.shape, w__hwio.shape, out__nhwc.shape,
                             stride_h, stride_w, pad_top, pad_left)
    if bias is not None and bias.shape[0] != g.co:
        raise ValueError(f"bias has {bias.shape[0]} entries, expected {g.co}")
    cdef Py_ssize_t pixels = <Py_ssize_t>g.oh * g.ow, rows = out__nhwc.shape[0] * pixels
    cdef double *moments = NULL
    if moments__k2c is not None:
        _check_chunks(moments__k2c, "moments", chunk_rows, "chunk_rows", pixels, rows, g.co)
        if moments__k2c.shape[0] > 0:
            moments = &moments__k2c[0, 0, 0]
    cdef const floating *residual = NULL
    if residual__nhwc is not None:
        if moments__k2c is not None:
            raise ValueError("Expected moments=None with a residual: the moments are of the "
                             "conv's own output")
        if not _same_shape(residual__nhwc.shape, out__nhwc.shape):
            raise ValueError(f"residual has shape {_shape4(residual__nhwc.shape)}, expected "
                             f"{_shape4(out__nhwc.shape)}")
        if residual__nhwc.size > 0:
            residual = &residual__nhwc[0, 0, 0, 0]
    cdef _bn_in bn_in
    _check_bn_in(in_mean, in_inv_std, in_gamma, in_beta, g.ci)
    if out__nhwc.size == 0:
        return
    bn_in.scale = NULL
    try:
        if in_mean is not None:
            _fill_bn_in(&bn_in, in_mean, in_inv_std, in_gamma, in_beta, in_relu, in_relu_max)
        _forward(x__nhwc, w__hwio, bias, out__nhwc, &g, relu, max(1, n_threads), NULL, NULL,
                 NULL, moments, chunk_rows, residual, &bn_in if in_mean is not None else NULL)
    finally:
        free(bn_in.scale)


cdef int _check_chunks(double[:, :, ::1] partial, str name, Py_ssize_t chunk_rows,
                       str rows_name, Py_ssize_t pixels, Py_ssize_t rows, int c) except -1:
    """Raises unless chunks of chunk_rows rows are whole images or parts of one (of ``pixels``
    rows each) and partial holds (K, 2, c) sums for the chunks of ``rows`` rows."""
    cdef Py_ssize_t k = (rows + chunk_rows - 1) // chunk_rows if chunk_rows > 0 else 0
    if chunk_rows < 1 or pixels == 0 or (chunk_rows % pixels and pixels % chunk_rows):
        raise ValueError(f"Expected {rows_name} to be a multiple or a divisor of the {pixels} "
                         f"pixels of an image, received {chunk_rows}")
    if partial.shape[0] != k or partial.shape[1] != 2 or partial.shape[2] != c:
        raise ValueError(f"Expected {name} of shape ({k}, 2, {c}), received ({partial.shape[0]}, "
                         f"{partial.shape[1]}, {partial.shape[2]})")
    return 0


cdef int _check_bn_in(const floating[::1] mean, const floating[::1] inv_std,
                      const floating[::1] gamma, const floating[::1] beta, int c) except -1:
    """Raises unless the input normalisation's vectors are all None or all of c entries."""
    cdef int given = (mean is not None) + (inv_std is not None) + (gamma is not None) + (
        beta is not None)
    if given == 0:
        return 0
    if given != 4 or min(mean.shape[0], inv_std.shape[0], gamma.shape[0], beta.shape[0]) != c:
        raise ValueError(f"Expected in_mean, in_inv_std, in_gamma and in_beta all None or all "
                         f"of the input's {c} channels")
    return 0


cdef int _fill_bn_in(_bn_in *b, const floating[::1] mean, const floating[::1] inv_std,
                     const floating[::1] gamma, const floating[::1] beta, bint relu,
                     double relu_max) except -1:
    """b = the input normalisation of these checked vectors, without gradient sums (b.scale
    allocated: the caller frees it)."""
    b.mean, b.inv_std, b.beta, b.relu, b.cap = &mean[0], &inv_std[0], &beta[0], relu, relu_max
    b.partial, b.chunk_rows = NULL, 0
    b.scale = _scale(gamma, inv_std)
    return 0


def conv2d_backward_input(const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c_out)
                          const floating[:, :, :, ::1] w__hwio,   # IN  (kh, kw, c_in, c_out)
                          floating[:, :, :, ::1] dx__nhwc,        # OUT (n, h, w, c_in)
                          int stride_h, int stride_w, int pad_top, int pad_left, int n_threads,
                          const floating[:, :, :, ::1] relu_output__nhwc=None):  # IN like dx
    """dx = d(sum(dy * conv(x, w))) / dx: the transposed convolution of dy, all NHWC. With
    ``relu_output__nhwc`` (x, the output of a relu), dx also gets that relu's backward: 0 where
    relu_output <= 0, on each image while it is in cache."""
    cdef fcnn_geom g = _geom(dx__nhwc.shape, w__hwio.shape, dy__nhwc.shape,
                             stride_h, stride_w, pad_top, pad_left)
    cdef const floating *relu_output = NULL
    if relu_output__nhwc is not None:
        if not _same_shape(relu_output__nhwc.shape, dx__nhwc.shape):
            raise ValueError(f"relu_output has shape {_shape4(relu_output__nhwc.shape)}, "
                             f"expected {_shape4(dx__nhwc.shape)}")
        if relu_output__nhwc.size > 0:
            relu_output = &relu_output__nhwc[0, 0, 0, 0]
    if dx__nhwc.size == 0:
        return
    if dy__nhwc.size == 0:
        dx__nhwc[...] = 0
        return
    _backward_input(dy__nhwc, w__hwio, dx__nhwc, &g, max(1, n_threads), NULL, False, relu_output)


def conv2d_backward_weight(const floating[:, :, :, ::1] x__nhwc,   # IN  (n, h, w, c_in)
                           const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c_out)
                           floating[:, :, :, ::1] dw__hwio,        # OUT (kh, kw, c_in, c_out)
                           floating[::1] db,                       # OUT (c_out,) or None
                           int stride_h, int stride_w, int pad_top, int pad_left, int n_threads):
    """dw[i, j, c, o] = sum_{n, y, x} x[n, y*stride_h + i - pad_top, x*stride_w + j - pad_left, c]
    * dy[n, y, x, o] and db[o] = sum_{n, y, x} dy[n, y, x, o]; both overwritten, not accumulated."""
    cdef fcnn_geom g = _geom(x__nhwc.shape, dw__hwio.shape, dy__nhwc.shape,
                             stride_h, stride_w, pad_top, pad_left)
    if db is not None and db.shape[0] != g.co:
        raise ValueError(f"db has {db.shape[0]} entries, expected {g.co}")
    if dy__nhwc.size == 0:
        _zero_gradients(dw__hwio, db)
        return
    _backward(x__nhwc, dy__nhwc, dw__hwio, db, &g, max(1, n_threads))


def conv2d_backward(const floating[:, :, :, ::1] x__nhwc,   # IN  (n, h, w, c_in)
                    const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c_out)
                    const floating[:, :, :, ::1] w__hwio,   # IN  (kh, kw, c_in, c_out)
                    floating[:, :, :, ::1] dw__hwio,        # OUT (kh, kw, c_in, c_out)
                    floating[::1] db,                       # OUT (c_out,) or None
                    floating[:, :, :, ::1] dx__nhwc,        # OUT (n, h, w, c_in) or None
                    int stride_h, int stride_w, int pad_top, int pad_left, bint input_relu,
                    int n_threads,
                    const floating[:, :, :, ::1] bn_x__nhwc=None,  # IN (n, oh, ow, c_out)
                    const floating[::1] bn_mean=None, const floating[::1] bn_inv_std=None,
                    const floating[::1] bn_gamma=None, const floating[::1] bn_beta=None,
                    const double[:, ::1] bn_grad_means__2c=None, bint bn_relu=False,
                    double bn_relu_max=0, bint bn_g_given=False,
                    const floating[::1] in_mean=None, const floating[::1] in_inv_std=None,
                    const floating[::1] in_gamma=None, const floating[::1] in_beta=None,
                    bint in_relu=False, double in_relu_max=0,
                    double[:, :, ::1] in_partial__k2c=None, Py_ssize_t in_chunk_rows=0):
    """conv2d_backward_weight and (unless dx is None) conv2d_backward_input in one pass over
    dy: each image's part of dw (and db) and its dx from the same dy while it is in cache, bit
    for bit the two kernels' results. With input_relu, x is a relu's output, and dx also gets
    that relu's backward (0 where x <= 0).

    With ``bn_x__nhwc``, this conv's output, a training batch normalisation read it: dy is then
    the gradient of that normalisation's output, and the conv's own output gradient is the
    normalisation's dx, which each image makes in scratch first, bit for bit as
    normalization.batchnorm_backward would (``bn_relu`` and ``bn_relu_max`` are its, and
    ``bn_grad_means__2c`` what it gave as grad_means). With ``bn_g_given``, dy is already the
    gradient of the normalised value (through the relu, its parts added: what that function's
    sums pass wrote as the residual's gradient), which dx is made from as read.

    With ``in_mean``, x is the input of a training batch normalisation whose output the conv
    reads (conv2d_forward's ``in_*``): dW reads each image normalised as it loads it, and dx is
    the gradient of that normalisation's output (input_relu must be False). With
    ``in_partial__k2c`` too (and dx), viewing x as (n*h*w, c_in) rows in chunks of
    ``in_chunk_rows`` (a divisor of SAMPLES_PER_PARTIAL images' rows, and a multiple or a
    divisor of an image's), each chunk's sums of that gradient through the relu and of it times
    the normalised x go to partial[k, 0] and partial[k, 1]: the partial sums of
    normalization.batchnorm_backward, by the same function, made as the chunk's dx is written,
    for its ``sums_given``."""
    cdef fcnn_geom g = _geom(x__nhwc.shape, dw__hwio.shape, dy__nhwc.shape,
                             stride_h, stride_w, pad_top, pad_left)
    if not _same_shape(w__hwio.shape, dw__hwio.shape) or (
            dx__nhwc is not None and not _same_shape(dx__nhwc.shape, x__nhwc.shape)):
        raise ValueError(f"dw has shape {_shape4(dw__hwio.shape)}, expected w's "
                         f"{_shape4(w__hwio.shape)}, and dx that of x, {_shape4(x__nhwc.shape)}")
    if db is not None and db.shape[0] != g.co:
        raise ValueError(f"db has {db.shape[0]} entries, expected {g.co}")
    cdef _bn_dx bn
    bn.x = NULL
    if bn_x__nhwc is not None:
        if (bn_mean is None or bn_inv_std is None or bn_gamma is None or bn_beta is None
                or bn_grad_means__2c is None or not _same_shape(bn_x__nhwc.shape, dy__nhwc.shape)
                or bn_grad_means__2c.shape[0] != 2 or min(
                    bn_mean.shape[0], bn_inv_std.shape[0], bn_gamma.shape[0], bn_beta.shape[0],
                    bn_grad_means__2c.shape[1]) < g.co):
            raise ValueError(f"Expected bn_x of dy's shape {_shape4(dy__nhwc.shape)}, "
                             f"bn_grad_means of shape (2, {g.co}) and {g.co} entries in each "
                             f"of the normalisation's statistics and weights")
    _check_bn_in(in_mean, in_inv_std, in_gamma, in_beta, g.ci)
    if in_mean is not None and input_relu:
        raise ValueError("Expected input_relu=False with an input normalisation: its relu's "
                         "backward is the normalisation's")
    cdef Py_ssize_t pixels = <Py_ssize_t>g.h * g.w, rows = x__nhwc.shape[0] * pixels
    if in_partial__k2c is not None:
        if in_mean is None or dx__nhwc is None:
            raise ValueError("Expected in_partial with an input normalisation and dx: its sums "
                             "are of dx")
        _check_chunks(in_partial__k2c, "in_partial", in_chunk_rows, "in_chunk_rows", pixels,
                      rows, g.ci)
        if (DW_CHUNK * pixels) % in_chunk_rows:
            raise ValueError(f"Expected in_chunk_rows to divide {DW_CHUNK} images' rows, "
                             f"received {in_chunk_rows}")
    if dy__nhwc.size == 0:
        _zero_gradients(dw__hwio, db, dx__nhwc)
        return
    cdef int level = fcnn_simd_level()
    cdef floating *wt = NULL
    cdef _bn_in bn_in
    bn_in.scale = NULL
    if bn_x__nhwc is not None:
        bn.x, bn.mean, bn.inv_std = &bn_x__nhwc[0, 0, 0, 0], &bn_mean[0], &bn_inv_std[0]
        bn.gamma, bn.beta = &bn_gamma[0], &bn_beta[0]
        bn.mean_g, bn.mean_gx = &bn_grad_means__2c[0, 0], &bn_grad_means__2c[1, 0]
        bn.relu, bn.cap, bn.g_given = bn_relu, bn_relu_max, bn_g_given
    try:
        if bn_x__nhwc is not None:
            bn.scale = _scale(bn_gamma, bn_inv_std)
        if in_mean is not None:
            _fill_bn_in(&bn_in, in_mean, in_inv_std, in_gamma, in_beta, in_relu, in_relu_max)
            if in_partial__k2c is not None and in_partial__k2c.shape[0] > 0:
                bn_in.partial, bn_in.chunk_rows = &in_partial__k2c[0, 0, 0], in_chunk_rows
        if dx__nhwc is not None:
            wt = <floating *>_alloc(fcnn_dx_packed_size(level, &g, sizeof(floating)),
                                    sizeof(floating))
            _pack_dx(level, &w__hwio[0, 0, 0, 0], &g, wt)
        _backward(x__nhwc, dy__nhwc, dw__hwio, db, &g, max(1, n_threads), wt,
                  NULL if dx__nhwc is None else &dx__nhwc[0, 0, 0, 0], NULL, NULL, NULL,
                  False, input_relu, NULL, &bn if bn_x__nhwc is not None else NULL,
                  &bn_in if in_mean is not None else NULL)
    finally:
        free(wt)
        free(bn_in.scale)
        if bn_x__nhwc is not None:
            free(bn.scale)


# ---- grouped and dilated convolutions ------------------------------------------------------
# Run as groups x dilation phases of plain convolutions on per-thread copies (fcnn_split in
# conv_passes.h): the plain kernels above are not touched, so their speed is not either.

cdef fcnn_split _split_geom(const Py_ssize_t *xs, const Py_ssize_t *ws, const Py_ssize_t *os,
                            int stride_h, int stride_w, int pad_top, int pad_left,
                            int dilation_h, int dilation_w, int groups) except *:
    """The geometry of a grouped and/or dilated convolution, whose weights hold c_in / groups
    input channels; raises if the shapes disagree."""
    cdef fcnn_split s
    cdef Py_ssize_t full[4]
    if (groups < 1 or dilation_h < 1 or dilation_w < 1 or ws[3] % groups != 0
            or (max(stride_h, stride_w) > 1 and max(dilation_h, dilation_w) > 1)):
        raise ValueError(f"inconsistent convolution: {groups} groups for weights "
                         f"{[ws[k] for k in range(4)]}, dilation {(dilation_h, dilation_w)}, "
                         f"strides {(stride_h, stride_w)} (dilation needs strides 1)")
    full[0], full[1], full[2], full[3] = ws[0], ws[1], ws[2] * groups, ws[3]
    s.g = _geom(xs, full, os, stride_h, stride_w, pad_top, pad_left)
    s.dh, s.dw, s.groups = dilation_h, dilation_w, groups
    return s


def conv2d_general_forward(const floating[:, :, :, ::1] x__nhwc,  # IN  (n, h, w, c_in)
                           const floating[:, :, :, ::1] w__hwio,  # IN  (kh, kw, c_in/groups, c_out)
                           const floating[::1] bias,              # IN  (c_out,) or None
                           floating[:, :, :, ::1] out__nhwc,      # OUT (n, oh, ow, c_out)
                           int stride_h, int stride_w, int pad_top, int pad_left,
                           int dilation_h, int dilation_w, int groups, bint relu, int n_threads):
    """conv2d_forward with dilated windows and grouped channels: output channel o of group
    q = o // (c_out/groups) is bias[o] + sum_{i, j, c} x[n, y*stride_h + i*dilation_h - pad_top,
    x*stride_w + j*dilation_w - pad_left, q*(c_in/groups) + c] * w[i, j, c, o]. Dilation > 1
    needs strides 1."""
    cdef fcnn_split s = _split_geom(x__nhwc.shape, w__hwio.shape, out__nhwc.shape, stride_h,
                                    stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    if bias is not None and bias.shape[0] != s.g.co:
        raise ValueError(f"bias has {bias.shape[0]} entries, expected {s.g.co}")
    if out__nhwc.size == 0:
        return
    _split_forward(x__nhwc, w__hwio, bias, out__nhwc, &s, relu, max(1, n_threads))


def conv2d_general_backward_input(const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c_out)
                                  const floating[:, :, :, ::1] w__hwio,   # IN  (kh, kw, c_in/g, c_out)
                                  floating[:, :, :, ::1] dx__nhwc,        # OUT (n, h, w, c_in)
                                  int stride_h, int stride_w, int pad_top, int pad_left,
                                  int dilation_h, int dilation_w, int groups, int n_threads):
    """dx = d(sum(dy * conv2d_general_forward(x, w))) / dx."""
    cdef fcnn_split s = _split_geom(dx__nhwc.shape, w__hwio.shape, dy__nhwc.shape, stride_h,
                                    stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    if dx__nhwc.size == 0:
        return
    if dy__nhwc.size == 0:
        dx__nhwc[...] = 0
        return
    _split_backward_input(dy__nhwc, w__hwio, dx__nhwc, &s, max(1, n_threads))


def conv2d_general_backward_weight(const floating[:, :, :, ::1] x__nhwc,   # IN  (n, h, w, c_in)
                                   const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c_out)
                                   floating[:, :, :, ::1] dw__hwio,        # OUT (kh, kw, c_in/g, c_out)
                                   floating[::1] db,                       # OUT (c_out,) or None
                                   int stride_h, int stride_w, int pad_top, int pad_left,
                                   int dilation_h, int dilation_w, int groups, int n_threads):
    """dw and db (sum of dy over n, y, x) of conv2d_general_forward; overwritten."""
    cdef fcnn_split s = _split_geom(x__nhwc.shape, dw__hwio.shape, dy__nhwc.shape, stride_h,
                                    stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    if db is not None and db.shape[0] != s.g.co:
        raise ValueError(f"db has {db.shape[0]} entries, expected {s.g.co}")
    if dy__nhwc.size == 0:
        _zero_gradients(dw__hwio, db)
        return
    _split_backward(x__nhwc, dy__nhwc, dw__hwio, db, &s, max(1, n_threads))


# ---- transposed convolutions: a convolution's dX pass with the roles swapped ----------------
# The transposed convolution from x to out is the dX pass of the convolution from out to x,
# whose kernel w (kh, kw, filters, c_in) is, and whose pads the arguments give. Its gradient
# with respect to x is that convolution's forward (conv2d_forward, conv2d_general_forward).

def conv2d_transpose_forward(const floating[:, :, :, ::1] x__nhwc,  # IN  (n, h, w, c_in)
                             const floating[:, :, :, ::1] w__hwio,  # IN  (kh, kw, filters, c_in)
                             const floating[::1] bias,              # IN  (filters,) or None
                             floating[:, :, :, ::1] out__nhwc,      # OUT (n, oh, ow, filters)
                             int stride_h, int stride_w, int pad_top, int pad_left,
                             int dilation_h, int dilation_w, bint relu, int n_threads):
    """out = relu?(conv^T(x) + bias): out[n, y*stride_h + i*dilation_h - pad_top,
    x*stride_w + j*dilation_w - pad_left, f] += x[n, y, x, c] * w[i, j, f, c] over every input
    pixel (y, x), channel c and tap (i, j), dropping what falls outside out; then the bias and
    the relu, on each image while it is in cache."""
    cdef fcnn_split s
    cdef fcnn_geom g
    cdef const floating *pb = NULL
    cdef floating *po
    cdef bint dilated = dilation_h > 1 or dilation_w > 1
    if dilated:
        s = _split_geom(out__nhwc.shape, w__hwio.shape, x__nhwc.shape, stride_h, stride_w,
                        pad_top, pad_left, dilation_h, dilation_w, 1)
    else:
        g = _geom(out__nhwc.shape, w__hwio.shape, x__nhwc.shape, stride_h, stride_w, pad_top,
                  pad_left)
    if bias is not None:
        if bias.shape[0] != w__hwio.shape[2]:
            raise ValueError(f"bias has {bias.shape[0]} entries, expected {w__hwio.shape[2]}")
        pb = &bias[0]
    if out__nhwc.size == 0:
        return
    if x__nhwc.size == 0:
        out__nhwc[...] = 0
        po = &out__nhwc[0, 0, 0, 0]
        _bias_relu(po, <size_t>(out__nhwc.size // out__nhwc.shape[3]), <int>out__nhwc.shape[3],
                   pb, relu)
    elif dilated:
        _split_backward_input(x__nhwc, w__hwio, out__nhwc, &s, max(1, n_threads), pb, relu)
    else:
        _backward_input(x__nhwc, w__hwio, out__nhwc, &g, max(1, n_threads), pb, relu)


def conv2d_transpose_backward_weight(const floating[:, :, :, ::1] x__nhwc,  # IN  (n, h, w, c_in)
                                     const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, f)
                                     floating[:, :, :, ::1] dw__hwio,   # OUT (kh, kw, f, c_in)
                                     floating[::1] db,                  # OUT (f,) or None
                                     int stride_h, int stride_w, int pad_top, int pad_left,
                                     int dilation_h, int dilation_w, int n_threads):
    """dw and db of conv2d_transpose_forward (without its relu) from dy, its output's gradient:
    dw is the dW pass of the convolution from dy's shape to x's with dy as its input and x as
    its output gradient; db[f] = sum_{n, y, x} dy[n, y, x, f]. Both overwritten."""
    cdef fcnn_split s
    cdef fcnn_geom g
    cdef floating[::1] no_db = None
    cdef bint dilated = dilation_h > 1 or dilation_w > 1
    if dilated:
        s = _split_geom(dy__nhwc.shape, dw__hwio.shape, x__nhwc.shape, stride_h, stride_w,
                        pad_top, pad_left, dilation_h, dilation_w, 1)
    else:
        g = _geom(dy__nhwc.shape, dw__hwio.shape, x__nhwc.shape, stride_h, stride_w, pad_top,
                  pad_left)
    if db is not None and db.shape[0] != dw__hwio.shape[2]:
        raise ValueError(f"db has {db.shape[0]} entries, expected {dw__hwio.shape[2]}")
    if x__nhwc.size == 0 or dy__nhwc.size == 0:
        _zero_gradients(dw__hwio, db)
        return
    if dilated:
        _split_backward(dy__nhwc, x__nhwc, dw__hwio, no_db, &s, max(1, n_threads))
    else:
        _backward(dy__nhwc, x__nhwc, dw__hwio, no_db, &g, max(1, n_threads))
    if db is not None:
        _sum_channels(dy__nhwc, db, max(1, n_threads))


# ---- a convolution fused with the max pooling after it (float32) ------------------------

cdef fcnn_geom _conv_pool_geom(const Py_ssize_t *xs, const Py_ssize_t *ws, const Py_ssize_t *ps,
                               int stride_h, int stride_w, int pad_top, int pad_left,
                               int pool_h, int pool_w, int pool_stride_h, int pool_stride_w,
                               fcnn_pool_geom *pool) except *:
    """The convolution's geometry, cut to the rows and columns the pooling reads, and the
    pooling's, from the input, weight and pooled-output shapes."""
    if pool_h < 1 or pool_w < 1 or pool_stride_h < 1 or pool_stride_w < 1 or ps[1] < 1 or ps[2] < 1:
        raise ValueError(f"invalid pooling: window {(pool_h, pool_w)}, strides "
                         f"{(pool_stride_h, pool_stride_w)}, pooled output {[ps[k] for k in range(4)]}")
    pool.ph, pool.pw, pool.kh, pool.kw = ps[1], ps[2], pool_h, pool_w
    pool.sh, pool.sw, pool.pt, pool.pl = pool_stride_h, pool_stride_w, 0, 0
    pool.h = fcnn_pooled_rows(pool)
    cdef Py_ssize_t zs[4]
    zs[0], zs[1], zs[2], zs[3] = ps[0], fcnn_pooled_rows(pool), fcnn_pooled_cols(pool), ps[3]
    return _geom(xs, ws, zs, stride_h, stride_w, pad_top, pad_left)


cdef bint _same_shape(const Py_ssize_t *a, const Py_ssize_t *b):
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


def conv2d_maxpool_forward(const float[:, :, :, ::1] x__nhwc,   # IN  (n, h, w, c_in)
                           const float[:, :, :, ::1] w__hwio,   # IN  (kh, kw, c_in, c_out)
                           const float[::1] bias,               # IN  (c_out,) or None
                           float[:, :, :, ::1] out__nhwc,       # OUT (n, ph, pw, c_out)
                           int[:, :, :, ::1] argmax__nhwc,      # OUT (n, ph, pw, c_out) or None
                           int stride_h, int stride_w, int pad_top, int pad_left, bint relu,
                           int pool_h, int pool_w, int pool_stride_h, int pool_stride_w,
                           int n_threads, uint64_t dropout_seed=0, double dropout_rate=0,
                           uint64_t dropout_first=0):
    """out = maxpool(relu?(conv(x, w) + bias)): conv2d_forward, then max pooling without padding,
    then, with dropout_rate > 0, dropout.dropout_forward of out (flat) with dropout_seed, x's
    first image being image dropout_first of the batch the mask covers.

    Only the conv output z that windows read is computed, (n, zh, zw, c_out) with
    zh = (ph - 1) * pool_stride_h + pool_h and zw likewise, and it never leaves the cache. argmax
    gets each maximum's index (r * zw + s) * c_out + c in z; ties keep the first maximum.
    """
    cdef fcnn_pool_geom pool
    cdef fcnn_geom g = _conv_pool_geom(x__nhwc.shape, w__hwio.shape, out__nhwc.shape, stride_h,
                                       stride_w, pad_top, pad_left, pool_h, pool_w,
                                       pool_stride_h, pool_stride_w, &pool)
    if bias is not None and bias.shape[0] != g.co:
        raise ValueError(f"bias has {bias.shape[0]} entries, expected {g.co}")
    if argmax__nhwc is not None and not _same_shape(argmax__nhwc.shape, out__nhwc.shape):
        raise ValueError("argmax must have the shape of out")
    if out__nhwc.size == 0:
        return
    cdef _dropout drop = _dropout_of(dropout_seed, dropout_rate, dropout_first)
    _forward(x__nhwc, w__hwio, bias, out__nhwc, &g, relu, max(1, n_threads), &pool,
             NULL if argmax__nhwc is None else &argmax__nhwc[0, 0, 0, 0], &drop)


def conv2d_maxpool_backward(const float[:, :, :, ::1] x__nhwc,     # IN  (n, h, w, c_in)
                            const float[:, :, :, ::1] dy__nhwc,    # IN  (n, ph, pw, c_out)
                            const float[:, :, :, ::1] out__nhwc,   # IN  (n, ph, pw, c_out) or None
                            const int[:, :, :, ::1] argmax__nhwc,  # IN  (n, ph, pw, c_out)
                            const float[:, :, :, ::1] w__hwio,     # IN  (kh, kw, c_in, c_out)
                            float[:, :, :, ::1] dw__hwio,          # OUT (kh, kw, c_in, c_out)
                            float[::1] db,                         # OUT (c_out,) or None
                            float[:, :, :, ::1] dx__nhwc,          # OUT (n, h, w, c_in) or None
                            int stride_h, int stride_w, int pad_top, int pad_left, bint relu,
                            int pool_h, int pool_w, int pool_stride_h, int pool_stride_w,
                            bint input_relu, int n_threads, uint64_t dropout_seed=0,
                            double dropout_rate=0, uint64_t dropout_first=0):
    """dw, db and (unless None) dx of conv2d_maxpool_forward, from dy, the gradient of its output
    (with dropout, of the output after the dropout, which then passes dy through the same mask).

    dy goes to the argmax cells of z, and with relu only where the pooled output out is positive
    (out may be None without relu; with dropout it is the output after the dropout, positive where
    the pooled output was and kept); from there this is conv2d_backward_weight and
    conv2d_backward_input. With input_relu, x is the output of a relu, and dx also goes through
    that relu's backward: it is zeroed where x is not positive. Returns how many argmax entries
    fell outside z: those are skipped.
    """
    cdef fcnn_pool_geom pool
    cdef fcnn_geom g = _conv_pool_geom(x__nhwc.shape, w__hwio.shape, dy__nhwc.shape, stride_h,
                                       stride_w, pad_top, pad_left, pool_h, pool_w,
                                       pool_stride_h, pool_stride_w, &pool)
    cdef int level = fcnn_simd_level()
    cdef float *wt = NULL
    cdef const float *pooled = NULL
    cdef Py_ssize_t skipped
    cdef _dropout drop = _dropout_of(dropout_seed, dropout_rate, dropout_first)
    if (not _same_shape(argmax__nhwc.shape, dy__nhwc.shape) or (relu and out__nhwc is None)
            or (out__nhwc is not None and not _same_shape(out__nhwc.shape, dy__nhwc.shape))
            or not _same_shape(dw__hwio.shape, w__hwio.shape)
            or (dx__nhwc is not None and not _same_shape(dx__nhwc.shape, x__nhwc.shape))):
        raise ValueError("argmax and out must have the shape of dy, dw that of w and dx that of x")
    if db is not None and db.shape[0] != g.co:
        raise ValueError(f"db has {db.shape[0]} entries, expected {g.co}")
    if dy__nhwc.size == 0:
        _zero_gradients(dw__hwio, db, dx__nhwc)
        return 0
    if out__nhwc is not None:
        pooled = &out__nhwc[0, 0, 0, 0]
    if dx__nhwc is not None:
        wt = <float *>_alloc(fcnn_dx_packed_size(level, &g, sizeof(float)), sizeof(float))
        fcnn_pack_dx_f32(level, &w__hwio[0, 0, 0, 0], &g, wt)
    try:
        skipped = _backward(
            x__nhwc, dy__nhwc, dw__hwio, db, &g, max(1, n_threads), wt,
            NULL if dx__nhwc is None else &dx__nhwc[0, 0, 0, 0], &pool, pooled,
            &argmax__nhwc[0, 0, 0, 0], relu, input_relu, &drop)
    finally:
        free(wt)
    return skipped


# ---- packed weights, then one image (or one chunk of images) per prange step ---------------

ctypedef struct _bn_in:
    # A training batch normalisation (and its relu) whose output is the conv's input, applied
    # as the conv loads each image, so that the normalised value is never written whole: its
    # statistics' mean and inv_std, scale (_scale), beta (all of the kernel's float type) and
    # relu. With partial (backward only), the normalisation's gradient sums of each chunk of
    # chunk_rows rows of its output, made from the conv's dX as it is written (see
    # _input_grad_sums).
    const void *mean
    const void *inv_std
    void *scale
    const void *beta
    int relu
    double cap
    double *partial
    Py_ssize_t chunk_rows


cdef inline fcnn_geom _canvas_geom(const fcnn_geom *g) noexcept nogil:
    """The convolution of g on its canvas (the input padded and cut, fcnn_canvas_h/_w): the same
    windows, with no padding left to add."""
    cdef fcnn_geom c = g[0]
    c.h, c.w, c.pt, c.pl = fcnn_canvas_h(g), fcnn_canvas_w(g), 0, 0
    return c


cdef inline void _normalised_canvas(const fcnn_geom *g, const _bn_in *bn, const floating *x,
                                    floating *canvas) noexcept nogil:
    """canvas = the image x normalised by bn's own per-row pass (so bit for bit its output),
    placed on g's canvas: zeros where the padding is, and cut where no window reaches."""
    cdef int ch = fcnn_canvas_h(g), cw = fcnn_canvas_w(g), r, src
    cdef int lo = min(g.pl, cw), hi = min(cw, g.pl + g.w)
    cdef size_t row = <size_t>cw * g.ci
    for r in range(ch):
        src = r - g.pt
        if src < 0 or src >= g.h or hi <= lo:
            memset(canvas + r * row, 0, row * sizeof(floating))
            continue
        memset(canvas + r * row, 0, <size_t>lo * g.ci * sizeof(floating))
        _apply_rows(x + (<size_t>src * g.w + lo - g.pl) * g.ci, NULL, hi - lo, g.ci,
                    <const floating *>bn.mean, <const floating *>bn.scale,
                    <const floating *>bn.beta, bn.relu, <floating>bn.cap,
                    canvas + r * row + <size_t>lo * g.ci)
        memset(canvas + r * row + <size_t>hi * g.ci, 0,
               <size_t>(cw - hi) * g.ci * sizeof(floating))


cdef inline void _input_grad_sums(const _bn_in *bn, Py_ssize_t i, Py_ssize_t n,
                                  Py_ssize_t pixels, int c, const floating *x,
                                  const floating *dx) noexcept nogil:
    """After image i's dx (of n images, pixels rows each): the gradient sums of the chunks of
    bn's rows that it completes, each by the normalisation's own sums pass on its input x and its
    output's gradient dx, into bn.partial. A chunk is part of an image or whole images within
    one chunk of the dW tree, which one thread takes in order, so each chunk is summed once."""
    cdef Py_ssize_t cr = bn.chunk_rows, rows = n * pixels, k, r0
    cdef Py_ssize_t end = (i + 1) * pixels // cr if i < n - 1 else (rows + cr - 1) // cr
    for k in range(i * pixels // cr, end):
        r0 = k * cr
        _grad_sums(x + r0 * c, dx + r0 * c, NULL, NULL, min(cr, rows - r0), c,
                   <const floating *>bn.mean, <const floating *>bn.inv_std,
                   <const floating *>bn.scale, <const floating *>bn.beta, bn.relu,
                   <floating>bn.cap, NULL, bn.partial + k * 2 * c, bn.partial + (k * 2 + 1) * c)


cdef inline void _forward_loaded(int level, const fcnn_geom *g, const fcnn_geom *gc,
                                 const _bn_in *bn, const floating *wp, const floating *bp,
                                 int relu, const floating *x, floating *out,
                                 floating *canvas) noexcept nogil:
    """One image's forward; with bn, of x normalised into the canvas (gc: _canvas_geom(g), which
    has no padding to place, so the canvas is only read)."""
    if bn == NULL:
        _conv_image(level, g, wp, bp, relu, x, out, canvas)
    else:
        _normalised_canvas(g, bn, x, canvas)
        _conv_image(level, gc, wp, bp, relu, canvas, out,
                    canvas + <size_t>gc.h * gc.w * g.ci)


cdef int _forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                  const floating[::1] bias, floating[:, :, :, ::1] out, const fcnn_geom *g,
                  int relu, int n_threads, const fcnn_pool_geom *pool=NULL,
                  int *argmax=NULL, const _dropout *drop=NULL, double *moments=NULL,
                  Py_ssize_t chunk_rows=0, const floating *residual=NULL,
                  const _bn_in *bn_in=NULL) except -1:
    # With pool (float32 only), each image's conv output goes to per-thread scratch (it stays in
    # cache) and out receives its max pooling instead, then the dropout if any. With moments
    # (no pool), a prange step takes the images of whole chunks of rows (or one image of
    # several chunks) and then sums those chunks' moments. With residual (neither), each
    # image's output gets it added before the activation. With bn_in (no pool), each image is
    # normalised into the canvas as it is loaded.
    cdef int level = fcnn_simd_level(), cb = fcnn_block(level, g.co, sizeof(floating))
    cdef fcnn_geom gc = _canvas_geom(g)
    cdef size_t nw = fcnn_conv_packed_size(level, g, sizeof(floating))
    cdef size_t nb = fcnn_packed_size(1, g.co, cb)
    cdef size_t nc = (<size_t>gc.h * gc.w * g.ci + fcnn_conv_scratch_size(&gc) if bn_in
                      else fcnn_conv_scratch_size(g))
    cdef size_t nz = <size_t>g.oh * g.ow * g.co if pool else 0
    cdef size_t sx = x[0].size, so = out[0].size, per = nc + nz
    cdef floating *buf = <floating *>_alloc(nw + nb + n_threads * per, sizeof(floating))
    cdef floating *bp = NULL
    cdef floating *canvas = NULL
    cdef floating *z = NULL
    cdef const floating *px = &x[0, 0, 0, 0]
    cdef floating *po = &out[0, 0, 0, 0]
    cdef Py_ssize_t i, u, k, n = x.shape[0], pixels = <Py_ssize_t>g.oh * g.ow
    cdef Py_ssize_t rows = n * pixels, unit = max(1, chunk_rows // pixels) if moments else 1
    _pack_conv(level, &w[0, 0, 0, 0], g, buf)
    if bias is not None:
        bp = buf + nw
        _pack_cols(&bias[0], 1, g.co, 0, 1, cb, bp)
    with nogil, parallel(num_threads=n_threads):
        canvas = buf + nw + nb + threadid() * per
        z = canvas + nc
        if moments != NULL:
            for u in prange((n + unit - 1) // unit, schedule="dynamic"):
                for i in range(u * unit, min(u * unit + unit, n)):
                    _forward_loaded(level, g, &gc, bn_in, buf, bp, relu, px + i * sx,
                                    po + i * so, canvas)
                for k in range(u * unit * pixels // chunk_rows,
                               (min(u * unit + unit, n) * pixels + chunk_rows - 1) // chunk_rows):
                    _moments(po + k * chunk_rows * g.co, min(chunk_rows, rows - k * chunk_rows),
                             g.co, moments + k * 2 * g.co, moments + (k * 2 + 1) * g.co)
        for i in prange(n if moments == NULL else 0, schedule="dynamic"):
            if residual != NULL:
                _forward_loaded(level, g, &gc, bn_in, buf, bp, 0, px + i * sx, po + i * so,
                                canvas)
                _add_relu(po + i * so, residual + i * so, so, relu)
            elif pool == NULL:
                _forward_loaded(level, g, &gc, bn_in, buf, bp, relu, px + i * sx, po + i * so,
                                canvas)
            elif floating is float:
                _conv_image(level, g, buf, bp, relu, px + i * sx, z, canvas)
                fcnn_maxpool_rows_f32(level, pool, z, g.ow, g.co, 0, pool.ph, po + i * so,
                                      NULL if argmax == NULL else argmax + i * so)
                if drop != NULL and drop.threshold != 0:
                    fcnn_dropout_array_f32(po + i * so, po + i * so, so, (drop.first + i) * so,
                                           drop.seed, drop.threshold, drop.scale)
    free(buf)
    return 0


cdef int _backward_input(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] w,
                         floating[:, :, :, ::1] dx, const fcnn_geom *g, int n_threads,
                         const floating *bias=NULL, bint relu=False,
                         const floating *relu_output=NULL) except -1:
    # With bias or relu (a transposed convolution's forward), each image's dx gets them after;
    # with relu_output, the backward of the relu that made x.
    cdef int level = fcnn_simd_level()
    cdef bint epilogue = bias != NULL or relu
    cdef size_t nw = fcnn_dx_packed_size(level, g, sizeof(floating))
    cdef size_t per = fcnn_dx_scratch_size(g), sdy = dy[0].size, sdx = dx[0].size
    cdef floating *buf = <floating *>_alloc(nw + n_threads * per, sizeof(floating))
    cdef floating *scratch = NULL
    cdef const floating *pdy = &dy[0, 0, 0, 0]
    cdef floating *pdx = &dx[0, 0, 0, 0]
    cdef Py_ssize_t i
    _pack_dx(level, &w[0, 0, 0, 0], g, buf)
    with nogil, parallel(num_threads=n_threads):
        scratch = buf + nw + threadid() * per
        for i in prange(dx.shape[0], schedule="dynamic"):
            _dx_image(level, g, buf, pdy + i * sdy, pdx + i * sdx, scratch)
            if epilogue:
                _bias_relu(pdx + i * sdx, <size_t>g.h * g.w, g.ci, bias, relu)
            if relu_output != NULL:
                _relu_mask(relu_output + i * sdx, pdx + i * sdx, sdx)
    free(buf)
    return 0


cdef int _split_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                        const floating[::1] bias, floating[:, :, :, ::1] out, const fcnn_split *s,
                        bint relu, int n_threads) except -1:
    cdef int level = fcnn_simd_level()
    cdef size_t nw = s.groups * fcnn_split_w_step(level, s, sizeof(floating))
    cdef size_t nb = s.groups * fcnn_split_b_step(level, s, sizeof(floating))
    cdef size_t per = fcnn_split_scratch_size(s), sx = x[0].size, so = out[0].size
    cdef floating *buf = <floating *>_alloc(nw + nb + n_threads * per, sizeof(floating))
    cdef floating *bp = NULL
    cdef floating *scratch = NULL
    cdef const floating *px = &x[0, 0, 0, 0]
    cdef floating *po = &out[0, 0, 0, 0]
    cdef Py_ssize_t i
    if bias is not None:
        bp = buf + nw
    _pack_split(level, &w[0, 0, 0, 0], &bias[0] if bias is not None else NULL, s, buf, bp)
    with nogil, parallel(num_threads=n_threads):
        scratch = buf + nw + nb + threadid() * per
        for i in prange(x.shape[0], schedule="dynamic"):
            _split_image(level, FCNN_SPLIT_FORWARD, s, buf, bp, relu, px + i * sx, NULL,
                         po + i * so, scratch)
    free(buf)
    return 0


cdef int _split_backward_input(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] w,
                               floating[:, :, :, ::1] dx, const fcnn_split *s, int n_threads,
                               const floating *bias=NULL, bint relu=False) except -1:
    # bias and relu as in _backward_input.
    cdef int level = fcnn_simd_level()
    cdef fcnn_geom p = fcnn_split_part(s, 0, 0)
    cdef size_t nw = s.groups * fcnn_split_t_step(level, s, sizeof(floating))
    cdef size_t nt = <size_t>p.kh * p.kw * p.ci * p.co
    cdef size_t per = fcnn_split_scratch_size(s), sdy = dy[0].size, sdx = dx[0].size
    cdef floating *buf = <floating *>_alloc(nw + nt + n_threads * per, sizeof(floating))
    cdef floating *scratch = NULL
    cdef const floating *pdy = &dy[0, 0, 0, 0]
    cdef floating *pdx = &dx[0, 0, 0, 0]
    cdef bint epilogue = bias != NULL or relu
    cdef Py_ssize_t i
    _pack_split_dx(level, &w[0, 0, 0, 0], s, buf + nw, buf)
    with nogil, parallel(num_threads=n_threads):
        scratch = buf + nw + nt + threadid() * per
        for i in prange(dx.shape[0], schedule="dynamic"):
            _split_image(level, FCNN_SPLIT_DX, s, buf, NULL, 0, NULL, pdy + i * sdy,
                         pdx + i * sdx, scratch)
            if epilogue:
                _bias_relu(pdx + i * sdx, <size_t>s.g.h * s.g.w, s.g.ci, bias, relu)
    free(buf)
    return 0


cdef int _split_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                         floating[:, :, :, ::1] dw, floating[::1] db, const fcnn_split *s,
                         int n_threads) except -1:
    """dW and db of a split convolution: per chunk of images, each group's partial rows and db
    row (fcnn_split_dw_step apart), then the chunks summed along the tree, as _backward does."""
    cdef int level = fcnn_simd_level()
    cdef fcnn_geom p = fcnn_split_part(s, 0, 0)
    cdef int kk = p.kh * p.kw * p.ci, c16 = fcnn_round16(p.co)
    cdef size_t gstep = fcnn_split_dw_step(s), step = s.groups * gstep
    cdef size_t per = fcnn_split_scratch_size(s), sx = x[0].size, sdy = dy[0].size
    cdef Py_ssize_t n = x.shape[0], b, c, i, k, q
    cdef fcnn_tree t = fcnn_tree_plan((n + DW_CHUNK - 1) // DW_CHUNK, n_threads, step)
    cdef size_t sums = fcnn_tree_size(&t, n_threads)
    cdef floating *buf = <floating *>_alloc(sums + n_threads * per, sizeof(floating))
    cdef floating *scratch = NULL
    cdef int me
    cdef floating *part
    cdef const floating *px = &x[0, 0, 0, 0]
    cdef const floating *pdy = &dy[0, 0, 0, 0]
    cdef floating *pdw = &dw[0, 0, 0, 0]
    cdef bint has_db = db is not None
    with nogil, parallel(num_threads=n_threads):
        me = threadid()
        scratch = buf + sums + me * per
        for b in prange(t.blocks, schedule="dynamic"):
            for c in range(fcnn_tree_first(&t, b), fcnn_tree_end(&t, b)):
                part = _tree_part(&t, buf, me, c)
                for i in range(c * DW_CHUNK, _chunk_end(c, n)):
                    _split_image(level, FCNN_SPLIT_DW, s, NULL, NULL, has_db, px + i * sx,
                                 pdy + i * sdy, part, scratch)
                _tree_add(&t, buf, me, c)
    for q in prange(s.groups * kk, nogil=True, schedule="static", num_threads=n_threads):
        k = q % kk
        _sum_parts(buf + (q // kk) * gstep + k * c16, t.blocks, step, p.co,
                   pdw + k * s.g.co + (q // kk) * p.co)
    if has_db:
        for q in range(s.groups):
            _sum_parts(buf + q * gstep + kk * c16, t.blocks, step, p.co, &db[q * p.co])
    free(buf)
    return 0


cdef int _sum_channels(const floating[:, :, :, ::1] y, floating[::1] out,
                       int n_threads) except -1:
    """out[c] = the sum of y[..., c]: per chunk of images, then along the tree, as _backward
    sums db."""
    cdef int c = y.shape[3], c16 = fcnn_round16(y.shape[3])
    cdef size_t npix = <size_t>y.shape[1] * y.shape[2], sy = y[0].size
    cdef Py_ssize_t n = y.shape[0], b, k, i
    cdef fcnn_tree t = fcnn_tree_plan((n + DW_CHUNK - 1) // DW_CHUNK, n_threads, c16)
    cdef floating *buf = <floating *>_alloc(fcnn_tree_size(&t, n_threads), sizeof(floating))
    cdef floating *part
    cdef const floating *py = &y[0, 0, 0, 0]
    cdef int me
    with nogil, parallel(num_threads=n_threads):
        me = threadid()
        for b in prange(t.blocks, schedule="dynamic"):
            for k in range(fcnn_tree_first(&t, b), fcnn_tree_end(&t, b)):
                part = _tree_part(&t, buf, me, k)
                for i in range(k * DW_CHUNK, _chunk_end(k, n)):
                    _channel_sums(py + i * sy, npix, c, part)
                _tree_add(&t, buf, me, k)
    _sum_parts(buf, t.blocks, c16, c, &out[0])
    free(buf)
    return 0


ctypedef struct _bn_dx:
    # A training batch normalisation of the conv's output, whose input gradient the conv's
    # backward makes from the normalisation's output gradient (conv2d_backward): its input
    # (the conv's output), statistics, scale (_scale), weights (all of the kernel's float type)
    # and the means of its gradient sums.
    const void *x
    const void *mean
    const void *inv_std
    void *scale
    const void *gamma
    const void *beta
    const double *mean_g
    const double *mean_gx
    int relu
    double cap
    int g_given  # dY is the gradient of the normalised value already (see conv2d_backward)


cdef Py_ssize_t _backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                          floating[:, :, :, ::1] dw, floating[::1] db, const fcnn_geom *g,
                          int n_threads, const floating *wt=NULL, floating *dx=NULL,
                          const fcnn_pool_geom *pool=NULL, const floating *pooled=NULL,
                          const int *argmax=NULL, bint relu=False,
                          bint input_relu=False, const _dropout *drop=NULL,
                          const _bn_dx *bn=NULL, const _bn_in *bn_in=NULL) except -1:
    """dW and db, and (float32 only) with pool the backward of the max pooling (and relu) first:
    each image's dY is then the scatter of the pooled gradient dy (through the dropout's mask
    first, with drop), made in per-thread scratch. With dx (and wt, the fcnn_pack_dx weights),
    also dX from the same hot dY, masked where x <= 0 with input_relu. With bn, each image's dY
    is the normalisation's input gradient, made in per-thread scratch from dy. With bn_in, dW
    reads each image normalised into per-thread scratch as it loads it (dX does not read x),
    and with its partial, each image's dX also gives the normalisation's gradient sums.
    Returns the skipped argmax count."""
    # Partial sums: per chunk, dw rows padded to c16 channels, then one db row, in the scratch of
    # a fcnn_tree (pack.h); each thread's own scratch after it.
    cdef int level = fcnn_simd_level(), kk = g.kh * g.kw * g.ci, c16 = fcnn_round16(g.co)
    cdef Py_ssize_t n = x.shape[0], b, c, i, k
    cdef size_t sx = x[0].size, sdy = dy[0].size
    cdef bint masked = drop != NULL and drop.threshold != 0
    cdef size_t step = (<size_t>kk + 1) * c16
    cdef size_t nd = <size_t>g.oh * g.ow * g.co if pool != NULL or bn != NULL else 0
    cdef size_t nm = fcnn_round16(sdy) if masked else 0
    cdef fcnn_geom gc = _canvas_geom(g)
    cdef size_t nc = <size_t>gc.h * gc.w * g.ci if bn_in else 0
    cdef size_t per = nd + nm + nc + max(fcnn_dw_scratch_size(&gc if bn_in else g),
                                         fcnn_dx_scratch_size(g) if dx else 0)
    cdef fcnn_tree t = fcnn_tree_plan((n + DW_CHUNK - 1) // DW_CHUNK, n_threads, step)
    cdef size_t sums = fcnn_tree_size(&t, n_threads)
    cdef floating *buf = <floating *>_alloc(sums + n_threads * per, sizeof(floating))
    cdef floating *scratch = NULL
    cdef floating *dz = NULL
    cdef floating *dm = NULL
    cdef floating *cv = NULL
    cdef const floating *d
    cdef const floating *pi
    cdef floating *part
    cdef const floating *px = &x[0, 0, 0, 0]
    cdef const floating *pdy = &dy[0, 0, 0, 0]
    cdef floating *pdw = &dw[0, 0, 0, 0]
    cdef bint has_db = db is not None
    cdef Py_ssize_t bad = 0
    cdef int me
    with nogil, parallel(num_threads=n_threads):
        me = threadid()
        dz = buf + sums + me * per
        dm = dz + nd
        cv = dm + nm
        scratch = cv + nc
        for b in prange(t.blocks, schedule="dynamic"):
            for c in range(fcnn_tree_first(&t, b), fcnn_tree_end(&t, b)):
                part = _tree_part(&t, buf, me, c)
                for i in range(c * DW_CHUNK, _chunk_end(c, n)):
                    d = pdy + i * sdy
                    if bn != NULL:
                        _grad_input(<const floating *>bn.x + i * sdy, d,
                                    d if bn.g_given else NULL,
                                    <Py_ssize_t>g.oh * g.ow, g.co, <const floating *>bn.mean,
                                    <const floating *>bn.inv_std, <const floating *>bn.scale,
                                    <const floating *>bn.beta, <const floating *>bn.gamma,
                                    bn.mean_g, bn.mean_gx, bn.relu, <floating>bn.cap, dz)
                        d = dz
                    if floating is float:
                        if masked:
                            fcnn_dropout_array_f32(d, dm, sdy, (drop.first + i) * sdy,
                                                   drop.seed, drop.threshold, drop.scale)
                            d = dm
                        if pool != NULL:
                            pi = pooled + i * sdy if pooled != NULL else NULL
                            bad += fcnn_unpool_image(level, pool, d, pi, argmax + i * sdy,
                                                     g.ow, g.co, relu, dz)
                            d = dz
                    if bn_in != NULL:
                        _normalised_canvas(g, bn_in, px + i * sx, cv)
                        _dw_image(level, &gc, cv, d, part, part + kk * c16 if has_db else NULL,
                                  scratch)
                    else:
                        _dw_image(level, g, px + i * sx, d, part,
                                  part + kk * c16 if has_db else NULL, scratch)
                    if dx != NULL:
                        _dx_image(level, g, wt, d, dx + i * sx, scratch)
                        if input_relu:
                            _relu_mask(px + i * sx, dx + i * sx, sx)
                        if bn_in != NULL and bn_in.partial != NULL:
                            _input_grad_sums(bn_in, i, n, <Py_ssize_t>g.h * g.w, g.ci, px, dx)
                _tree_add(&t, buf, me, c)
    for k in prange(kk, nogil=True, schedule="static", num_threads=n_threads):
        _sum_parts(buf + k * c16, t.blocks, step, g.co, pdw + k * g.co)
    if has_db:
        _sum_parts(buf + kk * c16, t.blocks, step, g.co, &db[0])
    free(buf)
    return bad

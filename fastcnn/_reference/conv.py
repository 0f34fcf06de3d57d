"""NumPy twins of ``fastcnn._ext.conv``: convolution, and convolution + max pooling (+ dropout)
in one step."""
import numpy as np

from .window import _canvas, _windows
from .dense import _store_biased
from .dropout import dropout_backward, dropout_forward
from .normalization import _chunk_moments, batchnorm_apply, chunk_grad_sums, input_gradient
from .pool import maxpool2d_backward, maxpool2d_forward, maxpool2d_relu_backward


def _dilated_canvas(x, out_h, out_w, kh, kw, sh, sw, pad_top, pad_left, dh, dw):
    return _canvas(x, out_h, out_w, (kh - 1) * dh + 1, (kw - 1) * dw + 1, sh, sw, pad_top,
                   pad_left)


def _group_slices(groups, c_in, c_out):
    """(input channels, output channels) of each group."""
    gi, go = c_in // groups, c_out // groups
    return [(slice(q * gi, (q + 1) * gi), slice(q * go, (q + 1) * go)) for q in range(groups)]


def conv2d_general_forward(x__nhwc, w__hwio, bias, out__nhwc, stride_h, stride_w, pad_top,
                           pad_left, dilation_h, dilation_w, groups, relu, n_threads):
    kh, kw = w__hwio.shape[:2]
    oh, ow = out__nhwc.shape[1:3]
    xp = _dilated_canvas(x__nhwc, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left,
                         dilation_h, dilation_w)
    acc = np.zeros(out__nhwc.shape)
    for cin, cout in _group_slices(groups, x__nhwc.shape[3], out__nhwc.shape[3]):
        for i in range(kh):
            for j in range(kw):
                window = _windows(xp, i * dilation_h, j * dilation_w, oh, ow, stride_h, stride_w)
                acc[..., cout] += window[..., cin] @ w__hwio[i, j][:, cout].astype(np.float64)
    _store_biased(acc, bias, relu, out__nhwc)

def conv2d_general_backward_input(dy__nhwc, w__hwio, dx__nhwc, stride_h, stride_w, pad_top,
                                  pad_left, dilation_h, dilation_w, groups, n_threads):
    kh, kw = w__hwio.shape[:2]
    oh, ow = dy__nhwc.shape[1:3]
    h, w = dx__nhwc.shape[1:3]
    dxp = _dilated_canvas(np.zeros(dx__nhwc.shape), oh, ow, kh, kw, stride_h, stride_w, pad_top,
                          pad_left, dilation_h, dilation_w)
    dy = np.asarray(dy__nhwc, dtype=np.float64)
    for cin, cout in _group_slices(groups, dx__nhwc.shape[3], dy.shape[3]):
        for i in range(kh):
            for j in range(kw):
                window = _windows(dxp, i * dilation_h, j * dilation_w, oh, ow, stride_h, stride_w)
                window[..., cin] += dy[..., cout] @ w__hwio[i, j][:, cout].T
    dx__nhwc[...] = dxp[:, pad_top:pad_top + h, pad_left:pad_left + w]

def conv2d_general_backward_weight(x__nhwc, dy__nhwc, dw__hwio, db, stride_h, stride_w, pad_top,
                                   pad_left, dilation_h, dilation_w, groups, n_threads):
    kh, kw = dw__hwio.shape[:2]
    oh, ow = dy__nhwc.shape[1:3]
    xp = _dilated_canvas(x__nhwc, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left,
                         dilation_h, dilation_w)
    dy = np.asarray(dy__nhwc, dtype=np.float64)
    for cin, cout in _group_slices(groups, x__nhwc.shape[3], dy.shape[3]):
        for i in range(kh):
            for j in range(kw):
                window = _windows(xp, i * dilation_h, j * dilation_w, oh, ow, stride_h, stride_w)
                dw__hwio[i, j][:, cout] = np.einsum("nhwc,nhwo->co", window[..., cin],
                                                    dy[..., cout])
    if db is not None:
        db[...] = dy.sum(axis=(0, 1, 2))

# Winograd's F(2x2, 3x3): B^T, G and A^T.
_WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
_WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def conv2d_winograd(x__nhwc, w__hwio, out_h, out_w, pad_top, pad_left):
    """The 3x3 stride-1 convolution (no bias) by Winograd's F(2x2, 3x3), the algorithm the
    kernels run it by (winograd.h), in x's dtype: each 2x2 block of output pixels is
    A^T [(G w G^T) * (B^T d B)] A for its 4x4 patch d of the zero-padded input. In exact
    arithmetic it is the convolution; in floating point it differs from it by round-off."""
    n, h, w, c = x__nhwc.shape
    th, tw = -(-out_h // 2), -(-out_w // 2)
    canvas = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), x__nhwc.dtype)
    rows, cols = min(h, canvas.shape[1] - pad_top), min(w, canvas.shape[2] - pad_left)
    canvas[:, pad_top:pad_top + rows, pad_left:pad_left + cols] = x__nhwc[:, :rows, :cols]
    patches = np.stack([np.stack([canvas[:, i:i + 2 * th:2, j:j + 2 * tw:2] for j in range(4)],
                                 axis=3) for i in range(4)], axis=3)  # (n, th, tw, 4, 4, c)
    bt, g, at = (m.astype(x__nhwc.dtype) for m in (_WINOGRAD_BT, _WINOGRAD_G, _WINOGRAD_AT))
    v = np.einsum("ai,ntsijc,bj->ntsabc", bt, patches, bt)
    u = np.einsum("ai,ijco,bj->abco", g, w__hwio.astype(x__nhwc.dtype), g)
    m = np.einsum("ntsabc,abco->ntsabo", v, u)
    y = np.einsum("pa,ntsabo,qb->ntpsqo", at, m, at)
    return y.reshape(n, 2 * th, 2 * tw, -1)[:, :out_h, :out_w]


def _normalised_input(x__nhwc, mean, inv_std, gamma, beta, relu, relu_max):
    """x through the training batch normalisation (and relu) of the in_* arguments, rounded to
    x's type: the conv kernels' input when they normalise it as they load it."""
    if mean is None:
        return x__nhwc
    c = x__nhwc.shape[-1]
    y = np.empty(x__nhwc.shape, x__nhwc.dtype)
    batchnorm_apply(x__nhwc.reshape(-1, c), None, gamma, beta, mean, inv_std, y.reshape(-1, c),
                    relu, relu_max, 1)
    return y

def conv2d_forward(x__nhwc, w__hwio, bias, out__nhwc, moments__k2c, stride_h, stride_w, pad_top,
                   pad_left, relu, chunk_rows, n_threads, residual__nhwc=None, in_mean=None,
                   in_inv_std=None, in_gamma=None, in_beta=None, in_relu=False, in_relu_max=0):
    """The plain convolution; moments (unless None) of out's rows in chunks of chunk_rows; with
    a residual, out = relu?(conv + bias + residual), the conv rounded to out's type first; with
    in_mean, of x normalised by the in_* batch normalisation first."""
    x__nhwc = _normalised_input(x__nhwc, in_mean, in_inv_std, in_gamma, in_beta, in_relu,
                                in_relu_max)
    conv2d_general_forward(x__nhwc, w__hwio, bias, out__nhwc, stride_h, stride_w, pad_top,
                           pad_left, 1, 1, 1, 0 if residual__nhwc is not None else relu, n_threads)
    if residual__nhwc is not None:
        out__nhwc += residual__nhwc
        _store_biased(out__nhwc, None, relu, out__nhwc)
    if moments__k2c is not None:
        moments__k2c[...] = _chunk_moments(out__nhwc.reshape(-1, out__nhwc.shape[3]), chunk_rows)

def conv2d_backward_input(dy__nhwc, w__hwio, dx__nhwc, stride_h, stride_w, pad_top, pad_left,
                          n_threads, relu_output__nhwc=None):
    """The plain convolution's dX; 0 where relu_output (unless None) is not above 0."""
    conv2d_general_backward_input(dy__nhwc, w__hwio, dx__nhwc, stride_h, stride_w, pad_top,
                                  pad_left, 1, 1, 1, n_threads)
    if relu_output__nhwc is not None:
        dx__nhwc[~(relu_output__nhwc > 0)] = 0

def conv2d_backward_weight(x__nhwc, dy__nhwc, dw__hwio, db, stride_h, stride_w, pad_top, pad_left,
                           n_threads):
    conv2d_general_backward_weight(x__nhwc, dy__nhwc, dw__hwio, db, stride_h, stride_w, pad_top,
                                   pad_left, 1, 1, 1, n_threads)

def conv2d_backward(x__nhwc, dy__nhwc, w__hwio, dw__hwio, db, dx__nhwc, stride_h, stride_w,
                    pad_top, pad_left, input_relu, n_threads, bn_x__nhwc=None, bn_mean=None,
                    bn_inv_std=None, bn_gamma=None, bn_beta=None, bn_grad_means__2c=None,
                    bn_relu=False, bn_relu_max=0, bn_g_given=False, in_mean=None,
                    in_inv_std=None, in_gamma=None, in_beta=None, in_relu=False, in_relu_max=0,
                    in_partial__k2c=None, in_chunk_rows=0):
    """conv2d_backward_weight, then conv2d_backward_input (masked where x <= 0 with
    input_relu, unless dx is None); with bn_x, of the normalisation's input gradient made from
    dy (the normalised value's gradient already with bn_g_given); with in_mean, dW of x
    normalised as conv2d_forward's, and with in_partial that normalisation's chunk sums of dx."""
    x_in = x__nhwc
    x__nhwc = _normalised_input(x__nhwc, in_mean, in_inv_std, in_gamma, in_beta, in_relu,
                                in_relu_max)
    if bn_x__nhwc is not None:
        c = dy__nhwc.shape[-1]
        dy__nhwc = input_gradient(
            bn_x__nhwc.reshape(-1, c), dy__nhwc.reshape(-1, c), None, bn_gamma, bn_beta,
            bn_mean, bn_inv_std, bn_relu and not bn_g_given, bn_relu_max, bn_grad_means__2c
        ).astype(dw__hwio.dtype).reshape(dy__nhwc.shape)
    conv2d_backward_weight(x__nhwc, dy__nhwc, dw__hwio, db, stride_h, stride_w, pad_top,
                           pad_left, n_threads)
    if dx__nhwc is not None:
        conv2d_backward_input(dy__nhwc, w__hwio, dx__nhwc, stride_h, stride_w, pad_top,
                              pad_left, n_threads, x__nhwc if input_relu else None)
    if in_partial__k2c is not None:
        c = x_in.shape[-1]
        in_partial__k2c[...] = chunk_grad_sums(x_in.reshape(-1, c), dx__nhwc.reshape(-1, c),
                                               in_gamma, in_beta, in_mean, in_inv_std, in_relu,
                                               in_relu_max, in_chunk_rows)

def conv2d_transpose_forward(x__nhwc, w__hwio, bias, out__nhwc, stride_h, stride_w, pad_top,
                             pad_left, dilation_h, dilation_w, relu, n_threads):
    """The dX pass of the convolution from out to x, then bias and relu."""
    acc = np.empty(out__nhwc.shape)
    conv2d_general_backward_input(x__nhwc, w__hwio, acc, stride_h, stride_w, pad_top, pad_left,
                                  dilation_h, dilation_w, 1, n_threads)
    _store_biased(acc, bias, relu, out__nhwc)

def conv2d_transpose_backward_weight(x__nhwc, dy__nhwc, dw__hwio, db, stride_h, stride_w, pad_top,
                                     pad_left, dilation_h, dilation_w, n_threads):
    """The dW pass of the convolution from dy's shape to x's, dy its input; db sums dy."""
    conv2d_general_backward_weight(dy__nhwc, x__nhwc, dw__hwio, None, stride_h, stride_w, pad_top,
                                   pad_left, dilation_h, dilation_w, 1, n_threads)
    if db is not None:
        db[...] = np.asarray(dy__nhwc, dtype=np.float64).sum(axis=(0, 1, 2))

def _unpooled_shape(pooled_shape, pool_h, pool_w, pool_stride_h, pool_stride_w):
    """The part of a conv output that max pooling windows read."""
    n, ph, pw, c = pooled_shape
    return n, (ph - 1) * pool_stride_h + pool_h, (pw - 1) * pool_stride_w + pool_w, c

def conv2d_maxpool_forward(x__nhwc, w__hwio, bias, out__nhwc, argmax__nhwc, stride_h, stride_w,
                           pad_top, pad_left, relu, pool_h, pool_w, pool_stride_h, pool_stride_w,
                           n_threads, dropout_seed=0, dropout_rate=0, dropout_first=0):
    """conv2d_forward of the conv output that windows read, then maxpool2d_forward of that, then
    dropout_forward (x's first image being image dropout_first of the mask's batch)."""
    z = np.empty(_unpooled_shape(out__nhwc.shape, pool_h, pool_w, pool_stride_h, pool_stride_w),
                 out__nhwc.dtype)
    conv2d_forward(x__nhwc, w__hwio, bias, z, None, stride_h, stride_w, pad_top, pad_left, relu,
                   1, n_threads)
    where = np.empty(out__nhwc.shape, np.int32) if argmax__nhwc is None else argmax__nhwc
    maxpool2d_forward(z, out__nhwc, where, pool_h, pool_w, pool_stride_h, pool_stride_w, 0, 0,
                      n_threads)
    if dropout_rate > 0:
        dropout_forward(out__nhwc, dropout_seed, dropout_rate, out__nhwc, n_threads,
                        dropout_first * out__nhwc[0].size)

def conv2d_maxpool_backward(x__nhwc, dy__nhwc, out__nhwc, argmax__nhwc, w__hwio, dw__hwio, db,
                            dx__nhwc, stride_h, stride_w, pad_top, pad_left, relu, pool_h, pool_w,
                            pool_stride_h, pool_stride_w, input_relu, n_threads, dropout_seed=0,
                            dropout_rate=0, dropout_first=0):
    """The dropout's backward, the pooling's (and the relu's), then conv2d_backward_weight and
    _input, and with input_relu the backward of a relu whose output was x. Returns how many
    argmax entries fell outside z, as the kernel does."""
    if dropout_rate > 0:
        masked = np.empty_like(dy__nhwc)
        dropout_backward(dy__nhwc, dropout_seed, dropout_rate, masked, n_threads,
                         dropout_first * dy__nhwc[0].size)
        dy__nhwc = masked
    dz = np.empty(_unpooled_shape(dy__nhwc.shape, pool_h, pool_w, pool_stride_h, pool_stride_w),
                  dy__nhwc.dtype)
    if relu:
        skipped = maxpool2d_relu_backward(dy__nhwc, out__nhwc, argmax__nhwc, dz, n_threads)
    else:
        skipped = maxpool2d_backward(dy__nhwc, argmax__nhwc, dz, n_threads)
    conv2d_backward_weight(x__nhwc, dz, dw__hwio, db, stride_h, stride_w, pad_top, pad_left,
                           n_threads)
    if dx__nhwc is not None:
        conv2d_backward_input(dz, w__hwio, dx__nhwc, stride_h, stride_w, pad_top, pad_left,
                              n_threads)
        if input_relu:
            dx__nhwc[...] = np.where(x__nhwc > 0, dx__nhwc, 0)
    return skipped

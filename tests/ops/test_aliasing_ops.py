"""Output buffers that overlap an input: refused with a ValueError naming both arguments wherever
the kernel cannot work in place (it would read values it has already overwritten), and still
computed right where it can (activations, dropout, axpy: out may be the input itself)."""
import numpy as np
import pytest
from conftest import DY, LABELS, LOGITS, W, X, Y, K

from fastcnn._ops import (activation, conv, dense, distance, dropout, loss, merge, normalization,
                          pool, regularization, remap)

RNG = np.random.default_rng(7)
POOLED, ARGMAX = conv.conv2d_maxpool_forward(X, K, None, (1, 1), "valid", (2, 2), (2, 2))
MP_OUT, MP_ARGMAX = pool.maxpool2d_forward(X, (2, 2), (2, 2), "valid")
ROWS = np.tile(np.arange(6, dtype=np.int32), (8, 1))  # identity maps: remap out has x's shape
GAMMA, BETA = np.ones(1, np.float32), np.zeros(1, np.float32)
DIST = RNG.random((8, 5)).astype(np.float32)


def _bn_stats():
    return {"moving_mean": np.zeros(1, np.float32), "moving_var": np.ones(1, np.float32)}


# (id, function, fixed arguments, the input's argument and value, the output's argument, shape
# and dtype, and the output's name in the message when it differs from its argument's)
CASES = [
    ("dense_forward", dense.dense_forward, dict(kernel=W, bias=None), "x", X.reshape(-1, 36)[:, :4],
     "out", (8, 3), np.float32),
    ("dense_forward kernel", dense.dense_forward, dict(x=X.reshape(-1, 36)[:, :4], bias=None),
     "kernel", W, "out", (8, 3), np.float32),
    ("dense_backward_input", dense.dense_backward_input, dict(kernel=W), "dy", LOGITS, "out",
     (8, 4), np.float32),
    ("dense_backward_weight", dense.dense_backward_weight, dict(dy=LOGITS), "x",
     X.reshape(-1, 36)[:, :4], "dw", (4, 3), np.float32),
    ("conv2d_forward", conv.conv2d_forward, dict(kernel=K, bias=None, strides=(1, 1),
                                                padding="valid"), "x", X, "out", DY.shape,
     np.float32),
    ("conv2d_backward_input", conv.conv2d_backward_input,
     dict(kernel=K, input_shape=X.shape, strides=(1, 1), padding="valid"), "dy", DY, "out",
     X.shape, np.float32),
    ("conv2d_backward_weight", conv.conv2d_backward_weight,
     dict(x=X, kernel_shape=K.shape, strides=(1, 1), padding="valid"), "dy", DY, "dw", K.shape,
     np.float32),
    ("conv2d_maxpool_forward", conv.conv2d_maxpool_forward,
     dict(kernel=K, bias=None, strides=(1, 1), padding="valid", pool_size=(2, 2),
          pool_strides=(2, 2)), "x", X, "out", POOLED.shape, np.float32),
    ("conv2d_maxpool_forward argmax", conv.conv2d_maxpool_forward,
     dict(kernel=K, bias=None, strides=(1, 1), padding="valid", pool_size=(2, 2),
          pool_strides=(2, 2)), "x", X, "argmax", POOLED.shape, np.int32),
    ("conv2d_maxpool_backward", conv.conv2d_maxpool_backward,
     dict(x=X, pooled=POOLED, argmax=ARGMAX, kernel=K, strides=(1, 1), padding="valid",
          pool_size=(2, 2), pool_strides=(2, 2)), "dy", np.ones_like(POOLED), "dx", X.shape,
     np.float32),
    ("maxpool2d_forward", pool.maxpool2d_forward, dict(pool_size=(2, 2), strides=(2, 2),
                                                      padding="valid"), "x", X, "out",
     MP_OUT.shape, np.float32),
    ("maxpool2d_backward", pool.maxpool2d_backward, dict(argmax=MP_ARGMAX, input_shape=X.shape),
     "dy", MP_OUT, "out", X.shape, np.float32),
    ("maxpool2d_backward relu_output", pool.maxpool2d_backward,
     dict(dy=MP_OUT, argmax=MP_ARGMAX, input_shape=X.shape), "relu_output", MP_OUT, "out",
     X.shape, np.float32),
    ("avgpool2d_forward", pool.avgpool2d_forward, dict(pool_size=(2, 2), strides=(1, 1),
                                                      padding="same"), "x", X, "out", X.shape,
     np.float32),
    ("avgpool2d_backward", pool.avgpool2d_backward,
     dict(input_shape=X.shape, pool_size=(2, 2), strides=(1, 1), padding="same"), "dy", X, "out",
     X.shape, np.float32),
    ("sumpool2d_forward", pool.sumpool2d_forward, dict(pool_size=(3, 3), strides=(1, 1),
                                                      padding="same"), "x", X, "out", X.shape,
     np.float32),
    ("sumpool2d_backward", pool.sumpool2d_backward,
     dict(input_shape=X.shape, pool_size=(3, 3), strides=(1, 1), padding="same"), "dy", X, "out",
     X.shape, np.float32),
    ("global_avgpool2d_forward", pool.global_avgpool2d_forward, {}, "x", X, "out", (8, 1),
     np.float32),
    ("global_maxpool2d_forward", pool.global_maxpool2d_forward, {}, "x", X, "out", (8, 1),
     np.float32),
    ("remap2d_forward", remap.remap2d_forward, dict(rows=ROWS, cols=ROWS), "x", X, "out", X.shape,
     np.float32),
    ("remap2d_backward", remap.remap2d_backward, dict(rows=ROWS, cols=ROWS, input_shape=X.shape),
     "dy", X, "out", X.shape, np.float32),
    ("softmax_cross_entropy", loss.softmax_cross_entropy, dict(target=Y, grad_scale=1.0),
     "logits", LOGITS, "grad", LOGITS.shape, np.float32),
    ("sparse_softmax_cross_entropy", loss.sparse_softmax_cross_entropy,
     dict(labels=LABELS, grad_scale=1.0), "logits", LOGITS, "loss", (8,), np.float32),
    ("mean_squared_error target", loss.mean_squared_error, dict(y_pred=LOGITS, grad_scale=1.0),
     "target", Y, "grad", Y.shape, np.float32),
    ("binary_crossentropy", loss.binary_crossentropy, dict(target=Y, grad_scale=1.0),
     "y_pred", 1 / (1 + np.exp(-LOGITS)), "grad", Y.shape, np.float32),
    ("categorical_hinge", loss.categorical_hinge, dict(target=Y, grad_scale=1.0), "y_pred",
     LOGITS, "grad", Y.shape, np.float32),
    ("multiclass_hinge", loss.multiclass_hinge, dict(labels=LABELS, grad_scale=1.0), "scores",
     LOGITS, "grad", Y.shape, np.float32),
    ("batchnorm_forward_training", lambda **kw: normalization.batchnorm_forward_training(
        gamma=GAMMA, beta=BETA, momentum=0.9, epsilon=1e-3, **_bn_stats(), **kw), {}, "x", X,
     "out", X.shape, np.float32),
    ("batchnorm_forward_inference", lambda **kw: normalization.batchnorm_forward_inference(
        gamma=GAMMA, beta=BETA, epsilon=1e-3, **_bn_stats(), **kw), {}, "x", X, "out", X.shape,
     np.float32),
    ("batchnorm_backward", normalization.batchnorm_backward,
     dict(x=X, gamma=GAMMA, beta=BETA, mean=np.zeros(1, np.float32),
          inv_std=np.ones(1, np.float32),
          batch_stats=True, dgamma=np.zeros(1, np.float32), dbeta=np.zeros(1, np.float32)),
     "dy", X, "out", X.shape, np.float32, "dx"),
    ("pairwise_distances", distance.pairwise_distances, dict(yt=W, metric="l2"), "x",
     X.reshape(-1, 36)[:, :4], "out", (8, 3), np.float32),
    ("k_smallest", distance.k_smallest, dict(k=2), "dist", DIST, "out", (8, 2), np.float32),
]


def _overlapping(value, out_shape, out_dtype):
    """A copy of ``value`` and an output buffer of ``out_shape``, both C-contiguous, in one
    allocation: the output starts 8 bytes into the input."""
    value = np.ascontiguousarray(value, np.asarray(value).dtype)
    out_bytes = int(np.prod(out_shape)) * np.dtype(out_dtype).itemsize
    buf = np.zeros(value.nbytes + out_bytes + 8, np.uint8)
    a = buf[:value.nbytes].view(value.dtype).reshape(value.shape)
    a[...] = value
    return a, buf[8:8 + out_bytes].view(out_dtype).reshape(out_shape)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_overlapping_output_is_refused(case):
    _, fn, fixed, in_name, value, out_name, out_shape, out_dtype, *shown = case
    a, out = _overlapping(value, out_shape, out_dtype)
    shown = shown[0] if shown else out_name
    with pytest.raises(ValueError, match=f"Expected {shown} not to overlap {in_name}"):
        fn(**fixed, **{in_name: a, out_name: out})


def test_the_output_itself_is_refused_where_the_kernel_cannot_work_in_place():
    """The three calls of the report: each gave wrong values without an error."""
    x = RNG.standard_normal((8, 5)).astype(np.float32)
    square = RNG.standard_normal((5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="Expected out not to overlap x"):
        dense.dense_forward(x, square, None, out=x)
    with pytest.raises(ValueError, match="Expected out not to overlap dy"):
        dense.dense_backward_input(x, square, out=x)
    flip = ROWS[:, ::-1].copy()
    images = X.copy()
    with pytest.raises(ValueError, match="Expected out not to overlap x"):
        remap.remap2d_forward(images, flip, flip, out=images)
    assert np.array_equal(images, X)  # refused before the kernel ran


def test_outputs_are_refused_when_they_overlap_each_other():
    buf = np.zeros(8 * 3 + 3, np.float32)
    dw, db = buf[:12].reshape(4, 3), buf[10:13]
    with pytest.raises(ValueError, match="Expected db not to overlap dw"):
        dense.dense_backward_weight(X.reshape(-1, 36)[:, :4], LOGITS, dw=dw, db=db)
    part = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match=r"Expected outs\[1\] not to overlap outs\[0\]"):
        merge.concatenate_backward(LOGITS[:, :2].repeat(2, axis=1), [2, 2], outs=[part, part])


def test_disjoint_views_of_one_buffer_are_accepted():
    buf = np.zeros(2 * X.size, np.float32)
    a, out = buf[:X.size].reshape(X.shape), buf[X.size:].reshape(X.shape)
    a[...] = X
    got = pool.avgpool2d_forward(a, (2, 2), (1, 1), "same", out=out)
    assert got is out and np.array_equal(out, pool.avgpool2d_forward(X, (2, 2), (1, 1), "same"))


IN_PLACE = [
    ("relu forward", lambda a: activation.activation_forward("relu", a, out=a),
     lambda a: activation.activation_forward("relu", a)),
    ("softmax forward", lambda a: activation.activation_forward("softmax", a, out=a),
     lambda a: activation.activation_forward("softmax", a)),
    ("tanh backward out=y", lambda a: activation.activation_backward("tanh", a, LOGITS, out=a),
     lambda a: activation.activation_backward("tanh", a, LOGITS)),
    ("softmax backward out=dy",
     lambda a: activation.activation_backward("softmax", Y / 3 + 0.1, a, out=a),
     lambda a: activation.activation_backward("softmax", Y / 3 + 0.1, a)),
    ("dropout forward", lambda a: dropout.dropout_forward(a, 5, 0.5, out=a),
     lambda a: dropout.dropout_forward(a, 5, 0.5)),
    ("dropout backward", lambda a: dropout.dropout_backward(a, 5, 0.5, out=a),
     lambda a: dropout.dropout_backward(a, 5, 0.5)),
]


@pytest.mark.parametrize("in_place, apart", [c[1:] for c in IN_PLACE], ids=[c[0] for c in IN_PLACE])
def test_kernels_that_work_in_place_accept_the_input_as_output(in_place, apart):
    expected = apart(LOGITS.copy())
    a = LOGITS.copy()
    assert in_place(a) is a
    assert np.array_equal(a, expected)


def test_in_place_kernels_refuse_a_shifted_overlap():
    a, out = _overlapping(LOGITS, LOGITS.shape, np.float32)
    with pytest.raises(ValueError, match="Expected out not to overlap x other than as the very "
                                         "same array"):
        activation.activation_forward("relu", a, out=out)
    with pytest.raises(ValueError, match="Expected out not to overlap x other"):
        dropout.dropout_forward(a, 5, 0.5, out=out)
    with pytest.raises(ValueError, match="Expected y not to overlap x other"):
        regularization.axpy(0.5, a, out)


def test_axpy_accepts_y_as_x():
    y = LOGITS.copy()
    regularization.axpy(0.5, y, y)
    assert np.array_equal(y, LOGITS + np.float32(0.5) * LOGITS)

"""Bad arguments to the ops room (fastcnn._ops) are refused with a ValueError or TypeError that
names the argument and the value received; odd but valid arrays give exactly the result of a clean
float32 array. Each category is one parametrized test over (case id, call, exception, message
fragments); tests/api/test_validation.py holds the same categories for the public API.
"""
import numpy as np
import pytest

from fastcnn._ops import activation as activation_ops
from fastcnn._ops import conv as conv_ops
from fastcnn._ops import dense as dense_ops
from fastcnn._ops import dropout as dropout_ops
from fastcnn._ops import loss as loss_ops
from fastcnn._ops import optim as optim_ops
from fastcnn._ops import pool as pool_ops
from fastcnn._ops.checks import INDEX_LIMIT as LIMIT
from conftest import (DY, LABELS, LOGITS, K, W, X, Y, assert_refused, huge, odd_inputs, readonly,
                      refusal_cases)

ARGMAX = pool_ops.maxpool2d_forward(X, (2, 2), (2, 2), "valid")[1]


@refusal_cases(
    ("conv x rank", lambda: conv_ops.conv2d_forward(X[..., 0], K, None, (1, 1), "valid"), ValueError,
     ["x", "rank 4", "(8, 6, 6)"]),
    ("conv channels", lambda: conv_ops.conv2d_forward(np.repeat(X, 2, 3), K, None, (1, 1), "valid"),
     ValueError, ["x", "(8, 6, 6, 2)"]),
    ("conv kernel rank", lambda: conv_ops.conv2d_forward(X, K[0], None, (1, 1), "valid"), ValueError,
     ["kernel", "rank 4", "(3, 1, 2)"]),
    ("dense features", lambda: dense_ops.dense_forward(LOGITS, W, None), ValueError, ["x", "(8, 3)"]),
    ("pool rank", lambda: pool_ops.maxpool2d_forward(LOGITS, (2, 2), (2, 2), "valid"), ValueError,
     ["x", "rank 4", "(8, 3)"]),
)
def test_wrong_rank_or_shape(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("conv x", lambda: conv_ops.conv2d_forward(X.astype(complex), K, None, (1, 1), "valid"), TypeError,
     ["x", "complex128"]),
    ("conv kernel", lambda: conv_ops.conv2d_forward(X, K.astype(complex), None, (1, 1), "valid"), TypeError,
     ["kernel", "complex128"]),
    ("dense x", lambda: dense_ops.dense_forward(np.ones((2, 4), object), W, None), TypeError, ["x", "object"]),
    ("activation", lambda: activation_ops.activation_forward("relu", np.array(["a"])), TypeError, ["x", "<U1"]),
    ("sgd param", lambda: optim_ops.sgd_update([W.astype(complex)], [W], [W.copy()], 0.1, 0.0, False), TypeError,
     ["params[0]", "complex128"]),
)
def test_unsupported_dtype(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("softmax", lambda: activation_ops.activation_forward("softmax", np.zeros((3, 0), np.float32)), ValueError,
     ["x", "(3, 0)"]),
    ("cross-entropy", lambda: loss_ops.softmax_cross_entropy(np.zeros((3, 0), np.float32),
                                                           np.zeros((3, 0)), 1.0), ValueError,
     ["logits", "(3, 0)"]),
    ("conv kernel", lambda: conv_ops.conv2d_forward(X, K[:, :, :, :0], None, (1, 1), "valid"), ValueError,
     ["kernel", "(3, 3, 1, 0)"]),
)
def test_empty_arrays(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("sparse labels", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, LABELS[:7], 1.0), ValueError,
     ["labels", "(7,)"]),
    ("dense dW", lambda: dense_ops.dense_backward_weight(LOGITS, LOGITS[:7]), ValueError, ["dy", "(7, 3)"]),
)
def test_length_mismatch(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("target", lambda: loss_ops.softmax_cross_entropy(LOGITS, Y[:, :2], 1.0), ValueError,
     ["target", "(8, 2)", "(8, 3)"]),
    ("sparse labels rank", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, Y.astype(int), 1.0), ValueError,
     ["labels", "(8, 3)"]),
)
def test_targets_of_wrong_shape(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("too large", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, np.r_[LABELS[:7], 3], 1.0),
     ValueError, ["labels", "[0, 3)", "3"]),
    ("negative", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, np.r_[LABELS[:7], -4], 1.0),
     ValueError, ["labels", "-4"]),
    ("float", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, LABELS + 0.5, 1.0), TypeError,
     ["labels", "float64"]),
)
def test_sparse_labels_out_of_range(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("strides 0", lambda: conv_ops.conv2d_forward(X, K, None, (0, 1), "valid"), ValueError, ["strides", "(0, 1)"]),
    ("kernel larger", lambda: conv_ops.conv2d_forward(X[:, :2], K, None, (1, 1), "valid"), ValueError,
     ["kernel_size", "(3, 3)", "(2, 6)"]),
    ("pool_size 0", lambda: pool_ops.maxpool2d_forward(X, (0, 2), (1, 1), "valid"), ValueError,
     ["pool_size", "(0, 2)"]),
    ("pool larger", lambda: pool_ops.avgpool2d_forward(X, (9, 9), (1, 1), "valid"), ValueError,
     ["pool_size", "(9, 9)"]),
    ("pool huge", lambda: pool_ops.maxpool2d_forward(X, (2**40, 1), (1, 1), "same"), ValueError,
     ["pool_size", str(2**40)]),
    ("strides float", lambda: pool_ops.avgpool2d_forward(X, (2, 2), (1.5, 1), "valid"), ValueError,
     ["strides", "1.5"]),
)
def test_window_sizes(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("activation", lambda: activation_ops.activation_forward("no_such_activation", LOGITS), ValueError,
     ["activation", "'no_such_activation'"]),
    ("activation backward", lambda: activation_ops.activation_backward("gelu?", LOGITS, LOGITS), ValueError,
     ["activation", "'gelu?'"]),
    ("padding", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "full"), ValueError, ["padding", "'full'"]),
    ("pool padding", lambda: pool_ops.maxpool2d_forward(X, (2, 2), (2, 2), None), ValueError,
     ["padding", "None"]),
)
def test_unknown_names(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("conv x", lambda: conv_ops.conv2d_forward(huge(1, 46341, 46341, 1), K, None, (1, 1), "valid"), ValueError,
     ["x", "(1, 46341, 46341, 1)", str(LIMIT)]),
    ("conv padded x", lambda: conv_ops.conv2d_forward(huge(1, 46340, 46340, 1), K[..., :1], None, (1, 1),
                                                          "same"),
     ValueError, ["x", "46342", str(LIMIT)]),
    ("conv output", lambda: conv_ops.conv2d_forward(huge(1, 2048, 2048, 1), np.zeros((1, 1, 1, 1024),
                                                                                         np.float32),
                                                   None, (1, 1), "valid"), ValueError,
     ["output", "(1, 2048, 2048, 1024)", str(LIMIT)]),
    ("conv dy", lambda: conv_ops.conv2d_backward_weight(huge(1, 46341, 46341, 1), huge(1, 46339, 46339, 2),
                                                            (3, 3, 1, 2), (1, 1), "valid"), ValueError,
     ["x", "46341", str(LIMIT)]),
    ("pool", lambda: pool_ops.maxpool2d_forward(huge(1, 40000, 40000, 2), (2, 2), (2, 2), "valid"), ValueError,
     ["x", "(1, 40000, 40000, 2)"]),
    ("dense", lambda: dense_ops.dense_forward(huge(65536, 32768), np.zeros((32768, 1), np.float32), None),
     ValueError, ["x", "(65536, 32768)", str(LIMIT)]),
    ("dense weights", lambda: dense_ops.dense_forward(huge(1, 2**27), huge(2**27, 1), None), ValueError,
     ["kernel", str((2**27, 1))]),
    ("softmax", lambda: activation_ops.activation_forward("softmax", huge(1, 2**31)), ValueError,
     ["x", str(2**31)]),
)
def test_sizes_beyond_32_bit_indices(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("conv bias", lambda: conv_ops.conv2d_forward(X, K, np.zeros(3, np.float32), (1, 1), "valid"), ValueError,
     ["bias", "(3,)", "(2,)"]),
    ("conv out shape", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "valid", out=np.empty_like(X)),
     ValueError, ["out", "(8, 6, 6, 1)", "(8, 4, 4, 2)"]),
    ("conv out dtype", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "valid", out=np.empty(DY.shape)),
     ValueError, ["out", "float64"]),
    ("conv out strided", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "valid",
                                                         out=np.empty((8, 4, 4, 4), np.float32)[..., ::2]),
     ValueError, ["out", "contiguous"]),
    ("conv out read-only", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "valid", out=readonly(DY)),
     ValueError, ["out", "writeable"]),
    ("conv out list", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "valid", out=DY.tolist()), TypeError,
     ["out", "list"]),
    ("conv dX dy", lambda: conv_ops.conv2d_backward_input(DY[:, :3], K, X.shape, (1, 1), "valid"), ValueError,
     ["dy", "(8, 3, 4, 2)", "(8, 4, 4, 2)"]),
    ("conv dX input_shape", lambda: conv_ops.conv2d_backward_input(DY, K, (8, 6, 6, 3), (1, 1), "valid"),
     ValueError, ["input_shape", "(8, 6, 6, 3)"]),
    ("conv dX input_shape rank", lambda: conv_ops.conv2d_backward_input(DY, K, (6, 6, 1), (1, 1), "valid"),
     ValueError, ["input_shape", "(6, 6, 1)"]),
    ("conv dX input_shape negative", lambda: conv_ops.conv2d_backward_input(DY, K, (8, -6, 6, 1), (1, 1), "valid"),
     ValueError, ["input_shape", "-6"]),
    ("conv dW dy batch", lambda: conv_ops.conv2d_backward_weight(X, DY[:3], K.shape, (1, 1), "valid"), ValueError,
     ["dy", "(3, 4, 4, 2)"]),
    ("conv dW kernel_shape", lambda: conv_ops.conv2d_backward_weight(X, DY, (3, 3, 2, 2), (1, 1), "valid"),
     ValueError, ["x", "(3, 3, 2, 2)", "(8, 6, 6, 1)"]),
    ("conv dW db", lambda: conv_ops.conv2d_backward_weight(X, DY, K.shape, (1, 1), "valid",
                                                           db=np.zeros(5, np.float32)), ValueError, ["db", "(5,)"]),
    ("conv dW dw dtype", lambda: conv_ops.conv2d_backward_weight(X, DY, K.shape, (1, 1), "valid",
                                                                 dw=np.zeros(K.shape)), ValueError,
     ["dw", "float64"]),
    ("dense kernel rank", lambda: dense_ops.dense_forward(LOGITS, W[0], None), ValueError, ["kernel", "rank 2"]),
    ("dense dX dy", lambda: dense_ops.dense_backward_input(LOGITS[:, :2], W), ValueError, ["dy", "(8, 2)"]),
    ("dense dX out", lambda: dense_ops.dense_backward_input(LOGITS, W, out=np.empty((8, 3), np.float32)),
     ValueError, ["out", "(8, 3)", "(8, 4)"]),
    ("dense bias", lambda: dense_ops.dense_forward(LOGITS, W.T, np.zeros((4, 1), np.float32)), ValueError,
     ["bias", "rank 1"]),
    ("maxpool argmax shape", lambda: pool_ops.maxpool2d_backward(DY[:, :3, :3, :1], ARGMAX[:, :2], X.shape),
     ValueError, ["argmax", "(8, 2, 3, 1)", "(8, 3, 3, 1)"]),
    ("maxpool argmax dtype", lambda: pool_ops.maxpool2d_backward(DY[:, :3, :3, :1], ARGMAX.astype(np.int64),
                                                                 X.shape), TypeError, ["argmax", "int64"]),
    ("maxpool argmax range", lambda: pool_ops.maxpool2d_backward(DY[:, :3, :3, :1], ARGMAX + 30, X.shape),
     ValueError, ["argmax", "[0, 36)", "65"]),
    ("maxpool argmax negative", lambda: pool_ops.maxpool2d_backward(DY[:, :3, :3, :1], ARGMAX - 100, X.shape),
     ValueError, ["argmax", "-100"]),
    ("maxpool dy batch", lambda: pool_ops.maxpool2d_backward(DY[:2, :3, :3, :1], ARGMAX[:2], (4, 6, 6, 1)),
     ValueError, ["dy", "(2, 3, 3, 1)"]),
    ("avgpool dy", lambda: pool_ops.avgpool2d_backward(DY, X.shape, (2, 2), (2, 2), "valid"), ValueError,
     ["dy", "(8, 4, 4, 2)", "(8, 3, 3, 1)"]),
    ("activation dy", lambda: activation_ops.activation_backward("relu", LOGITS, LOGITS[:4]), ValueError,
     ["dy", "(4, 3)", "(8, 3)"]),
    ("dropout seed", lambda: dropout_ops.dropout_forward(LOGITS, -1, 0.5), ValueError, ["seed", "-1"]),
    ("dropout rate", lambda: dropout_ops.dropout_backward(LOGITS, 3, 1.0), ValueError, ["rate", "1.0"]),
    ("cross-entropy grad", lambda: loss_ops.softmax_cross_entropy(LOGITS, Y, 1.0, grad=np.empty((8, 2), np.float32)),
     ValueError, ["grad", "(8, 2)"]),
    ("cross-entropy loss", lambda: loss_ops.softmax_cross_entropy(LOGITS, Y, 1.0, loss=np.empty(8)), ValueError,
     ["loss", "float64"]),
    ("cross-entropy grad_scale", lambda: loss_ops.softmax_cross_entropy(LOGITS, Y, "1"), TypeError,
     ["grad_scale", "'1'"]),
    ("sgd grad", lambda: optim_ops.sgd_update([W.copy()], [W[:2]], [np.zeros_like(W)], 0.1, 0.9, False), ValueError,
     ["grads[0]", "(2, 3)"]),
    ("sgd velocities count", lambda: optim_ops.sgd_update([W.copy()], [W], [], 0.1, 0.9, False), ValueError,
     ["one velocities entry per param (1)", "received 0"]),
    ("sgd velocity", lambda: optim_ops.sgd_update([W.copy()], [W], [np.zeros(3, np.float32)], 0.1, 0.9, False), ValueError,
     ["velocities[0]", "(3,)"]),
    ("sgd velocity dtype", lambda: optim_ops.sgd_update([W.copy()], [W], [np.zeros(W.shape)], 0.1, 0.9, False), ValueError,
     ["velocities[0]", "float64"]),
    ("sgd param read-only", lambda: optim_ops.sgd_update([readonly(W)], [W], [np.zeros_like(W)], 0.1, 0.9, False),
     ValueError, ["params[0]", "writeable"]),
    ("sgd param strided", lambda: optim_ops.sgd_update([np.zeros((4, 6), np.float32)[:, ::2]], [W],
                                                       [np.zeros_like(W)], 0.1, 0.0, False), ValueError,
     ["params[0]", "contiguous"]),
    ("adam m", lambda: optim_ops.adam_update([W.copy()], [W], [np.zeros(2, np.float32)], [np.zeros_like(W)], None,
                                             1e-3, 0.9, 0.999, 1e-7, 1), ValueError, ["m[0]", "(2,)"]),
    ("adam step", lambda: optim_ops.adam_update([W.copy()], [W], [np.zeros_like(W)], [np.zeros_like(W)], None, 1e-3,
                                                0.9, 0.999, 1e-7, 0), ValueError, ["step", "0"]),
    ("adam v_hat", lambda: optim_ops.adam_update([W.copy()], [W], [np.zeros_like(W)], [np.zeros_like(W)],
                                                 [np.zeros(3, np.float32)], 1e-3, 0.9, 0.999, 1e-7, 1), ValueError,
     ["v_hat[0]"]),
    ("sgd grad_scale", lambda: optim_ops.sgd_update([W.copy()], [W], [np.zeros_like(W)], 0.1, 0.9, False,
                                                    grad_scale=[1.0, 2.0]), ValueError, ["grad_scale", "(2,)"]),
    ("sgd clip_value", lambda: optim_ops.sgd_update([W.copy()], [W], [np.zeros_like(W)], 0.1, 0.9, False,
                                                    clip_value=-1), ValueError, ["clip_value", "-1"]),
    ("accumulate mode", lambda: optim_ops.accumulate_gradients([W.copy()], [W], 3, 2), ValueError, ["mode", "3"]),
)
def test_ops_refuse_mismatched_arguments(call, exc, fragments):
    assert_refused(call, exc, fragments)


@pytest.mark.parametrize("kind", ["float", "uint8", "int32", "int64", "bool"])
def test_odd_but_valid_inputs_match_clean_float32(kind, tmp_path):
    clean, inputs = odd_inputs(kind, tmp_path)
    expected = conv_ops.conv2d_forward(clean, K, None, (1, 1), "same")
    for name, x in inputs.items():
        np.testing.assert_array_equal(conv_ops.conv2d_forward(x, K, None, (1, 1), "same"), expected,
                                      err_msg=f"{kind} {name}")


def test_remembered_geometry_still_refuses_equal_but_invalid_arguments():
    """The ops room works out each conv and pooling geometry once per distinct arguments;
    arguments that compare equal to remembered ones (2.0 == 2, True == 1) must still be refused."""
    good = conv_ops._conv_pool_geometry((8, 6, 6, 1), (3, 3, 1, 2), (1, 1), "valid", (2, 2), (2, 2))
    assert good == ((8, 2, 2, 2), 0, 0)
    assert conv_ops._conv_pool_geometry((8, 6, 6, 1), (3, 3, 1, 2), (1, 1), "valid", (2, 2), (2, 2)) is good
    for strides in [(1.0, 1.0), (True, True)]:
        with pytest.raises(ValueError, match="strides"):
            conv_ops._conv_pool_geometry((8, 6, 6, 1), (3, 3, 1, 2), strides, "valid", (2, 2), (2, 2))
        with pytest.raises(ValueError, match="strides"):
            pool_ops.maxpool2d_forward(X, (2, 2), strides, "valid")
    assert conv_ops._conv_pool_geometry((8, 6, 6, 1), (3, 3, 1, 2), [1, 1], "valid", (2, 2), (2, 2)) == good

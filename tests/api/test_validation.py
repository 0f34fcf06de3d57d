"""Bad inputs are refused with a ValueError or TypeError that names the argument and the value
received; odd but valid arrays give exactly the result of a clean float32 array; NaN and Inf never
crash. Each category is one parametrized test over (case id, call, exception, message fragments).
"""
import json
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses
from fastcnn._ops import activation as activation_ops
from fastcnn._ops import checks
from fastcnn._ops import conv as conv_ops
from fastcnn._ops import dense as dense_ops
from fastcnn._ops import dropout as dropout_ops
from fastcnn._ops import loss as loss_ops
from fastcnn._ops import optim as optim_ops
from fastcnn._ops import pool as pool_ops

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 6, 6, 1)).astype(np.float32)
LABELS = np.arange(8) % 3
Y = np.eye(3, dtype=np.float32)[LABELS]
K = RNG.standard_normal((3, 3, 1, 2)).astype(np.float32)  # HWIO: 6x6x1 -> 4x4x2
DY = RNG.standard_normal((8, 4, 4, 2)).astype(np.float32)
W = RNG.standard_normal((4, 3)).astype(np.float32)  # dense (in, out)
LOGITS = RNG.standard_normal((8, 3)).astype(np.float32)
LIMIT = checks.INDEX_LIMIT


def model(loss="categorical_crossentropy"):
    m = fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                            layers.MaxPooling2D(2), layers.Flatten(),
                            layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return m


def built(layer, x=X):
    layer(x)
    return layer


def huge(*shape):
    """A zero-stride view with ``shape``: enormous, yet costs no memory unless someone copies it."""
    return np.broadcast_to(np.float32(0), shape)


def readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def check(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{type(info.value).__name__}({message!r}) lacks {missing}"


def cases(*rows):
    return pytest.mark.parametrize("call, exc, fragments", [pytest.param(*r[1:], id=r[0]) for r in rows])


@cases(
    ("fit x rank", lambda: model().fit(X[..., 0], Y, verbose=0), ValueError, ["x", "(8, 6, 6)", "(6, 6, 1)"]),
    ("fit x channels", lambda: model().fit(np.repeat(X, 2, 3), Y, verbose=0), ValueError,
     ["x", "(8, 6, 6, 2)"]),
    ("evaluate x", lambda: model().evaluate(X[:, :5], Y, verbose=0), ValueError, ["x", "(8, 5, 6, 1)"]),
    ("predict no batch axis", lambda: model().predict(X[0], verbose=0), ValueError,
     ["x", "received (6, 6, 1)"]),
    ("predict scalar", lambda: model().predict(3.0, verbose=0), ValueError, ["x", "()"]),
    ("model call", lambda: model()(X[..., 0]), ValueError, ["x", "(8, 6, 6)"]),
    ("model call scalar", lambda: model()(np.float32(1)), ValueError, ["x", "()"]),
    ("x_val", lambda: model().fit(X, Y, validation_data=(X[:, :5], Y), verbose=0), ValueError,
     ["x_val", "(8, 5, 6, 1)"]),
    ("layer call built", lambda: built(layers.Conv2D(2, 3))(np.repeat(X, 2, 3)), ValueError,
     ["x", "(8, 6, 6, 2)", "(6, 6, 1)"]),
    ("layer call rank", lambda: layers.Conv2D(2, 3)(X[..., 0]), ValueError, ["input", "(6, 6)"]),
    ("layer call no batch axis", lambda: layers.Flatten()(np.float32(2)), ValueError, ["x", "()"]),
    ("dense on images", lambda: layers.Dense(3)(X), ValueError, ["input", "(6, 6, 1)", "Flatten"]),
    ("pool on vectors", lambda: layers.MaxPooling2D()(LOGITS), ValueError, ["input", "(3,)"]),
    ("build shape", lambda: fastcnn.Sequential([layers.Flatten()]).build((None, 6, 0, 1)), ValueError,
     ["input_shape", "(None, 6, 0, 1)"]),
    ("ops conv x rank", lambda: conv_ops.conv2d_forward(X[..., 0], K, None, (1, 1), "valid"), ValueError,
     ["x", "rank 4", "(8, 6, 6)"]),
    ("ops conv channels", lambda: conv_ops.conv2d_forward(np.repeat(X, 2, 3), K, None, (1, 1), "valid"),
     ValueError, ["x", "(8, 6, 6, 2)"]),
    ("ops conv kernel rank", lambda: conv_ops.conv2d_forward(X, K[0], None, (1, 1), "valid"), ValueError,
     ["kernel", "rank 4", "(3, 1, 2)"]),
    ("ops dense features", lambda: dense_ops.dense_forward(LOGITS, W, None), ValueError, ["x", "(8, 3)"]),
    ("ops pool rank", lambda: pool_ops.maxpool2d_forward(LOGITS, (2, 2), (2, 2), "valid"), ValueError,
     ["x", "rank 4", "(8, 3)"]),
)
def test_wrong_rank_or_shape(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("fit x complex", lambda: model().fit(X.astype(complex), Y, verbose=0), TypeError, ["x", "complex128"]),
    ("predict x object", lambda: model().predict(X.astype(object), verbose=0), TypeError, ["x", "object"]),
    ("predict x str", lambda: model().predict(np.full(X.shape, "a"), verbose=0), TypeError, ["x", "<U1"]),
    ("evaluate x bytes", lambda: model().evaluate(np.full(X.shape, b"a"), Y, verbose=0), TypeError,
     ["x", "|S1"]),
    ("fit y complex", lambda: model().fit(X, Y.astype(complex), verbose=0), TypeError, ["y", "complex128"]),
    ("fit y str", lambda: model().fit(X, Y.astype(str), verbose=0), TypeError, ["y", "<U32"]),
    ("sparse y str", lambda: model("sparse_categorical_crossentropy").fit(X, LABELS.astype(str), verbose=0),
     TypeError, ["y", "<U21"]),
    ("layer call complex", lambda: layers.Dense(3)(LOGITS.astype(np.complex64)), TypeError,
     ["x", "complex64"]),
    ("ops conv x", lambda: conv_ops.conv2d_forward(X.astype(complex), K, None, (1, 1), "valid"), TypeError,
     ["x", "complex128"]),
    ("ops conv kernel", lambda: conv_ops.conv2d_forward(X, K.astype(complex), None, (1, 1), "valid"), TypeError,
     ["kernel", "complex128"]),
    ("ops dense x", lambda: dense_ops.dense_forward(np.ones((2, 4), object), W, None), TypeError, ["x", "object"]),
    ("ops activation", lambda: activation_ops.activation_forward("relu", np.array(["a"])), TypeError, ["x", "<U1"]),
    ("ops sgd param", lambda: optim_ops.sgd_update([W.astype(complex)], [W], [W.copy()], 0.1, 0.0, False), TypeError,
     ["params[0]", "complex128"]),
    ("set_weights", lambda: built(layers.Dense(3), LOGITS).set_weights(
        [np.ones((3, 3), complex), np.ones(3)]), TypeError, ["kernel", "complex128"]),
)
def test_unsupported_dtype(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("fit", lambda: model().fit(X[:0], Y[:0], verbose=0), ValueError, ["x", "(0, 6, 6, 1)"]),
    ("evaluate", lambda: model().evaluate(X[:0], Y[:0], verbose=0), ValueError, ["x", "(0, 6, 6, 1)"]),
    ("predict", lambda: model().predict(X[:0], verbose=0), ValueError, ["x", "(0, 6, 6, 1)"]),
    ("predict list", lambda: model().predict([], verbose=0), ValueError, ["x", "(0,)"]),
    ("fit y", lambda: model().fit(X, Y[:0], verbose=0), ValueError, ["x", "y", "8", "0"]),
    ("layer call", lambda: layers.Dense(3)(np.zeros((0, 4))), ValueError, ["x", "(0, 4)"]),
    ("layer call features", lambda: layers.Dense(3)(np.zeros((2, 0))), ValueError, ["x", "(2, 0)"]),
    ("ops softmax", lambda: activation_ops.activation_forward("softmax", np.zeros((3, 0), np.float32)), ValueError,
     ["x", "(3, 0)"]),
    ("ops cross-entropy", lambda: loss_ops.softmax_cross_entropy(np.zeros((3, 0), np.float32),
                                                           np.zeros((3, 0)), 1.0), ValueError,
     ["logits", "(3, 0)"]),
    ("ops conv kernel", lambda: conv_ops.conv2d_forward(X, K[:, :, :, :0], None, (1, 1), "valid"), ValueError,
     ["kernel", "(3, 3, 1, 0)"]),
)
def test_empty_arrays(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("fit", lambda: model().fit(X, Y[:7], verbose=0), ValueError, ["x", "y", "8", "7"]),
    ("evaluate", lambda: model().evaluate(X[:5], Y, verbose=0), ValueError, ["x", "y", "5", "8"]),
    ("validation_data", lambda: model().fit(X, Y, validation_data=(X, Y[:3]), verbose=0), ValueError,
     ["x_val", "y_val", "8", "3"]),
    ("sparse", lambda: model("sparse_categorical_crossentropy").fit(X, LABELS[:6], verbose=0), ValueError,
     ["x", "y", "8", "6"]),
    ("loss call", lambda: losses.CategoricalCrossentropy()(Y[:5], LOGITS), ValueError,
     ["y_true", "y_pred", "5", "8"]),
    ("ops sparse labels", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, LABELS[:7], 1.0), ValueError,
     ["labels", "(7,)"]),
    ("ops dense dW", lambda: dense_ops.dense_backward_weight(LOGITS, LOGITS[:7]), ValueError, ["dy", "(7, 3)"]),
)
def test_length_mismatch(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("labels for one-hot", lambda: model().fit(X, LABELS, verbose=0), ValueError,
     ["y", "(8,)", "(samples, 3)"]),
    ("too many classes", lambda: model().fit(X, np.eye(4)[LABELS], verbose=0), ValueError, ["y", "(8, 4)"]),
    ("one-hot for sparse", lambda: model("sparse_categorical_crossentropy").fit(X, Y, verbose=0), ValueError,
     ["y", "(8, 3)"]),
    ("3-D targets", lambda: model().evaluate(X, Y[:, :, None], verbose=0), ValueError, ["y", "(8, 3, 1)"]),
    ("loss call", lambda: losses.CategoricalCrossentropy()(Y[:, :2], LOGITS), ValueError, ["y", "(8, 2)"]),
    ("ops target", lambda: loss_ops.softmax_cross_entropy(LOGITS, Y[:, :2], 1.0), ValueError,
     ["target", "(8, 2)", "(8, 3)"]),
    ("ops sparse labels rank", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, Y.astype(int), 1.0), ValueError,
     ["labels", "(8, 3)"]),
)
def test_targets_of_wrong_shape(call, exc, fragments):
    check(call, exc, fragments)


def sparse_fit(labels):
    return lambda: model("sparse_categorical_crossentropy").fit(X, labels, verbose=0)


@cases(
    ("too large", sparse_fit(np.r_[LABELS[:7], 3]), ValueError, ["y", "[0, 3)", "3"]),
    ("negative", sparse_fit(np.r_[LABELS[:7], -1]), ValueError, ["y", "[0, 3)", "-1"]),
    ("huge", sparse_fit(np.r_[LABELS[:7], 2**40]), ValueError, ["y", str(2**40)]),
    ("fractional", sparse_fit(np.r_[LABELS[:7], 1.5]), ValueError, ["y", "1.5"]),
    ("nan", sparse_fit(np.r_[LABELS[:7], np.nan]), ValueError, ["y", "nan"]),
    ("uint64 wraps negative", sparse_fit(np.array([*LABELS[:7], 2**63], np.uint64)), ValueError,
     ["y", str(2**63)]),
    ("bool", sparse_fit(LABELS.astype(bool)), TypeError, ["y", "bool"]),
    ("loss call", lambda: losses.SparseCategoricalCrossentropy()(np.r_[LABELS[:7], 5], LOGITS),
     ValueError, ["y", "5"]),
    ("ops too large", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, np.r_[LABELS[:7], 3], 1.0),
     ValueError, ["labels", "[0, 3)", "3"]),
    ("ops negative", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, np.r_[LABELS[:7], -4], 1.0),
     ValueError, ["labels", "-4"]),
    ("ops float", lambda: loss_ops.sparse_softmax_cross_entropy(LOGITS, LABELS + 0.5, 1.0), TypeError,
     ["labels", "float64"]),
)
def test_sparse_labels_out_of_range(call, exc, fragments):
    check(call, exc, fragments)


def fit_with(**kwargs):
    return lambda: model().fit(X, Y, verbose=0, **kwargs)


@cases(
    ("batch_size 0", fit_with(batch_size=0), ValueError, ["batch_size", "0"]),
    ("batch_size -1", fit_with(batch_size=-1), ValueError, ["batch_size", "-1"]),
    ("batch_size float", fit_with(batch_size=2.5), ValueError, ["batch_size", "2.5"]),
    ("batch_size str", fit_with(batch_size="32"), ValueError, ["batch_size", "'32'"]),
    ("batch_size bool", fit_with(batch_size=True), ValueError, ["batch_size", "True"]),
    ("epochs 0", fit_with(epochs=0), ValueError, ["epochs", "0"]),
    ("epochs -2", fit_with(epochs=-2), ValueError, ["epochs", "-2"]),
    ("validation_split 1", fit_with(validation_split=1.0), ValueError, ["validation_split", "1.0"]),
    ("validation_split negative", fit_with(validation_split=-0.1), ValueError, ["validation_split", "-0.1"]),
    ("validation_split nan", fit_with(validation_split=math.nan), ValueError, ["validation_split", "nan"]),
    ("validation_split leaves none", fit_with(validation_split=0.999), ValueError,
     ["validation_split", "0.999"]),
    ("evaluate batch_size", lambda: model().evaluate(X, Y, batch_size=0, verbose=0), ValueError,
     ["batch_size", "0"]),
    ("predict batch_size", lambda: model().predict(X, batch_size=-3, verbose=0), ValueError,
     ["batch_size", "-3"]),
    ("verbose", lambda: model().fit(X, Y, verbose=7), ValueError, ["verbose", "7"]),
)
def test_fit_arguments(call, exc, fragments):
    check(call, exc, fragments)


def on_model(*stack):
    return lambda: fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 1)), *stack])


@cases(
    ("kernel_size 0", lambda: layers.Conv2D(2, 0), ValueError, ["kernel_size", "0"]),
    ("kernel_size negative", lambda: layers.Conv2D(2, (3, -1)), ValueError, ["kernel_size", "(3, -1)"]),
    ("strides 0", lambda: layers.Conv2D(2, 3, strides=0), ValueError, ["strides", "0"]),
    ("filters 0", lambda: layers.Conv2D(0, 3), ValueError, ["filters", "0"]),
    ("units -1", lambda: layers.Dense(-1), ValueError, ["units", "-1"]),
    ("pool_size 0", lambda: layers.MaxPooling2D(0), ValueError, ["pool_size", "0"]),
    ("pool strides negative", lambda: layers.AveragePooling2D(2, strides=-1), ValueError, ["strides", "-1"]),
    ("pool_size pair", lambda: layers.MaxPooling2D((2, 0)), ValueError, ["pool_size", "(2, 0)"]),
    ("kernel larger than input", on_model(layers.Conv2D(2, 7)), ValueError, ["kernel_size", "(7, 7)", "(6, 6"]),
    ("pool larger than input", on_model(layers.MaxPooling2D(7)), ValueError, ["pool_size", "(7, 7)", "(6, 6"]),
    ("ops strides 0", lambda: conv_ops.conv2d_forward(X, K, None, (0, 1), "valid"), ValueError, ["strides", "(0, 1)"]),
    ("ops kernel larger", lambda: conv_ops.conv2d_forward(X[:, :2], K, None, (1, 1), "valid"), ValueError,
     ["kernel_size", "(3, 3)", "(2, 6)"]),
    ("ops pool_size 0", lambda: pool_ops.maxpool2d_forward(X, (0, 2), (1, 1), "valid"), ValueError,
     ["pool_size", "(0, 2)"]),
    ("ops pool larger", lambda: pool_ops.avgpool2d_forward(X, (9, 9), (1, 1), "valid"), ValueError,
     ["pool_size", "(9, 9)"]),
    ("ops pool huge", lambda: pool_ops.maxpool2d_forward(X, (2**40, 1), (1, 1), "same"), ValueError,
     ["pool_size", str(2**40)]),
    ("ops strides float", lambda: pool_ops.avgpool2d_forward(X, (2, 2), (1.5, 1), "valid"), ValueError,
     ["strides", "1.5"]),
)
def test_window_sizes(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("filters float", lambda: layers.Conv2D(2.5, 3), ValueError, ["filters", "2.5"]),
    ("units str", lambda: layers.Dense("3"), ValueError, ["units", "'3'"]),
    ("rate 1", lambda: layers.Dropout(1.0), ValueError, ["rate", "1.0"]),
    ("rate nan", lambda: layers.Dropout(math.nan), ValueError, ["rate", "nan"]),
    ("seed negative", lambda: layers.Dropout(0.5, seed=-1), ValueError, ["seed", "-1"]),
    ("seed str", lambda: layers.RandomFlip(seed="3"), ValueError, ["seed", "'3'"]),
    ("factor nan", lambda: layers.RandomTranslation(math.nan, 0.1), ValueError, ["height_factor", "nan"]),
    ("input shape", lambda: fastcnn.Input(shape=(6, 0)), ValueError, ["shape", "(6, 0)"]),
    ("input shape None", lambda: fastcnn.Input(shape=None), ValueError, ["shape", "None"]),
    ("input layer call", lambda: fastcnn.Input(shape=(6,))(LOGITS), TypeError, ["InputLayer", "called"]),
)
def test_layer_arguments(call, exc, fragments):
    check(call, exc, fragments)


def test_numpy_scalars_are_valid_layer_arguments():
    conv = layers.Conv2D(np.int64(2), np.int32(3), strides=np.int64(1))
    dense = layers.Dense(np.uint8(3))
    dropout = layers.Dropout(np.float32(0.25), seed=np.int64(4))
    for layer in (conv, dense, dropout):
        json.dumps(layer.get_config())  # plain Python numbers, so a model can be saved
    assert conv(X).shape == (8, 4, 4, 2) and dense(LOGITS).shape == (8, 3)


@cases(
    ("padding", lambda: layers.Conv2D(2, 3, padding="full"), ValueError, ["padding", "'full'"]),
    ("pool padding", lambda: layers.MaxPooling2D(padding=3), ValueError, ["padding", "3"]),
    ("activation", lambda: layers.Dense(3, activation="no_such_activation"), ValueError,
     ["activation", "'no_such_activation'"]),
    ("loss", lambda: model().compile(loss="no_such_loss"), ValueError, ["loss", "'no_such_loss'"]),
    ("optimizer", lambda: model().compile(optimizer="no_such_optimizer", loss="categorical_crossentropy"),
     ValueError, ["optimizer", "'no_such_optimizer'"]),
    ("metric", lambda: model().compile(loss="categorical_crossentropy", metrics=["no_such_metric"]),
     ValueError, ["metric", "'no_such_metric'"]),
    ("initializer", lambda: layers.Dense(3, kernel_initializer="no_such_init"), ValueError,
     ["initializer", "'no_such_init'"]),
    ("ops activation", lambda: activation_ops.activation_forward("no_such_activation", LOGITS), ValueError,
     ["activation", "'no_such_activation'"]),
    ("ops activation backward", lambda: activation_ops.activation_backward("gelu?", LOGITS, LOGITS), ValueError,
     ["activation", "'gelu?'"]),
    ("ops padding", lambda: conv_ops.conv2d_forward(X, K, None, (1, 1), "full"), ValueError, ["padding", "'full'"]),
    ("ops pool padding", lambda: pool_ops.maxpool2d_forward(X, (2, 2), (2, 2), None), ValueError,
     ["padding", "None"]),
)
def test_unknown_names(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("model count", lambda: model().set_weights([K, np.zeros(2), np.zeros((8, 3))]), ValueError,
     ["4", "3"]),
    ("model shape", lambda: model().set_weights([K[:, :, :, :1], np.zeros(2), np.zeros((8, 3)),
                                                 np.zeros(3)]), ValueError,
     ["kernel", "(3, 3, 1, 2)", "(3, 3, 1, 1)"]),
    ("layer count", lambda: built(layers.Dense(3), LOGITS).set_weights([np.zeros((3, 3))]), ValueError,
     ["2", "1"]),
    ("layer bias shape", lambda: built(layers.Dense(3), LOGITS).set_weights([np.zeros((3, 3)), np.zeros(4)]),
     ValueError, ["bias", "(3,)", "(4,)"]),
    ("layer object", lambda: built(layers.Dense(3), LOGITS).set_weights([np.zeros((3, 3), object),
                                                                         np.zeros(3)]),
     TypeError, ["kernel", "object"]),
)
def test_set_weights(call, exc, fragments):
    check(call, exc, fragments)


@cases(
    ("ops conv x", lambda: conv_ops.conv2d_forward(huge(1, 46341, 46341, 1), K, None, (1, 1), "valid"), ValueError,
     ["x", "(1, 46341, 46341, 1)", str(LIMIT)]),
    ("ops conv padded x", lambda: conv_ops.conv2d_forward(huge(1, 46340, 46340, 1), K[..., :1], None, (1, 1),
                                                          "same"),
     ValueError, ["x", "46342", str(LIMIT)]),
    ("ops conv output", lambda: conv_ops.conv2d_forward(huge(1, 2048, 2048, 1), np.zeros((1, 1, 1, 1024),
                                                                                         np.float32),
                                                   None, (1, 1), "valid"), ValueError,
     ["output", "(1, 2048, 2048, 1024)", str(LIMIT)]),
    ("ops conv dy", lambda: conv_ops.conv2d_backward_weight(huge(1, 46341, 46341, 1), huge(1, 46339, 46339, 2),
                                                            (3, 3, 1, 2), (1, 1), "valid"), ValueError,
     ["x", "46341", str(LIMIT)]),
    ("ops pool", lambda: pool_ops.maxpool2d_forward(huge(1, 40000, 40000, 2), (2, 2), (2, 2), "valid"), ValueError,
     ["x", "(1, 40000, 40000, 2)"]),
    ("ops dense", lambda: dense_ops.dense_forward(huge(65536, 32768), np.zeros((32768, 1), np.float32), None),
     ValueError, ["x", "(65536, 32768)", str(LIMIT)]),
    ("ops dense weights", lambda: dense_ops.dense_forward(huge(1, 2**27), huge(2**27, 1), None), ValueError,
     ["kernel", str((2**27, 1))]),
    ("ops softmax", lambda: activation_ops.activation_forward("softmax", huge(1, 2**31)), ValueError,
     ["x", str(2**31)]),
    ("layer call", lambda: layers.Conv2D(1, 3)(huge(1, 46341, 46341, 1)), ValueError,
     ["x", "(1, 46341, 46341, 1)", str(LIMIT)]),
    ("model input", lambda: fastcnn.Sequential([fastcnn.Input(shape=(46341, 46341, 1)), layers.Conv2D(1, 3)]),
     ValueError, ["input", "46341, 46341, 1)"]),
    ("layer output", lambda: fastcnn.Sequential([fastcnn.Input(shape=(1024, 1024, 1)),
                                                layers.Conv2D(4096, 3)]), ValueError,
     ["output", "1022, 1022, 4096)"]),
    ("predict", lambda: model().predict(huge(1, 46341, 46341, 1)), ValueError, ["x", "(1, 46341, 46341, 1)"]),
)
def test_sizes_beyond_32_bit_indices(call, exc, fragments):
    check(call, exc, fragments)


ARGMAX = pool_ops.maxpool2d_forward(X, (2, 2), (2, 2), "valid")[1]


@cases(
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
    ("adam m", lambda: optim_ops.adam_update([W.copy()], [W], [np.zeros(2, np.float32)], [np.zeros_like(W)], 1e-3,
                                             0.9, 0.999, 1e-7, 1), ValueError, ["m[0]", "(2,)"]),
    ("adam step", lambda: optim_ops.adam_update([W.copy()], [W], [np.zeros_like(W)], [np.zeros_like(W)], 1e-3, 0.9,
                                                0.999, 1e-7, 0), ValueError, ["step", "0"]),
)
def test_ops_refuse_mismatched_arguments(call, exc, fragments):
    check(call, exc, fragments)


# ---- odd but valid arrays ---------------------------------------------------------------------

def variants(a, tmp_path):
    """The values of ``a`` (or their float32 cast) in every container a user might hand over."""
    strided = np.zeros((*a.shape[:-1], a.shape[-1] * 2), a.dtype)[..., ::2]
    strided[...] = a
    mapped = np.memmap(tmp_path / "x.dat", dtype=a.dtype, mode="w+", shape=a.shape)
    mapped[...] = a
    mapped.flush()
    return {"strided": strided, "fortran": np.asfortranarray(a), "readonly": readonly(a),
            "memmap": np.memmap(tmp_path / "x.dat", dtype=a.dtype, mode="r", shape=a.shape),
            "float64": a.astype(np.float64), "reversed": a[::-1].copy()[::-1], "list": a.tolist()}


INTEGRAL = np.clip(np.round(X * 40 + 100), 0, 255).astype(np.float32)  # exact in every integer dtype


@pytest.mark.parametrize("kind", ["float", "uint8", "int32", "int64", "bool"])
def test_odd_but_valid_inputs_match_clean_float32(kind, tmp_path):
    clean = X if kind == "float" else (INTEGRAL > 100 if kind == "bool" else INTEGRAL).astype(np.float32)
    base = clean if kind == "float" else clean.astype(kind)
    reference = model()
    weights = reference.get_weights()
    reference.seed = 7
    reference.fit(clean, Y, batch_size=4, epochs=1, verbose=0)
    expected_weights = reference.get_weights()
    expected_predictions = reference.predict(clean, verbose=0)
    expected_conv = conv_ops.conv2d_forward(clean, K, None, (1, 1), "same")
    conv = layers.Conv2D(2, 3)
    expected_layer = conv(clean)
    for name, x in {"plain": base, **variants(base, tmp_path)}.items():
        m = model()
        m.set_weights(weights)
        m.seed = 7
        m.fit(x, Y, batch_size=4, epochs=1, verbose=0)
        for got, want in zip(m.get_weights(), expected_weights):
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} {name}: fit")
        np.testing.assert_array_equal(m.predict(x, verbose=0), expected_predictions, err_msg=f"{kind} {name}")
        np.testing.assert_array_equal(conv_ops.conv2d_forward(x, K, None, (1, 1), "same"), expected_conv,
                                      err_msg=f"{kind} {name}: ops")
        np.testing.assert_array_equal(conv(x), expected_layer, err_msg=f"{kind} {name}: layer call")


@pytest.mark.parametrize("targets", ["float64", "int64", "uint8", "strided", "readonly", "fortran"])
def test_odd_but_valid_targets_match(targets):
    make = {"float64": lambda y: y.astype(np.float64), "int64": lambda y: y.astype(np.int64),
            "uint8": lambda y: y.astype(np.uint8), "strided": lambda y: np.repeat(y, 2, 0)[::2],
            "readonly": readonly, "fortran": np.asfortranarray}[targets]
    for loss, y in (("categorical_crossentropy", Y), ("sparse_categorical_crossentropy", LABELS),
                    ("sparse_categorical_crossentropy", LABELS[:, None])):
        reference = model(loss)
        weights = reference.get_weights()
        reference.seed = 3
        expected = reference.fit(X, y, batch_size=4, verbose=0).history["loss"]
        m = model(loss)
        m.set_weights(weights)
        m.seed = 3
        assert m.fit(X, make(y), batch_size=4, verbose=0).history["loss"] == expected, (loss, targets)


# ---- NaN and Inf ------------------------------------------------------------------------------

def poisoned(value, where="x"):
    x, y = X.copy(), Y.copy()
    (x if where == "x" else y)[0] = value
    return x, y


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("value, where", [(np.nan, "x"), (np.inf, "x"), (-np.inf, "x"), (1e38, "x"),
                                          (np.nan, "y"), (np.inf, "y")])
def test_nan_and_inf_never_crash(loss, value, where):
    if where == "y" and loss.startswith("sparse"):
        pytest.skip("sparse labels refuse NaN and Inf (test_sparse_labels_out_of_range)")
    x, y = poisoned(value, where)
    m = model(loss)
    targets = y if loss.startswith("categorical") else LABELS
    history = m.fit(x, targets, batch_size=4, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    m.evaluate(x, targets, verbose=0)
    predictions = m.predict(x, verbose=0)
    assert predictions.shape == (8, 3)
    if where == "x" and not np.isfinite(value):
        assert np.isnan(predictions[0]).all() or not np.isfinite(m.get_weights()[0]).all()


def test_nan_weights_give_nan_predictions_not_a_crash():
    m = model()
    m.set_weights([np.full_like(w, np.nan) for w in m.get_weights()])
    assert np.isnan(m.predict(X, verbose=0)).all()
    m.fit(X, Y, verbose=0)
    m.set_weights([np.full_like(w, 1e30) for w in m.get_weights()])
    assert m.predict(X, verbose=0).shape == (8, 3)
    m.fit(X, Y, verbose=0)


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

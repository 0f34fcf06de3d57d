"""Bad inputs to the public API are refused with a ValueError or TypeError that names the
argument and the value received; odd but valid arrays give exactly the result of a clean float32
array; NaN and Inf never crash. Each category is one parametrized test over (case id, call,
exception, message fragments); tests/ops/test_checks_ops.py holds the same categories for the ops
room.
"""
import json
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses
from fastcnn._ops.checks import INDEX_LIMIT as LIMIT
from conftest import (LABELS, LOGITS, K, X, Y, assert_refused, huge, odd_inputs, readonly,
                      refusal_cases)


def model(loss="categorical_crossentropy"):
    m = fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                            layers.MaxPooling2D(2), layers.Flatten(),
                            layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return m


def called(layer, x=X):
    layer(x)
    return layer


@refusal_cases(
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
    ("layer call built", lambda: called(layers.Conv2D(2, 3))(np.repeat(X, 2, 3)), ValueError,
     ["input", "(8, 6, 6, 2)", "6, 6, 1)"]),
    ("layer call rank", lambda: layers.Conv2D(2, 3)(X[..., 0]), ValueError, ["input", "(8, 6, 6)"]),
    ("layer call no batch axis", lambda: layers.Flatten()(np.float32(2)), ValueError, ["x", "()"]),
    ("pool on vectors", lambda: layers.MaxPooling2D()(LOGITS), ValueError, ["input", "(8, 3)"]),
    ("build shape", lambda: fastcnn.Sequential([layers.Flatten()]).build((None, 6, 0, 1)), ValueError,
     ["input_shape", "(None, 6, 0, 1)"]),
)
def test_wrong_rank_or_shape(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
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
    ("set_weights", lambda: called(layers.Dense(3), LOGITS).set_weights(
        [np.ones((3, 3), complex), np.ones(3)]), TypeError, ["kernel", "complex128"]),
)
def test_unsupported_dtype(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("fit", lambda: model().fit(X[:0], Y[:0], verbose=0), ValueError, ["x", "(0, 6, 6, 1)"]),
    ("evaluate", lambda: model().evaluate(X[:0], Y[:0], verbose=0), ValueError, ["x", "(0, 6, 6, 1)"]),
    ("predict", lambda: model().predict(X[:0], verbose=0), ValueError, ["x", "(0, 6, 6, 1)"]),
    ("predict list", lambda: model().predict([], verbose=0), ValueError, ["x", "(0,)"]),
    ("fit y", lambda: model().fit(X, Y[:0], verbose=0), ValueError, ["x", "y", "8", "0"]),
    ("layer call", lambda: layers.Dense(3)(np.zeros((0, 4))), ValueError, ["x", "(0, 4)"]),
    ("layer call features", lambda: layers.Dense(3)(np.zeros((2, 0))), ValueError, ["x", "(2, 0)"]),
)
def test_empty_arrays(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("fit", lambda: model().fit(X, Y[:7], verbose=0), ValueError, ["x", "y", "8", "7"]),
    ("evaluate", lambda: model().evaluate(X[:5], Y, verbose=0), ValueError, ["x", "y", "5", "8"]),
    ("validation_data", lambda: model().fit(X, Y, validation_data=(X, Y[:3]), verbose=0), ValueError,
     ["x_val", "y_val", "8", "3"]),
    ("sparse", lambda: model("sparse_categorical_crossentropy").fit(X, LABELS[:6], verbose=0), ValueError,
     ["x", "y", "8", "6"]),
    ("loss call", lambda: losses.CategoricalCrossentropy()(Y[:5], LOGITS), ValueError,
     ["y_true", "y_pred", "5", "8"]),
)
def test_length_mismatch(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("labels for one-hot", lambda: model().fit(X, LABELS, verbose=0), ValueError,
     ["y", "(8,)", "(samples, 3)"]),
    ("too many classes", lambda: model().fit(X, np.eye(4)[LABELS], verbose=0), ValueError, ["y", "(8, 4)"]),
    ("one-hot for sparse", lambda: model("sparse_categorical_crossentropy").fit(X, Y, verbose=0), ValueError,
     ["y", "(8, 3)"]),
    ("3-D targets", lambda: model().evaluate(X, Y[:, :, None], verbose=0), ValueError, ["y", "(8, 3, 1)"]),
    ("loss call", lambda: losses.CategoricalCrossentropy()(Y[:, :2], LOGITS), ValueError, ["y", "(8, 2)"]),
)
def test_targets_of_wrong_shape(call, exc, fragments):
    assert_refused(call, exc, fragments)


def sparse_fit(labels):
    return lambda: model("sparse_categorical_crossentropy").fit(X, labels, verbose=0)


@refusal_cases(
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
)
def test_sparse_labels_out_of_range(call, exc, fragments):
    assert_refused(call, exc, fragments)


def fit_with(**kwargs):
    return lambda: model().fit(X, Y, verbose=0, **kwargs)


@refusal_cases(
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
    assert_refused(call, exc, fragments)


def on_model(*stack):
    return lambda: fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 1)), *stack])


@refusal_cases(
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
)
def test_window_sizes(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("filters float", lambda: layers.Conv2D(2.5, 3), ValueError, ["filters", "2.5"]),
    ("units str", lambda: layers.Dense("3"), ValueError, ["units", "'3'"]),
    ("rate 1", lambda: layers.Dropout(1.0), ValueError, ["rate", "1.0"]),
    ("rate nan", lambda: layers.Dropout(math.nan), ValueError, ["rate", "nan"]),
    ("seed negative", lambda: layers.Dropout(0.5, seed=-1), ValueError, ["seed", "-1"]),
    ("seed str", lambda: layers.RandomFlip(seed="3"), ValueError, ["seed", "'3'"]),
    ("factor nan", lambda: layers.RandomTranslation(math.nan, 0.1), ValueError, ["height_factor", "nan"]),
    ("input shape", lambda: fastcnn.Input(shape=(6, 0)), ValueError, ["shape", "(6, 0)"]),
    ("input shape None", lambda: fastcnn.Input(shape=None), ValueError, ["shape", "None"]),
    ("input tensor call", lambda: fastcnn.Input(shape=(6,))(LOGITS), TypeError,
     ["symbolic tensor", "cannot be called"]),
)
def test_layer_arguments(call, exc, fragments):
    assert_refused(call, exc, fragments)


def test_numpy_scalars_are_valid_layer_arguments():
    conv = layers.Conv2D(np.int64(2), np.int32(3), strides=np.int64(1))
    dense = layers.Dense(np.uint8(3))
    dropout = layers.Dropout(np.float32(0.25), seed=np.int64(4))
    for layer in (conv, dense, dropout):
        json.dumps(layer.get_config())  # plain Python numbers, so a model can be saved
    assert conv(X).shape == (8, 4, 4, 2) and dense(LOGITS).shape == (8, 3)


@refusal_cases(
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
)
def test_unknown_names(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
    ("model count", lambda: model().set_weights([K, np.zeros(2), np.zeros((8, 3))]), ValueError,
     ["4", "3"]),
    ("model shape", lambda: model().set_weights([K[:, :, :, :1], np.zeros(2), np.zeros((8, 3)),
                                                 np.zeros(3)]), ValueError,
     ["kernel", "(3, 3, 1, 2)", "(3, 3, 1, 1)"]),
    ("layer count", lambda: called(layers.Dense(3), LOGITS).set_weights([np.zeros((3, 3))]), ValueError,
     ["2", "1"]),
    ("layer bias shape", lambda: called(layers.Dense(3), LOGITS).set_weights([np.zeros((3, 3)), np.zeros(4)]),
     ValueError, ["bias", "(3,)", "(4,)"]),
    ("layer object", lambda: called(layers.Dense(3), LOGITS).set_weights([np.zeros((3, 3), object),
                                                                         np.zeros(3)]),
     TypeError, ["kernel", "object"]),
)
def test_set_weights(call, exc, fragments):
    assert_refused(call, exc, fragments)


@refusal_cases(
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
    assert_refused(call, exc, fragments)


# ---- odd but valid arrays ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["float", "uint8", "int32", "int64", "bool"])
def test_odd_but_valid_inputs_match_clean_float32(kind, tmp_path):
    clean, inputs = odd_inputs(kind, tmp_path)
    reference = model()
    weights = reference.get_weights()
    reference.seed = 7
    reference.fit(clean, Y, batch_size=4, epochs=1, verbose=0)
    expected_weights = reference.get_weights()
    expected_predictions = reference.predict(clean, verbose=0)
    conv = layers.Conv2D(2, 3)
    expected_layer = conv(clean)
    for name, x in inputs.items():
        m = model()
        m.set_weights(weights)
        m.seed = 7
        m.fit(x, Y, batch_size=4, epochs=1, verbose=0)
        for got, want in zip(m.get_weights(), expected_weights):
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} {name}: fit")
        np.testing.assert_array_equal(m.predict(x, verbose=0), expected_predictions, err_msg=f"{kind} {name}")
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

"""Regressions from the fuzzer's sweep of the public API (tests/api/fuzz_public_calls.py): each
call here once raised a raw exception (OverflowError, AttributeError, KeyError, IndexError,
ZeroDivisionError, a bare NotImplementedError) and must now be refused with ValueError or
TypeError naming the argument, or work as Keras does."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, metrics, optimizers, regularizers, schedules

VAST = 10**400  # an int too large for a float: float() of it raises OverflowError


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(learning_rate=VAST),
    lambda: optimizers.Adam(epsilon=VAST),
    lambda: optimizers.AdamW(weight_decay=VAST),
    lambda: optimizers.RMSprop(epsilon=VAST),
    lambda: regularizers.L2(VAST),
    lambda: layers.BatchNormalization(epsilon=VAST),
    lambda: layers.RandomTranslation(0.1, 0.1, fill_value=VAST),
    lambda: schedules.ExponentialDecay(VAST, 10, 0.5),
], ids=["sgd_lr", "adam_epsilon", "adamw_decay", "rmsprop_epsilon", "l2", "bn_epsilon",
        "fill_value", "schedule"])
def test_a_number_too_large_for_a_float_is_refused(make):
    with pytest.raises(ValueError, match=r"Expected .*, received \w+=1000000"):
        make()


def test_an_infinite_learning_rate_is_refused():
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=float("inf"))


def test_serializing_an_object_without_a_config_is_a_type_error():
    with pytest.raises(TypeError, match="get_config"):
        regularizers.serialize(2)


@pytest.mark.parametrize("call", [
    lambda: regularizers.Regularizer().get_config(),
    lambda: regularizers.Regularizer()(np.zeros(3, np.float32)),
    lambda: regularizers.Regularizer().add_gradient(np.zeros(3, np.float32),
                                                    np.zeros(3, np.float32)),
    lambda: optimizers.Optimizer(0.1).apply([], []),
], ids=["get_config", "call", "add_gradient", "apply"])
def test_the_abstract_bases_say_what_a_subclass_must_define(call):
    with pytest.raises(NotImplementedError, match="subclass"):
        call()


@pytest.mark.parametrize("cls", [optimizers.SGD, fastcnn.Sequential, fastcnn.Model, layers.Dense,
                                 regularizers.L2])
@pytest.mark.parametrize("config", [np.zeros(2), [("units", 2)], "units", None])
def test_from_config_refuses_what_is_not_a_dict(cls, config):
    with pytest.raises(TypeError, match="config"):
        cls.from_config(config)


@pytest.mark.parametrize("config", [[None, None], "x", 3])
def test_schedules_deserialize_refuses_what_is_not_a_dict(config):
    with pytest.raises(TypeError, match="deserialize"):
        schedules.deserialize(config)


def test_sequential_from_config_names_the_missing_key():
    with pytest.raises(ValueError, match="'layers'"):
        fastcnn.Sequential.from_config({})


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 0, 2)])
def test_add_weight_of_a_scalar_or_empty_shape_initializes_as_keras(shape):
    """Keras's fans: 1 for a scalar; the variance scaling divides by at least 1."""
    weight = layers.Dense(2).add_weight(shape=shape)
    assert weight.shape == shape and np.all(np.abs(weight) <= np.sqrt(3.0))


@pytest.mark.parametrize("threshold", [VAST, float("nan"), "0.5"])
def test_binary_accuracy_refuses_a_threshold_that_is_no_finite_number(threshold):
    """A vast int raised OverflowError in the comparison."""
    y = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="threshold"):
        metrics.binary_accuracy(y, y, threshold=threshold)


def test_fit_refuses_no_targets_for_an_output_with_a_loss():
    """An AttributeError on None once."""
    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, [layers.Dense(2, name="p")(inputs),
                                   layers.Dense(1, name="q")(inputs)])
    model.compile("sgd", loss=["mse", "mse"])
    x, y = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="'q'"):
        model.fit(x, {"p": y, "q": None}, verbose=0)


def test_resolve_accuracy_refuses_a_loss_name():
    """The model's Loss object, not its name (an AttributeError once)."""
    with pytest.raises(TypeError, match="loss"):
        metrics.resolve("accuracy", "categorical_hinge", (3,), (3,))


def test_resolve_accuracy_refuses_a_shape_without_axes():
    with pytest.raises(ValueError, match="output_shape"):
        metrics.resolve("accuracy", fastcnn.losses.get("mse"), (), (3,))


@pytest.mark.parametrize("shape", [(10**400,), (2**31, 2), (-1, 3)])
def test_add_weight_refuses_a_shape_no_kernel_can_index(shape):
    with pytest.raises(ValueError, match="shape"):
        layers.Dense(2).add_weight(shape=shape)


def test_a_dense_layer_too_wide_for_a_float_count_is_refused_when_built():
    with pytest.raises(ValueError, match="shape"):
        fastcnn.applications.convnet(classes=10**400)


@pytest.mark.parametrize("shape", [[], (), (4,), {"class_name": "Dense", "config": {}},
                                   (None, 3, None)])
def test_batch_normalization_build_refuses_a_shape_without_channels(shape):
    """Once an IndexError ([]), a KeyError (a dict) or a build on the batch axis ((4,))."""
    layer = layers.BatchNormalization()
    with pytest.raises((ValueError, TypeError), match="channels|input_shape"):
        layer.build(shape)
    assert not layer.built and not layer.weights


@pytest.mark.parametrize("method", ["apply", "slots_for", "has_slots", "set_slots"])
@pytest.mark.parametrize("weights", [np.broadcast_to(np.float32(0), (2**31, 3)), [1, 2]],
                         ids=["array", "ints"])
def test_optimizer_methods_refuse_what_is_no_list_of_weights(method, weights):
    """An array is not a list of weights: iterating a broadcast view of 2**31 rows, one
    weight per row, took minutes; set_slots of ints raised AttributeError."""
    args = (weights, [[]]) if method in ("apply", "set_slots") else (weights,)
    with pytest.raises(TypeError, match="weights"):
        getattr(optimizers.AdamW(), method)(*args)


@pytest.mark.parametrize("make", [layers.Flatten, lambda: layers.Dense(2),
                                  lambda: fastcnn.applications.mlp(), fastcnn.Sequential])
@pytest.mark.parametrize("shape", ["", np.array("a"), 5, [],
                                   np.broadcast_to(np.int64(1), (2**31, 3)), [(None, 3), "ab"]],
                         ids=["str", "0d", "int", "empty", "huge", "mixed"])
def test_compute_output_shape_and_build_refuse_what_is_no_shape(make, shape):
    """Once an IndexError (a string, a 0-d array) or minutes of iterating a broadcast view."""
    for method in ("compute_output_shape", "build"):
        with pytest.raises(TypeError, match="input_shape"):
            getattr(make(), method)(shape)


@pytest.mark.parametrize("make", [
    lambda m: fastcnn.callbacks.ModelCheckpoint("m.keras", monitor=m),
    lambda m: fastcnn.callbacks.EarlyStopping(monitor=m),
    lambda m: fastcnn.callbacks.ReduceLROnPlateau(monitor=m),
])
@pytest.mark.parametrize("monitor", [[], None, 3, ""])
def test_callbacks_refuse_a_monitor_that_is_not_a_name(make, monitor):
    with pytest.raises(TypeError, match="Expected monitor to be the name of a logged quantity"):
        make(monitor)


def test_save_model_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="Expected a model .* received Dense"):
        fastcnn.saving.save_model(fastcnn.layers.Dense(2), tmp_path / "x.keras")
    assert not list(tmp_path.iterdir())


def test_deeply_nested_lists_as_targets_are_refused_cleanly():
    """A list nested hundreds deep is data, not a structure of arrays: refused by its shape,
    not by Python's recursion limit."""
    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, layers.Dense(2)(inputs))
    model.compile("sgd", "mse")
    deep = []
    for _ in range(495):
        deep = [deep]
    with pytest.raises((ValueError, TypeError)):
        model.fit(np.zeros((1, 3), np.float32), deep, verbose=0)


def test_save_takes_a_bytes_path_and_refuses_a_null_byte(tmp_path):
    model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(2)])
    path = tmp_path / "model.keras"
    model.save(bytes(path))
    assert fastcnn.models.load_model(path).get_config() == model.get_config()
    with pytest.raises(ValueError):
        model.save(b"\x00")


# The fuzzer's huge argument: 2^31 x 3 floats that take no memory (a broadcast view), where a
# shape, a pair, a weight list, a scale or a weights path is expected. Each once raised MemoryError
# under a 2 GiB address space, from a tuple, list or object array of its rows, or an elementwise
# comparison with "imagenet".
HUGE = np.broadcast_to(np.float32(0), (2**31, 3))


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.Minimum(input_shape=HUGE), ValueError, "input_shape"),
    (lambda: layers.SeparableConv2D(2, kernel_size=HUGE), ValueError, "kernel_size"),
    (lambda: layers.Rescaling(scale=HUGE), ValueError, "scale"),
    (lambda: fastcnn.applications.MobileNetV2(weights=HUGE), TypeError, "weights"),
    (lambda: fastcnn.Sequential([layers.Dense(2)]).set_weights(HUGE), ValueError, "expects"),
], ids=["input_shape", "kernel_size", "rescaling_scale", "applications_weights", "set_weights"])
def test_a_huge_array_argument_is_refused_without_materialising_it(make, error, match):
    with pytest.raises(error, match=match):
        make()

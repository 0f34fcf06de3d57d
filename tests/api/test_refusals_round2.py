"""Round two of the fuzzer's findings (tests/api/fuzz.py), one test per class of finding: each
hostile argument is refused by name with a ValueError or TypeError at the public entry point,
before a kernel, an allocation or a loop over a vast array could meet it."""
import contextlib
import resource

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses, ops
from fastcnn._ops import checks, conv, dense, merge, normalization, optim, regularization, remap
from fastcnn.utils import PyDataset

from conftest import huge, readonly


@contextlib.contextmanager
def little_address_space(extra=2**30):
    """This process's address space limited to what it uses now plus ``extra`` bytes, so that
    an allocation the size of a vast view fails at once (MemoryError) instead of succeeding
    slowly on a large machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---- the ops room checks what its kernels would reject -------------------------------------

def test_remap_index_maps_are_checked_against_the_images():
    x = np.zeros((2, 3, 3, 1), np.float32)
    # a zero-size batch, and maps of another batch size: once the kernel's own ValueError
    with pytest.raises(ValueError, match=r"Expected rows of shape \(0, positions\)"):
        remap.remap2d_forward(np.zeros((0, 9, 4, 3), np.float32), np.zeros((3, 3), np.int32),
                              np.zeros((3, 2), np.int32))
    with pytest.raises(ValueError, match=r"Expected cols of shape \(2, positions\)"):
        remap.remap2d_forward(x, np.zeros((2, 3), np.int32), np.zeros((1, 3), np.int32))
    # the backward's maps must also match dy's height and width
    with pytest.raises(ValueError, match=r"Expected rows of shape \(2, 3\)"):
        remap.remap2d_backward(x, np.zeros((2, 4), np.int32), np.zeros((2, 3), np.int32),
                               x.shape)


def test_remap_indices_beyond_int32_are_refused_not_wrapped():
    """The int32 cast once wrapped 2**32 to 0: a silent read of pixel 0."""
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    rows = np.array([[0, 1, 2**32]], np.int64)
    with pytest.raises(ValueError, match=r"rows\[0, 2\] = 4294967296 is outside \[-1, 3\)"):
        remap.remap2d_forward(x, rows, np.zeros((1, 3), np.int64))


def test_kernel_flags_must_be_bools():
    """A kernel's bint took any object's truth ("no" is true) or raised NumPy's ambiguity."""
    x, k = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    for relu in (np.array([True, False]), "no", 1):
        with pytest.raises(TypeError, match="Expected relu to be a bool"):
            dense.dense_forward(x, k, None, relu=relu)
    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Expected nesterov to be a bool"):
        optim.sgd_update([p], [g], [np.zeros(3, np.float32)], 0.1, 0.9, "no")


@pytest.mark.parametrize("call, name", [
    (lambda p, g: optim.adadelta_update([p], [g], [p.copy()], [p.copy()], 0.1, 0.9, "0.1"),
     "epsilon"),
    (lambda p, g: optim.adam_update([p], [g], [p.copy()], [p.copy()], None, 10**5000, 0.9,
                                    0.99, 1e-7, 1), "learning_rate"),
    (lambda p, g: optim.moving_average([p], [g], "0.5"), "momentum"),
    (lambda p, g: optim.lion_update([p], [g], [p.copy()], 0.1, 0.9, 0.99,
                                    clip_value=np.ones(2)), "clip_value"),
    (lambda p, g: regularization.add_sign("0.1", g, p), "alpha"),
    (lambda p, g: regularization.axpy(np.nan, g, p), "alpha"),
], ids=["adadelta", "adam", "moving_average", "lion", "add_sign", "axpy"])
def test_hyper_parameters_are_finite_numbers_before_the_kernel(call, name):
    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match=f"Expected {name} to be a finite number"):
        call(p, g)
    assert not p.any()


def test_batch_normalization_refuses_read_only_buffers_it_updates():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="Expected moving_mean to be writeable"):
        normalization.batchnorm_forward_training(x, gamma, beta, readonly(np.zeros(3, np.float32)),
                                                 np.ones(3, np.float32), 0.9, 1e-3)
    with pytest.raises(ValueError, match="Expected epsilon to be a finite number"):
        normalization.batchnorm_forward_inference(x, gamma, beta, np.zeros(3, np.float32),
                                                  np.ones(3, np.float32), "1e-3")


# ---- vast views: refused before a loop over them, not after minutes ---------------------------

def test_vast_views_are_refused_before_they_are_iterated():
    with pytest.raises(TypeError, match="Expected shapes to be a tuple of shape tuples"):
        merge.broadcast_layout(np.broadcast_to(np.int64(3), (2**31, 3)))
    # an index map of billions of positions over images with no channels: the kernel's check
    # of each index once ran for minutes
    rows = np.broadcast_to(np.int32(0), (4, 6 * 2**30))
    with pytest.raises(ValueError, match="Expected rows with at most"):
        remap.remap2d_forward(np.zeros((4, 4, 3, 0), np.float32), rows, np.zeros((4, 1), np.int32))


def test_a_broadcast_index_map_is_checked_once_per_stored_value():
    """A valid map shared by every image is a broadcast view; its check reads it once."""
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 1)
    rows = np.broadcast_to(np.array([[2, 1, 0]], np.int32), (2, 3))
    cols = np.broadcast_to(np.array([[0, -1, 2]], np.int32), (2, 3))
    assert checks.distinct_view(rows).shape == (1, 3)
    out = remap.remap2d_forward(x, rows, cols, fill_value=-5.0)
    expected = x[:, [2, 1, 0]][:, :, [0, 0, 2]]
    expected[:, :, 1] = -5.0
    np.testing.assert_array_equal(out, expected)


# ---- option arguments compared or unpacked whole -----------------------------------------------

VAST = huge(2**31, 3)  # 6 GiB as bools, 24 GiB as float32; held in no memory


@pytest.mark.parametrize("call", [
    lambda: merge.elementwise_forward(VAST, [np.ones(3, np.float32)]),
    lambda: ops.transpose(np.ones((2, 3)), axes=VAST),
    lambda: ops.tile(np.ones(3), VAST),
    lambda: ops.round(np.ones(3), decimals=VAST),
    lambda: ops.pad(np.ones(3), 1, mode=VAST),
    lambda: ops.conv(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), padding=VAST),
    lambda: ops.depthwise_conv(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)),
                               dilation_rate=VAST),
    lambda: ops.categorical_crossentropy(np.ones((2, 3)), np.ones((2, 3)), axis=VAST),
    lambda: ops.arange(VAST),
    lambda: fastcnn.config.set_epsilon(VAST),
    lambda: fastcnn.callbacks.ModelCheckpoint("m.keras", save_freq=VAST),
    lambda: fastcnn.callbacks.CallbackList(VAST, None, {}),
    lambda: fastcnn.initializers.initialize("zeros", VAST),
    lambda: layers.Normalization(axis=VAST),
    lambda: losses.BinaryFocalCrossentropy(axis=VAST),
    lambda: fastcnn.utils.image_dataset_from_directory("missing", labels=VAST),
    lambda: fastcnn.callbacks.EarlyStopping(min_delta=VAST),
    lambda: fastcnn.callbacks.EarlyStopping(mode=VAST),
    lambda: fastcnn.utils.to_categorical([0, 1], num_classes=VAST),
    lambda: optim.accumulate_gradients([np.zeros(3, np.float32)], [np.ones(3, np.float32)],
                                       VAST, 1),
    lambda: optim.sgd_update([np.zeros(3, np.float32)], [np.ones(3, np.float32)],
                             [np.zeros(3, np.float32)], 0.1, 0.9, False, decay=VAST),
    lambda: fastcnn.regularizers.L1L2(0.1, 0.1).add_gradient(
        np.ones(3, np.float32), np.zeros(3, np.float32), VAST),
    lambda: ops.pad(np.ones(3), VAST),
    lambda: ops.clip(np.ones(3), VAST, lambda: 1),
    lambda: conv.transpose_output_size(2, VAST, 1, "same", None, 1),
], ids=["merge-op", "transpose", "tile", "round", "pad", "conv", "depthwise", "crossentropy",
        "arange", "set_epsilon", "ModelCheckpoint", "CallbackList", "initialize",
        "Normalization", "BinaryFocalCrossentropy", "image_dataset_from_directory",
        "EarlyStopping-min_delta", "EarlyStopping-mode", "to_categorical", "accumulate",
        "sgd-decay", "add_gradient", "pad_width", "clip", "transpose_output_size"])
def test_vast_option_arguments_are_refused_without_a_vast_allocation(call):
    """Each once compared the view elementwise (`in`, `!=`) or unpacked it row by row: a
    MemoryError, or minutes."""
    with little_address_space():
        with pytest.raises((ValueError, TypeError)):
            call()


@pytest.mark.parametrize("call", [
    lambda: ops.isnan(VAST), lambda: ops.add(VAST, 1.0), lambda: ops.convert_to_numpy(VAST),
    lambda: ops.stack(VAST), lambda: ops.concatenate(VAST),
    lambda: ops.split(np.zeros(0), 2**63), lambda: ops.split(np.zeros(3), VAST),
    lambda: fastcnn.utils.to_categorical(VAST),
    lambda: fastcnn.utils.img_to_array(VAST), lambda: fastcnn.utils.save_img("x.png", VAST),
], ids=["isnan", "add", "convert_to_numpy", "stack", "concatenate", "split", "split-indices",
        "to_categorical",
        "img_to_array", "save_img"])
def test_results_that_cannot_fit_are_refused_saying_how_much_they_need(call):
    with little_address_space():
        with pytest.raises(ValueError, match="to fit in memory"):
            call()


def test_available_memory_counts_the_address_space_limit():
    with little_address_space(extra=2**29):
        assert checks.available_memory() <= 2**29


# ---- numbers beyond a float --------------------------------------------------------------------

def test_ints_beyond_a_float_are_refused_as_numbers():
    """Each once raised OverflowError (float()), or a ValueError about printing the int."""
    y = np.full((4, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"delta=<an int of 16610 bits>"):
        losses.huber(y, y, 10**5000)
    with pytest.raises(ValueError, match="Expected alpha to be a finite number"):
        losses.categorical_focal_crossentropy(y, y, 10**5000)
    assert checks.real_number(10**308, "v") == 1e308
    with pytest.raises(ValueError, match="Expected v to be a finite number"):
        checks.real_number(2**1024, "v")
    variable = layers.Dense(2).add_weight((3,), "zeros")
    with pytest.raises(ValueError, match="int64's range"):
        variable.assign(10**5000)
    assert not variable.any()


def test_one_hot_losses_refuse_outputs_without_classes():
    """Once a ZeroDivisionError (label smoothing's 1 / classes)."""
    with pytest.raises(ValueError, match="at least one class"):
        losses.categorical_crossentropy(y_true=(), y_pred=[])


# ---- data sources --------------------------------------------------------------------------------

class Counted(PyDataset):
    """Batches of 2 images; ``__len__`` says ``count``, whatever it holds."""

    def __init__(self, count):
        super().__init__()
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        return rng.standard_normal((2, 4)).astype(np.float32), np.eye(3, dtype=np.float32)[:2]


def small_model():
    model = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", loss="categorical_crossentropy")
    return model


@pytest.mark.parametrize("count", [2**63, -1, "3", True, 1.5])
def test_a_pydataset_count_that_is_no_count_is_refused_by_name(count):
    """len() once raised its own OverflowError, or errors that do not name the dataset."""
    with pytest.raises(ValueError, match="Expected x's number of batches to be a positive int"):
        small_model().fit(Counted(count if count != 2**63 else -2**63), verbose=0)
    if count == 2**63:  # a vast count is a count: fit takes the steps it is told to
        history = small_model().fit(Counted(count), steps_per_epoch=2, shuffle=False, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        with pytest.raises(ValueError, match="shuffled order of its batches"):  # not allocated
            small_model().fit(Counted(count), steps_per_epoch=2, verbose=0)

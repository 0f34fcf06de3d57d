"""Data too large for the machine's memory is refused before any work, with a ValueError that
says how much the float32 copy (and predict's outputs) would need: a broadcast view can claim
2**31 images while holding one."""
import numpy as np
import pytest

import fastcnn
from fastcnn._ops import activation, checks

HUGE = 2**31
IMAGE = np.zeros((1, 28, 28, 1), np.float32)


def _model():
    model = fastcnn.Sequential([fastcnn.Input(shape=(28, 28, 1)), fastcnn.layers.Flatten(),
                                fastcnn.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def _huge(a):
    return np.broadcast_to(a, (HUGE, *a.shape[1:]))


# 2**31 float32 images of 28x28: 784 * 4 * 2**31 bytes; their 10 float32 outputs, or one-hot
# targets: 80 GiB.
COPY = r"a float32 copy of {} \(6\.1 TiB\)"


def test_calling_a_model_on_a_broadcast_view_of_2_31_images_is_refused():
    model = _model()
    with pytest.raises(ValueError, match=rf"Expected inputs to fit in memory: "
                                         rf"{COPY.format('inputs')}.* available"):
        model(_huge(IMAGE))


@pytest.mark.parametrize("call, what", [
    (lambda m: m.predict(_huge(IMAGE), verbose=0), r"x to fit in memory: .*the float32 outputs "
                                                   r"\(80\.0 GiB\)"),
    (lambda m: m.fit(_huge(IMAGE), _huge(np.eye(10, dtype=np.float32)[:1]), verbose=0),
     r"y to fit in memory: a C-contiguous float32 copy of y \(80\.0 GiB\)"),
    (lambda m: m.evaluate(_huge(IMAGE), _huge(np.eye(10, dtype=np.float32)[:1]), verbose=0),
     r"y to fit in memory: a C-contiguous float32 copy of y \(80\.0 GiB\)"),
], ids=["predict", "fit", "evaluate"])
def test_fit_evaluate_predict_count_what_they_allocate(monkeypatch, call, what):
    """x is converted one batch at a time, so a broadcast view of 2**31 images costs batch
    buffers; predict's outputs and the targets the losses take are allocated whole."""
    monkeypatch.setattr(checks, "available_memory", lambda: 40 * 2**30)
    model = _model()
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=rf"Expected {what}.* available"):
        call(model)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_predict_counts_its_outputs(monkeypatch):
    """predict returns the outputs for all of x at once, so they count with its batch buffers
    (none for float32 C-contiguous x, whose batches are views of it)."""
    x = np.zeros((100, 28, 28, 1), np.float32)
    monkeypatch.setattr(checks, "MEMORY_CHECK_BYTES", 0)
    monkeypatch.setattr(checks, "available_memory", lambda: 3999)
    with pytest.raises(ValueError, match=r"x to fit in memory: the float32 outputs \(3\.9 KiB\)"):
        _model().predict(x, verbose=0)
    monkeypatch.setattr(checks, "available_memory", lambda: 4000)
    assert _model().predict(x, verbose=0).shape == (100, 10)
    # uint8 images: three batches of float32 buffers besides the outputs
    buffers = 3 * 32 * 28 * 28 * 4
    monkeypatch.setattr(checks, "available_memory", lambda: 4000 + buffers - 1)
    with pytest.raises(ValueError, match=r"the batch buffers \(294\.0 KiB\) and the float32 "
                                         r"outputs"):
        _model().predict(x.astype(np.uint8), verbose=0)
    monkeypatch.setattr(checks, "available_memory", lambda: 4000 + buffers)
    assert _model().predict(x.astype(np.uint8), verbose=0).shape == (100, 10)


def test_the_ops_refuse_a_copy_larger_than_memory():
    with pytest.raises(ValueError, match=r"Expected x to fit in memory: a C-contiguous float32 "
                                         r"copy of x \(6\.1 TiB\)"):
        activation.activation_forward("relu", _huge(IMAGE.reshape(1, -1)))

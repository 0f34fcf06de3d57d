"""callbacks.TensorBoard: the event files read back by the tensorboard package's own readers,
with Keras's run folders, tags and steps."""
import glob
import os

import numpy as np
import pytest

import fastcnn
from fastcnn.callbacks import TensorBoard
from fastcnn.callbacks import _event_file as event_file
from fastcnn.optimizers import schedules

tensorboard = pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator, event_file_loader  # noqa: E402


def _read(run_dir):
    accumulator = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator, tag):
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def _fit(log_dir, epochs=3, **options):
    fastcnn.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((24, 4)).astype(np.float32)
    y = rng.standard_normal((24, 2)).astype(np.float32)
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), fastcnn.layers.Dense(3, name="hidden"),
                                fastcnn.layers.Dense(2, name="out")])
    schedule = schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5)
    model.compile(optimizer=fastcnn.optimizers.SGD(schedule), loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, validation_data=(x, y),
                        callbacks=[TensorBoard(log_dir, **options)])
    return model, history, schedule


def test_epoch_scalars_in_train_and_validation_runs(tmp_path):
    model, history, schedule = _fit(str(tmp_path))
    train, validation = _read(str(tmp_path / "train")), _read(str(tmp_path / "validation"))
    assert sorted(train.Tags()["scalars"]) == ["epoch_learning_rate", "epoch_loss"]
    # fit's validation fires on_test_end, which logs the evaluation against the update count,
    # as Keras's callback does
    assert sorted(validation.Tags()["scalars"]) == ["epoch_loss", "evaluation_loss_vs_iterations"]
    assert _scalars(validation, "evaluation_loss_vs_iterations") == list(
        zip(range(3, 10, 3), [float(np.float32(v)) for v in history.history["val_loss"]]))
    f32 = lambda values: [float(np.float32(v)) for v in values]  # noqa: E731  simple_value is a float
    assert _scalars(train, "epoch_loss") == list(zip(range(3), f32(history.history["loss"])))
    assert _scalars(validation, "epoch_loss") == list(zip(range(3),
                                                          f32(history.history["val_loss"])))
    # the rate of the next update at each epoch's end: 3 updates per epoch
    assert _scalars(train, "epoch_learning_rate") == list(
        zip(range(3), f32(schedule(3 * (e + 1)) for e in range(3))))
    assert train.Tags()["histograms"] == []


@pytest.mark.parametrize("update_freq,steps", [("batch", list(range(1, 10))), (2, [2, 4, 6, 8]),
                                               ("epoch", [])])
def test_batch_scalars_every_update_freq_batches(update_freq, steps, tmp_path):
    _fit(str(tmp_path), update_freq=update_freq)
    train = _read(str(tmp_path / "train"))
    if not steps:
        assert "batch_loss" not in train.Tags()["scalars"]
        return
    assert [s for s, _ in _scalars(train, "batch_loss")] == steps


def test_weight_histograms_every_histogram_freq_epochs(tmp_path):
    model, _, _ = _fit(str(tmp_path), epochs=3, histogram_freq=2)
    train = _read(str(tmp_path / "train"))
    tags = sorted(train.Tags()["histograms"])
    assert tags == ["hidden/bias/histogram", "hidden/kernel/histogram", "out/bias/histogram",
                    "out/kernel/histogram"]
    kernel = model.layers[-1].weights[0]
    events = train.Histograms("out/kernel/histogram")
    assert [e.step for e in events] == [0, 2]
    last = events[-1].histogram_value  # written at the end of the last epoch: the final weights
    assert last.num == kernel.size and sum(last.bucket) == kernel.size
    assert last.min == pytest.approx(kernel.min()) and last.max == pytest.approx(kernel.max())
    assert last.sum == pytest.approx(kernel.sum(dtype=np.float64))
    assert last.sum_squares == pytest.approx(np.sum(kernel.astype(np.float64) ** 2))
    assert list(last.bucket) == list(np.histogram(kernel, bins=30)[0])


def test_the_file_opens_with_its_version_and_frames_check(tmp_path):
    _fit(str(tmp_path), epochs=1)
    (path,) = glob.glob(os.path.join(str(tmp_path), "train", "events.out.tfevents.*"))
    events = list(event_file_loader.EventFileLoader(path).Load())
    assert events[0].file_version == "brain.Event:2"
    assert events[1].summary.value[0].tag.startswith("epoch_")
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
    rng = np.random.default_rng(0)
    for n in (0, 1, 8, 100):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert event_file.masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)
    assert event_file.crc32c(b"123456789") == 0xE3069283  # CRC-32C's check value


@pytest.mark.parametrize("kwargs,match", [
    ({"update_freq": 0}, "update_freq"),
    ({"update_freq": "epochs"}, "update_freq"),
    ({"histogram_freq": -1}, "histogram_freq"),
    ({"write_images": True}, "write_images"),
])
def test_bad_arguments_are_refused(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        TensorBoard(str(tmp_path), **kwargs)

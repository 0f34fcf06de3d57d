"""steps_per_epoch as Keras 3 reads it: the epochs take turns reading one pass over arrays or a
PyDataset, steps_per_epoch batches each; the epoch that reaches the end of the data stops there
(shorter), and the next starts a new pass, in a new order. An endless PyDataset is one pass that
never ends. BackupAndRestore brings the position in the pass back, bitwise."""
import warnings

import numpy as np
import pytest
from conftest import Crash, crash_after

import fastcnn
from fastcnn import layers
from fastcnn.data_adapters import epoch_order

N, BATCH = 40, 8  # 5 batches a pass


def _model(dropout=False):
    fastcnn.utils.set_random_seed(3)
    stack = [fastcnn.Input((6,)), layers.Dense(8, activation="relu")]
    stack += [layers.Dropout(0.3)] if dropout else []
    model = fastcnn.Sequential(stack + [layers.Dense(3, activation="softmax")])
    model.compile(fastcnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["acc"])
    return model


def _data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((N, 6)).astype(np.float32), rng.integers(0, 3, N)


class StepsPerEpoch(fastcnn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.counts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.counts.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.counts[-1] += 1


class Recorded(fastcnn.utils.PyDataset):
    """Batches of (x, y) that record the indices fit asks for; ``endless``: no length."""

    def __init__(self, x, y, endless=False):
        super().__init__(workers=1, max_queue_size=1)
        self.x, self.y, self.endless, self.asked = x, y, endless, []

    @property
    def num_batches(self):
        return None if self.endless else N // BATCH

    def __getitem__(self, i):
        self.asked.append(i)
        i %= N // BATCH
        return self.x[i * BATCH:(i + 1) * BATCH], self.y[i * BATCH:(i + 1) * BATCH]


def _by_hand(order_of_batches, x, y):
    """The weights after train_on_batch on the given batches (lists of sample indices)."""
    model = _model()
    for rows in order_of_batches:
        model.train_on_batch(x[rows], y[rows])
    return model.get_weights()


def test_epochs_take_turns_through_one_pass_of_arrays():
    """5 batches, steps_per_epoch=2: the epochs take batches [0, 1], [2, 3], [4] (the end of
    the pass), then a new pass [0, 1], [2, 3], [4]; trained in that order, batch by batch."""
    x, y = _data()
    model, steps = _model(), StepsPerEpoch()
    with pytest.warns(UserWarning, match="steps_per_epoch=2 does not divide the 5 batches"):
        model.fit(x, y, batch_size=BATCH, epochs=6, steps_per_epoch=2, shuffle=False,
                  callbacks=[steps], verbose=0)
    assert steps.counts == [2, 2, 1, 2, 2, 1]
    batches = [np.arange(b * BATCH, (b + 1) * BATCH) for b in [0, 1, 2, 3, 4] * 2]
    for got, want in zip(model.get_weights(), _by_hand(batches, x, y), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_shuffled_pass_keeps_its_order_across_its_epochs_and_the_next_pass_reshuffles():
    """steps_per_epoch=3 over 5 batches: epochs 0 and 1 read the pass ordered from epoch 0,
    epochs 2 and 3 the pass that starts at epoch 2, in its own order."""
    x, y = _data()
    model = _model()
    with pytest.warns(UserWarning):
        model.fit(x, y, batch_size=BATCH, epochs=4, steps_per_epoch=3, verbose=0)
    batches = []
    for start in (0, 2):
        order = epoch_order(model.seed, start, N, True, BATCH)
        assert sorted(order) == list(range(N))  # a pass sees every sample once
        batches += [order[b * BATCH:(b + 1) * BATCH] for b in range(N // BATCH)]
    assert not np.array_equal(batches[0], batches[5])
    for got, want in zip(model.get_weights(), _by_hand(batches, x, y), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_pydataset_is_read_on_through_the_epochs():
    x, y = _data()
    dataset, steps = Recorded(x, y), StepsPerEpoch()
    with pytest.warns(UserWarning):
        _model().fit(dataset, epochs=4, steps_per_epoch=3, shuffle=False, callbacks=[steps],
                     verbose=0)
    assert steps.counts == [3, 2, 3, 2]
    assert dataset.asked[1:] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]  # after fit's first look


def test_an_endless_pydataset_goes_on_counting():
    x, y = _data()
    dataset = Recorded(x, y, endless=True)
    _model().fit(dataset, epochs=3, steps_per_epoch=4, verbose=0)
    assert dataset.asked[1:] == list(range(12))


def test_steps_per_epoch_beyond_the_data_gives_epochs_of_one_pass():
    """Keras stops the epoch where the data runs out, with a warning."""
    x, y = _data()
    steps = StepsPerEpoch()
    with pytest.warns(UserWarning, match="after 5 of them"):
        _model().fit(x, y, batch_size=BATCH, epochs=2, steps_per_epoch=7, callbacks=[steps],
                     verbose=0)
    assert steps.counts == [5, 5]


def test_a_divisor_of_the_batches_gives_no_warning():
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().fit(x, y, batch_size=BATCH // 2, epochs=2, steps_per_epoch=5, verbose=0)


def _fit(kind, backup_dir=None, crash_at=None, save_freq=1):
    """(weights, history) of a seeded fit of 4 epochs of 3 steps over 5 batches (epochs of
    3, 2, 3, 2 batches), with dropout; None when it crashed after ``crash_at`` batches."""
    x, y = _data()
    model = _model(dropout=True)
    data = (Recorded(x, y),) if kind == "pydataset" else (x, y)
    callbacks = [] if backup_dir is None else [
        fastcnn.callbacks.BackupAndRestore(backup_dir, save_freq=save_freq)]
    callbacks.append(crash_after(crash_at))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = model.fit(*data, batch_size=None if kind == "pydataset" else BATCH,
                                epochs=4, steps_per_epoch=3, callbacks=callbacks, verbose=0)
    except Crash:
        return None
    return model.get_weights(), history.history


@pytest.mark.parametrize("kind, save_freq, crash_at", [
    ("arrays", 1, 4),         # within epoch 1, the second epoch of the first pass
    ("arrays", "epoch", 7),   # from the backup at the end of epoch 1: a new pass begins
    ("arrays", 3, 10),        # from the backup after step 1 of epoch 3, in the second pass
    ("pydataset", 1, 4),
])
def test_a_crashed_fit_resumes_bitwise_where_the_pass_had_got_to(tmp_path, kind, save_freq,
                                                                   crash_at):
    want, want_history = _fit(kind)
    assert _fit(kind, tmp_path, crash_at, save_freq) is None
    got, history = _fit(kind, tmp_path, save_freq=save_freq)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    last = len(history["loss"])
    assert history == {k: v[4 - last:] for k, v in want_history.items()}


class Elements(fastcnn.utils.dataset.Dataset):
    """Samples of (x, y) as a dataset's elements, recording which are read."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.read = x, y, []

    def __len__(self):
        return len(self.x)

    def _element(self, index):
        self.read.append(index)
        return self.x[index], self.y[index]


def test_a_shuffled_dataset_keeps_its_order_through_a_pass():
    """image_dataset_from_directory's kind of dataset orders itself from its epoch: the pass
    that epochs 0 and 1 share reads every sample once, in the order of its first epoch; the
    pass of epochs 2 and 3 reads them all again, reshuffled."""
    x, y = _data()
    source = Elements(x, y)
    dataset = source.shuffle(N, seed=9).batch(BATCH)
    with pytest.warns(UserWarning):
        _model().fit(dataset, epochs=4, steps_per_epoch=3, verbose=0)
    read = source.read[BATCH:]  # after fit's first look at batch 0
    first, second = read[:N], read[N:]
    assert sorted(first) == sorted(second) == list(range(N)) and first != second

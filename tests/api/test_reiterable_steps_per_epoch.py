"""An iterable of batches that is not a generator (its ``__iter__`` starts over) under
steps_per_epoch, read as Keras 3 reads the one such iterable it takes, a torch DataLoader: one
iterator goes on from epoch to epoch, each epoch taking the next steps_per_epoch batches; the
pass ends when the iterator runs out, or for an iterable with a len() after that many batches;
the epoch that reaches the end stops there (with Keras's warning) and the next one starts a new
pass. The reference is the same SGD steps taken on arrays holding the batches in that order."""
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import layers

BATCH = 4


def _model():
    fastcnn.utils.set_random_seed(4)
    model = fastcnn.Sequential([fastcnn.Input((5,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _batches(count, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, 5)).astype(np.float32), rng.integers(0, 3, BATCH))
            for _ in range(count)]


class Reiterable:
    """Each iter() starts over; records the index of each batch it serves."""

    def __init__(self, batches):
        self.batches, self.served = batches, []

    def __iter__(self):
        for i, batch in enumerate(self.batches):
            self.served.append(i)
            yield batch


class Sized(Reiterable):
    def __len__(self):
        return len(self.batches)


def _trained_on(batches, order):
    """The model after one SGD step on each batch of ``order``, in that order."""
    model = _model()
    x = np.concatenate([batches[i][0] for i in order])
    y = np.concatenate([batches[i][1] for i in order])
    model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    return model


def _assert_same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("kind", [Reiterable, Sized])
def test_epochs_take_turns_through_one_pass_and_the_short_epoch_starts_the_next(kind):
    batches = _batches(5)
    data = kind(batches)
    model = _model()
    with pytest.warns(UserWarning, match=r"ran out of data|does not divide the 5 batches"):
        history = model.fit(data, steps_per_epoch=2, epochs=4, verbose=0)
    order = [0, 1, 2, 3, 4, 0, 1]  # epochs of 2, 2, 1 (the end of the pass) and 2
    assert data.served == order
    assert len(history.history["loss"]) == 4
    _assert_same_weights(model, _trained_on(batches, order))


def test_an_epoch_that_finds_the_pass_just_ended_starts_the_next_pass():
    """Keras would give that epoch no batches; here it starts the new pass at once."""
    batches = _batches(4)
    data = Reiterable(batches)
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(data, steps_per_epoch=2, epochs=3, verbose=0)
    assert data.served == [0, 1, 2, 3, 0, 1]
    _assert_same_weights(model, _trained_on(batches, [0, 1, 2, 3, 0, 1]))


def test_a_sized_iterable_is_read_for_its_length_only():
    """As Keras reads a DataLoader: its len() is the pass; batches beyond it are never read."""
    batches = _batches(5)

    class Shorter(Reiterable):
        def __len__(self):
            return 3

    data = Shorter(batches)
    model = _model()
    history = model.fit(data, epochs=2, verbose=0)
    assert data.served == [0, 1, 2, 0, 1, 2]
    assert len(history.history["loss"]) == 2
    _assert_same_weights(model, _trained_on(batches, [0, 1, 2, 0, 1, 2]))


def test_without_steps_per_epoch_every_epoch_is_a_whole_pass():
    batches = _batches(3)
    data = Reiterable(batches)
    model = _model()
    model.fit(data, epochs=2, verbose=0)
    assert data.served == [0, 1, 2, 0, 1, 2]
    _assert_same_weights(model, _trained_on(batches, [0, 1, 2, 0, 1, 2]))


def test_validation_starts_every_time_from_the_start():
    batches = _batches(3)
    val = Reiterable(_batches(3, seed=1))
    _model().fit(Reiterable(batches), steps_per_epoch=1, epochs=2, validation_data=val,
                 validation_steps=2, verbose=0)
    assert val.served == [0, 1, 0, 1]


def test_an_empty_sized_iterable_is_refused():
    with pytest.raises(ValueError, match=r"Expected x to hold at least one batch, received "
                                         r"len\(\)=0"):
        _model().fit(Sized([]), verbose=0)

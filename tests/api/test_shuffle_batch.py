"""fit(shuffle="batch"), which Keras 3 still accepts for arrays: each batch holds the samples it
holds without shuffling, in an order shuffled within the batch, drawn anew each epoch."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.data_adapters import ArrayAdapter, epoch_order


def test_each_batch_keeps_its_samples_in_a_shuffled_order():
    n, batch = 23, 5
    x = np.arange(n, dtype=np.float32)[:, None]
    adapter = ArrayAdapter([x], [None], None, batch, shuffle="batch")
    orders = []
    for epoch in range(2):
        rows = [xs[0][:, 0].astype(int) for xs, _, _ in
                adapter.batches(seed=4, epoch=epoch, steps=adapter.num_batches)]
        for b, got in enumerate(rows):
            assert sorted(got) == list(range(b * batch, min((b + 1) * batch, n)))
        orders.append(np.concatenate(rows))
    assert not np.array_equal(orders[0], np.arange(n))
    assert not np.array_equal(orders[0], orders[1])  # a new draw each epoch
    np.testing.assert_array_equal(orders[0], epoch_order(4, 0, n, "batch", batch))


def test_fit_with_batch_shuffling_trains_on_the_unshuffled_batches():
    """The same batches as shuffle=False: each step's mean loss and gradient are the same
    sums in another order (equal to float32 round-off)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6)).astype(np.float32), rng.integers(0, 3, 40)

    def fit(shuffle):
        fastcnn.utils.set_random_seed(1)
        model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(3, activation="softmax")])
        model.compile(fastcnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=3, shuffle=shuffle, verbose=0)
        return model.get_weights()

    in_batches, plain, shuffled = fit("batch"), fit(False), fit(True)
    for a, b, c in zip(in_batches, plain, shuffled, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(a, c, rtol=1e-5, atol=1e-6)  # whole shuffling differs


@pytest.mark.parametrize("shuffle", ["epoch", "Batch", 1, None])  # Keras documents a bool
def test_other_values_are_refused(shuffle):
    model = fastcnn.Sequential([fastcnn.Input((2,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r'Expected shuffle to be True, False or "batch"'):
        model.fit(np.zeros((4, 2)), np.zeros(4), shuffle=shuffle, verbose=0)

"""The execution's buffer pool: backward passes, and the forward pass of a plan without
backward, share buffers once nothing reads them, so a deep net holds a few activations' worth
of them rather than one set per layer; results stay bitwise the same."""
import numpy as np

import fastcnn
from fastcnn import layers
from fastcnn._ops.workspace import BufferPool, root
from fastcnn.engine.execution import Execution
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import make_plan


def test_pool_lends_a_given_back_buffer_again_and_keeps_one_still_read():
    pool = BufferPool()
    a = pool.take((4, 3))
    b = pool.take((2, 5))
    pool.give_back(lambda buf: buf is root(b))  # b is still read
    c = pool.take((2, 6))  # fits in a's 12 floats
    assert root(c) is root(a) and c.shape == (2, 6) and c.flags.c_contiguous
    d = pool.take((1, 12))  # a is lent again and b still read: a new buffer
    assert root(d) is not root(a) and root(d) is not root(b)


def chain(depth=10, width=8):
    fastcnn.utils.set_random_seed(0)
    inputs = fastcnn.Input((16, 16, 3))
    x = inputs
    for _ in range(depth):
        x = layers.Conv2D(width, 3, padding="same", activation="tanh")(x)
    return fastcnn.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))


def one_map_bytes():
    """One of the chain's (4, 16, 16, 8) float32 maps."""
    return 4 * 16 * 16 * 8 * 4


def pooled_bytes(execution):
    return sum(b.nbytes for free in execution._pool._free.values() for b in free)


def test_backward_holds_a_few_maps_not_one_per_layer():
    model = chain()
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    plan = make_plan(FlatGraph(model._built_graph(), True), True, loss_outputs=[True])
    execution = Execution(plan)
    out = execution.forward([x])
    execution.backward([np.ones_like(out[0])])
    # each conv's backward wants dz and dx, 20 maps for the chain; alive at once: a few
    assert pooled_bytes(execution) <= 4 * one_map_bytes()
    assert not execution._pool._lent


def test_inference_holds_a_few_maps_and_keeps_its_outputs_until_the_next_run():
    model = chain()
    rng = np.random.default_rng(1)
    x, x2 = (rng.random((4, 16, 16, 3), dtype=np.float32) for _ in range(2))
    plan = make_plan(FlatGraph(model._built_graph(), False), True)
    execution = Execution(plan)
    first = execution.forward([x])[0]
    kept = first.copy()
    lent = sum(b.nbytes for b in execution._pool._lent)
    # the output sits in one reused buffer; the maps it came through are back in the pool
    assert lent <= one_map_bytes() and pooled_bytes(execution) <= 3 * one_map_bytes()
    np.testing.assert_array_equal(first, kept)  # the output survives the run's give-backs
    again = execution.forward([x2])[0].copy()
    np.testing.assert_array_equal(execution.forward([x])[0], kept)
    assert not np.array_equal(again, kept)


def test_training_with_shared_buffers_is_bitwise_that_of_separate_buffers(monkeypatch):
    """The same fit with every buffer the layer's own (the pool never lending back)."""
    rng = np.random.default_rng(2)
    x, y = rng.random((16, 16, 16, 3), dtype=np.float32), rng.random((16, 2), dtype=np.float32)

    def fit():
        model = chain(depth=4)
        model.compile(fastcnn.optimizers.Adam(1e-3), "mse")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return model.get_weights() + [model.predict(x, verbose=0)]

    shared = fit()
    monkeypatch.setattr(BufferPool, "give_back", lambda self, still_read: None)
    for a, b in zip(shared, fit(), strict=True):
        np.testing.assert_array_equal(a, b)

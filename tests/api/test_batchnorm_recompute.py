"""Training does not keep the outputs of batch normalisation steps without an Add: backward
recomputes them for the readers that keep them (a conv's dW), bit for bit, so that a fit holds
BN's input and not both; and backward lends the buffers of the steps it is done with. Results
stay bitwise those of keeping every output in its own buffer."""
import functools

import numpy as np
import pytest

import fastcnn
import fastcnn.trainer
from fastcnn import layers
from fastcnn._ops.workspace import BufferPool, root
from fastcnn.engine.execution import Execution
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import BatchNormStep, make_plan

BATCH, SIDE, WIDE = 4, 8, 12  # an expanded map: (BATCH, SIDE, SIDE, WIDE)


@pytest.fixture(autouse=True)
def no_conv_normalising_its_input(monkeypatch):
    """The BN step whose output a 1x1 conv alone reads would leave its normalisation to that
    conv (engine/plan.py), and then have no output to recompute: these tests plan without it."""
    from fastcnn.engine import plan as planner
    monkeypatch.setattr(planner, "_batchnorm_applied_by_convs", lambda *args: None)


def inverted_residual():
    """MobileNetV2's block (1x1 expand, BN relu6, depthwise, BN relu6, 1x1 project, BN, Add),
    then BN relu read through a Flatten, whose output is a view of it."""
    fastcnn.utils.set_random_seed(0)
    inputs = fastcnn.Input((SIDE, SIDE, 4))
    y = layers.Conv2D(WIDE, 1, use_bias=False)(inputs)
    y = layers.Activation("relu6")(layers.BatchNormalization()(y))
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
    y = layers.Activation("relu6")(layers.BatchNormalization()(y))
    y = layers.BatchNormalization()(layers.Conv2D(4, 1, use_bias=False)(y))
    x = layers.Add()([inputs, y])
    z = layers.Activation("relu")(layers.BatchNormalization()(x))
    return fastcnn.Model(inputs, layers.Dense(3)(layers.Flatten()(z)))


def plan_of(model, recompute=True, training=True):
    flat = FlatGraph(model._built_graph(), training)
    return make_plan(flat, True, loss_outputs=[True] if training else None,
                     recompute=recompute)


def batchnorm_steps(plan):
    return [s for s in plan.steps if isinstance(s, BatchNormStep)]


def own_bytes(execution):
    """The bytes of the buffers of the execution's steps' own, kept from batch to batch."""
    return sum(b.nbytes for ctx in execution.contexts for b in ctx._workspace._buffers.values())


def batch(seed=0):
    return np.random.default_rng(seed).random((BATCH, SIDE, SIDE, 4), dtype=np.float32)


def test_training_plans_recompute_the_batchnorm_steps_without_an_add():
    model = inverted_residual()
    recomputed = [s.recompute for s in batchnorm_steps(plan_of(model))]
    assert recomputed == [True, True, False, True]  # the third adds the block's input
    assert not any(s.recompute for s in batchnorm_steps(plan_of(model, recompute=False)))
    assert not any(s.recompute for s in batchnorm_steps(plan_of(model, training=False)))


def test_forward_keeps_no_batchnorm_output_that_a_conv_reads():
    model = inverted_residual()
    runs = {}
    for recompute in (True, False):
        execution = Execution(plan_of(model, recompute))
        execution.forward([batch()])
        runs[recompute] = execution
    recomputing = runs[True]
    steps = batchnorm_steps(recomputing.plan)
    # the expansion's and the depthwise's BN outputs are gone; the last one, which a view
    # (the Flatten's output) holds, stays lent until backward
    assert sorted(recomputing._dropped) == sorted(s.outputs[0] for s in steps[:2])
    for s in steps[:2]:
        assert recomputing.values[s.outputs[0]] is None
    last = recomputing.values[steps[3].outputs[0]]
    assert [id(b) for b in recomputing._pool._lent] == [id(root(last))]
    map_bytes = BATCH * SIDE * SIDE * WIDE * 4
    # nor a buffer of their own (the pool lends the BN steps' outputs and their scratch)
    assert own_bytes(runs[False]) - own_bytes(recomputing) == 2 * map_bytes + last.nbytes


def test_gradients_are_bitwise_those_of_kept_outputs():
    model = inverted_residual()
    results = []
    for recompute in (True, False):
        execution = Execution(plan_of(model, recompute))
        runs = []
        for seed in (0, 1):  # the second batch reuses the pool's buffers
            out = execution.forward([batch(seed)])[0].copy()
            execution.backward([np.full_like(out, 0.5) + out])
            runs.append([out] + [g.copy() for g in execution.gradients])
            assert not execution._pool._lent
        results.append(runs)
    for got, want in zip(*results):
        for a, b in zip(got, want, strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_is_bitwise_that_of_keeping_every_output(threads, monkeypatch):
    rng = np.random.default_rng(3)
    x, y = batch(3).repeat(4, axis=0), rng.integers(0, 3, 4 * BATCH)

    def fit():
        model = inverted_residual()
        model.compile(fastcnn.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        fastcnn.set_num_threads(threads)
        try:
            model.fit(x, y, batch_size=6, epochs=2, verbose=0)
        finally:
            fastcnn.set_num_threads(None)
        return model.get_weights()

    recomputed = fit()
    monkeypatch.setattr(fastcnn.trainer, "make_plan",
                        functools.partial(make_plan, recompute=False))
    monkeypatch.setattr(BufferPool, "borrow", lambda self, buffers: None)
    for a, b in zip(recomputed, fit(), strict=True):
        assert np.array_equal(a, b)


def test_pool_hands_back_free_buffers_too_small_for_a_request():
    pool = BufferPool(hand_back_small=True)
    a, b = pool.take((4,)), pool.take((8,))
    pool.give_back(lambda buf: False)
    c = pool.take((6,))  # fits in b
    assert root(c) is root(b)
    d = pool.take((3,))  # a, which alone holds less than the next request
    assert root(d) is root(a)
    pool.give_back(lambda buf: False)
    e = pool.take((12,))  # a and b together hold 12: both go, for one new buffer
    assert root(e) is not root(a) and root(e) is not root(b)
    pool.give_back(lambda buf: False)
    assert [f.size for f in pool._free[np.dtype(np.float32)]] == [12]


def test_pool_lends_borrowed_buffers_until_reclaimed():
    pool = BufferPool()
    owned = np.zeros((2, 3, 4), np.float32)
    pool.borrow([owned])
    a = pool.take((5, 4))  # the borrowed 24 floats hold it
    assert root(a) is owned
    b = pool.take((30,))  # too big for anything free: a new buffer, the borrowed one kept
    pool.give_back(lambda buf: buf is root(b))
    pool.reclaim()
    assert not any(buf is owned for free in pool._free.values() for buf in free)
    c = pool.take((2, 2))
    assert root(c) is not owned
    pool.borrow([owned])
    pool.take((4,))
    pool.reclaim()  # lent and never given back: out of the pool all the same
    assert not any(buf is owned for buf in pool._lent)


def test_backward_gives_every_borrowed_buffer_back_to_its_step():
    model = inverted_residual()
    execution = Execution(plan_of(model))
    out = execution.forward([batch()])[0]
    owned = {id(b) for ctx in execution.contexts for b in ctx._workspace.buffers()}
    execution.backward([np.ones_like(out)])
    assert not execution._pool._lent
    assert not any(id(b) in owned for free in execution._pool._free.values() for b in free)

"""Inference in sub-batches (engine/plan.py's Plan.sub_batch, engine/execution.py): which plans
run a batch in parts, and that the parts give bitwise the whole batch's outputs, for any thread
count."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.engine import plan as plan_module
from fastcnn.engine.execution import balanced_parts
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import make_plan


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 4 samples, whatever the model's sizes."""
    monkeypatch.setattr(plan_module, "SUB_BATCH_BYTES", 1)
    monkeypatch.setattr(plan_module, "MIN_SUB_BATCH", 4)


def zoo_like(seed):
    """The zoo's layers: conv -> BN -> relu/relu6, depthwise, Add, max pooling, transposed
    conv, Concatenate, global pooling and a softmax Dense; two outputs."""
    fastcnn.utils.set_random_seed(seed)
    inputs = fastcnn.Input((8, 8, 3))
    a = layers.Activation("relu")(layers.BatchNormalization()(
        layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)))
    b = layers.DepthwiseConv2D(3, padding="same")(a)
    b = layers.Activation("relu6")(layers.BatchNormalization()(b))
    b = layers.Add()([a, layers.Conv2D(8, 1)(b)])
    c = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.MaxPooling2D(2)(b))
    u = layers.Conv2DTranspose(8, 2, strides=2, padding="same")(c)
    d = layers.Conv2D(4, 3, padding="same", activation="relu")(layers.Concatenate()([u, b]))
    probs = layers.Dense(5, activation="softmax")(layers.GlobalAveragePooling2D()(d))
    return fastcnn.Model(inputs, [probs, layers.Conv2D(1, 1, activation="sigmoid")(d)])


def forward_plan(model):
    return make_plan(FlatGraph(model._built_graph(), False), True)


def test_parts_give_the_whole_batch_bitwise_for_any_thread_count(small_parts):
    model = zoo_like(0)
    assert forward_plan(model).sub_batch == 4
    x = np.random.default_rng(1).normal(size=(30, 8, 8, 3)).astype(np.float32)
    alone = [np.concatenate(o) for o in zip(*(model.predict(x[i:i + 1], verbose=0)
                                              for i in range(len(x))))]  # no parts
    try:
        for threads in (1, 2, 3):
            fastcnn.set_num_threads(threads)
            parted = model.predict(x, batch_size=30, verbose=0)
            for got, want in zip(parted, alone, strict=True):
                np.testing.assert_array_equal(got, want)
    finally:
        fastcnn.set_num_threads(None)


def test_evaluate_in_parts_matches_one_part(small_parts, monkeypatch):
    model = zoo_like(2)
    model.compile("adam", ["sparse_categorical_crossentropy", "binary_crossentropy"])
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 8, 8, 3)).astype(np.float32)
    y = [np.arange(24) % 5, (rng.random((24, 8, 8, 1)) > 0.5).astype(np.float32)]
    parted = model.evaluate(x, y, batch_size=24, verbose=0)
    monkeypatch.setattr(plan_module, "MIN_SUB_BATCH", 1000)
    whole = zoo_like(2)
    whole.set_weights(model.get_weights())
    whole.compile("adam", ["sparse_categorical_crossentropy", "binary_crossentropy"])
    assert forward_plan(whole).sub_batch == 1000
    assert parted == whole.evaluate(x, y, batch_size=24, verbose=0)


class MixingConv(layers.Conv2D):
    """A subclass with a forward of its own: it may mix samples (here it does)."""

    def forward(self, x, ctx, training):
        y = super().forward(x, ctx, training)
        return y - y.mean(axis=0)


def test_only_layers_that_say_so_run_in_parts(small_parts):
    inputs = fastcnn.Input((4, 4, 2))
    assert not MixingConv.per_sample and layers.Conv2D.per_sample
    mixing = fastcnn.Model(inputs, MixingConv(2, 3)(inputs))
    assert forward_plan(mixing).sub_batch is None
    softmax = fastcnn.Model(inputs, layers.Softmax(axis=0)(inputs))
    assert forward_plan(softmax).sub_batch is None
    # batch statistics mix the samples; so does a penalty on a layer's output over the batch
    batch_stats = fastcnn.Model(inputs, layers.BatchNormalization()(inputs, training=True))
    assert forward_plan(batch_stats).sub_batch is None
    penalised = fastcnn.Model(inputs, layers.Conv2D(2, 3, activity_regularizer="l2")(inputs))
    assert forward_plan(penalised).sub_batch is None
    training = make_plan(FlatGraph(penalised._built_graph(), True), True, loss_outputs=[True])
    assert training.sub_batch is None
    x = np.random.default_rng(4).normal(size=(8, 4, 4, 2)).astype(np.float32)
    out = mixing.predict(x, batch_size=8, verbose=0)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)  # mixed over the whole batch


@pytest.mark.parametrize("n", [2, 33, 97, 98, 128, 129, 1000, 10_000])
@pytest.mark.parametrize("part", [1, 32, 97])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 16])
def test_parts_cover_the_batch_in_equal_sizes_a_multiple_of_the_workers(n, part, n_threads):
    workers, bounds = balanced_parts(n, part, n_threads)
    sizes = [stop - start for start, stop in bounds]
    assert [start for start, _ in bounds] == [0] + [stop for _, stop in bounds[:-1]]
    assert bounds[-1][1] == n
    assert max(sizes) <= part and max(sizes) - min(sizes) <= 1
    assert workers == min(n_threads, -(-n // part)) and len(bounds) % workers == 0
    # No more parts than the bound asks, but for the rounding up to a multiple of the workers.
    assert len(bounds) < -(-n // part) + workers


def test_a_batch_just_over_a_part_splits_in_halves_not_a_part_and_a_rest():
    assert balanced_parts(128, 97, 2) == (2, [(0, 64), (64, 128)])

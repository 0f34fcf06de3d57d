"""A linear Conv2D read only by a training BatchNormalization step sums the partials of its
statistics as it writes its output (engine/plan.py's ``batchnorm_moments``), and, where the
step has no Add, makes the normalisation's dx in its own backward as it reads dy
(``BatchNormStep.dx_by_conv``): the planner's choices, and training that gives the bits of the
step's own passes."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.engine.execution import Execution
from fastcnn.engine.plan import BatchNormStep
from conftest import training_plan


def residual_net(seed=0):
    """conv -> BN -> relu, conv -> BN -> Add -> relu, a strided conv -> BN -> relu, and a conv
    whose BN stands alone (a plain layer step)."""
    fastcnn.utils.set_random_seed(seed)
    inputs = fastcnn.Input((8, 8, 8))
    a = layers.Activation("relu")(layers.BatchNormalization()(
        layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)))
    b = layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(a))
    c = layers.Activation("relu")(layers.Add()([b, a]))
    d = layers.Activation("relu")(layers.BatchNormalization()(
        layers.Conv2D(16, 3, strides=2, padding="same")(c)))
    e = layers.BatchNormalization()(layers.Conv2D(16, 1)(d))
    outputs = layers.Dense(3)(layers.GlobalAveragePooling2D()(e))
    model = fastcnn.Model(inputs, outputs)
    model.compile(fastcnn.optimizers.SGD(0.05), "mse")
    return model


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 8, 8, 8)).astype(np.float32) + 1,
            rng.standard_normal((n, 3)).astype(np.float32))


def linked_convs(plan):
    return [s for s in plan.steps if s.flags.get("batchnorm_moments")]


def test_planner_links_each_linear_conv_to_the_training_batchnorm_step_reading_it():
    model = residual_net()
    model.build((None, 8, 8, 8))
    plan = training_plan(model)
    convs = linked_convs(plan)
    assert len(convs) == 3  # not the conv before the lone BN
    slots = {s.conv_slot for s in convs}
    assert len(slots) == 3 and min(slots) >= max(s for step in plan.steps
                                                 for s in step.inputs + step.outputs) + 1
    readers = [s for s in plan.steps if isinstance(s, BatchNormStep)]
    assert sorted(s.conv_slot for s in readers) == sorted(slots)
    assert [(s.add is not None, s.dx_by_conv) for s in readers] == [
        (False, True), (True, True), (False, True)]


def test_no_link_for_relu_convs_shared_outputs_frozen_batchnorm_or_inference():
    fastcnn.utils.set_random_seed(0)
    inputs = fastcnn.Input((6, 6, 4))
    relu_conv = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    a = layers.Activation("relu")(layers.BatchNormalization()(relu_conv))
    shared = layers.Conv2D(4, 3, padding="same")(a)  # read by the BN and the Add
    b = layers.Activation("relu")(layers.Add()([layers.BatchNormalization()(shared), shared]))
    frozen = layers.BatchNormalization()
    c = layers.Activation("relu")(frozen(layers.Conv2D(4, 3, padding="same")(b)))
    model = fastcnn.Model(inputs, c)
    model.compile("sgd", "mse")
    model.build((None, 6, 6, 4))
    frozen.trainable = False
    assert linked_convs(training_plan(model)) == []
    frozen.trainable = True
    assert len(linked_convs(training_plan(model))) == 1
    assert linked_convs(training_plan(model, fuse=False)) == []
    from fastcnn.engine.graph import FlatGraph
    from fastcnn.engine.plan import make_plan
    assert linked_convs(make_plan(FlatGraph(model._built_graph(), True), True)) == []


def unlinked(plan):
    """The plan with every conv -> BN link taken out: the BN steps sum their own statistics."""
    for step in plan.steps:
        step.flags.pop("batchnorm_moments", None)
        if hasattr(step, "conv_slot"):
            step.conv_slot = None
    return plan


def one_step(model, x, upstream, link):
    plan = training_plan(model)
    execution = Execution(plan if link else unlinked(plan))
    y = execution.forward([x])[0].copy()
    execution.backward([upstream])
    return [y] + [g.copy() for g in execution.gradients] + [w.copy() for w in model.weights]


def test_linked_step_gives_the_bits_of_the_batchnorm_statistics_pass():
    x, _ = data()
    model = residual_net()
    model.build((None, 8, 8, 8))
    upstream = np.random.default_rng(2).standard_normal((len(x), 3)).astype(np.float32)
    start = model.get_weights()
    linked = one_step(model, x, upstream, True)
    model.set_weights(start)
    alone = one_step(model, x, upstream, False)
    assert len(linked_convs(training_plan(model))) == 3
    for got, want in zip(linked, alone):  # outputs, gradients, moved moving statistics
        np.testing.assert_array_equal(got, want)


def plan_without_dx_by_conv(monkeypatch):
    """From now on the planner links convs to BN steps for their statistics only: each BN
    step makes its own dx."""
    from fastcnn.engine import plan as planner
    link = planner._batchnorm_moments_from_convs

    def without_dx(plan, *args):
        link(plan, *args)
        for step in plan.steps:
            if isinstance(step, BatchNormStep):
                step.dx_by_conv = False

    monkeypatch.setattr(planner, "_batchnorm_moments_from_convs", without_dx)


def test_the_conv_makes_the_batchnorm_dx_bitwise_as_the_step_would(monkeypatch):
    """Training with the conv's backward making the normalisation's dx gives the bits of the
    step making it itself, which also reads its dy once more."""
    x, y = data(40)
    made = []
    original = layers.BatchNormalization.input_gradient_for_conv

    def spy(self, dy, ctx, buffer, dy2=None):
        made.append((dy.shape, ctx.residual is not None, dy2 is not None))
        return original(self, dy, ctx, buffer, dy2)

    monkeypatch.setattr(layers.BatchNormalization, "input_gradient_for_conv", spy)
    runs = []
    for by_conv in (True, False):
        if not by_conv:
            plan_without_dx_by_conv(monkeypatch)
        model = residual_net()
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs.append((model.get_weights(), history.history["loss"]))
        if by_conv:  # steps of 16, 16 and 8 samples, backward from the last BN: the strided
            # conv's, the one with the Add (the conv gets the normalised value's gradient), and
            # the first, whose output has two readers (so does its gradient come in two parts)
            assert made == [step for n in (16, 16, 8) for step in (
                ((n, 4, 4, 16), False, False), ((n, 8, 8, 8), True, False),
                ((n, 8, 8, 8), False, True))] * 2
    assert len(made) == 18  # none without the conv making dx
    (got, got_loss), (want, want_loss) = runs
    assert got_loss == want_loss
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_conv_called_twice_makes_each_of_its_batchnorms_dx(monkeypatch):
    """One Conv2D at two places, each call read by a BN of its own: the call whose kernel
    gradient is added to the other's makes its BN's dx too, bitwise as the BN step would."""
    def shared_net():
        fastcnn.utils.set_random_seed(5)
        inputs = fastcnn.Input((8, 8, 8))
        conv = layers.Conv2D(8, 3, padding="same", use_bias=False)
        a = layers.Activation("relu")(layers.BatchNormalization()(conv(inputs)))
        b = layers.Activation("relu")(layers.BatchNormalization()(conv(a)))
        model = fastcnn.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(b)))
        model.compile(fastcnn.optimizers.SGD(0.05), "mse")
        return model

    x, y = data(32)
    model = shared_net()
    plan = training_plan(model)
    assert sorted(plan.grad_routes[i][0] for i, s in enumerate(plan.steps)
                  if s.flags.get("batchnorm_moments")) == ["add", "write"]
    assert [s.dx_by_conv for s in plan.steps if isinstance(s, BatchNormStep)] == [True, True]
    want = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
    plan_without_dx_by_conv(monkeypatch)
    other = shared_net()
    assert other.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"] == want
    for got, expected in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_what_the_conv_reads_of_the_batchnorm_stays_while_other_steps_take_buffers(monkeypatch):
    """Between the normalisation's backward and the conv's, the execution lends the
    normalisation's buffers to other steps: the conv's backward, which here first scribbles on
    the first element of every small buffer the pool lends, must still read the statistics and
    gradient means the normalisation left it."""
    x, y = data(40)
    model = residual_net()
    want = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
    want_weights = model.get_weights()
    original = layers.Conv2D.backward

    def scribbling(self, dy, ctx, need_dx):
        for dtype in (np.float32, np.float64):
            for _ in range(32):
                ctx.pool.take((1,), dtype)[...] = np.nan
        return original(self, dy, ctx, need_dx)

    monkeypatch.setattr(layers.Conv2D, "backward", scribbling)
    model = residual_net()
    assert model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"] == want
    for got, expected in zip(model.get_weights(), want_weights, strict=True):
        np.testing.assert_array_equal(got, expected)


def fitted_weights(n_threads, fuse=True):
    previous = fastcnn.get_num_threads()
    fastcnn.set_num_threads(n_threads)
    try:
        model = residual_net()
        model.compile(fastcnn.optimizers.SGD(0.05), "mse", fuse=fuse)
        x, y = data(40)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)  # a short last batch
        return model.get_weights(), history.history["loss"]
    finally:
        fastcnn.set_num_threads(previous)


def test_training_is_bitwise_the_same_on_1_2_and_3_threads():
    one, losses = fitted_weights(1)
    assert losses[-1] < losses[0]
    for n_threads in (2, 3):
        for got, want in zip(fitted_weights(n_threads)[0], one):
            np.testing.assert_array_equal(got, want)


def test_fused_training_matches_unfused_layers():
    fused, _ = fitted_weights(2)
    layered, _ = fitted_weights(2, fuse=False)
    for got, want in zip(fused, layered):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_batches_smaller_than_a_chunk(batch):
    """One image or three: a single, short chunk of the 4x4x16 conv's rows."""
    x, _ = data(batch)
    model = residual_net()
    model.build((None, 8, 8, 8))
    upstream = np.ones((batch, 3), np.float32)
    start = model.get_weights()
    linked = one_step(model, x, upstream, True)
    model.set_weights(start)
    for got, want in zip(linked, one_step(model, x, upstream, False)):
        np.testing.assert_array_equal(got, want)


def inverted_residual_net(seed=0):
    """MobileNetV2's block: 1x1 conv -> BN -> relu6, depthwise -> BN -> relu6, 1x1 conv -> BN
    -> Add; then a strided depthwise -> BN -> relu, and a depthwise with a relu of its own, whose
    BN sums its own statistics."""
    fastcnn.utils.set_random_seed(seed)
    inputs = fastcnn.Input((8, 8, 8))
    a = layers.Activation("relu6")(layers.BatchNormalization()(
        layers.Conv2D(24, 1, use_bias=False)(inputs)))
    b = layers.Activation("relu6")(layers.BatchNormalization()(
        layers.DepthwiseConv2D(3, padding="same", use_bias=False)(a)))
    c = layers.Add()([inputs, layers.BatchNormalization()(layers.Conv2D(8, 1)(b))])
    d = layers.Activation("relu")(layers.BatchNormalization()(layers.DepthwiseConv2D(
        3, strides=2, padding="same", depth_multiplier=2)(c)))
    e = layers.Activation("relu6")(layers.BatchNormalization()(
        layers.DepthwiseConv2D(3, activation="relu")(d)))
    outputs = layers.Dense(3)(layers.GlobalAveragePooling2D()(e))
    model = fastcnn.Model(inputs, outputs)
    model.compile(fastcnn.optimizers.SGD(0.05), "mse")
    return model


def test_a_depthwise_conv_sums_its_batchnorms_statistics_bitwise():
    """A linear DepthwiseConv2D read by a training BN step sums its statistics too (not one
    with a relu); its backward leaves the BN's dx to the step. Training gives the bits of the
    BN steps' own statistics passes."""
    x, _ = data(40)
    model = inverted_residual_net()
    model.build((None, 8, 8, 8))
    plan = training_plan(model)
    kinds = [type(s.layer).__name__ for s in linked_convs(plan)]
    assert kinds == ["Conv2D", "DepthwiseConv2D", "Conv2D", "DepthwiseConv2D"]
    readers = {s.conv_slot: s for s in plan.steps if isinstance(s, BatchNormStep)}
    assert [readers[s.conv_slot].dx_by_conv for s in linked_convs(plan)] == [
        True, False, True, False]  # the depthwise convs' BNs make their own
    upstream = np.random.default_rng(2).standard_normal((len(x), 3)).astype(np.float32)
    start = model.get_weights()
    linked = one_step(model, x, upstream, True)
    model.set_weights(start)
    alone = one_step(model, x, upstream, False)
    for got, want in zip(linked, alone):
        np.testing.assert_array_equal(got, want)


def normalising_net(seed=0, side=8, filters=8):
    """Three training BN steps whose only reader is a plain Conv2D (3x3 "same", 1x1 strided,
    3x3 strided; relu, relu6 and linear after them), and one whose output an Add reads too."""
    fastcnn.utils.set_random_seed(seed)
    inputs = fastcnn.Input((side, side, 8))

    def bn(x, activation):
        return layers.Activation(activation)(layers.BatchNormalization()(x))

    a = bn(layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs), "relu")
    b = bn(layers.Conv2D(filters, 3, padding="same")(a), "relu6")
    c = bn(layers.Conv2D(12, 1, strides=2)(b), "linear")
    d = bn(layers.Conv2D(12, 3, strides=2, padding="same")(c), "relu")
    e = layers.Add()([layers.Conv2D(12, 3, padding="same")(d), d])
    model = fastcnn.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(e)))
    model.compile(fastcnn.optimizers.SGD(0.05), "mse")
    return model


def normalising_steps(plan):
    return [s for s in plan.steps if isinstance(s, BatchNormStep) and s.norm_slot is not None]


def test_planner_leaves_a_batchnorm_read_by_one_conv_to_that_conv():
    model = normalising_net()
    model.build((None, 8, 8, 8))
    plan = training_plan(model)
    steps = normalising_steps(plan)
    assert [s.relu_max for s in steps] == [None, 6.0, None] and not any(s.recompute for s in steps)
    assert all(s.sums_by_conv for s in steps)  # each conv's kernel trains
    readers = {s.input_norm_slot: s for s in plan.steps if getattr(s, "input_norm_slot", None)}
    assert sorted(readers) == sorted(s.norm_slot for s in steps)
    assert all(isinstance(r.layer, layers.Conv2D) for r in readers.values())
    # the fourth BN's output is read by a conv and the Add
    assert len([s for s in plan.steps if isinstance(s, BatchNormStep)]) == 4
    assert normalising_steps(training_plan(model, fuse=False)) == []
    first = next(l for l in model.layers if isinstance(l, layers.BatchNormalization))
    first.trainable = False  # it normalises with its moving statistics
    assert len(normalising_steps(training_plan(model))) == 2


def plan_without_input_normalisation(monkeypatch):
    from fastcnn.engine import plan as planner
    monkeypatch.setattr(planner, "_batchnorm_applied_by_convs", lambda *args: None)


@pytest.mark.parametrize("side, filters, sums_fit", [(8, 8, False), (16, 32, True)])
def test_normalising_as_the_conv_loads_gives_the_bits_of_the_normalised_value(
        monkeypatch, side, filters, sums_fit):
    """On 8x8x8 maps the normalisations' chunks are 16 images and more, so each sums its own
    gradient sums; on 16x16x32 (one image a chunk) and 8x8x12 (8 images) the convs sum them."""
    from fastcnn._ops import conv as conv_ops
    assert conv_ops.batchnorm_sums_fit((1, side, side, filters)) == sums_fit
    assert conv_ops.batchnorm_sums_fit((1, side // 2, side // 2, 12)) == sums_fit
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, side, side, 8)).astype(np.float32) + 1
    y = rng.standard_normal((40, 3)).astype(np.float32)
    applied = []
    original = layers.BatchNormalization.output_again

    def spy(self, ctx, out):
        applied.append(out.shape)
        return original(self, ctx, out)

    monkeypatch.setattr(layers.BatchNormalization, "output_again", spy)
    from fastcnn._ops import normalization
    given = []
    backward = normalization.batchnorm_backward

    def sums_spy(*args, **kwargs):
        given.append(kwargs.get("sums_given", False))
        return backward(*args, **kwargs)

    monkeypatch.setattr(normalization, "batchnorm_backward", sums_spy)
    runs, counts = [], []
    for by_conv in (True, False):
        if not by_conv:
            plan_without_input_normalisation(monkeypatch)
        model = normalising_net(side=side, filters=filters)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs.append((model.get_weights(), history.history["loss"]))
        counts.append(len(applied))
        # 4 BN steps, 6 steps of training: the three that the convs read sum their own sums
        # only where their chunks do not fit the convs' (or without the convs normalising)
        assert given.count(True) == (3 * 6 if by_conv and sums_fit else 0)
        given.clear()

    # 6 steps: the three outputs that the convs normalise as they load are recomputed for
    # backward otherwise
    assert counts == [0, 3 * 6]
    (got, got_loss), (want, want_loss) = runs
    assert got_loss == want_loss and got_loss[-1] < got_loss[0]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_normalising_as_the_conv_loads_is_bitwise_the_same_on_1_2_and_3_threads():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 16, 16, 8)).astype(np.float32)
    y = rng.standard_normal((40, 3)).astype(np.float32)
    runs = []
    for n_threads in (1, 2, 3):
        previous = fastcnn.get_num_threads()
        fastcnn.set_num_threads(n_threads)
        try:
            model = normalising_net(side=16, filters=32)
            model.fit(x, y, batch_size=16, epochs=2, verbose=0)
            runs.append(model.get_weights())
        finally:
            fastcnn.set_num_threads(previous)
    for other in runs[1:]:
        for a, b in zip(other, runs[0], strict=True):
            np.testing.assert_array_equal(a, b)

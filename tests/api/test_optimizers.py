"""Optimizers: one step of each against Keras's formulas, each weight's own state, learning-rate
schedules and their step convention, the settable learning rate, configs."""
import numpy as np
import pytest

import fastcnn
from fastcnn import _reference as ref
from fastcnn import optimizers
from fastcnn._ops import optim as optim_ops
from fastcnn.optimizers import schedules


def _step(optimizer, w, g, steps=1):
    """Apply ``steps`` updates with gradient g to a float64 copy of w; return the new weight."""
    w = np.array(w, np.float64)
    for _ in range(steps):
        optimizer.apply([w], [g])
    return w


@pytest.fixture
def wg(rng):
    return rng.standard_normal(50), rng.standard_normal(50)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_two_steps(momentum, nesterov, wg):
    w, g = wg
    v = -0.1 * g
    if momentum == 0:
        expected = w - 0.2 * g
    elif nesterov:  # Keras: w += momentum * v - lr * g, after v = momentum * v - lr * g
        expected = w + momentum * v - 0.1 * g
        v = momentum * v - 0.1 * g
        expected += momentum * v - 0.1 * g
    else:
        expected = w + v + (momentum * v - 0.1 * g)
    new = _step(optimizers.SGD(0.1, momentum=momentum, nesterov=nesterov), w, g, steps=2)
    np.testing.assert_allclose(new, expected, rtol=1e-13)


def test_adam_one_step(wg):
    w, g = wg
    m, v = 0.1 * g, 0.001 * g * g
    alpha = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    expected = w - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(_step(optimizers.Adam(0.01), w, g), expected, rtol=1e-13)


def test_adamw_decays_before_the_adam_step(wg):
    w, g = wg
    opt = optimizers.AdamW(0.01, weight_decay=0.5)
    decayed = w - 0.01 * 0.5 * w
    m, v = 0.1 * g, 0.001 * g * g
    alpha = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    first = decayed - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(_step(opt, w, g), first, rtol=1e-13)
    # the second step: moments continue, the bias corrections use step 2
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    alpha = 0.01 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    second = first * (1 - 0.005) - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(_step(optimizers.AdamW(0.01, weight_decay=0.5), w, g, steps=2),
                               second, rtol=1e-12)


def test_each_weight_keeps_its_own_state_when_the_updated_set_changes(rng):
    """State belongs to the weight, not to its place in the list: a weight left out of an update
    (a frozen layer) keeps its moments, and one that joins later starts from zeros; the step
    count is the optimizer's, as in Keras."""
    a, b = rng.standard_normal(5), rng.standard_normal(3)
    ga, gb = [rng.standard_normal(5) for _ in range(3)], [rng.standard_normal(3) for _ in range(3)]
    opt = optimizers.Adam(0.01)
    want_a, want_b = a.copy(), b.copy()
    state_a, state_b = [np.zeros(5), np.zeros(5)], [np.zeros(3), np.zeros(3)]
    opt.apply([b], [gb[0]])                  # step 1: b alone
    opt.apply([a, b], [ga[1], gb[1]])        # step 2: a joins
    opt.apply([a], [ga[2]])                  # step 3: b frozen
    plain = (None, 0.0, None, 1)  # no gradient transforms, one thread
    ref.adam_update([want_b], [gb[0]], [state_b[0]], [state_b[1]], [None], 0.01, 0.9, 0.999, 1e-7,
                    1, *plain)
    ref.adam_update([want_a, want_b], [ga[1], gb[1]], [state_a[0], state_b[0]],
                    [state_a[1], state_b[1]], [None, None], 0.01, 0.9, 0.999, 1e-7, 2, *plain)
    ref.adam_update([want_a], [ga[2]], [state_a[0]], [state_a[1]], [None], 0.01, 0.9, 0.999, 1e-7,
                    3, *plain)
    np.testing.assert_allclose(a, want_a, rtol=1e-13)
    np.testing.assert_allclose(b, want_b, rtol=1e-13)
    for got, want in zip(opt.slots_for([a, b]), zip(state_a, state_b)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-13)


def test_a_weight_listed_twice_is_refused():
    w = np.zeros(4)
    with pytest.raises(ValueError, match="once"):
        optimizers.SGD(0.1).apply([w, w], [np.ones(4), np.ones(4)])
    assert not np.any(w)


def test_freezing_a_layer_between_fits_keeps_every_weight_with_its_own_state(rng):
    """Slots kept by position went to the wrong weight once a layer was frozen after a fit (the
    first trainable weight became the second layer's kernel). The frozen model must train on as
    a twin whose optimizer only ever knew the second layer, given that layer's state."""
    x, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32)

    def make(first_trainable):
        fastcnn.utils.set_random_seed(3)
        model = fastcnn.Sequential([fastcnn.Input(shape=(6,)), fastcnn.layers.Dense(5),
                                    fastcnn.layers.Dense(3)])
        model.layers[0].trainable = first_trainable
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    model = make(True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    first_state = [a.copy() for s in model.optimizer.slots_for(model.layers[0].weights) for a in s]
    twin = make(False)
    twin.set_weights(model.get_weights())
    twin.optimizer.set_slots(twin.trainable_weights,
                             model.optimizer.slots_for(model.layers[1].weights))
    twin.optimizer.iterations = model.optimizer.iterations
    model.layers[0].trainable = False
    for m in (model, twin):
        m.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, verbose=0)
    for got, want in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(model.optimizer.slots_for(model.layers[1].weights),
                         twin.optimizer.slots_for(twin.layers[1].weights)):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    # the frozen layer's moments wait, unchanged, for it to be unfrozen
    for got, want in zip([a for s in model.optimizer.slots_for(model.layers[0].weights) for a in s],
                         first_state):
        np.testing.assert_array_equal(got, want)


def test_each_optimizer_keeps_its_own_operands():
    """Two optimizers stepping in turn (say, two models trained together) each reuse their own
    checked operands, and a copy of the kept operands updates the arrays it is given, not copies
    of them."""
    import copy
    first, second = optimizers.SGD(1.0), optimizers.SGD(1.0)
    a, b = np.zeros(3, np.float32), np.zeros(3, np.float32)
    grad = np.ones(3, np.float32)
    for _ in range(2):
        first.apply([a], [grad])
        second.apply([b], [grad])
    assert first._operands is not second._operands
    np.testing.assert_array_equal(a, [-2, -2, -2])
    np.testing.assert_array_equal(b, [-2, -2, -2])
    velocity = first.slots_for([a])[0]
    for copied in (copy.copy(first._operands), copy.deepcopy(first._operands)):
        optim_ops.sgd_update([a], [grad], velocity, 1.0, 0.0, False, operands=copied)
    np.testing.assert_array_equal(a, [-4, -4, -4])


def test_adamw_keras_defaults():
    opt = optimizers.AdamW()
    assert (opt.learning_rate, opt.weight_decay, opt.beta_1, opt.beta_2, opt.epsilon) == \
        (0.001, 0.004, 0.9, 0.999, 1e-7)
    assert optimizers.get("adamw").name == "adamw"


@pytest.mark.parametrize("momentum", [0.0, 0.8])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_two_steps(momentum, centered, wg):
    w, g = wg
    lr, rho, eps = 0.01, 0.9, 1e-7
    ms, mg, buf, expected = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w), w.copy()
    for _ in range(2):  # Keras 3's update_step, written out
        ms = rho * ms + (1 - rho) * g ** 2
        if centered:
            mg = rho * mg + (1 - rho) * g
            step = lr * g / np.sqrt(ms - mg ** 2 + eps)
        else:
            step = lr * g / np.sqrt(ms + eps)
        if momentum:
            buf = momentum * buf + step
            expected -= buf
        else:
            expected -= step
    opt = optimizers.RMSprop(lr, rho=rho, momentum=momentum, centered=centered)
    np.testing.assert_allclose(_step(opt, w, g, steps=2), expected, rtol=1e-12)
    assert len(opt.slot_names) == 1 + bool(momentum) + centered


def test_rmsprop_keras_defaults():
    opt = optimizers.get("rmsprop")
    assert isinstance(opt, optimizers.RMSprop)
    assert (opt.learning_rate, opt.rho, opt.momentum, opt.epsilon, opt.centered) == \
        (0.001, 0.9, 0.0, 1e-7, False)


def test_exponential_decay_values_and_config():
    schedule = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert schedule(0) == 0.1
    assert schedule(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    assert schedule(20) == pytest.approx(0.025)
    stairs = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert [stairs(s) for s in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    clone = schedules.ExponentialDecay.from_config(stairs.get_config())
    assert clone.get_config() == stairs.get_config()
    assert isinstance(schedule, schedules.LearningRateSchedule)
    with pytest.raises(ValueError, match="Expected decay_steps > 0, received decay_steps=0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)


def test_schedules_importable_by_keras_path():
    from fastcnn.optimizers.schedules import ExponentialDecay
    assert ExponentialDecay is fastcnn.optimizers.schedules.ExponentialDecay


def test_schedule_gets_the_number_of_updates_done(wg):
    """As in Keras, the first update uses schedule(0)."""
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1

    opt = optimizers.SGD(schedule)
    _step(opt, *wg, steps=3)
    assert seen == [0, 1, 2] and opt.iterations == 3
    w, g = wg
    decay = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    np.testing.assert_allclose(_step(optimizers.SGD(decay), w, g, steps=2), w - 0.15 * g,
                               rtol=1e-13)


def test_learning_rate_is_settable():
    opt = optimizers.Adam(0.01)
    opt.learning_rate = np.float32(0.5)
    assert opt.learning_rate == 0.5 and opt.current_learning_rate() == 0.5
    with pytest.raises(ValueError, match=r"Expected learning_rate > 0, received learning_rate=-1"):
        opt.learning_rate = -1
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.RMSprop(learning_rate="fast")
    scheduled = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="schedule"):
        scheduled.learning_rate = 0.1


@pytest.mark.parametrize("kwargs,message", [
    ({"rho": 1.0}, r"Expected rho in \[0, 1\), received rho=1.0"),
    ({"momentum": -0.1}, r"Expected momentum in \[0, 1\), received momentum=-0.1"),
    ({"epsilon": 0}, r"Expected epsilon > 0, received epsilon=0"),
])
def test_rmsprop_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizers.RMSprop(**kwargs)


def test_adamw_rejects_negative_weight_decay():
    with pytest.raises(ValueError, match=r"Expected weight_decay >= 0 or None, received weight_decay=-1"):
        optimizers.AdamW(weight_decay=-1)


@pytest.mark.parametrize("make", [
    lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True),
    lambda: optimizers.AdamW(0.02, weight_decay=0.1),
    lambda: optimizers.Adam(schedules.ExponentialDecay(0.1, 100, 0.96, staircase=True)),
])
def test_config_round_trip(make):
    opt = make()
    clone = type(opt).from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()


def test_compile_default_optimizer_trains():
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.Sequential([fastcnn.Input(shape=(3,)), fastcnn.layers.Dense(2)])
    model.compile(loss="mse")  # Keras's default optimizer is rmsprop
    x = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    y = x[:, :2] * 2
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert isinstance(model.optimizer, optimizers.RMSprop)
    assert history.history["loss"][-1] < history.history["loss"][0]

"""The optimizers Keras 3 adds to SGD/Adam/RMSprop (Nadam, Adagrad, Adadelta, Adamax, Lion,
Adam's AMSGrad) and the options every optimizer takes (clipping, weight decay, the moving
average, gradient accumulation), each checked over a few steps against its rule written out in
NumPy float64, and against torch where torch has the same rule."""
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import optimizers
from fastcnn.optimizers import schedules

STEPS = 3


@pytest.fixture
def problem(rng):
    """A weight and one gradient per step (two tensors, so that the global norm joins them)."""
    weights = [rng.standard_normal(7), rng.standard_normal((2, 3))]
    grads = [[rng.standard_normal(w.shape) for w in weights] for _ in range(STEPS)]
    return weights, grads


def run(optimizer, weights, grads):
    """The weights (float64 copies) after one apply per entry of grads."""
    weights = [np.array(w) for w in weights]
    for step_grads in grads:
        optimizer.apply(weights, step_grads)
    return weights


# ---- each rule written out: (state, w, g, t) -> new w, t counting updates from 1 ----------

def adam_rule(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    def step(s, w, g, t):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        v = s["v"]
        if amsgrad:
            v = s["vmax"] = np.maximum(s.get("vmax", 0), s["v"])
        return w - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * s["m"] / (np.sqrt(v) + eps)
    return step


def nadam_rule(lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    def step(s, w, g, t):
        cache = lambda k: b1 * (1 - 0.5 * 0.96 ** k)  # noqa: E731
        product = math.prod(cache(k) for k in range(1, t + 1))
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
        nesterov_m = (cache(t + 1) * s["m"] / (1 - product * cache(t + 1))
                      + (1 - cache(t)) * g / (1 - product))
        return w - lr * nesterov_m / (np.sqrt(s["v"] / (1 - b2 ** t)) + eps)
    return step


def adagrad_rule(lr=0.001, initial=0.1, eps=1e-7):
    def step(s, w, g, t):
        s["a"] = s.get("a", initial) + g * g
        return w - lr * g / np.sqrt(s["a"] + eps)
    return step


def adadelta_rule(lr=0.001, rho=0.95, eps=1e-7):
    def step(s, w, g, t):
        s["g2"] = rho * s.get("g2", 0) + (1 - rho) * g * g
        delta = -np.sqrt(s.get("d2", 0) + eps) / np.sqrt(s["g2"] + eps) * g
        s["d2"] = rho * s.get("d2", 0) + (1 - rho) * delta * delta
        return w + lr * delta
    return step


def adamax_rule(lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    def step(s, w, g, t):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["u"] = np.maximum(b2 * s.get("u", 0), np.abs(g))
        return w - lr / (1 - b1 ** t) * s["m"] / (s["u"] + eps)
    return step


def lion_rule(lr=0.001, b1=0.9, b2=0.99):
    def step(s, w, g, t):
        m = s.get("m", 0)
        new = w - lr * np.sign(b1 * m + (1 - b1) * g)
        s["m"] = b2 * m + (1 - b2) * g
        return new
    return step


def sgd_rule(lr=0.01):
    return lambda s, w, g, t: w - lr * g


def expected(rule, weights, grads, prepare=lambda gs, ws, t: gs):
    """The weights after the rule, each step's gradients first through ``prepare``."""
    weights = [np.array(w) for w in weights]
    states = [{} for _ in weights]
    for t, step_grads in enumerate(grads, 1):
        step_grads = prepare([np.array(g) for g in step_grads], weights, t)
        weights = [rule(s, w, g, t) for s, w, g in zip(states, weights, step_grads)]
    return weights


RULES = {
    "adam_amsgrad": (lambda **k: optimizers.Adam(0.01, amsgrad=True, **k),
                     adam_rule(0.01, amsgrad=True)),
    "nadam": (lambda **k: optimizers.Nadam(0.01, **k), nadam_rule(0.01)),
    "adagrad": (lambda **k: optimizers.Adagrad(0.05, **k), adagrad_rule(0.05)),
    "adadelta": (lambda **k: optimizers.Adadelta(1.0, **k), adadelta_rule(1.0)),
    "adamax": (lambda **k: optimizers.Adamax(0.01, **k), adamax_rule(0.01)),
    "lion": (lambda **k: optimizers.Lion(0.01, **k), lion_rule(0.01)),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_matches_its_formula(name, problem):
    make, rule = RULES[name]
    got = run(make(), *problem)
    for g, w in zip(got, expected(rule, *problem)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_amsgrad_differs_from_adam_once_the_second_moment_shrinks(rng):
    w = rng.standard_normal(5)
    grads = [[np.full(5, 3.0)], [np.full(5, 0.01)], [np.full(5, 0.01)]]
    plain, ams = run(optimizers.Adam(0.1), [w], grads), run(optimizers.Adam(0.1, amsgrad=True), [w], grads)
    assert not np.allclose(plain[0], ams[0])
    np.testing.assert_allclose(ams[0], expected(adam_rule(0.1, amsgrad=True), [w], grads)[0],
                               rtol=1e-12)


@pytest.mark.parametrize("name,kwargs", [
    ("Nadam", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    ("Adagrad", {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    ("Adadelta", {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7}),
    ("Adamax", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    ("Lion", {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.99}),
    ("Adam", {"amsgrad": False}),
])
def test_keras_defaults_and_names(name, kwargs):
    opt = optimizers.get(name.lower())
    assert type(opt).__name__ == name and opt.name == name.lower()
    config = opt.get_config()
    assert {k: config[k] for k in kwargs} == kwargs
    assert {k: config[k] for k in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm",
                                   "use_ema", "ema_momentum", "ema_overwrite_frequency",
                                   "gradient_accumulation_steps")} == \
        {"weight_decay": None, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
         "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
         "gradient_accumulation_steps": None}
    clone = type(opt).from_config(config)
    assert clone.get_config() == config


# ---- torch where its rule is Keras's (tiny epsilons where torch places epsilon elsewhere) ---

def torch_run(torch, make, weights, grads):
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    opt = make(params)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return [p.detach().numpy() for p in params]


TORCH = {
    # torch's NAdam with momentum_decay=1 takes Keras's momentum cache 0.96^t
    "nadam": (lambda: optimizers.Nadam(0.01, epsilon=1e-12),
              lambda t, p: t.optim.NAdam(p, lr=0.01, eps=1e-12, momentum_decay=1.0)),
    # torch's epsilon is outside the square root, Keras's inside: equal as epsilon vanishes
    "adagrad": (lambda: optimizers.Adagrad(0.05, epsilon=1e-20),
                lambda t, p: t.optim.Adagrad(p, lr=0.05, eps=1e-10, initial_accumulator_value=0.1)),
    "adadelta": (lambda: optimizers.Adadelta(1.0, rho=0.9, epsilon=1e-6),
                 lambda t, p: t.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6)),
    # torch adds epsilon to |g| inside the maximum, Keras to the maximum
    "adamax": (lambda: optimizers.Adamax(0.01, epsilon=1e-12),
               lambda t, p: t.optim.Adamax(p, lr=0.01, eps=1e-12)),
    "adam_amsgrad": (lambda: optimizers.Adam(0.01, amsgrad=True, epsilon=1e-12),
                     lambda t, p: t.optim.Adam(p, lr=0.01, eps=1e-12, amsgrad=True)),
    "adamw": (lambda: optimizers.AdamW(0.01, weight_decay=0.1, epsilon=1e-12),
              lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1, eps=1e-12)),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_rule_matches_torch(name, problem):
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH[name]
    got = run(ours(), *problem)
    want = torch_run(torch, lambda p: theirs(torch, p), *problem)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-10)


# ---- gradient clipping and weight decay -------------------------------------------------

def clip_each(limit):
    def prepare(grads, weights, t):
        return [g * limit / max(np.linalg.norm(g), limit) for g in grads]
    return prepare


def clip_global(limit):
    def prepare(grads, weights, t):
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        return [g * limit / max(norm, limit) for g in grads]
    return prepare


def clip_values(limit):
    return lambda grads, weights, t: [np.clip(g, -limit, limit) for g in grads]


@pytest.mark.parametrize("clipping,prepare", [
    ({"clipnorm": 0.5}, clip_each(0.5)),
    ({"clipnorm": 100.0}, clip_each(100.0)),  # under the limit: unchanged
    ({"global_clipnorm": 0.7}, clip_global(0.7)),
    ({"clipvalue": 0.2}, clip_values(0.2)),
])
@pytest.mark.parametrize("name", ["adamax", "lion", "nadam"])
def test_gradient_clipping_matches_its_formula(name, clipping, prepare, problem):
    make, rule = RULES[name]
    got = run(make(**clipping), *problem)
    for g, w in zip(got, expected(rule, *problem, prepare=prepare)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_global_clipnorm_matches_torch(problem):
    torch = pytest.importorskip("torch")
    weights, grads = problem
    params = [torch.tensor(g) for g in grads[0]]
    for p in params:
        p.grad = p.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm=0.5)
    got = run(optimizers.SGD(1.0, global_clipnorm=0.5), weights, grads[:1])
    for g, w, p in zip(got, weights, params):
        np.testing.assert_allclose(w - g, p.grad.numpy(), rtol=1e-5)  # torch adds 1e-6 to the norm


def test_clipping_options_exclude_each_other():
    with pytest.raises(ValueError, match="at most one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError, match="Expected clipnorm > 0 or None, received clipnorm=-1"):
        optimizers.Adam(clipnorm=-1)


def test_clipping_a_nan_gradient_gives_nan_not_a_silent_number():
    """NaN stays NaN through clipvalue (no fmin that drops it) and global_clipnorm."""
    for kwargs in ({"clipvalue": 1.0}, {"global_clipnorm": 1.0}):
        w = [np.zeros(3), np.zeros(2)]
        optimizers.SGD(0.1, **kwargs).apply(w, [np.array([np.nan, 0.0, 5.0]), np.ones(2)])
        assert np.isnan(w[0][0])
        if "global_clipnorm" in kwargs:
            assert np.isnan(w[1]).all()
        else:
            np.testing.assert_array_equal(w[0][1:], [0.0, -0.1])


def decay(lr, wd, excluded=()):
    def prepare(grads, weights, t):
        for k, w in enumerate(weights):
            if k not in excluded:
                w -= lr * wd * w  # in place: before the rule, as Keras's _apply_weight_decay
        return grads
    return prepare


@pytest.mark.parametrize("name", sorted(RULES))
def test_weight_decay_shrinks_each_weight_before_the_rule(name, problem):
    make, rule = RULES[name]
    lr = make().learning_rate
    got = run(make(weight_decay=0.3), *problem)
    for g, w in zip(got, expected(rule, *problem, prepare=decay(lr, 0.3))):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_weight_decay_follows_the_schedule_and_spares_the_excluded(problem):
    weights, grads = problem
    schedule = schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=1.0)
    opt = optimizers.SGD(schedule, weight_decay=0.5)
    weights = [np.array(w) for w in weights]
    opt.exclude_from_weight_decay(var_list=[weights[1]])
    want = [w.copy() for w in weights]
    for t, step_grads in enumerate(grads):
        lr = 0.1 / (1 + t)
        want = [want[0] * (1 - lr * 0.5) - lr * step_grads[0], want[1] - lr * step_grads[1]]
        opt.apply(weights, step_grads)
    for g, w in zip(weights, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    with pytest.raises(ValueError, match="var_list"):
        opt.exclude_from_weight_decay(var_names=["bias"])


# ---- the moving average -----------------------------------------------------------------

@pytest.mark.parametrize("frequency", [None, 2])
def test_ema_and_finalize(frequency, problem):
    """average = momentum * average + (1 - momentum) * weight after each update, momentum 0 at
    the first; every ``frequency`` steps, and at finalize, the weights take the average."""
    weights, grads = problem
    grads = grads * 2  # 6 steps
    opt = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=frequency)
    got = [np.array(w) for w in weights]
    want, average = [np.array(w) for w in weights], None
    for t, step_grads in enumerate(grads):
        want = [w - 0.1 * g for w, g in zip(want, step_grads)]
        momentum = 0.8 if t else 0.0
        average = [w.copy() if a is None else momentum * a + (1 - momentum) * w
                   for a, w in zip(average or [None] * len(want), want)]
        if frequency and (t + 1) % frequency == 0:
            want = [a.copy() for a in average]
        opt.apply(got, step_grads)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    opt.finalize_variable_values(got)
    for g, a in zip(got, average):
        np.testing.assert_allclose(g, a, rtol=1e-12)


def test_finalize_gives_a_fitted_model_its_moving_average(rng):
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.Sequential([fastcnn.Input(shape=(3,)), fastcnn.layers.Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.1, use_ema=True), loss="mse")
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.standard_normal((16, 2))
    model.fit(x, y.astype(np.float32), batch_size=8, epochs=1, verbose=0)
    average = model.optimizer.slots_for(model.trainable_weights)[-1]
    model.optimizer.finalize_variable_values(model.trainable_weights)
    for w, a in zip(model.trainable_weights, average):
        np.testing.assert_array_equal(w, a)


# ---- gradient accumulation ---------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda **k: optimizers.SGD(0.1, momentum=0.9, **k),
                                  lambda **k: optimizers.Adam(0.01, **k),
                                  lambda **k: optimizers.Nadam(0.01, clipnorm=0.3, **k)])
def test_accumulation_applies_the_mean_every_n_calls(make, rng):
    """n calls with accumulation = one call with the mean gradient, twice over; iterations
    counts the updates, and the weights wait between them."""
    n = 3
    weights = [rng.standard_normal(4), rng.standard_normal(5)]
    calls = [[rng.standard_normal(w.shape) for w in weights] for _ in range(2 * n)]
    means = [[np.mean([c[k] for c in calls[i:i + n]], axis=0) for k in range(len(weights))]
             for i in (0, n)]
    accumulating = make(gradient_accumulation_steps=n)
    got = [w.copy() for w in weights]
    for i, grads in enumerate(calls):
        before = [w.copy() for w in got]
        accumulating.apply(got, grads)
        if (i + 1) % n:
            assert all(np.array_equal(a, b) for a, b in zip(got, before))
        assert accumulating.iterations == (i + 1) // n and accumulating._iterations == i + 1
    want = run(make(), weights, means)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


def test_accumulated_micro_batches_train_as_one_batch_of_their_sum(rng):
    """Dense + mean squared error: the mean of the gradients of n micro-batches is the gradient
    of the batch they make up, so fit on batches of 4 accumulated 4 times follows fit on
    batches of 16 (float32 rounding apart)."""
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 2))).astype(np.float32)

    def trained(batch_size, **options):
        fastcnn.utils.set_random_seed(4)
        model = fastcnn.Sequential([fastcnn.Input(shape=(5,)), fastcnn.layers.Dense(2)])
        model.compile(optimizer=optimizers.SGD(0.05, momentum=0.5, **options), loss="mse")
        model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
        return model

    big, small = trained(16), trained(4, gradient_accumulation_steps=4)
    assert big.optimizer.iterations == small.optimizer.iterations == 8
    for a, b in zip(big.get_weights(), small.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # without accumulation, batches of 4 take 4 times the steps and end elsewhere
    assert not np.allclose(trained(4).get_weights()[0], big.get_weights()[0], rtol=1e-3)


def test_accumulation_decays_once_per_update_at_the_rate_of_that_call(rng):
    """Weight decay and the rate belong to the update: at the n-th call, with the schedule's
    rate for that call's count."""
    w, grads = rng.standard_normal(4), [rng.standard_normal(4) for _ in range(4)]
    opt = optimizers.SGD(lambda step: 0.1 * (step + 1), weight_decay=0.5,
                         gradient_accumulation_steps=2)
    got, want = w.copy(), w.copy()
    for k, g in enumerate(grads):
        opt.apply([got], [g])
        if k % 2:
            lr = 0.1 * (k + 1)
            want = want - lr * 0.5 * want - lr * (grads[k - 1] + g) / 2
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_accumulation_argument_checks():
    with pytest.raises(ValueError, match="gradient_accumulation_steps to be an int >= 2"):
        optimizers.Adam(gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match=r"ema_momentum in \[0, 1\]"):
        optimizers.Adam(use_ema=True, ema_momentum=1.5)


# ---- the learning rate and the step count ----------------------------------------------

def test_learning_rate_reads_as_the_current_float_under_a_schedule(problem):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = optimizers.Adam(schedule)
    assert isinstance(opt.learning_rate, float) and opt.learning_rate == 0.1
    run_weights = [np.array(w) for w in problem[0]]
    opt.apply(run_weights, problem[1][0])
    assert opt.learning_rate == 0.05 and float(opt.learning_rate) == 0.05
    assert opt.schedule is schedule
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.01
    constant = optimizers.SGD(0.1)
    constant.learning_rate = 0.02
    assert constant.learning_rate == 0.02 and constant.schedule is None
    constant.learning_rate = schedule  # a schedule may replace a constant rate, as in Keras
    assert constant.learning_rate == 0.1


def test_schedule_sees_every_call_under_accumulation(problem):
    """As Keras documents: iterations counts updates, a schedule the calls of apply."""
    seen = []
    opt = optimizers.SGD(lambda step: seen.append(step) or 0.1, gradient_accumulation_steps=2)
    weights = [np.array(w) for w in problem[0]]
    for grads in problem[1] * 2:
        opt.apply(weights, grads)
    assert seen == [1, 3, 5] and opt.iterations == 3
    opt.iterations = 1
    assert opt._iterations == 2


def test_an_overflowing_schedule_raises_a_clear_error(problem):
    opt = optimizers.SGD(schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=2.0))
    opt.iterations = 5000
    with pytest.raises(ValueError, match="ExponentialDecay overflows at step 5000"):
        opt.apply([np.array(w) for w in problem[0]], problem[1][0])
    nan_schedule = optimizers.SGD(lambda step: float("nan"))
    with pytest.raises(ValueError, match="finite rate >= 0"):
        nan_schedule.learning_rate  # noqa: B018


@pytest.mark.parametrize("make", [
    lambda: optimizers.Nadam(0.01, clipnorm=1.0, use_ema=True),
    lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.5, weight_decay=0.01),
    lambda: optimizers.Lion(schedules.CosineDecay(0.01, 100), gradient_accumulation_steps=2),
    lambda: optimizers.Adam(amsgrad=True, global_clipnorm=2.0),
])
def test_options_survive_the_config_round_trip(make):
    opt = make()
    clone = type(opt).from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    assert clone.slot_names == opt.slot_names

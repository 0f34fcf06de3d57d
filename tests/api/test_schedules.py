"""Learning-rate schedules against their formulas (Keras's documentation, in our words) at
several steps, their configs and deserialize, overflow, and models whose optimizer follows a
schedule: saved and loaded with their state, and checkpointed during fit."""
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import optimizers
from fastcnn.optimizers import schedules

STEPS = [0, 1, 7, 10, 11, 25, 99, 100, 101, 1000]


def restarts_formula(step, initial, first, t_mul, m_mul, alpha):
    """Walk the periods: period i lasts first * t_mul**i steps and peaks at m_mul**i."""
    start, length, i = 0.0, float(first), 0
    while step >= start + length:
        start, length, i = start + length, length * t_mul, i + 1
    cosine = 0.5 * (1 + math.cos(math.pi * (step - start) / length))
    return initial * ((1 - alpha) * m_mul ** i * cosine + alpha)


def cosine_formula(step, initial, decay_steps, alpha, target=None, warmup=0):
    if target is not None and step < warmup:
        return initial + (target - initial) * step / warmup
    peak = initial if target is None else target
    done = min(step - (warmup if target is not None else 0), decay_steps) / decay_steps
    return peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * done)))


def polynomial_formula(step, initial, decay_steps, end, power, cycle):
    if cycle:
        horizon = decay_steps * max(1, math.ceil(step / decay_steps))
    else:
        horizon, step = decay_steps, min(step, decay_steps)
    return (initial - end) * (1 - step / horizon) ** power + end


CASES = {
    "exponential": (schedules.ExponentialDecay(0.1, 10, 0.9),
                    lambda s: 0.1 * 0.9 ** (s / 10)),
    "exponential_staircase": (schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True),
                              lambda s: 0.1 * 0.9 ** (s // 10)),
    "piecewise": (schedules.PiecewiseConstantDecay([10, 100], [1.0, 0.5, 0.1]),
                  lambda s: 1.0 if s <= 10 else 0.5 if s <= 100 else 0.1),
    "polynomial": (schedules.PolynomialDecay(0.1, 100, 0.01, power=2.0),
                   lambda s: polynomial_formula(s, 0.1, 100, 0.01, 2.0, False)),
    "polynomial_cycle": (schedules.PolynomialDecay(0.1, 10, 0.01, power=0.5, cycle=True),
                         lambda s: polynomial_formula(s, 0.1, 10, 0.01, 0.5, True)),
    "inverse_time": (schedules.InverseTimeDecay(0.1, 10, 0.5),
                     lambda s: 0.1 / (1 + 0.5 * s / 10)),
    "inverse_time_staircase": (schedules.InverseTimeDecay(0.1, 10, 0.5, staircase=True),
                               lambda s: 0.1 / (1 + 0.5 * (s // 10))),
    "cosine": (schedules.CosineDecay(0.1, 100, alpha=0.1),
               lambda s: cosine_formula(s, 0.1, 100, 0.1)),
    "cosine_warmup": (schedules.CosineDecay(0.0, 90, alpha=0.05, warmup_target=0.2,
                                            warmup_steps=11),
                      lambda s: cosine_formula(s, 0.0, 90, 0.05, 0.2, 11)),
    "restarts": (schedules.CosineDecayRestarts(0.1, 10),
                 lambda s: restarts_formula(s, 0.1, 10, 2.0, 1.0, 0.0)),
    "restarts_same_length": (schedules.CosineDecayRestarts(0.1, 10, t_mul=1.0, m_mul=0.5,
                                                           alpha=0.2),
                             lambda s: restarts_formula(s, 0.1, 10, 1.0, 0.5, 0.2)),
    "restarts_shorter_lower": (schedules.CosineDecayRestarts(0.1, 10, t_mul=1.5, m_mul=0.8),
                               lambda s: restarts_formula(s, 0.1, 10, 1.5, 0.8, 0.0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_its_formula(name):
    schedule, formula = CASES[name]
    for step in STEPS:
        assert schedule(step) == pytest.approx(formula(step), rel=1e-12, abs=1e-15), step


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_config_and_deserialize(name):
    schedule = CASES[name][0]
    entry = schedules.serialize(schedule)
    assert entry["class_name"] == type(schedule).__name__
    clone = schedules.deserialize(entry)
    assert type(clone) is type(schedule) and clone.get_config() == schedule.get_config()
    assert [clone(s) for s in STEPS] == [schedule(s) for s in STEPS]


def test_keras_config_keys_and_defaults():
    assert schedules.PolynomialDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "end_learning_rate": 0.0001,
        "power": 1.0, "cycle": False, "name": "PolynomialDecay"}
    assert schedules.CosineDecayRestarts(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 2.0, "m_mul": 1.0,
        "alpha": 0.0, "name": "SGDRDecay"}
    assert schedules.CosineDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
        "warmup_target": None, "warmup_steps": 0}
    assert schedules.PiecewiseConstantDecay([1], [0.1, 0.01]).name == "PiecewiseConstant"


def test_custom_schedule_deserializes_through_custom_objects():
    class Halving(schedules.LearningRateSchedule):
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, step):
            return self.rate / 2 ** step

        def get_config(self):
            return {"rate": self.rate}

    clone = schedules.deserialize(schedules.serialize(Halving(0.4)), custom_objects={"Halving": Halving})
    assert clone(2) == 0.1
    with pytest.raises(ValueError, match="Unknown learning-rate schedule 'Halving'"):
        schedules.deserialize(schedules.serialize(Halving(0.4)))


@pytest.mark.parametrize("make,match", [
    (lambda: schedules.PiecewiseConstantDecay([10, 5], [1, 2, 3]), "strictly increasing"),
    (lambda: schedules.PiecewiseConstantDecay([10], [1.0]), "one boundary fewer than values"),
    (lambda: schedules.PolynomialDecay(0.1, 0), r"Expected decay_steps > 0, received decay_steps=0"),
    (lambda: schedules.CosineDecay(0.1, -5), r"Expected decay_steps > 0"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0), r"Expected t_mul > 0"),
    (lambda: schedules.InverseTimeDecay(0.1, 10, -1.0), r"Expected decay_rate >= 0"),
])
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_overflow_is_a_clear_error_never_an_overflow_error():
    for schedule, step in ((schedules.ExponentialDecay(0.1, 1, 2.0), 2000),
                           (schedules.ExponentialDecay(0.1, 1, 2.0), 10**30),
                           (schedules.CosineDecayRestarts(0.1, 1, t_mul=1.0, m_mul=3.0), 10**6)):
        with pytest.raises(ValueError, match="overflows at step"):
            schedule(step)
    shrinking = schedules.CosineDecayRestarts(0.1, 10, t_mul=0.5)
    assert shrinking(15) == pytest.approx(restarts_formula(15, 0.1, 10, 0.5, 1.0, 0.0))
    with pytest.raises(ValueError, match="t_mul=0.5 < 1 ends after"):
        shrinking(25)
    assert schedules.ExponentialDecay(0.1, 1, 0.5)(5000) == 0.0  # underflow is a rate of 0


# ---- models whose optimizer follows a schedule --------------------------------------------

def _model(optimizer):
    fastcnn.utils.set_random_seed(1)
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), fastcnn.layers.Dense(3),
                                fastcnn.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _data():
    rng = np.random.default_rng(5)
    return (rng.standard_normal((24, 4)).astype(np.float32),
            rng.standard_normal((24, 2)).astype(np.float32))


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, 3, 0.9, staircase=True)),
    lambda: optimizers.Nadam(schedules.CosineDecay(0.0, 20, warmup_target=0.01, warmup_steps=4),
                             clipnorm=1.0, use_ema=True),
    lambda: optimizers.SGD(schedules.PiecewiseConstantDecay([4], [0.1, 0.01]), momentum=0.9,
                           gradient_accumulation_steps=2),
    lambda: optimizers.Adadelta(schedules.PolynomialDecay(1.0, 10, cycle=True), weight_decay=0.1),
    lambda: optimizers.Adam(schedules.CosineDecayRestarts(0.01, 5), amsgrad=True),
])
def test_model_with_a_schedule_saves_loads_and_resumes_bitwise(make, tmp_path):
    """The loaded model has the schedule, the step count and every slot, so that training on
    gives the same weights as training without the round trip."""
    x, y = _data()
    model = _model(make())
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 3 calls: mid-cycle when accumulating 2
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = fastcnn.saving.load_model(path)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_saves_a_model_with_a_schedule(tmp_path):
    x, y = _data()
    model = _model(optimizers.SGD(schedules.InverseTimeDecay(0.1, 2, 1.0)))
    path = str(tmp_path / "epoch{epoch}.keras")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[fastcnn.callbacks.ModelCheckpoint(path)])
    loaded = fastcnn.saving.load_model(tmp_path / "epoch2.keras")
    assert isinstance(loaded.optimizer.schedule, schedules.InverseTimeDecay)
    assert loaded.optimizer.iterations == 6
    assert loaded.optimizer.learning_rate == pytest.approx(0.1 / (1 + 6 / 2))


def test_a_plain_function_as_the_rate_is_refused_when_saving(tmp_path):
    model = _model(optimizers.SGD(lambda step: 0.1))
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        model.save(tmp_path / "m.keras")

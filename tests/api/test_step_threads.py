"""fit's StepThreads: on a machine model where steps at each thread count take known times and
get known CPU, it keeps the full count while the cores are free (timing nothing), drops a thread
when one core is taken and that is faster, and takes it back when the core is free again. In a
real fit, changing the count between steps leaves the weights bitwise the same."""
import numpy as np
import pytest
from conftest import toy_data

import fastcnn
from fastcnn import layers, step_threads
from fastcnn._ops import threads
from fastcnn.step_threads import StepThreads


class Machine:
    """Two cores, and steps whose wall time and CPU share depend on the thread count they run
    with: ``seconds[n]`` per step and ``share[n]`` of wall x n spent on the CPU. ``other`` is
    the share of the machine that other processes keep busy."""

    def __init__(self, seconds, share, other):
        self.seconds, self.share, self.other = seconds, share, other
        self.wall = self.cpu = self.idle = 0.0
        self.counts = []

    def step(self):
        n = threads.effective_n_threads()
        self.counts.append(n)
        wall, used = self.seconds[n], self.seconds[n] * n * self.share[n]
        self.wall += wall
        self.cpu += used
        self.idle += max(2 * wall - used - 2 * wall * self.other, 0.0)


def governed(machine, full=2):
    return StepThreads(full, clock=lambda: machine.wall, cpu_clock=lambda: machine.cpu,
                       idle_clock=lambda: machine.idle)


@pytest.fixture(autouse=True)
def two_threads():
    if not fastcnn._ext.runtime.openmp_enabled():
        pytest.skip("built without OpenMP: one thread whatever is asked")
    fastcnn.set_num_threads(2)
    yield
    fastcnn.set_num_threads(None)


IDLE = dict(seconds={2: 1.0, 1: 1.8}, share={2: 1.0, 1: 1.0}, other=0.0)
BUSY = dict(seconds={2: 2.4, 1: 1.8}, share={2: 0.75, 1: 1.0}, other=0.5)
PASSIVE = dict(seconds={2: 1.0, 1: 1.8}, share={2: 0.5, 1: 1.0}, other=0.0)  # threads sleep


def test_an_idle_machine_keeps_every_thread_and_times_nothing():
    machine = Machine(**IDLE)
    governor = governed(machine)
    for _ in range(3000):
        governor.run(machine.step, 128)
    assert set(machine.counts) == {2}


def test_a_taken_core_drops_a_thread_and_retries_ever_more_rarely():
    machine = Machine(**BUSY)
    governor = governed(machine)
    for _ in range(3000):
        governor.run(machine.step, 128)
    switched = machine.counts.index(1)
    assert switched == step_threads.WINDOW  # the first window finds the core taken
    assert governor.current == 1
    retries = machine.counts[switched + step_threads.PROBE:].count(2)
    # Probes of PROBE steps after 128, 256, ..., 2048 steps, never more.
    assert 0 < retries <= step_threads.PROBE * 7
    assert sum(machine.counts) / len(machine.counts) < 1.03


def test_the_thread_comes_back_when_the_core_is_free_again():
    machine = Machine(**BUSY)
    governor = governed(machine)
    for _ in range(200):
        governor.run(machine.step, 128)
    assert governor.current == 1
    machine.seconds, machine.share, machine.other = IDLE["seconds"], IDLE["share"], 0.0
    for _ in range(200):
        governor.run(machine.step, 128)
    assert governor.current == 2 and machine.counts[-50:] == [2] * 50


def test_threads_that_sleep_on_free_cores_are_left_alone():
    """Little CPU (a passive OpenMP wait policy, say) while the machine has idle CPU: no core
    is taken, so nothing changes."""
    machine = Machine(**PASSIVE)
    governor = governed(machine)
    for _ in range(3000):
        governor.run(machine.step, 128)
    assert set(machine.counts) == {2}


def test_a_drop_undone_at_once_waits_longer_each_time():
    """Little CPU and no idle CPU, and yet one thread fewer is slower (where /proc/stat cannot
    be read, a passive wait policy looks so): each drop is undone by the next timing, and the
    drops come ever more rarely."""
    machine = Machine(**PASSIVE)
    governor = StepThreads(2, clock=lambda: machine.wall, cpu_clock=lambda: machine.cpu,
                           idle_clock=lambda: None)
    for _ in range(8000):
        governor.run(machine.step, 128)
    assert governor.current == 2 and 0 < machine.counts.count(1) < 0.15 * len(machine.counts)
    # Once the waits reach LAST_WAIT steps: one drop of UP_WAIT steps (and a probe) in each.
    late = machine.counts[-2 * step_threads.LAST_WAIT:]
    assert late.count(1) <= 2 * (step_threads.UP_WAIT + step_threads.PROBE)


def test_a_taken_core_found_in_one_fit_stays_found_in_the_next():
    """A loop of one-epoch fits: the drop carries over, so only the first fit runs a window at
    every thread, and each fit's window starts afresh (the time between fits is no step's)."""
    machine = Machine(**BUSY)
    governor = governed(machine)
    for fit in range(5):
        governor.new_fit()
        for _ in range(60):
            governor.run(machine.step, 128)
        machine.wall += 100.0  # between fits: the wall clock runs, the process's CPU does not
        if fit == 0:
            assert machine.counts.index(1) == step_threads.WINDOW
    # after the first window, two threads again only for the probes after 128 and 256 steps
    assert machine.counts[step_threads.WINDOW:].count(2) == 2 * step_threads.PROBE


def test_the_time_between_fits_is_no_steps():
    """On an idle machine, a window that spanned the pause between two fits would see little
    CPU and no idle time recorded, and drop a thread; each fit's window starts afresh."""
    machine = Machine(**IDLE)
    governor = governed(machine)
    for _ in range(7):
        governor.new_fit()
        for _ in range(step_threads.WINDOW // 2 + 1):  # windows would straddle the pauses
            governor.run(machine.step, 128)
        machine.wall += 100.0
    assert set(machine.counts) == {2}


def test_a_model_keeps_its_governor_from_fit_to_fit(monkeypatch):
    fastcnn.utils.set_random_seed(4)
    model = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 4), np.float32), np.ones((8, 2), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    governor = model._step_threads
    model.fit(x, y, epochs=1, verbose=0)
    assert model._step_threads is governor
    fastcnn.set_num_threads(1)  # another count: another governor
    model.fit(x, y, epochs=1, verbose=0)
    assert model._step_threads is not governor and model._step_threads.full == 1


def test_one_thread_or_an_empty_share_is_left_alone():
    machine = Machine(**BUSY)
    for full, samples in ((1, 128), (2, 0)):
        governor = governed(machine, full)
        for _ in range(100):
            governor.run(machine.step, samples)
    assert set(machine.counts) == {2}  # never capped: the set count itself


def test_the_cap_is_the_calling_threads_own():
    import threading
    seen = []
    with threads.capped_threads(1):
        worker = threading.Thread(target=lambda: seen.append(threads.effective_n_threads()))
        worker.start()
        worker.join()
        assert threads.effective_n_threads() == 1
    assert seen == [2] and threads.effective_n_threads() == 2


def _fit_weights(monkeypatch, lost_core):
    monkeypatch.setattr(step_threads, "LOST_CORE", lost_core)
    monkeypatch.setattr(step_threads, "system_idle_seconds", lambda: None)
    monkeypatch.setattr(step_threads, "WINDOW", 2)
    monkeypatch.setattr(step_threads, "UP_WAIT", 2)
    monkeypatch.setattr(step_threads, "DOWN_WAIT", 2)
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([fastcnn.Input((8, 8, 1)), layers.Conv2D(8, 3, activation="relu"),
                                layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.3),
                                layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = toy_data(600)
    counts = []
    real_step = model._train_step

    def counting_step(*args):
        counts.append(threads.effective_n_threads())
        real_step(*args)
    monkeypatch.setattr(model, "_train_step", counting_step)
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    return model.get_weights(), counts


def test_changing_the_count_between_steps_keeps_the_weights_bitwise(monkeypatch):
    steady, counts = _fit_weights(monkeypatch, 0.0)  # never probes
    assert set(counts) == {2}
    switching, counts = _fit_weights(monkeypatch, 10.0)  # every window looks like a taken core
    assert set(counts) == {1, 2}
    for a, b in zip(steady, switching):
        assert a.tobytes() == b.tobytes()

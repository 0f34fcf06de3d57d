"""fit's StepThreads: on a machine model where steps at each thread count, pinned or not, take
known times and get known CPU, it keeps the full count unpinned while the cores are free (timing
nothing); when one core is taken it pins the threads (where it can), then drops one if that is
timed faster, and undoes both when the core is free again. In a real fit, changing the count and pinning the
team between steps leave the weights bitwise the same, and the pins hold during the step only."""
import os
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import toy_data

import fastcnn
from fastcnn import layers, step_threads
from fastcnn._ops import threads
from fastcnn.step_threads import StepThreads


class Machine:
    """Two cores, and steps whose wall time and CPU share depend on the thread count they run
    with: ``seconds[n]`` per step and ``share[n]`` of wall x n spent on the CPU, and
    ``seconds[n, "pinned"]``, ``share[n, "pinned"]`` for a team pinned to its cores (the same as
    unpinned where not given). ``other`` is the share of the machine that other processes keep
    busy."""

    def __init__(self, seconds, share, other):
        self.seconds, self.share, self.other = seconds, share, other
        self.wall = self.cpu = self.idle = 0.0
        self.counts = []
        self.pins = []  # the cores of each step's team, or None
        self._pinned = None

    @contextmanager
    def pinned_team(self, cpus):
        self._pinned = list(cpus)
        try:
            yield
        finally:
            self._pinned = None

    def step(self):
        n = threads.effective_n_threads()
        self.counts.append(n)
        self.pins.append(self._pinned)
        key = (n, "pinned") if self._pinned else n
        seconds, share = self.seconds.get(key, self.seconds[n]), self.share.get(key, self.share[n])
        wall, used = seconds, seconds * n * share
        self.wall += wall
        self.cpu += used
        self.idle += max(2 * wall - used - 2 * wall * self.other, 0.0)


def governed(machine, full=2, pinning=False, idle_clock=None):
    """A StepThreads on the machine model; with ``pinning``, it can pin its team to cores 0, 1
    (the machine's own pins, which change the step's times only)."""
    return StepThreads(full, clock=lambda: machine.wall, cpu_clock=lambda: machine.cpu,
                       idle_clock=idle_clock or (lambda: machine.idle),
                       spread_cpus=lambda n: list(range(n)) if pinning else None,
                       pinned_team=machine.pinned_team)


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
# One core taken: unpinned, the two threads are slower than one; pinned each to a core they
# keep one core and a half, and beat one thread.
BUSY_PINNABLE = dict(seconds={2: 2.4, (2, "pinned"): 1.3, 1: 1.8},
                     share={2: 0.75, (2, "pinned"): 0.75, 1: 1.0}, other=0.5)


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


def test_a_taken_core_pins_the_threads_and_keeps_them_while_they_beat_one_fewer():
    machine = Machine(**BUSY_PINNABLE)
    governor = governed(machine, pinning=True)
    for _ in range(3000):
        governor.run(machine.step, 128)
    first = machine.pins.index([0, 1])
    assert first == step_threads.WINDOW  # the first window finds the core taken
    assert governor.current == 2 and governor.cpus == [0, 1]
    # One thread fewer is timed (and loses) after waits of 128, 256, ... 2048 steps.
    assert 0 < machine.counts.count(1) <= step_threads.PROBE * 6
    assert all(pins == [0, 1] for n, pins in zip(machine.counts[first:], machine.pins[first:])
               if n == 2)


def test_pinned_threads_that_lose_give_way_to_one_thread_fewer():
    machine = Machine(**BUSY)  # pinning changes nothing here
    governor = governed(machine, pinning=True)
    for _ in range(500):
        governor.run(machine.step, 128)
    pinned = [i for i, pins in enumerate(machine.pins) if pins]
    # the first window pins the threads, the next one times and keeps one thread fewer; two
    # threads, pinned, only for the timings of one thread more after that
    window, probe = step_threads.WINDOW, step_threads.PROBE
    assert pinned[:window] == list(range(window, 2 * window))
    assert machine.counts[2 * window:2 * window + probe] == [1] * probe
    assert all(machine.counts[i] == 2 for i in pinned)
    assert machine.counts[-1] == 1 and len(pinned) < window + 3 * probe


def test_the_pins_go_when_the_core_is_free_again():
    machine = Machine(**BUSY_PINNABLE)
    governor = governed(machine, pinning=True)
    for _ in range(100):
        governor.run(machine.step, 128)
    assert governor.cpus == [0, 1]
    machine.seconds, machine.share, machine.other = IDLE["seconds"], IDLE["share"], 0.0
    for _ in range(100):
        governor.run(machine.step, 128)
    assert governor.cpus is None and machine.pins[-50:] == [None] * 50
    assert machine.counts[-50:] == [2] * 50


def test_threads_that_sleep_on_free_cores_are_left_alone():
    """Little CPU (a passive OpenMP wait policy, say) while the machine has idle CPU: no core
    is taken, so nothing changes."""
    machine = Machine(**PASSIVE)
    governor = governed(machine)
    for _ in range(3000):
        governor.run(machine.step, 128)
    assert set(machine.counts) == {2}


def test_a_move_down_that_loses_is_timed_ever_more_rarely():
    """Little CPU and no idle CPU, and yet one thread fewer is slower (where /proc/stat cannot
    be read, a passive wait policy looks so): each timing of one thread fewer loses, and the
    timings come ever more rarely."""
    machine = Machine(**PASSIVE)
    governor = governed(machine, idle_clock=lambda: None)
    for _ in range(8000):
        governor.run(machine.step, 128)
    assert governor.current == 2 and 0 < machine.counts.count(1) < 0.15 * len(machine.counts)
    # Once the waits reach LAST_WAIT steps: one timing of PROBE steps in each.
    late = machine.counts[-2 * step_threads.LAST_WAIT:]
    assert late.count(1) <= 2 * step_threads.PROBE


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


def _thread_masks():
    """{thread id: the CPUs it may run on} for each thread of this process, the kernels' teams
    among them."""
    return {tid: os.sched_getaffinity(int(tid)) for tid in os.listdir("/proc/self/task")}


def _same_masks(before):
    """Every thread of ``before`` that still runs may use the CPUs it could before."""
    after = _thread_masks()
    return all(after[tid] == mask for tid, mask in before.items() if tid in after)


@pytest.mark.skipif(not fastcnn._ext.runtime.can_pin() or len(os.sched_getaffinity(0)) < 2,
                    reason="threads cannot be pinned here, or the process has one CPU")
def test_a_pinned_team_runs_on_its_cores_and_gets_its_own_back():
    before = _thread_masks()
    cpus = threads.spread_cpus(2)
    assert len(set(cpus)) == 2 and set(cpus) <= os.sched_getaffinity(0)
    with threads.pinned_team(cpus[::-1]):
        assert fastcnn._ext.runtime.team_cpus(2).tolist() == cpus[::-1]
        assert os.sched_getaffinity(0) == {cpus[-1]}
        model = fastcnn.Sequential([fastcnn.Input((8, 8, 1)), layers.Conv2D(4, 3)])
        model.predict(np.ones((64, 8, 8, 1), np.float32), verbose=0)  # the kernels' loops
        assert fastcnn._ext.runtime.team_cpus(2).tolist() == cpus[::-1]
    assert _same_masks(before)


def test_cores_that_cannot_be_pinned_pin_nothing():
    if not fastcnn._ext.runtime.can_pin():
        pytest.skip("threads cannot be pinned here")
    before = _thread_masks()
    missing = max(os.sched_getaffinity(0)) + 1  # a CPU this process may not use
    assert fastcnn._ext.runtime.pin_team([missing, missing]) is None
    with threads.pinned_team([missing, missing]):
        assert _same_masks(before)
    assert threads.spread_cpus(len(os.sched_getaffinity(0)) + 1) is None
    assert threads.spread_cpus(1) is None


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
    before = os.sched_getaffinity(0)
    switching, counts = _fit_weights(monkeypatch, 10.0)  # every window looks like a taken core
    assert set(counts) == {1, 2}
    assert os.sched_getaffinity(0) == before  # pinned during the steps only
    for a, b in zip(steady, switching):
        assert a.tobytes() == b.tobytes()

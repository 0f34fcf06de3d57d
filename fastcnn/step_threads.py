"""How many kernel threads fit's training steps use, chosen by watching them.

A training step runs many short parallel loops, each ending at a barrier. When another process
keeps one of the cores busy, the kernel thread that shares that core holds every barrier back
now and then for a whole time slice, and n threads become slower than n - 1. Results are
bitwise the same for any thread count, so the count can change between steps with no effect on
them.

``StepThreads`` compares the steps' CPU time with their wall time. While the threads have their
cores the two agree (an OpenMP thread waiting at a barrier spins, and spinning counts); when a
core is taken, the process gets less CPU than wall time x threads while the machine has no idle
CPU left (/proc/stat, where there is one: a thread that sleeps at barriers under a passive wait
policy also uses less, but leaves its core idle), and the next steps run with one thread
fewer. Below the full count it times a few steps with one thread more now and then
(at doubling intervals while that loses), and keeps that count when its steps are faster, so
the threads come back once the core is free. On an idle machine it keeps every thread and
never probes. A model keeps its StepThreads from fit to fit (``new_fit`` at each), so that a
loop of short fits finds a taken core once.
"""
import os
import statistics
import time
from collections import deque

from ._ops import threads

WINDOW = 8           # steps over which CPU time is compared with wall time
LOST_CORE = 0.85     # CPU time below this share of wall time x threads: a core is taken,
NO_IDLE = 0.15       # when the machine's idle CPU time is below this share of wall time
PROBE = 6            # steps timed at one thread more (their mean: the slow steps count)
FASTER = 0.9         # one thread more is kept when its steps take less than this share
UP_WAIT = 128        # steps after a drop before one thread more is timed
DOWN_WAIT = 128      # steps after a drop was undone before a thread is dropped again
LAST_WAIT = 2048     # the longest wait either way (each doubles while its move is undone)


def system_idle_seconds():
    """Idle CPU-seconds of the whole machine since boot, summed over its CPUs (Linux's
    /proc/stat), or None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")  # idle + iowait
    except (OSError, ValueError, IndexError):
        return None


class StepThreads:
    """Run fit's steps with the thread count that is fastest now: ``run(step, samples)`` calls
    ``step()`` with the kernels capped at the count chosen and times it. ``full`` is the count
    the user set (set_num_threads, OMP_NUM_THREADS or the cores); ``clock`` and ``cpu_clock``
    are the wall and process-CPU clocks and ``idle_clock`` the machine's idle CPU time (None:
    system_idle_seconds), parameters for the tests."""

    def __init__(self, full, clock=time.perf_counter, cpu_clock=time.process_time,
                 idle_clock=None):
        self.full = self.current = full
        self.clock, self.cpu_clock = clock, cpu_clock
        self.idle_clock = idle_clock or system_idle_seconds
        self._recent = deque(maxlen=PROBE)  # seconds per sample of the latest steps at this count
        self._window_steps = 0
        self._window_start = None  # the wall, cpu and idle clocks when the window began
        self._probe = None      # seconds per sample of the steps at one thread more so far
        self._wait = {"up": UP_WAIT, "down": 0}       # steps before the next move that way
        self._interval = {"up": UP_WAIT, "down": DOWN_WAIT}

    def new_fit(self):
        """A fit begins: the window of steps starts again (the time since the last fit's steps
        is no step's), while the thread count and the waits go on from the last fit."""
        self._window_steps = 0

    def run(self, step, samples):
        if self.full < 2 or samples == 0:
            step()
            return
        count = self.current + 1 if self._probe is not None else self.current
        start, cpu = self.clock(), self.cpu_clock()
        with threads.capped_threads(count):
            step()
        per_sample = (self.clock() - start) / samples
        if self._probe is not None:
            self._probe_step(per_sample)
        else:
            self._recent.append(per_sample)
            self._watch(start, cpu)

    def _watch(self, start, cpu):
        """Count the step towards the next move: one thread more timed, now and then, below
        the full count; one thread fewer when a window of steps got less CPU than its threads'
        wall time."""
        self._wait["up"] -= 1
        self._wait["down"] -= 1
        if self.current < self.full and self._wait["up"] <= 0 and len(self._recent) == PROBE:
            self._probe = []
            return
        if self._window_steps == 0:
            self._window_start = (start, cpu, self.idle_clock())
        self._window_steps += 1
        if self._window_steps < WINDOW:
            return
        self._window_steps = 0
        if self.current < 2 or self._wait["down"] > 0:
            return
        wall_start, cpu_start, idle_start = self._window_start
        wall, used = self.clock() - wall_start, self.cpu_clock() - cpu_start
        idle = self.idle_clock()
        free = idle - idle_start if idle is not None and idle_start is not None else 0.0
        if wall > 0 and used < LOST_CORE * wall * self.current and free < NO_IDLE * wall:
            self.current -= 1
            self._recent.clear()
            self._wait["up"] = self._interval["up"] = UP_WAIT

    def _probe_step(self, per_sample):
        self._probe.append(per_sample)
        if len(self._probe) < PROBE:
            return
        faster = statistics.fmean(self._probe) < FASTER * statistics.fmean(self._recent)
        self._probe = None
        if faster:  # the core is free again; if that undid a drop at once, drop later next time
            self.current += 1
            self._recent.clear()
            self._wait["down"] = self._interval["down"]
            self._interval["down"] = min(2 * self._interval["down"], LAST_WAIT)
        else:  # the drop was right: wait longer before timing one thread more again
            self._wait["up"] = self._interval["up"]
            self._interval["up"] = min(2 * self._interval["up"], LAST_WAIT)
            self._interval["down"] = DOWN_WAIT

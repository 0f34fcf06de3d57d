"""How fit's training steps use the kernel threads, chosen by watching them: how many threads,
and whether each is pinned to a core of its own.

A training step runs many short parallel loops, each ending at a barrier. When another process
keeps one of the cores busy, three runnable threads share two cores: the scheduler now and then
puts both kernel threads on one core while the other process has the second, and the barriers
wait for whichever thread is off its core. Pinned each to a core of its own, the threads keep
one core and a half between them (the loops hand out their work units dynamically, so the
thread on the shared core takes fewer), and 2 threads beat 1. Results are bitwise the same for
any thread count and placement, so both can change between steps with no effect on them.

``StepThreads`` compares the steps' CPU time with their wall time. While the threads have their
cores the two agree (an OpenMP thread waiting at a barrier spins, and spinning counts); when a
core is taken, the process gets less CPU than wall time x threads while the machine has no idle
CPU left (/proc/stat, where there is one: a thread that sleeps at barriers under a passive wait
policy also uses less, but leaves its core idle). Then it pins the threads, each to a core of
its own, where it can; once they are pinned (or where they cannot be), it times one thread
fewer for a few steps and keeps that count when faster. Below the full count it times one
thread more now and then; each wait doubles while its move is undone or loses. A window of
steps at every thread that gets its full CPU unpins the threads. On an idle machine it keeps
every thread unpinned and never times anything. A model keeps its StepThreads from fit to fit
(``new_fit`` at each), so that a loop of short fits finds a taken core once.
"""
import os
import statistics
import time
from collections import deque
from contextlib import nullcontext

from ._ops import threads

WINDOW = 8           # steps over which CPU time is compared with wall time
LOST_CORE = 0.85     # CPU time below this share of wall time x threads: a core is taken,
NO_IDLE = 0.15       # when the machine's idle CPU time is below this share of wall time
PROBE = 6            # steps timed for a move (their mean: the slow steps count)
FASTER = 0.9         # a move is kept when its steps take less than this share
UP_WAIT = 128        # steps after a move down before one thread more is timed
DOWN_WAIT = 128      # steps after a move down lost before the next is timed
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
    """Run fit's steps with the threads that are fastest now: ``run(step, samples)`` calls
    ``step()`` with the kernels capped at the count chosen, on the cores chosen, and times it.
    ``full`` is the count the user set (set_num_threads, OMP_NUM_THREADS or the cores);
    ``current`` the count used and ``cpus`` the cores the team is pinned to (None: unpinned).
    ``clock`` and ``cpu_clock`` are the wall and process-CPU clocks, ``idle_clock`` the
    machine's idle CPU time (None: system_idle_seconds), ``spread_cpus`` and ``pinned_team``
    choose cores and pin a team to them (threads'); parameters for the tests."""

    def __init__(self, full, clock=time.perf_counter, cpu_clock=time.process_time,
                 idle_clock=None, spread_cpus=threads.spread_cpus,
                 pinned_team=threads.pinned_team):
        self.full = self.current = full
        self.cpus = None
        self.clock, self.cpu_clock = clock, cpu_clock
        self.idle_clock = idle_clock or system_idle_seconds
        self.spread_cpus, self.pinned_team = spread_cpus, pinned_team
        self._recent = deque(maxlen=PROBE)  # seconds per sample of the latest steps as they run
        self._window_steps = 0
        self._window_start = None  # the wall, cpu and idle clocks when the window began
        self._move = None    # (direction, count) of the thread count being timed
        self._probe = []     # seconds per sample of its steps so far
        self._wait = {"up": UP_WAIT, "down": 0}       # steps before the next move that way
        self._interval = {"up": UP_WAIT, "down": DOWN_WAIT}

    def new_fit(self):
        """A fit begins: the window of steps starts again (the time since the last fit's steps
        is no step's), while the threads and the waits go on from the last fit."""
        self._window_steps = 0

    def run(self, step, samples):
        if self.full < 2 or samples == 0:
            step()
            return
        count = self._move[1] if self._move else self.current
        pinned = self.pinned_team(self.cpus[:count]) if self.cpus and count > 1 else nullcontext()
        start, cpu = self.clock(), self.cpu_clock()
        with threads.capped_threads(count), pinned:
            step()
        per_sample = (self.clock() - start) / samples
        if self._move is not None:
            self._timed(per_sample)
        else:
            self._recent.append(per_sample)
            self._watch(start, cpu)

    def _watch(self, start, cpu):
        """Count the step towards the next move: one thread more timed, now and then, below
        the full count; when a window of steps got less CPU than its threads' wall time, the
        threads pinned, or (pinned already, or where they cannot be) one thread fewer timed;
        the threads unpinned when a window at every thread got all of it."""
        self._wait["up"] -= 1
        self._wait["down"] -= 1
        if self.current < self.full and self._wait["up"] <= 0 and len(self._recent) == PROBE:
            self._move = ("up", self.current + 1)
            return
        if self._window_steps == 0:
            self._window_start = (start, cpu, self.idle_clock())
        self._window_steps += 1
        if self._window_steps < WINDOW:
            return
        self._window_steps = 0
        if self.current < 2:
            return
        wall_start, cpu_start, idle_start = self._window_start
        wall, used = self.clock() - wall_start, self.cpu_clock() - cpu_start
        idle = self.idle_clock()
        free = idle - idle_start if idle is not None and idle_start is not None else 0.0
        lost = wall > 0 and used < LOST_CORE * wall * self.current and free < NO_IDLE * wall
        if not lost:
            if self.current == self.full:
                self.cpus = None
        elif self.cpus is None and (cpus := self.spread_cpus(self.full)):
            self.cpus = cpus
            self._recent.clear()
        elif self._wait["down"] <= 0 and len(self._recent) == PROBE:
            self._move = ("down", self.current - 1)

    def _timed(self, per_sample):
        """One more step of the move being timed; after PROBE, keep it or not."""
        self._probe.append(per_sample)
        if len(self._probe) < PROBE:
            return
        direction, count = self._move
        faster = statistics.fmean(self._probe) < FASTER * statistics.fmean(self._recent)
        self._move, self._probe = None, []
        self._window_steps = 0
        if faster:
            self.current = count
            self._recent.clear()
        if direction == "up" and faster:  # the core is free again; if that undid a move down
            self._wait["down"] = self._interval["down"]         # at once, move later next time
            self._interval["down"] = min(2 * self._interval["down"], LAST_WAIT)
        elif direction == "up":  # the move down was right: wait longer before timing one more
            self._wait["up"] = self._interval["up"]
            self._interval["up"] = min(2 * self._interval["up"], LAST_WAIT)
            self._interval["down"] = DOWN_WAIT
        elif faster:
            self._wait["up"] = self._interval["up"] = UP_WAIT
        else:  # the move down lost: wait longer before timing the next
            self._wait["down"] = self._interval["down"]
            self._interval["down"] = min(2 * self._interval["down"], LAST_WAIT)

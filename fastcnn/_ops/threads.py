"""The kernels' thread count, and the one place a call resolves it.

``set_num_threads``, ``get_num_threads`` and ``show_config`` are public as ``fastcnn.*``. Every
public function of the wrapper modules takes ``n_threads=None`` and turns it into the int the
kernel gets with ``effective_n_threads``, once, at the top of the call.
"""
import functools
import os
import threading
import warnings
from contextlib import contextmanager

from .._ext import runtime

_num_threads = None
_cap = threading.local()  # .n: a calling thread's own upper bound (capped_threads)
# libgomp exits the process, with no Python exception, when it cannot create a thread (its stack
# does not fit an address-space limit, say); more threads than this many per logical CPU only
# take turns on the cores, so larger counts are clamped to it.
THREADS_PER_CPU = 4


@functools.lru_cache(maxsize=None)
def physical_cores():
    """Physical cores this process may run on: hyper-threads share a core's FMA units."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(len(cores), 1)


@functools.lru_cache(maxsize=None)
def max_threads():
    """The most threads a kernel call gets: THREADS_PER_CPU per logical CPU this process may
    run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return THREADS_PER_CPU * max(cpus, 1)


def _clamped(n, source):
    """n, or max_threads() with a warning when n is larger."""
    bound = max_threads()
    if n > bound:
        warnings.warn(f"{source} asks for {n} threads, more than {THREADS_PER_CPU} per logical "
                      f"CPU; using {bound}", UserWarning, stacklevel=4)
        return bound
    return n


def _default_threads():
    return _threads_for_env(os.environ.get("OMP_NUM_THREADS", ""))


@functools.lru_cache(maxsize=8)
def _threads_for_env(value):
    # Cached: every kernel call asks, and the parsing (with the core count) is not free.
    env = value.split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return _clamped(int(env), f"OMP_NUM_THREADS={value!r}")
    return physical_cores()


def _checked_count(n):
    """A positive thread count from ``n``: n > 0 itself (at most max_threads()), n < 0 all
    physical cores but |n| - 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n == 0:
        raise ValueError(f"Expected n_threads to be a non-zero int or None, received "
                         f"n_threads={n!r}")
    return _clamped(n, f"n_threads={n}") if n > 0 else max(physical_cores() + 1 + n, 1)


def get_num_threads():
    """Threads every kernel uses: set_num_threads, else OMP_NUM_THREADS, else physical cores."""
    if not runtime.openmp_enabled():
        return 1
    return _num_threads or _default_threads()


def set_num_threads(n):
    """Use n threads in every kernel; n=None restores the default, n<0 means all but |n|-1.
    Counts above max_threads() (THREADS_PER_CPU per logical CPU) are clamped to it, with a
    UserWarning."""
    global _num_threads
    _num_threads = None if n is None else _checked_count(n)


def effective_n_threads(n_threads=None):
    """The thread count a kernel call gets: ``n_threads`` when given (as for set_num_threads),
    else get_num_threads(). A serial build runs one thread whatever is asked."""
    if n_threads is None:
        n = get_num_threads()
        cap = getattr(_cap, "n", None)
        return n if cap is None else min(n, cap)
    n_threads = _checked_count(n_threads)
    return n_threads if runtime.openmp_enabled() else 1


@contextmanager
def capped_threads(n):
    """Within it, the kernels this thread calls without an explicit n_threads use at most n
    threads (fit's StepThreads); other threads are not affected."""
    previous = getattr(_cap, "n", None)
    _cap.n = n
    try:
        yield
    finally:
        _cap.n = previous


def spread_cpus(n):
    """Distinct logical CPUs, one for each thread of the calling thread's team of n threads:
    the CPU a thread runs on now, unless another took it first, else the lowest this process
    may use that no thread has. None where threads cannot be pinned, or the process may use
    fewer than n CPUs."""
    if n < 2 or not runtime.can_pin():
        return None
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    now = runtime.team_cpus(n) if len(allowed) >= n else None
    if now is None:
        return None
    spread = []
    for cpu in now.tolist():
        spread.append(cpu if cpu in allowed and cpu not in spread else None)
    free = iter(c for c in allowed if c not in spread)
    return [next(free) if cpu is None else cpu for cpu in spread]


@contextmanager
def pinned_team(cpus):
    """Within it, thread t of the calling thread's team of len(cpus) threads runs on logical CPU
    cpus[t] alone, as every kernel's parallel loop from this thread reuses that team; after
    it, each has its own CPUs again. Where pinning fails, nothing is pinned."""
    previous = runtime.pin_team(cpus)
    try:
        yield
    finally:
        if previous is not None:
            runtime.restore_team(previous)


def simd_path():
    from .._ext import conv
    return conv.simd_path()


def show_config():
    """Print how the kernels were built and what they will use here."""
    print(f"fastcnn kernels: OpenMP {'enabled' if runtime.openmp_enabled() else 'DISABLED (serial build)'}")
    print(f"SIMD path:       {simd_path()}")
    print(f"threads:         {get_num_threads()} (physical cores: {physical_cores()}, "
          f"at most {max_threads()})")

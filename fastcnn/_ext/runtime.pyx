"""What the compiled kernels can do on this machine, and the kernels' thread team itself: whether
they were built with OpenMP, and which logical CPU each thread of the calling thread's team runs
on, pinned or not.

Every kernel module shares one OpenMP runtime, and a team of n threads started from one calling
thread is made of the same n threads from one parallel loop to the next, so a CPU pinned here
holds for the kernels' loops until it is restored.
"""
import numpy as np

cdef extern from *:
    """
    #if FASTCNN_OPENMP
    #include <omp.h>
    static int fcnn_openmp_enabled(void) { return 1; }
    #else
    static int fcnn_openmp_enabled(void) { return 0; }
    #endif

    #if defined(__linux__)
    #include <sched.h>
    #define FCNN_CAN_PIN 1
    typedef cpu_set_t fcnn_cpu_mask;
    static int fcnn_current_cpu(void) { return sched_getcpu(); }
    static int fcnn_swap_mask(const fcnn_cpu_mask *mask, fcnn_cpu_mask *previous) {
        if (previous && sched_getaffinity(0, sizeof(fcnn_cpu_mask), previous) != 0) return 1;
        return sched_setaffinity(0, sizeof(fcnn_cpu_mask), mask) != 0;
    }
    static void fcnn_one_cpu(fcnn_cpu_mask *mask, int cpu) { CPU_ZERO(mask); CPU_SET(cpu, mask); }
    #else
    #define FCNN_CAN_PIN 0
    typedef struct { char unused; } fcnn_cpu_mask;
    static int fcnn_current_cpu(void) { return -1; }
    static int fcnn_swap_mask(const fcnn_cpu_mask *m, fcnn_cpu_mask *p) { return 1; }
    static void fcnn_one_cpu(fcnn_cpu_mask *mask, int cpu) {}
    #endif

    /* Team member t of n writes its logical CPU to cpus[t]; the team's size, which the
       runtime may make smaller than n. */
    static int fcnn_team_cpus(int n, int *cpus) {
        int size = 1;
    #if FASTCNN_OPENMP
        #pragma omp parallel num_threads(n)
        {
            cpus[omp_get_thread_num()] = fcnn_current_cpu();
            if (omp_get_thread_num() == 0) size = omp_get_num_threads();
        }
    #else
        cpus[0] = fcnn_current_cpu();
    #endif
        return size;
    }

    /* Team member t of n runs on cpus[t] alone (masks == NULL) or on masks[t] again, and keeps
       the mask it had in previous[t] (when previous != NULL); the number of members that
       failed, or n when the team is smaller than n. */
    static int fcnn_team_masks(int n, const int *cpus, const fcnn_cpu_mask *masks,
                               fcnn_cpu_mask *previous) {
        int failed = 0, size = 1;
    #if FASTCNN_OPENMP
        #pragma omp parallel num_threads(n) reduction(+:failed)
        {
            int t = omp_get_thread_num();
            fcnn_cpu_mask one;
            if (t == 0) size = omp_get_num_threads();
            if (masks == NULL) fcnn_one_cpu(&one, cpus[t]);
            failed += fcnn_swap_mask(masks ? &masks[t] : &one, previous ? &previous[t] : NULL);
        }
    #else
        fcnn_cpu_mask one;
        if (masks == NULL) fcnn_one_cpu(&one, cpus[0]);
        failed = fcnn_swap_mask(masks ? &masks[0] : &one, previous ? &previous[0] : NULL);
    #endif
        return size < n ? n : failed;
    }
    """
    int fcnn_openmp_enabled()
    int FCNN_CAN_PIN
    ctypedef struct fcnn_cpu_mask:
        pass
    int fcnn_team_cpus(int n, int *cpus) nogil
    int fcnn_team_masks(int n, const int *cpus, const fcnn_cpu_mask *masks,
                        fcnn_cpu_mask *previous) nogil


def openmp_enabled():
    """True when the kernels were built with OpenMP."""
    return bool(fcnn_openmp_enabled())


def can_pin():
    """True where a thread can be pinned to a logical CPU (Linux)."""
    return bool(FCNN_CAN_PIN)


def team_cpus(int n):
    """The logical CPU each thread of the calling thread's team of n threads runs on now (int32,
    length n), or None when the runtime gives the team fewer threads or cannot tell."""
    if n < 1:
        raise ValueError(f"Expected n to be a positive int, received n={n!r}")
    cpus = np.full(n, -1, np.int32)
    cdef int[::1] c = cpus
    cdef int size
    with nogil:
        size = fcnn_team_cpus(n, &c[0])
    return cpus if size == n and cpus.min() >= 0 else None


def pin_team(cpus):
    """Pin thread t of the calling thread's team of len(cpus) threads to logical CPU cpus[t]:
    the masks they had before, for ``restore_team``, or None when that failed (then no thread
    of the team is left pinned)."""
    cdef int[::1] c = np.ascontiguousarray(cpus, np.int32)
    cdef int n = c.shape[0], failed
    if n < 1 or not FCNN_CAN_PIN:
        return None
    previous = bytearray(n * sizeof(fcnn_cpu_mask))
    cdef unsigned char[::1] p = previous
    with nogil:
        failed = fcnn_team_masks(n, &c[0], NULL, <fcnn_cpu_mask *>&p[0])
    if failed:
        restore_team(previous)
        return None
    return bytes(previous)


def restore_team(previous):
    """Give each thread of the calling thread's team the mask ``pin_team`` returned for it."""
    cdef const unsigned char[::1] p = previous
    cdef int n = len(previous) // sizeof(fcnn_cpu_mask)
    with nogil:
        fcnn_team_masks(n, NULL, <const fcnn_cpu_mask *>&p[0], NULL)

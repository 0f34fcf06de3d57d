"""The processes of a run: their ranks, and the exception hook that stops them all when one
fails."""
import sys
import time

from mpi4py import MPI

_local = None
_previous_hook = None
_ABORT_GRACE_SECONDS = 1.0


def rank():
    """This process's index among the run's processes, 0 to size() - 1."""
    return MPI.COMM_WORLD.Get_rank()


def size():
    """How many processes the run has."""
    return MPI.COMM_WORLD.Get_size()


def _host():
    """(local rank, local size): this process's place among the run's processes on its host."""
    global _local
    if _local is None:
        host = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
        _local = (host.Get_rank(), host.Get_size())
        host.Free()
    return _local


def local_rank():
    """This process's index among the run's processes on its own host."""
    return _host()[0]


def local_size():
    """How many of the run's processes share this process's host."""
    return _host()[1]


def _abort(kind, value, traceback):
    """sys.excepthook of a process in a run: report the error, then end every process. Without
    it the others wait forever in the next gradient sum for the one that is gone."""
    _previous_hook(kind, value, traceback)
    sys.stderr.write(f"fastcnn.distributed: rank {rank()} of {size()} failed with "
                     f"{kind.__name__}; aborting all ranks\n")
    sys.stderr.flush()
    # mpiexec's proxies forward a rank's output on their own schedule, and an Abort ends them
    # at once: the pause lets the traceback reach the user before it does.
    time.sleep(_ABORT_GRACE_SECONDS)
    MPI.COMM_WORLD.Abort(1)


def init():
    """Joins the run: installs the exception hook under which a process that raises stops every
    process of the run (MPI Abort: mpiexec ends them within seconds, with a non-zero status)
    after printing its traceback and its rank. Calling it again changes nothing."""
    global _previous_hook
    if sys.excepthook is not _abort:
        _previous_hook = sys.excepthook
        sys.excepthook = _abort
    _host()

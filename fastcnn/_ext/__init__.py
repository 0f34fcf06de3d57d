"""The compiled kernels (Cython/C extension modules).

Importing this package checks that they are built here, so that a source folder without them
(after a plain ``pip install .``, Python started in the repository root imports the source
folder, not the installed copy) fails with a message that says so rather than with a missing
name somewhere inside fastcnn.
"""
import importlib
import os

# libgomp reads its wait policy once, when the first kernel module loads it. Left alone, a thread
# that reaches a barrier spins about 300,000 times before it sleeps; when another process holds
# one of the cores, the kernel thread sharing that core then spends its turns spinning and is
# preempted in the middle of its share of the next loop, which every other thread waits for at
# that loop's barrier. A short spin keeps the idle machine's fork/join as fast (the next loop
# of a step starts within it) while a thread that sleeps wakes with the scheduler's priority of a
# sleeper. The figures are in docs/architecture.md. The user's own setting wins. The variable
# stays set: libgomp is one library per process, loaded by the first kernel module that needs it,
# and child processes that import fastcnn would set the same.
SPIN_COUNT = "1000"
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
try:
    importlib.import_module(".runtime", __name__)
except ModuleNotFoundError as error:
    if error.name != __name__ + ".runtime":
        raise
    _here = os.path.dirname(os.path.abspath(__file__))
    _source = os.path.dirname(os.path.dirname(_here))
    raise ImportError(
        f"fastcnn's compiled kernels are not built in {_here}, the fastcnn being imported. "
        f"If {_source} is the fastcnn source folder, build them in place with `pip install -e .` "
        f"there, or start Python outside that folder to import an installed fastcnn.") from None

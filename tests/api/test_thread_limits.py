"""Thread counts far above the machine's CPUs are clamped, with a warning, wherever a count comes
from: set_num_threads, OMP_NUM_THREADS and an op's n_threads. libgomp ends the whole process when
it cannot create a thread, so an unclamped count under an address-space limit is a crash."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from conftest import child_env

import fastcnn
from fastcnn._ops import dense, threads


@pytest.fixture
def default_threads():
    yield
    fastcnn.set_num_threads(None)


def _expected_bound():
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count()
    return 4 * cpus


def test_set_num_threads_clamps_with_a_warning(default_threads):
    bound = _expected_bound()
    assert threads.max_threads() == bound
    with pytest.warns(UserWarning, match=rf"1000000 threads.*using {bound}\b"):
        fastcnn.set_num_threads(10**6)
    if fastcnn._ext.runtime.openmp_enabled():
        assert fastcnn.get_num_threads() == bound
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # counts within the bound pass silently
        fastcnn.set_num_threads(bound)
        fastcnn.set_num_threads(-10**6)  # all cores but 10**6 - 1: at least one
    assert fastcnn.get_num_threads() == 1


def test_omp_num_threads_is_clamped(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "100000")
    with pytest.warns(UserWarning, match=r"OMP_NUM_THREADS='100000' asks for 100000 threads"):
        threads._threads_for_env.cache_clear()
        count = fastcnn.get_num_threads()
    if fastcnn._ext.runtime.openmp_enabled():
        assert count == threads.max_threads()


def test_op_n_threads_is_clamped(rng):
    x = rng.standard_normal((64, 20)).astype(np.float32)
    kernel = rng.standard_normal((20, 7)).astype(np.float32)
    expected = dense.dense_forward(x, kernel, None, n_threads=1)
    with pytest.warns(UserWarning, match="n_threads=1000000 asks for 1000000 threads"):
        assert threads.effective_n_threads(10**6) <= threads.max_threads()
    with pytest.warns(UserWarning, match="n_threads=1000000"):
        got = dense.dense_forward(x, kernel, None, n_threads=10**6)
    assert np.array_equal(got, expected)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_many_threads_under_an_address_space_limit_train():
    """A child under an address-space limit asks for 1024 threads and trains. libgomp reserves a
    stack per thread: the limit leaves room for the clamped count's stacks and 1 GiB more, not
    for 1024 stacks (on a machine of up to 64 logical CPUs)."""
    script = textwrap.dedent("""
        import resource, warnings
        import fastcnn
        from fastcnn._ops import threads
        from conftest import toy_data
        stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
        stack = 8 << 20 if stack == resource.RLIM_INFINITY else max(stack, 8 << 20)
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize"))
        limit = used + threads.max_threads() * stack + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        warnings.simplefilter("ignore")
        fastcnn.set_num_threads(1024)
        x, y = toy_data(64)
        model = fastcnn.Sequential([fastcnn.Input(shape=(8, 8, 1)),
                                    fastcnn.layers.Conv2D(4, 3, activation="relu"),
                                    fastcnn.layers.Flatten(), fastcnn.layers.Dense(3,
                                    activation="softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        print("trained under", limit >> 20, "MiB")
    """)
    env = {**child_env(), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained under" in result.stdout

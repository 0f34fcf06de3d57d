"""Benchmarks record the thread environment and reset fastcnn's thread count after each test."""
import os

import pytest


def pytest_benchmark_update_machine_info(config, machine_info):
    from fastcnn._ops import threads
    machine_info["fastcnn_simd"] = threads.simd_path()
    machine_info["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")


@pytest.fixture(params=[1, 2], ids=lambda t: f"{t}thr")
def threads(request):
    import fastcnn
    fastcnn.set_num_threads(request.param)
    yield request.param
    fastcnn.set_num_threads(None)

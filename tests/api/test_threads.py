"""The thread count: fastcnn.set_num_threads, get_num_threads and OMP_NUM_THREADS, and
show_config (tests/ops/test_threads_ops.py checks the ops room's n_threads argument,
tests/api/test_thread_limits.py the clamp of large counts)."""
import pytest

import fastcnn
from fastcnn._ops import threads


def test_thread_settings(monkeypatch):
    try:
        fastcnn.set_num_threads(1)
        assert fastcnn.get_num_threads() == 1
        fastcnn.set_num_threads(None)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert fastcnn.get_num_threads() == 3
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert fastcnn.get_num_threads() == threads.physical_cores()
        with pytest.raises(ValueError):
            fastcnn.set_num_threads(0)
    finally:
        fastcnn.set_num_threads(None)


def test_show_config(capsys):
    fastcnn.show_config()
    out = capsys.readouterr().out
    assert "OpenMP" in out and "SIMD path" in out and "threads" in out

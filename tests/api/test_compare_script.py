"""bench/compare.py says which frameworks it cannot import and why, and refuses to run without
fastcnn. Stand-in packages on PYTHONPATH decide what imports, so no benchmark ever starts."""
import os
import subprocess
import sys

from conftest import REPO

COMPARE = REPO / "bench" / "compare.py"


def stand_in(root, name, body):
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(body)


def test_compare_names_what_it_cannot_import_and_refuses_without_fastcnn(tmp_path):
    stand_in(tmp_path, "fastcnn", 'raise ImportError("kernels missing for this test")\n')
    stand_in(tmp_path, "tensorflow", 'raise ImportError("no tensorflow for this test")\n')
    stand_in(tmp_path, "torch", "")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, str(COMPARE), "--rounds", "1", "--epochs", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "cannot import fastcnn: ImportError: kernels missing for this test" in out.stderr
    assert "cannot import tensorflow: ImportError: no tensorflow for this test" in out.stderr
    assert "cannot import torch" not in out.stderr
    assert "fastcnn does not import, so there is nothing to compare" in out.stderr
    assert "round 1" not in out.stderr and out.stdout == ""


def test_compare_names_an_interpreter_that_does_not_exist(tmp_path):
    stand_in(tmp_path, "fastcnn", 'raise ImportError("kernels missing for this test")\n')
    missing = str(tmp_path / "no-such-python")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, str(COMPARE), "--keras-python", missing,
                          "--torch-python", missing], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert f"{missing} cannot import tensorflow: FileNotFoundError" in out.stderr
    assert f"{missing} cannot import torch: FileNotFoundError" in out.stderr

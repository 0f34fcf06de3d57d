"""Importing fastcnn from a source folder whose kernels are not built says so, and what to do."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fastcnn

# The package under test without its compiled files: the source folder, or an installed wheel's.
PACKAGE = Path(fastcnn.__file__).resolve().parent
COMPILED = ("*.so", "*.pyd", "*.c", "__pycache__")


def test_import_from_unbuilt_source_folder_says_the_kernels_are_not_built(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "fastcnn", ignore=shutil.ignore_patterns(*COMPILED))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # From tmp_path, Python finds the copy (the first entry of sys.path) before any installed fastcnn.
    out = subprocess.run([sys.executable, "-c", "import fastcnn"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastcnn's compiled kernels are not built in "), out.stderr
    assert str(tmp_path.resolve() / "fastcnn" / "_ext") in last
    assert "pip install -e ." in last and "outside that folder" in last
    assert "cannot import name" not in out.stderr

"""libgomp's wait policy: fastcnn asks for a short spin at barriers (fastcnn._ext.SPIN_COUNT)
unless the user chose a policy, and libgomp, which reads it once when it loads, really gets it.
libgomp reports the settings it runs with when OMP_DISPLAY_ENV=verbose."""
import re
import subprocess
import sys

import pytest
from conftest import child_env

import fastcnn


def _libgomp_setting(env, name):
    out = subprocess.run([sys.executable, "-c", "import numpy, fastcnn"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = re.search(rf"{name} = '([^']*)'", out.stderr)
    if found is None:
        pytest.skip("the OpenMP runtime is not libgomp")
    return found.group(1)


@pytest.fixture
def env():
    if not fastcnn._ext.runtime.openmp_enabled():
        pytest.skip("built without OpenMP")
    env = child_env()
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        env.pop(name, None)
    env["OMP_DISPLAY_ENV"] = "verbose"
    return env


def test_libgomp_spins_briefly_by_default(env):
    assert _libgomp_setting(env, "GOMP_SPINCOUNT") == fastcnn._ext.SPIN_COUNT


def test_the_users_spin_count_wins(env):
    env["GOMP_SPINCOUNT"] = "12345"
    assert _libgomp_setting(env, "GOMP_SPINCOUNT") == "12345"


def test_the_users_wait_policy_wins(env):
    env["OMP_WAIT_POLICY"] = "active"
    assert _libgomp_setting(env, "OMP_WAIT_POLICY") == "ACTIVE"
    assert _libgomp_setting(env, "GOMP_SPINCOUNT") != fastcnn._ext.SPIN_COUNT

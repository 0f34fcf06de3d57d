"""A short soak: 8 epochs of the MNIST convnet on synthetic images, with a checkpoint every epoch,
must keep RSS flat after epoch 2 (tests/api/soak.py runs the long version on MNIST)."""
import re
import subprocess
import sys
from pathlib import Path

from conftest import child_env

SCRIPT = Path(__file__).resolve().parent / "soak.py"


def soak_env():
    """The child's environment, with glibc's mmap threshold fixed at its default of 128 KiB.
    glibc otherwise raises the threshold each time it frees a larger mmapped block (the kernels'
    per-call scratch), after which such blocks come from the heap, and where they land there
    depends on the two threads' timing: the heap then grew by up to 2.4 MiB over the first
    three epochs and stayed put, with the bytes in use unchanged (mallinfo2). A fixed threshold
    makes RSS follow what fastcnn holds, which is what this test is about."""
    return {**child_env(), "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def test_rss_stays_flat_over_eight_epochs():
    result = subprocess.run([sys.executable, str(SCRIPT), "--synthetic", "--samples", "160",
                             "--batch-size", "32", "--epochs", "8", "--tolerance-mb", "2"],
                            env=soak_env(), capture_output=True, text=True, timeout=120)
    rss = [float(mib) for mib in re.findall(r"RSS +([\d.]+) MiB", result.stdout)]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rss) == 8 and max(rss[2:]) - rss[1] <= 2, result.stdout

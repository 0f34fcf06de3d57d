"""A short soak: 8 epochs of the MNIST convnet on synthetic images, with a checkpoint every epoch,
must keep RSS flat after epoch 2 (tests/api/soak.py runs the long version on MNIST)."""
import re
import subprocess
import sys
from pathlib import Path

from conftest import child_env

SCRIPT = Path(__file__).resolve().parent / "soak.py"


def test_rss_stays_flat_over_eight_epochs():
    result = subprocess.run([sys.executable, str(SCRIPT), "--synthetic", "--samples", "160",
                             "--batch-size", "32", "--epochs", "8", "--tolerance-mb", "2"],
                            env=child_env(), capture_output=True, text=True, timeout=120)
    rss = [float(mib) for mib in re.findall(r"RSS +([\d.]+) MiB", result.stdout)]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rss) == 8 and max(rss[2:]) - rss[1] <= 2, result.stdout

"""Data-parallel fits under mpiexec (fastcnn.distributed): bitwise the weights of one process
with the same global batch, for 1, 2 and 4 ranks; a failing rank stops the run; the broadcast,
the averaged logs, and output and checkpoints on rank 0 only. Skipped without mpi4py or
mpiexec."""
import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import child_env

HERE = Path(__file__).parent
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpi4py and mpiexec (pip install fastcnn[mpi])")
TIMEOUT = 180


def _environment():
    """The children's: one kernel thread per rank (the machine may have few cores); Open MPI's
    consent to run as root (CI runs as root), here and never in the library."""
    env = {**child_env(HERE), "OMP_NUM_THREADS": "1"}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def _open_mpi():
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True)
    return "Open MPI" in version.stdout + version.stderr


def run(ranks, *args, check=True, script="worker.py"):
    """``mpiexec -n ranks python script args`` (no mpiexec for ranks None)."""
    launcher = []
    if ranks is not None:
        launcher = [MPIEXEC, "-n", str(ranks)]
        if _open_mpi():
            launcher.append("--oversubscribe")
    result = subprocess.run([*launcher, sys.executable, str(HERE / script), *map(str, args)],
                            capture_output=True, text=True, env=_environment(), timeout=TIMEOUT)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def weights(path):
    with np.load(path) as data:
        return [data[f"arr_{k}"] for k in range(len(data.files))]


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


def history(out):
    with np.load(f"{out}.history.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The one-process fit that the ranks must reproduce: (weights, history)."""
    out = tmp_path_factory.mktemp("single") / "w.npz"
    run(None, "single", out)
    return weights(out), history(out)


@pytest.fixture(scope="module")
def single(single_run):
    return single_run[0]


@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_ranks_give_the_one_process_weights_bitwise(single_run, ranks, tmp_path):
    """The 3- and 4-rank runs oversubscribe a small machine; 3 ranks (not a power of two) sum
    by Allgather and the tree; with 4, ranks 1 and 3 have no sample of the last batch (44
    samples: shares of 32, 0, 12 and 0). The logs, averaged over the ranks by samples, are the
    one process's within rounding."""
    single, single_history = single_run
    out = tmp_path / "w.npz"
    result = run(ranks, "distributed", out)
    assert_bitwise(weights(out), single)
    for r in range(ranks):
        assert_bitwise(weights(f"{out}.rank{r}.npz"), single)
    logs = history(out)
    assert sorted(logs) == sorted(single_history)
    for name, values in single_history.items():
        np.testing.assert_allclose(logs[name], values, rtol=1e-6)
    # Progress output and the checkpoint come from rank 0 alone.
    assert result.stdout.count("Epoch 1/2") == 1, result.stdout
    assert result.stdout.count("Epoch 2/2") == 1, result.stdout
    assert sorted(p.name for p in tmp_path.glob("*.ckpt*")) == ["w.npz.ckpt.weights.h5"]


@needs_mpi
def test_a_pydataset_with_sample_weights_gives_the_one_process_weights_bitwise(tmp_path):
    """Every rank reads the same global batches (x, y, sample_weight) from the PyDataset and
    keeps its share of each; the weights follow their samples."""
    run(None, "single", tmp_path / "one.npz", "--data", "pydataset")
    run(2, "distributed", tmp_path / "two.npz", "--data", "pydataset")
    assert_bitwise(weights(tmp_path / "two.npz"), weights(tmp_path / "one.npz"))
    for name, values in history(tmp_path / "one.npz").items():
        np.testing.assert_allclose(history(tmp_path / "two.npz")[name], values, rtol=1e-6)


@needs_mpi
def test_two_runs_repeat_bitwise(single, tmp_path):
    run(2, "distributed", tmp_path / "a.npz")
    run(2, "distributed", tmp_path / "b.npz")
    assert_bitwise(weights(tmp_path / "a.npz"), weights(tmp_path / "b.npz"))


@needs_mpi
def test_plain_allreduce_trains_the_same_model_within_rounding(single, tmp_path):
    run(2, "distributed", tmp_path / "w.npz", "--plain")
    for u, v in zip(weights(tmp_path / "w.npz"), single):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@needs_mpi
def test_broadcast_gives_every_rank_rank_0s_initial_weights(single, tmp_path):
    """Each rank initialises from its own seed; rank 0's seed is the one-process run's."""
    run(2, "distributed", tmp_path / "w.npz", "--seed-by-rank")
    for r in range(2):
        assert_bitwise(weights(f"{tmp_path / 'w.npz'}.rank{r}.npz"), single)


@needs_mpi
def test_metric_average_callback_averages_the_logs_by_samples(tmp_path):
    """Rank r logs loss r + 1 and accuracy 10 r. Of each epoch's 300 samples rank 0 trains on
    160 (64 + 64 + 32) and rank 1 on 140 (64 + 64 + 12)."""
    run(2, "metrics", tmp_path / "w.npz")
    logs = history(tmp_path / "w.npz")
    np.testing.assert_allclose(logs["loss"], [(160 + 2 * 140) / 300] * 2, rtol=1e-12)
    np.testing.assert_allclose(logs["accuracy"], [10 * 140 / 300] * 2, rtol=1e-12)


@needs_mpi
def test_a_rank_that_raises_stops_every_rank(single, tmp_path):
    """Rank 1 raises at step 1 of epoch 2; without the abort hook rank 0 would wait for it
    forever in the next gradient sum."""
    start = time.monotonic()
    result = run(2, "fail", tmp_path / "w.npz", check=False)
    assert time.monotonic() - start < 60
    assert result.returncode != 0
    assert "RuntimeError: planned failure at step 1" in result.stderr
    assert "rank 1 of 2 failed with RuntimeError; aborting all ranks" in result.stderr
    # Rank 0's checkpoint of epoch 1 is whole: it loads, into the model of the one-process run.
    sys.path.insert(0, str(HERE))
    try:
        from worker import make_model
    finally:
        sys.path.remove(str(HERE))
    model = make_model(1)
    model.load_weights(tmp_path / "w.npz.ckpt.weights.h5")
    assert [w.shape for w in model.get_weights()] == [w.shape for w in single]


@needs_mpi
def test_a_run_stopped_by_a_failed_rank_resumes_from_its_backups(single, tmp_path):
    """Rank 1 raises in epoch 2 and every rank stops; the same command started again restores
    each rank's end-of-epoch-1 backup and ends with the one-process weights."""
    backup = tmp_path / "backup"
    failed = run(2, "fail", tmp_path / "w.npz", "--backup", backup, check=False)
    assert failed.returncode != 0 and "planned failure" in failed.stderr
    assert sorted(p.name for p in backup.iterdir()) == ["rank0", "rank1"]
    resumed = run(2, "distributed", tmp_path / "w.npz", "--backup", backup)
    assert "Epoch 2/2" in resumed.stdout and "Epoch 1/2" not in resumed.stdout  # epoch 1 restored
    assert_bitwise(weights(tmp_path / "w.npz"), single)
    assert not any(backup.glob("rank*/*"))  # a finished fit deletes its backups


def test_importing_fastcnn_does_not_import_mpi4py():
    code = "import sys, fastcnn; assert 'mpi4py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env())


def test_without_mpi4py_the_error_says_how_to_install_it():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "try:\n    import fastcnn.distributed\n"
            "except ImportError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=child_env(), check=True)
    assert "pip install fastcnn[mpi]" in result.stdout


@needs_mpi
def test_cli_trains_the_mnist_convnet_data_parallel(tmp_path):
    """python -m fastcnn --distributed under mpiexec -n 2: one progress bar, and the model of the
    one-process run (saved by rank 0 alone)."""
    argv = ["-m", "fastcnn", "--epochs", "2", "--limit", "512", "--seed", "1"]
    env = _environment()
    one = subprocess.run([sys.executable, *argv, "--save", str(tmp_path / "one.keras")],
                         capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr
    launcher = [MPIEXEC, "-n", "2", *(["--oversubscribe"] if _open_mpi() else [])]
    two = subprocess.run([*launcher, sys.executable, *argv, "--distributed",
                          "--save", str(tmp_path / "two.keras")],
                         capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("Epoch 2/2") == 1 and two.stdout.count("Test loss") == 1
    assert "on 2 processes" in two.stdout
    report = [line for line in one.stdout.splitlines() if line.startswith("Test ")]
    assert report == [line for line in two.stdout.splitlines() if line.startswith("Test ")]
    from fastcnn.models import load_model
    assert_bitwise(load_model(tmp_path / "two.keras").get_weights(),
                   load_model(tmp_path / "one.keras").get_weights())

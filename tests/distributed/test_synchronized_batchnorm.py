"""BatchNormalization(synchronized=True) under mpiexec: every rank's fit gives bitwise the
weights (moving statistics included) of one process with the same global batch, for 2, 3 and 4
ranks (on 4 the last batch leaves two ranks without a sample); unsynchronized layers do not,
and MPI's Allreduce gives them within rounding. Skipped without mpi4py or mpiexec.

In float32 the statistics' double sums rarely round differently enough to change a float32
result, so these runs check what is totalled (every share once, the counts, gamma's and beta's
gradients once); that the order of the additions is the one process's is checked in float64 by
tests/kernels/test_normalization_kernels.py (shares as threads)."""
import numpy as np
import pytest

from test_distributed_training import assert_bitwise, needs_mpi, run, weights

pytestmark = needs_mpi


def fit(ranks, out, *options):
    """Each rank's weights after the fit (one process's for ranks None)."""
    run(ranks, "single" if ranks is None else "distributed", out, *options,
        script="syncbn_worker.py")
    return [weights(f"{out}.rank{r}.npz") for r in range(ranks or 1)]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return fit(None, tmp_path_factory.mktemp("syncbn") / "one.npz")[0]


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_synchronized_ranks_give_the_one_process_weights_bitwise(one_process, ranks, tmp_path):
    for rank_weights in fit(ranks, tmp_path / "w.npz"):
        assert_bitwise(rank_weights, one_process)


def test_unsynchronized_ranks_differ_from_one_process(one_process, tmp_path):
    """Per-rank statistics: the same fit without synchronization (the test can fail)."""
    got = fit(2, tmp_path / "w.npz", "--unsynchronized")[0]
    moving_mean = 4  # the first BatchNormalization's: after the conv's kernel and bias, gamma, beta
    assert not np.allclose(got[moving_mean], one_process[moving_mean], rtol=1e-3)


def test_plain_allreduce_synchronizes_within_rounding(one_process, tmp_path):
    """deterministic=False: MPI's sums, in its own order; float32 weights after 6 Adam steps."""
    for a, b in zip(fit(2, tmp_path / "w.npz", "--plain")[0], one_process):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

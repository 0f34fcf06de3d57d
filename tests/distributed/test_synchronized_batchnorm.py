"""BatchNormalization(synchronized=True) under mpiexec: the ranks' fit gives bitwise the weights
(moving statistics included) of one process with the same global batch, for 2 ranks and for 4
(where the last batch leaves two ranks without a sample); unsynchronized layers do not, and
MPI's Allreduce gives them within rounding. Skipped without mpi4py or mpiexec."""
import numpy as np
import pytest

from test_distributed_training import assert_bitwise, needs_mpi, run, weights

pytestmark = needs_mpi


def fit(ranks, out, *options):
    run(ranks, "single" if ranks is None else "distributed", out, *options,
        script="syncbn_worker.py")
    return weights(out)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return fit(None, tmp_path_factory.mktemp("syncbn") / "one.npz")


@pytest.mark.parametrize("ranks", [2, 4])
def test_synchronized_ranks_give_the_one_process_weights_bitwise(one_process, ranks, tmp_path):
    assert_bitwise(fit(ranks, tmp_path / "w.npz"), one_process)


def test_unsynchronized_ranks_differ_from_one_process(one_process, tmp_path):
    """Per-rank statistics: the same fit without synchronization (the test can fail)."""
    got = fit(2, tmp_path / "w.npz", "--unsynchronized")
    moving_mean = 4  # the first BatchNormalization's: after the conv's kernel and bias, gamma, beta
    assert not np.allclose(got[moving_mean], one_process[moving_mean], rtol=1e-3)


def test_plain_allreduce_synchronizes_within_rounding(one_process, tmp_path):
    """deterministic=False: MPI's sums, in its own order; float32 weights after 6 Adam steps."""
    for a, b in zip(fit(2, tmp_path / "w.npz", "--plain"), one_process):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

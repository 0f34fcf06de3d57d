"""UpdateOperands, the optimizer wrappers' kept operand views: they read each call's new values."""
import numpy as np

from fastcnn._ops import optim as optim_ops


def test_updates_see_every_change_of_their_operands_between_calls():
    """UpdateOperands keeps the checked views of the last call's arrays for the next step; new
    values in the same arrays, and a list's new contents, must still be read."""
    p, v, g = np.zeros(3, np.float32), np.zeros(3, np.float32), np.ones(3, np.float32)
    kept = optim_ops.UpdateOperands()
    optim_ops.sgd_update([p], [g], [v], 1.0, 0.0, False, operands=kept)
    g[:] = 2
    optim_ops.sgd_update([p], [g], [v], 1.0, 0.0, False, operands=kept)
    np.testing.assert_array_equal(p, [-3, -3, -3])
    grad = [1.0, 1.0, 1.0]
    optim_ops.sgd_update([p], [grad], [v], 1.0, 0.0, False, operands=kept)
    grad[0] = 5.0
    optim_ops.sgd_update([p], [grad], [v], 1.0, 0.0, False, operands=kept)
    np.testing.assert_array_equal(p, [-9, -5, -5])

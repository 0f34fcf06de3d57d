"""The loss wrappers' label checks: labels outside [0, K) are refused, whatever their dtype."""
import numpy as np
import pytest

from fastcnn._ops import loss as loss_ops


def test_labels_out_of_range_are_refused_by_the_ops(out_of_range_labels):
    kind, _, logits, labels = out_of_range_labels
    with pytest.raises(ValueError, match=r"labels in \[0, 10\)"):
        getattr(loss_ops, kind)(logits, labels, 1.0)
    huge = np.full(5000, 2**63 + 1, np.uint64)  # negative once cast to the kernels' int64
    with pytest.raises(ValueError, match=rf"labels in \[0, 10\), received {2**63 + 1}"):
        getattr(loss_ops, kind)(logits, huge, 1.0)

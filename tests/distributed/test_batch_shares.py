"""The cut of a batch into processes' shares (fastcnn._ops.partials) against the kernels: for
any number of processes, the weight gradients of the shares, added along the top of the
summation tree, are bitwise the gradient of the whole batch, and the dropout masks of the shares
are the whole batch's. No MPI needed: the shares run one after the other here."""
import numpy as np
import pytest

from fastcnn._ops import conv, dense, dropout, partials

PARTS = [1, 2, 3, 4, 5, 8]
BATCHES = [1, 7, 8, 20, 40, 61, 128, 300]


def by_shares(n, parts, gradient):
    """The whole batch's gradient from each share's ``gradient(start, stop)`` (a tuple of
    arrays), added along the tree."""
    sums = [gradient(a, b) if b > a else None for a, b in partials.shares(n, parts)]
    return partials.combine(sums, lambda p, q: tuple(np.add(u, v) for u, v in zip(p, q)))


@pytest.mark.parametrize("parts", PARTS)
@pytest.mark.parametrize("n", BATCHES)
def test_shares_cover_the_batch_in_order_at_chunk_bounds(n, parts):
    bounds = partials.shares(n, parts)
    assert len(bounds) == parts
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(b[1] == c[0] for b, c in zip(bounds, bounds[1:]))
    assert all(a % partials.GRAIN == 0 for a, b in bounds if b > a)
    assert bounds[0][1] > 0  # the first process always has samples: it reports progress


def test_shares_are_even_for_a_power_of_two_of_chunks():
    """Units of 32 samples (the dense kernels' chunk; conv chunks are 8 images)."""
    assert partials.GRAIN == 32
    assert partials.shares(128, 4) == ((0, 32), (32, 64), (64, 96), (96, 128))
    assert partials.shares(256, 2) == ((0, 128), (128, 256))
    assert partials.shares(160, 4) == ((0, 64), (64, 128), (128, 160), (160, 160))
    assert partials.shares(20, 2) == ((0, 20), (20, 20))


def test_combine_adds_along_the_tree():
    """Four sums a, b, c, d: (a + b) + (c + d), as recursive doubling adds them; an empty share
    drops out."""
    log = []

    def add(p, q):
        log.append((p, q))
        return f"({p}+{q})"

    assert partials.combine(["a", "b", "c", "d"], add) == "((a+b)+(c+d))"
    assert partials.combine(["a", "b", "c", None], add) == "((a+b)+c)"
    assert partials.combine([None, None], add) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts", PARTS)
@pytest.mark.parametrize("n, features, outputs", [(61, 37, 10), (200, 20, 16), (300, 9, 3)])
def test_dense_gradient_is_the_sum_of_the_shares(dtype, parts, n, features, outputs):
    """The narrow (<= 14 outputs) and the general dW kernels, and db."""
    rng = np.random.default_rng(n + parts)
    x = rng.standard_normal((n, features)).astype(dtype)
    dy = rng.standard_normal((n, outputs)).astype(dtype)
    whole_db = np.empty(outputs, dtype)
    whole = dense.dense_backward_weight(x, dy, db=whole_db)

    def gradient(a, b):
        db = np.empty(outputs, dtype)
        return dense.dense_backward_weight(x[a:b], dy[a:b], db=db, n_threads=2), db

    dw, db = by_shares(n, parts, gradient)
    assert dw.tobytes() == whole.tobytes()
    assert db.tobytes() == whole_db.tobytes()


@pytest.mark.parametrize("parts", PARTS)
@pytest.mark.parametrize("n", [20, 130])
def test_conv_gradient_is_the_sum_of_the_shares(parts, n):
    rng = np.random.default_rng(n * parts)
    x = rng.standard_normal((n, 7, 6, 3)).astype(np.float32)
    shape = (3, 3, 3, 5)
    dy = rng.standard_normal((n, 7, 6, 5)).astype(np.float32)
    whole_db = np.empty(5, np.float32)
    whole = conv.conv2d_backward_weight(x, dy, shape, (1, 1), "same", db=whole_db)

    def gradient(a, b):
        db = np.empty(5, np.float32)
        return conv.conv2d_backward_weight(x[a:b], dy[a:b], shape, (1, 1), "same", db=db), db

    dw, db = by_shares(n, parts, gradient)
    assert dw.tobytes() == whole.tobytes()
    assert db.tobytes() == whole_db.tobytes()


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_fused_conv_pool_dropout_shares_draw_the_whole_batch_mask(parts):
    """conv -> max pool -> dropout in one step: each share's output is the whole batch's rows,
    and its gradients add up to the whole batch's."""
    rng = np.random.default_rng(parts)
    n = 100
    x = rng.standard_normal((n, 8, 8, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    args = dict(strides=(1, 1), padding="valid", pool_size=(2, 2), pool_strides=(2, 2), relu=True)
    mask = (2**40 + 3, 0.5)
    out, argmax = conv.conv2d_maxpool_forward(x, w, bias, **args, dropout=(*mask, 0))
    dy = rng.standard_normal(out.shape).astype(np.float32)
    whole_db = np.empty(4, np.float32)
    whole, _ = conv.conv2d_maxpool_backward(x, dy, out, argmax, w, **args, db=whole_db,
                                            need_dx=False, dropout=(*mask, 0))

    def gradient(a, b):
        part, part_argmax = conv.conv2d_maxpool_forward(x[a:b], w, bias, **args,
                                                        dropout=(*mask, a))
        assert part.tobytes() == out[a:b].tobytes()
        db = np.empty(4, np.float32)
        dw, _ = conv.conv2d_maxpool_backward(x[a:b], dy[a:b], part, part_argmax, w, **args,
                                             db=db, need_dx=False, dropout=(*mask, a))
        return dw, db

    dw, db = by_shares(n, parts, gradient)
    assert dw.tobytes() == whole.tobytes()
    assert db.tobytes() == whole_db.tobytes()


def test_dropout_share_draws_its_rows_of_the_whole_batch_mask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 5, 3)).astype(np.float32)
    whole = dropout.dropout_forward(x, 99, 0.5)
    for a, b in partials.shares(100, 3):
        part = dropout.dropout_forward(x[a:b], 99, 0.5, first=a)
        assert part.tobytes() == whole[a:b].tobytes()
        back = dropout.dropout_backward(x[a:b], 99, 0.5, first=a)
        assert back.tobytes() == whole[a:b].tobytes()


def test_dropout_first_is_checked():
    with pytest.raises(ValueError, match="first"):
        dropout.dropout_forward(np.ones((2, 2), np.float32), 1, 0.5, first=-1)

"""The weight-gradient kernels' partial sums, summed in blocks as they come: bitwise the sum of
every chunk's gradient along fcnn_sum_parts's tree, for any thread count (which sets the block
size) and chunk counts off the powers of two; and scratch that does not grow with the batch."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import child_env
from fastcnn._ext import conv as conv_ext
from fastcnn._ext import dense as dense_ext
from fastcnn._ops import conv, dense

CHUNKS = [1, 3, 13, 37, 70]  # 1 to 3 threads: blocks of 1 to 8 chunks, the last one clipped
THREADS = [1, 2, 3]


def tree_sum(parts):
    """fcnn_sum_parts's tree: at s = 1, 2, 4, ... part k (a multiple of 2s) adds part k + s."""
    parts = list(parts)
    s = 1
    while s < len(parts):
        for k in range(0, len(parts) - s, 2 * s):
            parts[k] = tuple(a + b for a, b in zip(parts[k], parts[k + s]))
        s *= 2
    return parts[0]


def check_tree(n, chunk, gradient):
    """``gradient(start, stop, n_threads)`` (a tuple of arrays) over the batch of n samples, at
    every thread count, against the tree over the chunks' gradients."""
    want = tree_sum(gradient(a, min(a + chunk, n), 1) for a in range(0, n, chunk))
    for n_threads in THREADS:
        got = gradient(0, n, n_threads)
        for g, w in zip(got, want):
            assert g.tobytes() == w.tobytes(), n_threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_dense_dw_is_the_tree_over_the_chunks(dtype, chunks):
    """20 outputs: the general kernels (the narrow ones take up to 14)."""
    n = 32 * chunks - 5 if chunks > 1 else 9
    rng = np.random.default_rng(chunks)
    x = rng.standard_normal((n, 23)).astype(dtype)
    dy = rng.standard_normal((n, 20)).astype(dtype)

    def gradient(a, b, n_threads):
        db = np.empty(20, dtype)
        return dense.dense_backward_weight(x[a:b], dy[a:b], db=db, n_threads=n_threads), db

    check_tree(n, dense_ext.SAMPLES_PER_PARTIAL, gradient)


def conv_gradients(x, dy, kernel_shape, **options):
    def gradient(a, b, n_threads):
        db = np.empty(kernel_shape[3], x.dtype)
        return conv.conv2d_backward_weight(x[a:b], dy[a:b], kernel_shape, (1, 1), "valid",
                                           db=db, n_threads=n_threads, **options), db
    return gradient


@pytest.mark.parametrize("chunks", CHUNKS)
def test_conv_dw_is_the_tree_over_the_chunks(chunks):
    n = 8 * chunks - 3 if chunks > 1 else 5
    rng = np.random.default_rng(chunks)
    x = rng.standard_normal((n, 6, 5, 4)).astype(np.float64)
    dy = rng.standard_normal((n, 4, 3, 6)).astype(np.float64)
    check_tree(n, conv_ext.SAMPLES_PER_PARTIAL, conv_gradients(x, dy, (3, 3, 4, 6)))


@pytest.mark.parametrize("chunks", [13, 37])
def test_grouped_and_dilated_conv_dw_is_the_tree_over_the_chunks(chunks):
    n = 8 * chunks - 1
    rng = np.random.default_rng(chunks)
    x = rng.standard_normal((n, 7, 6, 4)).astype(np.float32)
    dy = rng.standard_normal((n, 3, 2, 6)).astype(np.float32)
    check_tree(n, conv_ext.SAMPLES_PER_PARTIAL,
               conv_gradients(x, dy, (3, 3, 2, 6), dilation_rate=(2, 2), groups=2))


@pytest.mark.parametrize("chunks", [13, 37])
def test_transposed_conv_dw_and_db_are_the_tree_over_the_chunks(chunks):
    n = 8 * chunks - 6
    rng = np.random.default_rng(chunks)
    x = rng.standard_normal((n, 3, 4, 5)).astype(np.float32)
    dy = rng.standard_normal((n, 5, 6, 3)).astype(np.float32)

    def gradient(a, b, n_threads):
        db = np.empty(3, np.float32)
        return conv.conv2d_transpose_backward_weight(x[a:b], dy[a:b], (3, 3, 3, 5), (1, 1),
                                                     "valid", db=db, n_threads=n_threads), db

    check_tree(n, conv_ext.SAMPLES_PER_PARTIAL, gradient)


@pytest.mark.parametrize("chunks", [13, 37])
def test_conv_maxpool_dw_is_the_tree_over_the_chunks(chunks):
    n = 8 * chunks - 2
    rng = np.random.default_rng(chunks)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    pooled, argmax = conv.conv2d_maxpool_forward(x, kernel, None, (1, 1), "valid", (2, 2), (2, 2),
                                                 relu=True)
    dy = rng.standard_normal(pooled.shape).astype(np.float32)

    def gradient(a, b, n_threads):
        db = np.empty(5, np.float32)
        dw, _ = conv.conv2d_maxpool_backward(x[a:b], dy[a:b], pooled[a:b], argmax[a:b], kernel,
                                             (1, 1), "valid", (2, 2), (2, 2), relu=True, db=db,
                                             need_dx=False, n_threads=n_threads)
        return dw, db

    check_tree(n, conv_ext.SAMPLES_PER_PARTIAL, gradient)


PEAK = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from fastcnn._ops import conv, dense
    kind, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    if kind == "conv":
        x = rng.standard_normal((n, 3, 3, 64), dtype=np.float32)
        dy = rng.standard_normal((n, 1, 1, 64), dtype=np.float32)
        run = lambda: conv.conv2d_backward_weight(x, dy, (3, 3, 64, 64), (1, 1), "valid",
                                                  n_threads=2)
    else:
        x = rng.standard_normal((n, 576), dtype=np.float32)
        dy = rng.standard_normal((n, 64), dtype=np.float32)
        run = lambda: dense.dense_backward_weight(x, dy, n_threads=2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps((after - before) * 1024))
""")


def peak_growth(kind, n):
    """Bytes by which one dW call raises a fresh process's peak RSS."""
    out = subprocess.run([sys.executable, "-c", PEAK, kind, str(n)], capture_output=True,
                         text=True, check=True, env=child_env())
    return json.loads(out.stdout)


@pytest.mark.parametrize("kind, module", [("conv", conv_ext), ("dense", dense_ext)])
def test_dw_scratch_does_not_grow_with_the_batch(kind, module):
    """dW of 577 x 64 values (148 KB) with one partial sum per chunk would take 19 MB at 128
    chunks and 151 MB at 1024; two threads' stacks (a partial sum for each level of the blocks)
    and at most 16 block roots take under 40 partial sums at either."""
    step = 577 * 64 * 4
    for chunks in (128, 1024):
        assert peak_growth(kind, chunks * module.SAMPLES_PER_PARTIAL) < 40 * step, chunks

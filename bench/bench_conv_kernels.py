"""float32 convolution kernels: forward, dX and dW on the MNIST-convnet and CIFAR-VGG shapes,
and the fused conv + max pooling kernels on the shapes that feed a pooling.

    pytest bench/bench_conv_kernels.py            # pytest-benchmark, each paired with a check
    python bench/bench_conv_kernels.py [names]    # GFLOP/s table at 1 and 2 threads, with the
                                                  # OpenBLAS sgemm of the same matrix shapes

GFLOP/s counts 2*N*OH*OW*KH*KW*CI*CO per pass (useful work only). The GEMM yardstick times a
bare numpy float32 matmul of each pass's im2col-shaped matrices, im2col itself not included,
with OPENBLAS_NUM_THREADS set to the thread count (in a subprocess, since OpenBLAS reads it once).
"""
import functools
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import conv

# name: (batch, height, width, c_in, c_out, kernel, padding); all stride 1
SHAPES = {
    "mnist-conv1": (128, 28, 28, 1, 32, 3, "valid"),
    "mnist-conv2": (128, 13, 13, 32, 64, 3, "valid"),
    "vgg-32x32x3-32": (64, 32, 32, 3, 32, 3, "same"),
    "vgg-32x32x32-32": (64, 32, 32, 32, 32, 3, "same"),
    "vgg-16x16x32-64": (64, 16, 16, 32, 64, 3, "same"),
    "vgg-16x16x64-64": (64, 16, 16, 64, 64, 3, "same"),
    "vgg-8x8x64-128": (64, 8, 8, 64, 128, 3, "same"),
    "resnet-32x32x16-16": (128, 32, 32, 16, 16, 3, "same"),
    "unet-64x64x16-16": (32, 64, 64, 16, 16, 3, "same"),
    "unet-64x64x32-16": (32, 64, 64, 32, 16, 3, "same"),
    "unet-32x32x32-32": (32, 32, 32, 32, 32, 3, "same"),
}
PASSES = ("forward", "backward_input", "backward_weight")
CHECK_IMAGES = 4  # forward and dX are per image, so checking a few images checks the kernel


def geometry(name):
    n, h, w, ci, co, k, padding = SHAPES[name]
    pad = k // 2 if padding == "same" else 0
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    return n, h, w, ci, co, k, pad, oh, ow


def flops(name):
    n, h, w, ci, co, k, pad, oh, ow = geometry(name)
    return 2.0 * n * oh * ow * k * k * ci * co


@functools.lru_cache(maxsize=None)
def arrays(name):
    n, h, w, ci, co, k, pad, oh, ow = geometry(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, ci), dtype=np.float32)
    wt = (rng.standard_normal((k, k, ci, co), dtype=np.float32) / np.sqrt(k * k * ci)).astype(np.float32)
    bias = rng.standard_normal(co, dtype=np.float32)
    dy = rng.standard_normal((n, oh, ow, co), dtype=np.float32)
    return x, wt, bias, dy


def make_call(module, name, kind, n_threads, batch=None):
    """(call, outputs): call() runs one pass of `module` on the shape, writing into outputs."""
    n, h, w, ci, co, k, pad, oh, ow = geometry(name)
    x, wt, bias, dy = (a[:batch] if a.ndim == 4 and batch else a for a in arrays(name))
    geo = (1, 1, pad, pad)
    if kind == "forward":
        out = np.empty((x.shape[0], oh, ow, co), np.float32)
        return ((lambda: module.conv2d_forward(x, wt, bias, out, None, *geo, True, 1, n_threads)),
                (out,))
    if kind == "backward_input":
        dx = np.empty_like(x)
        return (lambda: module.conv2d_backward_input(dy, wt, dx, *geo, n_threads)), (dx,)
    dw, db = np.empty_like(wt), np.empty_like(bias)
    return (lambda: module.conv2d_backward_weight(x, dy, dw, db, *geo, n_threads)), (dw, db)


@functools.lru_cache(maxsize=None)
def reference(name, kind):
    batch = None if kind == "backward_weight" else CHECK_IMAGES
    call, outs = make_call(ref, name, kind, 1, batch)
    call()
    return outs


def check(name, kind, outs):
    """Asserts the kernel's outputs (full batch) agree with the NumPy twin."""
    for got, want in zip(outs, reference(name, kind)):
        got = got[:CHECK_IMAGES] if kind != "backward_weight" else got
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("kind", PASSES)
@pytest.mark.parametrize("name", SHAPES)
def test_conv_kernel(benchmark, name, kind, n_threads):
    call, outs = make_call(conv, name, kind, n_threads)
    call()
    check(name, kind, outs)
    benchmark.extra_info.update(simd=conv.simd_path(), n_threads=n_threads,
                                omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                                mflop=flops(name) / 1e6)
    benchmark.pedantic(call, rounds=20, warmup_rounds=2)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["gflops"] = flops(name) / benchmark.stats.stats.min / 1e9


# The shapes whose conv output goes straight into 2x2 max pooling in their net; there the model
# runs conv2d_maxpool_forward/_backward, which compute only the conv outputs the windows read.
POOLED = ("mnist-conv1", "mnist-conv2", "vgg-32x32x32-32", "vgg-16x16x64-64", "vgg-8x8x64-128")
FIRST_LAYERS = ("mnist-conv1",)  # no dX, as in the model


def pooled_flops(name, kind):
    n, h, w, ci, co, k, pad, oh, ow = geometry(name)
    return (1 if kind == "forward" else 2) * 2.0 * n * (oh // 2 * 2) * (ow // 2 * 2) * k * k * ci * co


def make_pooled_call(module, name, kind, n_threads, batch=None, forward_outputs=None):
    """(call, outputs) for the fused relu conv + 2x2 max pooling; backward needs the forward's
    pooled output and argmax, by default this module's own."""
    n, h, w, ci, co, k, pad, oh, ow = geometry(name)
    x, wt, bias, dy = (a[:batch] if a.ndim == 4 and batch else a for a in arrays(name))
    geo, pool = (1, 1, pad, pad), (2, 2, 2, 2)
    out = np.empty((x.shape[0], oh // 2, ow // 2, co), np.float32)
    argmax = np.empty(out.shape, np.int32)

    def forward():
        module.conv2d_maxpool_forward(x, wt, bias, out, argmax, *geo, True, *pool, n_threads)
    if kind == "forward":
        return forward, (out, argmax)
    if forward_outputs is None:
        forward()
    else:
        out, argmax = forward_outputs
    dy = np.ascontiguousarray(dy[:, :out.shape[1], :out.shape[2]])
    dw, db = np.empty_like(wt), np.empty_like(bias)
    dx = None if name in FIRST_LAYERS else np.empty_like(x)
    return (lambda: module.conv2d_maxpool_backward(x, dy, out, argmax, wt, dw, db, dx, *geo, True,
                                                   *pool, False, n_threads)), (dw, db, dx)


def check_pooled(name, kind, outs, forward_outputs=None):
    """The fused kernel's outputs against the NumPy twin; backward from the same forward outputs,
    so that a near-tie resolved differently in float32 cannot move a gradient."""
    batch = CHECK_IMAGES if kind == "forward" else None
    call, want = make_pooled_call(ref, name, kind, 1, batch, forward_outputs)
    call()
    for got, w in zip(outs, want):
        if w is None:  # no dX
            continue
        got = got[:CHECK_IMAGES] if kind == "forward" else got
        np.testing.assert_allclose(got, w, rtol=1e-3, atol=1e-3 * np.abs(w).max())


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize("name", POOLED)
def test_conv_maxpool_kernel(benchmark, name, kind, n_threads):
    forward_outputs = None
    if kind == "backward":
        forward, forward_outputs = make_pooled_call(conv, name, "forward", n_threads)
        forward()
    call, outs = make_pooled_call(conv, name, kind, n_threads, forward_outputs=forward_outputs)
    call()
    check_pooled(name, kind, outs, forward_outputs)
    benchmark.extra_info.update(simd=conv.simd_path(), n_threads=n_threads,
                                mflop=pooled_flops(name, kind) / 1e6)
    benchmark.pedantic(call, rounds=20, warmup_rounds=2)
    if benchmark.stats:
        benchmark.extra_info["gflops"] = pooled_flops(name, kind) / benchmark.stats.stats.min / 1e9


def best_time(call, min_seconds=0.5, min_rounds=10):
    call()
    times = []
    start = time.perf_counter()
    while len(times) < min_rounds or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


def gemm_operands(name, kind):
    """The matrices a GEMM-based pass would multiply (im2col already done)."""
    n, h, w, ci, co, k, pad, oh, ow = geometry(name)
    m, kk = n * oh * ow, k * k * ci
    rng = np.random.default_rng(0)
    shapes = {"forward": ((m, kk), (kk, co)), "backward_input": ((m, co), (co, kk)),
              "backward_weight": ((kk, m), (m, co))}[kind]
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


def gemm_gflops(names):
    """{name: {kind: GFLOP/s}} of numpy's sgemm in this process's OpenBLAS thread setting."""
    result = {}
    for name in names:
        result[name] = {}
        for kind in PASSES:
            a, b = gemm_operands(name, kind)
            out = np.empty((a.shape[0], b.shape[1]), np.float32)
            result[name][kind] = flops(name) / best_time(lambda: np.matmul(a, b, out=out)) / 1e9
    return result


def gemm_in_subprocess(names, n_threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n_threads), OMP_NUM_THREADS=str(n_threads))
    proc = subprocess.run([sys.executable, __file__, "--gemm", *names], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout)


def main(names):
    print(f"simd path: {conv.simd_path()}; GFLOP/s, best of >= 10 runs; "
          f"bwd = (dX + dW flops) / (dX + dW time); gemm = OpenBLAS sgemm of the same shapes")
    gemm = {t: gemm_in_subprocess(names, t) for t in (1, 2)}
    header = f"{'shape':18} {'MFLOP':>6} {'thr':>3} | {'fwd':>6} {'dX':>6} {'dW':>6} {'bwd':>6}" \
             f" | {'gemm fwd':>8} {'gemm dX':>8} {'gemm dW':>8}"
    print(header)
    print("-" * len(header))
    for name in names:
        for n_threads in (1, 2):
            secs = {}
            for kind in PASSES:
                call, outs = make_call(conv, name, kind, n_threads)
                call()
                check(name, kind, outs)
                secs[kind] = best_time(call)
            f = flops(name) / 1e9
            g = gemm[n_threads][name]
            print(f"{name:18} {f * 1e3:6.0f} {n_threads:3} | {f / secs['forward']:6.1f} "
                  f"{f / secs['backward_input']:6.1f} {f / secs['backward_weight']:6.1f} "
                  f"{2 * f / (secs['backward_input'] + secs['backward_weight']):6.1f} | "
                  f"{g['forward']:8.1f} {g['backward_input']:8.1f} {g['backward_weight']:8.1f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--gemm"]:
        print(json.dumps(gemm_gflops(args[1:] or list(SHAPES))))
    else:
        main(args or list(SHAPES))

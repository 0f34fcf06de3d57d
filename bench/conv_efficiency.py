"""ResNet-20's training throughput as convolution GFLOP/s, and as a fraction of the machine's
fp32 peak measured as the best large sgemm.

    python bench/conv_efficiency.py --threads 2 [--images 2048] [--epochs 3]

Counts the useful conv and dense FLOPs of one training image (forward, dX except for the first
layer, and dW: 2 * MACs each), trains fastcnn.applications.ResNet20 (the anchors' net) on
synthetic CIFAR-shaped data, batch 128, SGD(0.1, momentum 0.9), and divides: every other cost
of the step (BatchNormalization, adds, the optimizer) counts against the convolutions, so this
is the effective rate. The yardstick is OpenBLAS's best 4096x4096 sgemm at the same thread count.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import fastcnn
from fastcnn import layers
from fastcnn._ops.threads import simd_path

GEMM = """
import time, numpy as np
a = np.random.default_rng(0).random((4096, 4096), dtype=np.float32); b = a.copy()
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(8))
print(2 * 4096 ** 3 / best / 1e9)
"""


def training_flops(model):
    """Useful FLOPs of one image's forward and backward through the model's Conv2D and Dense."""
    total, first = 0, True
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, oh, ow, _ = layer.output.shape
            macs = oh * ow * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.Dense):
            macs = int(np.prod(layer.kernel.shape))
        else:
            continue
        total += 2 * macs * (2 if first else 3)  # the first layer needs no dX
        first = False
    return total


def sgemm_peak(threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", GEMM], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    fastcnn.set_num_threads(a.threads)
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.applications.ResNet20()
    model.compile(fastcnn.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((a.images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, a.images)
    times = []
    for _ in range(a.epochs):
        t = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        times.append(time.perf_counter() - t)
    timed = sorted(times[1:] or times)  # the first epoch warms up
    epoch = timed[len(timed) // 2]
    per_image = training_flops(model)
    flops = per_image * a.images / epoch / 1e9
    peak = sgemm_peak(a.threads)
    print(json.dumps({"cpu": platform.processor() or platform.machine(),
                      "simd": simd_path(),
                      "threads": a.threads, "train_img_s": round(a.images / epoch),
                      "conv_gflop_per_image": round(per_image / 1e9, 4),
                      "effective_conv_gflops": round(flops, 1), "sgemm_peak_gflops": round(peak, 1),
                      "fraction_of_peak": round(flops / peak, 3)}))


if __name__ == "__main__":
    main()

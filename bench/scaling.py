"""Thread scaling: how much faster an MNIST training step runs on 2 threads than on 1.

    FASTCNN_DATA=../shared/datasets python bench/scaling.py [--epochs 1] [--block 4] [--no-torch]

On a shared host each core's speed drifts by tens of percent for seconds at a time, so a
1-thread epoch followed by a 2-thread epoch measures the host as much as the code. Here one fit
switches between 1 and 2 threads every --block steps. The first step after each switch is left
out: it wakes or parks the second thread. The speed-up is the ratio of the mean step times.
PyTorch, where it is installed, is measured the same way on the same net.

The core probe runs the same 1-thread conv2 forward pinned to each core in turn, and reports how
much slower the slower core is at the same moment. A 2-thread step cannot beat 1 + slow/fast
times the 1-thread step that ran on the faster core.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402


class Alternation:
    """Which thread count step k runs at, and the times of the steps that count."""

    def __init__(self, block):
        self.block, self.times = block, {1: [], 2: []}

    def threads(self, k):
        return 1 if (k // self.block) % 2 == 0 else 2

    def record(self, k, seconds):
        if k % self.block:
            self.times[self.threads(k)].append(seconds)

    def summary(self):
        one, two = (np.array(self.times[t]) for t in (1, 2))
        return {"steps": (len(one), len(two)), "mean_ms": (one.mean() * 1e3, two.mean() * 1e3),
                "median_ms": (np.median(one) * 1e3, np.median(two) * 1e3),
                "speedup": one.mean() / two.mean()}


def fastcnn_alternating(data, epochs, block):
    import fastcnn
    x, y, _, _ = data
    model = workloads.keras_style_model(fastcnn, fastcnn.layers, "mnist")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x[:2560], y[:2560], batch_size=128, epochs=1, verbose=0)  # warm-up
    alternation = Alternation(block)

    class Switch(fastcnn.callbacks.Callback):
        k = 0

        def on_train_batch_begin(self, batch, logs=None):
            fastcnn.set_num_threads(alternation.threads(self.k))
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            alternation.record(self.k, time.perf_counter() - self.start)
            self.k += 1

    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0, callbacks=[Switch()])
    fastcnn.set_num_threads(None)
    return alternation.summary()


def torch_alternating(data, epochs, block):
    import torch
    x, y, _, _ = data
    net, opt = workloads.torch_net("mnist")
    tx, ty = workloads.torch_images(x), torch.from_numpy(y)
    alternation, k = Alternation(block), 0
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(tx))
        for i in range(0, len(tx), 128):
            torch.set_num_threads(alternation.threads(k))
            idx = order[i:i + 128]
            start = time.perf_counter()
            workloads.torch_step(net, opt, tx[idx], ty[idx])
            alternation.record(k, time.perf_counter() - start)
            k += 1
    return alternation.summary()


def core_probe(rounds=100):
    """Times of the same 1-thread conv2 forward (fused with its pooling, 128 images) pinned to
    core 0 and core 1 in turn; None where this OS cannot pin a thread."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return None
    import fastcnn
    from fastcnn._ops import conv
    rng = np.random.default_rng(0)
    x = rng.random((128, 13, 13, 32), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 32, 64), dtype=np.float32)
    out, argmax = conv.conv2d_maxpool_forward(x, kernel, None, (1, 1), "valid", (2, 2), (2, 2), True)
    cores, allowed = sorted(os.sched_getaffinity(0))[:2], os.sched_getaffinity(0)
    times = {c: [] for c in cores}
    fastcnn.set_num_threads(1)
    try:
        for _ in range(rounds):
            for c in cores:
                os.sched_setaffinity(0, {c})
                start = time.perf_counter()
                conv.conv2d_maxpool_forward(x, kernel, None, (1, 1), "valid", (2, 2), (2, 2), True,
                                            out, argmax)
                times[c].append(time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, allowed)
        fastcnn.set_num_threads(None)
    a, b = (np.array(times[c]) for c in cores)
    return {"cores": cores, "median_ms": (np.median(a) * 1e3, np.median(b) * 1e3),
            "slow_over_fast": np.percentile(np.maximum(a, b) / np.minimum(a, b), [10, 50, 90])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--block", type=int, default=4, help="steps between thread-count switches")
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args()
    if a.block < 2:
        p.error("--block must be at least 2: the first step after a switch is not counted")
    data = workloads.mnist_data()
    print(f"MNIST convnet, batch 128, {a.epochs} epoch(s), 1 and 2 threads alternating every "
          f"{a.block} steps; {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
    print("| framework | steps (1t+2t) | mean step 1t ms | mean step 2t ms | median 1t | median 2t | speed-up |")
    print("|---|---|---|---|---|---|---|")
    runs = [("fastcnn", fastcnn_alternating)]
    if not a.no_torch:
        try:
            import torch  # noqa: F401
            runs.append(("torch", torch_alternating))
        except ImportError:
            print("(PyTorch not installed: skipped)")
    for name, run in runs:
        s = run(data, a.epochs, a.block)
        print(f"| {name} | {s['steps'][0]}+{s['steps'][1]} | {s['mean_ms'][0]:.2f} | "
              f"{s['mean_ms'][1]:.2f} | {s['median_ms'][0]:.2f} | {s['median_ms'][1]:.2f} | "
              f"{s['speedup']:.2f}x |")
    probe = core_probe()
    if probe:
        p10, p50, p90 = probe["slow_over_fast"]
        print(f"\ncore probe (1-thread conv2 forward pinned to cores {probe['cores']} in turn): "
              f"medians {probe['median_ms'][0]:.2f} / {probe['median_ms'][1]:.2f} ms; slower core "
              f"over faster at the same moment: p10 {p10:.2f}, median {p50:.2f}, p90 {p90:.2f}")


if __name__ == "__main__":
    main()

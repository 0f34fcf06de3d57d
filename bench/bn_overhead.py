"""What BatchNormalization costs after a convolution: one training step (forward and backward,
dX included, as inside a network) of Conv2D -> BatchNormalization -> ReLU against Conv2D -> ReLU
(the relu fused into the conv, with a bias in place of BN's shift), on ResNet-20's
16x16x32 -> 32 layer, batch 128. Issue 17's target: a ratio of at most 1.15.

    PYTHONPATH=$PWD python bench/bn_overhead.py --threads 2 --rounds 9

Both blocks are timed in one process, alternately (A B, B A, ...), so that a busy phase of a
shared machine hits both alike; each round times --steps steps of each. Prints the load, the
median step time of each block and the ratio of the medians, then one JSON line.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import fastcnn
from fastcnn import layers
from fastcnn.engine.execution import Execution
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import make_plan


def block(with_bn, shape, filters):
    inputs = fastcnn.Input(shape)
    if with_bn:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs)
        x = layers.Activation("relu")(layers.BatchNormalization()(x))
    else:
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    return fastcnn.Model(inputs, x)


class Stepper:
    """One training step of ``model``'s plan: forward, then backward from a fixed upstream
    gradient, with dX computed for the input as a layer inside a network computes it."""

    def __init__(self, model, x):
        plan = make_plan(FlatGraph(model._built_graph(), True), True, loss_outputs=[True])
        plan.need_dx = [True] * len(plan.steps)
        self.execution, self.x = Execution(plan), x
        self.upstream = np.random.default_rng(1).standard_normal(
            self.execution.forward([x])[0].shape).astype(np.float32)
        self.steps = [type(s).__name__ if type(s).__name__ != "LayerStep" else
                      type(s.layer).__name__ for s in plan.steps]

    def __call__(self):
        self.execution.forward([self.x])
        self.execution.backward([self.upstream])


def load():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=10, help="steps per block per round")
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    fastcnn.set_num_threads(a.threads)
    fastcnn.utils.set_random_seed(0)
    shape, filters = (16, 16, 32), 32
    x = np.random.default_rng(0).standard_normal((a.batch, *shape)).astype(np.float32)
    blocks = {"conv_relu": Stepper(block(False, shape, filters), x),
              "conv_bn_relu": Stepper(block(True, shape, filters), x)}
    for stepper in blocks.values():
        for _ in range(3):
            stepper()
    load_before = load()
    times = {name: [] for name in blocks}
    for r in range(a.rounds):
        for name in (list(blocks) if r % 2 == 0 else list(blocks)[::-1]):
            start = time.perf_counter()
            for _ in range(a.steps):
                blocks[name]()
            times[name].append((time.perf_counter() - start) / a.steps)
    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = med["conv_bn_relu"] / med["conv_relu"]
    print(f"cpu: {cpu_model()}; threads {a.threads}; load {load_before:.2f} -> {load():.2f}")
    for name, stepper in blocks.items():
        print(f"{name:>13}: median {med[name] * 1e3:7.2f} ms/step over {a.rounds} rounds "
              f"(min {min(times[name]) * 1e3:.2f}); steps {stepper.steps}")
    print(f"ratio conv_bn_relu / conv_relu: {ratio:.3f} (target <= 1.15)")
    print(json.dumps({"threads": a.threads, "batch": a.batch, "rounds": a.rounds,
                      "conv_relu_ms": round(med["conv_relu"] * 1e3, 3),
                      "conv_bn_relu_ms": round(med["conv_bn_relu"] * 1e3, 3),
                      "ratio": round(ratio, 3), "load": round(load_before, 2)}))


if __name__ == "__main__":
    main()

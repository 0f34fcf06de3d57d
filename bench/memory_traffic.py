"""The bytes a training step moves through memory, pass by pass, as fastcnn's planner runs the
anchors' nets (../shared/anchors/keras_zoo.py), beside the streaming rate of one of its own
read-and-write passes measured here: a floor on the step's time for a memory-bound net.

    python bench/memory_traffic.py [--net mobilenetv2] [--threads 2] [--repeats 15]

Each step of the training plan counts the arrays its kernels read and write once each, as they
run today (a batch of activations is far larger than the caches):

- Conv2D: forward reads x, writes z; backward reads x and dy (or, where it makes its batch
  normalisation's dx, that normalisation's input and output gradient) and writes dx. Where it
  normalises its input as it loads it, x is that normalisation's input, and the gradient sums
  it makes from its dx come from cache.
- DepthwiseConv2D: forward reads x, writes z; backward's dX reads dy, writes dx; its dW reads x
  and dy.
- A fused BatchNormalization step: forward reads x (for its statistics, unless the conv's
  moments give them) and, unless the conv reading it normalises as it loads, reads x and the
  Add's other input and writes y; backward's sums pass (unless that conv sums) reads x and dy
  (and the residual) and, with an Add, writes the residual's gradient; its dx pass (unless the
  conv making x makes dx) reads x and dy and writes dx; the recomputed output (before its
  readers' backward) reads x and writes y.
- Other layers read their inputs and write their outputs each way.

The rate is ``batchnorm_apply`` (read x, write y) on a 128x32x32x144 float32 tensor, alternating
fresh buffers so that nothing stays in cache: the same kind of pass as most of the step's.
Non-temporal stores did not change it (see docs/architecture.md).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fastcnn  # noqa: E402
from fastcnn import layers  # noqa: E402
from fastcnn._ext import normalization as _normalization  # noqa: E402
from fastcnn._ops.conv import batchnorm_sums_fit  # noqa: E402
from fastcnn._ops.threads import simd_path  # noqa: E402
from fastcnn.engine.plan import BatchNormStep, LayerStep  # noqa: E402

ANCHORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                       "shared", "anchors", "keras_zoo.py")


def anchor_net(name):
    """The anchors' net ``name``, built from keras_zoo.py's own definitions with fastcnn."""
    source = open(ANCHORS).read()
    scope = {"keras": fastcnn, "layers": layers}
    exec(source[source.index("def conv_bn"):source.index("\nrng = ")], scope)
    return scope[name]()


def per_image(tensor):
    return int(np.prod(tensor.shape[1:])) * 4


def step_bytes(step, plan):
    """(forward, backward, recompute) bytes per image of one step."""
    layer = step.layer
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]
    x, y = sum(per_image(t) for t in inputs), per_image(layer.output)
    if isinstance(step, BatchNormStep):
        x = per_image(layer.input)
        res = x if step.add is not None else 0
        forward = ((0 if step.conv_slot is not None else x)
                   + (0 if step.norm_slot is not None else x + res + x))
        summed = step.sums_by_conv and batchnorm_sums_fit((1, *layer.input.shape[1:]))
        sums = 0 if summed else 2 * x + 2 * res
        backward = sums + (0 if step.dx_by_conv else 3 * x)
        return forward, backward, 2 * x if step.recompute else 0
    if isinstance(step, LayerStep) and type(layer).__name__ == "Conv2D":
        makes_dx = any(isinstance(s, BatchNormStep) and s.dx_by_conv
                       and s.conv_slot == step.conv_slot for s in plan.steps
                       ) if step.conv_slot is not None else False
        return x + y, x + y * (2 if makes_dx else 1) + x, 0
    if isinstance(step, LayerStep) and type(layer).__name__ == "DepthwiseConv2D":
        return x + y, 2 * (x + y), 0
    return x + y, x + y, 0


def streaming_rate(threads, repeats):
    """GB/s (bytes read + written) of batchnorm_apply on fresh 75 MB buffers; the median."""
    m, c = 128 * 32 * 32, 144
    xs = [np.random.default_rng(i).standard_normal((m, c), dtype=np.float32) for i in range(4)]
    ys = [np.zeros_like(xs[0]) for _ in range(4)]
    ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
    times = []
    for k in range(repeats):
        start = time.perf_counter()
        _normalization.batchnorm_apply(xs[k % 4], None, ones, zeros, zeros, ones, ys[k % 4],
                                       True, 6.0, threads)
        times.append(time.perf_counter() - start)
    return 2 * xs[0].nbytes / np.median(times) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default="mobilenetv2", choices=["resnet20", "mobilenetv2"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    model = anchor_net(args.net)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build((None, 32, 32, 3))
    graph = model._built_graph()
    plan = model._training_plan(graph, model._outputs_for(graph, use_compiled=True))
    totals, kinds = np.zeros(3), {}
    for step in plan.steps:
        moved = np.array(step_bytes(step, plan), dtype=float)
        totals += moved
        kind = "BatchNormalization step" if isinstance(step, BatchNormStep) else type(
            step.layer).__name__
        kinds[kind] = kinds.get(kind, 0) + moved.sum()
    total = totals.sum()
    print(f"{args.net}: {total / 1e6:.1f} MB per training image (forward {totals[0] / 1e6:.1f}, "
          f"backward {totals[1] / 1e6:.1f}, recomputed outputs {totals[2] / 1e6:.1f})")
    for kind, moved in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:28s} {moved / 1e6:6.2f} MB")
    rate = streaming_rate(args.threads, args.repeats)
    print(f"streaming pass at {args.threads} threads ({simd_path()}): {rate:.1f} GB/s -> "
          f"{total / rate / 1e6:.2f} ms per image at the least, at most {rate * 1e9 / total:.0f} "
          f"img/s")


if __name__ == "__main__":
    main()

"""Two builds of fastcnn on the bench/workloads.py nets, run alternately: medians and their ratio.

    FASTCNN_DATA=../shared/datasets python bench/ab_builds.py OLD_CHECKOUT NEW_CHECKOUT \
        --workloads mnist vgg --rounds 3 --epochs 3 --threads 2

The anchors' zoo nets (``zoo-resnet20``, ``zoo-mobilenetv2``, ``zoo-unet``) run the shared
keras_zoo.py with ``--framework fastcnn`` on ``--images`` synthetic images instead.

With ``--new-graph`` the new checkout trains the same net as a functional Model (give the same
checkout twice to compare a Sequential with its graph in one build).

Each checkout must have its kernels built in place (python setup.py build_ext --inplace); each run
is its own process with that checkout first on PYTHONPATH. The rounds alternate the two builds
(old, new, new, old, ...) so that a slow phase of a shared machine hits both alike.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from compare import ANCHORS

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = {"zoo-resnet20": "resnet20", "zoo-mobilenetv2": "mobilenetv2", "zoo-unet": "unet"}


def run(checkout, workload, epochs, threads, images, graph=False):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    if workload in ZOO:
        command = [sys.executable, os.path.join(ANCHORS, "keras_zoo.py"), "--net", ZOO[workload],
                   "--framework", "fastcnn", "--epochs", str(epochs), "--threads", str(threads),
                   "--n", str(images)]
    else:
        command = [sys.executable, os.path.join(HERE, "workloads.py"), "--framework", "fastcnn",
                   "--workload", workload, "--epochs", str(epochs), "--threads", str(threads),
                   *(["--graph"] if graph else [])]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--workloads", nargs="+", choices=["mnist", "vgg", "resnet20", *ZOO],
                   default=["mnist", "vgg"])
    p.add_argument("--images", type=int, default=2048, help="training images of the zoo nets")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-graph", action="store_true", help="the new build trains a functional Model")
    a = p.parse_args()
    for workload in a.workloads:
        epochs = {"old": [], "new": []}
        infer = {"old": [], "new": []}
        for r in range(a.rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for build in order:
                result = run(getattr(a, build), workload, a.epochs, a.threads, a.images,
                             a.new_graph and build == "new")
                epochs[build].append(result["epoch_s"])
                infer[build].append(result["infer_img_s"])
                print(f"{workload} round {r + 1} {build}: {result['epoch_s']:.3f} s/epoch, "
                      f"{result['infer_img_s']} infer img/s", flush=True)
        old, new = statistics.median(epochs["old"]), statistics.median(epochs["new"])
        print(f"{workload}: median s/epoch old {old:.3f}, new {new:.3f}, new/old {new / old:.3f}; "
              f"infer img/s old {statistics.median(infer['old']):.0f}, "
              f"new {statistics.median(infer['new']):.0f}")


if __name__ == "__main__":
    main()

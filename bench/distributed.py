"""Data-parallel MNIST convnet epochs (fastcnn.distributed) on one machine, and the cost of the
deterministic gradient sum against MPI's Allreduce.

    python bench/distributed.py [--epochs 2] [--limit N] [--steps 2000]

Runs, each a fresh process (or mpiexec job) training Keras's MNIST convnet at batch 128:
  1 rank x 1 thread, 1 rank x 2 threads (plain fit), 2 ranks x 1 thread (deterministic sum),
  2 ranks x 1 thread (deterministic=False: MPI Allreduce);
then, under mpiexec -n 2, the gradient sum alone on the convnet's gradients, each way, per step.
Prints s/epoch (the median of the epochs after the first, or the only one) and the ratios.
Needs pip install fastcnn[mpi]. Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 128


def _epoch_times(args):
    """Train and return the seconds of each epoch (in a worker process)."""
    sys.path.insert(0, ROOT)
    import fastcnn
    from fastcnn import applications, callbacks, optimizers
    from fastcnn.__main__ import load

    optimizer = optimizers.Adam()
    extra, reports = [], True
    if args.ranks > 1:
        from fastcnn import distributed as dist
        dist.init()
        optimizer = dist.DistributedOptimizer(optimizer, deterministic=not args.plain)
        extra = [dist.BroadcastGlobalVariablesCallback(0)]
        reports = dist.rank() == 0
    fastcnn.utils.set_random_seed(0)
    (x, y), _ = load("mnist", args.limit)
    model = applications.MODELS["convnet"](input_shape=x.shape[1:], classes=10)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    times, start = [], [0.0]
    timer = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: start.__setitem__(0, time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.append(time.perf_counter() - start[0]))
    model.fit(x, y, batch_size=BATCH, epochs=args.epochs, verbose=0, callbacks=extra + [timer])
    if reports:
        print(json.dumps({"times": times, "steps": -(-len(x) // BATCH)}))


def _sum_cost(args):
    """Seconds per gradient sum of the convnet's gradients, each way (under mpiexec -n 2)."""
    sys.path.insert(0, ROOT)
    from fastcnn import applications
    from fastcnn import distributed as dist
    from fastcnn.distributed.reduction import GradientSum
    from mpi4py import MPI

    dist.init()
    model = applications.MODELS["convnet"](input_shape=(28, 28, 1), classes=10)
    rng = np.random.default_rng(dist.rank())
    grads = [rng.standard_normal(w.shape).astype(np.float32) for w in model.trainable_weights]
    result = {"values": sum(g.size for g in grads)}
    for name, deterministic in (("deterministic", True), ("allreduce", False)):
        total = GradientSum(grads, deterministic)
        work = [g.copy() for g in grads]
        for _ in range(50):
            total(work, True)
        MPI.COMM_WORLD.Barrier()
        samples = []
        for _ in range(args.steps):
            t = time.perf_counter()
            total(work, True)
            samples.append(time.perf_counter() - t)
        result[name] = statistics.median(samples)
    if dist.rank() == 0:
        print(json.dumps(result))


def _run(ranks, threads, args, *extra):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--ranks", str(ranks),
               "--epochs", str(args.epochs), "--steps", str(args.steps), *extra]
    if args.limit:
        command += ["--limit", str(args.limit)]
    if ranks > 1 or "--sum-cost" in extra:
        command = [shutil.which("mpiexec"), "-n", str(ranks), *command]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _per_epoch(times):
    return statistics.median(times[1:] if len(times) > 1 else times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images")
    parser.add_argument("--steps", type=int, default=2000, help="gradient sums timed, each way")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sum-cost", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _sum_cost(args) if args.sum_cost else _epoch_times(args)
    if shutil.which("mpiexec") is None:
        sys.exit("needs mpiexec and mpi4py: pip install fastcnn[mpi]")

    one = _run(1, 1, args)
    one_two = _run(1, 2, args)
    two = _run(2, 1, args)
    two_plain = _run(2, 1, args, "--plain")
    cost = _run(2, 1, args, "--sum-cost")
    steps = one["steps"]
    rows = [("1 rank x 1 thread", one), ("1 rank x 2 threads", one_two),
            ("2 ranks x 1 thread, deterministic", two),
            ("2 ranks x 1 thread, MPI Allreduce", two_plain)]
    print(f"MNIST convnet, batch {BATCH}, {steps} steps per epoch, s/epoch:")
    for name, run in rows:
        print(f"  {name:36s} {_per_epoch(run['times']):7.2f}")
    t1, t12, t2 = (_per_epoch(r["times"]) for r in (one, one_two, two))
    print(f"2 ranks x 1 thread vs 1 rank x 1 thread: {t1 / t2:.2f}x faster")
    print(f"2 ranks x 1 thread vs 1 rank x 2 threads: {t12 / t2:.2f}x faster")
    det, plain = cost["deterministic"], cost["allreduce"]
    print(f"gradient sum of {cost['values']} float32 values (one buffer), 2 ranks, per step: "
          f"deterministic {det * 1e6:.0f} us, Allreduce {plain * 1e6:.0f} us; "
          f"difference per epoch {(det - plain) * steps * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

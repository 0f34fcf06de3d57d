"""Eager fastcnn.ops against NumPy on one large float32 array, one thread: the median of
several calls of each, side by side, and their ratio (fastcnn / NumPy).

    python bench/eager_ops.py --size 1000 --calls 9
"""
import argparse
import os
import statistics
import time

import numpy as np

import fastcnn
from fastcnn import ops
from fastcnn._ext import program


def median_ms(f, calls):
    f()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def cases(x, y):
    """(name, fastcnn call, NumPy call) of each op measured."""
    c = x > y
    positive = np.abs(x) + np.float32(0.5)
    near_one = 1 + x * np.float32(1e-3)  # a product that stays finite
    return [
        ("exp", lambda: ops.exp(x), lambda: np.exp(x)),
        ("log", lambda: ops.log(positive), lambda: np.log(positive)),
        ("sin", lambda: ops.sin(x), lambda: np.sin(x)),
        ("cos", lambda: ops.cos(x), lambda: np.cos(x)),
        ("log1p", lambda: ops.log1p(positive), lambda: np.log1p(positive)),
        ("expm1", lambda: ops.expm1(x), lambda: np.expm1(x)),
        ("add", lambda: ops.add(x, y), lambda: np.add(x, y)),
        ("greater", lambda: ops.greater(x, y), lambda: np.greater(x, y)),
        ("where", lambda: ops.where(c, x, y), lambda: np.where(c, x, y)),
        ("mod", lambda: ops.mod(x, y), lambda: np.mod(x, y)),
        ("sum(axis=-1)", lambda: ops.sum(x, axis=-1), lambda: np.sum(x, axis=-1)),
        ("var", lambda: ops.var(x), lambda: np.var(x)),
        ("prod", lambda: ops.prod(near_one), lambda: np.prod(near_one)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--only", nargs="*", help="names of the ops to measure")
    args = parser.parse_args()
    fastcnn.set_num_threads(1)
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((args.size, args.size)).astype(np.float32) for _ in range(2))
    print(f"simd path: {program.simd_path()}; load average: {os.getloadavg()[0]:.1f}")
    print(f"{'op':14s} {'fastcnn ms':>10s} {'NumPy ms':>9s} {'ratio':>6s}")
    for name, ours, numpy in cases(x, y):
        if args.only and name not in args.only:
            continue
        a, b = median_ms(ours, args.calls), median_ms(numpy, args.calls)
        print(f"{name:14s} {a:10.2f} {b:9.2f} {a / b:6.2f}")


if __name__ == "__main__":
    main()

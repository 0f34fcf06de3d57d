"""fastcnn against Keras/TF and PyTorch on both workloads, run alternately, medians and ratios.

    python bench/compare.py --rounds 3 --epochs 3 --threads 2 [--keras-python PATH] [--torch-python PATH]

Each framework runs in its own process, so peak RSS is per framework: bench/workloads.py, except
Keras and PyTorch on MNIST, which run the shared anchor scripts (../shared/anchors). A
framework whose interpreter cannot import it is left out. The rounds alternate the frameworks so
that slow phases of a shared machine hit all of them alike. Ends with fastcnn's conv GFLOP/s on
conv2 of the MNIST net and the same-shape GEMM as a yardstick.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = {"fastcnn": "fastcnn", "keras": "tensorflow", "torch": "torch"}
# On MNIST the other frameworks run the shared anchor scripts themselves, unchanged.
ANCHORS = os.path.join(HERE, "..", "..", "shared", "anchors")
ANCHOR_SCRIPTS = {"keras": "keras_convnet.py", "torch": "torch_convnet.py"}


def available(python, module):
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def run(python, framework, workload, epochs, threads):
    # Each framework gets the thread count through its own setting (--threads), and the
    # environment as it is: an OMP_NUM_THREADS override slowed TensorFlow's oneDNN by half here.
    if workload == "mnist" and framework in ANCHOR_SCRIPTS:
        command = [os.path.join(ANCHORS, ANCHOR_SCRIPTS[framework])]
    else:
        command = [os.path.join(HERE, "workloads.py"), "--framework", framework, "--workload", workload]
    out = subprocess.run([python, *command, "--epochs", str(epochs), "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def conv_gflops(threads, repeats=20):
    """fastcnn's conv2 forward and backward (dX + dW) GFLOP/s, and a same-shape GEMM's."""
    import numpy as np
    import fastcnn
    from fastcnn import ops
    fastcnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 13, 13, 32), dtype=np.float32)
    w = rng.standard_normal((3, 3, 32, 64), dtype=np.float32)
    b = np.zeros(64, np.float32)
    out = ops.conv2d_forward(x, w, b, (1, 1), "valid", relu=True)
    dy = rng.standard_normal(out.shape, dtype=np.float32)
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
    flops = 2 * out.size * 3 * 3 * 32

    def median_time(f):
        f()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    fwd = median_time(lambda: ops.conv2d_forward(x, w, b, (1, 1), "valid", relu=True, out=out))
    bwd = median_time(lambda: (ops.conv2d_backward_input(dy, w, x.shape, (1, 1), "valid", out=dx),
                               ops.conv2d_backward_weight(x, dy, w.shape, (1, 1), "valid", dw=dw, db=db)))
    cols = rng.standard_normal((out.size // 64, 288), dtype=np.float32)
    wm = w.reshape(288, 64)
    gemm = median_time(lambda: cols @ wm)
    fastcnn.set_num_threads(None)
    return {"forward": flops / fwd / 1e9, "backward": 2 * flops / bwd / 1e9, "gemm": flops / gemm / 1e9}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workloads", default="mnist,vgg")
    p.add_argument("--keras-python", default=sys.executable)
    p.add_argument("--torch-python", default=sys.executable)
    a = p.parse_args()
    pythons = {"fastcnn": sys.executable, "keras": a.keras_python, "torch": a.torch_python}
    frameworks = [f for f in MODULES if available(pythons[f], MODULES[f])]
    missing = sorted(set(MODULES) - set(frameworks))
    results = {}
    for round_ in range(a.rounds):
        for workload in a.workloads.split(","):
            for framework in frameworks:
                r = run(pythons[framework], framework, workload, a.epochs, a.threads)
                results.setdefault((workload, framework), []).append(r)
                print(f"round {round_ + 1}: {json.dumps(r)}", file=sys.stderr)

    print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {a.threads} threads, {a.rounds} alternating rounds x "
          f"{a.epochs} epochs (medians)" + (f"; not installed: {', '.join(missing)}" if missing else ""))
    print("| workload | framework | s/epoch | train img/s | infer img/s | peak RSS MB | test acc "
          "| fastcnn train speed-up | fastcnn infer speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for workload in a.workloads.split(","):
        ours = results.get((workload, "fastcnn"))
        for framework in frameworks:
            rs = results[(workload, framework)]
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("epoch_s", "train_img_s", "infer_img_s", "peak_rss_mb", "test_acc")}
            if ours:
                train_ratio = statistics.median(r["train_img_s"] for r in ours) / med["train_img_s"]
                infer_ratio = statistics.median(r["infer_img_s"] for r in ours) / med["infer_img_s"]
                ratios = f"{train_ratio:.2f}x | {infer_ratio:.2f}x"
            else:
                ratios = "- | -"
            print(f"| {workload} | {framework} | {med['epoch_s']:.2f} | {med['train_img_s']:,.0f} | "
                  f"{med['infer_img_s']:,.0f} | {med['peak_rss_mb']:.0f} | {med['test_acc']:.4f} | {ratios} |")
    if "fastcnn" in frameworks:
        g = conv_gflops(a.threads)
        print(f"\nfastcnn conv2 (128x13x13x32 -> 64, 3x3), {a.threads} threads: forward "
              f"{g['forward']:.0f} GFLOP/s ({g['forward'] / g['gemm']:.2f} of GEMM), backward dX+dW "
              f"{g['backward']:.0f} GFLOP/s ({g['backward'] / g['gemm']:.2f} of GEMM); "
              f"same-shape NumPy GEMM {g['gemm']:.0f} GFLOP/s")


if __name__ == "__main__":
    main()

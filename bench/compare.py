"""fastcnn against Keras/TF and PyTorch on the workloads, run alternately, medians and ratios.

    python bench/compare.py --rounds 3 --epochs 3 --threads 2 [--keras-python PATH] [--torch-python PATH]
    python bench/compare.py --workloads resnet20,mobilenetv2,unet --epochs 2 --images 2048

Each framework runs in its own process, so peak RSS is per framework: bench/workloads.py, except
Keras and PyTorch on MNIST, which run the shared anchor scripts keras_convnet.py and
torch_convnet.py (../shared/anchors), and every framework on the three nets of the anchors' zoo
(resnet20, mobilenetv2, unet), which run keras_zoo.py (Keras, and fastcnn with --framework
fastcnn) and torch_zoo.py on ``--images`` synthetic images (the zoo reports no test accuracy,
shown as "-"). Keras or
PyTorch, where its interpreter cannot import it, is left out, and the script says why; without
fastcnn it refuses to run. The rounds alternate the frameworks so that slow phases of a shared
machine hit all of them alike. Ends with fastcnn's conv GFLOP/s on conv2 of the MNIST net and
the same-shape GEMM as a yardstick.
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
# The shared anchor scripts run unchanged: the other frameworks' MNIST convnet, and every
# framework's zoo nets.
ANCHORS = os.path.join(HERE, "..", "..", "shared", "anchors")
ZOO = ("resnet20", "mobilenetv2", "unet")
ANCHOR_SCRIPTS = {("mnist", "keras"): ["keras_convnet.py"],
                  ("mnist", "torch"): ["torch_convnet.py"],
                  **{(net, "keras"): ["keras_zoo.py", "--net", net] for net in ZOO},
                  **{(net, "fastcnn"): ["keras_zoo.py", "--net", net, "--framework", "fastcnn"]
                     for net in ZOO},
                  **{(net, "torch"): ["torch_zoo.py", "--net", net] for net in ZOO}}


def import_failures(pythons):
    """{framework: why} for each framework its interpreter cannot import, why being the last line
    of the error. The import runs with this folder first on sys.path, as bench/workloads.py's does."""
    failures = {}
    for framework, module in MODULES.items():
        code = f"import sys; sys.path[0] = {HERE!r}; import {module}"
        try:
            out = subprocess.run([pythons[framework], "-c", code], capture_output=True, text=True)
        except OSError as error:
            failures[framework] = f"{type(error).__name__}: {error}"
            continue
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines()
            failures[framework] = lines[-1] if lines else f"exit status {out.returncode}"
    return failures


def run(python, framework, workload, epochs, threads, images):
    # Each framework gets the thread count through its own setting (--threads), and the
    # environment as it is: an OMP_NUM_THREADS override slows TensorFlow's oneDNN.
    anchor = ANCHOR_SCRIPTS.get((workload, framework))
    if anchor:
        command = [os.path.join(ANCHORS, anchor[0]), *anchor[1:]]
        if workload in ZOO:
            command += ["--n", str(images)]
    else:
        command = [os.path.join(HERE, "workloads.py"), "--framework", framework, "--workload", workload]
    out = subprocess.run([python, *command, "--epochs", str(epochs), "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def conv_gflops(threads, repeats=30):
    """fastcnn's conv2 of the MNIST net: forward and backward (dX + dW) GFLOP/s as the median and
    the best of `repeats` runs, checked against the NumPy twin, and OpenBLAS's sgemm of the same
    matrix shapes (best of runs, in a subprocess: OpenMP threads that have just finished a
    kernel keep spinning a while, and in the same process they slow the GEMM)."""
    sys.path.insert(0, HERE)
    import bench_conv_kernels as kernels
    name = "mnist-conv2"
    flops = kernels.flops(name) / 1e9
    times = {}
    for kind in kernels.PASSES:
        call, outs = kernels.make_call(kernels.conv, name, kind, threads)
        call()
        kernels.check(name, kind, outs)
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            call()
            runs.append(time.perf_counter() - t)
        times[kind] = runs
    gemm = kernels.gemm_in_subprocess([name], threads)[name]
    result = {}
    for stat in (statistics.median, min):
        fwd = stat(times["forward"])
        bwd = stat(times["backward_input"]) + stat(times["backward_weight"])
        result[stat.__name__] = {"forward": flops / fwd, "backward": 2 * flops / bwd}
    result["gemm"] = {"forward": gemm["forward"],
                      "backward": 2 / (1 / gemm["backward_input"] + 1 / gemm["backward_weight"])}
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workloads", default="mnist,vgg")
    p.add_argument("--images", type=int, default=2048, help="training images of the zoo nets")
    p.add_argument("--keras-python", default=sys.executable)
    p.add_argument("--torch-python", default=sys.executable)
    a = p.parse_args()
    pythons = {"fastcnn": sys.executable, "keras": a.keras_python, "torch": a.torch_python}
    failures = import_failures(pythons)
    for framework, why in failures.items():
        print(f"compare.py: {pythons[framework]} cannot import {MODULES[framework]}: {why}",
              file=sys.stderr)
    if "fastcnn" in failures:
        sys.exit("compare.py: fastcnn does not import, so there is nothing to compare; "
                 "see README.md to set it up")
    frameworks = [f for f in MODULES if f not in failures]
    results = {}
    for round_ in range(a.rounds):
        for workload in a.workloads.split(","):
            for framework in frameworks:
                r = run(pythons[framework], framework, workload, a.epochs, a.threads, a.images)
                results.setdefault((workload, framework), []).append(r)
                print(f"round {round_ + 1}: {json.dumps(r)}", file=sys.stderr)

    print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {a.threads} threads, {a.rounds} alternating rounds x "
          f"{a.epochs} epochs (medians)" + (f"; left out: {', '.join(failures)}" if failures else ""))
    print("| workload | framework | s/epoch | train img/s | infer img/s | peak RSS MB | test acc "
          "| fastcnn train speed-up | fastcnn infer speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for workload in a.workloads.split(","):
        ours = results[(workload, "fastcnn")]
        for framework in frameworks:
            rs = results[(workload, framework)]
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("epoch_s", "train_img_s", "infer_img_s", "peak_rss_mb")}
            accuracy = [r["test_acc"] for r in rs if "test_acc" in r]
            shown = f"{statistics.median(accuracy):.4f}" if accuracy else "-"
            train_ratio = statistics.median(r["train_img_s"] for r in ours) / med["train_img_s"]
            infer_ratio = statistics.median(r["infer_img_s"] for r in ours) / med["infer_img_s"]
            print(f"| {workload} | {framework} | {med['epoch_s']:.2f} | {med['train_img_s']:,.0f} | "
                  f"{med['infer_img_s']:,.0f} | {med['peak_rss_mb']:.0f} | {shown} | "
                  f"{train_ratio:.2f}x | {infer_ratio:.2f}x |")
    g = conv_gflops(a.threads)
    med, best, gemm = g["median"], g["min"], g["gemm"]
    print(f"\nfastcnn conv2 (128x13x13x32 -> 64, 3x3), {a.threads} threads, GFLOP/s median (best): "
          f"forward {med['forward']:.0f} ({best['forward']:.0f}), backward dX+dW "
          f"{med['backward']:.0f} ({best['backward']:.0f}); as a fraction of OpenBLAS sgemm of the "
          f"same shapes ({gemm['forward']:.0f} and {gemm['backward']:.0f}): "
          f"{med['forward'] / gemm['forward']:.2f} ({best['forward'] / gemm['forward']:.2f}) and "
          f"{med['backward'] / gemm['backward']:.2f} ({best['backward'] / gemm['backward']:.2f})")


if __name__ == "__main__":
    main()

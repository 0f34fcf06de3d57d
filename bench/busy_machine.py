"""The MNIST convnet on an idle machine and beside a busy loop on one core, at 1 and 2 threads,
for fastcnn, Keras/TF and PyTorch; prints one line per run and a table of median s/epoch.

    FASTCNN_DATA=../shared/datasets python bench/busy_machine.py --keras-python PATH \
        --torch-python PATH --epochs 2
    python bench/busy_machine.py --frameworks fastcnn --workload resnet20

fastcnn runs bench/workloads.py; Keras and PyTorch run the shared anchor scripts
(../shared/anchors), all on the full 60k training images at batch 128. ``--workload resnet20``
(fastcnn only: the anchors' convnet scripts are the MNIST net) runs workloads.py's ResNet-20 on
its 10k random images instead. The busy loop is a plain Python process spinning at the default
niceness (0), started before a run and killed after it. The ratio is the busy 2-thread epoch
over the idle 2-thread one.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from compare import ANCHORS

HERE = os.path.dirname(os.path.abspath(__file__))


def command(framework, threads, epochs, pythons, workload="mnist"):
    if framework == "fastcnn":
        return [sys.executable, os.path.join(HERE, "workloads.py"), "--framework", "fastcnn",
                "--workload", workload, "--epochs", str(epochs), "--threads", str(threads)]
    script = {"keras": "keras_convnet.py", "torch": "torch_convnet.py"}[framework]
    return [pythons[framework], os.path.join(ANCHORS, script), "--epochs", str(epochs),
            "--threads", str(threads)]


def run(framework, threads, epochs, pythons, busy, workload):
    spinner = None
    if busy:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # let it take its core
    try:
        out = subprocess.run(command(framework, threads, epochs, pythons, workload),
                             capture_output=True, text=True, check=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])["epoch_s"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frameworks", default="fastcnn,keras,torch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keras-python", default=sys.executable)
    p.add_argument("--torch-python", default=sys.executable)
    p.add_argument("--workload", choices=["mnist", "resnet20"], default="mnist")
    a = p.parse_args()
    if a.workload != "mnist" and a.frameworks != "fastcnn":
        p.error("--workload resnet20 runs fastcnn only: pass --frameworks fastcnn")
    pythons = {"keras": a.keras_python, "torch": a.torch_python}
    cases = [(False, 2), (False, 1), (True, 2), (True, 1)]
    table = {}
    for framework in a.frameworks.split(","):
        for r in range(a.rounds):
            for busy, threads in cases if r % 2 == 0 else cases[::-1]:
                epoch = run(framework, threads, a.epochs, pythons, busy, a.workload)
                table.setdefault((framework, busy, threads), []).append(epoch)
                print(f"{framework} {'busy' if busy else 'idle'} {threads} threads: "
                      f"{epoch:.3f} s/epoch", flush=True)
    print("| | idle, 2 threads | idle, 1 thread | busy, 2 threads | busy, 1 thread |")
    print("|---|---|---|---|---|")
    for framework in a.frameworks.split(","):
        cells = [statistics.median(table[(framework, busy, threads)]) for busy, threads in cases]
        print(f"| {framework} | {cells[0]:.2f} | {cells[1]:.2f} | {cells[2]:.2f} "
              f"({cells[2] / cells[0]:.2f}x) | {cells[3]:.2f} |")


if __name__ == "__main__":
    main()

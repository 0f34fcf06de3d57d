"""Inference of the MNIST convnet exported to ONNX: onnxruntime beside fastcnn's own predict,
both on 2 threads, in images per second over the 10,000 MNIST test images.

    FASTCNN_DATA=../shared/datasets python bench/onnx_inference.py --rounds 5 [--batch 128]

The model is fastcnn.applications.convnet() (Keras's "Simple MNIST convnet"), trained for
--epochs epochs first (default 0: its initial weights, which do not change the speed),
exported with fastcnn.onnx.export. onnxruntime runs it on the CPU provider with
intra_op_num_threads=2, inter_op_num_threads=1 and sequential execution, batch by batch;
fastcnn runs model.predict at the same batch size after fastcnn.set_num_threads(2). Each round
times one pass of each over the test images, the two in alternating order so that a busy phase
of a shared machine hits both alike, after one untimed pass of each. Before timing, the two
outputs are compared (a fast wrong export cannot win): the largest difference and the share of
images whose predicted class agrees are printed. Ends with the medians and their ratio.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

import fastcnn
import fastcnn.onnx
from depthwise_bandwidth import cpu_model, load_average

THREADS = 2


def images(a):
    return (a.astype(np.float32) / 255)[..., None]


def mnist():
    (x, y), (xt, yt) = fastcnn.datasets.mnist.load_data()
    return images(x), y.astype(np.int64), images(xt), yt.astype(np.int64)


def onnx_session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnx_predict(session, x, batch):
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=0)
    a = p.parse_args()
    x, y, xt, yt = mnist()
    fastcnn.set_num_threads(THREADS)
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.applications.convnet()
    if a.epochs:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=128, epochs=a.epochs, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "convnet.onnx")
        fastcnn.onnx.export(model, path)
        session = onnx_session(path)
    runs = {"onnxruntime": lambda: onnx_predict(session, xt, a.batch),
            "fastcnn": lambda: model.predict(xt, batch_size=a.batch, verbose=0)}
    outputs = {name: run() for name, run in runs.items()}  # also the untimed passes
    difference = float(np.max(np.abs(outputs["onnxruntime"] - outputs["fastcnn"])))
    classes = {name: out.argmax(axis=1) for name, out in outputs.items()}
    print(f"cpu: {cpu_model()}; threads {THREADS}; batch {a.batch}; python "
          f"{sys.version.split()[0]}; onnxruntime {ort.__version__}; load average before: "
          f"{load_average()}")
    print(f"max |onnxruntime - fastcnn| = {difference:.2e}; classes agree on "
          f"{np.mean(classes['onnxruntime'] == classes['fastcnn']):.2%} of the images; "
          f"accuracy {np.mean(classes['fastcnn'] == yt):.2%} after {a.epochs} epochs")
    rates = {name: [] for name in runs}
    for r in range(a.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            runs[name]()
            rates[name].append(len(xt) / (time.perf_counter() - start))
            print(f"round {r + 1} {name}: {rates[name][-1]:,.0f} images/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"load average after: {load_average()}")
    print("| | images/s (median) |")
    print("|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:,.0f} |")
    print(f"onnxruntime / fastcnn: {medians['onnxruntime'] / medians['fastcnn']:.2f}x")


if __name__ == "__main__":
    main()

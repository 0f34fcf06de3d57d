"""The VGG workload of bench/workloads.py trained from arrays, from a PyDataset and from a
generator that serve the same in-memory batches, and from uint8 arrays (converted to float32
batch by batch on the preparing thread); the sources alternate within each round, and the
table gives the median seconds per epoch and the ratio to float32 arrays.

    python bench/data_pipeline.py --rounds 3 --epochs 2 --threads 2 [--images 10000]

Each fit runs ``--epochs`` epochs and its first is left out (it plans and warms up), so
``--epochs`` must be 2 or more. One JSON line per fit, then the table.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402

BATCH = 64


def sources(fastcnn, x, y):
    """{name: (fit's positional data, fit's keyword arguments)} for one fit each."""

    class Batches(fastcnn.utils.PyDataset):
        def __len__(self):
            return -(-len(x) // BATCH)

        def __getitem__(self, i):
            return x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]

    def generator():
        while True:
            for i in range(0, len(x), BATCH):
                yield x[i:i + BATCH], y[i:i + BATCH]

    steps = -(-len(x) // BATCH)
    x8 = np.clip(x * 64 + 128, 0, 255).astype(np.uint8)
    return {
        "arrays": (lambda: (x, y), {"batch_size": BATCH, "shuffle": False}),
        "uint8 arrays": (lambda: (x8, y), {"batch_size": BATCH, "shuffle": False}),
        "pydataset": (lambda: (Batches(),), {"shuffle": False}),
        "generator": (lambda: (generator(),), {"steps_per_epoch": steps}),
    }


def timed_fit(fastcnn, data, kwargs, epochs):
    """The seconds of each epoch after the first."""
    fastcnn.utils.set_random_seed(0)
    model = workloads.keras_style_model(fastcnn, fastcnn.layers, "vgg")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    starts = []
    clock = fastcnn.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
        on_train_end=lambda logs: starts.append(time.perf_counter()))
    model.fit(*data(), epochs=epochs, verbose=0, callbacks=[clock], **kwargs)
    return [b - a for a, b in zip(starts[1:-1], starts[2:])]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=workloads.VGG_TRAIN)
    a = p.parse_args()
    if a.epochs < 2:
        p.error("--epochs must be 2 or more: the first epoch of each fit is left out")
    import fastcnn
    fastcnn.set_num_threads(a.threads)
    x, y, _, _ = workloads.vgg_data()
    x, y = np.ascontiguousarray(x[:a.images], np.float32), y[:a.images]
    runs = sources(fastcnn, x, y)
    times = {name: [] for name in runs}
    for r in range(a.rounds):
        for name, (data, kwargs) in runs.items():
            epochs = timed_fit(fastcnn, data, kwargs, a.epochs)
            times[name] += epochs
            print(json.dumps({"round": r, "source": name, "epoch_s": epochs}), flush=True)
    base = statistics.median(times["arrays"])
    print(f"\n{'source':<14} {'s/epoch':>8} {'vs arrays':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<14} {median:8.2f} {median / base:10.3f}")


if __name__ == "__main__":
    main()
